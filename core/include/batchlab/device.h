/* batchlab — the device (compute backend) interface.
 *
 * A device owns memory and runs the kernels the layers and optimizers need. Layers never touch
 * device memory directly: they call these operations, so the same layer code runs on the CPU
 * (OpenBLAS) and on a GPU (CUDA + cuBLAS, loaded at run time).
 *
 * Conventions
 * - All matrices are row-major float32; pointers given to kernels are device pointers obtained
 *   from bl_device_alloc (or offsets into such blocks).
 * - Kernels are launched in order on one stream; results are visible to later kernels and to
 *   bl_device_download, which waits for them. Functions that return a host value (dot,
 *   sum of squares, loss sums) also wait.
 * - Kernels do not check their arguments beyond what the layers guarantee (they are the hot
 *   path); the layers validate shapes once, at setup, and report errors there.
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

typedef enum { BL_DEVICE_CPU = 0, BL_DEVICE_CUDA = 1 } bl_device_kind;

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
 * exist. Every pointer below is non-NULL in a conforming backend. */
typedef struct bl_device_ops {
    uint32_t size;
    const char *name; /* "cpu", "cuda" */

    /* memory */
    void *(*alloc)(bl_device *dev, size_t bytes);                   /* NULL on failure */
    void (*release)(bl_device *dev, void *ptr);                     /* NULL allowed */
    int (*upload)(bl_device *dev, void *dst, const void *src_host, size_t bytes);
    int (*download)(bl_device *dev, void *dst_host, const void *src, size_t bytes);
    void (*copy)(bl_device *dev, void *dst, const void *src, size_t bytes);
    void (*synchronize)(bl_device *dev);

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
    double (*dot)(bl_device *dev, int64_t n, const float *x, const float *y);       /* waits */
    double (*sumsq)(bl_device *dev, int64_t n, const float *x);                     /* waits */

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
     * output of forward; each activation uses whichever is cheaper). */
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
} bl_device_ops;

struct bl_device {
    const bl_device_ops *ops;  /* read-only */
    bl_device_kind kind;       /* read-only */
    int index;                 /* read-only: GPU ordinal, 0 for the CPU */
    /* Allocation accounting, maintained by bl_device_alloc/free (read-only); alloc_count is
     * the number of allocations made so far (it never decreases): */
    size_t bytes_in_use, peak_bytes, alloc_count;
    size_t budget_bytes;       /* 0 = unlimited; allocations beyond it fail with BL_ENOMEM */
    void *impl;                /* private to the backend */
    int host_threads;          /* read-only: host threads the device computes with (the CPU
                                  device's pool; 0 for a GPU, whose host cores stay free) */
};

/* Opens the CPU device. Its kernels run on `threads` threads (0 = as many as OpenBLAS is set to
 * use); threads > 0 also sets OpenBLAS's thread count. Inside the device OpenBLAS runs
 * single-threaded on the device's threads, and its setting is put back after each call.
 * On success *out is a device the caller frees with bl_device_free. */
BL_EXPORT int bl_device_cpu_open(bl_ctx *ctx, int threads, bl_device **out);

/* Opens a device by name: "cpu", "cuda" or "cuda:N". A CUDA device is loaded from
 * libbatchlab-cuda.so at run time; where there is none (no build, no driver, no GPU) this
 * returns BL_EUNSUPPORTED with a message that says which. */
BL_EXPORT int bl_device_open(bl_ctx *ctx, const char *name, bl_device **out);

/* Frees a device; every allocation made on it must have been freed first. NULL allowed. */
BL_EXPORT void bl_device_free(bl_device *dev);

/* Allocates `bytes` of device memory (64-byte aligned on the CPU). Fails with BL_ENOMEM and a
 * message giving the size, what is in use and the budget. On success *out is freed with
 * bl_device_release. Counted in bytes_in_use / peak_bytes / alloc_count. */
BL_EXPORT int bl_device_alloc(bl_ctx *ctx, bl_device *dev, size_t bytes, void **out);

/* Frees memory from bl_device_alloc; NULL allowed. `bytes` must be the size allocated. */
BL_EXPORT void bl_device_release(bl_device *dev, void *ptr, size_t bytes);

/* Host ↔ device copies; they wait for completion. */
BL_EXPORT int bl_device_upload(bl_ctx *ctx, bl_device *dev, void *dst, const void *src_host,
                               size_t bytes);
BL_EXPORT int bl_device_download(bl_ctx *ctx, bl_device *dev, void *dst_host, const void *src,
                                 size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
