/* Internal: the per-element arithmetic that the CPU and the CUDA backends must compute alike,
 * written once for both: as plain C11 for the host (tests/unit/test_kernel_math.c checks every
 * function here bit for bit against the CPU backend's kernels and bl_hash_uniform) and as
 * __host__ __device__ functions when nvcc compiles it (core/src/device/cuda/). It holds the
 * arithmetic (RNG, exp-based activations, optimizer updates) and, for the image kernels, what
 * one GPU thread computes for one output element (its index arithmetic included).
 *
 * Bit-exactness rests on three things, all true in both builds: no contraction of a·b + c into
 * an FMA (ISO C mode on the host, --fmad=false for the CUDA backend), IEEE-rounded division and
 * square root (nvcc's default -prec-div=true -prec-sqrt=true; no fast-math anywhere), and the
 * same order of operations (the expressions below). Reductions are not here: their order
 * differs between a CPU loop and a GPU tree, so they agree within a tolerance (docs/cuda.md).
 *
 * The CPU backend's activation and softmax loops (device_cpu_vec.c) and its byte gather
 * (device_cpu_gather.c) call the functions here; its SGD/Adam loops and bl_hash_uniform
 * (rng.c) are spelled out for vectorization and test_kernel_math proves they agree with these,
 * so that a change to either shows.
 */
#ifndef BATCHLAB_KERNEL_MATH_H
#define BATCHLAB_KERNEL_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "batchlab/device.h"

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

/* A stored byte as the float a dataset gives for it: a multiply, then an add (gather_bytes;
 * the dataset plugins round them the same way). */
static inline BL_HD float bl__km_byte_to_float(uint8_t b, float scale, float offset)
{
    return (float)b * scale + offset;
}

/* Inverted dropout's mask value for element `i` of a call with (seed, counter): keep_scale
 * = 1/(1 − p) when kept, 0 when dropped. */
static inline BL_HD float bl__km_dropout_mask(uint64_t seed, uint64_t counter, int64_t i,
                                              float p, float keep_scale)
{
    return bl__km_hash_uniform(seed, counter + (uint64_t)i) >= p ? keep_scale : 0.0f;
}

/* e^x: Cody–Waite reduction, degree-6 Taylor polynomial, 2^n in the exponent bits; inputs
 * clamped to [−87, 88], 0 below −87, NaN in NaN out; the
 * expression is written so that the CPU's loops calling it vectorize. */
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

/* A momentum buffer's value, stored as 0 when it is below the smallest normal float (a
 * parameter whose gradient stays 0, a dead ReLU's, decays its velocity into the subnormals
 * after ~800 steps at momentum 0.9, and on x86 each operation on a subnormal costs a microcode
 * assist of ~100 cycles: LeNet's SGD pass in bench_conv took 90 µs a step instead of 10). What
 * is dropped moves a parameter by less than lr·2⁻¹²⁶. */
static inline BL_HD float bl__km_flush_subnormal(float v)
{
    return fabsf(v) < 1.17549435e-38f ? 0.0f : v; /* FLT_MIN */
}

/* torch.optim.SGD for one value, with the CPU kernel's branches (sgd_kernel): keep = 1 −
 * dampening; v may be NULL when mu = 0; the new velocity goes through
 * bl__km_flush_subnormal before it is used. */
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
            float vi = bl__km_flush_subnormal(mu * *v + g);
            *v = vi;
            *w -= lr * vi;
        } else {
            float gi = g + wd * *w;
            float vi = bl__km_flush_subnormal(mu * *v + keep * gi);
            *v = vi;
            *w -= lr * vi;
        }
    } else {
        float gi = g + wd * *w;
        float vi = bl__km_flush_subnormal(mu * *v + keep * gi);
        *v = vi;
        *w -= lr * (gi + mu * vi);
    }
}

