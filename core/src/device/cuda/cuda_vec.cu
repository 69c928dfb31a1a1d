/* The CUDA backend's vector kernels: BLAS-1, biases, activations, dropout, losses and the
 * fused optimizer updates. The contracts are the comments in batchlab/device.h.
 *
 * Numerics (docs/cuda.md): elementwise kernels compute each element with the expressions of
 * device/kernel_math.h or the same expression as the CPU kernel, compiled without FMA
 * contraction, so they give the CPU's bits. Sums (dot, sumsq, losses, column and channel sums)
 * accumulate in double in a fixed tree whose shape depends only on the sizes: the same result
 * from run to run, equal to the CPU's within rounding of the double sums.
 */
#include "device/cuda/cuda_common.cuh"
#include "device/kernel_math.h"

/* ---- BLAS-1 ------------------------------------------------------------------------------- */

struct axpy_f {
    float alpha;
    const float *x;
    float *y;
    __device__ void operator()(int64_t i) const { y[i] += alpha * x[i]; }
};

void bl__cu_axpy(bl_device *dev, int64_t n, float alpha, const float *x, float *y)
{
    cu_each(dev, n, axpy_f{alpha, x, y}, "axpy");
}

struct scale_f {
    float alpha;
    float *x;
    __device__ void operator()(int64_t i) const { x[i] *= alpha; }
};

void bl__cu_scale(bl_device *dev, int64_t n, float alpha, float *x)
{
    if (alpha == 1.0f)
        return;
    cu_each(dev, n, scale_f{alpha, x}, "scale");
}

struct fill_f {
    float value;
    float *x;
    __device__ void operator()(int64_t i) const { x[i] = value; }
};

void bl__cu_fill(bl_device *dev, int64_t n, float value, float *x)
{
    cu_each(dev, n, fill_f{value, x}, "fill");
}

struct dot_f {
    const float *x, *y;
    __device__ double operator()(int64_t i) const { return (double)x[i] * (double)y[i]; }
};

struct sumsq_f {
    const float *x;
    __device__ double operator()(int64_t i) const { return (double)x[i] * (double)x[i]; }
};

void bl__cu_dot(bl_device *dev, int64_t n, const float *x, const float *y, double *out)
{
    cu_sum(dev, n, dot_f{x, y}, out, "dot");
}

void bl__cu_sumsq(bl_device *dev, int64_t n, const float *x, double *out)
{
    cu_sum(dev, n, sumsq_f{x}, out, "sumsq");
}

/* ---- biases ------------------------------------------------------------------------------- */

struct add_bias_f {
    int64_t cols;
    const float *bias;
    float *y;
    __device__ void operator()(int64_t i) const { y[i] += bias[i % cols]; }
};

void bl__cu_add_bias(bl_device *dev, int64_t rows, int64_t cols, const float *bias, float *y)
{
    if (cols <= 0)
        return;
    cu_each(dev, rows * cols, add_bias_f{cols, bias, y}, "add_bias");
}

/* Column sums: a block covers 32 columns with 32 lanes of rows each (coalesced: a warp reads
 * 32 adjacent columns of one row); each lane sums its rows in double, then lane 0 adds the 32
 * lane sums in order. */
#define SUM_ROWS_COLS 32
#define SUM_ROWS_LANES 32

__global__ void sum_rows_kernel(int64_t rows, int64_t cols, const float *x, float beta,
                                float *out)
{
    __shared__ double sh[SUM_ROWS_LANES][SUM_ROWS_COLS + 1];
    int64_t c = (int64_t)blockIdx.x * SUM_ROWS_COLS + threadIdx.x;
    double acc = 0.0;
    if (c < cols)
        for (int64_t r = threadIdx.y; r < rows; r += SUM_ROWS_LANES)
            acc += (double)x[r * cols + c];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double s = 0.0;
        for (int l = 0; l < SUM_ROWS_LANES; l++)
            s += sh[l][threadIdx.x];
        out[c] = beta == 0.0f ? (float)s : (float)((double)beta * out[c] + s);
    }
}

