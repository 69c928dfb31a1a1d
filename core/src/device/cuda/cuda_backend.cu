/* The CUDA device backend (libbatchlab-cuda.so): its descriptor, probe/count/open/destroy,
 * memory, copies, events, GEMM through cuBLAS, and the operation table. The kernels are in
 * cuda_vec.cu, cuda_image.cu, cuda_conv.cu and cuda_gather.cu (cuda_internal.h says how to
 * add one).
 *
 * - One compute stream per device (non-blocking) for every kernel, cuBLAS call and synchronous
 *   copy; a second stream for upload_async, which the loader's prefetch thread calls. Before
 *   such an upload the copy stream waits for the compute work queued so far, so that a buffer
 *   the loader refills is never overwritten while a queued step still reads it.
 * - Faults: a failed launch, copy or cuBLAS call becomes the device's sticky fault
 *   (bl_device_fault), which every int-returning call then reports. cudaMalloc failing is no
 *   fault: alloc returns NULL, and the host reports a clean BL_ENOMEM.
 * - GEMM is FP32. TF32 tensor cores are used only when BATCHLAB_CUDA_TF32=1 is set when the
 *   device opens (docs/cuda.md): faster on A100/H100, about 10 bits of mantissa per product.
 * - The probe never needs a GPU: without a driver cudaGetDeviceCount fails, and its error
 *   becomes the reason ("no CUDA driver", "no CUDA device").
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/cuda/cuda_internal.h"

/* cuBLAS's workspace, given to it at open so that it never allocates behind the accounting
 * (32 MiB is what NVIDIA recommends for Hopper). */
#define CU_BLAS_WORKSPACE (32u << 20)

struct bl_device_event {
    cudaEvent_t ev;
};

typedef struct cu_device {
    bl_device base;
    cu_impl impl;
    void *scratch;         /* device block behind partials, ipartials and the slots */
    void *host_scratch;    /* pinned block behind host_loss and host_count */
    void *blas_workspace;
    cudaEvent_t fence;     /* recorded on the compute stream before each upload_async */
    pthread_mutex_t fence_lock;
    bool fence_lock_ready;
} cu_device;

/* ---- errors and launches ------------------------------------------------------------------ */

static int code_of(cudaError_t err)
{
    switch (err) {
    case cudaErrorMemoryAllocation:
        return BL_ENOMEM;
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return BL_EUNSUPPORTED;
    default:
        return BL_EIO;
    }
}

void bl__cu_enter(bl_device *dev)
{
    int now = -1;
    if (cudaGetDevice(&now) != cudaSuccess || now != cu_of(dev)->ordinal)
        cudaSetDevice(cu_of(dev)->ordinal);
}

int bl__cu_check(bl_device *dev, cudaError_t err, const char *what)
{
    if (err == cudaSuccess)
        return BL_OK;
    int code = code_of(err);
    bl_device_fault(dev, code, "cuda device %d: %s failed: %s (%s)", cu_of(dev)->ordinal, what,
                    cudaGetErrorString(err), cudaGetErrorName(err));
    return code;
}

void bl__cu_launched(bl_device *dev, const char *kernel)
{
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        bl__cu_check(dev, err, kernel);
}

unsigned bl__cu_blocks(bl_device *dev, int64_t n)
{
    int64_t want = (n + CU_THREADS - 1) / CU_THREADS;
    int64_t cap = (int64_t)cu_of(dev)->sm_count * 16;
    if (cap < 1)
        cap = 1;
    return (unsigned)(want < 1 ? 1 : want < cap ? want : cap);
}

/* BL_OK, or the sticky fault already recorded. */
static int cu_status(bl_device *dev)
{
    int f = __atomic_load_n(&dev->fault, __ATOMIC_ACQUIRE);
    /* INT_MIN while the first fault is being recorded (device.c) */
    return f == 0 ? BL_OK : f < 0 && f != INT_MIN ? f : BL_EIO;
}

