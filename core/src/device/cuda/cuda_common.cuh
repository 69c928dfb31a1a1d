/* Internal: device-side building blocks the CUDA backend's kernels share — an elementwise
 * launcher over functors, block reductions in double, and the two-pass deterministic sum.
 * Included by cuda_vec.cu and cuda_image.cu only. */
#ifndef BATCHLAB_CUDA_COMMON_CUH
#define BATCHLAB_CUDA_COMMON_CUH

#include "device/cuda/cuda_internal.h"

/* Grid-stride loop over n elements: f(i) for every i < n. */
template <typename F>
__global__ void cu_each_kernel(int64_t n, F f)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        f(i);
}

/* Launches f over n elements on the device's stream; nothing for n ≤ 0. */
template <typename F>
static void cu_each(bl_device *dev, int64_t n, F f, const char *name)
{
    if (n <= 0)
        return;
    bl__cu_enter(dev);
    cu_each_kernel<<<bl__cu_blocks(dev, n), CU_THREADS, 0, cu_of(dev)->stream>>>(n, f);
    bl__cu_launched(dev, name);
}

/* The sum of v over the block (blockDim.x = CU_THREADS, a power of two), in a fixed order;
 * every thread gets it. sh has CU_THREADS doubles; the block must call this together. */
static __device__ double cu_block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double total = sh[0];
    __syncthreads(); /* sh may be reused at once */
    return total;
}

/* First pass of Σ f(i) over i < n: block b sums its grid-stride share into partials[b]. */
template <typename F>
__global__ void cu_sum_pass1(int64_t n, F f, double *partials)
{
    __shared__ double sh[CU_THREADS];
    double acc = 0.0;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        acc += f(i);
    double s = cu_block_sum(acc, sh);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = s;
}

/* Second pass: *out = Σ partials[0..parts) (one block; static: each file has its copy, since
 * the backend is compiled without relocatable device code). */
static __global__ void cu_sum_pass2(int parts, const double *partials, double *out)
{
    __shared__ double sh[CU_THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < parts; i += blockDim.x)
        acc += partials[i];
    double s = cu_block_sum(acc, sh);
    if (threadIdx.x == 0)
        *out = s;
}

/* Σ f(i) over i < n into the device slot *out, without waiting. The number of blocks depends
 * on n only, so the result is the same from run to run. */
template <typename F>
static void cu_sum(bl_device *dev, int64_t n, F f, double *out, const char *name)
{
    cu_impl *c = cu_of(dev);
    bl__cu_enter(dev);
    int64_t want = n > 0 ? (n + CU_THREADS - 1) / CU_THREADS : 1;
    int blocks = want < CU_REDUCE_BLOCKS ? (int)want : CU_REDUCE_BLOCKS;
    cu_sum_pass1<<<blocks, CU_THREADS, 0, c->stream>>>(n > 0 ? n : 0, f, c->partials);
    cu_sum_pass2<<<1, CU_THREADS, 0, c->stream>>>(blocks, c->partials, out);
    bl__cu_launched(dev, name);
}

#endif
