/* batchlab — float32 tensors on a device.
 *
 * A tensor is contiguous, row-major, up to 4-D, and lives on one device. An owning tensor
 * (from bl_tensor_new) has a capacity fixed at creation; it can be reshaped to any shape that
 * fits, which is how a buffer sized for the largest batch serves every smaller batch without
 * allocating. A view (bl_tensor_view) points into another tensor's memory and owns nothing;
 * it must not outlive the tensor it views.
 */
#ifndef BATCHLAB_TENSOR_H
#define BATCHLAB_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "batchlab/device.h"
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_MAX_DIMS 4

typedef struct bl_tensor {
    float *data;                   /* device memory; read-only pointer value */
    bl_device *dev;                /* read-only */
    int ndim;                      /* read-only: 1..BL_MAX_DIMS */
    int64_t shape[BL_MAX_DIMS];    /* read-only; unused dims are 1 */
    int64_t numel;                 /* read-only: product of shape */
    int64_t capacity;              /* read-only: elements that fit in data */
    bool owner;                    /* private: true when data is freed with the tensor */
} bl_tensor;

/* Checks a shape: 1 ≤ ndim ≤ BL_MAX_DIMS and every dimension ≥ 1. On success stores the
 * element count in *numel (may be NULL). `what` names the tensor in the error message. */
BL_EXPORT int bl_shape_check(bl_ctx *ctx, const char *what, const int64_t *shape, int ndim,
                             int64_t *numel);

/* A new zero-filled tensor. On success *out is a tensor the caller frees with
 * bl_tensor_free; on error *out is untouched and bl_errmsg(ctx) says why. */
BL_EXPORT int bl_tensor_new(bl_ctx *ctx, bl_device *dev, const int64_t *shape, int ndim,
                            bl_tensor **out);

/* Frees a tensor (and its memory when it owns it); NULL allowed. */
BL_EXPORT void bl_tensor_free(bl_tensor *t);

/* Makes *out a view of `numel(shape)` elements of `base` starting at element `offset`.
 * Fails with BL_ESHAPE when that range is not inside base's capacity. Nothing is allocated;
 * the view is a plain struct owned by the caller and needs no freeing. */
BL_EXPORT int bl_tensor_view(bl_ctx *ctx, const bl_tensor *base, int64_t offset,
                             const int64_t *shape, int ndim, bl_tensor *out);

/* Changes the shape in place; the new element count must fit the capacity (BL_ESHAPE
 * otherwise, and the tensor is unchanged). */
BL_EXPORT int bl_tensor_reshape(bl_ctx *ctx, bl_tensor *t, const int64_t *shape, int ndim);

/* Copies numel floats from host memory into the tensor, or out of it. */
BL_EXPORT int bl_tensor_upload(bl_ctx *ctx, bl_tensor *t, const float *host);
BL_EXPORT int bl_tensor_download(bl_ctx *ctx, const bl_tensor *t, float *host);

/* Sets every element to `value`. */
BL_EXPORT void bl_tensor_fill(bl_tensor *t, float value);

/* Writes "[2, 3, 4]" into buf (always NUL-terminated) and returns buf. */
BL_EXPORT char *bl_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
