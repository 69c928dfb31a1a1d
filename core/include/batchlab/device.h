/* batchlab — the device (compute backend) interface.
 *
 * A device owns memory and runs the kernels the layers and optimizers need. Layers never touch
 * device memory directly: they call these operations, so the same layer code runs on the CPU
 * (OpenBLAS) and on a backend loaded at run time (a GPU). Every device is opened through a
 * backend descriptor (batchlab/device_backend.h): the CPU's is built in, others are shared
 * objects found on the plugin search path.
 *
 * Conventions
 * - All matrices are row-major float32; pointers given to kernels are device pointers obtained
 *   from bl_device_alloc (or offsets into such blocks).
 * - Kernels are launched in order on one stream; results are visible to later kernels and to
 *   bl_device_download, which waits for them. The loss kernels (xent_forward, mse_forward)
 *   return a host value and wait; dot and sumsq do not: they write into a device-side result
 *   slot, so a step gathers its reductions and reads them back once.
 * - Kernels are void: they do not check their arguments beyond what the layers guarantee (they
 *   are the hot path; the layers validate shapes once, at setup). A backend whose kernel fails
 *   asynchronously records a sticky fault (bl_device_fault); every int-returning call
 *   (synchronize, copy, upload, download, bl_device_status) reports it from then on.
 * - Host code asks capabilities (bl_device_caps), never the kind: BL_DEVICE_CAP_HOST_ADDRESSABLE
 *   means device pointers are host pointers (the CPU); BL_DEVICE_CAP_ASYNC means copies can
 *   overlap compute (upload_async returns before the copy is done).
 * - "Accumulate" kernels add into their output (+=) where the comment says so; all others
 *   overwrite (=).
 */
#ifndef BATCHLAB_DEVICE_H
#define BATCHLAB_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_device bl_device;

typedef struct bl_device_backend bl_device_backend;

/* An opaque point in a device's stream of work (see upload_async); backend-defined. */
typedef struct bl_device_event bl_device_event;

/* Informational only: host code decides by capabilities (bl_device_caps), not by kind. */
typedef enum { BL_DEVICE_CPU = 0, BL_DEVICE_CUDA = 1, BL_DEVICE_OTHER = 2 } bl_device_kind;

/* Capability flags (bl_device.caps) */
#define BL_DEVICE_CAP_HOST_ADDRESSABLE 0x1u /* device pointers are host pointers, and device
                                               memory is the host's (the CPU): the host may read
                                               them directly; allocation does not fail before
                                               the host runs out */
#define BL_DEVICE_CAP_ASYNC 0x2u            /* upload_async overlaps compute: events matter */

typedef enum { BL_ACT_RELU = 0, BL_ACT_TANH = 1, BL_ACT_SIGMOID = 2, BL_ACT_GELU = 3 } bl_activation;

/* Geometry of a 2-D convolution or pooling window over a [C, H, W] image. */
typedef struct bl_window2d {
    int64_t channels, height, width;   /* input image */
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
    int64_t out_h, out_w;              /* derived: (H + 2·pad − kernel) / stride + 1 */
} bl_window2d;

/* Operation table of a backend. Fields are only ever appended; `size` tells a caller which
 * exist. Every pointer below is non-NULL in a conforming backend, except where its comment
 * says otherwise. */
