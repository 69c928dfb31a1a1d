/* The CPU backend's vector kernels: BLAS-1, biases, activations, dropout, losses and the
 * optimizer updates, as plain loops that the compiler vectorizes (an AVX2 clone next to the
 * baseline one), split over the device's thread pool when large.
 *
 * Numerics: elementwise results do not depend on the thread count or on which clone runs,
 * because the build does not contract a·b + c into FMAs (ISO C mode) and each output element
 * is computed by exactly one thread. Reductions (dot, sumsq, loss sums) accumulate in double,
 * in chunks that depend on the thread count only.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2 only vectorizes loops whose trip count is known; these kernels need the full
 * vectorizer. Without trapping math the selects in exp/tanh/erf if-convert; sqrt keeps its
 * errno path whatever this says (see adam_kernel). */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")
#endif

#include <assert.h>
#include <float.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <string.h>

#include "batchlab/rng.h"
#include "device/cpu/device_cpu_shared.h"
#include "device/kernel_math.h"

/* Work per chunk below which a kernel runs on the calling thread alone. */
#define GRAIN_LIGHT 8192 /* elements: copies, fills, ReLU, bias */
#define GRAIN_HEAVY 8192  /* elements: optimizer updates, exp-based activations, dropout */
#define XENT_GRAIN 1024   /* logits: softmax cross-entropy (an exp each, a log per row) */

/* ---- BLAS-1 ------------------------------------------------------------------------------- */

/* Arguments of the elementwise jobs; each job uses the fields it needs. */
typedef struct ew_args {
    int64_t n, rows, cols, inner;
    float f0, f1, f2, f3, f4, f5;
    int i0;
    bool b0;
    uint64_t u0, u1;
    const float *x, *y, *z, *w;
    const int32_t *labels;
    float *out0, *out1, *out2;
    double part[BL__POOL_MAX_THREADS];
    int64_t ipart[BL__POOL_MAX_THREADS];
    double *sums; /* bl__cpu_sum_channels' per-image sums */
} ew_args;

BL__HOT static void axpy_kernel(int64_t n, float alpha, const float *restrict x, float *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

static void axpy_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    axpy_kernel(e - b, a->f0, a->x + b, a->out0 + b);
}

void bl__cpu_axpy(bl_device *dev, int64_t n, float alpha, const float *x, float *y)
{
    ew_args a = {.f0 = alpha, .x = x, .out0 = y};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, axpy_range, &a);
}

BL__HOT static void scale_kernel(int64_t n, float alpha, float *restrict x)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= alpha;
}

static void scale_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    scale_kernel(e - b, a->f0, a->out0 + b);
}

void bl__cpu_scale(bl_device *dev, int64_t n, float alpha, float *x)
{
    if (alpha == 1.0f)
        return;
    ew_args a = {.f0 = alpha, .out0 = x};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, scale_range, &a);
}

BL__HOT static void fill_kernel(int64_t n, float value, float *restrict x)
{
    if (value == 0.0f && !signbit(value)) {
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        x[i] = value;
}

static void fill_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    fill_kernel(e - b, a->f0, a->out0 + b);
}

void bl__cpu_fill(bl_device *dev, int64_t n, float value, float *x)
{
    ew_args a = {.f0 = value, .out0 = x};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, fill_range, &a);
}

/* Σ x·y in double with eight independent partial sums (which the compiler keeps in vector
 * registers: no reassociation is needed). y = NULL gives Σ x². */
BL__HOT static double dot_kernel(int64_t n, const float *restrict x, const float *restrict y)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    if (y) {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += (double)x[i + j] * (double)y[i + j];
        for (; i < n; i++)
            acc[0] += (double)x[i] * (double)y[i];
    } else {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += (double)x[i + j] * (double)x[i + j];
        for (; i < n; i++)
            acc[0] += (double)x[i] * (double)x[i];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void dot_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    a->part[chunk] = dot_kernel(e - b, a->x + b, a->y ? a->y + b : NULL);
}