/* Adam's moments and direction for one value (the CPU kernel's scalar form): c1 = 1 − β1,
 * c2 = 1 − β2, inv1 = 1/bias1, inv2 = 1/bias2; w is used only when wd ≠ 0. The new moments go
 * through bl__km_flush_subnormal, as SGD's velocity does: a parameter whose gradient stays 0
 * decays its first moment into the subnormals after ~800 steps at β1 = 0.9. */
static inline BL_HD void bl__km_adam_one(float b1, float b2, float c1, float c2, float inv1,
                                         float inv2, float eps, float wd, float g, float w,
                                         float *m, float *v, float *dir)
{
    float mi = bl__km_flush_subnormal(b1 * *m + c1 * g);
    float vi = bl__km_flush_subnormal(b2 * *v + c2 * (g * g));
    *m = mi;
    *v = vi;
    float d = (mi * inv1) / (sqrtf(vi * inv2) + eps);
    *dir = wd != 0.0f ? d + wd * w : d;
}

/* ---- image kernels, one output element at a time -------------------------------------------
 * The CPU walks images in loops; a GPU thread computes one element. These functions are that
 * element, written to give the CPU loops' bits (same expressions, same order of additions), so
 * the index arithmetic of the CUDA kernels is tested on the host (test_kernel_math.c). */

/* im2col: element idx of cols [C·kh·kw, OH·OW]: row = (c·kh + ki)·kw + kj, col = oh·OW + ow
 * is image[c][oh·sh − ph + ki][ow·sw − pw + kj], 0 in the padding. */
static inline BL_HD float bl__km_im2col_at(const bl_window2d *w, const float *image, int64_t idx)
{
    int64_t ohw = w->out_h * w->out_w;
    int64_t row = idx / ohw, col = idx % ohw;
    int64_t kj = row % w->kernel_w, ki = (row / w->kernel_w) % w->kernel_h;
    int64_t c = row / (w->kernel_w * w->kernel_h);
    int64_t oh = col / w->out_w, ow = col % w->out_w;
    int64_t ih = oh * w->stride_h - w->pad_h + ki, iw = ow * w->stride_w - w->pad_w + kj;
    return ih >= 0 && ih < w->height && iw >= 0 && iw < w->width
               ? image[(c * w->height + ih) * w->width + iw]
               : 0.0f;
}

/* col2im: image element idx of [C, H, W] (its value `acc` before) plus every cols entry
 * im2col copied from there, added in the CPU's order (ki, then kj; each pair reaches a pixel
 * at most once). */
static inline BL_HD float bl__km_col2im_at(const bl_window2d *w, const float *cols, float acc,
                                           int64_t idx)
{
    int64_t iw = idx % w->width, ih = (idx / w->width) % w->height;
    int64_t c = idx / (w->width * w->height);
    int64_t ohw = w->out_h * w->out_w;
    for (int64_t ki = 0; ki < w->kernel_h; ki++) {
        int64_t th = ih + w->pad_h - ki; /* = oh·sh */
        if (th < 0 || th % w->stride_h != 0 || th / w->stride_h >= w->out_h)
            continue;
        int64_t oh = th / w->stride_h;
        for (int64_t kj = 0; kj < w->kernel_w; kj++) {
            int64_t tw = iw + w->pad_w - kj;
            if (tw < 0 || tw % w->stride_w != 0 || tw / w->stride_w >= w->out_w)
                continue;
            int64_t row = (c * w->kernel_h + ki) * w->kernel_w + kj;
            acc += cols[row * ohw + oh * w->out_w + tw / w->stride_w];
        }
    }
    return acc;
}

/* max pooling: output element idx of [planes, OH, OW] over x [planes, H, W]; *arg gets the
 * winner's index in its [H, W] plane (the first maximum; NaN wins; −1 and −inf for a window
 * entirely in the padding). */
