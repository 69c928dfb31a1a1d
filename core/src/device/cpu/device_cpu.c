/* The CPU backend: the device, its memory and its matrix products: OpenBLAS for large
 * products, own register-blocked kernels for the small-batch ones (cpu_gemm.c; which one by
 * shape: own_below), every large enough call split over the device's thread pool (cpu_pool.c)
 * with OpenBLAS single-threaded inside it. The vector kernels are in device_cpu_vec.c, the
 * pooling and batch-norm kernels in device_cpu_image.c, im2col/col2im and the batched
 * convolution in cpu_conv.c (device_cpu.h).
 *
 * OpenBLAS's thread count is process-wide. A device with a pool sets it to 1 once, when it
 * opens, and never flips it around a call (another thread would see it change, and two devices
 * flipping it could leave the wrong value behind).
 */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device/cpu/cpu_gemm.h"
#include "device/cpu/device_cpu_gather.h"
#include "device/cpu/device_cpu.h"
#include "device/cpu/device_cpu_shared.h"
#include "device/device_internal.h"
#include "batchlab/memory.h"

/* OpenBLAS entry points that cblas.h of some versions does not declare. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Multiply-adds per chunk below which a product runs on the calling thread alone. */
#define GRAIN_FLOPS 65536 /* own GEMM kernels */
#define GRAIN_BLAS 262144 /* given to OpenBLAS (a call costs more) */

typedef struct cpu_device {
    bl_device base;
    cpu_impl impl;
} cpu_device;

/* ---- memory ------------------------------------------------------------------------------- */

/* Large buffers (a big batch's activations and loader slots) in huge pages: a run's first
 * step fills them, and in 4 KiB pages its page faults cost more than the step itself on a
 * virtual machine (memory.h). */
static void *cpu_alloc(bl_device *dev, size_t bytes)
{
    return bl_alloc_large(bytes); /* 64-byte aligned at least, as the kernels assume */
}

static void cpu_release(bl_device *dev, void *ptr)
{
    free(ptr);
}

static int cpu_upload(bl_device *dev, void *dst, const void *src_host, size_t bytes)
{
    if (bytes)
        memcpy(dst, src_host, bytes);
    return BL_OK;
}

static int cpu_download(bl_device *dev, void *dst_host, const void *src, size_t bytes)
{
    if (bytes)
        memcpy(dst_host, src, bytes);
    return BL_OK;
}

static int cpu_copy(bl_device *dev, void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        memmove(dst, src, bytes);
    return BL_OK;
}

static int cpu_synchronize(bl_device *dev)
{
    return BL_OK;
}

static int cpu_memory(bl_device *dev, size_t *free_bytes, size_t *total_bytes)
{
    long page = sysconf(_SC_PAGESIZE), total = sysconf(_SC_PHYS_PAGES),
         avail = sysconf(_SC_AVPHYS_PAGES);
    if (page <= 0 || total <= 0)
        return BL_EUNSUPPORTED;
    *total_bytes = (size_t)total * (size_t)page;
    *free_bytes = avail > 0 ? (size_t)avail * (size_t)page : 0;
    return BL_OK;
}

/* Staging memory is ordinary aligned host memory; uploads from it are plain copies, complete
 * when they return, so every event is always complete. */
static int cpu_upload_async(bl_device *dev, void *dst, const void *src_host, size_t bytes,
                            bl_device_event *ev)
{
    if (bytes)
        memcpy(dst, src_host, bytes);
    return BL_OK;
}

static char cpu_event_token; /* the one (always complete) CPU event */

static int cpu_event_new(bl_device *dev, bl_device_event **out)
{
    *out = (bl_device_event *)(void *)&cpu_event_token;
    return BL_OK;
}

static void cpu_event_free(bl_device *dev, bl_device_event *ev)
{
}

static int cpu_event_wait(bl_device *dev, bl_device_event *ev)
{
    return BL_OK;
}

/* ---- matrix products ---------------------------------------------------------------------- */

