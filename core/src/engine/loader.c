/* The batch loader: a seeded permutation per epoch and two batch slots, one filled by a worker
 * thread while the step computes on the other.
 *
 * The engine does not know the next batch size until the schedule has seen the current step,
 * so the prefetch is a guess (the same size again, the common case). Whatever the guess,
 * consumption follows the permutation exactly: bl__loader_fill keeps the prefix of a prefetch
 * that matches and gathers any shortfall itself, so results never depend on timing.
 *
 * A large batch of a dataset that keeps bytes is prefetched as bytes and turned into floats at
 * fill (split gather, SPLIT_MIN_BYTES below); the floats are the dataset's own.
 *
 * On a device whose memory the host cannot address, batches are gathered into staging memory
 * (bl_device_host_alloc: pinned on a GPU) and the prefetch thread starts the upload itself
 * (bl_device_upload_async, recording the slot's event), so the copy overlaps the step that is
 * computing; bl__loader_fill waits for the event. Unless the training split fits on that
 * device: then it is kept there and batches are gathered on the device (loader_resident.c). */
#include <stdlib.h>
#include <string.h>

#include "batchlab/memory.h"
#include "engine/engine.h"

static int gather_range(bl_ctx *ctx, bl__loader *l, bl__slot *s, int64_t offset,
                        int64_t start, int64_t count)
{
    float *x = s->x_stage ? s->x_stage : s->x;
    char *y = s->y_stage ? s->y_stage : s->y;
    return bl_dataset_gather(ctx, l->data, BL_SPLIT_TRAIN, l->perm + start, count,
                             x + offset * l->x_numel, y + offset * l->y_bytes_per_sample);
}

/* Starts the upload of rows [offset, offset + count) of a staged slot, recording its event. */
static int upload_rows(bl_ctx *ctx, bl__loader *l, bl__slot *s, int64_t offset, int64_t count)
{
    int rc = bl_device_upload_async(ctx, l->dev, s->x + offset * l->x_numel,
                                    s->x_stage + offset * l->x_numel,
                                    (size_t)(count * l->x_numel) * sizeof(float), NULL);
    if (rc == BL_OK) {
        size_t yb = (size_t)l->y_bytes_per_sample;
        rc = bl_device_upload_async(ctx, l->dev, (char *)s->y + (size_t)offset * yb,
                                    (char *)s->y_stage + (size_t)offset * yb,
                                    (size_t)count * yb, s->uploaded);
    }
    return rc;
}

static void *worker(void *arg)
{
    bl__loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->pending < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop)
            break;
        int s = l->pending;
        l->pending = -1;
        l->busy = s;
        bl__slot *slot = &l->slot[s];
        pthread_mutex_unlock(&l->mu);
        slot->rc = gather_range(l->worker_ctx, l, slot, 0, slot->start, slot->count);
        if (slot->rc == BL_OK && slot->x_stage)
            slot->rc = upload_rows(l->worker_ctx, l, slot, 0, slot->count);
        pthread_mutex_lock(&l->mu);
        l->busy = -1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* A float batch at least this large is prefetched as the dataset's stored bytes (when it
 * keeps bytes) and turned into floats at fill, by the device's gather_bytes over its threads,
 * into one float buffer that both slots share. The rows come from memory at every gather (each
 * is read once an epoch); written as bytes they take a quarter of the stores, and the float
 * buffer, refilled every step, is still in the cache. MLP on Fashion-MNIST, 2 threads,
 * bench_engine, 5 alternations: batch 2048, 0.897-0.932 of the step-only figure -> 0.931-0.976;
 * 1024, 0.946-0.961 -> 0.950-0.988. Below it (a batch in L2) the extra pass costs more. */
#define SPLIT_MIN_BYTES ((int64_t)2 << 20)

/* The size of a background gather's pieces (bl__loader_prefetch), in floats. */
#define PIECE_MIN_FLOATS 1024
#define PIECE_MAX_FLOATS 8192

/* One piece of a background gather: positions [begin, end) of the slot's range. */
static void background_piece(void *arg, int64_t begin, int64_t end)
{
    bl__loader *l = arg;
    bl__slot *slot = &l->slot[l->bg_slot];
    if (slot->rc != BL_OK)
        return;
    if (l->split) {
        float scale, offset;
        slot->rc = bl_dataset_gather_bytes(l->worker_ctx, l->data, BL_SPLIT_TRAIN,
                                           l->perm + slot->start + begin, end - begin,
                                           slot->xb + begin * l->x_numel,
                                           (char *)slot->y + begin * l->y_bytes_per_sample,
                                           &scale, &offset);
        return;
    }
    slot->rc = gather_range(l->worker_ctx, l, slot, begin, slot->start + begin, end - begin);
}