/* ---- memory and copies -------------------------------------------------------------------- */

static void *cu_alloc(bl_device *dev, size_t bytes)
{
    bl__cu_enter(dev);
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 256);
    if (err != cudaSuccess) {
        (void)cudaGetLastError(); /* running out of memory is no fault: clear it */
        if (err != cudaErrorMemoryAllocation) /* a broken device is */
            bl__cu_check(dev, err, "cudaMalloc");
        return NULL;
    }
    return p;
}

static void cu_release(bl_device *dev, void *ptr)
{
    if (!ptr)
        return;
    bl__cu_enter(dev);
    bl__cu_check(dev, cudaFree(ptr), "cudaFree");
}

static int cu_sync_copy(bl_device *dev, void *dst, const void *src, size_t bytes,
                        cudaMemcpyKind kind, const char *what)
{
    if (cu_status(dev) != BL_OK)
        return cu_status(dev);
    if (!bytes)
        return BL_OK;
    cu_impl *c = cu_of(dev);
    bl__cu_enter(dev);
    cudaError_t err = cudaMemcpyAsync(dst, src, bytes, kind, c->stream);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(c->stream);
    return bl__cu_check(dev, err, what);
}

static int cu_upload(bl_device *dev, void *dst, const void *src_host, size_t bytes)
{
    return cu_sync_copy(dev, dst, src_host, bytes, cudaMemcpyHostToDevice, "upload");
}

static int cu_download(bl_device *dev, void *dst_host, const void *src, size_t bytes)
{
    return cu_sync_copy(dev, dst_host, src, bytes, cudaMemcpyDeviceToHost, "download");
}

static int cu_copy(bl_device *dev, void *dst, const void *src, size_t bytes)
{
    if (cu_status(dev) != BL_OK)
        return cu_status(dev);
    if (!bytes || dst == src)
        return BL_OK;
    bl__cu_enter(dev);
    return bl__cu_check(dev,
                        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                        cu_of(dev)->stream),
                        "device copy");
}

static int cu_synchronize(bl_device *dev)
{
    cu_impl *c = cu_of(dev);
    bl__cu_enter(dev);
    cudaError_t err = cudaStreamSynchronize(c->stream);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(c->copy_stream);
    bl__cu_check(dev, err, "synchronize");
    return cu_status(dev);
}

static int cu_memory(bl_device *dev, size_t *free_bytes, size_t *total_bytes)
{
    bl__cu_enter(dev);
    return bl__cu_check(dev, cudaMemGetInfo(free_bytes, total_bytes), "memory query");
}

static void *cu_host_alloc(bl_device *dev, size_t bytes)
{
    bl__cu_enter(dev);
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 64, cudaHostAllocPortable) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cu_host_free(bl_device *dev, void *ptr)
{
    if (ptr)
        bl__cu_check(dev, cudaFreeHost(ptr), "cudaFreeHost");
}

static int cu_upload_async(bl_device *dev, void *dst, const void *src_host, size_t bytes,
                           bl_device_event *ev)
{
    if (cu_status(dev) != BL_OK)
        return cu_status(dev);
    cu_device *cd = (cu_device *)dev;
    cu_impl *c = &cd->impl;
    bl__cu_enter(dev); /* the prefetch thread's current device */
    pthread_mutex_lock(&cd->fence_lock);
    cudaError_t err = cudaEventRecord(cd->fence, c->stream);
    if (err == cudaSuccess)
        err = cudaStreamWaitEvent(c->copy_stream, cd->fence, 0);
    pthread_mutex_unlock(&cd->fence_lock);
    if (err == cudaSuccess && bytes)
        err = cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, c->copy_stream);
    if (err == cudaSuccess && ev)
        err = cudaEventRecord(ev->ev, c->copy_stream);
    return bl__cu_check(dev, err, "asynchronous upload");
}