typedef struct gemm_args {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb, a_row, a_col;
    float *c;
    int64_t ldc;
    bool wide; /* the own "rows" kernel on AVX-512 (the same bits) */
} gemm_args;

/* C = A·Bᵀ over a range of B's rows (C's columns). */
static void gemm_nt_range(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemm_args *g = p;
    bl__small_gemm_nt(g->m, begin, end, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta,
                      g->c, g->ldc);
}

/* C = A·Bᵀ over a range of A's rows (C's rows), all of C's columns. */
static void gemm_nt_rows_range(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemm_args *g = p;
    bl__small_gemm_nt(end - begin, 0, g->n, g->k, g->alpha, g->a + begin * g->lda, g->lda, g->b,
                      g->ldb, g->beta, g->c + begin * g->ldc, g->ldc);
}

/* C = Aᵀ·B over a range of C's rows. */
static void gemm_rows_by_row(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemm_args *g = p;
    (g->wide ? bl__small_gemm_rows_wide : bl__small_gemm_rows)(
        begin, end, 0, g->n, g->k, g->alpha, g->a, g->a_row, g->a_col, g->b, g->ldb, g->beta,
        g->c, g->ldc);
}

/* C = A·B over a range of C's columns. */
static void gemm_rows_by_col(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemm_args *g = p;
    (g->wide ? bl__small_gemm_rows_wide : bl__small_gemm_rows)(
        0, g->m, begin, end, g->k, g->alpha, g->a, g->a_row, g->a_col, g->b, g->ldb, g->beta,
        g->c, g->ldc);
}

static void blas_sgemm(const gemm_args *g, int64_t m, int64_t n, const float *a, const float *b,
                       float *c)
{
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                g->tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)g->k,
                g->alpha, a, (blasint)g->lda, b, (blasint)g->ldb, g->beta, c, (blasint)g->ldc);
}

/* One OpenBLAS call on a band of C's rows: op(A)'s rows are A's rows, or A's columns when
 * transposed. */
static void blas_rows_range(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemm_args *g = p;
    const float *a = g->ta ? g->a + begin : g->a + begin * g->lda;
    blas_sgemm(g, end - begin, g->n, a, g->b, g->c + begin * g->ldc);
}

/* One OpenBLAS call on a band of C's columns. */
static void blas_cols_range(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemm_args *g = p;
    const float *b = g->tb ? g->b + begin * g->ldb : g->b + begin;
    blas_sgemm(g, g->m, end - begin, g->a, b, g->c + begin);
}

/* Units per chunk so that a chunk has at least `grain` multiply-adds. */
static int64_t grain_of(int64_t grain, int64_t flops_per_unit, int64_t align)
{
    int64_t g = flops_per_unit > 0 ? grain / flops_per_unit : grain;
    return g < align ? align : g;
}

static int64_t grain_units(int64_t flops_per_unit, int64_t align)
{
    return grain_of(GRAIN_FLOPS, flops_per_unit, align);
}

static void scale_matrix(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *restrict row = c + i * ldc;
        if (beta == 0.0f)
            memset(row, 0, (size_t)n * sizeof *row);
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++)
                row[j] *= beta;
    }
}

/* At least `need` floats of s, 64-byte aligned; the contents are not kept when it grows.
 * NULL when it cannot grow (s is then unchanged). */
static float *scratch_floats(cpu_scratch *s, size_t need)
{
    if (need > s->floats) {
        float *grown = need <= SIZE_MAX / sizeof *grown ? bl_alloc_large(need * sizeof *grown)
                                                         : NULL;
        if (!grown)
            return NULL;
        free(s->p);
        s->p = grown;
        s->floats = need;
    }
    return s->p;
}

