/* test_normal.c: the vectorised normal draws (distill/normal.h) against libm,
 * long double and dk_rng_normal: log and cos within a few units in the last place
 * over their whole ranges and at the edges, the draws the same stream as dk_rng_normal's to the
 * last bits of a double (and, as floats, but for a handful in 10^7), the same
 * values however the stream is cut, and the moments of a normal. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/normal.h"
#include "distill/rng.h"

/* |a - b| in units of the last place of b. */
static double ulps(double a, double b)
{
    return fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b));
}

Test(normal, log_is_within_a_few_ulp_of_libm)
{
    dk_rng r = dk_rng_seed(1);
    double worst = 0;
    for (int i = 0; i < 2000000; i++) {
        double x = dk_rng_uniform(&r);
        if (i % 4 == 1) x = ldexp(x, -(int)(dk_rng_below(&r, 990))); /* down to 1e-300 */
        if (x < 1e-300) x = 1e-300;
        double u = ulps(dk_normal_log(x), log(x));
        if (u > worst) worst = u;
    }
    const double edges[] = {
        1e-300,    1.0, 0.5, 0.70710678118654746, 0.70710678118654757, 0.9999999999999999,
        0x1.0p-53, 0.25};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        double u = ulps(dk_normal_log(edges[i]), log(edges[i]));
        cr_assert_leq(u, 4, "log(%.17g): %.17g, libm %.17g", edges[i], dk_normal_log(edges[i]),
                      log(edges[i]));
        if (u > worst) worst = u;
    }
    cr_assert_eq(dk_normal_log(1.0), 0.0);
    cr_log_info("log: worst %.2f ulp", worst);
    cr_assert_leq(worst, 4);
}

/* Against cosl in long double (whose 2 pi u is rounded 2^11 times finer than a
 * double's): libm's cos(2 pi u) in double is off by up to half an ulp of 2 pi u
 * (4e-16) near the zeros of cos, ours folds u exactly first. */
Test(normal, cos_turn_is_within_a_few_ulp_of_long_double)
{
    const long double two_pi = 6.283185307179586476925286766559L;
    dk_rng r = dk_rng_seed(2);
    double worst = 0;
    for (int i = 0; i < 2000000; i++) {
        double u = dk_rng_uniform(&r);
        double want = (double)cosl(two_pi * u), got = dk_normal_cos_turn(u);
        double err = fabs(got - want) / DBL_EPSILON;
        cr_assert_leq(err, 4, "u %.17g: %.17g vs %.17g", u, got, want);
        if (err > worst) worst = err;
    }
    const double edges[] = {0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.9999999999999999};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        cr_assert_leq(fabs(dk_normal_cos_turn(edges[i]) - (double)cosl(two_pi * edges[i])),
                      4 * DBL_EPSILON, "u %g", edges[i]);
    cr_assert_eq(dk_normal_cos_turn(0), 1.0);
    cr_assert_eq(dk_normal_cos_turn(0.5), -1.0);
    cr_log_info("cos: worst %.2f units of 2^-52 (absolute)", worst);
}

Test(normal, draws_are_dk_rng_normal_to_the_last_bits)
{
    size_t n = 4000000;
    double *z = malloc(n * sizeof *z);
    cr_assert(z);
    dk_rng start = dk_rng_seed(12345), one = start;
    dk_normal_fill(&start, n, z);
    size_t float_differs = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = dk_rng_normal(&one);
        double err = fabs(z[i] - want) / (fabs(want) + 1e-300);
        /* libm's cos argument rounding (4e-16) times sqrt(-2 log u1) <= 8.6 */
        cr_assert_leq(fabs(z[i] - want), 1e-14, "draw %zu: %.17g vs %.17g", i, z[i], want);
        if (err > worst) worst = err;
        float_differs += (float)(0.1 * z[i]) != (float)(0.1 * want);
    }
    cr_log_info("draws: worst relative error %.3g; %zu of %zu differ as floats", worst,
                float_differs, n);
    cr_assert_leq(float_differs, 4, "%zu of %zu draws differ as floats", float_differs, n);
    free(z);
}

Test(normal, any_cut_of_the_stream_gives_the_same_values)
{
    size_t n = 1000;
    double all[1000], part[1000];
    dk_rng r = dk_rng_seed(7);
    dk_normal_fill(&r, n, all);
    for (size_t at = 0; at < n;) {
        size_t m = (at * 7 + 13) % 97 + 1;
        if (m > n - at) m = n - at;
        dk_rng p = dk_rng_seed(7);
        dk_rng_skip(&p, 2 * at);
        dk_normal_fill(&p, m, part + at);
        at += m;
    }
    cr_assert_eq(memcmp(all, part, sizeof all), 0);
}

Test(normal, moments_are_a_standard_normal)
{
    size_t n = 1000000;
    double *z = malloc(n * sizeof *z), s = 0, q = 0, k = 0;
    cr_assert(z);
    dk_rng r = dk_rng_seed(99);
    dk_normal_fill(&r, n, z);
    for (size_t i = 0; i < n; i++) {
        s += z[i];
        q += z[i] * z[i];
        k += z[i] * z[i] * z[i] * z[i];
    }
    double mean = s / n, var = q / n - mean * mean;
    cr_assert_leq(fabs(mean), 0.005, "mean %g", mean);
    cr_assert_leq(fabs(var - 1), 0.01, "variance %g", var);
    cr_assert_leq(fabs(k / n - 3), 0.05, "fourth moment %g", k / n);
    free(z);
}
