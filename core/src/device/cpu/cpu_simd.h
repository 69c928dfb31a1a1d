/* Internal: what the CPU backend's hand-vectorized kernels share (x86-64, GCC or Clang): the
 * target attributes of the AVX2/FMA and the AVX-512F code, forced inlining and unrolling, and
 * the lane masks of a vector's first lanes or of a range of them. Each kernel runs only where
 * its device found the instructions (bl__small_gemm_available, bl__small_gemm_wide_available).
 */
#ifndef BATCHLAB_DEVICE_CPU_SIMD_H
#define BATCHLAB_DEVICE_CPU_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <stdint.h>

#define TARGET __attribute__((target("avx2,fma")))
#define WIDE __attribute__((target("avx512f,avx2,fma")))
#define INLINE __attribute__((always_inline)) inline
#define UNROLL _Pragma("GCC unroll 8")

/* Lanes 0..r−1 set, for 0 ≤ r ≤ 8. */
TARGET static INLINE __m256i lane_mask(int64_t r)
{
    static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(const void *)(bits + 8 - r));
}

/* Lanes l < n set, for any n (clamped to 0..8). */
TARGET static INLINE __m256i lanes_below(int64_t n)
{
    return lane_mask(n < 0 ? 0 : n > 8 ? 8 : n);
}

/* Lanes l with lo ≤ l < hi set, for any lo and hi. */
TARGET static INLINE __m256i lanes_between(int64_t lo, int64_t hi)
{
    return _mm256_andnot_si256(lanes_below(lo), lanes_below(hi));
}

#endif
#endif