typedef struct bl_device_ops {
    uint32_t size;
    const char *name; /* "cpu", "cuda" */

    /* memory */
    void *(*alloc)(bl_device *dev, size_t bytes);                   /* NULL on failure */
    void (*release)(bl_device *dev, void *ptr);                     /* NULL allowed */
    int (*upload)(bl_device *dev, void *dst, const void *src_host, size_t bytes);
    int (*download)(bl_device *dev, void *dst_host, const void *src, size_t bytes);
    /* device → device, in stream order; BL_OK or the sticky fault */
    int (*copy)(bl_device *dev, void *dst, const void *src, size_t bytes);
    /* waits for all queued work; BL_OK or the sticky fault */
    int (*synchronize)(bl_device *dev);

    /* BLAS-like. C[m×n] = alpha·op(A)·op(B) + beta·C, op(A) is m×k, op(B) is k×n. */
    void (*gemm)(bl_device *dev, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                 float beta, float *c, int64_t ldc);
    /* y[m or n] = alpha·op(A)·x + beta·y with A m×n. */
    void (*gemv)(bl_device *dev, bool trans_a, int64_t m, int64_t n, float alpha,
                 const float *a, int64_t lda, const float *x, float beta, float *y);
    void (*axpy)(bl_device *dev, int64_t n, float alpha, const float *x, float *y); /* y += a·x */
    void (*scale)(bl_device *dev, int64_t n, float alpha, float *x);               /* x *= a */
    void (*fill)(bl_device *dev, int64_t n, float value, float *x);
    /* Reductions into a device-side slot: *out = Σ x·y, Σ x² (out is a device pointer to one
     * double, e.g. an element of a small block from bl_device_alloc). They do not wait: read
     * the slots back with one bl_device_download after the last reduction of a step. */
    void (*dot)(bl_device *dev, int64_t n, const float *x, const float *y, double *out);
    void (*sumsq)(bl_device *dev, int64_t n, const float *x, double *out);

    /* rows: y[r][c] += bias[c] for r < rows, c < cols */
    void (*add_bias)(bl_device *dev, int64_t rows, int64_t cols, const float *bias, float *y);
    /* column sums: out[c] = beta·out[c] + Σ_r x[r][c] */
    void (*sum_rows)(bl_device *dev, int64_t rows, int64_t cols, const float *x, float beta,
                     float *out);
    /* per-channel bias for [outer, C, inner] layouts: y[o][c][i] += bias[c] */
    void (*add_channel_bias)(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *bias, float *y);
    /* out[c] = beta·out[c] + Σ_{o,i} x[o][c][i] */
    void (*sum_channels)(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                         const float *x, float beta, float *out);

    /* activations, elementwise over n values. backward: dx = dy · f'(x) (x = the input, y = the
     * output of forward; each activation uses whichever is cheaper). For BL_ACT_RELU the
     * operation may be in place: forward with y == x, backward with dx == dy (and x == y, the
     * net's in-place ReLU); ReLU's backward then reads x only for its sign. */
    void (*act_forward)(bl_device *dev, bl_activation act, int64_t n, const float *x, float *y);
    void (*act_backward)(bl_device *dev, bl_activation act, int64_t n, const float *x,
                         const float *y, const float *dy, float *dx);

    /* inverted dropout: mask[i] = (u(seed, counter+i) >= p) / (1 − p); y = x · mask */
    void (*dropout_forward)(bl_device *dev, int64_t n, float p, uint64_t seed, uint64_t counter,
                            const float *x, float *mask, float *y);
    void (*mul)(bl_device *dev, int64_t n, const float *a, const float *b, float *out); /* a·b */

    /* im2col for one image [C,H,W] → cols [C·kh·kw, out_h·out_w]; col2im accumulates (+=)
     * cols back into an image that the caller zeroed. */
    void (*im2col)(bl_device *dev, const bl_window2d *w, const float *image, float *cols);
    void (*col2im)(bl_device *dev, const bl_window2d *w, const float *cols, float *image);

    /* max pooling over `batch` images; argmax (int32, same size as y) records the winner */
    void (*maxpool_forward)(bl_device *dev, const bl_window2d *w, int64_t batch, const float *x,
                            float *y, int32_t *argmax);
    /* dx is overwritten: zeroed, then dy scattered to the winners */
    void (*maxpool_backward)(bl_device *dev, const bl_window2d *w, int64_t batch,
                             const float *dy, const int32_t *argmax, float *dx);

    /* Batch normalization over a [outer, C, inner] block, statistics per channel over
     * outer·inner values. Training: computes the batch mean and 1/sqrt(var + eps) (biased var)
     * into mean/invstd, writes y, and updates running stats with `momentum` as PyTorch does
     * (running = (1−m)·running + m·batch, running var with the unbiased variance). */
    void (*bn_forward_train)(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *x, const float *gamma, const float *beta, float eps,
                             float momentum, float *running_mean, float *running_var,
                             float *mean, float *invstd, float *y);
    void (*bn_forward_eval)(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                            const float *x, const float *gamma, const float *beta, float eps,
                            const float *running_mean, const float *running_var, float *y);
    /* dx overwritten; dgamma, dbeta accumulate (+=). dx may be NULL: then only dgamma and dbeta
     * are computed (the first trainable layer of a net gets no input gradient). */
    void (*bn_backward)(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                        const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, float *dgamma,
                        float *dbeta);

    /* Softmax cross-entropy on logits [rows, classes] with int32 labels. Writes the
     * probabilities, returns the summed loss (waits) and adds the number of rows whose argmax
     * equals the label to *correct. */
    double (*xent_forward)(bl_device *dev, int64_t rows, int64_t classes, const float *logits,
                           const int32_t *labels, float *probs, int64_t *correct);
    /* dlogits = (probs − onehot(label)) · scale */
    void (*xent_backward)(bl_device *dev, int64_t rows, int64_t classes, const float *probs,
                          const int32_t *labels, float scale, float *dlogits);
    /* Squared error: returns Σ over n values of (y − t)² (waits); backward writes
     * dy = (y − t) · scale (the caller folds the 2/n of a mean into scale). */
    double (*mse_forward)(bl_device *dev, int64_t n, const float *y, const float *target);
    void (*mse_backward)(bl_device *dev, int64_t n, const float *y, const float *target,
                         float scale, float *dy);

    /* Optimizer updates over n values (see optim.h for the formulas). */
    void (*sgd_update)(bl_device *dev, int64_t n, float lr, float momentum, float dampening,
                       bool nesterov, float weight_decay, const float *grad, float *velocity,
                       float *param);
    /* Adam moments and direction: m, v updated; dir = m̂ / (sqrt(v̂) + eps) + wd·param
     * (wd = 0 for Adam's L2 variant when weight decay was folded into grad). bias1 = 1 − β1^t,
     * bias2 = 1 − β2^t. */
    void (*adam_direction)(bl_device *dev, int64_t n, float beta1, float beta2, float eps,
                           float bias1, float bias2, float weight_decay, const float *grad,
                           const float *param, float *m, float *v, float *dir);

    /* Memory the device has: free and total bytes (the host's RAM on the CPU). */
    int (*memory)(bl_device *dev, size_t *free_bytes, size_t *total_bytes);
    /* Staging memory on the host for fast and asynchronous copies (pinned on a GPU; aligned
     * malloc on the CPU). NULL on failure; host_free accepts NULL. */
    void *(*host_alloc)(bl_device *dev, size_t bytes);
    void (*host_free)(bl_device *dev, void *ptr);
    /* Starts a host → device copy from staging memory (host_alloc) and records `ev` (may be
     * NULL) when it completes; src_host must stay untouched until then. May be called from a
     * thread other than the one that launches kernels (the loader's prefetch thread). Without
     * BL_DEVICE_CAP_ASYNC it completes before returning. */
    int (*upload_async)(bl_device *dev, void *dst, const void *src_host, size_t bytes,
                        bl_device_event *ev);
    /* Events: event_new gives one that is complete until first recorded; event_wait makes the
     * host and the work launched after it wait until `ev` completes. */
    int (*event_new)(bl_device *dev, bl_device_event **out);
    void (*event_free)(bl_device *dev, bl_device_event *ev);
    int (*event_wait)(bl_device *dev, bl_device_event *ev);

    /* Appended in issue 13: a convolution layer's products over a whole batch in one call, so
     * that a backend can split the work across images instead of launching per image. With w
     * the window (w->channels = C input channels), K = C·kernel_h·kernel_w, P = out_h·out_w,
     * x [batch, C, H, W], y and dy [batch, O, P], weight and dweight [O, K], and
     * cols(n) = im2col(x[n]) [K, P] exactly as the im2col op defines it:
     *   conv2d_forward:  y[n] = weight · cols(n), then y[n][o][p] += bias[o] when bias is not
     *                    NULL (overwrite, for every n < batch);
     *   conv2d_backward: dweight = beta·dweight + Σ_n dy[n] · cols(n)ᵀ (beta = 0 ignores its
     *                    contents); when dx is not NULL, dx[n] = col2im(weightᵀ · dy[n])
     *                    (overwrite: dx need not be zeroed; windows may overlap).
     * scratch holds slots·(K·P + O·K) floats (slots ≥ 1, given by the caller; scratch need not
     * hold anything on entry and is garbage afterwards). The backend may use all of it in any
     * way; the CPU splits the batch into `slots` fixed ranges of images, each with one column
     * matrix and one partial weight gradient, so its results depend on slots and never on its
     * thread count. A GPU may instead process up to `slots` images at a time (a batched
     * im2col into the scratch and strided-batched products). Unlike the ops above, these two
     * may be NULL (both or neither): the conv2d layer then runs im2col and gemm per image. */
    void (*conv2d_forward)(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                           int64_t batch, const float *x, const float *weight,
                           const float *bias, float *y, int64_t slots, float *scratch);
    void (*conv2d_backward)(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                            int64_t batch, const float *x, const float *weight,
                            const float *dy, float beta, float *dweight, float *dx,
                            int64_t slots, float *scratch);

    /* Appended in issue 11: batches gathered on the device from a dataset kept in its memory
     * (the batch loader's resident mode, docs/cuda.md). idx holds n row numbers in device
     * memory, each in range (the caller checks); src and dst are device memory and do not
     * overlap. Asynchronous like every kernel: ordered before the operations called after it.
     *   gather_rows:  dst row i = src row idx[i], rows of row_bytes bytes (a plain copy: labels,
     *                 float inputs or targets);
     *   gather_bytes: dst[i·row_len + j] = (float)src[idx[i]·row_len + j] · scale + offset,
     *                 rounded as that float expression without contraction, as datasets turn
     *                 stored bytes into floats on the host (bl_dataset_ops.gather_bytes).
     * Both non-NULL in a conforming backend. */
    void (*gather_rows)(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_bytes,
                        const void *src, void *dst);
    void (*gather_bytes)(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_len,
                         const uint8_t *src, float scale, float offset, float *dst);

    /* Appended in issue 13 (second part): host work done in the gaps between kernels, for a
     * device that computes with every host core (the CPU's pool), where a thread of its own
     * would take a core from the kernels. host_background starts fn over [0, n) in pieces of
     * `grain` units and returns at once; the pieces run in index order, never two at a time
     * (fn need not be reentrant), each on whichever of the device's host threads would
     * otherwise wait, so a piece should take a few microseconds at most. host_background_wait
     * runs the pieces still left on the caller and returns when all are done. One background
     * work at a time, started and waited for by the thread that launches kernels; fn and what
     * it touches must stay valid until the wait returns. Both may be NULL (both or neither):
     * the caller then does the work itself. */
    void (*host_background)(bl_device *dev, void (*fn)(void *arg, int64_t begin, int64_t end),
                            void *arg, int64_t n, int64_t grain);
    void (*host_background_wait)(bl_device *dev);
} bl_device_ops;