static double sum_parts(const ew_args *a, int chunks)
{
    double s = 0.0;
    for (int i = 0; i < chunks; i++)
        s += a->part[i];
    return s;
}

/* The result goes to *out: device memory is host memory here, so the "slot" is written at
 * once and its read-back is a plain copy. */
void bl__cpu_dot(bl_device *dev, int64_t n, const float *x, const float *y, double *out)
{
    ew_args a = {.x = x, .y = y};
    int chunks = bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, dot_range, &a);
    *out = sum_parts(&a, chunks);
}

void bl__cpu_sumsq(bl_device *dev, int64_t n, const float *x, double *out)
{
    bl__cpu_dot(dev, n, x, NULL, out);
}

/* ---- biases ------------------------------------------------------------------------------- */

BL__HOT static void add_bias_kernel(int64_t rows, int64_t cols, const float *restrict bias,
                                    float *restrict y)
{
    for (int64_t r = 0; r < rows; r++) {
        float *restrict row = y + r * cols;
        for (int64_t c = 0; c < cols; c++)
            row[c] += bias[c];
    }
}

static void add_bias_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    add_bias_kernel(e - b, a->cols, a->x, a->out0 + b * a->cols);
}

void bl__cpu_add_bias(bl_device *dev, int64_t rows, int64_t cols, const float *bias, float *y)
{
    if (cols <= 0)
        return;
    ew_args a = {.cols = cols, .x = bias, .out0 = y};
    int64_t grain = GRAIN_LIGHT / cols > 0 ? GRAIN_LIGHT / cols : 1;
    bl__pool_run(bl__cpu_pool(dev), rows, grain, 1, add_bias_range, &a);
}

/* Eight floats as one vector (GCC's vector extension: one AVX register in the AVX2 clone).
 * The helpers take and give vectors by pointer: returning one by value from a function
 * compiled without AVX would change the ABI (-Wpsabi). */
typedef float v8f __attribute__((vector_size(32)));

/* *s = beta·out + x over 8 floats (x alone when beta is 0, out + x when 1): a column sum's
 * first term. */
static inline void first8(v8f *s, float beta, const float *out, const float *x)
{
    v8f o, v;
    memcpy(&v, x, sizeof v);
    if (beta == 0.0f) {
        *s = v;
        return;
    }
    memcpy(&o, out, sizeof o);
    *s = beta == 1.0f ? o + v : beta * o + v;
}

static inline void add8(v8f *s, const float *x)
{
    v8f v;
    memcpy(&v, x, sizeof v);
    *s += v;
}

/* out[c] = beta·out[c] + Σ_r x[r][c] for columns [c0, c1), each column summed in row order.
 * The sums of a block of columns stay in registers down all the rows: a loop that added
 * each row into out[] stored and reloaded out[] per row, and the bias gradients of
 * 784-256-128-10 at batch 2048 took 130 µs a step on 2 threads. */
BL__HOT static void sum_rows_kernel(int64_t rows, int64_t cols, int64_t c0, int64_t c1,
                                    const float *restrict x, float beta, float *restrict out)
{
    if (rows <= 0) {
        for (int64_t c = c0; c < c1; c++)
            out[c] = beta == 0.0f ? 0.0f : beta * out[c];
        return;
    }
    int64_t c = c0;
    for (; c + 32 <= c1; c += 32) {
        v8f s0, s1, s2, s3;
        first8(&s0, beta, out + c, x + c);
        first8(&s1, beta, out + c + 8, x + c + 8);
        first8(&s2, beta, out + c + 16, x + c + 16);
        first8(&s3, beta, out + c + 24, x + c + 24);
        for (int64_t r = 1; r < rows; r++) {
            const float *row = x + r * cols + c;
            add8(&s0, row);
            add8(&s1, row + 8);
            add8(&s2, row + 16);
            add8(&s3, row + 24);
        }
        memcpy(out + c, &s0, sizeof s0);
        memcpy(out + c + 8, &s1, sizeof s1);
        memcpy(out + c + 16, &s2, sizeof s2);
        memcpy(out + c + 24, &s3, sizeof s3);
    }
    for (; c + 8 <= c1; c += 8) {
        v8f s0;
        first8(&s0, beta, out + c, x + c);
        for (int64_t r = 1; r < rows; r++)
            add8(&s0, x + r * cols + c);
        memcpy(out + c, &s0, sizeof s0);
    }
    for (; c < c1; c++) {
        float s = beta == 0.0f ? x[c] : beta == 1.0f ? out[c] + x[c] : beta * out[c] + x[c];
        for (int64_t r = 1; r < rows; r++)
            s += x[r * cols + c];
        out[c] = s;
    }
}