/* ---- which kernel: the shape model ----
 *
 * The own kernels (cpu_gemm.c) run at a nearly constant rate whatever the batch (85-100
 * GFLOP/s per core from a batch of 2 or 4 up). OpenBLAS packs its operands first, so its rate
 * grows with the batch dimension b, roughly P·b/(b + h), and passes the own kernels at a
 * crossover that depends on the form and on the weight-sized matrix: whether it stays in a
 * core's L2 cache (the own kernels stream it once per 2 or 4 rows of the batch), and whether
 * one side is narrow (a 10-class layer, where OpenBLAS's blocks are mostly empty: it never
 * catches up). `own_below` is that crossover, measured per form and class of shape (the
 * MLPs 784-256-128-10 and 784-1024-1024-10, the LeNet convolutions' per-image products) with
 * cblas_sgemm against the own kernels built as the library is, one thread, on an AMD EPYC
 * (Zen 4; OpenBLAS 0.3, single-threaded): the own kernel is used while the batch dimension is
 * below it. The choice depends on the shape alone, so a run's arithmetic is the same every
 * time; at the crossover both take the same time, so a batch one larger never runs slower
 * because the kernel changed. One exception, measured on the 2-core Xeon that runs CI: an
 * input gradient ("nn") whose weights fit in L2 goes to OpenBLAS from a batch of 16 while each
 * thread's band stays within OpenBLAS's small-matrix kernels (BLAS_SMALL_MNK), and back to the
 * own kernel above that, until the usual crossover; the step back costs that one product
 * about a tenth (256×128 on 2 threads: 212 GFLOP/s at a batch of 48, 185 at 64), under 1% of
 * a step of 784-256-128-10 (bench_core --sweep: no drop), and gave LeNet's 400×120 input
 * gradient 1.4× at a batch of 32.
 *
 * OpenBLAS is also uneven in the batch rows of "nt" and "nn" (as the row-major M): a count
 * that is not a multiple of 4 runs up to 20% slower than the multiple of 4 below it. Those
 * forms give OpenBLAS the rows up to a multiple of 4 and the 1-3 rows left to the own kernel,
 * where the own kernel reads the weights cheaply enough (see gemm_ragged). */

typedef enum gemm_form {
    FORM_NT, /* C[b × n] = A[b × k]·B[n × k]ᵀ: a linear layer's forward (b = m) */
    FORM_TN, /* C[m × n] = A[b × m]ᵀ·B[b × n]: a weight gradient (b = k) */
    FORM_NN, /* C[b × n] = A[b × k]·B[k × n]: an input gradient (b = m) */
} gemm_form;

#define L2_FLOATS (256 * 1024) /* 1 MiB of floats: what stays in one core's L2 */

/* OpenBLAS's x86-64 AVX-512 build (SKYLAKEX kernels; 0.3.21 in Debian 12) multiplies a call
 * of at most this many multiply-adds (M·N·K) by its small-matrix kernels, without packing:
 * gemm_blas cuts a product across the threads, so the limit applies to each thread's band. */
#define BLAS_SMALL_MNK 1000000
#define NARROW 16              /* a side this small fills less than one OpenBLAS block */
#define ALWAYS INT64_MAX

/* The batch dimension below which the own kernel is faster, for a product whose other
 * dimensions are m, n, k, on `threads` threads (the batch dimension's own value counts only
 * for the small-matrix band of "nn"). */
