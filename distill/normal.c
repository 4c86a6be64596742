/* normal.c: Box-Muller normals in vectorisable loops (normal.h).
 *
 * log x: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s) with
 * s = (m - 1) / (m + 1), |s| <= 0.172, summed as 2 s (1 + s^2/3 + ... + s^22/23)
 * (the next term is below 1e-17 of the sum); e ln 2 in two parts (Cody-Waite), the
 * high part with trailing zeros so that e * hi is exact.
 * cos 2 pi u: u folded to a in [0, 1/2] exactly (u is a multiple of 2^-53), then
 * to r in [-1/8, 1/8] by the quarter-turn symmetries; cos or sin of 2 pi r by
 * their Taylor series to x^16 and x^17 (remainder below 2e-18 for |x| <= pi/4).
 * Selects, not branches, so every lane runs the same operations. */
#include "distill/normal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "distill/hot_loop.h"

static inline uint64_t bits_of(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static inline double double_of(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* v as a double, for v < 2^52, by placing it in the mantissa of 2^52: exact, and a
 * vector operation where the CPU has no 64-bit integer conversion (AVX2, AVX-512F). */
static inline double small_to_double(uint64_t v)
{
    return double_of(0x4330000000000000ULL | v) - 0x1.0p52;
}

/* rng.h's uniform, (mix >> 11) 2^-53, with the 53-bit integer converted in two exact
 * halves so that the loop vectorises; the same bits. */
static inline double uniform_of(uint64_t state)
{
    uint64_t v = dk_rng_mix(state) >> 11;
    double hi = small_to_double(v >> 26) * 0x1.0p26, lo = small_to_double(v & 0x3FFFFFFULL);
    return (hi + lo) * 0x1.0p-53;
}

/* Series coefficients, highest power first: 1/(2k+1) for k = 11 .. 1 (atanh, times
 * s^2k), then (-1)^k/(2k)! for k = 8 .. 0 (cos) and (-1)^k/(2k+1)! for k = 8 .. 1
 * (sin, the x term added apart). */
static const double atanh_terms[] = {1.0 / 23, 1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13,
                                     1.0 / 11, 1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3};
static const double cos_terms[] = {4.779477332387385e-14,
                                   -1.1470745597729725e-11,
                                   2.08767569878681e-09,
                                   -2.755731922398589e-07,
                                   2.48015873015873e-05,
                                   -0.001388888888888889,
                                   0.041666666666666664,
                                   -0.5,
                                   1.0};
static const double sin_terms[] = {
    2.8114572543455206e-15, -7.647163731819816e-13, 1.6059043836821613e-10, -2.505210838544172e-08,
    2.7557319223985893e-06, -0.0001984126984126984, 0.008333333333333333,   -0.16666666666666666};

/* c[0] x^(n-1) + ... + c[n-1] by Horner's rule. */
static inline double horner(const double *c, int n, double x)
{
    double p = c[0];
#pragma GCC unroll 16
    for (int k = 1; k < n; k++)
        p = p * x + c[k];
    return p;
}

static inline double log_unit(double x)
{
    uint64_t b = bits_of(x);
    double e = small_to_double(b >> 52) - 1023.0;
    double m = double_of((b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL); /* [1, 2) */
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e = big ? e + 1 : e;
    double f = m - 1.0; /* exact */
    double s = f / (2.0 + f), s2 = s * s;
    double p = horner(atanh_terms, (int)(sizeof atanh_terms / sizeof *atanh_terms), s2);
    double log_m = 2 * s + 2 * s * (p * s2);
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 1.9082149292705877e-10;
    return e * ln2_hi + (e * ln2_lo + log_m);
}

static inline double cos_turn(double u)
{
    double t = u >= 0.5 ? u - 1.0 : u; /* [-1/2, 1/2), exact */
    double a = fabs(t);
    int mid = a > 0.125, far = a > 0.375;
    double r = far ? 0.5 - a : (mid ? 0.25 - a : a); /* exact, |r| <= 1/8 */
    double x = r * 6.283185307179586, x2 = x * x;
    double c = horner(cos_terms, (int)(sizeof cos_terms / sizeof *cos_terms), x2);
    double s = horner(sin_terms, (int)(sizeof sin_terms / sizeof *sin_terms), x2);
    s = x + x * (s * x2);
    double v = (mid & !far) ? s : c;
    return far ? -v : v;
}

double dk_normal_log(double x)
{
    return log_unit(x);
}

double dk_normal_cos_turn(double u)
{
    return cos_turn(u);
}

/* The i-th normal of the stream at s0. */
static inline double normal_at(uint64_t s0, size_t i)
{
    uint64_t k = 2 * (uint64_t)i;
    double u1 = uniform_of(s0 + (k + 1) * DK_RNG_STEP), u2 = uniform_of(s0 + (k + 2) * DK_RNG_STEP);
    u1 = u1 < 1e-300 ? 1e-300 : u1;
    return sqrt(-2.0 * log_unit(u1)) * cos_turn(u2);
}

/* Values per group. Filling a fixed-count group at a time measured 5.1 -> 4.4 ms per
 * 655 k draws against one loop over all (bench_layers; groups of 16, 32 and 64 alike),
 * the same operations per value. */
#define FILL_GROUP 32

DK_HOT_LOOP void dk_normal_fill(const dk_rng *r, size_t n, double *z)
{
    const uint64_t s0 = r->state;
    size_t i = 0;
    for (; i + FILL_GROUP <= n; i += FILL_GROUP) {
        double g[FILL_GROUP];
        for (int l = 0; l < FILL_GROUP; l++)
            g[l] = normal_at(s0, i + (size_t)l);
        memcpy(z + i, g, sizeof g);
    }
    for (; i < n; i++)
        z[i] = normal_at(s0, i);
}