static inline BL_HD float bl__km_maxpool_at(const bl_window2d *w, const float *x, int64_t idx,
                                            int32_t *arg)
{
    int64_t H = w->height, W = w->width, ohw = w->out_h * w->out_w;
    int64_t p = idx / ohw, o = idx % ohw, oh = o / w->out_w, ow = o % w->out_w;
    const float *in = x + p * H * W;
    int64_t h0 = oh * w->stride_h - w->pad_h, w0 = ow * w->stride_w - w->pad_w;
    int64_t hs = h0 < 0 ? 0 : h0, he = h0 + w->kernel_h < H ? h0 + w->kernel_h : H;
    int64_t ws = w0 < 0 ? 0 : w0, we = w0 + w->kernel_w < W ? w0 + w->kernel_w : W;
    if (hs >= he || ws >= we) {
        *arg = -1;
        return -INFINITY;
    }
    int64_t best_i = hs * W + ws;
    float best = in[best_i];
    for (int64_t ih = hs; ih < he; ih++)
        for (int64_t iw = ws; iw < we; iw++) {
            float v = in[ih * W + iw];
            if (v > best || isnan(v)) {
                best = v;
                best_i = ih * W + iw;
            }
        }
    *arg = (int32_t)best_i;
    return best;
}

/* The first and last output index (inclusive, within [0, out)) whose window
 * [o·stride − pad, o·stride − pad + kernel) contains input index i; first > last when none. */
static inline BL_HD void bl__km_windows_of(int64_t i, int64_t kernel, int64_t stride,
                                           int64_t pad, int64_t out, int64_t *first,
                                           int64_t *last)
{
    int64_t lo = i + pad - kernel + 1; /* o·stride ≥ lo */
    *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    int64_t hi = (i + pad) / stride;   /* i + pad ≥ 0 */
    *last = hi < out - 1 ? hi : out - 1;
}

/* max-pool backward: input element idx of [planes, H, W] = the sum of dy over the outputs whose
 * winner it is, in output order (the CPU zeroes dx and adds in output order). */
static inline BL_HD float bl__km_maxpool_grad_at(const bl_window2d *w, const float *dy,
                                                 const int32_t *argmax, int64_t idx)
{
    int64_t H = w->height, W = w->width, ohw = w->out_h * w->out_w;
    int64_t p = idx / (H * W), at = idx % (H * W), ih = at / W, iw = at % W;
    int64_t oh0, oh1, ow0, ow1;
    bl__km_windows_of(ih, w->kernel_h, w->stride_h, w->pad_h, w->out_h, &oh0, &oh1);
    bl__km_windows_of(iw, w->kernel_w, w->stride_w, w->pad_w, w->out_w, &ow0, &ow1);
    const float *g = dy + p * ohw;
    const int32_t *arg = argmax + p * ohw;
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; oh++)
        for (int64_t ow = ow0; ow <= ow1; ow++) {
            int64_t o = oh * w->out_w + ow;
            if (arg[o] == at)
                acc += g[o];
        }
    return acc;
}

/* ---- per-element pieces of the losses and batch norm ------------------------------------- */

/* dlogits[i] of [rows, classes] = (probs − onehot(label))·scale; a label out of range has no
 * one-hot entry. */
static inline BL_HD float bl__km_xent_grad_at(int64_t classes, const float *probs,
                                              const int32_t *labels, float scale, int64_t i)
{
    int64_t r = i / classes, c = i % classes;
    int32_t label = labels[r];
    return label >= 0 && label < classes && c == label ? (probs[i] - 1.0f) * scale
                                                       : probs[i] * scale;
}

/* Batch norm in evaluation, element i of [outer, C, inner]:
 * (x − running_mean)·(float)(gamma / sqrt(running_var + eps)) + beta, the factor in double. */
static inline BL_HD float bl__km_bn_eval_at(int64_t channels, int64_t inner, const float *x,
                                            const float *gamma, const float *beta,
                                            const float *rm, const float *rv, float eps,
                                            int64_t i)
{
    int64_t c = (i / inner) % channels;
    float a = (float)(gamma[c] / sqrt((double)rv[c] + (double)eps));
    return (x[i] - rm[c]) * a + beta[c];
}

#endif
