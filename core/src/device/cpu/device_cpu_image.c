/* CPU kernels for images and normalization: max pooling and batch normalization
 * (im2col/col2im are in cpu_conv.c).
 *
 * Wired into the CPU backend's bl_device_ops by device_cpu.c; the contracts are the comments in
 * batchlab/device.h. Notes on choices those comments leave open:
 *
 * - maxpool argmax: the index of the winner inside its input *plane* (ih·W + iw, one [H, W]
 *   channel of one image), not inside the whole image or batch. A window's first maximum wins
 *   ties; NaN propagates (as in PyTorch). A window that lies entirely in the padding (only
 *   possible when pad ≥ kernel) yields y = −inf and argmax = −1, which backward skips. Both
 *   directions split the planes over the device's threads; the common 2×2 window with stride 2
 *   has its own loop that the compiler vectorizes (same winners as the general loop).
 * - batch norm: statistics accumulate in double; the variance is two-pass (Σ(x − mean)²), so a
 *   large mean costs no precision. When a channel has a single value (outer·inner = 1) the
 *   unbiased variance is undefined: the running mean is updated and the running variance is
 *   left as it was.
 *
 * Loops are written so that GCC vectorizes them at -O2: contiguous inner loops, reductions
 * split over eight independent double lanes (no reassociation needed), and for inner = 1
 * ([batch, features] layouts) loops that run across channels instead of down a column.
 */
#include "device/cpu/device_cpu.h"

#include <math.h>
#include <string.h>

#include "device/cpu/device_cpu_shared.h"

/* Input values per chunk below which a max-pool runs on the calling thread alone. */
#define POOL_GRAIN 16384

/* im2col and col2im are in cpu_conv.c, beside the batched convolution that uses them. */

/* ---- max pooling -------------------------------------------------------------------------- */

/* Whether v wins over the best so far: larger, or NaN (the last NaN of a window wins, so NaN
 * propagates). Written without isnan so that the 2×2 loop below vectorizes. */
#define POOL_WINS(v, best) ((v) > (best) || (v) != (v))

/* One output row of the common 2×2 window with stride 2 and no padding, from input rows r0 and
 * r1 (r0 starts at index `base` of its plane of width W). Same winner as the general loop: the
 * first maximum in the order (0,0), (0,1), (1,0), (1,1), or the last NaN. */
BL__HOT __attribute__((optimize("O3"))) static void
pool2_row(const float *restrict r0, const float *restrict r1, int64_t n, int32_t base, int32_t W,
          float *restrict out, int32_t *restrict arg)
{
    for (int64_t ow = 0; ow < n; ow++) {
        float best = r0[2 * ow], v;
        int32_t at = 0;
        v = r0[2 * ow + 1];
        at = POOL_WINS(v, best) ? 1 : at;
        best = POOL_WINS(v, best) ? v : best;
        v = r1[2 * ow];
        at = POOL_WINS(v, best) ? W : at;
        best = POOL_WINS(v, best) ? v : best;
        v = r1[2 * ow + 1];
        at = POOL_WINS(v, best) ? W + 1 : at;
        best = POOL_WINS(v, best) ? v : best;
        out[ow] = best;
        arg[ow] = base + 2 * (int32_t)ow + at;
    }
}

/* Backward of one output row of the 2×2 path: each input of the rows r0, r1 (the first 2·n
 * columns) belongs to exactly one window, so it gets that window's gradient when it won and 0
 * otherwise, written without zeroing first. 0 + g, not g: the same bits as zeroing and adding
 * (−0 becomes +0). */
BL__HOT __attribute__((optimize("O3"))) static void
unpool2_row(const float *restrict g, const int32_t *restrict arg, int64_t n, int32_t base,
            int32_t W, float *restrict d0, float *restrict d1)
{
    for (int64_t ow = 0; ow < n; ow++) {
        const int32_t at = arg[ow] - base - 2 * (int32_t)ow; /* 0, 1, W or W + 1 */
        const float v = 0.0f + g[ow];
        d0[2 * ow] = at == 0 ? v : 0.0f;
        d0[2 * ow + 1] = at == 1 ? v : 0.0f;
        d1[2 * ow] = at == W ? v : 0.0f;
        d1[2 * ow + 1] = at == W + 1 ? v : 0.0f;
    }
}

