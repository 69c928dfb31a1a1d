/* Tensors: contiguous float32 arrays on a device, with a fixed capacity and a shape that may
 * change within it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/tensor.h"

int bl_shape_check(bl_ctx *ctx, const char *what, const int64_t *shape, int ndim,
                   int64_t *numel)
{
    if (!what)
        what = "tensor";
    if (!shape)
        return bl_error(ctx, BL_EINVAL, "%s: shape is NULL", what);
    if (ndim < 1 || ndim > BL_MAX_DIMS)
        return bl_error(ctx, BL_EINVAL, "%s: %d dimensions; expected 1 to %d", what, ndim,
                        BL_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) {
            char buf[96];
            return bl_error(ctx, BL_EINVAL, "%s: shape %s has dimension %d = %" PRId64
                            "; every dimension must be at least 1",
                            what, bl_shape_str(shape, ndim, buf, sizeof buf), i, shape[i]);
        }
        if (n > INT64_MAX / 4 / shape[i]) {
            char buf[96];
            return bl_error(ctx, BL_EINVAL, "%s: shape %s is too large", what,
                            bl_shape_str(shape, ndim, buf, sizeof buf));
        }
        n *= shape[i];
    }
    if (numel)
        *numel = n;
    return BL_OK;
}

static void set_shape(bl_tensor *t, const int64_t *shape, int ndim, int64_t numel)
{
    t->ndim = ndim;
    for (int i = 0; i < BL_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = numel;
}

int bl_tensor_new(bl_ctx *ctx, bl_device *dev, const int64_t *shape, int ndim, bl_tensor **out)
{
    if (!dev || !out)
        return bl_error(ctx, BL_EINVAL, "bl_tensor_new: %s is NULL", !dev ? "dev" : "out");
    int64_t numel;
    int rc = bl_shape_check(ctx, "bl_tensor_new", shape, ndim, &numel);
    if (rc != BL_OK)
        return rc;
    bl_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return bl_error(ctx, BL_ENOMEM, "bl_tensor_new: out of memory");
    void *data;
    rc = bl_device_alloc(ctx, dev, (size_t)numel * sizeof(float), &data);
    if (rc != BL_OK) {
        free(t);
        return rc;
    }
    t->data = data;
    t->dev = dev;
    t->capacity = numel;
    t->owner = true;
    set_shape(t, shape, ndim, numel);
    dev->ops->fill(dev, numel, 0.0f, t->data);
    *out = t;
    return BL_OK;
}

void bl_tensor_free(bl_tensor *t)
{
    if (!t)
        return;
    if (t->owner)
        bl_device_release(t->dev, t->data, (size_t)t->capacity * sizeof(float));
    free(t);
}

/* A view's capacity is the range it was given, so reshaping a view never reaches past it. */
int bl_tensor_view(bl_ctx *ctx, const bl_tensor *base, int64_t offset, const int64_t *shape,
                   int ndim, bl_tensor *out)
{
    if (!base || !out)
        return bl_error(ctx, BL_EINVAL, "bl_tensor_view: %s is NULL", !base ? "base" : "out");
    int64_t numel;
    int rc = bl_shape_check(ctx, "bl_tensor_view", shape, ndim, &numel);
    if (rc != BL_OK)
        return rc;
    if (offset < 0 || offset > base->capacity || numel > base->capacity - offset) {
        char buf[96];
        return bl_error(ctx, BL_ESHAPE,
                        "bl_tensor_view: %s at offset %" PRId64 " needs elements up to %" PRId64
                        " but the tensor holds %" PRId64,
                        bl_shape_str(shape, ndim, buf, sizeof buf), offset, offset + numel,
                        base->capacity);
    }
    bl_tensor v = {0};
    v.data = base->data + offset;
    v.dev = base->dev;
    v.capacity = numel;
    v.owner = false;
    set_shape(&v, shape, ndim, numel);
    *out = v;
    return BL_OK;
}

int bl_tensor_reshape(bl_ctx *ctx, bl_tensor *t, const int64_t *shape, int ndim)
{
    if (!t)
        return bl_error(ctx, BL_EINVAL, "bl_tensor_reshape: tensor is NULL");
    int64_t numel;
    int rc = bl_shape_check(ctx, "bl_tensor_reshape", shape, ndim, &numel);
    if (rc != BL_OK)
        return rc;
    if (numel > t->capacity) {
        char want[96], have[96];
        return bl_error(ctx, BL_ESHAPE,
                        "bl_tensor_reshape: %s needs %" PRId64
                        " elements but tensor %s holds %" PRId64,
                        bl_shape_str(shape, ndim, want, sizeof want), numel,
                        bl_shape_str(t->shape, t->ndim, have, sizeof have), t->capacity);
    }
    set_shape(t, shape, ndim, numel);
    return BL_OK;
}

int bl_tensor_upload(bl_ctx *ctx, bl_tensor *t, const float *host)
{
    if (!t || !host)
        return bl_error(ctx, BL_EINVAL, "bl_tensor_upload: %s is NULL", !t ? "tensor" : "host");
    return bl_device_upload(ctx, t->dev, t->data, host, (size_t)t->numel * sizeof(float));
}

int bl_tensor_download(bl_ctx *ctx, const bl_tensor *t, float *host)
{
    if (!t || !host)
        return bl_error(ctx, BL_EINVAL, "bl_tensor_download: %s is NULL",
                        !t ? "tensor" : "host");
    return bl_device_download(ctx, t->dev, host, t->data, (size_t)t->numel * sizeof(float));
}

void bl_tensor_fill(bl_tensor *t, float value)
{
    if (t && t->numel > 0)
        t->dev->ops->fill(t->dev, t->numel, value, t->data);
}

char *bl_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return buf;
    int n = snprintf(buf, cap, "[");
    size_t len = n > 0 ? (size_t)n : 0;
    for (int i = 0; shape && i < ndim && len < cap; i++) {
        n = snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
    return buf;
}