void bl__cu_sum_rows(bl_device *dev, int64_t rows, int64_t cols, const float *x, float beta,
                     float *out)
{
    if (cols <= 0)
        return;
    bl__cu_enter(dev);
    dim3 block(SUM_ROWS_COLS, SUM_ROWS_LANES);
    unsigned blocks = (unsigned)((cols + SUM_ROWS_COLS - 1) / SUM_ROWS_COLS);
    sum_rows_kernel<<<blocks, block, 0, cu_of(dev)->stream>>>(rows < 0 ? 0 : rows, cols, x,
                                                               beta, out);
    bl__cu_launched(dev, "sum_rows");
}

struct add_channel_bias_f {
    int64_t channels, inner;
    const float *bias;
    float *y;
    __device__ void operator()(int64_t i) const { y[i] += bias[(i / inner) % channels]; }
};

void bl__cu_add_channel_bias(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *bias, float *y)
{
    if (channels <= 0 || inner <= 0)
        return;
    cu_each(dev, outer * channels * inner, add_channel_bias_f{channels, inner, bias, y},
            "add_channel_bias");
}

/* One block per channel: out[c] = beta·out[c] + Σ_{o,i} x[o][c][i] (the CPU's formula). */
__global__ void sum_channels_kernel(int64_t outer, int64_t channels, int64_t inner,
                                    const float *x, float beta, float *out)
{
    __shared__ double sh[CU_THREADS];
    int64_t c = blockIdx.x, n = outer * inner;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int64_t o = j / inner, i = j % inner;
        acc += (double)x[(o * channels + c) * inner + i];
    }
    double s = cu_block_sum(acc, sh);
    if (threadIdx.x == 0)
        out[c] = beta == 0.0f ? (float)s : (float)((double)beta * out[c] + s);
}

void bl__cu_sum_channels(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                         const float *x, float beta, float *out)
{
    if (channels <= 0)
        return;
    bl__cu_enter(dev);
    sum_channels_kernel<<<(unsigned)channels, CU_THREADS, 0, cu_of(dev)->stream>>>(
        outer < 0 ? 0 : outer, channels, inner < 0 ? 0 : inner, x, beta, out);
    bl__cu_launched(dev, "sum_channels");
}

/* ---- activations, dropout, products ------------------------------------------------------- */

struct act_forward_f {
    int act;
    const float *x;
    float *y;
    __device__ void operator()(int64_t i) const { y[i] = bl__km_act_forward(act, x[i]); }
};

void bl__cu_act_forward(bl_device *dev, bl_activation act, int64_t n, const float *x, float *y)
{
    cu_each(dev, n, act_forward_f{(int)act, x, y}, "act_forward");
}

/* x or y may be NULL when the activation does not use it (ReLU and GELU read x, tanh and
 * sigmoid read y). */
struct act_backward_f {
    int act;
    const float *x, *y, *dy;
    float *dx;
    __device__ void operator()(int64_t i) const
    {
        dx[i] = bl__km_act_backward(act, x ? x[i] : 0.0f, y ? y[i] : 0.0f, dy[i]);
    }
};

void bl__cu_act_backward(bl_device *dev, bl_activation act, int64_t n, const float *x,
                         const float *y, const float *dy, float *dx)
{
    cu_each(dev, n, act_backward_f{(int)act, x, y, dy, dx}, "act_backward");
}

struct dropout_f {
    float p, keep_scale;
    uint64_t seed, counter;
    const float *x;
    float *mask, *y;
    __device__ void operator()(int64_t i) const
    {
        float m = bl__km_dropout_mask(seed, counter, i, p, keep_scale);
        mask[i] = m;
        y[i] = x[i] * m;
    }
};

void bl__cu_dropout_forward(bl_device *dev, int64_t n, float p, uint64_t seed, uint64_t counter,
                            const float *x, float *mask, float *y)
{
    /* keep_scale computed on the host in float, as the CPU does */
    cu_each(dev, n, dropout_f{p, 1.0f / (1.0f - p), seed, counter, x, mask, y},
            "dropout_forward");
}

struct mul_f {
    const float *a, *b;
    float *out;
    __device__ void operator()(int64_t i) const { out[i] = a[i] * b[i]; }
};

void bl__cu_mul(bl_device *dev, int64_t n, const float *a, const float *b, float *out)
{
    cu_each(dev, n, mul_f{a, b, out}, "mul");
}

/* ---- losses ------------------------------------------------------------------------------- */