/* One output row of the 2×2 path, forward (pool2_row) and backward (unpool2_row). */
typedef void (*pool2_fn)(const float *, const float *, int64_t, int32_t, int32_t, float *,
                         int32_t *);
typedef void (*unpool2_fn)(const float *, const int32_t *, int64_t, int32_t, int32_t, float *,
                           float *);

#if defined(__x86_64__) && defined(__GNUC__)

#include "device/cpu/cpu_simd.h"

/* The even and the odd floats of src[0..2m) (m ≤ 8; the rest read as +0, never loaded). */
TARGET static inline void load_pairs(const float *src, int64_t m, __m256 *even, __m256 *odd)
{
    __m256 a, b;
    if (m >= 8) {
        a = _mm256_loadu_ps(src);
        b = _mm256_loadu_ps(src + 8);
    } else {
        a = _mm256_maskload_ps(src, lanes_below(2 * m));
        b = _mm256_maskload_ps(src + 8, lanes_below(2 * m - 8));
    }
    /* per 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6, then the middle quarters swapped */
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* pool2_row with AVX2, eight outputs at a time and a masked last group (rows of 5 or 14
 * outputs, LeNet's, have no scalar tail): the same comparisons, so the same winners. */
TARGET static void pool2_row_avx2(const float *r0, const float *r1, int64_t n, int32_t base,
                                  int32_t W, float *out, int32_t *arg)
{
    const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i at01 = _mm256_set1_epi32(1), at10 = _mm256_set1_epi32(W),
                  at11 = _mm256_set1_epi32(W + 1);
    for (int64_t ow = 0; ow < n; ow += 8) {
        const int64_t m = n - ow;
        __m256 v00, v01, v10, v11;
        load_pairs(r0 + 2 * ow, m, &v00, &v01);
        load_pairs(r1 + 2 * ow, m, &v10, &v11);
        __m256 best = v00, win;
        __m256i at = _mm256_setzero_si256();
#define POOL2_STEP(v, code)                                                                    \
    win = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)); \
    best = _mm256_blendv_ps(best, v, win);                                                     \
    at = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(at),                         \
                                              _mm256_castsi256_ps(code), win))
        POOL2_STEP(v01, at01);
        POOL2_STEP(v10, at10);
        POOL2_STEP(v11, at11);
#undef POOL2_STEP
        const __m256i idx = _mm256_add_epi32(
            _mm256_add_epi32(at, lane2), _mm256_set1_epi32(base + 2 * (int32_t)ow));
        if (m >= 8) {
            _mm256_storeu_ps(out + ow, best);
            _mm256_storeu_si256((__m256i *)(void *)(arg + ow), idx);
        } else {
            const __m256i mask = lanes_below(m);
            _mm256_maskstore_ps(out + ow, mask, best);
            _mm256_maskstore_epi32(arg + ow, mask, idx);
        }
    }
}

/* dst[0..2m) = the floats of lo and hi interleaved: lo0 hi0 lo1 hi1 … (m ≤ 8). */
TARGET static inline void store_pairs(float *dst, int64_t m, __m256 lo, __m256 hi)
{
    const __m256 u = _mm256_unpacklo_ps(lo, hi), v = _mm256_unpackhi_ps(lo, hi);
    const __m256 a = _mm256_permute2f128_ps(u, v, 0x20), b = _mm256_permute2f128_ps(u, v, 0x31);
    if (m >= 8) {
        _mm256_storeu_ps(dst, a);
        _mm256_storeu_ps(dst + 8, b);
    } else {
        _mm256_maskstore_ps(dst, lanes_below(2 * m), a);
        _mm256_maskstore_ps(dst + 8, lanes_below(2 * m - 8), b);
    }
}

