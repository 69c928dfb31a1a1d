/* Internal: what device.c and backend.c need from the built-in backend. */
#ifndef BATCHLAB_DEVICE_INTERNAL_H
#define BATCHLAB_DEVICE_INTERNAL_H

#include "batchlab/device.h"

#include "batchlab/device_backend.h"

/* The built-in CPU backend's descriptor (device_cpu.c): opened like any other backend. */
const bl_device_backend *bl__device_cpu_backend(void);

/* The machine's cores are shared by `processes` processes of one job (local workers,
 * bl_dist_init_workers): from now on a CPU device opened with threads = 0 computes with
 * max(1, default / processes) threads (device_cpu.c; 1, the start: the default itself). */
void bl__device_cpu_share(int processes);

#endif
