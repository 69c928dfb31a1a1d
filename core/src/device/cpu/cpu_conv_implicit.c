/* The CPU backend's column-free convolution kernels (see cpu_conv_implicit.h). Register tiles:
 * forward keeps PB ≤ 6 output positions of one output row × OV output channels (up to 12
 * accumulators) and broadcasts one input value per position and tap; the weight gradient keeps
 * TB ≤ 6 taps of one (c, ki) row × OV output channels and broadcasts one input value per tap
 * and position. The AVX-512 tiles hold 16 channels in one vector: forward PB ≤ 12 positions,
 * the weight gradient TB ≤ 12 taps (consecutive k, across rows), each lane with the same FMA
 * chain as in the AVX2 tiles. */
#include "device/cpu/cpu_conv_implicit.h"

int64_t bl__conv_implicit_ov(int64_t out_channels)
{
    return out_channels <= 8 ? 8 : 16;
}

#if defined(__x86_64__) && defined(__GNUC__)

#include "device/cpu/cpu_simd.h"


bool bl__conv_implicit_fits(const bl_window2d *w, int64_t out_channels, bool own)
{
    return own && w->stride_h == 1 && w->stride_w == 1 && w->pad_h == 0 && w->pad_w == 0 &&
           out_channels >= 1 && out_channels <= 16;
}

/* yt rows [p, p + PB) (positions ow0.. of output row oh): x is the image at (0, oh, ow0). */
TARGET static INLINE void fwd_tile(const int PB, const int NV, const bl_window2d *w,
                                   const float *x, const float *wt, float *yt)
{
    const int64_t H = w->height, W = w->width, OV = 8 * NV;
    __m256 acc[6][2];
    UNROLL
    for (int r = 0; r < 6; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < w->channels; c++)
        for (int64_t ki = 0; ki < w->kernel_h; ki++) {
            const float *xr = x + (c * H + ki) * W;
            for (int64_t kj = 0; kj < w->kernel_w; kj++, wt += OV) {
                __m256 b[2];
                UNROLL
                for (int v = 0; v < NV; v++)
                    b[v] = _mm256_loadu_ps(wt + 8 * v);
                UNROLL
                for (int r = 0; r < PB; r++) {
                    const __m256 coef = _mm256_broadcast_ss(xr + kj + r);
                    UNROLL
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = _mm256_fmadd_ps(coef, b[v], acc[r][v]);
                }
            }
        }
    UNROLL
    for (int r = 0; r < PB; r++)
        UNROLL
        for (int v = 0; v < NV; v++)
            _mm256_storeu_ps(yt + r * OV + 8 * v, acc[r][v]);
}

#define UNROLL12 _Pragma("GCC unroll 12")

/* fwd_tile's 16-channel case on one AVX-512 vector, PB ≤ 12 positions. */
WIDE static INLINE void fwd_tile16(const int PB, const bl_window2d *w, const float *x,
                                   const float *wt, float *yt)
{
    const int64_t H = w->height, W = w->width;
    __m512 acc[12];
    UNROLL12
    for (int r = 0; r < 12; r++)
        acc[r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < w->channels; c++)
        for (int64_t ki = 0; ki < w->kernel_h; ki++) {
            const float *xr = x + (c * H + ki) * W;
            for (int64_t kj = 0; kj < w->kernel_w; kj++, wt += 16) {
                const __m512 b = _mm512_loadu_ps(wt);
                /* hides that the next tap reads the same values shifted by one: GCC would keep
                 * them in registers and broadcast with shuffles, on an FMA port, instead of
                 * broadcasting from memory inside the FMA */
                __asm__("" : "+r"(xr));
                UNROLL12
                for (int r = 0; r < PB; r++)
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xr[kj + r]), b, acc[r]);
            }
        }
    UNROLL12
    for (int r = 0; r < PB; r++)
        _mm512_storeu_ps(yt + r * 16, acc[r]);
}

#define FWD16_CASE(pb) fwd_tile16(pb, w, x, wt, yt + (oh * OW + ow) * 16)