static int cu_event_new(bl_device *dev, bl_device_event **out)
{
    bl_device_event *e = (bl_device_event *)calloc(1, sizeof *e);
    if (!e)
        return BL_ENOMEM;
    bl__cu_enter(dev);
    cudaError_t err = cudaEventCreateWithFlags(&e->ev, cudaEventDisableTiming);
    if (err != cudaSuccess) {
        free(e);
        return bl__cu_check(dev, err, "event creation");
    }
    *out = e;
    return BL_OK;
}

static void cu_event_free(bl_device *dev, bl_device_event *ev)
{
    if (!ev)
        return;
    bl__cu_enter(dev);
    cudaEventDestroy(ev->ev);
    free(ev);
}

static int cu_event_wait(bl_device *dev, bl_device_event *ev)
{
    bl__cu_enter(dev);
    bl__cu_check(dev, cudaEventSynchronize(ev->ev), "event wait");
    return cu_status(dev);
}

/* ---- matrix products (cuBLAS, column-major: row-major C = op(A)·op(B) is column-major
 * Cᵀ = op(B)ᵀ·op(A)ᵀ, so the operands swap and keep their transpose flags) ---------------- */

void bl__cu_blas_check(bl_device *dev, cublasStatus_t st, const char *what)
{
    if (st != CUBLAS_STATUS_SUCCESS)
        bl_device_fault(dev, st == CUBLAS_STATUS_ALLOC_FAILED ? BL_ENOMEM : BL_EIO,
                        "cuda device %d: %s failed: %s", cu_of(dev)->ordinal, what,
                        cublasGetStatusString(st));
}

static void cu_gemm(bl_device *dev, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                    float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                    float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k < 0)
        k = 0;
    bl__cu_enter(dev);
    bl__cu_blas_check(dev,
               cublasSgemm(cu_of(dev)->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                           trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha,
                           b, (int)ldb, a, (int)lda, &beta, c, (int)ldc),
               "cublasSgemm");
}

/* Row-major A [m×n] is column-major Aᵀ [n×m]: y = A·x is Aᵀᵀ·x (OP_T), y = Aᵀ·x is OP_N. */
static void cu_gemv(bl_device *dev, bool trans_a, int64_t m, int64_t n, float alpha,
                    const float *a, int64_t lda, const float *x, float beta, float *y)
{
    int64_t len = trans_a ? n : m;
    if (len <= 0)
        return;
    if ((trans_a ? m : n) <= 0) { /* an empty sum: y = beta·y */
        if (beta == 0.0f)
            bl__cu_fill(dev, len, 0.0f, y);
        else
            bl__cu_scale(dev, len, beta, y);
        return;
    }
    bl__cu_enter(dev);
    bl__cu_blas_check(dev,
               cublasSgemv(cu_of(dev)->blas, trans_a ? CUBLAS_OP_N : CUBLAS_OP_T, (int)n, (int)m,
                           &alpha, a, (int)lda, x, 1, &beta, y, 1),
               "cublasSgemv");
}

/* ---- the operation table ------------------------------------------------------------------ */