/* Waits until the thread (or the device's background work) neither holds nor is about to
 * take slot s. */
static void wait_slot(bl__loader *l, int s)
{
    if (l->bg_slot == s) {
        l->dev->ops->host_background_wait(l->dev);
        l->bg_slot = -1;
    }
    if (!l->thread_started)
        return;
    pthread_mutex_lock(&l->mu);
    while (l->busy == s || l->pending == s)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* Releases slot s's buffers of l->capacity samples (the event stays). */
static void release_slot(bl__loader *l, bl__slot *slot)
{
    size_t x_bytes = (size_t)(l->capacity * l->x_numel) * sizeof(float);
    size_t y_bytes = (size_t)(l->capacity * l->y_bytes_per_sample);
    if (!(l->split && slot == &l->slot[1])) /* split: slot 1 uses slot 0's floats */
        bl_device_release(l->dev, slot->x, x_bytes);
    bl_device_release(l->dev, slot->y, y_bytes);
    free(slot->xb);
    slot->xb = NULL;
    bl_device_host_free(l->dev, slot->x_stage);
    bl_device_host_free(l->dev, slot->y_stage);
    slot->x = slot->x_stage = NULL;
    slot->y = slot->y_stage = NULL;
    slot->count = 0;
}

/* Allocates slot s's buffers for l->capacity samples (and its event once). */
static int alloc_slot(bl_ctx *ctx, bl__loader *l, bl__slot *slot)
{
    size_t x_bytes = (size_t)(l->capacity * l->x_numel) * sizeof(float);
    size_t y_bytes = (size_t)(l->capacity * l->y_bytes_per_sample);
    int rc = BL_OK;
    if (l->split && slot == &l->slot[1]) /* one float batch: filled from the bytes at fill */
        slot->x = l->slot[0].x;
    else
        rc = bl_device_alloc(ctx, l->dev, x_bytes, (void **)&slot->x);
    if (rc == BL_OK && l->split) {
        slot->xb = bl_alloc_large((size_t)(l->capacity * l->x_numel));
        if (!slot->xb)
            rc = bl_error(ctx, BL_ENOMEM, "out of memory for %lld bytes",
                          (long long)(l->capacity * l->x_numel));
    }
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, l->dev, y_bytes, &slot->y);
    if (rc == BL_OK && !(bl_device_caps(l->dev) & BL_DEVICE_CAP_HOST_ADDRESSABLE) &&
        !l->res.on) {
        rc = bl_device_host_alloc(ctx, l->dev, x_bytes, (void **)&slot->x_stage);
        if (rc == BL_OK)
            rc = bl_device_host_alloc(ctx, l->dev, y_bytes, &slot->y_stage);
        if (rc == BL_OK && !slot->uploaded)
            rc = bl_device_event_new(ctx, l->dev, &slot->uploaded);
    }
    return rc;
}

/* l->iota for l->capacity rows (split gather only). */
static int alloc_iota(bl_ctx *ctx, bl__loader *l)
{
    free(l->iota);
    l->iota = malloc((size_t)l->capacity * sizeof *l->iota);
    if (!l->iota)
        return bl_error(ctx, BL_ENOMEM, "batch loader: out of memory for %lld indices",
                        (long long)l->capacity);
    for (int64_t i = 0; i < l->capacity; i++)
        l->iota[i] = i;
    return BL_OK;
}

int bl__loader_grow(bl_ctx *ctx, bl__loader *l, int64_t capacity)
{
    for (int s = 0; s < 2; s++) {
        wait_slot(l, s);            /* the thread holds neither slot now */
        release_slot(l, &l->slot[s]);
    }
    l->capacity = capacity;
    if (l->split && alloc_iota(ctx, l) != BL_OK)
        return bl_error_prefix(ctx, "batch loader (%lld samples per batch)",
                               (long long)capacity);
    for (int s = 0; s < 2; s++) {
        int rc = alloc_slot(ctx, l, &l->slot[s]);
        if (rc != BL_OK)
            return bl_error_prefix(ctx, "batch loader (%lld samples per batch)",
                                   (long long)capacity);
    }
    return BL_OK;
}

