/* The CUDA backend's image and normalization kernels: im2col/col2im, max pooling, batch norm.
 * Contracts: batchlab/device.h; the choices the contracts leave open are the CPU's
 * (device_cpu_image.c): argmax is the index inside the [H, W] plane, the first maximum wins,
 * NaN propagates, a window entirely in the padding gives −inf and argmax −1; batch norm's
 * statistics are two-pass in double and a one-value channel leaves the running variance.
 *
 * The per-element work of im2col, col2im, max pooling and batch-norm evaluation is in
 * device/kernel_math.h, tested on the host against the CPU backend. col2im and maxpool_backward
 * gather (one thread per image element, adding its contributions in the order the CPU's loops
 * add them) instead of scattering with atomics: the CPU's bits, the same result on every run.
 */
#include "device/cuda/cuda_common.cuh"
#include "device/kernel_math.h"

/* ---- im2col / col2im ---------------------------------------------------------------------- */

struct im2col_f {
    bl_window2d w;
    const float *image;
    float *cols;
    __device__ void operator()(int64_t idx) const
    {
        cols[idx] = bl__km_im2col_at(&w, image, idx);
    }
};

void bl__cu_im2col(bl_device *dev, const bl_window2d *w, const float *image, float *cols)
{
    int64_t n = w->channels * w->kernel_h * w->kernel_w * w->out_h * w->out_w;
    cu_each(dev, n, im2col_f{*w, image, cols}, "im2col");
}

struct col2im_f {
    bl_window2d w;
    const float *cols;
    float *image;
    __device__ void operator()(int64_t idx) const
    {
        image[idx] = bl__km_col2im_at(&w, cols, image[idx], idx);
    }
};

void bl__cu_col2im(bl_device *dev, const bl_window2d *w, const float *cols, float *image)
{
    cu_each(dev, w->channels * w->height * w->width, col2im_f{*w, cols, image}, "col2im");
}

/* ---- max pooling -------------------------------------------------------------------------- */

/* One thread per output of x [batch·C planes, H, W] → y, argmax [planes, OH, OW]. */
struct maxpool_forward_f {
    bl_window2d w;
    const float *x;
    float *y;
    int32_t *argmax;
    __device__ void operator()(int64_t idx) const
    {
        y[idx] = bl__km_maxpool_at(&w, x, idx, &argmax[idx]);
    }
};

void bl__cu_maxpool_forward(bl_device *dev, const bl_window2d *w, int64_t batch, const float *x,
                            float *y, int32_t *argmax)
{
    cu_each(dev, batch * w->channels * w->out_h * w->out_w,
            maxpool_forward_f{*w, x, y, argmax}, "maxpool_forward");
}

/* One thread per input element: dx = Σ dy over the outputs whose winner it is. */
struct maxpool_backward_f {
    bl_window2d w;
    const float *dy;
    const int32_t *argmax;
    float *dx;
    __device__ void operator()(int64_t idx) const
    {
        dx[idx] = bl__km_maxpool_grad_at(&w, dy, argmax, idx);
    }
};

void bl__cu_maxpool_backward(bl_device *dev, const bl_window2d *w, int64_t batch,
                             const float *dy, const int32_t *argmax, float *dx)
{
    cu_each(dev, batch * w->channels * w->height * w->width,
            maxpool_backward_f{*w, dy, argmax, dx}, "maxpool_backward");
}

/* ---- batch normalization ------------------------------------------------------------------ */

/* Channel c's element j of n = outer·inner in [outer, C, inner]. */
static __device__ int64_t bn_at(int64_t j, int64_t c, int64_t channels, int64_t inner)
{
    return ((j / inner) * channels + c) * inner + j % inner;
}