static const bl_device_ops cuda_ops = {
    .size = sizeof(bl_device_ops),
    .name = "cuda",
    .alloc = cu_alloc,
    .release = cu_release,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .synchronize = cu_synchronize,
    .gemm = cu_gemm,
    .gemv = cu_gemv,
    .axpy = bl__cu_axpy,
    .scale = bl__cu_scale,
    .fill = bl__cu_fill,
    .dot = bl__cu_dot,
    .sumsq = bl__cu_sumsq,
    .add_bias = bl__cu_add_bias,
    .sum_rows = bl__cu_sum_rows,
    .add_channel_bias = bl__cu_add_channel_bias,
    .sum_channels = bl__cu_sum_channels,
    .act_forward = bl__cu_act_forward,
    .act_backward = bl__cu_act_backward,
    .dropout_forward = bl__cu_dropout_forward,
    .mul = bl__cu_mul,
    .im2col = bl__cu_im2col,
    .col2im = bl__cu_col2im,
    .maxpool_forward = bl__cu_maxpool_forward,
    .maxpool_backward = bl__cu_maxpool_backward,
    .bn_forward_train = bl__cu_bn_forward_train,
    .bn_forward_eval = bl__cu_bn_forward_eval,
    .bn_backward = bl__cu_bn_backward,
    .xent_forward = bl__cu_xent_forward,
    .xent_backward = bl__cu_xent_backward,
    .mse_forward = bl__cu_mse_forward,
    .mse_backward = bl__cu_mse_backward,
    .sgd_update = bl__cu_sgd_update,
    .adam_direction = bl__cu_adam_direction,
    .memory = cu_memory,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .upload_async = cu_upload_async,
    .event_new = cu_event_new,
    .event_free = cu_event_free,
    .event_wait = cu_event_wait,
    .conv2d_forward = bl__cu_conv2d_forward,
    .conv2d_backward = bl__cu_conv2d_backward,
    .gather_rows = bl__cu_gather_rows,
    .gather_bytes = bl__cu_gather_bytes,
    /* the host's cores are free on a GPU: the loader's prefetch thread gathers */
    .host_background = NULL,
    .host_background_wait = NULL,
};

/* ---- the backend -------------------------------------------------------------------------- */

static int cu_probe(char *why, size_t cap)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err == cudaSuccess && n > 0)
        return BL_OK;
    if (err == cudaSuccess || err == cudaErrorNoDevice)
        snprintf(why, cap, "no CUDA device (the driver sees no GPU)");
    else if (err == cudaErrorInsufficientDriver)
        snprintf(why, cap,
                 "no CUDA driver (libcuda.so.1 is missing or older than the CUDA %d.%d runtime "
                 "this backend was built with)",
                 CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    else
        snprintf(why, cap, "CUDA is not usable: %s (%s)", cudaGetErrorString(err),
                 cudaGetErrorName(err));
    (void)cudaGetLastError();
    return BL_EUNSUPPORTED;
}

static int cu_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
}

static void cu_destroy(bl_device *dev)
{
    cu_device *cd = (cu_device *)dev;
    cu_impl *c = &cd->impl;
    cudaSetDevice(c->ordinal);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    if (c->copy_stream)
        cudaStreamSynchronize(c->copy_stream);
    if (c->blas)
        cublasDestroy(c->blas);
    cudaFree(cd->blas_workspace);
    cudaFree(cd->scratch);
    cudaFreeHost(cd->host_scratch);
    if (cd->fence)
        cudaEventDestroy(cd->fence);
    if (c->copy_stream)
        cudaStreamDestroy(c->copy_stream);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    if (cd->fence_lock_ready)
        pthread_mutex_destroy(&cd->fence_lock);
    (void)cudaGetLastError();
    free(cd);
}

