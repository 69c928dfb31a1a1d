/* Internal: what the CUDA backend's files share (cuda_backend.cu: the device, memory, copies,
 * events and cuBLAS; cuda_vec.cu: elementwise kernels, reductions, losses, optimizers;
 * cuda_image.cu: im2col/col2im, max pooling, batch norm; cuda_conv.cu: the whole-batch
 * convolution; cuda_gather.cu: rows of a resident dataset gathered by index).
 *
 * Adding an operation: write the kernel and a host wrapper `bl__cu_<op>` with the signature of
 * its bl_device_ops field in one of the .cu files, declare the wrapper below, and put it in
 * cuda_ops (cuda_backend.cu). A wrapper returns at once for empty work, launches on the
 * device's stream (cu_each for one thread per element and cu_sum for a deterministic sum, in
 * cuda_common.cuh; or its own kernel between bl__cu_enter and bl__cu_launched), and never
 * waits unless its contract says so. Per-element arithmetic that must match the CPU goes in
 * device/kernel_math.h with a host test in tests/unit/test_kernel_math.c; a comparison with
 * the CPU on a GPU goes in tests/gpu/test_cuda.c.
 */
#ifndef BATCHLAB_CUDA_INTERNAL_H
#define BATCHLAB_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "batchlab/device.h"
#include "batchlab/device_backend.h"

/* Partial results of the two-pass reductions: at most this many blocks in the first pass, so
 * that the result does not depend on anything but n (deterministic from run to run). */
#define CU_REDUCE_BLOCKS 512
#define CU_THREADS 256

/* dev->impl of a CUDA device. Everything here belongs to the thread that launches kernels,
 * except copy_stream, which upload_async uses (the loader's prefetch thread). */
typedef struct cu_impl {
    int ordinal;               /* CUDA device number */
    cudaStream_t stream;       /* every kernel, cuBLAS call and synchronous copy */
    cudaStream_t copy_stream;  /* upload_async */
    cublasHandle_t blas;
    bool tf32;                 /* GEMMs may use TF32 tensor cores (BATCHLAB_CUDA_TF32=1) */
    int sm_count;              /* multiprocessors, for grid sizes */
    /* scratch on the device: reduction partials and the loss slots */
    double *partials;          /* [CU_REDUCE_BLOCKS] */
    long long *ipartials;      /* [CU_REDUCE_BLOCKS] */
    double *loss_slot;         /* [1] the summed loss of xent_forward / mse_forward */
    long long *count_slot;     /* [1] correct predictions of xent_forward; right after
                                  loss_slot (one read-back copies both) */
    /* pinned host memory the loss slots are read back into, in the same layout */
    double *host_loss;
    long long *host_count;
} cu_impl;

static inline cu_impl *cu_of(bl_device *dev)
{
    return (cu_impl *)dev->impl;
}

/* Makes the device current on the calling thread (CUDA's current device is per thread). */
void bl__cu_enter(bl_device *dev);

/* Records `err` (if not cudaSuccess) as the device's sticky fault, naming `what`; returns
 * BL_OK or the fault's code. */
int bl__cu_check(bl_device *dev, cudaError_t err, const char *what);

/* After a launch: a launch error (bad configuration, a previous asynchronous fault) becomes
 * the sticky fault. */
void bl__cu_launched(bl_device *dev, const char *kernel);

/* Blocks of CU_THREADS for n independent elements, for grid-stride loops. */
unsigned bl__cu_blocks(bl_device *dev, int64_t n);

/* A failed cuBLAS call becomes the sticky fault (BL_ENOMEM when cuBLAS could not allocate). */
void bl__cu_blas_check(bl_device *dev, cublasStatus_t st, const char *what);

/* cuda_vec.cu */
void bl__cu_axpy(bl_device *dev, int64_t n, float alpha, const float *x, float *y);
void bl__cu_scale(bl_device *dev, int64_t n, float alpha, float *x);
void bl__cu_fill(bl_device *dev, int64_t n, float value, float *x);
void bl__cu_dot(bl_device *dev, int64_t n, const float *x, const float *y, double *out);
void bl__cu_sumsq(bl_device *dev, int64_t n, const float *x, double *out);
void bl__cu_add_bias(bl_device *dev, int64_t rows, int64_t cols, const float *bias, float *y);
void bl__cu_sum_rows(bl_device *dev, int64_t rows, int64_t cols, const float *x, float beta,
                     float *out);
void bl__cu_add_channel_bias(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *bias, float *y);
void bl__cu_sum_channels(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                         const float *x, float beta, float *out);
void bl__cu_act_forward(bl_device *dev, bl_activation act, int64_t n, const float *x, float *y);
void bl__cu_act_backward(bl_device *dev, bl_activation act, int64_t n, const float *x,
                         const float *y, const float *dy, float *dx);
void bl__cu_dropout_forward(bl_device *dev, int64_t n, float p, uint64_t seed, uint64_t counter,
                            const float *x, float *mask, float *y);
void bl__cu_mul(bl_device *dev, int64_t n, const float *a, const float *b, float *out);
double bl__cu_xent_forward(bl_device *dev, int64_t rows, int64_t classes, const float *logits,
                           const int32_t *labels, float *probs, int64_t *correct);
void bl__cu_xent_backward(bl_device *dev, int64_t rows, int64_t classes, const float *probs,
                          const int32_t *labels, float scale, float *dlogits);
double bl__cu_mse_forward(bl_device *dev, int64_t n, const float *y, const float *target);
void bl__cu_mse_backward(bl_device *dev, int64_t n, const float *y, const float *target,
                         float scale, float *dy);
void bl__cu_sgd_update(bl_device *dev, int64_t n, float lr, float momentum, float dampening,
                       bool nesterov, float weight_decay, const float *grad, float *velocity,
                       float *param);
void bl__cu_adam_direction(bl_device *dev, int64_t n, float beta1, float beta2, float eps,
                           float bias1, float bias2, float weight_decay, const float *grad,
                           const float *param, float *m, float *v, float *dir);

/* cuda_image.cu */
void bl__cu_im2col(bl_device *dev, const bl_window2d *w, const float *image, float *cols);
void bl__cu_col2im(bl_device *dev, const bl_window2d *w, const float *cols, float *image);
void bl__cu_maxpool_forward(bl_device *dev, const bl_window2d *w, int64_t batch, const float *x,
                            float *y, int32_t *argmax);
void bl__cu_maxpool_backward(bl_device *dev, const bl_window2d *w, int64_t batch,
                             const float *dy, const int32_t *argmax, float *dx);
void bl__cu_bn_forward_train(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *x, const float *gamma, const float *beta, float eps,
                             float momentum, float *running_mean, float *running_var,
                             float *mean, float *invstd, float *y);
void bl__cu_bn_forward_eval(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                            const float *x, const float *gamma, const float *beta, float eps,
                            const float *running_mean, const float *running_var, float *y);
void bl__cu_bn_backward(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                        const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, float *dgamma,
                        float *dbeta);


/* cuda_conv.cu */
void bl__cu_conv2d_forward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                           int64_t batch, const float *x, const float *weight,
                           const float *bias, float *y, int64_t slots, float *scratch);
void bl__cu_conv2d_backward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                            int64_t batch, const float *x, const float *weight,
                            const float *dy, float beta, float *dweight, float *dx,
                            int64_t slots, float *scratch);

/* cuda_gather.cu */
void bl__cu_gather_rows(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_bytes,
                        const void *src, void *dst);
void bl__cu_gather_bytes(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_len,
                         const uint8_t *src, float scale, float offset, float *dst);

#endif
