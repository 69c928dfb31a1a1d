/* Seeded random numbers: PCG32 reference values, reproducibility, ranges, permutations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* pcg32_srandom_r(42, 54) from the PCG reference implementation (pcg32-demo): if these change,
 * every seeded run in every store would change with them. */
static void test_pcg_reference_values(void **state)
{
    static const uint32_t expected[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                                         0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    bl_rng rng;
    bl_rng_seed(&rng, 42, 54);
    for (int i = 0; i < 6; i++)
        assert_int_equal(bl_rng_u32(&rng), expected[i]);
}

/* First values of the streams batchlab itself uses, pinned so that drift across machines,
 * compilers or refactors is caught (floats are made from integers by exact scaling, so these
 * are exact on every machine). */
static void test_known_first_values(void **state)
{
    bl_rng rng;
    bl_rng_seed(&rng, 42, BL_STREAM_INIT);
    assert_int_equal(bl_rng_u32(&rng), 0x4df1ccf9u);
    assert_int_equal(bl_rng_u32(&rng), 0xe5838752u);
    assert_int_equal(bl_rng_u32(&rng), 0x58ed9e10u);

    bl_rng_seed(&rng, 42, BL_STREAM_INIT);
    assert_true(bl_rng_uniform(&rng) == (float)(0x4df1ccf9u >> 8) / 16777216.0f);
    assert_true(bl_rng_uniform(&rng) == (float)(0xe5838752u >> 8) / 16777216.0f);
    /* 27 + 26 bits of the next two draws */
    double d = (double)(((uint64_t)(0x58ed9e10u >> 5) << 26) | (0xf3e37b51u >> 6)) /
               9007199254740992.0;
    assert_true(bl_rng_uniform_double(&rng) == d);

    bl_rng_seed(&rng, 7, BL_STREAM_SHUFFLE);
    static const uint32_t below[5] = {812, 483, 270, 901, 921};
    for (int i = 0; i < 5; i++)
        assert_int_equal(bl_rng_below(&rng, 1000), below[i]);

    bl_rng_seed(&rng, 7, BL_STREAM_SHUFFLE);
    int64_t perm[10];
    static const int64_t want[10] = {0, 4, 3, 9, 8, 5, 1, 6, 7, 2};
    bl_rng_permutation(&rng, perm, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(perm[i], want[i]);

    assert_true(bl_hash_uniform(1, 0) == 0.362396538f);
    assert_true(bl_hash_uniform(123456789, 987654321) == 0.948345542f);
}

static void test_same_seed_same_sequence(void **state)
{
    bl_rng a, b, c;
    bl_rng_seed(&a, 1234, BL_STREAM_DATA);
    bl_rng_seed(&b, 1234, BL_STREAM_DATA);
    bl_rng_seed(&c, 1234, BL_STREAM_DATA + 1);
    int same_as_other_stream = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = bl_rng_u32(&a);
        assert_int_equal(x, bl_rng_u32(&b));
        same_as_other_stream += x == bl_rng_u32(&c);
    }
    assert_true(same_as_other_stream < 5); /* another stream is another sequence */
    for (int i = 0; i < 100; i++) {
        double x = bl_rng_normal(&a), y = bl_rng_normal(&b);
        assert_memory_equal(&x, &y, sizeof x);
    }
}

static void test_uniform_ranges(void **state)
{
    bl_rng rng;
    bl_rng_seed(&rng, 99, BL_STREAM_USER);
    double sum = 0.0, sumsq = 0.0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = bl_rng_uniform(&rng);
        assert_true(u >= 0.0f && u < 1.0f);
        double d = bl_rng_uniform_double(&rng);
        assert_true(d >= 0.0 && d < 1.0);
        sum += u;
        double z = bl_rng_normal(&rng);
        assert_true(isfinite(z));
        sumsq += z * z;
    }
    assert_true(fabs(sum / n - 0.5) < 0.005);
    assert_true(fabs(sumsq / n - 1.0) < 0.02);

    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t k = bl_rng_below(&rng, 7);
        assert_true(k < 7);
        counts[k]++;
    }
    for (int k = 0; k < 7; k++)
        assert_true(abs(counts[k] - 10000) < 500);
    assert_int_equal(bl_rng_below(&rng, 0), 0);
    assert_int_equal(bl_rng_below(&rng, 1), 0);

    for (uint64_t i = 0; i < 100000; i++) {
        float h = bl_hash_uniform(5, i);
        assert_true(h >= 0.0f && h < 1.0f);
    }
    assert_true(bl_hash_uniform(5, 17) == bl_hash_uniform(5, 17));
    assert_true(bl_hash_uniform(5, 17) != bl_hash_uniform(6, 17));
}

static void test_permutation_is_valid(void **state)
{
    bl_rng rng;
    bl_rng_seed(&rng, 3, BL_STREAM_SHUFFLE);
    for (int64_t n = 0; n <= 1000; n = n ? n * 3 : 1) {
        int64_t *perm = malloc((size_t)(n ? n : 1) * sizeof *perm);
        char *seen = calloc((size_t)(n ? n : 1), 1);
        assert_non_null(perm);
        assert_non_null(seen);
        bl_rng_permutation(&rng, perm, n);
        for (int64_t i = 0; i < n; i++) {
            assert_true(perm[i] >= 0 && perm[i] < n);
            assert_false(seen[perm[i]]);
            seen[perm[i]] = 1;
        }
        free(perm);
        free(seen);
    }
    /* every element lands in every position about equally often */
    int pos0[5] = {0};
    for (int t = 0; t < 50000; t++) {
        int64_t p[5];
        bl_rng_permutation(&rng, p, 5);
        pos0[p[0]]++;
    }
    for (int k = 0; k < 5; k++)
        assert_true(abs(pos0[k] - 10000) < 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcg_reference_values),
        cmocka_unit_test(test_known_first_values),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_uniform_ranges),
        cmocka_unit_test(test_permutation_is_valid),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