/* The steps of open; the first failure names its step. */
static int cu_setup(bl_ctx *ctx, cu_device *cd, int index)
{
    cu_impl *c = &cd->impl;
    const char *step = "cudaSetDevice";
    cudaError_t err = cudaSetDevice(index);
    if (err == cudaSuccess) {
        step = "cudaDeviceGetAttribute";
        err = cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, index);
    }
    if (err == cudaSuccess) {
        step = "cudaStreamCreate";
        err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    }
    if (err == cudaSuccess)
        err = cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking);
    if (err == cudaSuccess) {
        step = "cudaEventCreate";
        err = cudaEventCreateWithFlags(&cd->fence, cudaEventDisableTiming);
    }
    size_t scratch = CU_REDUCE_BLOCKS * (sizeof(double) + sizeof(long long)) +
                     sizeof(double) + sizeof(long long);
    if (err == cudaSuccess) {
        step = "scratch allocation";
        err = cudaMalloc(&cd->scratch, scratch);
    }
    if (err == cudaSuccess)
        err = cudaMalloc(&cd->blas_workspace, CU_BLAS_WORKSPACE);
    if (err == cudaSuccess)
        err = cudaHostAlloc(&cd->host_scratch, sizeof(double) + sizeof(long long),
                            cudaHostAllocPortable);
    if (err != cudaSuccess) {
        int code = code_of(err);
        (void)cudaGetLastError();
        return bl_error(ctx, code, "cuda device %d: %s failed: %s", index, step,
                        cudaGetErrorString(err));
    }
    char *s = (char *)cd->scratch;
    /* [partials | ipartials | loss slot | count slot]: the two slots are adjacent, as are
     * host_loss and host_count, so a loss is read back with one copy */
    c->partials = (double *)s;
    c->ipartials = (long long *)(s + CU_REDUCE_BLOCKS * sizeof(double));
    c->loss_slot = (double *)(c->ipartials + CU_REDUCE_BLOCKS);
    c->count_slot = (long long *)(c->loss_slot + 1);
    c->host_loss = (double *)cd->host_scratch;
    c->host_count = (long long *)((char *)cd->host_scratch + sizeof(double));

    cublasStatus_t st = cublasCreate(&c->blas);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetStream(c->blas, c->stream);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetWorkspace(c->blas, cd->blas_workspace, CU_BLAS_WORKSPACE);
    const char *tf32 = getenv("BATCHLAB_CUDA_TF32");
    c->tf32 = tf32 && strcmp(tf32, "1") == 0;
    if (st == CUBLAS_STATUS_SUCCESS) /* the default mode does FP32 products in FP32 */
        st = cublasSetMathMode(c->blas, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                : CUBLAS_DEFAULT_MATH);
    if (st != CUBLAS_STATUS_SUCCESS)
        return bl_error(ctx, st == CUBLAS_STATUS_ALLOC_FAILED ? BL_ENOMEM : BL_EIO,
                        "cuda device %d: cuBLAS setup failed: %s", index,
                        cublasGetStatusString(st));
    if (pthread_mutex_init(&cd->fence_lock, NULL) != 0)
        return bl_error(ctx, BL_ENOMEM, "cuda device %d: cannot create a mutex", index);
    cd->fence_lock_ready = true;
    return BL_OK;
}

static int cu_open(bl_ctx *ctx, int index, int threads, bl_device **out)
{
    (void)threads; /* a GPU computes with its own cores */
    cu_device *cd = (cu_device *)calloc(1, sizeof *cd);
    if (!cd)
        return bl_error(ctx, BL_ENOMEM, "cuda device: out of memory");
    cd->impl.ordinal = index;
    int rc = cu_setup(ctx, cd, index);
    if (rc != BL_OK) {
        cu_destroy(&cd->base);
        return rc;
    }
    cd->base.ops = &cuda_ops;
    cd->base.kind = BL_DEVICE_CUDA;
    cd->base.index = index;
    cd->base.caps = BL_DEVICE_CAP_ASYNC;
    cd->base.host_threads = 0;
    cd->base.impl = &cd->impl;
    *out = &cd->base;
    return BL_OK;
}

/* "CUDA 13.0 runtime with cuBLAS" from the runtime version this backend was built with. */
static const char *backend_version(void)
{
    static char text[48];
    snprintf(text, sizeof text, "CUDA %d.%d runtime with cuBLAS", CUDART_VERSION / 1000,
             CUDART_VERSION % 1000 / 10);
    return text;
}

extern "C" BL_EXPORT const bl_device_backend *batchlab_device_backend(void)
{
    /* initialized once, thread-safely (a C++ function-local static) */
    static const bl_device_backend backend = {
        .abi = BL_DEVICE_BACKEND_ABI,
        .size = sizeof(bl_device_backend),
        .name = "cuda",
        .version = backend_version(),
        .probe = cu_probe,
        .count = cu_count,
        .open = cu_open,
        .destroy = cu_destroy,
    };
    return &backend;
}
