/* The CUDA backend's whole-batch convolution (bl_device_ops.conv2d_forward / conv2d_backward,
 * contracts in batchlab/device.h).
 *
 * The batch is processed in chunks of S = min(slots, batch) images: one kernel writes the
 * column matrices of the chunk's images into the scratch (a batched im2col), and one
 * cublasSgemmStridedBatched call does the chunk's products. A 1×1 convolution with stride 1
 * and no padding needs no columns: the images are their own column matrices.
 *
 * Scratch, slots·(K·P + O·K) floats: [S column matrices K×P | S partial weight gradients O×K].
 * Backward: partial gradient i accumulates dy[n]·cols(n)ᵀ over the images n ≡ i (mod S) (the
 * chunk's product with beta 0 for the first chunk, 1 after), then one kernel adds the S
 * partials in order into dweight (beta·dweight + Σ): the same bits on every run. The columns'
 * gradient Wᵀ·dy[n] overwrites the chunk's column matrices once the weight gradient has read
 * them (same stream), and a batched col2im gathers it into dx (starting from 0: overwrite).
 *
 * Per element, im2col and col2im are device/kernel_math.h's (the CPU's bits); the products
 * are cuBLAS FP32 (or TF32, see docs/cuda.md), so results agree with the CPU within the GEMM
 * tolerance.
 */
#include "device/cuda/cuda_common.cuh"
#include "device/kernel_math.h"

static bool is_direct(const bl_window2d *w)
{
    return w->kernel_h == 1 && w->kernel_w == 1 && w->stride_h == 1 && w->stride_w == 1 &&
           w->pad_h == 0 && w->pad_w == 0;
}

/* cols[i] = im2col(x[i]) for the images of a chunk (one thread per column entry). */
struct im2col_batch_f {
    bl_window2d w;
    int64_t kp, in_n;
    const float *x;
    float *cols;
    __device__ void operator()(int64_t idx) const
    {
        int64_t i = idx / kp;
        cols[idx] = bl__km_im2col_at(&w, x + i * in_n, idx % kp);
    }
};

/* dx[i] = col2im(cols[i]) from zero, for the images of a chunk (one thread per pixel). */
struct col2im_batch_f {
    bl_window2d w;
    int64_t kp, in_n;
    const float *cols;
    float *dx;
    __device__ void operator()(int64_t idx) const
    {
        int64_t i = idx / in_n;
        dx[idx] = bl__km_col2im_at(&w, cols + i * kp, 0.0f, idx % in_n);
    }
};

/* dweight = beta·dweight + Σ_{i<parts} part[i], parts added in order (beta = 0: overwrite). */
struct sum_parts_f {
    int64_t parts, ok;
    float beta;
    const float *part;
    float *dweight;
    __device__ void operator()(int64_t j) const
    {
        float acc = part[j];
        for (int64_t i = 1; i < parts; i++)
            acc += part[i * ok + j];
        dweight[j] = beta == 0.0f ? acc : beta * dweight[j] + acc;
    }
};

/* Row-major y[i] [m×n] = op_a(a[i]) · op_b(b[i]) + beta·y[i] for `count` matrices with the given
 * strides (cuBLAS is column-major: the operands swap, as in cu_gemm). */
static void gemm_batched(bl_device *dev, bool trans_a, bool trans_b, int64_t m, int64_t n,
                         int64_t k, const float *a, int64_t lda, long long stride_a,
                         const float *b, int64_t ldb, long long stride_b, float beta, float *c,
                         int64_t ldc, long long stride_c, int64_t count)
{
    const float one = 1.0f;
    bl__cu_blas_check(dev,
                      cublasSgemmStridedBatched(
                          cu_of(dev)->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                          trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, b,
                          (int)ldb, stride_b, a, (int)lda, stride_a, &beta, c, (int)ldc,
                          stride_c, (int)count),
                      "cublasSgemmStridedBatched");
}