/* A device. The backend's open fills ops, kind, index, impl, host_threads and caps; the host
 * fills backend and keeps the accounting; everything else is private. */
struct bl_device {
    const bl_device_ops *ops;  /* read-only */
    bl_device_kind kind;       /* read-only, informational (see bl_device_kind) */
    int index;                 /* read-only: device ordinal, 0 for the CPU */
    /* Allocation accounting, maintained by bl_device_alloc/free (read-only); alloc_count is
     * the number of allocations made so far (it never decreases): */
    size_t bytes_in_use, peak_bytes, alloc_count;
    size_t budget_bytes;       /* 0 = unlimited; allocations beyond it fail with BL_ENOMEM */
    void *impl;                /* private to the backend */
    int host_threads;          /* read-only: host threads the device computes with (the CPU
                                  device's pool; 0 for a GPU, whose host cores stay free) */
    uint32_t caps;             /* read-only: BL_DEVICE_CAP_* */
    const bl_device_backend *backend; /* read-only: the descriptor that opened it */
    /* private to the host (device.c): */
    void *lib;                 /* the backend's shared object (dlclose'd by bl_device_free) */
    struct bl_device_watch *watches; /* active bl_device_watch scopes, innermost first */
    int fault;                 /* sticky: 0, or the first fault's BL_E… code */
    char fault_msg[200];       /* its message */
};