static int64_t own_below(gemm_form form, int64_t m, int64_t n, int64_t k, int64_t threads)
{
    /* measured own/OpenBLAS time ratios in the comments: batch: ratio */
    switch (form) {
    case FORM_NT: /* weights n × k */
        if (n <= NARROW)
            return ALWAYS; /* 10×128, 10×1024: ≤ 0.78 at every batch to 256 */
        return 28; /* 256×784, 128×256, 1024×784, 1024×1024: 24: 0.97-1.03, 32: 1.01-1.06 */
    case FORM_TN: /* gradient m × n */
        if (m <= NARROW)
            return n <= 512 ? ALWAYS : 16; /* 10×128: ≤ 0.76 to 256; 10×1024: 16: 1.00 */
        return m * n <= L2_FLOATS ? 32     /* 256×784: 32: 1.01; 128×256: 40: 1.01 */
                                  : 12;    /* 1024×784: 12: 1.08; 1024×1024: 16: 1.16 */
    case FORM_NN: /* weights k × n */
        if (k <= NARROW)
            return ALWAYS; /* 128×10: ≤ 0.88 to 256; 1024×10: ≤ 1.0 but for noise */
        if (k * n > L2_FLOATS)
            return 6; /* 1024×1024: 4: 0.88, 8: 1.43 */
        if (m * ((n + threads - 1) / threads) * k <= BLAS_SMALL_MNK)
            return 16; /* own/OpenBLAS GFLOP/s in the band: 400×120, 2 threads (16-32) 164-181/
                        * 240-250, 1 thread (16, 20) 101/143, 95/151; 256×128, 2 threads
                        * (16-48) 155-184/201-212, 1 thread (16-24) 86-99/116-118; 120×84
                        * alone 137-181/127-138, but in a LeNet step at 32 on 2 threads
                        * OpenBLAS gave 2% more samples/s (bench_conv, 6 alternations) */
        return 96; /* 256×128: 96: 1.00, 256: 1.01 */
    }
    return 0;
}

/* Runs the own kernel of `form` on all of C over the pool, cut across C's longer side where
 * the shorter one is NARROW: cut in multiples of 4, a narrow side's 10 columns or rows were
 * split 8 against 2, and one thread waited for the other (a 10-class layer at batch 2048: half
 * of the forward product's time). Every element of C is the same sum however C is cut. */
static void gemm_own(cpu_impl *impl, gemm_form form, gemm_args *g)
{
    switch (form) {
    case FORM_NT:
        if (g->n <= NARROW && g->m > g->n)
            bl__pool_run(impl->pool, g->m, grain_units(g->n * g->k, 8), 8, gemm_nt_rows_range,
                         g);
        else
            bl__pool_run(impl->pool, g->n, grain_units(g->m * g->k, 4), 4, gemm_nt_range, g);
        return;
    case FORM_TN:
        g->a_row = 1;
        g->a_col = g->lda;
        if (g->m <= NARROW && g->n > g->m)
            bl__pool_run(impl->pool, g->n, grain_units(g->m * g->k, 16), 16, gemm_rows_by_col,
                         g);
        else
            bl__pool_run(impl->pool, g->m, grain_units(g->n * g->k, 4), 4, gemm_rows_by_row,
                         g);
        return;
    case FORM_NN:
        g->a_row = g->lda;
        g->a_col = 1;
        bl__pool_run(impl->pool, g->n, grain_units(g->m * g->k, 16), 16, gemm_rows_by_col, g);
        return;
    }
}

/* OpenBLAS on bands of C's rows or columns, 16 at a time. Each thread packs the whole of the
 * operand that is not cut, so the cut goes across C's longer side, except:
 * - a weight gradient (Aᵀ·B) is cut into rows, so that each thread writes whole rows of it:
 *   the same contiguous part that thread then updates in the optimizer's pass (over a long
 *   batch gemm_ksplit cuts the batch instead, before this is reached);
 * - a layer's forward product (A·Bᵀ, B the weights) is cut into columns, the weights' rows,
 *   until the batch is a few times their count (forward_rows). Cut into rows, every thread
 *   reads all of the weights, and the optimizer's pass then writes cache lines that the other
 *   cores also hold: at batch 256 of 784-256-128-10 on 2 threads that pass took 147 µs instead
 *   of 68, more than the column cut's second packing of the batch costs; from a batch of about
 *   3 times the width up, the packing costs more (measured at 512, 768 and 1024). */
static bool forward_rows(const cpu_impl *impl, int64_t m, int64_t n)
{
    /* 3 times on 2 threads, as measured. With T threads the column cut packs the batch T
     * times and the row cut the weights T times, while the optimizer's extra cost stays about
     * the same, so the threshold falls towards the plain rule (m ≥ n) as (T+1)/(T−1): 1.67
     * on 4 threads, 1.13 on 16. That scaling is a model; only 2 threads were measured. */
    int64_t t = bl__pool_threads(impl->pool);
    return t < 2 || m * (t - 1) >= n * (t + 1);
}