static void sum_rows_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    sum_rows_kernel(a->rows, a->cols, b, e, a->x, a->f0, a->out0);
}

void bl__cpu_sum_rows(bl_device *dev, int64_t rows, int64_t cols, const float *x, float beta,
                      float *out)
{
    ew_args a = {.rows = rows, .cols = cols, .f0 = beta, .x = x, .out0 = out};
    int64_t per_col = rows > 1 ? rows : 1;
    int64_t grain = GRAIN_LIGHT / per_col > 16 ? GRAIN_LIGHT / per_col : 16;
    bl__pool_run(bl__cpu_pool(dev), cols, grain, 16, sum_rows_range, &a);
}

BL__HOT static void add_channel_bias_kernel(int64_t channels, int64_t inner,
                                            const float *restrict bias, float *restrict y)
{
    for (int64_t c = 0; c < channels; c++) {
        float b = bias[c];
        float *restrict yc = y + c * inner;
        for (int64_t i = 0; i < inner; i++)
            yc[i] += b;
    }
}

static void add_channel_bias_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    for (int64_t o = b; o < e; o++)
        add_channel_bias_kernel(a->cols, a->inner, a->x, a->out0 + o * a->cols * a->inner);
}

void bl__cpu_add_channel_bias(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                              const float *bias, float *y)
{
    if (channels <= 0 || inner <= 0)
        return;
    ew_args a = {.cols = channels, .inner = inner, .x = bias, .out0 = y};
    int64_t per = channels * inner;
    bl__pool_run(bl__cpu_pool(dev), outer, GRAIN_LIGHT / per > 0 ? GRAIN_LIGHT / per : 1, 1,
                 add_channel_bias_range, &a);
}

BL__HOT static double sum_kernel(int64_t n, const float *restrict x)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)x[i + j];
    for (; i < n; i++)
        acc[0] += (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* channels [b, e): out[c] = beta·out[c] + Σ_{o,i} x[o][c][i] */
static void sum_channels_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    for (int64_t c = b; c < e; c++) {
        double s = 0.0;
        for (int64_t o = 0; o < a->rows; o++)
            s += sum_kernel(a->inner, a->x + (o * a->cols + c) * a->inner);
        a->out0[c] = a->f0 == 0.0f ? (float)s : (float)((double)a->f0 * a->out0[c] + s);
    }
}

/* Doubles on the stack for bl__cpu_sum_channels' per-image sums. */
#define SUM_BLOCK 2048

/* images [b, e) of the block that starts at image a->n: sums[i·cols + c] = Σ_j x[n + i][c][j] */
static void sum_images_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    for (int64_t i = b; i < e; i++) {
        const float *img = a->x + (a->n + i) * a->cols * a->inner;
        for (int64_t c = 0; c < a->cols; c++)
            a->sums[i * a->cols + c] = sum_kernel(a->inner, img + c * a->inner);
    }
}

/* Split by channels, each thread reads every image; so for up to SUM_BLOCK channels the
 * images are split instead (each thread reads the images the kernels before left in its
 * cache: a convolution's bias gradient on two threads took as long as on one), a block of
 * images at a time, and the per-image sums are added in image order afterwards: the same
 * additions as sum_channels_range. */
