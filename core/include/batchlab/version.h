/* batchlab — library version. */
#ifndef BATCHLAB_VERSION_H
#define BATCHLAB_VERSION_H

#include "batchlab/error.h"

#define BATCHLAB_VERSION_MAJOR 0
#define BATCHLAB_VERSION_MINOR 1
#define BATCHLAB_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded, "MAJOR.MINOR.PATCH" (static string). */
BL_EXPORT const char *bl_version(void);

#ifdef __cplusplus
}
#endif
#endif
