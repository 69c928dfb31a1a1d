/* The CPU backend's small-batch GEMM kernels (see cpu_gemm.h). Register-blocked AVX2/FMA code:
 * "nt" keeps 4 rows of B × 2 rows of A in 8 vector accumulators and reduces them across lanes
 * at the end; "rows" keeps 4 rows × 16 columns of C and broadcasts A's coefficients. Both read
 * the large operand (the weights) once per call. */
#include "device/cpu/cpu_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include "device/cpu/cpu_simd.h"


bool bl__small_gemm_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* [Σv0, Σv1, Σv2, Σv3] */
TARGET static INLINE __m128 hsum4(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
    __m256 t0 = _mm256_hadd_ps(v0, v1);
    __m256 t1 = _mm256_hadd_ps(v2, v3);
    __m256 t2 = _mm256_hadd_ps(t0, t1);
    return _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1));
}

/* C[IB×JB] block of the "nt" form; a: IB rows, b: JB rows, both of length k. */
TARGET static INLINE void nt_block(const int IB, const int JB, int64_t k, float alpha,
                                   const float *a, int64_t lda, const float *b, int64_t ldb,
                                   float beta, float *c, int64_t ldc)
{
    __m256 acc[4][2];
    UNROLL
    for (int r = 0; r < 4; r++)
        UNROLL
        for (int s = 0; s < 2; s++)
            acc[r][s] = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 av[2];
        UNROLL
        for (int s = 0; s < IB; s++)
            av[s] = _mm256_loadu_ps(a + s * lda + p);
        UNROLL
        for (int r = 0; r < JB; r++) {
            __m256 bv = _mm256_loadu_ps(b + r * ldb + p);
            UNROLL
            for (int s = 0; s < IB; s++)
                acc[r][s] = _mm256_fmadd_ps(av[s], bv, acc[r][s]);
        }
    }
    if (p < k) {
        __m256i m = lane_mask(k - p);
        __m256 av[2];
        UNROLL
        for (int s = 0; s < IB; s++)
            av[s] = _mm256_maskload_ps(a + s * lda + p, m);
        UNROLL
        for (int r = 0; r < JB; r++) {
            __m256 bv = _mm256_maskload_ps(b + r * ldb + p, m);
            UNROLL
            for (int s = 0; s < IB; s++)
                acc[r][s] = _mm256_fmadd_ps(av[s], bv, acc[r][s]);
        }
    }
    __m128 va = _mm_set1_ps(alpha), vb = _mm_set1_ps(beta);
    UNROLL
    for (int s = 0; s < IB; s++) {
        __m128 sum = _mm_mul_ps(va, hsum4(acc[0][s], acc[1][s], acc[2][s], acc[3][s]));
        float *cs = c + s * ldc;
        if (JB == 4) {
            if (beta != 0.0f)
                sum = _mm_add_ps(sum, _mm_mul_ps(vb, _mm_loadu_ps(cs)));
            _mm_storeu_ps(cs, sum);
        } else {
            float out[4];
            _mm_storeu_ps(out, sum);
            UNROLL
            for (int r = 0; r < JB; r++)
                cs[r] = beta != 0.0f ? out[r] + beta * cs[r] : out[r];
        }
    }
}

#define NT_CASE(ib, jb)                                                                        \
    nt_block(ib, jb, k, alpha, a + i * lda, lda, b + j * ldb, ldb, beta, c + i * ldc + j, ldc)

TARGET void bl__small_gemm_nt(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha,
                              const float *a, int64_t lda, const float *b, int64_t ldb,
                              float beta, float *c, int64_t ldc)
{
    for (int64_t j = j0; j < j1; j += 4) {
        int64_t jb = j1 - j < 4 ? j1 - j : 4;
        for (int64_t i = 0; i < m; i += 2) {
            if (m - i >= 2) {
                switch (jb) {
                case 4: NT_CASE(2, 4); break;
                case 3: NT_CASE(2, 3); break;
                case 2: NT_CASE(2, 2); break;
                default: NT_CASE(2, 1); break;
                }
            } else {
                switch (jb) {
                case 4: NT_CASE(1, 4); break;
                case 3: NT_CASE(1, 3); break;
                case 2: NT_CASE(1, 2); break;
                default: NT_CASE(1, 1); break;
                }
            }
        }
    }
}

