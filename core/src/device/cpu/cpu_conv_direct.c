/* The CPU backend's direct convolution for layers with few input channels (see
 * cpu_conv_direct.h). Register tiles: forward keeps up to 6 output channels × 16 output columns
 * of one output row in 12 accumulators (32 columns on AVX-512) and broadcasts one weight per
 * channel and tap; the weight gradient keeps up to 6 output channels × 2 taps, each a vector
 * of partial sums over the output positions, reduced across lanes at the end. */
#include "device/cpu/cpu_conv_direct.h"

#include <string.h>

/* Input channels up to which the direct kernels are used. Measured only on LeNet's C1 (1
 * channel: about twice the column path in bench_conv); with more channels the column matrix
 * is amortized over larger products, and LeNet's C3 (6 channels, rows of 10 outputs) stays on
 * im2col + GEMM. */
#define DIRECT_C_MAX 4

static int64_t round16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

int64_t bl__conv_direct_padded_size(const bl_window2d *w)
{
    return w->channels * (w->height + 2 * w->pad_h) * (round16(w->out_w) + w->kernel_w - 1);
}

void bl__conv_direct_pad(const bl_window2d *w, const float *image, bool zero_border, float *xp)
{
    const int64_t H = w->height, W = w->width, HP = H + 2 * w->pad_h;
    const int64_t WP = round16(w->out_w) + w->kernel_w - 1;
    if (zero_border)
        memset(xp, 0, (size_t)bl__conv_direct_padded_size(w) * sizeof *xp);
    for (int64_t c = 0; c < w->channels; c++)
        for (int64_t i = 0; i < H; i++)
            memcpy(xp + (c * HP + w->pad_h + i) * WP + w->pad_w, image + (c * H + i) * W,
                   (size_t)W * sizeof *xp);
}

#if defined(__x86_64__) && defined(__GNUC__)

#include "device/cpu/cpu_simd.h"

#include "device/cpu/cpu_gemm.h"


bool bl__conv_direct_fits(const bl_window2d *w, bool own, int64_t room)
{
    /* Output columns are computed 16 at a time: skip widths where that wastes over a third. */
    return own && w->stride_h == 1 && w->stride_w == 1 && w->channels <= DIRECT_C_MAX &&
           3 * round16(w->out_w) <= 4 * w->out_w && bl__conv_direct_padded_size(w) <= room;
}

TARGET static INLINE void store_n(float *dst, __m256 v, int64_t n)
{
    if (n >= 8)
        _mm256_storeu_ps(dst, v);
    else if (n > 0)
        _mm256_maskstore_ps(dst, lane_mask(n), v);
}

TARGET static INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

typedef struct geom {
    int64_t C, KH, KW, HP, WP, OH, OW, K, P;
} geom;

static geom geom_of(const bl_window2d *w)
{
    geom g = {.C = w->channels, .KH = w->kernel_h, .KW = w->kernel_w,
              .HP = w->height + 2 * w->pad_h, .WP = round16(w->out_w) + w->kernel_w - 1,
              .OH = w->out_h, .OW = w->out_w};
    g.K = g.C * g.KH * g.KW;
    g.P = g.OH * g.OW;
    return g;
}

/* Where tap k = (c, ki, kj) of the weight reads in the padded image, from an output position's
 * own offset. */
static inline int64_t tap_offset(const geom *g, int64_t k)
{
    const int64_t kj = k % g->KW, ki = k / g->KW % g->KH, c = k / g->KW / g->KH;
    return (c * g->HP + ki) * g->WP + kj;
}

/* Output channels [0, OB) × columns [ow0, ow0 + 16) of output row oh. x: xp + oh·WP + ow0;
 * wt: the block's first weight row; y: the block's first output row at (oh, ow0); n0, n1:
 * valid lanes of the two vectors. The FMA chain per output is bl__small_gemm_rows's. */
