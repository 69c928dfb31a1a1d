/* Internal: what the CPU backend's files (device_cpu.c, device_cpu_vec.c) share. */
#ifndef BATCHLAB_DEVICE_CPU_SHARED_H
#define BATCHLAB_DEVICE_CPU_SHARED_H

#include <stdbool.h>

#include "batchlab/device.h"
#include "device/cpu/cpu_pool.h"

/* A buffer a product needs for a moment, grown to the largest size asked (device_cpu.c,
 * scratch_floats), so that no step allocates once the shapes are known. */
typedef struct cpu_scratch {
    float *p;
    size_t floats;
} cpu_scratch;

/* dev->impl of a CPU device */
typedef struct cpu_impl {
    bl__pool *pool;     /* NULL: single-threaded */
    bool small_gemm;    /* the AVX2/FMA small-batch kernels can run here */
    bool wide;          /* ... and their AVX-512 forms (unless BATCHLAB_CPU_AVX512=0) */
    cpu_scratch pad;    /* gemm_padded's rows (≤ PAD_MAX_ROWS rows) */
    cpu_scratch ksplit; /* gemm_ksplit's partial gradients */
} cpu_impl;

static inline bl__pool *bl__cpu_pool(bl_device *dev)
{
    return ((cpu_impl *)dev->impl)->pool;
}

/* Hot kernels get an AVX2 clone next to the baseline one, picked when the library loads. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define BL__HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BL__HOT
#endif

/* The vector kernels (device_cpu_vec.c); signatures are those of bl_device_ops. */
void bl__cpu_axpy(bl_device *dev, int64_t n, float alpha, const float *x, float *y);
void bl__cpu_scale(bl_device *dev, int64_t n, float alpha, float *x);
void bl__cpu_fill(bl_device *dev, int64_t n, float value, float *x);
void bl__cpu_dot(bl_device *dev, int64_t n, const float *x, const float *y, double *out);
void bl__cpu_sumsq(bl_device *dev, int64_t n, const float *x, double *out);
void bl__cpu_add_bias(bl_device *dev, int64_t rows, int64_t cols, const float *bias, float *y);
void bl__cpu_sum_rows(bl_device *dev, int64_t rows, int64_t cols, const float *x, float beta,
                      float *out);
void bl__cpu_add_channel_bias(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                              const float *bias, float *y);
void bl__cpu_sum_channels(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                          const float *x, float beta, float *out);
void bl__cpu_act_forward(bl_device *dev, bl_activation act, int64_t n, const float *x, float *y);
void bl__cpu_act_backward(bl_device *dev, bl_activation act, int64_t n, const float *x,
                          const float *y, const float *dy, float *dx);
void bl__cpu_dropout_forward(bl_device *dev, int64_t n, float p, uint64_t seed,
                             uint64_t counter, const float *x, float *mask, float *y);
void bl__cpu_mul(bl_device *dev, int64_t n, const float *a, const float *b, float *out);
double bl__cpu_xent_forward(bl_device *dev, int64_t rows, int64_t classes, const float *logits,
                            const int32_t *labels, float *probs, int64_t *correct);
void bl__cpu_xent_backward(bl_device *dev, int64_t rows, int64_t classes, const float *probs,
                           const int32_t *labels, float scale, float *dlogits);
double bl__cpu_mse_forward(bl_device *dev, int64_t n, const float *y, const float *target);
void bl__cpu_mse_backward(bl_device *dev, int64_t n, const float *y, const float *target,
                          float scale, float *dy);
void bl__cpu_sgd_update(bl_device *dev, int64_t n, float lr, float momentum, float dampening,
                        bool nesterov, float weight_decay, const float *grad, float *velocity,
                        float *param);
void bl__cpu_adam_direction(bl_device *dev, int64_t n, float beta1, float beta2, float eps,
                            float bias1, float bias2, float weight_decay, const float *grad,
                            const float *param, float *m, float *v, float *dir);

#endif