void bl__cpu_sum_channels(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                          const float *x, float beta, float *out)
{
    ew_args a = {.rows = outer, .cols = channels, .inner = inner, .f0 = beta, .x = x,
                 .out0 = out};
    int64_t per = outer * inner > 0 ? outer * inner : 1;
    if (channels > SUM_BLOCK || channels <= 0) {
        bl__pool_run(bl__cpu_pool(dev), channels, GRAIN_LIGHT / per > 0 ? GRAIN_LIGHT / per : 1,
                     1, sum_channels_range, &a);
        return;
    }
    double sums[SUM_BLOCK], total[SUM_BLOCK];
    const int64_t block = SUM_BLOCK / channels, image = channels * inner > 0 ? channels * inner : 1;
    a.sums = sums;
    for (int64_t c = 0; c < channels; c++)
        total[c] = 0.0;
    for (int64_t o0 = 0; o0 < outer; o0 += block) {
        const int64_t n = outer - o0 < block ? outer - o0 : block;
        a.n = o0;
        bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT / image > 0 ? GRAIN_LIGHT / image : 1, 1,
                     sum_images_range, &a);
        for (int64_t o = 0; o < n; o++)
            for (int64_t c = 0; c < channels; c++)
                total[c] += sums[o * channels + c];
    }
    for (int64_t c = 0; c < channels; c++)
        out[c] = beta == 0.0f ? (float)total[c] : (float)((double)beta * out[c] + total[c]);
}

/* ---- activations -------------------------------------------------------------------------- */

/* e^x, tanh, sigmoid and Φ are kernel_math.h's (bl__km_*), written once for this backend and
 * the CUDA one: static inline, so the loops calling them still vectorize here. */

BL__HOT static void act_forward_kernel(bl_activation act, int64_t n, const float *restrict x,
                                       float *restrict y)
{
    switch (act) {
    case BL_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case BL_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = bl__km_tanhf(x[i]);
        break;
    case BL_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            y[i] = bl__km_sigmoidf(x[i]);
        break;
    case BL_ACT_GELU: /* x·Φ(x), PyTorch's exact (erf) form */
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * bl__km_normal_cdf(x[i]);
        break;
    }
}

BL__HOT static void act_backward_kernel(bl_activation act, int64_t n, const float *restrict x,
                                        const float *restrict y, const float *restrict dy,
                                        float *restrict dx)
{
    switch (act) {
    case BL_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case BL_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case BL_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
        break;
    case BL_ACT_GELU: /* Φ(x) + x·φ(x) */
        for (int64_t i = 0; i < n; i++) {
            float xi = x[i];
            float pdf = 0.39894228040143268f * bl__km_expf(-0.5f * xi * xi);
            dx[i] = dy[i] * (bl__km_normal_cdf(xi) + xi * pdf);
        }
        break;
    }
}

/* The in-place ReLU (the net's, over the previous layer's output): y = max(y, 0) and
 * dy = dy where x > 0, else 0; one pointer where the kernels above take two restrict ones. */
BL__HOT static void relu_forward_in_place(int64_t n, float *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = y[i] < 0.0f ? 0.0f : y[i];
}

BL__HOT static void relu_backward_in_place(int64_t n, const float *restrict x, float *restrict d)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = x[i] > 0.0f ? d[i] : 0.0f;
}

static void act_forward_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    if (a->i0 == BL_ACT_RELU && a->x == a->out0)
        relu_forward_in_place(e - b, a->out0 + b);
    else
        act_forward_kernel((bl_activation)a->i0, e - b, a->x + b, a->out0 + b);
}

static void act_backward_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    if (a->i0 == BL_ACT_RELU && a->z == a->out0)
        relu_backward_in_place(e - b, a->x + b, a->out0 + b);
    else
        act_backward_kernel((bl_activation)a->i0, e - b, a->x ? a->x + b : NULL,
                            a->y ? a->y + b : NULL, a->z + b, a->out0 + b);
}

void bl__cpu_act_forward(bl_device *dev, bl_activation act, int64_t n, const float *x, float *y)
{
    assert(x != y || act == BL_ACT_RELU);
    ew_args a = {.i0 = (int)act, .x = x, .out0 = y};
    bl__pool_run(bl__cpu_pool(dev), n, act == BL_ACT_RELU ? GRAIN_LIGHT : GRAIN_HEAVY, 16,
                 act_forward_range, &a);
}

