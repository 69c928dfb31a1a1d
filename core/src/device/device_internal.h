/* Internal: what device.c and backend.c need from the built-in backend. */
#ifndef BATCHLAB_DEVICE_INTERNAL_H
#define BATCHLAB_DEVICE_INTERNAL_H

#include "batchlab/device.h"

#include "batchlab/device_backend.h"

/* The built-in CPU backend's descriptor (device_cpu.c): opened like any other backend. */
const bl_device_backend *bl__device_cpu_backend(void);

#endif