/* A measurement scope over a device's allocations, so that a caller can measure (and limit)
 * what one piece of work allocates without touching the device's own peak_bytes and
 * budget_bytes, which other users of the device read. */
typedef struct bl_device_watch {
    size_t base;  /* read-only: bytes_in_use when the watch began */
    size_t peak;  /* read-only: the highest bytes_in_use since */
    size_t limit; /* 0 = none; else allocations that would take bytes_in_use beyond it fail
                     with BL_ENOMEM (as budget_bytes does) */
    unsigned flags; /* read-only: BL_DEVICE_WATCH_* */
    struct bl_device_watch *next; /* private */
} bl_device_watch;

/* Allocations made while the watch is active do not raise the device's peak_bytes (only the
 * watch's peak): for trial runs on a device that someone else owns. */
#define BL_DEVICE_WATCH_PRIVATE 0x1u

/* Opens the CPU device (the built-in "cpu" backend, through its descriptor like any other).
 * Its kernels run on `threads` threads (0 = as many as OpenBLAS was set to use before the
 * first CPU device opened). A device with more than one thread runs OpenBLAS single-threaded
 * inside its own pool, so opening it sets OpenBLAS's process-wide thread count to 1, once,
 * at open; it is never changed around a call. A program that sets OpenBLAS's count itself
 * while such a device is open should set it back to 1 before the device computes again.
 * On success *out is a device the caller frees with bl_device_free. */
BL_EXPORT int bl_device_cpu_open(bl_ctx *ctx, int threads, bl_device **out);