/* unpool2_row with AVX2, eight outputs at a time: the same values (0 + g at the winner). */
TARGET static void unpool2_row_avx2(const float *g, const int32_t *arg, int64_t n, int32_t base,
                                    int32_t W, float *d0, float *d1)
{
    const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i at01 = _mm256_set1_epi32(1), at10 = _mm256_set1_epi32(W),
                  at11 = _mm256_set1_epi32(W + 1);
    for (int64_t ow = 0; ow < n; ow += 8) {
        const int64_t m = n - ow;
        const __m256i mask = lanes_below(m);
        const __m256 gv = _mm256_add_ps(_mm256_setzero_ps(), _mm256_maskload_ps(g + ow, mask));
        const __m256i ai = _mm256_maskload_epi32(arg + ow, mask);
        const __m256i at = _mm256_sub_epi32(
            ai, _mm256_add_epi32(lane2, _mm256_set1_epi32(base + 2 * (int32_t)ow)));
#define PICK(code) _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(at, code)))
        store_pairs(d0 + 2 * ow, m, PICK(_mm256_setzero_si256()), PICK(at01));
        store_pairs(d1 + 2 * ow, m, PICK(at10), PICK(at11));
#undef PICK
    }
}

/* Lanes l < n set (n clamped to 0..16). */
WIDE static inline __mmask16 lanes16_below(int64_t n)
{
    return (__mmask16)(n >= 16 ? 0xffffu : n > 0 ? (1u << n) - 1u : 0u);
}

/* The even and the odd floats of src[0..2m) (m ≤ 16; the rest +0, never loaded). */
WIDE static inline void load_pairs16(const float *src, int64_t m, __m512 *even, __m512 *odd)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                         30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29,
                                         31);
    const __m512 a = _mm512_maskz_loadu_ps(lanes16_below(2 * m), src);
    const __m512 b = _mm512_maskz_loadu_ps(lanes16_below(2 * m - 16), src + 16);
    *even = _mm512_permutex2var_ps(a, ie, b);
    *odd = _mm512_permutex2var_ps(a, io, b);
}

/* pool2_row with AVX-512, sixteen outputs at a time and masked (LeNet's rows of 14 and 5 in
 * one step each): the same comparisons, so the same winners. */
WIDE static void pool2_row_wide(const float *r0, const float *r1, int64_t n, int32_t base,
                                int32_t W, float *out, int32_t *arg)
{
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                            28, 30);
    const __m512i at01 = _mm512_set1_epi32(1), at10 = _mm512_set1_epi32(W),
                  at11 = _mm512_set1_epi32(W + 1);
    for (int64_t ow = 0; ow < n; ow += 16) {
        const int64_t m = n - ow;
        __m512 v00, v01, v10, v11;
        load_pairs16(r0 + 2 * ow, m, &v00, &v01);
        load_pairs16(r1 + 2 * ow, m, &v10, &v11);
        __m512 best = v00;
        __m512i at = _mm512_setzero_si512();
        __mmask16 win;
#define POOL16_STEP(v, code)                                                                   \
    win = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);    \
    best = _mm512_mask_mov_ps(best, win, v);                                                   \
    at = _mm512_mask_mov_epi32(at, win, code)
        POOL16_STEP(v01, at01);
        POOL16_STEP(v10, at10);
        POOL16_STEP(v11, at11);
#undef POOL16_STEP
        const __m512i idx = _mm512_add_epi32(
            _mm512_add_epi32(at, lane2), _mm512_set1_epi32(base + 2 * (int32_t)ow));
        const __mmask16 k = lanes16_below(m);
        _mm512_mask_storeu_ps(out + ow, k, best);
        _mm512_mask_storeu_epi32(arg + ow, k, idx);
    }
}

/* dst[0..2m) = lo and hi interleaved (m ≤ 16). */
WIDE static inline void store_pairs16(float *dst, int64_t m, __m512 lo, __m512 hi)
{
    const __m512i i0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i i1 = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15,
                                         31);
    _mm512_mask_storeu_ps(dst, lanes16_below(2 * m), _mm512_permutex2var_ps(lo, i0, hi));
    _mm512_mask_storeu_ps(dst + 16, lanes16_below(2 * m - 16), _mm512_permutex2var_ps(lo, i1, hi));
}