TARGET static INLINE void fwd_tile(const int OB, const geom *g, const float *x, const float *wt,
                                   const float *bias, float *y, int64_t n0, int64_t n1)
{
    __m256 acc[6][2];
    UNROLL
    for (int r = 0; r < 6; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    int64_t k = 0;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->KH; ki++) {
            const float *xr = x + (c * g->HP + ki) * g->WP;
            for (int64_t kj = 0; kj < g->KW; kj++, k++) {
                const __m256 b0 = _mm256_loadu_ps(xr + kj), b1 = _mm256_loadu_ps(xr + kj + 8);
                UNROLL
                for (int r = 0; r < OB; r++) {
                    const __m256 coef = _mm256_broadcast_ss(wt + r * g->K + k);
                    acc[r][0] = _mm256_fmadd_ps(coef, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(coef, b1, acc[r][1]);
                }
            }
        }
    UNROLL
    for (int r = 0; r < OB; r++) {
        __m256 o0 = acc[r][0], o1 = acc[r][1];
        if (bias) {
            const __m256 b = _mm256_set1_ps(bias[r]);
            o0 = _mm256_add_ps(o0, b);
            o1 = _mm256_add_ps(o1, b);
        }
        store_n(y + r * g->P, o0, n0);
        store_n(y + r * g->P + 8, o1, n1);
    }
}


/* fwd_tile on 16-lane vectors: output channels [0, OB) × JV·16 columns; n0, n1: valid lanes of
 * the two vectors. */
WIDE static INLINE void fwd_tile16(const int OB, const int JV, const geom *g, const float *x,
                                   const float *wt, const float *bias, float *y, int64_t n0,
                                   int64_t n1)
{
    __m512 acc[6][2];
    UNROLL
    for (int r = 0; r < 6; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    int64_t k = 0;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->KH; ki++) {
            const float *xr = x + (c * g->HP + ki) * g->WP;
            for (int64_t kj = 0; kj < g->KW; kj++, k++) {
                __m512 b[2];
                UNROLL
                for (int v = 0; v < JV; v++)
                    b[v] = _mm512_loadu_ps(xr + kj + 16 * v);
                UNROLL
                for (int r = 0; r < OB; r++) {
                    const __m512 coef = _mm512_set1_ps(wt[r * g->K + k]);
                    UNROLL
                    for (int v = 0; v < JV; v++)
                        acc[r][v] = _mm512_fmadd_ps(coef, b[v], acc[r][v]);
                }
            }
        }
    const __mmask16 m0 = (__mmask16)(n0 >= 16 ? 0xffffu : (1u << n0) - 1u);
    const __mmask16 m1 = (__mmask16)(n1 >= 16 ? 0xffffu : n1 > 0 ? (1u << n1) - 1u : 0u);
    UNROLL
    for (int r = 0; r < OB; r++)
        UNROLL
        for (int v = 0; v < JV; v++) {
            __m512 o = acc[r][v];
            if (bias)
                o = _mm512_add_ps(o, _mm512_set1_ps(bias[r]));
            _mm512_mask_storeu_ps(y + r * g->P + 16 * v, v ? m1 : m0, o);
        }
}

#define FWD16_CASE(ob, jv)                                                                     \
    fwd_tile16(ob, jv, &g, x, weight + o * g.K, bias ? bias + o : NULL, yb, n0, n1)

/* bl__conv_direct_forward's AVX-512 form: 32 columns at a time while more than 16 are left
 * (then a 16-column tile), so no load passes the padded row (round16(OW) + KW − 1). */
WIDE static void forward16(const geom *gp, int64_t out_channels, const float *xp,
                           const float *weight, const float *bias, float *y)
{
    const geom g = *gp;
    for (int64_t o = 0; o < out_channels; o += 6) {
        const int64_t ob = out_channels - o < 6 ? out_channels - o : 6;
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW;) {
                const int64_t left = g.OW - ow;
                const int jv = left > 16 ? 2 : 1;
                const int64_t n0 = left < 16 ? left : 16, n1 = left - 16;
                const float *x = xp + oh * g.WP + ow;
                float *yb = y + o * g.P + oh * g.OW + ow;
                switch (ob * 2 + jv - 2) {
                case 11: FWD16_CASE(6, 1); break;
                case 12: FWD16_CASE(6, 2); break;
                case 9: FWD16_CASE(5, 1); break;
                case 10: FWD16_CASE(5, 2); break;
                case 7: FWD16_CASE(4, 1); break;
                case 8: FWD16_CASE(4, 2); break;
                case 5: FWD16_CASE(3, 1); break;
                case 6: FWD16_CASE(3, 2); break;
                case 3: FWD16_CASE(2, 1); break;
                case 4: FWD16_CASE(2, 2); break;
                case 2: FWD16_CASE(1, 2); break;
                default: FWD16_CASE(1, 1); break;
                }
                ow += 16 * jv;
            }
    }
}

