/* The CPU backend's whole-batch convolution (bl_device_ops.conv2d_forward / conv2d_backward).
 *
 * The batch is cut into `slots` fixed, contiguous ranges of images (slot s: images
 * [s·batch/slots, (s+1)·batch/slots)); the thread pool hands whole slots to its threads, one job
 * per call instead of a fork/join per image. Each slot owns a part of the scratch: one column
 * matrix [K, P] and, in backward, one partial weight gradient [O, K]. A slot walks its images
 * one at a time, so that the columns it has just written are still in the cache when the
 * product reads them. The partial weight gradients are summed in slot order once, at the end.
 * Which thread runs a slot never matters, so results depend on `slots` but not on the thread
 * count.
 *
 * Per image the products are one call each, on the calling thread: the project's AVX2 kernels
 * (cpu_gemm.h) where the measured shapes favour them (a few output rows, or a weight gradient
 * with few entries), OpenBLAS (single-threaded inside the pool) otherwise.
 *
 * A layer with few input channels and stride 1 (LeNet's first) skips the columns where the
 * AVX2 kernels can run: the slot's column space holds a zero-padded copy of the image instead,
 * and cpu_conv_direct.c computes the forward (the same bits as the column path) and the weight
 * gradient from it; backward falls back to the columns when an input gradient is asked for.
 *
 * im2col here copies rows with vector moves (no memcpy call per row of 10–30 floats) and is
 * bit-identical to bl__cpu_im2col; col2im adds in the same order as bl__cpu_col2im, so it is
 * bit-identical too.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* The copy loops have trip counts known only at run time: -O2 would not vectorize them. And
 * they are rows of 10–30 floats: a call to memcpy/memset per row (what GCC makes of a copy
 * loop by default) costs more than the copy. */
#pragma GCC optimize("O3", "no-tree-loop-distribute-patterns")
#endif

#include <cblas.h>
#include <string.h>

#include "device/cpu/cpu_conv_direct.h"
#include "device/cpu/cpu_conv_implicit.h"
#include "device/cpu/cpu_gemm.h"
#include "device/cpu/device_cpu.h"
#include "device/cpu/device_cpu_shared.h"

/* ---- im2col / col2im for one image -------------------------------------------------------- */