int bl__loader_byte_map(bl_ctx *ctx, bl_dataset *data, float *scale, float *offset)
{
    int64_t none = 0;
    int32_t label;
    uint8_t byte;
    int rc = bl_dataset_gather_bytes(ctx, data, BL_SPLIT_TRAIN, &none, 0, &byte, &label, scale,
                                     offset);
    if (rc == BL_EUNSUPPORTED)
        bl_clear_error(ctx);
    return rc;
}

int bl__loader_open(bl_ctx *ctx, bl__loader *l, bl_dataset *data, bl_device *dev,
                    int64_t capacity, uint64_t seed, bl__prefetch how,
                    bl_data_placement placement)
{
    memset(l, 0, sizeof *l);
    l->bg_slot = -1;
    const bl_data_info *info = bl_dataset_info(data);
    l->data = data;
    l->dev = dev;
    l->n = info->count[BL_SPLIT_TRAIN];
    l->capacity = capacity;
    l->x_numel = bl_shape_numel(&info->sample);
    l->y_bytes_per_sample = info->classes >= 2 ? (int64_t)sizeof(int32_t)
                                               : info->target_dim * (int64_t)sizeof(float);
    l->pending = -1;
    l->busy = -1;
    bl_rng_seed(&l->rng, seed, BL_STREAM_SHUFFLE);

    l->perm = malloc((size_t)l->n * sizeof *l->perm);
    l->worker_ctx = bl_ctx_new();
    if (!l->perm || !l->worker_ctx) {
        bl__loader_close(l);
        return bl_error(ctx, BL_ENOMEM, "batch loader: out of memory for %lld indices",
                        (long long)l->n);
    }
    int rrc = bl__resident_open(ctx, l, placement); /* loader_resident.c */
    if (rrc != BL_OK) {
        bl__loader_close(l);
        return rrc;
    }
    if (l->res.on) /* the device gathers in order on its stream */
        how = BL__PREFETCH_NONE;
    /* pieces gather straight into the slot: no staging copy to start afterwards */
    if (how == BL__PREFETCH_BACKGROUND &&
        (!dev->ops->host_background ||
         !(bl_device_caps(dev) & BL_DEVICE_CAP_HOST_ADDRESSABLE)))
        how = BL__PREFETCH_NONE;
    if (how == BL__PREFETCH_BACKGROUND && dev->ops->gather_bytes &&
        capacity * l->x_numel * (int64_t)sizeof(float) >= SPLIT_MIN_BYTES) {
        /* only a faster way to the same floats: a dataset that fails the byte probe is
         * gathered as floats, as before (its gathers report their own errors) */
        l->split = bl__loader_byte_map(ctx, data, &l->split_scale, &l->split_offset) == BL_OK;
        if (!l->split)
            bl_clear_error(ctx);
        if (l->split && alloc_iota(ctx, l) != BL_OK) {
            bl__loader_close(l);
            return bl_error_prefix(ctx, "batch loader (%lld samples per batch)",
                                   (long long)capacity);
        }
    }
    for (int s = 0; s < 2; s++) {
        int rc = alloc_slot(ctx, l, &l->slot[s]);
        if (rc != BL_OK) {
            bl__loader_close(l);
            return bl_error_prefix(ctx, "batch loader (%lld samples per batch)",
                                   (long long)capacity);
        }
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0 || pthread_cond_init(&l->cv, NULL) != 0) {
        bl__loader_close(l);
        return bl_error(ctx, BL_ENOMEM, "batch loader: cannot make its lock");
    }
    l->sync_ready = true;
    l->background = how == BL__PREFETCH_BACKGROUND;
    l->prefetching = l->background;
    if (how == BL__PREFETCH_THREAD) {
        if (pthread_create(&l->thread, NULL, worker, l) != 0) {
            bl__loader_close(l);
            return bl_error(ctx, BL_ENOMEM, "batch loader: cannot start the prefetch thread");
        }
        l->thread_started = true;
        l->prefetching = true;
    }
    bl__loader_new_epoch(l);
    return BL_OK;
}