void bl__cpu_act_backward(bl_device *dev, bl_activation act, int64_t n, const float *x,
                          const float *y, const float *dy, float *dx)
{
    assert(dx != dy || act == BL_ACT_RELU);
    ew_args a = {.i0 = (int)act, .x = x, .y = y, .z = dy, .out0 = dx};
    bl__pool_run(bl__cpu_pool(dev), n, act == BL_ACT_GELU ? GRAIN_HEAVY : GRAIN_LIGHT, 16,
                 act_backward_range, &a);
}

/* ---- dropout and products ----------------------------------------------------------------- */

static void dropout_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    float keep_scale = a->f1;
    float prob = a->f0;
    const float *restrict x = a->x;
    float *restrict mask = a->out0;
    float *restrict y = a->out1;
    for (int64_t i = b; i < e; i++) {
        float m = bl_hash_uniform(a->u0, a->u1 + (uint64_t)i) >= prob ? keep_scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

void bl__cpu_dropout_forward(bl_device *dev, int64_t n, float p, uint64_t seed, uint64_t counter,
                             const float *x, float *mask, float *y)
{
    ew_args a = {.f0 = p, .f1 = 1.0f / (1.0f - p), .u0 = seed, .u1 = counter, .x = x,
                 .out0 = mask, .out1 = y};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_HEAVY, 16, dropout_range, &a);
}

BL__HOT static void mul_kernel(int64_t n, const float *restrict a, const float *restrict b,
                               float *restrict out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

static void mul_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    mul_kernel(e - b, a->x + b, a->y + b, a->out0 + b);
}

void bl__cpu_mul(bl_device *dev, int64_t n, const float *a, const float *b, float *out)
{
    ew_args args = {.x = a, .y = b, .out0 = out};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, mul_range, &args);
}

/* ---- losses ------------------------------------------------------------------------------- */

/* Softmax of one row (max subtracted first); returns the log of the normalizer, so that
 * −log p[l] = logsumexp − x[l]. *argmax gets the first index of the largest logit. */
BL__HOT static double softmax_row(int64_t classes, const float *restrict x, float *restrict p,
                                  int64_t *argmax)
{
    float mx = x[0];
    int64_t best = 0;
    for (int64_t c = 1; c < classes; c++)
        if (x[c] > mx) {
            mx = x[c];
            best = c;
        }
    for (int64_t c = 0; c < classes; c++)
        p[c] = bl__km_expf(x[c] - mx);
    double sum = 0.0;
    for (int64_t c = 0; c < classes; c++)
        sum += p[c];
    float inv = (float)(1.0 / sum);
    for (int64_t c = 0; c < classes; c++)
        p[c] *= inv;
    *argmax = best;
    return (double)mx + log(sum);
}

static void xent_forward_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    int64_t classes = a->cols;
    double loss = 0.0;
    int64_t correct = 0;
    for (int64_t r = b; r < e; r++) {
        const float *x = a->x + r * classes;
        int64_t argmax;
        double lse = softmax_row(classes, x, a->out0 + r * classes, &argmax);
        int32_t label = a->labels[r];
        if (label < 0 || label >= classes) {
            loss += NAN; /* a label out of range poisons the loss instead of reading past x */
            continue;
        }
        loss += lse - (double)x[label];
        correct += argmax == label;
    }
    a->part[chunk] = loss;
    a->ipart[chunk] = correct;
}

double bl__cpu_xent_forward(bl_device *dev, int64_t rows, int64_t classes, const float *logits,
                            const int32_t *labels, float *probs, int64_t *correct)
{
    if (rows <= 0 || classes <= 0)
        return 0.0;
    ew_args a = {.cols = classes, .x = logits, .labels = labels, .out0 = probs};
    /* A row costs ~4 ns a class (an exp each, a log per row): with GRAIN_HEAVY elements a
     * chunk, 10 classes at batch 1024 ran on one thread (43 µs of a 3.9 ms MLP step). */
    int64_t grain = XENT_GRAIN / classes > 0 ? XENT_GRAIN / classes : 1;
    int chunks = bl__pool_run(bl__cpu_pool(dev), rows, grain, 1, xent_forward_range, &a);
    int64_t right = 0;
    for (int i = 0; i < chunks; i++)
        right += a.ipart[i];
    if (correct)
        *correct += right;
    return sum_parts(&a, chunks);
}