WIDE static void forward16(const bl_window2d *w, const float *image, const float *wt, float *yt)
{
    const int64_t OH = w->out_h, OW = w->out_w;
    for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow += 12) {
            const float *x = image + oh * w->width + ow;
            switch (OW - ow < 12 ? OW - ow : 12) {
            case 12: FWD16_CASE(12); break;
            case 11: FWD16_CASE(11); break;
            case 10: FWD16_CASE(10); break;
            case 9: FWD16_CASE(9); break;
            case 8: FWD16_CASE(8); break;
            case 7: FWD16_CASE(7); break;
            case 6: FWD16_CASE(6); break;
            case 5: FWD16_CASE(5); break;
            case 4: FWD16_CASE(4); break;
            case 3: FWD16_CASE(3); break;
            case 2: FWD16_CASE(2); break;
            default: FWD16_CASE(1); break;
            }
        }
}

#define FWD_CASE(pb, nv) fwd_tile(pb, nv, w, x, wt, yt + (oh * OW + ow) * 8 * (nv))

TARGET void bl__conv_implicit_forward(const bl_window2d *w, int64_t out_channels, bool wide,
                                      const float *image, const float *wt, float *yt)
{
    const int64_t OH = w->out_h, OW = w->out_w;
    const bool two = out_channels > 8;
    if (two && wide) {
        forward16(w, image, wt, yt);
        return;
    }
    for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow += 6) {
            const float *x = image + oh * w->width + ow;
            switch ((OW - ow < 6 ? OW - ow : 6) + (two ? 6 : 0)) {
            case 12: FWD_CASE(6, 2); break;
            case 11: FWD_CASE(5, 2); break;
            case 10: FWD_CASE(4, 2); break;
            case 9: FWD_CASE(3, 2); break;
            case 8: FWD_CASE(2, 2); break;
            case 7: FWD_CASE(1, 2); break;
            case 6: FWD_CASE(6, 1); break;
            case 5: FWD_CASE(5, 1); break;
            case 4: FWD_CASE(4, 1); break;
            case 3: FWD_CASE(3, 1); break;
            case 2: FWD_CASE(2, 1); break;
            default: FWD_CASE(1, 1); break;
            }
        }
}

/* dwt rows [k0, k0 + TB) (taps kj0.. of row (c, ki)): x is the image at (c, ki, kj0). */
TARGET static INLINE void wg_tile(const int TB, const int NV, const bl_window2d *w,
                                  const float *x, const float *dyt, int64_t O, float beta,
                                  float *dwt)
{
    const int64_t W = w->width, OH = w->out_h, OW = w->out_w, OV = 8 * NV;
    __m256 acc[6][2];
    UNROLL
    for (int t = 0; t < 6; t++)
        acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *xr = x + oh * W;
        for (int64_t ow = 0; ow < OW; ow++, dyt += OV) {
            __m256 d[2];
            UNROLL
            for (int v = 0; v < NV; v++)
                d[v] = _mm256_loadu_ps(dyt + 8 * v);
            UNROLL
            for (int t = 0; t < TB; t++) {
                const __m256 coef = _mm256_broadcast_ss(xr + ow + t);
                UNROLL
                for (int v = 0; v < NV; v++)
                    acc[t][v] = _mm256_fmadd_ps(coef, d[v], acc[t][v]);
            }
        }
    }
    const __m256 vb = _mm256_set1_ps(beta);
    UNROLL
    for (int t = 0; t < TB; t++)
        UNROLL
        for (int v = 0; v < NV; v++) {
            float *out = dwt + t * O + 8 * v;
            const int64_t lanes = O - 8 * v < 8 ? O - 8 * v : 8;
            const __m256i m = lane_mask(lanes);
            __m256 r = acc[t][v];
            if (beta != 0.0f)
                r = _mm256_add_ps(r, _mm256_mul_ps(vb, _mm256_maskload_ps(out, m)));
            _mm256_maskstore_ps(out, m, r);
        }
}

/* wg_tile's 16-channel case on one AVX-512 vector: taps [k0, k0 + TB), TB ≤ 12, tap t's input
 * at image + off[t]. */
WIDE static INLINE void wg_tile16(const int TB, const bl_window2d *w, const float *image,
                                  const int64_t *off, const float *dyt, int64_t O, float beta,
                                  float *dwt)
{
    const int64_t W = w->width, OH = w->out_h, OW = w->out_w;
    __m512 acc[12];
    UNROLL12
    for (int t = 0; t < 12; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *xr = image + oh * W;
        for (int64_t ow = 0; ow < OW; ow++, dyt += 16) {
            const __m512 d = _mm512_loadu_ps(dyt);
            __asm__("" : "+r"(xr)); /* as in fwd_tile16 */
            UNROLL12
            for (int t = 0; t < TB; t++)
                acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(xr[off[t] + ow]), d, acc[t]);
        }
    }
    const __mmask16 m = (__mmask16)((1u << O) - 1u);
    const __m512 vb = _mm512_set1_ps(beta);
    UNROLL12
    for (int t = 0; t < TB; t++) {
        float *out = dwt + t * O;
        __m512 r = acc[t];
        if (beta != 0.0f)
            r = _mm512_add_ps(r, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m, out)));
        _mm512_mask_storeu_ps(out, m, r);
    }
}