/* Output positions o in [*lo, *hi) whose input index o·stride − pad + k lies in [0, size). */
static void valid_range(int64_t k, int64_t pad, int64_t stride, int64_t size, int64_t out,
                        int64_t *lo, int64_t *hi)
{
    const int64_t off = pad - k; /* input index = o·stride − off */
    int64_t l = off > 0 ? (off + stride - 1) / stride : 0;
    const int64_t last = size - 1 + off; /* need o·stride ≤ last */
    int64_t h = last >= 0 ? last / stride + 1 : 0;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* Eight floats moved as one vector (one unaligned load and store where the clone has AVX). */
typedef float v8f __attribute__((vector_size(32)));

static inline void copy8(float *dst, const float *src)
{
    v8f v;
    memcpy(&v, src, sizeof v);
    memcpy(dst, &v, sizeof v);
}

static inline void add8(float *dst, const float *src)
{
    v8f a, b;
    memcpy(&a, dst, sizeof a);
    memcpy(&b, src, sizeof b);
    a += b;
    memcpy(dst, &a, sizeof a);
}

/* dst[0..n) = src[0..n): whole vectors, then one last vector that overlaps the previous one
 * (storing the same values twice) instead of a scalar tail. */
static inline void copy_row(float *restrict dst, const float *restrict src, int64_t n)
{
    if (n < 8) {
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i];
        return;
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        copy8(dst + i, src + i);
    if (i < n)
        copy8(dst + n - 8, src + n - 8);
}

/* dst[0..n) += src[0..n), each element once */
static inline void add_row(float *restrict dst, const float *restrict src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        add8(dst + i, src + i);
    for (; i < n; i++)
        dst[i] += src[i];
}

/* image [C, H, W] → cols [C·kh·kw, out_h·out_w]; row (c·kh + ki)·kw + kj holds, at column
 * oh·out_w + ow, image[c][oh·sh − ph + ki][ow·sw − pw + kj] or 0 in the padding. */
BL__HOT static void im2col_image(const bl_window2d *w, const float *restrict image,
                                 float *restrict cols)
{
    const int64_t H = w->height, W = w->width, OH = w->out_h, OW = w->out_w;
    const int64_t sh = w->stride_h, sw = w->stride_w;
    if (sh == 1 && sw == 1 && w->pad_h == 0 && w->pad_w == 0) {
        /* every window inside the image: rows of OW floats, nothing to test */
        for (int64_t c = 0; c < w->channels; c++)
            for (int64_t ki = 0; ki < w->kernel_h; ki++)
                for (int64_t kj = 0; kj < w->kernel_w; kj++) {
                    const float *src = image + (c * H + ki) * W + kj;
                    for (int64_t oh = 0; oh < OH; oh++, cols += OW)
                        copy_row(cols, src + oh * W, OW);
                }
        return;
    }
    for (int64_t c = 0; c < w->channels; c++) {
        const float *plane = image + c * H * W; /* [H, W] */
        for (int64_t ki = 0; ki < w->kernel_h; ki++) {
            for (int64_t kj = 0; kj < w->kernel_w; kj++) {
                int64_t lo, hi;
                valid_range(kj, w->pad_w, sw, W, OW, &lo, &hi);
                const int64_t base = kj - w->pad_w;
                for (int64_t oh = 0; oh < OH; oh++, cols += OW) {
                    const int64_t ih = oh * sh - w->pad_h + ki;
                    if (ih < 0 || ih >= H) {
                        for (int64_t ow = 0; ow < OW; ow++)
                            cols[ow] = 0.0f;
                        continue;
                    }
                    const float *row = plane + ih * W + base; /* row[ow·sw] */
                    for (int64_t ow = 0; ow < lo; ow++)
                        cols[ow] = 0.0f;
                    if (sw == 1)
                        copy_row(cols + lo, row + lo, hi - lo);
                    else
                        for (int64_t ow = lo; ow < hi; ow++)
                            cols[ow] = row[ow * sw];
                    for (int64_t ow = hi; ow < OW; ow++)
                        cols[ow] = 0.0f;
                }
            }
        }
    }
}

/* The adjoint of im2col: image[c][ih][iw] += every cols entry that im2col copied from there;
 * padding entries are dropped (the col2im op: the caller zeroes the image for =). */
BL__HOT static void col2im_add(const bl_window2d *w, const float *restrict cols,
                               float *restrict image)
{
    const int64_t H = w->height, W = w->width, OH = w->out_h, OW = w->out_w;
    const int64_t sh = w->stride_h, sw = w->stride_w;
    if (sh == 1 && sw == 1 && w->pad_h == 0 && w->pad_w == 0) {
        for (int64_t c = 0; c < w->channels; c++)
            for (int64_t ki = 0; ki < w->kernel_h; ki++)
                for (int64_t kj = 0; kj < w->kernel_w; kj++) {
                    float *dst = image + (c * H + ki) * W + kj;
                    for (int64_t oh = 0; oh < OH; oh++, cols += OW)
                        add_row(dst + oh * W, cols, OW);
                }
        return;
    }
    for (int64_t c = 0; c < w->channels; c++) {
        float *plane = image + c * H * W; /* [H, W] */
        for (int64_t ki = 0; ki < w->kernel_h; ki++) {
            for (int64_t kj = 0; kj < w->kernel_w; kj++) {
                int64_t lo, hi;
                valid_range(kj, w->pad_w, sw, W, OW, &lo, &hi);
                const int64_t base = kj - w->pad_w;
                for (int64_t oh = 0; oh < OH; oh++, cols += OW) {
                    const int64_t ih = oh * sh - w->pad_h + ki;
                    if (ih < 0 || ih >= H)
                        continue;
                    float *row = plane + ih * W + base;
                    if (sw == 1)
                        add_row(row + lo, cols + lo, hi - lo);
                    else
                        for (int64_t ow = lo; ow < hi; ow++)
                            row[ow * sw] += cols[ow];
                }
            }
        }
    }
}

/* image = col2im(cols) */
static void col2im_image(const bl_window2d *w, const float *restrict cols, float *restrict image)
{
    memset(image, 0, (size_t)(w->channels * w->height * w->width) * sizeof *image);
    col2im_add(w, cols, image);
}

#if defined(__x86_64__) && defined(__GNUC__)

#include "device/cpu/cpu_simd.h"

/* The widest image and output row (in floats) and kernel that col2im_rows handles. */
#define ROWS_W_MAX 32
#define ROWS_KW_MAX 16

/* How vector ch of an image row reads the column row of tap kj: lane l is column s + l of it
 * where 0 ≤ s + l < OW, else +0 — one masked load at row + s, which may start up to 7 floats
 * before the row (col2im_rows' caller guarantees that they lie inside its buffer; the masked
 * lanes are never read). A vector that no column reaches has s = 0 and an empty mask. */
typedef struct shift {
    int64_t s;
    __m256i load;
} shift;

/* What a row outside the output (or past the image's last row) reads instead: zeros, with
 * room for the loads that start before or run past it. */
static const float zero_row[8 + ROWS_W_MAX + 8];

/* RB image rows [ih0, ih0 + RB) of channel c of the stride-1 col2im, each kept in NC vectors
 * of 8: every column entry that lands on a pixel, added in the order (ki, kj) from +0 as
 * col2im_add does after the zeroing (an added +0 changes nothing: such a sum is never −0),
 * then stored once. RB rows at a time so that RB·NC independent sums hide the add latency;
 * a row that tap row ki does not reach reads zero_row, so the loop has no branch per row. */
TARGET static inline __attribute__((always_inline)) void
col2im_block(const int RB, const int NC, const bl_window2d *w, const shift (*sh)[4],
             const float *cols_c, int64_t ih0, float *dst)
{
    const int64_t OH = w->out_h, OW = w->out_w, P = OH * OW, W = w->width, H = w->height;
    __m256 acc[4][4];
    for (int r = 0; r < RB; r++)
        for (int ch = 0; ch < NC; ch++)
            acc[r][ch] = _mm256_setzero_ps();
    for (int64_t ki = 0; ki < w->kernel_h; ki++) {
        const float *src[4]; /* row r's column row for tap (ki, kj), kj = 0 first */
        int64_t step[4];     /* to the next kj: P, or 0 for zero_row */
        bool any = false;
        for (int r = 0; r < RB; r++) {
            const int64_t oh = ih0 + r + w->pad_h - ki;
            const bool live = ih0 + r < H && oh >= 0 && oh < OH;
            src[r] = live ? cols_c + ki * w->kernel_w * P + oh * OW : zero_row + 8;
            step[r] = live ? P : 0;
            any |= live;
        }
        if (!any)
            continue;
        for (int64_t kj = 0; kj < w->kernel_w; kj++) {
            for (int ch = 0; ch < NC; ch++)
                for (int r = 0; r < RB; r++)
                    acc[r][ch] = _mm256_add_ps(
                        acc[r][ch], _mm256_maskload_ps(src[r] + sh[kj][ch].s, sh[kj][ch].load));
            for (int r = 0; r < RB; r++)
                src[r] += step[r];
        }
    }
    for (int r = 0; r < RB && ih0 + r < H; r++)
        for (int ch = 0; ch < NC; ch++) {
            float *d = dst + r * W + 8 * ch;
            if (8 * ch + 8 <= W)
                _mm256_storeu_ps(d, acc[r][ch]);
            else
                _mm256_maskstore_ps(d, lanes_between(0, W - 8 * ch), acc[r][ch]);
        }
}

static bool col2im_rows_fits(const bl_window2d *w, bool avx2, int64_t before)
{
    return avx2 && w->stride_h == 1 && w->stride_w == 1 && w->width <= ROWS_W_MAX &&
           w->out_w <= ROWS_W_MAX && w->kernel_w <= ROWS_KW_MAX && before >= 7;
}

/* image = col2im(cols) for col2im_rows_fits() windows: the same bits as col2im_image, without
 * the zeroing pass or a read-modify-write of the image per column row. The 7 floats before
 * cols must be readable memory of the same buffer (backward_slots: the slot's weight
 * gradient). */
TARGET static void col2im_rows(const bl_window2d *w, const float *cols, float *image)
{
    const int64_t H = w->height, W = w->width, OW = w->out_w;
    const int nc = (int)((W + 7) / 8);
    shift sh[ROWS_KW_MAX][4];
    for (int64_t kj = 0; kj < w->kernel_w; kj++)
        for (int ch = 0; ch < nc; ch++) {
            shift *t = &sh[kj][ch];
            t->s = 8 * ch + w->pad_w - kj; /* column of lane 0 */
            t->load = lanes_between(-t->s, OW - t->s);
            if (t->s >= OW || t->s <= -8)
                t->s = 0; /* no lane: nothing is read */
        }
    const int64_t per_c = w->kernel_h * w->kernel_w * w->out_h * OW; /* cols of a channel */
    for (int64_t c = 0; c < w->channels; c++) {
        const float *cc = cols + c * per_c;
        float *plane = image + c * H * W;
        switch (nc) {
        case 1:
            for (int64_t ih = 0; ih < H; ih += 4)
                col2im_block(4, 1, w, sh, cc, ih, plane + ih * W);
            break;
        case 2:
            for (int64_t ih = 0; ih < H; ih += 4)
                col2im_block(4, 2, w, sh, cc, ih, plane + ih * W);
            break;
        case 3:
            for (int64_t ih = 0; ih < H; ih += 2)
                col2im_block(2, 3, w, sh, cc, ih, plane + ih * W);
            break;
        default:
            for (int64_t ih = 0; ih < H; ih += 2)
                col2im_block(2, 4, w, sh, cc, ih, plane + ih * W);
            break;
        }
    }
}

#else /* no AVX2 here: col2im_image only */

static bool col2im_rows_fits(const bl_window2d *w, bool avx2, int64_t before)
{
    (void)w;
    (void)avx2;
    (void)before;
    return false;
}

static void col2im_rows(const bl_window2d *w, const float *cols, float *image)
{
    col2im_image(w, cols, image);
}

#endif

/* The device ops (device.h): one image at a time, on the calling thread. */
void bl__cpu_im2col(bl_device *dev, const bl_window2d *w, const float *image, float *cols)
{
    (void)dev;
    im2col_image(w, image, cols);
}

void bl__cpu_col2im(bl_device *dev, const bl_window2d *w, const float *cols, float *image)
{
    (void)dev;
    col2im_add(w, cols, image);
}

/* ---- per-image products (one thread) ------------------------------------------------------- */

/* Output rows up to which the AVX2 kernels beat OpenBLAS on A·B and Aᵀ·B, and the size of a
 * weight gradient (A·Bᵀ, m·n entries, long k) up to which they do: measured on LeNet's shapes
 * (6×784×25 and 16×100×150 forward, 6×25 and 16×150 weight gradients, 150×100×16 columns). */
#define OWN_ROWS_MAX 16
#define OWN_NT_MAX 512
#define OWN_TN_K_MAX 16

/* The own "rows" kernel, on AVX-512 where `wide` (the same bits). */
static void gemm_rows(bool wide, int64_t m, int64_t n, int64_t k, const float *a, int64_t a_row,
                      int64_t a_col, const float *b, float beta, float *c)
{
    (wide ? bl__small_gemm_rows_wide : bl__small_gemm_rows)(0, m, 0, n, k, 1.0f, a, a_row, a_col,
                                                            b, n, beta, c, n);
}

/* c[m×n] = a[m×k]·b[k×n] + beta·c */
static void mm_nn(bool own, bool wide, int64_t m, int64_t n, int64_t k, const float *a,
                  const float *b, float beta, float *c)
{
    if (own && m <= OWN_ROWS_MAX)
        gemm_rows(wide, m, n, k, a, k, 1, b, beta, c);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n,
                    (blasint)k, 1.0f, a, (blasint)k, b, (blasint)n, beta, c, (blasint)n);
}

