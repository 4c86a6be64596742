/* pass_work.h: the noisy input of one pass of `dualkd teacher precompute`, on the
 * network's threads (dk_unet_pool). (The pass's other work, adding the cropped
 * softmax at T and at 1 into the accumulators, is dk_softmax_channels_accumulate.)
 *
 * Split by index, so the values do not depend on the thread count: the noise is
 * the same stream of normal draws (distill/normal.h), each thread jumping to its
 * share (dk_rng_skip). Run on one thread, the noise and the accumulation took about
 * a fifth of a precompute's wall time on 2 cores. */
#ifndef DK_PASS_WORK_H
#define DK_PASS_WORK_H

#include <stddef.h>
#include <stdint.h>

#include "distill/parallel.h"
#include "distill/tensor.h"

/* out[i] = x[i] + (float)(sigma * z_i) for i < n, where z_i is the i-th normal of
 * dk_normal_fill from dk_rng_seed(seed) (dk_rng_normal's i-th draw but for the
 * last bits of a double). out must not overlap x. */
void dk_pass_noisy_input(const float *x, size_t n, double sigma, uint64_t seed, float *out,
                         dk_pool *pool);

#endif