static void gemm_blas(cpu_impl *impl, gemm_args *g)
{
    bool rows = !g->ta && g->tb ? forward_rows(impl, g->m, g->n) : g->m >= g->n;
    if (rows || (g->ta && !g->tb && g->m >= 64))
        bl__pool_run(impl->pool, g->m, grain_of(GRAIN_BLAS, g->n * g->k, 16), 16,
                     blas_rows_range, g);
    else
        bl__pool_run(impl->pool, g->n, grain_of(GRAIN_BLAS, g->m * g->k, 16), 16,
                     blas_cols_range, g);
}

/* "nt" or "nn" whose weights exceed L2, with b = m rows not a multiple of 4: OpenBLAS on a
 * copy of A and C padded with zero rows to the next multiple of 4, which takes less time than
 * the ragged count itself (1024×1024, one thread: 9 rows 510 µs, 12 rows 422 µs) and less
 * than streaming the weights once more for the 1-3 rows left. Returns false, having done
 * nothing, when the copy cannot be allocated. */
/* Padding pays where it was measured (batches 9-47: 0.60-0.98 of the direct time); above, the
 * 1-3 extra rows weigh little and the copies of A and C would cost more. */
#define PAD_MAX_ROWS 48

static bool gemm_padded(cpu_impl *impl, gemm_args *g)
{
    int64_t m4 = (g->m + 3) & ~(int64_t)3;
    float *pa = scratch_floats(&impl->pad, (size_t)(m4 * (g->k + g->n)));
    if (!pa)
        return false;
    float *pc = pa + m4 * g->k;
    for (int64_t i = 0; i < g->m; i++) {
        memcpy(pa + i * g->k, g->a + i * g->lda, (size_t)g->k * sizeof *pa);
        if (g->beta != 0.0f)
            memcpy(pc + i * g->n, g->c + i * g->ldc, (size_t)g->n * sizeof *pc);
    }
    memset(pa + g->m * g->k, 0, (size_t)((m4 - g->m) * g->k) * sizeof *pa);
    if (g->beta != 0.0f)
        memset(pc + g->m * g->n, 0, (size_t)((m4 - g->m) * g->n) * sizeof *pc);
    gemm_args padded = *g;
    padded.m = m4;
    padded.a = pa;
    padded.lda = g->k;
    padded.c = pc;
    padded.ldc = g->n;
    gemm_blas(impl, &padded);
    for (int64_t i = 0; i < g->m; i++)
        memcpy(g->c + i * g->ldc, pc + i * g->n, (size_t)g->n * sizeof *pc);
    return true;
}

/* "nt" or "nn" with b = m rows on OpenBLAS: the rows up to a multiple of 4 there, the rest
 * on the own kernel when it reads the weights cheaply (always for "nt", whose kernel keeps
 * 2 rows × 4 weight rows in registers; for "nn" only while the weights stay in L2). */
static void gemm_ragged(cpu_impl *impl, gemm_form form, gemm_args *g)
{
    int64_t rest = g->m & 3;
    /* one row short of a multiple of 4 pads on one thread; on the pool the split below is
     * cheaper (measured with bench_core --sweep, 784-1024-1024-10: 4q+1 padded ran 5-8% below
     * 4q on 2 threads) */
    int pad_from = impl->pool ? 2 : 1;
    if (rest >= pad_from && g->m <= PAD_MAX_ROWS && g->k * g->n > L2_FLOATS &&
        gemm_padded(impl, g))
        return;
    bool split = rest != 0 && (form == FORM_NT || g->k * g->n <= L2_FLOATS);
    if (!split || !impl->small_gemm) {
        gemm_blas(impl, g);
        return;
    }
    gemm_args head = *g, tail = *g;
    head.m = g->m - rest;
    gemm_blas(impl, &head);
    tail.m = rest;
    tail.a = g->a + head.m * g->lda;
    tail.c = g->c + head.m * g->ldc;
    gemm_own(impl, form, &tail);
}