/* unpool2_row with AVX-512, sixteen outputs at a time: the same values (0 + g at the winner). */
WIDE static void unpool2_row_wide(const float *g, const int32_t *arg, int64_t n, int32_t base,
                                  int32_t W, float *d0, float *d1)
{
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                            28, 30);
    const __m512i at01 = _mm512_set1_epi32(1), at10 = _mm512_set1_epi32(W),
                  at11 = _mm512_set1_epi32(W + 1);
    for (int64_t ow = 0; ow < n; ow += 16) {
        const int64_t m = n - ow;
        const __mmask16 k = lanes16_below(m);
        const __m512 gv = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(k, g + ow));
        const __m512i at = _mm512_sub_epi32(
            _mm512_maskz_loadu_epi32(k, arg + ow),
            _mm512_add_epi32(lane2, _mm512_set1_epi32(base + 2 * (int32_t)ow)));
#define PICK16(code) _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, code), gv)
        store_pairs16(d0 + 2 * ow, m, PICK16(_mm512_setzero_si512()), PICK16(at01));
        store_pairs16(d1 + 2 * ow, m, PICK16(at10), PICK16(at11));
#undef PICK16
    }
}

/* The 2×2 rows: AVX-512 where the device has it, else AVX2 where present, else plain C. */
static pool2_fn pool2_of(bl_device *dev)
{
    const cpu_impl *impl = dev->impl;
    return impl->wide ? pool2_row_wide : impl->small_gemm ? pool2_row_avx2 : pool2_row;
}

static unpool2_fn unpool2_of(bl_device *dev)
{
    const cpu_impl *impl = dev->impl;
    return impl->wide ? unpool2_row_wide : impl->small_gemm ? unpool2_row_avx2 : unpool2_row;
}

#else

static pool2_fn pool2_of(bl_device *dev)
{
    (void)dev;
    return pool2_row;
}

static unpool2_fn unpool2_of(bl_device *dev)
{
    (void)dev;
    return unpool2_row;
}

#endif

typedef struct pool_args {
    const bl_window2d *w;
    const float *x, *dy;
    float *y, *dx;
    int32_t *argmax;
    const int32_t *argmax_in;
    pool2_fn pool2; /* the 2×2 rows */
    unpool2_fn unpool2;
} pool_args;

/* planes [p0, p1) of the forward */
static void maxpool_forward_range(void *arg, int chunk, int64_t p0, int64_t p1)
{
    (void)chunk;
    const pool_args *a = arg;
    const bl_window2d *w = a->w;
    const int64_t H = w->height, W = w->width, OH = w->out_h, OW = w->out_w;
    const bool two = w->kernel_h == 2 && w->kernel_w == 2 && w->stride_h == 2 &&
                     w->stride_w == 2 && w->pad_h == 0 && w->pad_w == 0;
    for (int64_t p = p0; p < p1; p++) {
        const float *in = a->x + p * H * W;
        float *out = a->y + p * OH * OW;
        int32_t *arg_out = a->argmax + p * OH * OW;
        if (two) {
            for (int64_t oh = 0; oh < OH; oh++)
                a->pool2(in + 2 * oh * W, in + (2 * oh + 1) * W, OW, (int32_t)(2 * oh * W),
                         (int32_t)W, out + oh * OW, arg_out + oh * OW);
            continue;
        }
        for (int64_t oh = 0; oh < OH; oh++) {
            const int64_t h0 = oh * w->stride_h - w->pad_h;
            const int64_t hs = h0 < 0 ? 0 : h0;
            const int64_t he = h0 + w->kernel_h < H ? h0 + w->kernel_h : H;
            for (int64_t ow = 0; ow < OW; ow++) {
                const int64_t w0 = ow * w->stride_w - w->pad_w;
                const int64_t ws = w0 < 0 ? 0 : w0;
                const int64_t we = w0 + w->kernel_w < W ? w0 + w->kernel_w : W;
                const int64_t o = oh * OW + ow;
                if (hs >= he || ws >= we) {
                    out[o] = -INFINITY;
                    arg_out[o] = -1;
                    continue;
                }
                int64_t best_i = hs * W + ws;
                float best = in[best_i];
                for (int64_t ih = hs; ih < he; ih++) {
                    for (int64_t iw = ws; iw < we; iw++) {
                        const float v = in[ih * W + iw];
                        if (POOL_WINS(v, best)) {
                            best = v;
                            best_i = ih * W + iw;
                        }
                    }
                }
                out[o] = best;
                arg_out[o] = (int32_t)best_i;
            }
        }
    }
}