/* c[m×n] = a[m×k]·b[n×k]ᵀ + beta·c */
static void mm_nt(bool own, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                  float beta, float *c)
{
    if (own && m * n <= OWN_NT_MAX)
        bl__small_gemm_nt(m, 0, n, k, 1.0f, a, k, b, k, beta, c, n);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n,
                    (blasint)k, 1.0f, a, (blasint)k, b, (blasint)k, beta, c, (blasint)n);
}

/* c[m×n] = a[k×m]ᵀ·b[k×n] */
static void mm_tn(bool own, bool wide, int64_t m, int64_t n, int64_t k, const float *a,
                  const float *b, float *c)
{
    if (own && k <= OWN_TN_K_MAX)
        gemm_rows(wide, m, n, k, a, 1, m, b, 0.0f, c);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)m, (blasint)n,
                    (blasint)k, 1.0f, a, (blasint)m, b, (blasint)n, 0.0f, c, (blasint)n);
}

/* ---- the batch, by slots ------------------------------------------------------------------ */

/* The weight gradient: by mm_nt (OpenBLAS or bl__small_gemm_nt, slot partials [O, K]), or
 * transposed (slot partials [K, O]) by wgrad_t on the columns or by the column-free kernel. */
typedef enum { WG_NT, WG_T, WG_IMPLICIT } wgrad_kind;