/* A weight gradient ("tn", C[m × n] = A[b × m]ᵀ·B[b × n]) with a long batch b beside a small
 * gradient: cut across the batch instead of C's rows. Cut by rows, every thread packs all of B
 * for its band; cut by the batch, part 0 goes into C (with beta), part p (of the pool's
 * threads) into a scratch gradient, and C then adds the parts in order: the same sums every
 * time for a given thread count, since the cut depends on b and the threads alone. Measured on
 * 2 threads (2-core Xeon, OpenBLAS 0.3.21; this function against the row cut, alternating 30
 * times, µs): 128×256 at b 2048: 548 → 484; 256×784 at 2048: 2671 → 2582; at 1024: 267 → 243
 * and 1359 → 1307. With plain threads, the row cut against parts: 1024×784 and 1024×1024 even
 * at 1024-2048 (m > b/4); parts of 256 rows of the batch 10-35% slower (OpenBLAS's kernels
 * update C once per block of the batch they pack). */
#define KSPLIT_MIN_PART 512
#define KSPLIT_MAX_SCRATCH ((size_t)4 << 20) /* floats (16 MiB) */

typedef struct ksplit_args {
    const gemm_args *g;
    float *scratch; /* part p ≥ 1 at scratch + (p − 1)·m·n */
} ksplit_args;

static void ksplit_part(void *p, int chunk, int64_t begin, int64_t end)
{
    const ksplit_args *s = p;
    gemm_args part = *s->g;
    part.k = end - begin;
    float *c = part.c;
    if (chunk > 0) {
        part.beta = 0.0f;
        c = s->scratch + (size_t)(chunk - 1) * (size_t)(part.m * part.n);
    }
    blas_sgemm(&part, part.m, part.n, part.a + begin * part.lda, part.b + begin * part.ldb, c);
}

/* Returns false, having done nothing, where the cut does not pay or its scratch cannot be
 * allocated. */
static bool gemm_ksplit(bl_device *dev, cpu_impl *impl, const gemm_args *g)
{
    int64_t threads = bl__pool_threads(impl->pool);
    if (threads < 2 || g->ldc != g->n || g->k / threads < KSPLIT_MIN_PART || g->m * 4 > g->k)
        return false;
    size_t need = (size_t)((threads - 1) * g->m * g->n);
    if (need > KSPLIT_MAX_SCRATCH)
        return false;
    ksplit_args s = {g, scratch_floats(&impl->ksplit, need)};
    if (!s.scratch)
        return false;
    int parts = bl__pool_run(impl->pool, g->k, KSPLIT_MIN_PART, 16, ksplit_part, &s);
    for (int p = 1; p < parts; p++)
        bl__cpu_axpy(dev, g->m * g->n, 1.0f, s.scratch + (size_t)(p - 1) * (size_t)(g->m * g->n),
                     g->c);
    return true;
}

static void cpu_gemm(bl_device *dev, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0.0f) {
        scale_matrix(m, n, beta, c, ldc);
        return;
    }
    cpu_impl *impl = dev->impl;
    gemm_args g = {trans_a, trans_b, m, n, k, alpha, beta, a, b, lda, ldb, 0, 0, c, ldc,
                   impl->wide};
    if (trans_a && trans_b) {
        gemm_blas(impl, &g);
        return;
    }
    gemm_form form = !trans_a ? (trans_b ? FORM_NT : FORM_NN) : FORM_TN;
    int64_t batch = form == FORM_TN ? k : m;
    if (impl->small_gemm && batch < own_below(form, m, n, k, bl__pool_threads(impl->pool))) {
        gemm_own(impl, form, &g);
        return;
    }
    if (form == FORM_TN) {
        if (!gemm_ksplit(dev, impl, &g))
            gemm_blas(impl, &g);
    } else
        gemm_ragged(impl, form, &g);
}

typedef struct gemv_args {
    bool ta;
    int64_t m, n, lda;
    float alpha, beta;
    const float *a, *x;
    float *y;
} gemv_args;

