/* rng.h: a small, seedable, counter-friendly PRNG (splitmix64) for weight
 * initialisation, sampling and augmentation. State is explicit: no globals,
 * so the same seed gives the same stream whatever else runs. */
#ifndef DK_RNG_H
#define DK_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct dk_rng {
    uint64_t state;
} dk_rng;

/* splitmix64's increment of the state per draw. */
#define DK_RNG_STEP 0x9E3779B97F4A7C15ULL

static inline dk_rng dk_rng_seed(uint64_t seed) { return (dk_rng){seed * DK_RNG_STEP + 1}; }

/* splitmix64's output function: the draw made when the state becomes z. */
static inline uint64_t dk_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t dk_rng_next(dk_rng *r) { return dk_rng_mix(r->state += DK_RNG_STEP); }

/* Jump ahead n draws of dk_rng_next (splitmix64's state moves by a constant per
 * draw): a stream can be cut into pieces generated on several threads, with the
 * same values as one thread drawing them all. */
static inline void dk_rng_skip(dk_rng *r, uint64_t n) { r->state += n * DK_RNG_STEP; }

/* Uniform in [0, 1). */
static inline double dk_rng_uniform(dk_rng *r) { return (dk_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n). */
static inline uint64_t dk_rng_below(dk_rng *r, uint64_t n) { return n ? dk_rng_next(r) % n : 0; }

/* Standard normal (Box-Muller; one value per call, the second is discarded for
 * simplicity): two draws of dk_rng_next per value. */
static inline double dk_rng_normal(dk_rng *r)
{
    double u1 = dk_rng_uniform(r), u2 = dk_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