typedef struct conv_job {
    const bl_window2d *w;
    int64_t O, K, P, batch, slots, in_n;
    bool direct; /* 1×1, stride 1, no padding: the image is its own column matrix */
    bool own;    /* the AVX2 kernels can run */
    bool wide;   /* ... and their AVX-512 forms */
    bool small_c; /* few input channels: the direct kernels (cpu_conv_direct.h), no columns */
    bool rows;    /* col2im_rows can fold the columns' gradient back */
    bool implicit; /* forward by bl__conv_implicit_forward with wt (cpu_conv_implicit.h) */
    wgrad_kind wg; /* how the weight gradient is computed */
    int64_t ov;    /* O rounded up to whole vectors, for the implicit kernels */
    const float *wt; /* [K, ov]: the weight transposed, zero-padded (implicit forward) */
    const float *x, *weight, *bias, *dy;
    float *y, *dx, *scratch;
} conv_job;

static int64_t slot_begin(const conv_job *j, int64_t s)
{
    return s * j->batch / j->slots;
}

static bool is_direct(const bl_window2d *w)
{
    return w->kernel_h == 1 && w->kernel_w == 1 && w->stride_h == 1 && w->stride_w == 1 &&
           w->pad_h == 0 && w->pad_w == 0;
}

static void forward_slots(void *p, int chunk, int64_t s0, int64_t s1)
{
    (void)chunk;
    const conv_job *j = p;
    const int64_t O = j->O, K = j->K, P = j->P;
    for (int64_t s = s0; s < s1; s++) {
        float *cols = j->scratch + s * (O * K + K * P) + O * K; /* [K, P] */
        for (int64_t n = slot_begin(j, s); n < slot_begin(j, s + 1); n++) {
            const float *src = j->x + n * j->in_n;
            if (j->small_c) { /* cols holds the padded image */
                bl__conv_direct_pad(j->w, src, n == slot_begin(j, s), cols);
                bl__conv_direct_forward(j->w, O, j->wide, cols, j->weight, j->bias,
                                        j->y + n * O * P);
                continue;
            }
            float *y = j->y + n * O * P; /* [O, P] */
            if (j->implicit) { /* cols holds yt [P, ov] */
                bl__conv_implicit_forward(j->w, O, j->wide, src, j->wt, cols);
                for (int64_t o = 0; o < O; o++) {
                    const float b = j->bias ? j->bias[o] : 0.0f;
                    float *restrict yo = y + o * P;
                    for (int64_t i = 0; i < P; i++)
                        yo[i] = j->bias ? cols[i * j->ov + o] + b : cols[i * j->ov + o];
                }
                continue;
            }
            if (!j->direct) {
                im2col_image(j->w, src, cols);
                src = cols;
            }
            mm_nn(j->own, j->wide, O, P, K, j->weight, src, 0.0f, y);
            if (j->bias)
                for (int64_t o = 0; o < O; o++) {
                    const float b = j->bias[o];
                    float *restrict yo = y + o * P;
                    for (int64_t i = 0; i < P; i++)
                        yo[i] += b;
                }
        }
    }
}