/* y[begin..end) of y = alpha·op(A)·x + beta·y: rows of A, or columns when transposed. */
static void gemv_range(void *p, int chunk, int64_t begin, int64_t end)
{
    const gemv_args *g = p;
    if (g->ta)
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)g->m, (blasint)(end - begin), g->alpha,
                    g->a + begin, (blasint)g->lda, g->x, 1, g->beta, g->y + begin, 1);
    else
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)(end - begin), (blasint)g->n,
                    g->alpha, g->a + begin * g->lda, (blasint)g->lda, g->x, 1, g->beta,
                    g->y + begin, 1);
}

static void cpu_gemv(bl_device *dev, bool trans_a, int64_t m, int64_t n, float alpha,
                     const float *a, int64_t lda, const float *x, float beta, float *y)
{
    int64_t len = trans_a ? n : m, inner = trans_a ? m : n;
    if (len <= 0)
        return;
    if (inner <= 0) {
        scale_matrix(1, len, beta, y, len);
        return;
    }
    cpu_impl *impl = dev->impl;
    gemv_args g = {trans_a, m, n, lda, alpha, beta, a, x, y};
    bl__pool_run(impl->pool, len, grain_of(GRAIN_BLAS, inner, 16), 16, gemv_range, &g);
}

/* ---- host work between kernels (bl_device_ops.host_background) --------------------------- */

static void cpu_host_background(bl_device *dev, void (*fn)(void *arg, int64_t begin, int64_t end),
                                void *arg, int64_t n, int64_t grain)
{
    bl__pool_background(bl__cpu_pool(dev), fn, arg, n, grain);
}

static void cpu_host_background_wait(bl_device *dev)
{
    bl__pool_background_wait(bl__cpu_pool(dev));
}

/* ---- the device --------------------------------------------------------------------------- */

static const bl_device_ops cpu_ops = {
    .size = sizeof(bl_device_ops),
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .gather_rows = bl__cpu_gather_rows,   /* appended ops, placed here: device_cpu_gather.c */
    .gather_bytes = bl__cpu_gather_bytes,
    .synchronize = cpu_synchronize,
    .gemm = cpu_gemm,
    .gemv = cpu_gemv,
    .axpy = bl__cpu_axpy,
    .scale = bl__cpu_scale,
    .fill = bl__cpu_fill,
    .dot = bl__cpu_dot,
    .sumsq = bl__cpu_sumsq,
    .add_bias = bl__cpu_add_bias,
    .sum_rows = bl__cpu_sum_rows,
    .add_channel_bias = bl__cpu_add_channel_bias,
    .sum_channels = bl__cpu_sum_channels,
    .act_forward = bl__cpu_act_forward,
    .act_backward = bl__cpu_act_backward,
    .dropout_forward = bl__cpu_dropout_forward,
    .mul = bl__cpu_mul,
    .im2col = bl__cpu_im2col,
    .col2im = bl__cpu_col2im,
    .maxpool_forward = bl__cpu_maxpool_forward,
    .maxpool_backward = bl__cpu_maxpool_backward,
    .bn_forward_train = bl__cpu_bn_forward_train,
    .bn_forward_eval = bl__cpu_bn_forward_eval,
    .bn_backward = bl__cpu_bn_backward,
    .xent_forward = bl__cpu_xent_forward,
    .xent_backward = bl__cpu_xent_backward,
    .mse_forward = bl__cpu_mse_forward,
    .mse_backward = bl__cpu_mse_backward,
    .sgd_update = bl__cpu_sgd_update,
    .adam_direction = bl__cpu_adam_direction,
    .memory = cpu_memory,
    .host_alloc = cpu_alloc,
    .host_free = cpu_release,
    .upload_async = cpu_upload_async,
    .event_new = cpu_event_new,
    .event_free = cpu_event_free,
    .event_wait = cpu_event_wait,
    .conv2d_forward = bl__cpu_conv2d_forward,
    .conv2d_backward = bl__cpu_conv2d_backward,
    .host_background = cpu_host_background,
    .host_background_wait = cpu_host_background_wait,
};