/* x [batch, C, H, W] → y, argmax [batch, C, out_h, out_w]; argmax = index in the [H, W] plane.
 * Planes are split over the device's threads. */
void bl__cpu_maxpool_forward(bl_device *dev, const bl_window2d *w, int64_t batch,
                             const float *x, float *y, int32_t *argmax)
{
    const int64_t HW = w->height * w->width;
    pool_args a = {.w = w, .x = x, .y = y, .argmax = argmax, .pool2 = pool2_of(dev)};
    bl__pool_run(bl__cpu_pool(dev), batch * w->channels, POOL_GRAIN / HW > 0 ? POOL_GRAIN / HW : 1,
                 1, maxpool_forward_range, &a);
}

/* planes [p0, p1) of the backward */
static void maxpool_backward_range(void *arg, int chunk, int64_t p0, int64_t p1)
{
    (void)chunk;
    const pool_args *a = arg;
    const bl_window2d *w = a->w;
    const int64_t H = w->height, W = w->width, OH = w->out_h, OW = w->out_w;
    const int64_t HW = H * W, OHW = OH * OW;
    if (w->kernel_h == 2 && w->kernel_w == 2 && w->stride_h == 2 && w->stride_w == 2 &&
        w->pad_h == 0 && w->pad_w == 0) {
        for (int64_t p = p0; p < p1; p++) {
            float *d = a->dx + p * HW;
            const float *g = a->dy + p * OHW;
            const int32_t *arg_in = a->argmax_in + p * OHW;
            for (int64_t oh = 0; oh < OH; oh++) {
                float *d0 = d + 2 * oh * W, *d1 = d0 + W;
                a->unpool2(g + oh * OW, arg_in + oh * OW, OW, (int32_t)(2 * oh * W), (int32_t)W,
                           d0, d1);
                if (W > 2 * OW) /* an odd last column no window covers */
                    d0[W - 1] = d1[W - 1] = 0.0f;
            }
            if (H > 2 * OH) /* an odd last row */
                memset(d + (H - 1) * W, 0, (size_t)W * sizeof *d);
        }
        return;
    }
    memset(a->dx + p0 * HW, 0, (size_t)((p1 - p0) * HW) * sizeof *a->dx);
    for (int64_t p = p0; p < p1; p++) {
        float *d = a->dx + p * HW;
        const float *g = a->dy + p * OHW;
        const int32_t *arg_in = a->argmax_in + p * OHW;
        for (int64_t o = 0; o < OHW; o++)
            if (arg_in[o] >= 0)
                d[arg_in[o]] += g[o];
    }
}

/* dx [batch, C, H, W] = 0, then dx[plane][argmax] += dy for every output (windows may overlap). */
void bl__cpu_maxpool_backward(bl_device *dev, const bl_window2d *w, int64_t batch,
                              const float *dy, const int32_t *argmax, float *dx)
{
    const int64_t HW = w->height * w->width;
    pool_args a = {.w = w, .dy = dy, .dx = dx, .argmax_in = argmax, .unpool2 = unpool2_of(dev)};
    bl__pool_run(bl__cpu_pool(dev), batch * w->channels, POOL_GRAIN / HW > 0 ? POOL_GRAIN / HW : 1,
                 1, maxpool_backward_range, &a);
}

/* ---- batch normalization ------------------------------------------------------------------ */

/* Channels are processed in blocks of this many, with per-block double accumulators on the
 * stack, so that [batch, features] layouts (inner = 1) run along rows. */
#define BN_BLOCK 64