void bl__loader_close(bl__loader *l)
{
    if (l->bg_slot >= 0)
        wait_slot(l, l->bg_slot);
    if (l->thread_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        l->thread_started = false;
    }
    if (l->sync_ready) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        l->sync_ready = false;
    }
    for (int s = 0; s < 2; s++) {
        release_slot(l, &l->slot[s]);
        bl_device_event_free(l->dev, l->slot[s].uploaded);
        memset(&l->slot[s], 0, sizeof l->slot[s]);
    }
    bl__resident_close(l);
    free(l->perm);
    l->perm = NULL;
    free(l->iota);
    l->iota = NULL;
    bl_ctx_free(l->worker_ctx);
    l->worker_ctx = NULL;
}

void bl__loader_new_epoch(bl__loader *l)
{
    for (int s = 0; s < 2; s++) {
        wait_slot(l, s);
        l->slot[s].count = 0;
    }
    l->epoch_rng = l->rng;
    bl_rng_permutation(&l->rng, l->perm, l->n);
    bl__resident_epoch(l);
}

void bl__loader_quiesce(bl__loader *l)
{
    for (int s = 0; s < 2; s++)
        wait_slot(l, s);
}

void bl__loader_prefetch(bl__loader *l, int s, int64_t start, int64_t count)
{
    if (!l->prefetching) {
        l->slot[s].count = 0;
        return;
    }
    if (count > l->capacity)
        count = l->capacity;
    if (start + count > l->n)
        count = l->n - start;
    wait_slot(l, s);
    if (count <= 0) {
        l->slot[s].count = 0;
        return;
    }
    if (l->background) {
        l->slot[s].start = start;
        l->slot[s].count = count;
        l->slot[s].rc = BL_OK;
        l->bg_slot = s;
        /* A kernel launched while a worker is inside a piece waits for the piece to end, and
         * kernels are shorter the smaller the batch: pieces of 1/64 of the batch, between 4
         * and 32 KiB of floats (0.3-3 µs of gather). Smaller pieces wait for memory more often
         * (a piece asks for its own rows only), so they stop at 4 KiB. MLP on Fashion-MNIST,
         * 2 threads, bench_engine --rounds 5, 32 KiB pieces throughout before: batch 128,
         * 0.92-0.93 of the step-only figure -> 0.94-1.0; 256, 0.94-0.97 -> 0.93-1.0; 32 and
         * 512 unchanged (512: 0.94-0.97). */
        int64_t floats = count * l->x_numel / 64;
        floats = floats < PIECE_MIN_FLOATS ? PIECE_MIN_FLOATS
                 : floats > PIECE_MAX_FLOATS ? PIECE_MAX_FLOATS
                                             : floats;
        int64_t rows = floats / (l->x_numel > 0 ? l->x_numel : 1);
        l->dev->ops->host_background(l->dev, background_piece, l, count, rows > 0 ? rows : 1);
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->slot[s].start = start;
    l->slot[s].count = count;
    l->slot[s].rc = BL_OK;
    l->pending = s;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int bl__loader_fill(bl_ctx *ctx, bl__loader *l, int s, int64_t start, int64_t count)
{
    if (l->res.on)
        return bl__resident_fill(ctx, l, s, start, count);
    bl__slot *slot = &l->slot[s];
    wait_slot(l, s);
    int64_t have = 0;
    if (slot->count > 0 && slot->start == start) {
        if (slot->rc != BL_OK)
            return bl_error(ctx, slot->rc, "%s", bl_errmsg(l->worker_ctx));
        have = slot->count < count ? slot->count : count;
    }
    int rc = BL_OK;
    if (have > 0 && slot->x_stage) /* the prefetch thread's upload of the prefix */
        rc = bl_device_event_wait(ctx, l->dev, slot->uploaded);
    if (have > 0 && l->split) /* the prefix's bytes into the floats */
        l->dev->ops->gather_bytes(l->dev, have, l->iota, l->x_numel, slot->xb, l->split_scale,
                                  l->split_offset, slot->x);
    if (rc == BL_OK && have < count) {
        rc = gather_range(ctx, l, slot, have, start + have, count - have);
        if (rc == BL_OK && slot->x_stage)
            rc = upload_rows(ctx, l, slot, have, count - have);
        if (rc == BL_OK && slot->x_stage)
            rc = bl_device_event_wait(ctx, l->dev, slot->uploaded);
    }
    if (rc != BL_OK)
        return rc;
    slot->start = start;
    slot->count = count;
    return BL_OK;
}
