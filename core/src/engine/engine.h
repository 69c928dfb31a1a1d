/* Internal pieces of the training engine (train.c): the learning-rate rule, the gradient
 * noise scale estimator and the prefetching batch loader. */
#ifndef BATCHLAB_ENGINE_INTERNAL_H
#define BATCHLAB_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "batchlab/dataset.h"
#include "batchlab/device.h"
#include "batchlab/rng.h"
#include "batchlab/train.h"
#include "batchlab/optim.h"
#include "batchlab/scheduler.h"
#include "batchlab/snapshot.h"

/* ---- learning rate (lr.c) ------------------------------------------------------------------ */

/* Checks the LR part of a configuration (scaling base, warmup, schedule and its budget). */
int bl__lr_validate(bl_ctx *ctx, const bl_train_config *cfg, int64_t base_batch);

/* The factor a scaling rule puts on the learning rate at `batch` when it suits `base_batch`:
 * 1 (none), batch / base_batch (linear, Goyal et al. 2017) or its square root (sqrt, Hoffer
 * et al. 2017). The one place the rule is written (bl.train's lr_scaling, sweep.scaled_lr). */
double bl__lr_scale(bl_lr_scaling rule, double batch, double base_batch);

/* The effective learning rate of a step that uses `batch` samples, starting at `step` steps
 * and `samples` samples done, with the batch source's `factor`. */
double bl__lr_at(const bl_train_config *cfg, int64_t base_batch, int64_t train_size,
                 int64_t batch, int64_t step, int64_t samples, double factor);

/* ---- gradient noise scale (gns.c) -------------------------------------------------------- */

typedef struct bl__gns {
    double beta;             /* EMA factor */
    double ema_g2, ema_trace; /* smoothed |G|² and tr(Σ) (same bias, so their ratio is exact) */
    int64_t updates;
    /* reduction slots: the squared norms of a step stay on the device until one read-back */
    bl_device *dev;
    double *slots;           /* device [n_slots] */
    double *slots_host;      /* host [n_slots] */
    int64_t n_slots;
} bl__gns;

void bl__gns_init(bl__gns *g, double beta);
/* Allocates n_slots device reduction slots (k chunk norms and one for the mean); released by
 * bl__gns_release (safe on an unreserved or released g). */
int bl__gns_reserve(bl_ctx *ctx, bl__gns *g, bl_device *dev, int64_t n_slots);
void bl__gns_release(bl__gns *g);
/* Slot i (< n_slots), a device pointer for a sumsq kernel. */
double *bl__gns_slot(bl__gns *g, int64_t i);
/* Reads slots 0..k back in one download: slots 0..k−1 hold |g_i|², slot k |Σ-scaled mean|²,
 * which times f² is |mean_i g_i|²; then makes the update (see bl__gns_update). */
int bl__gns_collect(bl_ctx *ctx, bl__gns *g, int64_t k, int64_t b, double f);
/* One measurement from k ≥ 2 chunk gradients of b samples each: mean_sq = mean_i |g_i|²,
 * mean_grad_sq = |mean_i g_i|². */
void bl__gns_update(bl__gns *g, int64_t k, int64_t b, double mean_sq, double mean_grad_sq);
/* Smoothed B_simple = tr(Σ)/|G|², NAN until it is defined (no update yet, or |G|² ≤ 0). */
double bl__gns_value(const bl__gns *g);

/* ---- batch loader with a prefetch thread (loader.c) --------------------------------------- */

typedef struct bl__slot {
    float *x;          /* device: [capacity × sample numel] */
    void *y;           /* device: int32 [capacity] or float [capacity × target_dim] */
    float *x_stage;    /* host staging from bl_device_host_alloc (devices whose memory the
                          host cannot address), else NULL */
    void *y_stage;
    bl_device_event *uploaded; /* with staging: recorded when the prefetch's upload is done */
    int64_t start, count; /* permutation range held (count 0 = empty) */
    int rc;            /* result of the last gather (and upload, for a prefetch) */
    uint8_t *xb;       /* split gather: the prefetch's stored bytes [capacity × numel] */
} bl__slot;