/* The helpers below work on one contiguous row in chunks of eight followed by a scalar tail:
 * GCC's -O2 cost model vectorizes a loop only when the vector code replaces it entirely, which
 * the fixed eight-iteration inner loops allow. Double accumulators are per lane, so nothing is
 * reassociated. Rows given as x and y (or dy and dx) must not overlap. */

/* Σ p[i] over n floats, in double. */
static double sum_f(const float *restrict p, int64_t n)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += p[i + k];
    double s = 0;
    for (; i < n; i++)
        s += p[i];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* Σ (p[i] − m)² over n floats, in double. */
static double sumsq_centered(const float *restrict p, int64_t n, double m)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            const double d = p[i + k] - m;
            acc[k] += d * d;
        }
    double s = 0;
    for (; i < n; i++) {
        const double d = p[i] - m;
        s += d * d;
    }
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* Σ g[i]·(p[i] − m) over n floats, in double. */
static double dot_centered(const float *restrict g, const float *restrict p, int64_t n,
                           double m)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (double)g[i + k] * (p[i + k] - m);
    double s = 0;
    for (; i < n; i++)
        s += (double)g[i] * (p[i] - m);
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* Row versions for inner = 1, where channel c is element c of the row:
 *   sum[c] += x[c];  sq[c] += (x[c] − mean[c])²;
 *   sdy[c] += dy[c], sdx[c] += dy[c]·(x[c] − mean[c]) */
static void row_sum(double *restrict sum, const float *restrict x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            sum[i + k] += x[i + k];
    for (; i < n; i++)
        sum[i] += x[i];
}

static void row_sumsq(double *restrict sq, const float *restrict x, const double *restrict mean,
                      int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            const double d = x[i + k] - mean[i + k];
            sq[i + k] += d * d;
        }
    for (; i < n; i++) {
        const double d = x[i] - mean[i];
        sq[i] += d * d;
    }
}

static void row_grad_sums(double *restrict sdy, double *restrict sdx, const float *restrict x,
                          const float *restrict dy, const double *restrict mean, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            sdy[i + k] += dy[i + k];
            sdx[i + k] += (double)dy[i + k] * (x[i + k] - mean[i + k]);
        }
    for (; i < n; i++) {
        sdy[i] += dy[i];
        sdx[i] += (double)dy[i] * (x[i] - mean[i]);
    }
}

/* y[i] = (x[i] − m[i])·a[i] + b[i] (inner = 1: one channel per element) */
static void row_affine(float *restrict y, const float *restrict x, const float *restrict m,
                       const float *restrict a, const float *restrict b, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            y[i + k] = (x[i + k] - m[i + k]) * a[i + k] + b[i + k];
    for (; i < n; i++)
        y[i] = (x[i] - m[i]) * a[i] + b[i];
}

/* y[i] = (x[i] − m)·a + b (one channel along the row) */
static void plane_affine(float *restrict y, const float *restrict x, float m, float a, float b,
                         int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            y[i + k] = (x[i + k] - m) * a + b;
    for (; i < n; i++)
        y[i] = (x[i] - m) * a + b;
}

/* dx[i] = a[i]·(dy[i] − g[i] − (x[i] − m[i])·q[i]) (inner = 1) */
static void row_bn_dx(float *restrict dx, const float *restrict x, const float *restrict dy,
                      const float *restrict m, const float *restrict a, const float *restrict g,
                      const float *restrict q, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            dx[i + k] = a[i + k] * (dy[i + k] - g[i + k] - (x[i + k] - m[i + k]) * q[i + k]);
    for (; i < n; i++)
        dx[i] = a[i] * (dy[i] - g[i] - (x[i] - m[i]) * q[i]);
}

/* dx[i] = a·(dy[i] − g − (x[i] − m)·q) (one channel along the row) */
static void plane_bn_dx(float *restrict dx, const float *restrict x, const float *restrict dy,
                        float m, float a, float g, float q, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            dx[i + k] = a * (dy[i + k] - g - (x[i + k] - m) * q);
    for (; i < n; i++)
        dx[i] = a * (dy[i] - g - (x[i] - m) * q);
}

/* Block walkers: for the cn channels starting at c0 of [outer, channels, inner] arrays. */

