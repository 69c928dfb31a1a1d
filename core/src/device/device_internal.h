/* Internal: what device.c needs from the backends. */
#ifndef BATCHLAB_DEVICE_INTERNAL_H
#define BATCHLAB_DEVICE_INTERNAL_H

#include "batchlab/device.h"

/* Frees a device opened by bl_device_cpu_open (its thread pool and the struct). */
void bl__device_cpu_destroy(bl_device *dev);

#endif