/* Floats up to which a transposed operand (an output gradient [P, ov], a weight [K, ov]) is
 * kept on the stack. */
#define WT_STACK_MAX 4096

/* dyt [P, ov] = dy [O, P]ᵀ, columns O..ov zero */
static void transpose_pad(int64_t O, int64_t P, int64_t ov, const float *restrict dy,
                          float *restrict dyt)
{
    for (int64_t i = 0; i < P; i++) {
        for (int64_t o = 0; o < O; o++)
            dyt[i * ov + o] = dy[o * P + i];
        for (int64_t o = O; o < ov; o++)
            dyt[i * ov + o] = 0.0f;
    }
}

/* Whether wgrad_t computes this layer's weight gradient: the AVX2 kernels, a gradient too large
 * for bl__small_gemm_nt (which sums across lanes) and an output gradient that fits the stack.
 * OpenBLAS on these shapes (LeNet's C3: 16 × 150, 100 positions) runs at about half the
 * speed of the own kernel on the transposed product. */
static bool wgrad_t_fits(bool own, int64_t O, int64_t K, int64_t P)
{
    return own && O * K > OWN_NT_MAX && O * P <= WT_STACK_MAX;
}

/* dwt [K, O] = cols [K, P] · dy [O, P]ᵀ + beta·dwt: the weight gradient, transposed, as the own
 * "rows" kernel's product cols · dyᵀ (vectors along o, one FMA chain over p per entry). */