#define XENT_WARPS (CU_THREADS / 32)

/* One warp per row (grid-stride over rows): the softmax as the CPU's softmax_row computes it
 * (max first, the first index of the largest logit, exp of the shifted logits, the double sum,
 * one float reciprocal), the row's loss logsumexp − x[label] and whether the argmax is the
 * label. Block b writes the sum of its rows' losses to loss_parts[b] and its count to
 * count_parts[b]. */
__global__ void xent_forward_kernel(int64_t rows, int64_t classes, const float *logits,
                                    const int32_t *labels, float *probs, double *loss_parts,
                                    long long *count_parts)
{
    __shared__ double wl[XENT_WARPS];
    __shared__ long long wc[XENT_WARPS];
    const unsigned full = 0xffffffffu;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int64_t gwarp = (int64_t)blockIdx.x * XENT_WARPS + warp;
    int64_t nwarps = (int64_t)gridDim.x * XENT_WARPS;
    double loss = 0.0;
    long long correct = 0;
    for (int64_t r = gwarp; r < rows; r += nwarps) {
        const float *x = logits + r * classes;
        float *p = probs + r * classes;
        /* max and its first index */
        float best = x[0];
        int64_t best_i = 0;
        for (int64_t c = lane; c < classes; c += 32)
            if (x[c] > best || (c < best_i && x[c] == best)) {
                best = x[c];
                best_i = c;
            }
        for (int off = 16; off > 0; off >>= 1) {
            float ob = __shfl_xor_sync(full, best, off);
            long long oi = __shfl_xor_sync(full, (long long)best_i, off);
            if (ob > best || (ob == best && oi < best_i)) {
                best = ob;
                best_i = oi;
            }
        }
        double sum = 0.0;
        for (int64_t c = lane; c < classes; c += 32) {
            float e = bl__km_expf(x[c] - best);
            p[c] = e;
            sum += e;
        }
        for (int off = 16; off > 0; off >>= 1)
            sum += __shfl_xor_sync(full, sum, off);
        float inv = (float)(1.0 / sum);
        for (int64_t c = lane; c < classes; c += 32)
            p[c] *= inv;
        if (lane == 0) {
            int32_t label = labels[r];
            if (label < 0 || label >= classes) {
                loss += nan(""); /* as the CPU: an out-of-range label poisons the loss */
            } else {
                loss += ((double)best + log(sum)) - (double)x[label];
                correct += best_i == label;
            }
        }
    }
    if (lane == 0) {
        wl[warp] = loss;
        wc[warp] = correct;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double l = 0.0;
        long long k = 0;
        for (int w = 0; w < XENT_WARPS; w++) {
            l += wl[w];
            k += wc[w];
        }
        loss_parts[blockIdx.x] = l;
        count_parts[blockIdx.x] = k;
    }
}

/* *loss = Σ loss_parts, *count = Σ count_parts over `parts` (one block). */
__global__ void xent_total_kernel(int parts, const double *loss_parts,
                                  const long long *count_parts, double *loss, long long *count)
{
    __shared__ double sh[CU_THREADS];
    double l = 0.0, k = 0.0;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) {
        l += loss_parts[i];
        k += (double)count_parts[i]; /* exact: counts stay far below 2^53 */
    }
    double tl = cu_block_sum(l, sh);
    double tk = cu_block_sum(k, sh);
    if (threadIdx.x == 0) {
        *loss = tl;
        *count = (long long)tk;
    }
}

/* Reads the loss slot (and the count slot next to it) back with one copy: the one wait of a
 * loss kernel. NAN when the device has faulted. */
static double read_loss(bl_device *dev, long long *count)
{
    cu_impl *c = cu_of(dev);
    size_t bytes = sizeof *c->host_loss + (count ? sizeof *c->host_count : 0);
    cudaError_t err = cudaMemcpyAsync(c->host_loss, c->loss_slot, bytes,
                                      cudaMemcpyDeviceToHost, c->stream);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(c->stream);
    if (bl__cu_check(dev, err, "loss read-back") != BL_OK)
        return nan("");
    if (count)
        *count = *c->host_count;
    return *c->host_loss;
}