/* sum[c] += Σ_{o,i} x[o][c0+c][i] */
static void block_sum(int64_t outer, int64_t channels, int64_t inner, int64_t c0, int64_t cn,
                      const float *x, double *sum)
{
    for (int64_t o = 0; o < outer; o++) {
        const float *row = x + (o * channels + c0) * inner; /* [cn, inner] */
        if (inner == 1)
            row_sum(sum, row, cn);
        else
            for (int64_t c = 0; c < cn; c++)
                sum[c] += sum_f(row + c * inner, inner);
    }
}

/* sq[c] += Σ_{o,i} (x[o][c0+c][i] − mean[c])² */
static void block_sumsq(int64_t outer, int64_t channels, int64_t inner, int64_t c0, int64_t cn,
                        const float *x, const double *mean, double *sq)
{
    for (int64_t o = 0; o < outer; o++) {
        const float *row = x + (o * channels + c0) * inner;
        if (inner == 1)
            row_sumsq(sq, row, mean, cn);
        else
            for (int64_t c = 0; c < cn; c++)
                sq[c] += sumsq_centered(row + c * inner, inner, mean[c]);
    }
}

/* sdy[c] += Σ dy, sdx[c] += Σ dy·(x − mean[c]) over the block */
static void block_grad_sums(int64_t outer, int64_t channels, int64_t inner, int64_t c0,
                            int64_t cn, const float *x, const float *dy, const double *mean,
                            double *sdy, double *sdx)
{
    for (int64_t o = 0; o < outer; o++) {
        const int64_t at = (o * channels + c0) * inner;
        const float *xr = x + at, *gr = dy + at;
        if (inner == 1) {
            row_grad_sums(sdy, sdx, xr, gr, mean, cn);
        } else {
            for (int64_t c = 0; c < cn; c++) {
                sdy[c] += sum_f(gr + c * inner, inner);
                sdx[c] += dot_centered(gr + c * inner, xr + c * inner, inner, mean[c]);
            }
        }
    }
}

/* y[o][c0+c][i] = (x − m[c])·a[c] + b[c] */
static void block_affine(int64_t outer, int64_t channels, int64_t inner, int64_t c0, int64_t cn,
                         const float *m, const float *a, const float *b, const float *x,
                         float *y)
{
    for (int64_t o = 0; o < outer; o++) {
        const int64_t at = (o * channels + c0) * inner;
        if (inner == 1)
            row_affine(y + at, x + at, m, a, b, cn);
        else
            for (int64_t c = 0; c < cn; c++)
                plane_affine(y + at + c * inner, x + at + c * inner, m[c], a[c], b[c], inner);
    }
}

/* dx[o][c0+c][i] = a[c]·(dy − g[c] − (x − m[c])·q[c]) */
static void block_bn_dx(int64_t outer, int64_t channels, int64_t inner, int64_t c0, int64_t cn,
                        const float *m, const float *a, const float *g, const float *q,
                        const float *x, const float *dy, float *dx)
{
    for (int64_t o = 0; o < outer; o++) {
        const int64_t at = (o * channels + c0) * inner;
        if (inner == 1)
            row_bn_dx(dx + at, x + at, dy + at, m, a, g, q, cn);
        else
            for (int64_t c = 0; c < cn; c++) {
                const int64_t r = at + c * inner;
                plane_bn_dx(dx + r, x + r, dy + r, m[c], a[c], g[c], q[c], inner);
            }
    }
}

/* x, y [outer, C, inner]; gamma, beta, running_*, mean, invstd [C].
 * mean = Σx/n, var = Σ(x − mean)²/n (biased), invstd = 1/sqrt(var + eps) with n = outer·inner;
 * y = (x − mean)·invstd·gamma + beta;
 * running_mean = (1 − m)·running_mean + m·mean,
 * running_var  = (1 − m)·running_var  + m·var·n/(n − 1)   (left unchanged when n = 1). */