#define FWD_CASE(ob)                                                                           \
    fwd_tile(ob, &g, x, weight + o * g.K, bias ? bias + o : NULL, yb, n0, n1)

TARGET void bl__conv_direct_forward(const bl_window2d *w, int64_t out_channels, bool wide,
                                    const float *xp, const float *weight, const float *bias,
                                    float *y)
{
    const geom g = geom_of(w);
    if (wide) {
        forward16(&g, out_channels, xp, weight, bias, y);
        return;
    }
    for (int64_t o = 0; o < out_channels; o += 6) {
        const int64_t ob = out_channels - o < 6 ? out_channels - o : 6;
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow += 16) {
                const int64_t left = g.OW - ow;
                const int64_t n0 = left < 8 ? left : 8, n1 = left - 8;
                const float *x = xp + oh * g.WP + ow;
                float *yb = y + o * g.P + oh * g.OW + ow;
                switch (ob) {
                case 6: FWD_CASE(6); break;
                case 5: FWD_CASE(5); break;
                case 4: FWD_CASE(4); break;
                case 3: FWD_CASE(3); break;
                case 2: FWD_CASE(2); break;
                default: FWD_CASE(1); break;
                }
            }
    }
}

/* dweight rows [0, OB) × taps [k0, k0 + TB): Σ over the output positions of dy · the input
 * the tap sees there, as 8-lane partial sums per output row's vectors, reduced at the end. */
TARGET static INLINE void wg_tile(const int OB, const int TB, const geom *g, const float *xp,
                                  int64_t k0, const float *dy, float beta, float *dw)
{
    int64_t off[2] = {0, 0};
    for (int t = 0; t < TB; t++)
        off[t] = tap_offset(g, k0 + t);
    __m256 acc[6][2];
    UNROLL
    for (int r = 0; r < 6; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const int64_t full = g->OW / 8 * 8;
    const __m256i tail = lane_mask(g->OW - full);
    for (int64_t oh = 0; oh < g->OH; oh++) {
        const float *xr = xp + oh * g->WP;
        const float *dr = dy + oh * g->OW;
        for (int64_t ow = 0; ow < full; ow += 8) {
            __m256 xv[2];
            UNROLL
            for (int t = 0; t < TB; t++)
                xv[t] = _mm256_loadu_ps(xr + off[t] + ow);
            UNROLL
            for (int r = 0; r < OB; r++) {
                __m256 d = _mm256_loadu_ps(dr + r * g->P + ow);
                /* in a register: GCC would otherwise load it again for every tap */
                __asm__("" : "+x"(d));
                UNROLL
                for (int t = 0; t < TB; t++)
                    acc[r][t] = _mm256_fmadd_ps(d, xv[t], acc[r][t]);
            }
        }
        if (full < g->OW) {
            __m256 xv[2];
            UNROLL
            for (int t = 0; t < TB; t++)
                xv[t] = _mm256_maskload_ps(xr + off[t] + full, tail);
            UNROLL
            for (int r = 0; r < OB; r++) {
                __m256 d = _mm256_maskload_ps(dr + r * g->P + full, tail);
                __asm__("" : "+x"(d));
                UNROLL
                for (int t = 0; t < TB; t++)
                    acc[r][t] = _mm256_fmadd_ps(d, xv[t], acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < OB; r++)
        UNROLL
        for (int t = 0; t < TB; t++) {
            float *out = dw + r * g->K + k0 + t;
            const float s = hsum(acc[r][t]);
            *out = beta == 0.0f ? s : s + beta * *out;
        }
}

#define WG_CASE(ob, tb) wg_tile(ob, tb, &g, xp, k, dy + o * g.P, beta, dweight + o * g.K)

/* Eight floats at a and eight at b as one 16-lane vector (b in lanes 8-15). */
WIDE static INLINE __m512 join8(__m256 a, __m256 b)
{
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)), _mm256_castps_pd(b), 1));
}