#define WG16_CASE(tb) wg_tile16(tb, w, image, off, dyt, O, beta, dwt + k * O)

WIDE static void wgrad16(const bl_window2d *w, int64_t O, const float *image, const float *dyt,
                         float beta, float *dwt)
{
    const int64_t KW = w->kernel_w, K = w->channels * w->kernel_h * KW;
    int64_t c = 0, ki = 0, kj = 0; /* tap k, counted along (no division per tap) */
    for (int64_t k = 0; k < K; k += 12) {
        const int64_t tb = K - k < 12 ? K - k : 12;
        int64_t off[12];
        for (int64_t t = 0; t < tb; t++) {
            off[t] = (c * w->height + ki) * w->width + kj;
            if (++kj == KW) {
                kj = 0;
                if (++ki == w->kernel_h) {
                    ki = 0;
                    c++;
                }
            }
        }
        switch (tb) {
        case 12: WG16_CASE(12); break;
        case 11: WG16_CASE(11); break;
        case 10: WG16_CASE(10); break;
        case 9: WG16_CASE(9); break;
        case 8: WG16_CASE(8); break;
        case 7: WG16_CASE(7); break;
        case 6: WG16_CASE(6); break;
        case 5: WG16_CASE(5); break;
        case 4: WG16_CASE(4); break;
        case 3: WG16_CASE(3); break;
        case 2: WG16_CASE(2); break;
        default: WG16_CASE(1); break;
        }
    }
}

#define WG_CASE(tb, nv) wg_tile(tb, nv, w, x, dyt, out_channels, beta, dwt + k * out_channels)

TARGET void bl__conv_implicit_wgrad(const bl_window2d *w, int64_t out_channels, bool wide,
                                    const float *image, const float *dyt, float beta, float *dwt)
{
    const int64_t H = w->height, W = w->width, KW = w->kernel_w;
    const bool two = out_channels > 8;
    if (two && wide) {
        wgrad16(w, out_channels, image, dyt, beta, dwt);
        return;
    }
    int64_t k = 0;
    for (int64_t c = 0; c < w->channels; c++)
        for (int64_t ki = 0; ki < w->kernel_h; ki++)
            for (int64_t kj = 0; kj < KW; kj += 6) {
                const float *x = image + (c * H + ki) * W + kj;
                const int64_t tb = KW - kj < 6 ? KW - kj : 6;
                switch (tb + (two ? 6 : 0)) {
                case 12: WG_CASE(6, 2); break;
                case 11: WG_CASE(5, 2); break;
                case 10: WG_CASE(4, 2); break;
                case 9: WG_CASE(3, 2); break;
                case 8: WG_CASE(2, 2); break;
                case 7: WG_CASE(1, 2); break;
                case 6: WG_CASE(6, 1); break;
                case 5: WG_CASE(5, 1); break;
                case 4: WG_CASE(4, 1); break;
                case 3: WG_CASE(3, 1); break;
                case 2: WG_CASE(2, 1); break;
                default: WG_CASE(1, 1); break;
                }
                k += tb;
            }
}

#else /* no AVX2 kernels on this target: the backend keeps im2col + GEMM */

bool bl__conv_implicit_fits(const bl_window2d *w, int64_t out_channels, bool own)
{
    (void)w;
    (void)out_channels;
    (void)own;
    return false;
}

void bl__conv_implicit_forward(const bl_window2d *w, int64_t out_channels, bool wide,
                               const float *image, const float *wt, float *yt)
{
    (void)w;
    (void)out_channels;
    (void)wide;
    (void)image;
    (void)wt;
    (void)yt;
}

void bl__conv_implicit_wgrad(const bl_window2d *w, int64_t out_channels, bool wide,
                             const float *image, const float *dyt, float beta, float *dwt)
{
    (void)w;
    (void)out_channels;
    (void)wide;
    (void)image;
    (void)dyt;
    (void)beta;
    (void)dwt;
}

#endif
