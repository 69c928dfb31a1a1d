/* The batch loader's resident mode (issue 11): on a device whose memory the host cannot
 * address (a GPU), a training split that fits is uploaded once — as the stored bytes when the
 * dataset keeps bytes (bl_dataset_gather_bytes), else as gather's floats — with its labels or
 * targets. Each epoch's permutation is uploaded once (in bl__loader_new_epoch), and a batch is
 * gathered on the device from positions [start, start + count) of it (the device ops
 * gather_bytes / gather_rows), in order with the step's kernels: no prefetch thread, no
 * staging, no copy per batch.
 *
 * The batches are those of the host path, bit for bit: the same permutation positions, and
 * gather_bytes computes the dataset's own (float)byte·scale + offset.
 *
 * Placement (bl_train_config.data_placement): staged never does this; auto does it when the
 * split, its labels and the permutation take at most half of the device's free memory (the
 * rest is for the model and its activations; the max-batch finder's trials, which run the
 * same placement, see the same), and falls back to staging when that allocation fails;
 * resident does it whatever it takes (out of memory is the run's error). */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

/* Samples gathered on the host per upload while the split is copied to the device. */
#define UPLOAD_CHUNK 4096

static void release_all(bl__loader *l)
{
    bl__resident *r = &l->res;
    bl_device_release(l->dev, r->x, r->x_bytes);
    bl_device_release(l->dev, r->y, (size_t)(l->n * l->y_bytes_per_sample));
    bl_device_release(l->dev, r->perm, (size_t)l->n * sizeof(int64_t));
    r->x = r->y = NULL;
    r->perm = NULL;
}

/* Copies the training split to r->x and r->y, UPLOAD_CHUNK samples at a time. */
static int upload_split(bl_ctx *ctx, bl__loader *l)
{
    bl__resident *r = &l->res;
    const size_t x_row = (size_t)l->x_numel * (r->bytes ? 1 : sizeof(float));
    const size_t y_row = (size_t)l->y_bytes_per_sample;
    int64_t *idx = malloc(UPLOAD_CHUNK * sizeof *idx);
    char *x = malloc(UPLOAD_CHUNK * x_row), *y = malloc(UPLOAD_CHUNK * y_row);
    int rc = idx && x && y ? BL_OK
                           : bl_error(ctx, BL_ENOMEM, "batch loader: out of memory for the "
                                                      "upload of the training split");
    for (int64_t at = 0; rc == BL_OK && at < l->n; at += UPLOAD_CHUNK) {
        int64_t n = l->n - at < UPLOAD_CHUNK ? l->n - at : UPLOAD_CHUNK;
        for (int64_t i = 0; i < n; i++)
            idx[i] = at + i;
        float scale, offset;
        rc = r->bytes ? bl_dataset_gather_bytes(ctx, l->data, BL_SPLIT_TRAIN, idx, n,
                                                (uint8_t *)x, y, &scale, &offset)
                      : bl_dataset_gather(ctx, l->data, BL_SPLIT_TRAIN, idx, n, (float *)x, y);
        if (rc == BL_OK && r->bytes && (scale != r->scale || offset != r->offset))
            rc = bl_error(ctx, BL_EPLUGIN, "batch loader: the dataset's byte-to-float map "
                                           "changed between samples");
        if (rc == BL_OK)
            rc = bl_device_upload(ctx, l->dev, (char *)r->x + (size_t)at * x_row, x,
                                  (size_t)n * x_row);
        if (rc == BL_OK)
            rc = bl_device_upload(ctx, l->dev, (char *)r->y + (size_t)at * y_row, y,
                                  (size_t)n * y_row);
    }
    free(idx);
    free(x);
    free(y);
    return rc;
}

int bl__resident_open(bl_ctx *ctx, bl__loader *l, bl_data_placement placement)
{
    bl__resident *r = &l->res;
    memset(r, 0, sizeof *r);
    if (placement == BL_DATA_STAGED || l->n <= 0 ||
        (bl_device_caps(l->dev) & BL_DEVICE_CAP_HOST_ADDRESSABLE))
        return BL_OK;
    /* bytes when the dataset stores bytes */
    int rc = bl__loader_byte_map(ctx, l->data, &r->scale, &r->offset);
    if (rc != BL_OK && rc != BL_EUNSUPPORTED)
        return rc;
    r->bytes = rc == BL_OK;
    r->x_bytes = (size_t)(l->n * l->x_numel) * (r->bytes ? 1 : sizeof(float));
    size_t y_bytes = (size_t)(l->n * l->y_bytes_per_sample);
    size_t perm_bytes = (size_t)l->n * sizeof(int64_t);
    size_t need = r->x_bytes + y_bytes + perm_bytes;
    if (placement == BL_DATA_AUTO) {
        size_t free_bytes = 0;
        if (bl_device_memory(ctx, l->dev, &free_bytes, NULL) != BL_OK) {
            bl_clear_error(ctx);
            return BL_OK; /* cannot tell: stage */
        }
        if (l->dev->budget_bytes > 0) {
            size_t left = l->dev->budget_bytes > l->dev->bytes_in_use
                              ? l->dev->budget_bytes - l->dev->bytes_in_use
                              : 0;
            free_bytes = left < free_bytes ? left : free_bytes;
        }
        if (need > free_bytes / 2)
            return BL_OK;
    }
    rc = bl_device_alloc(ctx, l->dev, r->x_bytes, &r->x);
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, l->dev, y_bytes, &r->y);
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, l->dev, perm_bytes, (void **)&r->perm);
    if (rc == BL_ENOMEM && placement == BL_DATA_AUTO) {
        release_all(l);
        bl_clear_error(ctx);
        return BL_OK; /* it did not fit after all: stage */
    }
    if (rc == BL_OK)
        rc = upload_split(ctx, l);
    if (rc != BL_OK) {
        release_all(l);
        return bl_error_prefix(ctx, "batch loader (the training split on the device, %zu bytes)",
                               need);
    }
    r->on = true;
    return BL_OK;
}

void bl__resident_close(bl__loader *l)
{
    if (l->res.on)
        release_all(l);
    l->res.on = false;
}

void bl__resident_epoch(bl__loader *l)
{
    bl__resident *r = &l->res;
    if (!r->on)
        return;
    r->rc = bl_device_upload(l->worker_ctx, l->dev, r->perm, l->perm,
                             (size_t)l->n * sizeof *l->perm);
}

int bl__resident_fill(bl_ctx *ctx, bl__loader *l, int s, int64_t start, int64_t count)
{
    bl__resident *r = &l->res;
    bl__slot *slot = &l->slot[s];
    if (r->rc != BL_OK)
        return bl_error(ctx, r->rc, "batch loader: uploading the epoch's permutation: %s",
                        bl_errmsg(l->worker_ctx));
    const bl_device_ops *op = l->dev->ops;
    const int64_t *idx = r->perm + start;
    if (r->bytes)
        op->gather_bytes(l->dev, count, idx, l->x_numel, r->x, r->scale, r->offset, slot->x);
    else
        op->gather_rows(l->dev, count, idx, l->x_numel * (int64_t)sizeof(float), r->x,
                        slot->x);
    op->gather_rows(l->dev, count, idx, l->y_bytes_per_sample, r->y, slot->y);
    int rc = bl_device_status(ctx, l->dev);
    if (rc != BL_OK)
        return rc;
    slot->start = start;
    slot->count = count;
    return BL_OK;
}
