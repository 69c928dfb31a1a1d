/* Internal: the per-element arithmetic that the CPU and the CUDA backends must compute alike,
 * written once for both: as plain C11 for the host (tests/unit/test_kernel_math.c checks every
 * function here bit for bit against the CPU backend's kernels and bl_hash_uniform) and as
 * __host__ __device__ functions when nvcc compiles it (core/src/device/cuda/).
 *
 * Bit-exactness rests on three things, all true in both builds: no contraction of a·b + c into
 * an FMA (ISO C mode on the host, --fmad=false for the CUDA backend), IEEE-rounded division and
 * square root (nvcc's default -prec-div=true -prec-sqrt=true; no fast-math anywhere), and the
 * same order of operations (the expressions below). Reductions are not here: their order
 * differs between a CPU loop and a GPU tree, so they agree within a tolerance (docs/cuda.md).
 *
 * The CPU backend (device_cpu_vec.c, rng.c) still has its own copies of these functions,
 * vectorized in place; test_kernel_math proves the two agree, so that a change to either shows.
 */
#ifndef BATCHLAB_KERNEL_MATH_H
#define BATCHLAB_KERNEL_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define BL_HD __host__ __device__
#else
#define BL_HD
#endif

/* Counter-based uniform float in [0, 1) with 24 bits: bl_hash_uniform (core/src/base/rng.c). */
static inline BL_HD float bl__km_hash_uniform(uint64_t seed, uint64_t counter)
{
    /* splitmix64 finalizer over a combination of seed and counter */
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + counter + 0x632BE59BD9B4E019ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* Inverted dropout's mask value for element `i` of a call with (seed, counter): keep_scale
 * = 1/(1 − p) when kept, 0 when dropped. */
static inline BL_HD float bl__km_dropout_mask(uint64_t seed, uint64_t counter, int64_t i,
                                              float p, float keep_scale)
{
    return bl__km_hash_uniform(seed, counter + (uint64_t)i) >= p ? keep_scale : 0.0f;
}

/* e^x: Cody–Waite reduction, degree-6 Taylor polynomial, 2^n in the exponent bits; inputs
 * clamped to [−87, 88], 0 below −87, NaN in NaN out (fast_expf in device_cpu_vec.c). */
static inline BL_HD float bl__km_expf(float x)
{
    float xc = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;
    float t = xc * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest (|t| < 2^22) */
    float f = xc - n * 0.693359375f;
    f = f - n * -2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float r = p * scale;
    return x < -87.0f ? 0.0f : (x == x ? r : x);
}

static inline BL_HD float bl__km_tanhf(float x)
{
    float a = x < 0.0f ? -x : x;
    float e = bl__km_expf(2.0f * a);
    float big = 1.0f - 2.0f / (e + 1.0f);
    float x2 = a * a;
    float small = 62.0f / 2835.0f;
    small = small * x2 - 17.0f / 315.0f;
    small = small * x2 + 2.0f / 15.0f;
    small = small * x2 - 1.0f / 3.0f;
    small = small * x2 * a + a;
    float r = a < 0.25f ? small : big;
    return x < 0.0f ? -r : r;
}

static inline BL_HD float bl__km_sigmoidf(float x)
{
    return 1.0f / (1.0f + bl__km_expf(-x));
}

/* erfc(z) for z ≥ 0 (Numerical Recipes' Chebyshev fit). */
static inline BL_HD float bl__km_erfc_pos(float z)
{
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * bl__km_expf(p - z * z);
}

/* Φ(x), the standard normal CDF. */
static inline BL_HD float bl__km_normal_cdf(float x)
{
    float a = x < 0.0f ? -x : x;
    float half_erfc = 0.5f * bl__km_erfc_pos(a * 0.70710678118654752f);
    return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

/* Activations by number (bl_activation: 0 ReLU, 1 tanh, 2 sigmoid, 3 GELU). */
static inline BL_HD float bl__km_act_forward(int act, float x)
{
    switch (act) {
    case 0:
        return x < 0.0f ? 0.0f : x;
    case 1:
        return bl__km_tanhf(x);
    case 2:
        return bl__km_sigmoidf(x);
    default: /* GELU: x·Φ(x) */
        return x * bl__km_normal_cdf(x);
    }
}

/* dx = dy·f'(x) from the input x or the output y of forward (as the CPU kernels do). */
static inline BL_HD float bl__km_act_backward(int act, float x, float y, float dy)
{
    switch (act) {
    case 0:
        return x > 0.0f ? dy : 0.0f;
    case 1:
        return dy * (1.0f - y * y);
    case 2:
        return dy * (y * (1.0f - y));
    default: { /* Φ(x) + x·φ(x) */
        float pdf = 0.39894228040143268f * bl__km_expf(-0.5f * x * x);
        return dy * (bl__km_normal_cdf(x) + x * pdf);
    }
    }
}

/* torch.optim.SGD for one value, with the CPU kernel's branches (sgd_kernel): keep = 1 −
 * dampening; v may be NULL when mu = 0. */
static inline BL_HD void bl__km_sgd_one(float lr, float mu, float keep, bool nesterov, float wd,
                                        float g, float *v, float *w)
{
    if (mu == 0.0f) {
        if (wd == 0.0f)
            *w -= lr * g;
        else
            *w -= lr * (g + wd * *w);
    } else if (!nesterov) {
        if (wd == 0.0f && keep == 1.0f) {
            float vi = mu * *v + g;
            *v = vi;
            *w -= lr * vi;
        } else {
            float gi = g + wd * *w;
            float vi = mu * *v + keep * gi;
            *v = vi;
            *w -= lr * vi;
        }
    } else {
        float gi = g + wd * *w;
        float vi = mu * *v + keep * gi;
        *v = vi;
        *w -= lr * (gi + mu * vi);
    }
}

/* Adam's moments and direction for one value (adam_one): c1 = 1 − β1, c2 = 1 − β2,
 * inv1 = 1/bias1, inv2 = 1/bias2; w is read only when wd ≠ 0. */
static inline BL_HD void bl__km_adam_one(float b1, float b2, float c1, float c2, float inv1,
                                         float inv2, float eps, float wd, float g, float w,
                                         float *m, float *v, float *dir)
{
    float mi = b1 * *m + c1 * g;
    float vi = b2 * *v + c2 * (g * g);
    *m = mi;
    *v = vi;
    float d = (mi * inv1) / (sqrtf(vi * inv2) + eps);
    *dir = wd != 0.0f ? d + wd * w : d;
}

#endif
