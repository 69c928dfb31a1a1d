/* batchlab — seeded random numbers.
 *
 * PCG32 (O'Neill 2014, XSH-RR output, 64-bit state): a (seed, stream) pair gives the same
 * sequence on every run and every machine, because only fixed-width integer arithmetic is
 * used to draw integers, and floats are made from integers by exact scaling. Different streams
 * with the same seed are independent, so each consumer (weight init, shuffling, dropout,
 * validation split) takes its own stream and adding one never shifts another.
 */
#ifndef BATCHLAB_RNG_H
#define BATCHLAB_RNG_H

#include <stdint.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_rng {
    uint64_t state; /* private */
    uint64_t inc;   /* private; always odd */
} bl_rng;

/* Well-known stream numbers, so that a run's consumers never share a sequence. */
enum {
    BL_STREAM_INIT = 1,    /* weight initialization */
    BL_STREAM_SHUFFLE = 2, /* per-epoch permutations */
    BL_STREAM_SPLIT = 3,   /* train/validation split of a dataset */
    BL_STREAM_DROPOUT = 4, /* dropout masks */
    BL_STREAM_DATA = 5,    /* synthetic data generation */
    BL_STREAM_USER = 100   /* first stream free for plugins and scripts */
};

/* Seeds `rng` with a seed and a stream selector. */
BL_EXPORT void bl_rng_seed(bl_rng *rng, uint64_t seed, uint64_t stream);

/* Uniform 32-bit integer. */
BL_EXPORT uint32_t bl_rng_u32(bl_rng *rng);

/* Uniform integer in [0, bound) without modulo bias; bound 0 returns 0. */
BL_EXPORT uint32_t bl_rng_below(bl_rng *rng, uint32_t bound);

/* Uniform float in [0, 1) with 24 random bits (every value exactly representable). */
BL_EXPORT float bl_rng_uniform(bl_rng *rng);

/* Uniform double in [0, 1) with 53 random bits. */
BL_EXPORT double bl_rng_uniform_double(bl_rng *rng);

/* Standard normal (Box–Muller on doubles). */
BL_EXPORT double bl_rng_normal(bl_rng *rng);

/* Fills perm[0..n) with a uniformly random permutation of 0..n-1 (Fisher–Yates). */
BL_EXPORT void bl_rng_permutation(bl_rng *rng, int64_t *perm, int64_t n);

/* Stateless, counter-based uniform float in [0, 1) for (seed, counter): the same value on
 * every device, which is what dropout masks need to match between the CPU and the GPU. */
BL_EXPORT float bl_hash_uniform(uint64_t seed, uint64_t counter);

#ifdef __cplusplus
}
#endif
#endif
