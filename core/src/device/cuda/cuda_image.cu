/* The CUDA backend's image and normalization kernels: im2col/col2im, max pooling, batch norm.
 * Contracts: batchlab/device.h; the choices the contracts leave open are the CPU's
 * (device_cpu_image.c): argmax is the index inside the [H, W] plane, the first maximum wins,
 * NaN propagates, a window entirely in the padding gives −inf and argmax −1; batch norm's
 * statistics are two-pass in double and a one-value channel leaves the running variance.
 *
 * col2im and maxpool_backward gather (one thread per image element, adding its contributions
 * in the order the CPU's loops add them) instead of scattering with atomics: no atomics, the
 * same bits as the CPU and the same result on every run.
 */
#include "device/cuda/cuda_common.cuh"

/* ---- im2col / col2im ---------------------------------------------------------------------- */

/* cols [C·kh·kw, OH·OW]: element (row, col) with row = (c·kh + ki)·kw + kj, col = oh·OW + ow
 * is image[c][oh·sh − ph + ki][ow·sw − pw + kj], 0 in the padding. */
struct im2col_f {
    bl_window2d w;
    const float *image;
    float *cols;
    __device__ void operator()(int64_t idx) const
    {
        int64_t ohw = w.out_h * w.out_w;
        int64_t row = idx / ohw, col = idx % ohw;
        int64_t kj = row % w.kernel_w, ki = (row / w.kernel_w) % w.kernel_h;
        int64_t c = row / (w.kernel_w * w.kernel_h);
        int64_t oh = col / w.out_w, ow = col % w.out_w;
        int64_t ih = oh * w.stride_h - w.pad_h + ki, iw = ow * w.stride_w - w.pad_w + kj;
        cols[idx] = ih >= 0 && ih < w.height && iw >= 0 && iw < w.width
                        ? image[(c * w.height + ih) * w.width + iw]
                        : 0.0f;
    }
};

void bl__cu_im2col(bl_device *dev, const bl_window2d *w, const float *image, float *cols)
{
    int64_t n = w->channels * w->kernel_h * w->kernel_w * w->out_h * w->out_w;
    cu_each(dev, n, im2col_f{*w, image, cols}, "im2col");
}

/* First and last output index o (inclusive, clipped to [0, out)) whose window
 * [o·stride − pad, o·stride − pad + kernel) contains input index i; lo > hi when none. */
static __device__ void windows_of(int64_t i, int64_t kernel, int64_t stride, int64_t pad,
                                  int64_t out, int64_t *lo, int64_t *hi)
{
    int64_t first = i + pad - kernel + 1; /* o·stride ≥ first */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    int64_t h = (i + pad) / stride;       /* i + pad ≥ 0 */
    *hi = h < out - 1 ? h : out - 1;
}

/* image[c][ih][iw] += every cols entry im2col copied from there, in the CPU's order
 * (ki, then kj: each pair reaches a pixel at most once). */
struct col2im_f {
    bl_window2d w;
    const float *cols;
    float *image;
    __device__ void operator()(int64_t idx) const
    {
        int64_t iw = idx % w.width, ih = (idx / w.width) % w.height;
        int64_t c = idx / (w.width * w.height);
        int64_t ohw = w.out_h * w.out_w;
        float acc = image[idx];
        for (int64_t ki = 0; ki < w.kernel_h; ki++) {
            int64_t th = ih + w.pad_h - ki; /* = oh·sh */
            if (th < 0 || th % w.stride_h != 0 || th / w.stride_h >= w.out_h)
                continue;
            int64_t oh = th / w.stride_h;
            for (int64_t kj = 0; kj < w.kernel_w; kj++) {
                int64_t tw = iw + w.pad_w - kj;
                if (tw < 0 || tw % w.stride_w != 0 || tw / w.stride_w >= w.out_w)
                    continue;
                int64_t row = (c * w.kernel_h + ki) * w.kernel_w + kj;
                acc += cols[row * ohw + oh * w.out_w + tw / w.stride_w];
            }
        }
        image[idx] = acc;
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
        int64_t H = w.height, W = w.width, ohw = w.out_h * w.out_w;
        int64_t p = idx / ohw, o = idx % ohw, oh = o / w.out_w, ow = o % w.out_w;
        const float *in = x + p * H * W;
        int64_t h0 = oh * w.stride_h - w.pad_h, w0 = ow * w.stride_w - w.pad_w;
        int64_t hs = h0 < 0 ? 0 : h0, he = h0 + w.kernel_h < H ? h0 + w.kernel_h : H;
        int64_t ws = w0 < 0 ? 0 : w0, we = w0 + w.kernel_w < W ? w0 + w.kernel_w : W;
        if (hs >= he || ws >= we) {
            y[idx] = -INFINITY;
            argmax[idx] = -1;
            return;
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
        y[idx] = best;
        argmax[idx] = (int32_t)best_i;
    }
};

void bl__cu_maxpool_forward(bl_device *dev, const bl_window2d *w, int64_t batch, const float *x,
                            float *y, int32_t *argmax)
{
    cu_each(dev, batch * w->channels * w->out_h * w->out_w,
            maxpool_forward_f{*w, x, y, argmax}, "maxpool_forward");
}

/* One thread per input element: dx = Σ dy over the outputs whose winner it is, in output order
 * (the CPU zeroes dx and adds in output order too). */
struct maxpool_backward_f {
    bl_window2d w;
    const float *dy;
    const int32_t *argmax;
    float *dx;
    __device__ void operator()(int64_t idx) const
    {
        int64_t H = w.height, W = w.width, ohw = w.out_h * w.out_w;
        int64_t p = idx / (H * W), at = idx % (H * W), ih = at / W, iw = at % W;
        int64_t oh0, oh1, ow0, ow1;
        windows_of(ih, w.kernel_h, w.stride_h, w.pad_h, w.out_h, &oh0, &oh1);
        windows_of(iw, w.kernel_w, w.stride_w, w.pad_w, w.out_w, &ow0, &ow1);
        const float *g = dy + p * ohw;
        const int32_t *arg = argmax + p * ohw;
        float acc = 0.0f;
        for (int64_t oh = oh0; oh <= oh1; oh++)
            for (int64_t ow = ow0; ow <= ow1; ow++) {
                int64_t o = oh * w.out_w + ow;
                if (arg[o] == at)
                    acc += g[o];
            }
        dx[idx] = acc;
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

/* y = (x − running_mean)·a + beta with a = (float)(gamma / sqrt(running_var + eps)) in double,
 * computed per element exactly as the CPU computes it per channel. */
struct bn_eval_f {
    int64_t channels, inner;
    const float *x, *gamma, *beta, *rm, *rv;
    float eps;
    float *y;
    __device__ void operator()(int64_t i) const
    {
        int64_t c = (i / inner) % channels;
        float a = (float)(gamma[c] / sqrt((double)rv[c] + (double)eps));
        y[i] = (x[i] - rm[c]) * a + beta[c];
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
