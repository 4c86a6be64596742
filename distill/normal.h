/* normal.h: many standard normal draws at once from the splitmix64 stream of
 * rng.h, for the hot loops that need millions (precompute's noisy passes).
 *
 * Value i is Box-Muller from draws 2i and 2i + 1 of the stream, as dk_rng_normal
 * draws it: sqrt(-2 log u1) cos(2 pi u2) with u1 clamped to at least 1e-300. The
 * uniforms are the same bits; log and cos are our own (series in double, no
 * libm call), so the loop vectorises and gives the same bits on every CPU. It
 * vectorises only as normal.c is built (CMakeLists.txt: no errno from sqrt, no
 * trapping math, both without effect on a result); bench_layers' "normal draws"
 * line shows whether it does (scalar, a draw took 5x as long). Against
 * dk_rng_normal (libm) a value differs by a few units in the last place of a
 * double (tests/test_normal.c), so as a float it is the same value but for about
 * one draw in 10^8. */
#ifndef DK_NORMAL_H
#define DK_NORMAL_H

#include <stddef.h>

#include "distill/rng.h"

/* z[i] = the i-th normal of the stream that starts at r (r itself is not moved). */
void dk_normal_fill(const dk_rng *r, size_t n, double *z);

/* log(x) for x in [1e-300, 1] and cos(2 pi u) for u in [0, 1), as used above. */
double dk_normal_log(double x);
double dk_normal_cos_turn(double u);

#endif