static void wgrad_t(int64_t O, int64_t K, int64_t P, const float *cols, const float *dy,
                    float beta, float *dwt)
{
    float dyt[WT_STACK_MAX]; /* [P, O] */
    transpose_pad(O, P, O, dy, dyt);
    bl__small_gemm_rows(0, K, 0, O, P, 1.0f, cols, P, 1, dyt, O, beta, dwt, O);
}

/* The same product by the column-free kernel, from the image: the same bits. */
static void wgrad_implicit(const conv_job *j, const float *image, const float *dy, float beta,
                           float *dwt)
{
    float dyt[WT_STACK_MAX]; /* [P, ov] */
    transpose_pad(j->O, j->P, j->ov, dy, dyt);
    bl__conv_implicit_wgrad(j->w, j->O, j->wide, image, dyt, beta, dwt);
}

static void backward_slots(void *p, int chunk, int64_t s0, int64_t s1)
{
    (void)chunk;
    const conv_job *j = p;
    const int64_t O = j->O, K = j->K, P = j->P;
    for (int64_t s = s0; s < s1; s++) {
        float *dw = j->scratch + s * (O * K + K * P); /* [O, K] (WG_NT) or [K, O], slot's Σ */
        float *cols = dw + O * K;                      /* [K, P] */
        const int64_t n0 = slot_begin(j, s);
        for (int64_t n = n0; n < slot_begin(j, s + 1); n++) {
            const float *src = j->x + n * j->in_n;
            const float *dy = j->dy + n * O * P; /* [O, P] */
            if (j->small_c && !j->dx) { /* cols holds the padded image */
                bl__conv_direct_pad(j->w, src, n == n0, cols);
                bl__conv_direct_wgrad(j->w, O, j->wide, cols, dy, n == n0 ? 0.0f : 1.0f, dw);
                continue;
            }
            const float beta = n == n0 ? 0.0f : 1.0f;
            if (j->wg == WG_IMPLICIT) {
                wgrad_implicit(j, src, dy, beta, dw);
            } else {
                if (!j->direct) {
                    im2col_image(j->w, src, cols);
                    src = cols;
                }
                if (j->wg == WG_T)
                    wgrad_t(O, K, P, src, dy, beta, dw);
                else
                    mm_nt(j->own, O, K, P, dy, src, beta, dw);
            }
            if (!j->dx)
                continue;
            float *dx = j->dx + n * j->in_n;
            if (j->direct) {
                mm_tn(j->own, j->wide, K, P, O, j->weight, dy, dx);
            } else {
                mm_tn(j->own, j->wide, K, P, O, j->weight, dy, cols); /* the columns' gradient */
                if (j->rows)
                    col2im_rows(j->w, cols, dx);
                else
                    col2im_image(j->w, cols, dx);
            }
        }
    }
}