void bl__cpu_bn_forward_train(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                              const float *x, const float *gamma, const float *beta, float eps,
                              float momentum, float *running_mean, float *running_var,
                              float *mean, float *invstd, float *y)
{
    (void)dev;
    const int64_t n = outer * inner;
    const double m = momentum;
    for (int64_t c0 = 0; c0 < channels; c0 += BN_BLOCK) {
        const int64_t cn = channels - c0 < BN_BLOCK ? channels - c0 : BN_BLOCK;
        double mu[BN_BLOCK] = {0}, sq[BN_BLOCK] = {0};
        block_sum(outer, channels, inner, c0, cn, x, mu);
        for (int64_t c = 0; c < cn; c++)
            mu[c] /= (double)n;
        block_sumsq(outer, channels, inner, c0, cn, x, mu, sq);

        float fm[BN_BLOCK], fa[BN_BLOCK], fb[BN_BLOCK];
        for (int64_t c = 0; c < cn; c++) {
            const int64_t ch = c0 + c;
            const double var = sq[c] / (double)n;
            const double is = 1.0 / sqrt(var + (double)eps);
            mean[ch] = (float)mu[c];
            invstd[ch] = (float)is;
            running_mean[ch] = (float)((1.0 - m) * running_mean[ch] + m * mu[c]);
            if (n > 1)
                running_var[ch] = (float)((1.0 - m) * running_var[ch] +
                                          m * sq[c] / (double)(n - 1));
            fm[c] = (float)mu[c];
            fa[c] = (float)(is * gamma[ch]);
            fb[c] = beta[ch];
        }
        block_affine(outer, channels, inner, c0, cn, fm, fa, fb, x, y);
    }
}

/* y = (x − running_mean)·gamma/sqrt(running_var + eps) + beta */
void bl__cpu_bn_forward_eval(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *x, const float *gamma, const float *beta, float eps,
                             const float *running_mean, const float *running_var, float *y)
{
    (void)dev;
    for (int64_t c0 = 0; c0 < channels; c0 += BN_BLOCK) {
        const int64_t cn = channels - c0 < BN_BLOCK ? channels - c0 : BN_BLOCK;
        float fa[BN_BLOCK];
        for (int64_t c = 0; c < cn; c++)
            fa[c] = (float)(gamma[c0 + c] / sqrt((double)running_var[c0 + c] + (double)eps));
        block_affine(outer, channels, inner, c0, cn, running_mean + c0, fa, beta + c0, x, y);
    }
}

/* With x̂ = (x − mean)·invstd and n = outer·inner, per channel:
 * dbeta += Σ dy, dgamma += Σ dy·x̂ (accumulate);
 * dx = gamma·invstd·(dy − Σdy/n − x̂·Σ(dy·x̂)/n) (overwrite; skipped when dx is NULL). */
void bl__cpu_bn_backward(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                         const float *x, const float *gamma, const float *mean,
                         const float *invstd, const float *dy, float *dx, float *dgamma,
                         float *dbeta)
{
    (void)dev;
    const double n = (double)(outer * inner);
    for (int64_t c0 = 0; c0 < channels; c0 += BN_BLOCK) {
        const int64_t cn = channels - c0 < BN_BLOCK ? channels - c0 : BN_BLOCK;
        double mu[BN_BLOCK], sdy[BN_BLOCK] = {0}, sdx[BN_BLOCK] = {0};
        for (int64_t c = 0; c < cn; c++)
            mu[c] = mean[c0 + c];
        block_grad_sums(outer, channels, inner, c0, cn, x, dy, mu, sdy, sdx);

        float fa[BN_BLOCK], fg[BN_BLOCK], fq[BN_BLOCK];
        for (int64_t c = 0; c < cn; c++) {
            const int64_t ch = c0 + c;
            const double is = invstd[ch];
            dbeta[ch] += (float)sdy[c];
            dgamma[ch] += (float)(sdx[c] * is);
            fa[c] = (float)(gamma[ch] * is);
            fg[c] = (float)(sdy[c] / n);
            fq[c] = (float)(sdx[c] * is * is / n);
        }
        if (dx)
            block_bn_dx(outer, channels, inner, c0, cn, mean + c0, fa, fg, fq, x, dy, dx);
    }
}