/* One block per channel: two-pass statistics in double, the running statistics, then y. */
__global__ void bn_forward_train_kernel(int64_t outer, int64_t channels, int64_t inner,
                                        const float *x, const float *gamma, const float *beta,
                                        float eps, float momentum, float *running_mean,
                                        float *running_var, float *mean, float *invstd,
                                        float *y)
{
    __shared__ double sh[CU_THREADS];
    __shared__ float coef[3]; /* mean, gamma·invstd, beta as floats, as the CPU */
    int64_t c = blockIdx.x, n = outer * inner;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        s += x[bn_at(j, c, channels, inner)];
    double mu = cu_block_sum(s, sh) / (double)n;
    double q = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        double d = x[bn_at(j, c, channels, inner)] - mu;
        q += d * d;
    }
    double sq = cu_block_sum(q, sh);
    if (threadIdx.x == 0) {
        double m = momentum;
        double is = 1.0 / sqrt(sq / (double)n + (double)eps);
        mean[c] = (float)mu;
        invstd[c] = (float)is;
        running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mu);
        if (n > 1)
            running_var[c] = (float)((1.0 - m) * running_var[c] + m * sq / (double)(n - 1));
        coef[0] = (float)mu;
        coef[1] = (float)(is * gamma[c]);
        coef[2] = beta[c];
    }
    __syncthreads();
    float fm = coef[0], fa = coef[1], fb = coef[2];
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int64_t at = bn_at(j, c, channels, inner);
        y[at] = (x[at] - fm) * fa + fb;
    }
}

void bl__cu_bn_forward_train(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *x, const float *gamma, const float *beta, float eps,
                             float momentum, float *running_mean, float *running_var,
                             float *mean, float *invstd, float *y)
{
    if (channels <= 0 || outer * inner <= 0)
        return;
    bl__cu_enter(dev);
    bn_forward_train_kernel<<<(unsigned)channels, CU_THREADS, 0, cu_of(dev)->stream>>>(
        outer, channels, inner, x, gamma, beta, eps, momentum, running_mean, running_var, mean,
        invstd, y);
    bl__cu_launched(dev, "bn_forward_train");
}

struct bn_eval_f {
    int64_t channels, inner;
    const float *x, *gamma, *beta, *rm, *rv;
    float eps;
    float *y;
    __device__ void operator()(int64_t i) const
    {
        y[i] = bl__km_bn_eval_at(channels, inner, x, gamma, beta, rm, rv, eps, i);
    }
};

void bl__cu_bn_forward_eval(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                            const float *x, const float *gamma, const float *beta, float eps,
                            const float *running_mean, const float *running_var, float *y)
{
    if (channels <= 0 || inner <= 0)
        return;
    cu_each(dev, outer * channels * inner,
            bn_eval_f{channels, inner, x, gamma, beta, running_mean, running_var, eps, y},
            "bn_forward_eval");
}

/* One block per channel: Σdy and Σdy·(x − mean) in double, dgamma/dbeta accumulate, then dx
 * (skipped when dx is NULL). */
__global__ void bn_backward_kernel(int64_t outer, int64_t channels, int64_t inner,
                                   const float *x, const float *gamma, const float *mean,
                                   const float *invstd, const float *dy, float *dx,
                                   float *dgamma, float *dbeta)
{
    __shared__ double sh[CU_THREADS];
    __shared__ float coef[3]; /* gamma·invstd, Σdy/n, Σdy·x̂·invstd/n */
    int64_t c = blockIdx.x, n = outer * inner;
    double mu = mean[c];
    double a = 0.0, b = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int64_t at = bn_at(j, c, channels, inner);
        a += dy[at];
        b += (double)dy[at] * (x[at] - mu);
    }
    double sdy = cu_block_sum(a, sh);
    double sdx = cu_block_sum(b, sh);
    if (threadIdx.x == 0) {
        double is = invstd[c], nn = (double)n;
        dbeta[c] += (float)sdy;
        dgamma[c] += (float)(sdx * is);
        coef[0] = (float)(gamma[c] * is);
        coef[1] = (float)(sdy / nn);
        coef[2] = (float)(sdx * is * is / nn);
    }
    if (!dx)
        return; /* uniform over the block: no thread is left at a barrier */
    __syncthreads();
    float fm = mean[c], fa = coef[0], fg = coef[1], fq = coef[2];
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int64_t at = bn_at(j, c, channels, inner);
        dx[at] = fa * (dy[at] - fg - (x[at] - fm) * fq);
    }
}

void bl__cu_bn_backward(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                        const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, float *dgamma,
                        float *dbeta)
{
    if (channels <= 0 || outer * inner <= 0)
        return;
    bl__cu_enter(dev);
    bn_backward_kernel<<<(unsigned)channels, CU_THREADS, 0, cu_of(dev)->stream>>>(
        outer, channels, inner, x, gamma, mean, invstd, dy, dx, dgamma, dbeta);
    bl__cu_launched(dev, "bn_backward");
}