/* OpenBLAS's thread count before any CPU device set it: the default for threads = 0. */
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_threads_seen;  /* the count found before this file first set it, 0 = not yet */
static bool blas_set_by_device; /* this file set OpenBLAS to 1 */

static int cpu_sharers = 1;     /* processes sharing the cores (bl__device_cpu_share) */

void bl__device_cpu_share(int processes)
{
    pthread_mutex_lock(&blas_lock);
    cpu_sharers = processes > 1 ? processes : 1;
    pthread_mutex_unlock(&blas_lock);
}

/* The thread count threads = 0 stands for; the caller holds blas_lock. */
static int default_threads_locked(void)
{
    int now = openblas_get_num_threads();
    /* 1 that we set is not the user's choice; anything else (set by the program since) is */
    if (!(blas_set_by_device && now == 1))
        blas_threads_seen = now;
    int share = blas_threads_seen / cpu_sharers;
    return share > 0 ? share : 1;
}

static int cpu_probe(char *why, size_t cap)
{
    return BL_OK; /* the CPU is always there */
}

static int cpu_count(void)
{
    return 1;
}

static int cpu_open(bl_ctx *ctx, int index, int threads, bl_device **out)
{
    cpu_device *cd = calloc(1, sizeof *cd);
    if (!cd)
        return bl_error(ctx, BL_ENOMEM, "cpu device: out of memory");
    pthread_mutex_lock(&blas_lock);
    if (threads == 0)
        threads = default_threads_locked();
    else
        (void)default_threads_locked(); /* remember the program's count before changing it */
    if (threads > BL__POOL_MAX_THREADS)
        threads = BL__POOL_MAX_THREADS;
    cd->impl.small_gemm = bl__small_gemm_available();
    const char *wide = getenv("BATCHLAB_CPU_AVX512"); /* "0": the AVX2 kernels only */
    cd->impl.wide = bl__small_gemm_wide_available() && !(wide && strcmp(wide, "0") == 0);
    if (threads > 1) {
        cd->impl.pool = bl__pool_new(threads);
        if (!cd->impl.pool)
            bl_log(ctx, BL_LOG_WARN,
                   "cpu device: could not start %d kernel threads; running them on one", threads);
    }
    /* The device's pool is what runs in parallel: OpenBLAS runs single-threaded inside its
     * threads (two thread teams spinning against each other on the same cores cost more than
     * OpenBLAS's own threading gains). Set once here, never around a call. A device without a
     * pool that was asked for one thread keeps OpenBLAS at one too, as before. */
    if ((cd->impl.pool || threads == 1) && openblas_get_num_threads() != 1) {
        openblas_set_num_threads(1);
        blas_set_by_device = true;
    }
    pthread_mutex_unlock(&blas_lock);
    cd->base.ops = &cpu_ops;
    cd->base.kind = BL_DEVICE_CPU;
    cd->base.caps = BL_DEVICE_CAP_HOST_ADDRESSABLE;
    cd->base.host_threads = cd->impl.pool ? threads : 1;
    cd->base.index = index;
    cd->base.impl = &cd->impl;
    *out = &cd->base;
    return BL_OK;
}

static void cpu_destroy(bl_device *dev)
{
    cpu_device *cd = (cpu_device *)dev;
    bl__pool_free(cd->impl.pool);
    free(cd->impl.pad.p);
    free(cd->impl.ksplit.p);
    free(cd);
}

static const bl_device_backend cpu_backend = {
    .abi = BL_DEVICE_BACKEND_ABI,
    .size = sizeof(bl_device_backend),
    .name = "cpu",
    .version = "OpenBLAS",
    .probe = cpu_probe,
    .count = cpu_count,
    .open = cpu_open,
    .destroy = cpu_destroy,
};

const bl_device_backend *bl__device_cpu_backend(void)
{
    return &cpu_backend;
}