void bl__cpu_xent_backward(bl_device *dev, int64_t rows, int64_t classes, const float *probs,
                           const int32_t *labels, float scale, float *dlogits)
{
    int64_t n = rows * classes;
    for (int64_t i = 0; i < n; i++)
        dlogits[i] = probs[i] * scale;
    for (int64_t r = 0; r < rows; r++) {
        int32_t label = labels[r];
        if (label >= 0 && label < classes)
            dlogits[r * classes + label] = (probs[r * classes + label] - 1.0f) * scale;
    }
}

BL__HOT static double sqdiff_kernel(int64_t n, const float *restrict y, const float *restrict t)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            double d = (double)y[i + j] - (double)t[i + j];
            acc[j] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)y[i] - (double)t[i];
        acc[0] += d * d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void mse_forward_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    a->part[chunk] = sqdiff_kernel(e - b, a->x + b, a->y + b);
}

double bl__cpu_mse_forward(bl_device *dev, int64_t n, const float *y, const float *target)
{
    ew_args a = {.x = y, .y = target};
    int chunks = bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, mse_forward_range, &a);
    return sum_parts(&a, chunks);
}

BL__HOT static void mse_backward_kernel(int64_t n, const float *restrict y, const float *restrict t,
                                        float scale, float *restrict dy)
{
    for (int64_t i = 0; i < n; i++)
        dy[i] = (y[i] - t[i]) * scale;
}

static void mse_backward_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    mse_backward_kernel(e - b, a->x + b, a->y + b, a->f0, a->out0 + b);
}

void bl__cpu_mse_backward(bl_device *dev, int64_t n, const float *y, const float *target,
                          float scale, float *dy)
{
    ew_args a = {.f0 = scale, .x = y, .y = target, .out0 = dy};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_LIGHT, 16, mse_backward_range, &a);
}

/* ---- optimizer updates -------------------------------------------------------------------- */

/* torch.optim.SGD in one pass: g' = g + wd·w; v = μ·v + (1 − dampening)·g', 0 when subnormal
 * (bl__km_flush_subnormal); d = g' + μ·v (Nesterov) or v; w −= lr·d. With μ = 0 there is no
 * velocity: w −= lr·g'. The first step's "v = g'" is the caller's: zeroed v and dampening 0 on
 * that step. */
BL__HOT static void sgd_kernel(int64_t n, float lr, float mu, float damp, bool nesterov, float wd,
                               const float *restrict g, float *restrict v, float *restrict w)
{
    float keep = 1.0f - damp;
    if (mu == 0.0f) {
        if (wd == 0.0f)
            for (int64_t i = 0; i < n; i++)
                w[i] -= lr * g[i];
        else
            for (int64_t i = 0; i < n; i++)
                w[i] -= lr * (g[i] + wd * w[i]);
    } else if (!nesterov) {
        if (wd == 0.0f && keep == 1.0f)
            for (int64_t i = 0; i < n; i++) {
                float vi = bl__km_flush_subnormal(mu * v[i] + g[i]);
                v[i] = vi;
                w[i] -= lr * vi;
            }
        else
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + wd * w[i];
                float vi = bl__km_flush_subnormal(mu * v[i] + keep * gi);
                v[i] = vi;
                w[i] -= lr * vi;
            }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + wd * w[i];
            float vi = bl__km_flush_subnormal(mu * v[i] + keep * gi);
            v[i] = vi;
            w[i] -= lr * (gi + mu * vi);
        }
    }
}

static void sgd_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    sgd_kernel(e - b, a->f0, a->f1, a->f2, a->b0, a->f3, a->x + b, a->out0 ? a->out0 + b : NULL,
               a->out1 + b);
}