/* Opens a device by name: "<backend>" or "<backend>:N" (device N; default 0). "cpu" is built
 * in; any other backend is loaded from libbatchlab-<backend>.so on the plugin search path
 * (BATCHLAB_PLUGIN_PATH, the build tree's plugin directory, the install prefix's). Fails with
 * BL_EUNSUPPORTED when the file is not there (the message lists every file tried and what to
 * do), when its probe says the backend cannot run here (the message gives its reason), or
 * when N is beyond its count; with BL_EPLUGIN when the file is no backend or was built for
 * another ABI (the message gives both versions). `threads` is passed to the backend's open
 * (bl_device_open uses 0). On success *out is freed with bl_device_free. */
BL_EXPORT int bl_device_open(bl_ctx *ctx, const char *name, bl_device **out);
BL_EXPORT int bl_device_open_threads(bl_ctx *ctx, const char *name, int threads,
                                     bl_device **out);

/* Frees a device through its backend's destroy, then drops the host's reference to the
 * backend's shared object; every allocation made on it must have been freed first. NULL
 * allowed. */
BL_EXPORT void bl_device_free(bl_device *dev);

/* The device's BL_DEVICE_CAP_* flags (0 for NULL). */
BL_EXPORT uint32_t bl_device_caps(const bl_device *dev);

/* Free and total device memory in bytes (either pointer may be NULL). */
BL_EXPORT int bl_device_memory(bl_ctx *ctx, bl_device *dev, size_t *free_bytes,
                               size_t *total_bytes);

/* BL_OK, or the device's sticky fault (the first asynchronous failure, see bl_device_fault)
 * with its message in ctx. */
BL_EXPORT int bl_device_status(bl_ctx *ctx, const bl_device *dev);

/* Waits for all work queued on the device; BL_OK or the sticky fault. */
BL_EXPORT int bl_device_synchronize(bl_ctx *ctx, bl_device *dev);

/* Allocates `bytes` of device memory (64-byte aligned on the CPU). Fails with BL_ENOMEM and a
 * message giving the size, what is in use and the budget (or an active watch's limit). On
 * success *out is freed with bl_device_release. Counted in bytes_in_use / peak_bytes /
 * alloc_count and in every active watch. */
BL_EXPORT int bl_device_alloc(bl_ctx *ctx, bl_device *dev, size_t bytes, void **out);

/* Frees memory from bl_device_alloc; NULL allowed. `bytes` must be the size allocated. */
BL_EXPORT void bl_device_release(bl_device *dev, void *ptr, size_t bytes);

/* Starts watching the device's allocations: w->base = w->peak = bytes_in_use, w->limit =
 * base + limit_bytes (0 = no limit), `flags` BL_DEVICE_WATCH_* (0 = none). Watches nest; end
 * them in reverse order with bl_device_watch_end, after which w->peak holds the highest use
 * seen. Neither writes the device's budget_bytes; with BL_DEVICE_WATCH_PRIVATE its peak_bytes
 * is not raised either. Like the rest of the accounting, not thread-safe. */
BL_EXPORT void bl_device_watch_begin(bl_device *dev, bl_device_watch *w, size_t limit_bytes,
                                     unsigned flags);
BL_EXPORT void bl_device_watch_end(bl_device *dev, bl_device_watch *w);

/* Host ↔ device copies; they wait for completion. BL_OK, or the error (the sticky fault if
 * there is one). */
BL_EXPORT int bl_device_upload(bl_ctx *ctx, bl_device *dev, void *dst, const void *src_host,
                               size_t bytes);
BL_EXPORT int bl_device_download(bl_ctx *ctx, bl_device *dev, void *dst_host, const void *src,
                                 size_t bytes);

/* Staging memory for uploads (see bl_device_ops.host_alloc). *out is freed with
 * bl_device_host_free (NULL allowed). */
BL_EXPORT int bl_device_host_alloc(bl_ctx *ctx, bl_device *dev, size_t bytes, void **out);
BL_EXPORT void bl_device_host_free(bl_device *dev, void *ptr);

/* An asynchronous upload from staging memory that records `ev` (may be NULL) when done, and
 * the events to wait for it (see bl_device_ops). bl_device_event_new's *out is freed with
 * bl_device_event_free (NULL allowed). */
BL_EXPORT int bl_device_upload_async(bl_ctx *ctx, bl_device *dev, void *dst,
                                     const void *src_host, size_t bytes, bl_device_event *ev);
BL_EXPORT int bl_device_event_new(bl_ctx *ctx, bl_device *dev, bl_device_event **out);
BL_EXPORT void bl_device_event_free(bl_device *dev, bl_device_event *ev);
BL_EXPORT int bl_device_event_wait(bl_ctx *ctx, bl_device *dev, bl_device_event *ev);

#ifdef __cplusplus
}
#endif
#endif