double bl__cu_xent_forward(bl_device *dev, int64_t rows, int64_t classes, const float *logits,
                           const int32_t *labels, float *probs, int64_t *correct)
{
    if (rows <= 0 || classes <= 0)
        return 0.0;
    cu_impl *c = cu_of(dev);
    bl__cu_enter(dev);
    int64_t want = (rows + XENT_WARPS - 1) / XENT_WARPS;
    int blocks = want < CU_REDUCE_BLOCKS ? (int)want : CU_REDUCE_BLOCKS;
    xent_forward_kernel<<<blocks, CU_THREADS, 0, c->stream>>>(
        rows, classes, logits, labels, probs, c->partials, c->ipartials);
    xent_total_kernel<<<1, CU_THREADS, 0, c->stream>>>(blocks, c->partials, c->ipartials,
                                                        c->loss_slot, c->count_slot);
    bl__cu_launched(dev, "xent_forward");
    long long right = 0;
    double loss = read_loss(dev, &right);
    if (correct)
        *correct += (int64_t)right;
    return loss;
}

struct xent_backward_f {
    int64_t classes;
    const float *probs;
    const int32_t *labels;
    float scale;
    float *dlogits;
    __device__ void operator()(int64_t i) const
    {
        dlogits[i] = bl__km_xent_grad_at(classes, probs, labels, scale, i);
    }
};

void bl__cu_xent_backward(bl_device *dev, int64_t rows, int64_t classes, const float *probs,
                          const int32_t *labels, float scale, float *dlogits)
{
    if (classes <= 0)
        return;
    cu_each(dev, rows * classes, xent_backward_f{classes, probs, labels, scale, dlogits},
            "xent_backward");
}

struct sqdiff_f {
    const float *y, *t;
    __device__ double operator()(int64_t i) const
    {
        double d = (double)y[i] - (double)t[i];
        return d * d;
    }
};

double bl__cu_mse_forward(bl_device *dev, int64_t n, const float *y, const float *target)
{
    if (n <= 0)
        return 0.0;
    cu_sum(dev, n, sqdiff_f{y, target}, cu_of(dev)->loss_slot, "mse_forward");
    return read_loss(dev, NULL);
}

struct mse_backward_f {
    const float *y, *t;
    float scale;
    float *dy;
    __device__ void operator()(int64_t i) const { dy[i] = (y[i] - t[i]) * scale; }
};

void bl__cu_mse_backward(bl_device *dev, int64_t n, const float *y, const float *target,
                         float scale, float *dy)
{
    cu_each(dev, n, mse_backward_f{y, target, scale, dy}, "mse_backward");
}

/* ---- optimizer updates (fused: one pass over the parameters) ------------------------------ */

struct sgd_f {
    float lr, mu, keep, wd;
    bool nesterov;
    const float *g;
    float *v, *w;
    __device__ void operator()(int64_t i) const
    {
        bl__km_sgd_one(lr, mu, keep, nesterov, wd, g[i], v ? v + i : NULL, w + i);
    }
};

void bl__cu_sgd_update(bl_device *dev, int64_t n, float lr, float momentum, float dampening,
                       bool nesterov, float weight_decay, const float *grad, float *velocity,
                       float *param)
{
    cu_each(dev, n,
            sgd_f{lr, momentum, 1.0f - dampening, weight_decay, nesterov, grad, velocity, param},
            "sgd_update");
}

struct adam_f {
    float b1, b2, c1, c2, inv1, inv2, eps, wd;
    const float *g, *w;
    float *m, *v, *dir;
    __device__ void operator()(int64_t i) const
    {
        bl__km_adam_one(b1, b2, c1, c2, inv1, inv2, eps, wd, g[i], wd != 0.0f ? w[i] : 0.0f,
                        m + i, v + i, dir + i);
    }
};

void bl__cu_adam_direction(bl_device *dev, int64_t n, float beta1, float beta2, float eps,
                           float bias1, float bias2, float weight_decay, const float *grad,
                           const float *param, float *m, float *v, float *dir)
{
    /* the same float constants as the CPU kernel, computed on the host */
    cu_each(dev, n,
            adam_f{beta1, beta2, 1.0f - beta1, 1.0f - beta2, 1.0f / bias1, 1.0f / bias2, eps,
                   weight_decay, grad, param, m, v, dir},
            "adam_direction");
}