void bl__cpu_sgd_update(bl_device *dev, int64_t n, float lr, float momentum, float dampening,
                        bool nesterov, float weight_decay, const float *grad, float *velocity,
                        float *param)
{
    ew_args a = {.f0 = lr, .f1 = momentum, .f2 = dampening, .b0 = nesterov,
                 .f3 = weight_decay, .x = grad, .out0 = velocity, .out1 = param};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_HEAVY, 16, sgd_range, &a);
}

/* Adam's moments and direction in one pass:
 * m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; dir = (m/bias1) / (sqrt(v/bias2) + ε) + wd·w,
 * the moments flushed to 0 below the smallest normal float (bl__km_adam_one).
 * The compiler will not vectorize sqrtf (it keeps errno semantics whatever the pragma says), so
 * the x86-64 path spells the loop out in SSE, which every x86-64 CPU has; sqrtps rounds exactly
 * like sqrtf, so both paths give the same bits. */
#if defined(__x86_64__) && defined(__SSE2__)
/* bl__km_flush_subnormal on four lanes. */
static inline __m128 flush_subnormal4(__m128 x)
{
    const __m128 magnitude = _mm_andnot_ps(_mm_set1_ps(-0.0f), x);
    return _mm_andnot_ps(_mm_cmplt_ps(magnitude, _mm_set1_ps(FLT_MIN)), x);
}
#endif

static void adam_kernel(int64_t n, float b1, float b2, float eps, float bias1, float bias2,
                        float wd, const float *restrict g, const float *restrict w,
                        float *restrict m, float *restrict v, float *restrict dir)
{
    float c1 = 1.0f - b1, c2 = 1.0f - b2;
    float inv1 = 1.0f / bias1, inv2 = 1.0f / bias2;
    int64_t i = 0;
#if defined(__x86_64__) && defined(__SSE2__)
    __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1);
    __m128 vc2 = _mm_set1_ps(c2), vi1 = _mm_set1_ps(inv1), vi2 = _mm_set1_ps(inv2);
    __m128 veps = _mm_set1_ps(eps), vwd = _mm_set1_ps(wd);
    for (; i + 4 <= n; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i);
        __m128 mi = flush_subnormal4(
            _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)), _mm_mul_ps(vc1, gi)));
        __m128 vv = flush_subnormal4(_mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)),
                                                _mm_mul_ps(vc2, _mm_mul_ps(gi, gi))));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vv);
        __m128 d = _mm_div_ps(_mm_mul_ps(mi, vi1),
                              _mm_add_ps(_mm_sqrt_ps(_mm_mul_ps(vv, vi2)), veps));
        if (wd != 0.0f)
            d = _mm_add_ps(d, _mm_mul_ps(vwd, _mm_loadu_ps(w + i)));
        _mm_storeu_ps(dir + i, d);
    }
#endif
    for (; i < n; i++)
        bl__km_adam_one(b1, b2, c1, c2, inv1, inv2, eps, wd, g[i], wd != 0.0f ? w[i] : 0.0f,
                        m + i, v + i, dir + i);
}

static void adam_range(void *p, int chunk, int64_t b, int64_t e)
{
    ew_args *a = p;
    adam_kernel(e - b, a->f0, a->f1, a->f2, a->f3, a->f4, a->f5, a->x + b,
                a->y ? a->y + b : NULL, a->out0 + b, a->out1 + b, a->out2 + b);
}

void bl__cpu_adam_direction(bl_device *dev, int64_t n, float beta1, float beta2, float eps,
                            float bias1, float bias2, float weight_decay, const float *grad,
                            const float *param, float *m, float *v, float *dir)
{
    ew_args a = {.f0 = beta1, .f1 = beta2, .f2 = eps, .f3 = bias1, .f4 = bias2,
                 .f5 = weight_decay, .x = grad, .y = param, .out0 = m, .out1 = v, .out2 = dir};
    bl__pool_run(bl__cpu_pool(dev), n, GRAIN_HEAVY, 16, adam_range, &a);
}
