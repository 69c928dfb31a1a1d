/* Internal: the CPU backend's own GEMM kernels for the small dimension of a training step
 * (a small batch), where OpenBLAS's blocked GEMM spends its time packing and synchronizing.
 * They work on a rectangle of the output so that the thread pool can split a call; each output
 * element is computed by one thread, with the same code whatever the split.
 *
 * Only built for x86-64 with AVX2 and FMA (chosen at run time); elsewhere
 * bl__small_gemm_available() is false and the backend uses OpenBLAS for everything.
 */
#ifndef BATCHLAB_CPU_GEMM_H
#define BATCHLAB_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* True when this CPU can run the kernels below. */
bool bl__small_gemm_available(void);

/* "A·Bᵀ" form: C[i][j] = alpha·Σ_p A[i][p]·B[j][p] + beta·C[i][j] for all i < m and
 * j0 ≤ j < j1. A is m×k (lda), B is n×k (ldb), C is m×n (ldc). beta = 0 ignores C's contents. */
void bl__small_gemm_nt(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc);

/* "Rows of B" form: C[i][j] = alpha·Σ_p A(i, p)·B[p][j] + beta·C[i][j] for i0 ≤ i < i1 and
 * j0 ≤ j < j1, with A(i, p) = a[i·a_row + p·a_col]. B is k×n (ldb). This is Aᵀ·B
 * (a_row = 1, a_col = lda) or A·B (a_row = lda, a_col = 1). beta = 0 ignores C's contents. */
void bl__small_gemm_rows(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k, float alpha,
                         const float *a, int64_t a_row, int64_t a_col, const float *b,
                         int64_t ldb, float beta, float *c, int64_t ldc);

/* True when this CPU has AVX-512F besides AVX2/FMA: the backend's one test for all its
 * AVX-512 kernels (this one, the convolution and max-pool ones; cpu_impl.wide). */
bool bl__small_gemm_wide_available(void);
/* bl__small_gemm_rows on AVX-512F (16-lane vectors, 6 rows × 32 columns of C at a time): each
 * element's FMA chain and epilogue are the AVX2 kernel's, so the same bits. Only where
 * bl__small_gemm_wide_available(). */
void bl__small_gemm_rows_wide(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k,
                              float alpha, const float *a, int64_t a_row, int64_t a_col,
                              const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