/* C[IB × JV vectors] block of the "rows" form; the last vector is masked with `m` when
 * `masked` is set (then JV is 1). */
TARGET static INLINE void rows_block(const int IB, const int JV, const int masked, __m256i m,
                                     int64_t k, float alpha, const float *a, int64_t a_row,
                                     int64_t a_col, const float *b, int64_t ldb, float beta,
                                     float *c, int64_t ldc)
{
    __m256 acc[4][2];
    UNROLL
    for (int r = 0; r < 4; r++)
        UNROLL
        for (int v = 0; v < 2; v++)
            acc[r][v] = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; p++) {
        __m256 bv[2];
        UNROLL
        for (int v = 0; v < JV; v++)
            bv[v] = masked ? _mm256_maskload_ps(b + p * ldb + 8 * v, m)
                           : _mm256_loadu_ps(b + p * ldb + 8 * v);
        const float *ap = a + p * a_col;
        UNROLL
        for (int r = 0; r < IB; r++) {
            __m256 coef = _mm256_broadcast_ss(ap + r * a_row);
            UNROLL
            for (int v = 0; v < JV; v++)
                acc[r][v] = _mm256_fmadd_ps(coef, bv[v], acc[r][v]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    UNROLL
    for (int r = 0; r < IB; r++) {
        UNROLL
        for (int v = 0; v < JV; v++) {
            float *cp = c + r * ldc + 8 * v;
            __m256 out = _mm256_mul_ps(va, acc[r][v]);
            if (masked) {
                if (beta != 0.0f)
                    out = _mm256_add_ps(out, _mm256_mul_ps(vb, _mm256_maskload_ps(cp, m)));
                _mm256_maskstore_ps(cp, m, out);
            } else {
                if (beta != 0.0f)
                    out = _mm256_add_ps(out, _mm256_mul_ps(vb, _mm256_loadu_ps(cp)));
                _mm256_storeu_ps(cp, out);
            }
        }
    }
}

#define ROWS_CASE(ib, jv, masked)                                                              \
    rows_block(ib, jv, masked, mask, k, alpha, a + i * a_row, a_row, a_col, b + j, ldb, beta, \
               c + i * ldc + j, ldc)

TARGET void bl__small_gemm_rows(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k,
                                float alpha, const float *a, int64_t a_row, int64_t a_col,
                                const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    __m256i mask = lane_mask(8);
    for (int64_t i = i0; i < i1; i += 4) {
        int64_t ib = i1 - i < 4 ? i1 - i : 4;
        int64_t j = j0;
        for (; j + 16 <= j1; j += 16) {
            switch (ib) {
            case 4: ROWS_CASE(4, 2, 0); break;
            case 3: ROWS_CASE(3, 2, 0); break;
            case 2: ROWS_CASE(2, 2, 0); break;
            default: ROWS_CASE(1, 2, 0); break;
            }
        }
        for (; j < j1; j += 8) {
            int masked = j1 - j < 8;
            mask = lane_mask(masked ? j1 - j : 8);
            if (masked) {
                switch (ib) {
                case 4: ROWS_CASE(4, 1, 1); break;
                case 3: ROWS_CASE(3, 1, 1); break;
                case 2: ROWS_CASE(2, 1, 1); break;
                default: ROWS_CASE(1, 1, 1); break;
                }
            } else {
                switch (ib) {
                case 4: ROWS_CASE(4, 1, 0); break;
                case 3: ROWS_CASE(3, 1, 0); break;
                case 2: ROWS_CASE(2, 1, 0); break;
                default: ROWS_CASE(1, 1, 0); break;
                }
            }
        }
    }
}


bool bl__small_gemm_wide_available(void)
{
    __builtin_cpu_init();
    return bl__small_gemm_available() && __builtin_cpu_supports("avx512f");
}

/* rows_block on 16-lane vectors: C[IB × JV vectors], the last one masked with m. */
WIDE static INLINE void rows_block16(const int IB, const int JV, __mmask16 m, int64_t k,
                                     float alpha, const float *a, int64_t a_row, int64_t a_col,
                                     const float *b, int64_t ldb, float beta, float *c,
                                     int64_t ldc)
{
    __m512 acc[6][2];
    UNROLL
    for (int r = 0; r < 6; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < k; p++) {
        __m512 bv[2];
        UNROLL
        for (int v = 0; v < JV; v++)
            bv[v] = v == JV - 1 ? _mm512_maskz_loadu_ps(m, b + p * ldb + 16 * v)
                                : _mm512_loadu_ps(b + p * ldb + 16 * v);
        const float *ap = a + p * a_col;
        UNROLL
        for (int r = 0; r < IB; r++) {
            const __m512 coef = _mm512_set1_ps(ap[r * a_row]);
            UNROLL
            for (int v = 0; v < JV; v++)
                acc[r][v] = _mm512_fmadd_ps(coef, bv[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    UNROLL
    for (int r = 0; r < IB; r++)
        UNROLL
        for (int v = 0; v < JV; v++) {
            float *cp = c + r * ldc + 16 * v;
            const __mmask16 mv = v == JV - 1 ? m : (__mmask16)0xffff;
            __m512 out = _mm512_mul_ps(va, acc[r][v]);
            if (beta != 0.0f)
                out = _mm512_add_ps(out, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mv, cp)));
            _mm512_mask_storeu_ps(cp, mv, out);
        }
}

#define ROWS16_CASE(ib, jv)                                                                    \
    rows_block16(ib, jv, m, k, alpha, a + i * a_row, a_row, a_col, b + j, ldb, beta,            \
                 c + i * ldc + j, ldc)

WIDE void bl__small_gemm_rows_wide(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k,
                                   float alpha, const float *a, int64_t a_row, int64_t a_col,
                                   const float *b, int64_t ldb, float beta, float *c,
                                   int64_t ldc)
{
    for (int64_t i = i0; i < i1; i += 6) {
        const int64_t ib = i1 - i < 6 ? i1 - i : 6;
        for (int64_t j = j0; j < j1; j += 32) {
            const int64_t left = j1 - j < 32 ? j1 - j : 32, jv = left > 16 ? 2 : 1;
            const int64_t last = left - 16 * (jv - 1); /* 1..16 columns in the last vector */
            const __mmask16 m = (__mmask16)(last == 16 ? 0xffffu : (1u << last) - 1u);
            switch (ib * 2 + jv - 2) {
            case 12: ROWS16_CASE(6, 2); break;
            case 11: ROWS16_CASE(6, 1); break;
            case 10: ROWS16_CASE(5, 2); break;
            case 9: ROWS16_CASE(5, 1); break;
            case 8: ROWS16_CASE(4, 2); break;
            case 7: ROWS16_CASE(4, 1); break;
            case 6: ROWS16_CASE(3, 2); break;
            case 5: ROWS16_CASE(3, 1); break;
            case 4: ROWS16_CASE(2, 2); break;
            case 3: ROWS16_CASE(2, 1); break;
            case 2: ROWS16_CASE(1, 2); break;
            default: ROWS16_CASE(1, 1); break;
            }
        }
    }
}

#else /* portable reference versions, used only where the backend is told they exist */

bool bl__small_gemm_available(void)
{
    return false;
}

bool bl__small_gemm_wide_available(void)
{
    return false;
}

void bl__small_gemm_rows_wide(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k,
                              float alpha, const float *a, int64_t a_row, int64_t a_col,
                              const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    bl__small_gemm_rows(i0, i1, j0, j1, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc);
}

void bl__small_gemm_nt(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = j0; j < j1; j++) {
            float s = 0.0f;
            for (int64_t p = 0; p < k; p++)
                s += a[i * lda + p] * b[j * ldb + p];
            c[i * ldc + j] = alpha * s + (beta != 0.0f ? beta * c[i * ldc + j] : 0.0f);
        }
}

void bl__small_gemm_rows(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k, float alpha,
                         const float *a, int64_t a_row, int64_t a_col, const float *b,
                         int64_t ldb, float beta, float *c, int64_t ldc)
{
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) {
            float s = 0.0f;
            for (int64_t p = 0; p < k; p++)
                s += a[i * a_row + p * a_col] * b[p * ldb + j];
            c[i * ldc + j] = alpha * s + (beta != 0.0f ? beta * c[i * ldc + j] : 0.0f);
        }
}

#endif