/* The training split kept on the device (loader_resident.c); on = false: the host gathers. */
typedef struct bl__resident {
    bool on;
    bool bytes;             /* x holds the stored bytes, turned into floats by gather_bytes */
    float scale, offset;    /* with bytes: the dataset's map to floats */
    void *x;                /* device: [n × numel] bytes or floats */
    void *y;                /* device: [n × y_bytes_per_sample] */
    int64_t *perm;          /* device: [n] the epoch's permutation */
    size_t x_bytes;
    int rc;                 /* the permutation upload's result (message in worker_ctx) */
} bl__resident;

typedef struct bl__loader {
    bl_dataset *data;
    bl_device *dev;
    bl_ctx *worker_ctx;     /* errors of the prefetch thread */
    int64_t n, capacity, x_numel, y_bytes_per_sample;
    int64_t *perm;          /* [n] current epoch's permutation */
    bl_rng rng;
    bl_rng epoch_rng;       /* rng as it was before drawing perm (snapshots draw it again) */
    bl__slot slot[2];

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool thread_started, stop;
    bool prefetching;       /* false: bl__loader_prefetch does nothing (gathers in fill) */
    bool background;        /* prefetches run as the device's host background work */
    int bg_slot;            /* slot of the background gather in flight, or -1 */
    bool sync_ready;        /* mu and cv exist */
    int pending;            /* slot index requested from the thread, or -1 */
    int busy;               /* slot the thread is filling, or -1 */
    bl__resident res;
    bool split;             /* prefetches gather bytes; fill turns them into floats */
    float split_scale, split_offset; /* the dataset's map from bytes to floats */
    int64_t *iota;          /* split: 0, 1, … capacity − 1 (gather_bytes' rows) */
} bl__loader;

/* How the next batch is gathered while a step computes: not at all (fill gathers it), by a
 * thread of the loader's own, or as the device's host background work (between its kernels,
 * on its own threads: bl_device_ops.host_background; only on a device whose memory the host
 * addresses, else not at all). */
typedef enum {
    BL__PREFETCH_NONE,
    BL__PREFETCH_THREAD,
    BL__PREFETCH_BACKGROUND
} bl__prefetch;

/* Sizes two slots for `capacity` samples of the training split and starts the prefetch as
 * `how` says; keeps the split on the device as `placement` says (then without prefetch). */
int bl__loader_open(bl_ctx *ctx, bl__loader *l, bl_dataset *data, bl_device *dev,
                    int64_t capacity, uint64_t seed, bl__prefetch how,
                    bl_data_placement placement);
void bl__loader_close(bl__loader *l);
/* Makes both slots hold `capacity` samples (> l->capacity): waits for a prefetch in flight,
 * drops what the slots hold and replaces their buffers (the old ones are released first, so
 * the device's peak does not hold both). The permutation and its position are kept. On an
 * error the loader cannot be used further (close it). */
int bl__loader_grow(bl_ctx *ctx, bl__loader *l, int64_t capacity);
/* Draws the next epoch's permutation (waits for a prefetch in flight, and drops it). */
void bl__loader_new_epoch(bl__loader *l);
/* Waits until no prefetch is in flight, so that the caller may use the dataset itself (a
 * dataset is used by one thread at a time); what a finished prefetch brought is kept. */
void bl__loader_quiesce(bl__loader *l);
/* Asks the thread to gather permutation positions [start, start+count) into slot s. */
void bl__loader_prefetch(bl__loader *l, int s, int64_t start, int64_t count);
/* Makes slot s hold exactly positions [start, start+count): uses what a prefetch brought when
 * it matches, gathers the rest here, and uploads when the device needs it. */
int bl__loader_fill(bl_ctx *ctx, bl__loader *l, int s, int64_t start, int64_t count);

/* Whether the training split of `data` keeps bytes (bl_dataset_gather_bytes), asking for no
 * sample to learn its map into *scale and *offset: BL_OK when it does, BL_EUNSUPPORTED (the
 * message cleared) when it gathers floats only, another code (its message in ctx) on error. */
int bl__loader_byte_map(bl_ctx *ctx, bl_dataset *data, float *scale, float *offset);