/* wg_tile on 16-lane vectors: TP ≤ 2 pairs of taps from k0, tap k0 + 2q in lanes 0-7 and
 * k0 + 2q + 1 in lanes 8-15 of accumulator q, the output gradient's vector in both halves: each
 * half is the AVX2 tile's 8-lane chain of its tap, reduced the same way, so the same bits. */
WIDE static INLINE void wg_tile16(const int OB, const int TP, const geom *g, const float *xp,
                                  int64_t k0, const float *dy, float beta, float *dw)
{
    int64_t off[4] = {0, 0, 0, 0};
    for (int t = 0; t < 2 * TP; t++)
        off[t] = tap_offset(g, k0 + t);
    __m512 acc[6][2];
    UNROLL
    for (int r = 0; r < 6; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const int64_t full = g->OW / 8 * 8;
    const __m256i tail = lane_mask(g->OW - full);
    for (int64_t oh = 0; oh < g->OH; oh++) {
        const float *xr = xp + oh * g->WP;
        const float *dr = dy + oh * g->OW;
        for (int64_t ow = 0; ow < full; ow += 8) {
            __m512 xv[2];
            UNROLL
            for (int q = 0; q < TP; q++)
                xv[q] = join8(_mm256_loadu_ps(xr + off[2 * q] + ow),
                              _mm256_loadu_ps(xr + off[2 * q + 1] + ow));
            UNROLL
            for (int r = 0; r < OB; r++) {
                __m512 d = _mm512_castpd_ps(
                    _mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)(dr + r * g->P + ow))));
                __asm__("" : "+v"(d)); /* as in wg_tile */
                UNROLL
                for (int q = 0; q < TP; q++)
                    acc[r][q] = _mm512_fmadd_ps(d, xv[q], acc[r][q]);
            }
        }
        if (full < g->OW) {
            __m512 xv[2];
            UNROLL
            for (int q = 0; q < TP; q++)
                xv[q] = join8(_mm256_maskload_ps(xr + off[2 * q] + full, tail),
                              _mm256_maskload_ps(xr + off[2 * q + 1] + full, tail));
            UNROLL
            for (int r = 0; r < OB; r++) {
                const __m256 d8 = _mm256_maskload_ps(dr + r * g->P + full, tail);
                __m512 d = join8(d8, d8);
                __asm__("" : "+v"(d));
                UNROLL
                for (int q = 0; q < TP; q++)
                    acc[r][q] = _mm512_fmadd_ps(d, xv[q], acc[r][q]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < OB; r++)
        UNROLL
        for (int t = 0; t < 2 * TP; t++) {
            const __m512 a = acc[r][t / 2];
            const __m256 half = t % 2 ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))
                                      : _mm512_castps512_ps256(a);
            float *out = dw + r * g->K + k0 + t;
            const float sum = hsum(half);
            *out = beta == 0.0f ? sum : sum + beta * *out;
        }
}

#define WG16_CASE(ob, tp) wg_tile16(ob, tp, &g, xp, k, dy + o * g.P, beta, dweight + o * g.K)