void bl__cpu_conv2d_forward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                            int64_t batch, const float *x, const float *weight,
                            const float *bias, float *y, int64_t slots, float *scratch)
{
    if (batch <= 0)
        return;
    const cpu_impl *impl = dev->impl;
    conv_job j = {.w = w, .O = out_channels, .K = w->channels * w->kernel_h * w->kernel_w,
                  .P = w->out_h * w->out_w, .batch = batch, .slots = slots,
                  .in_n = w->channels * w->height * w->width, .direct = is_direct(w),
                  .own = impl->small_gemm, .wide = impl->wide, .x = x, .weight = weight, .bias = bias, .y = y,
                  .scratch = scratch};
    j.small_c = bl__conv_direct_fits(w, j.own, j.K * j.P);
    j.ov = bl__conv_implicit_ov(out_channels);
    /* the column-free kernel: wt on this stack, yt [P, ov] in a slot's column space */
    float wt[WT_STACK_MAX];
    j.implicit = !j.small_c && !j.direct && bl__conv_implicit_fits(w, out_channels, j.own) &&
                 j.K * j.ov <= WT_STACK_MAX && j.ov <= j.K;
    if (j.implicit) {
        for (int64_t k = 0; k < j.K; k++)
            for (int64_t o = 0; o < j.ov; o++)
                wt[k * j.ov + o] = o < out_channels ? weight[o * j.K + k] : 0.0f;
        j.wt = wt;
    }
    bl__pool_run(impl->pool, slots, 1, 1, forward_slots, &j);
}

/* dweight = beta·dweight + Σ over the slots that had images, in slot order. A transposed part
 * ([K, O]) is summed into the first one in its own layout, then transposed once: contiguous
 * vector adds instead of a strided walk per slot (LeNet's C3, 8 slots: ~8 µs a step, alone on
 * the driver thread while the others waited). Each entry is still ((beta·d + p₀) + p₁) + …,
 * so the bits are the same. The first part is overwritten (it is scratch). */
static void sum_slot_gradients(const conv_job *j, float beta, float *dweight)
{
    const int64_t O = j->O, K = j->K, n = O * K;
    float *acc = NULL;
    for (int64_t s = 0; s < j->slots; s++) {
        if (slot_begin(j, s) == slot_begin(j, s + 1))
            continue;
        float *restrict part = j->scratch + s * (O * K + K * j->P);
        if (!acc) {
            acc = part;
            if (beta != 0.0f && j->wg != WG_NT) /* part is [K, O] */
                for (int64_t k = 0; k < K; k++)
                    for (int64_t o = 0; o < O; o++)
                        acc[k * O + o] = beta * dweight[o * K + k] + acc[k * O + o];
            else if (beta != 0.0f)
                for (int64_t i = 0; i < n; i++)
                    acc[i] = beta * dweight[i] + acc[i];
            continue;
        }
        float *restrict a = acc;
        for (int64_t i = 0; i < n; i++)
            a[i] += part[i];
    }
    if (j->wg != WG_NT)
        for (int64_t o = 0; o < O; o++)
            for (int64_t k = 0; k < K; k++)
                dweight[o * K + k] = acc[k * O + o];
    else
        memcpy(dweight, acc, (size_t)n * sizeof *dweight);
}

void bl__cpu_conv2d_backward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                             int64_t batch, const float *x, const float *weight,
                             const float *dy, float beta, float *dweight, float *dx,
                             int64_t slots, float *scratch)
{
    const int64_t O = out_channels, K = w->channels * w->kernel_h * w->kernel_w;
    const int64_t P = w->out_h * w->out_w;
    if (batch <= 0) {
        for (int64_t i = 0; i < O * K; i++)
            dweight[i] = beta == 0.0f ? 0.0f : beta * dweight[i];
        return;
    }
    const cpu_impl *impl = dev->impl;
    conv_job j = {.w = w, .O = O, .K = K, .P = P, .batch = batch, .slots = slots,
                  .in_n = w->channels * w->height * w->width, .direct = is_direct(w),
                  .own = impl->small_gemm, .wide = impl->wide, .x = x, .weight = weight, .dy = dy, .dx = dx,
                  .scratch = scratch};
    j.small_c = bl__conv_direct_fits(w, j.own, K * P);
    j.rows = col2im_rows_fits(w, j.own, O * K); /* a slot is [dw | cols] */
    j.ov = bl__conv_implicit_ov(O);
    if (j.small_c)
        j.wg = WG_NT; /* (the direct kernels; with an input gradient, the columns and mm_nt) */
    else if (!j.direct && bl__conv_implicit_fits(w, O, j.own) && P * j.ov <= WT_STACK_MAX)
        j.wg = WG_IMPLICIT;
    else if (wgrad_t_fits(j.own, O, K, P))
        j.wg = WG_T;
    else
        j.wg = WG_NT;
    bl__pool_run(impl->pool, slots, 1, 1, backward_slots, &j);
    sum_slot_gradients(&j, beta, dweight);
}
