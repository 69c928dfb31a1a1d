#include "batchlab/rng.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

void bl_rng_seed(bl_rng *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0;
    rng->inc = (stream << 1) | 1u;
    bl_rng_u32(rng);
    rng->state += seed;
    bl_rng_u32(rng);
}

uint32_t bl_rng_u32(bl_rng *rng)
{
    uint64_t old = rng->state;
    rng->state = old * PCG_MULT + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

uint32_t bl_rng_below(bl_rng *rng, uint32_t bound)
{
    if (bound == 0)
        return 0;
    /* Reject the low values that would make the modulo uneven. */
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t r = bl_rng_u32(rng);
        if (r >= threshold)
            return r % bound;
    }
}

float bl_rng_uniform(bl_rng *rng)
{
    return (float)(bl_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

double bl_rng_uniform_double(bl_rng *rng)
{
    uint64_t hi = bl_rng_u32(rng) >> 5; /* 27 bits */
    uint64_t lo = bl_rng_u32(rng) >> 6; /* 26 bits */
    return (double)((hi << 26) | lo) * (1.0 / 9007199254740992.0);
}

double bl_rng_normal(bl_rng *rng)
{
    double u1 = bl_rng_uniform_double(rng);
    double u2 = bl_rng_uniform_double(rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void bl_rng_permutation(bl_rng *rng, int64_t *perm, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j;
        if (i < (int64_t)UINT32_MAX) {
            j = bl_rng_below(rng, (uint32_t)(i + 1));
        } else {
            uint64_t r = ((uint64_t)bl_rng_u32(rng) << 32) | bl_rng_u32(rng);
            j = (int64_t)(r % (uint64_t)(i + 1));
        }
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

float bl_hash_uniform(uint64_t seed, uint64_t counter)
{
    /* splitmix64 finalizer over a combination of seed and counter */
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + counter + 0x632BE59BD9B4E019ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}