/* bl__conv_direct_wgrad's AVX-512 form: four taps a tile, then a pair, then the AVX2 tile for
 * a last odd tap. */
WIDE static void wgrad16(const geom *gp, int64_t out_channels, const float *xp, const float *dy,
                         float beta, float *dweight)
{
    const geom g = *gp;
    for (int64_t o = 0; o < out_channels; o += 6) {
        const int64_t ob = out_channels - o < 6 ? out_channels - o : 6;
        for (int64_t k = 0; k < g.K;) {
            const int64_t left = g.K - k;
            const int tp = left >= 4 ? 2 : left >= 2 ? 1 : 0;
            switch (tp ? ob * 2 + tp - 3 : -(int)ob) {
            case 11: WG16_CASE(6, 2); break;
            case 10: WG16_CASE(6, 1); break;
            case 9: WG16_CASE(5, 2); break;
            case 8: WG16_CASE(5, 1); break;
            case 7: WG16_CASE(4, 2); break;
            case 6: WG16_CASE(4, 1); break;
            case 5: WG16_CASE(3, 2); break;
            case 4: WG16_CASE(3, 1); break;
            case 3: WG16_CASE(2, 2); break;
            case 2: WG16_CASE(2, 1); break;
            case 1: WG16_CASE(1, 2); break;
            case 0: WG16_CASE(1, 1); break;
            case -6: WG_CASE(6, 1); break;
            case -5: WG_CASE(5, 1); break;
            case -4: WG_CASE(4, 1); break;
            case -3: WG_CASE(3, 1); break;
            case -2: WG_CASE(2, 1); break;
            default: WG_CASE(1, 1); break;
            }
            k += tp ? 2 * tp : 1;
        }
    }
}

TARGET void bl__conv_direct_wgrad(const bl_window2d *w, int64_t out_channels, bool wide,
                                  const float *xp, const float *dy, float beta, float *dweight)
{
    const geom g = geom_of(w);
    if (wide) {
        wgrad16(&g, out_channels, xp, dy, beta, dweight);
        return;
    }
    for (int64_t o = 0; o < out_channels; o += 6) {
        const int64_t ob = out_channels - o < 6 ? out_channels - o : 6;
        for (int64_t k = 0; k < g.K; k += 2) {
            if (g.K - k >= 2) {
                switch (ob) {
                case 6: WG_CASE(6, 2); break;
                case 5: WG_CASE(5, 2); break;
                case 4: WG_CASE(4, 2); break;
                case 3: WG_CASE(3, 2); break;
                case 2: WG_CASE(2, 2); break;
                default: WG_CASE(1, 2); break;
                }
            } else {
                switch (ob) {
                case 6: WG_CASE(6, 1); break;
                case 5: WG_CASE(5, 1); break;
                case 4: WG_CASE(4, 1); break;
                case 3: WG_CASE(3, 1); break;
                case 2: WG_CASE(2, 1); break;
                default: WG_CASE(1, 1); break;
                }
            }
        }
    }
}

#else /* no AVX2 kernels on this target: the backend keeps im2col + GEMM */

bool bl__conv_direct_fits(const bl_window2d *w, bool own, int64_t room)
{
    (void)w;
    (void)own;
    (void)room;
    return false;
}

void bl__conv_direct_forward(const bl_window2d *w, int64_t out_channels, bool wide,
                             const float *xp, const float *weight, const float *bias, float *y)
{
    (void)w;
    (void)out_channels;
    (void)wide;
    (void)xp;
    (void)weight;
    (void)bias;
    (void)y;
}

void bl__conv_direct_wgrad(const bl_window2d *w, int64_t out_channels, bool wide,
                           const float *xp, const float *dy, float beta, float *dweight)
{
    (void)w;
    (void)out_channels;
    (void)wide;
    (void)xp;
    (void)dy;
    (void)beta;
    (void)dweight;
}

#endif