/* loader_resident.c: the resident mode's parts of the loader (the hooks in loader.c). open
 * decides (l->res.on) and uploads the split; epoch uploads l->perm; fill gathers on the
 * device. */
int bl__resident_open(bl_ctx *ctx, bl__loader *l, bl_data_placement placement);
void bl__resident_close(bl__loader *l);
void bl__resident_epoch(bl__loader *l);
int bl__resident_fill(bl_ctx *ctx, bl__loader *l, int s, int64_t start, int64_t count);

/* ---- step times (steptime.c) ---- */

/* The times of the last `cap` training steps, each with the batch the step was asked for (a
 * ring sized once before the loop: pushing never allocates). The robust per-step time of a
 * run is the median over the kept steps of its final batch (train.h, step_time_median). */
typedef struct bl__step_times {
    double *t;              /* [cap] seconds per step */
    int64_t *batch;         /* [cap] the batch asked for at that step */
    double *scratch;        /* [cap] for the median */
    size_t cap, n, next;    /* n kept (≤ cap); next: where the next one goes */
} bl__step_times;

enum { BL__STEP_TIMES_KEPT = 4096 };

int bl__step_times_reserve(bl_ctx *ctx, bl__step_times *s, size_t cap);
void bl__step_times_release(bl__step_times *s);
static inline void bl__step_times_push(bl__step_times *s, double seconds, int64_t batch)
{
    if (s->cap == 0)
        return;
    s->t[s->next] = seconds;
    s->batch[s->next] = batch;
    s->next = s->next + 1 == s->cap ? 0 : s->next + 1;
    if (s->n < s->cap)
        s->n++;
}
/* The median of the kept step times whose batch is `batch` (all kept steps when batch ≤ 0);
 * NAN when there are none. Uses the scratch buffer; does not allocate. */
double bl__step_times_median(bl__step_times *s, int64_t batch);
/* The median of times[0 .. n) (the mean of the middle two for even n), sorting a copy in
 * scratch[0 .. n); NAN when n is 0. Depends only on the values, not on their order. */
double bl__median(const double *times, size_t n, double *scratch);

/* ---- snapshots (snapshot.c) ------------------------------------------------------------------ */

/* The variables of a run (train.c's private struct) that a snapshot holds, copied out and in
 * by train.c, and the objects whose state a snapshot holds (borrowed). */
typedef struct bl__run_vars {
    /* objects */
    bl_net *net;
    bl_optim *opt;
    bl__loader *loader;
    bl__gns *gns;
    bl__step_times *step_times;
    bl_scheduler *scheduler;          /* may be NULL */
    bl_run_result *res;               /* history and target figures */
    size_t *history_cap;
    int64_t n_train;
    /* counters */
    bl_train_state state;             /* step, epoch, epoch_progress, samples, batch, lr, wall */
    double train_time, eval_time;
    int64_t pos, epoch;
    double loss_sum;
    int64_t loss_count, point_samples;
    int64_t correct_sum;              /* appended to the run section (older snapshots: -1, not
                                         known: the next point has no train accuracy) */
    double point_time, next_eval;
    bl_eval_point last;
    bool have_last;
    double ref_loss_sum, win_loss_sum;
    int64_t ref_count, win_count, win_from, chance_run;
    bool ref_done, diverged;
    int64_t last_asked;
} bl__run_vars;

/* Serializes the run into `snap`, reusing its buffer (it grows only when the state does).
 * `tag` (may be NULL) is stored as the snapshot's tag. */
int bl__snapshot_capture(bl_ctx *ctx, const bl__run_vars *v, const char *tag, bl_snapshot *snap);
/* Restores a run from `snap` into v's objects (parameters, optimizer, loader, noise scale,
 * step times, scheduler when it is the same plugin, history) and v's counters; checks that
 * the snapshot fits the run (model, optimizer, training set) first. */
int bl__snapshot_restore(bl_ctx *ctx, const bl_snapshot *snap, bl__run_vars *v);
/* An empty snapshot whose buffer bl__snapshot_capture fills (freed with bl_snapshot_free). */
bl_snapshot *bl__snapshot_new(void);

#endif