void bl__cu_conv2d_forward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                           int64_t batch, const float *x, const float *weight,
                           const float *bias, float *y, int64_t slots, float *scratch)
{
    const int64_t O = out_channels, K = w->channels * w->kernel_h * w->kernel_w;
    const int64_t P = w->out_h * w->out_w, in_n = w->channels * w->height * w->width;
    if (batch <= 0 || O <= 0 || P <= 0)
        return;
    const bool direct = is_direct(w);
    const int64_t S = slots < batch ? (slots > 0 ? slots : 1) : batch;
    bl__cu_enter(dev);
    for (int64_t n0 = 0; n0 < batch; n0 += S) {
        const int64_t s = batch - n0 < S ? batch - n0 : S;
        const float *cols = x + n0 * in_n; /* [K, P] per image when direct (in_n = K·P) */
        long long stride = (long long)in_n;
        if (!direct) {
            cu_each(dev, s * K * P, im2col_batch_f{*w, K * P, in_n, x + n0 * in_n, scratch},
                    "conv2d im2col");
            cols = scratch;
            stride = (long long)(K * P);
        }
        /* y[n] [O, P] = weight [O, K] · cols [K, P] */
        gemm_batched(dev, false, false, O, P, K, weight, K, 0, cols, P, stride, 0.0f,
                     y + n0 * O * P, P, (long long)(O * P), s);
    }
    if (bias)
        bl__cu_add_channel_bias(dev, batch, O, P, bias, y);
}

void bl__cu_conv2d_backward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                            int64_t batch, const float *x, const float *weight,
                            const float *dy, float beta, float *dweight, float *dx,
                            int64_t slots, float *scratch)
{
    const int64_t O = out_channels, K = w->channels * w->kernel_h * w->kernel_w;
    const int64_t P = w->out_h * w->out_w, in_n = w->channels * w->height * w->width;
    if (O <= 0 || K <= 0)
        return;
    if (batch <= 0 || P <= 0) { /* an empty sum: dweight = beta·dweight; dx = 0 */
        if (beta == 0.0f)
            bl__cu_fill(dev, O * K, 0.0f, dweight);
        else
            bl__cu_scale(dev, O * K, beta, dweight);
        if (dx && batch > 0)
            bl__cu_fill(dev, batch * in_n, 0.0f, dx);
        return;
    }
    const bool direct = is_direct(w);
    if (slots < 1)
        slots = 1;
    const int64_t S = slots < batch ? slots : batch;
    float *cols_all = scratch;               /* [S][K, P] */
    float *parts = scratch + slots * K * P;  /* [S][O, K] */
    bl__cu_enter(dev);
    for (int64_t n0 = 0; n0 < batch; n0 += S) {
        const int64_t s = batch - n0 < S ? batch - n0 : S;
        const float *cols = x + n0 * in_n;
        long long stride = (long long)in_n;
        if (!direct) {
            cu_each(dev, s * K * P, im2col_batch_f{*w, K * P, in_n, x + n0 * in_n, cols_all},
                    "conv2d im2col");
            cols = cols_all;
            stride = (long long)(K * P);
        }
        /* part[i] [O, K] (+)= dy[n] [O, P] · cols[K, P]ᵀ */
        gemm_batched(dev, false, true, O, K, P, dy + n0 * O * P, P, (long long)(O * P), cols,
                     P, stride, n0 == 0 ? 0.0f : 1.0f, parts, K, (long long)(O * K), s);
        if (!dx)
            continue;
        /* the columns' gradient weightᵀ [K, O] · dy[n] [O, P]: straight into dx when direct */
        float *dcols = direct ? dx + n0 * in_n : cols_all;
        gemm_batched(dev, true, false, K, P, O, weight, K, 0, dy + n0 * O * P, P,
                     (long long)(O * P), 0.0f, dcols, P, (long long)(K * P), s);
        if (!direct)
            cu_each(dev, s * in_n, col2im_batch_f{*w, K * P, in_n, cols_all, dx + n0 * in_n},
                    "conv2d col2im");
    }
    cu_each(dev, O * K, sum_parts_f{S, O * K, beta, parts, dweight}, "conv2d weight gradient");
}
