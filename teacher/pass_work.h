/* pass_work.h: the work of one noisy pass of `dualkd teacher precompute` around the
 * teacher's forward -- the noisy input and the accumulation of the cropped
 * softmax -- on the network's threads (dk_unet_pool).
 *
 * Both are split by index, so the values do not depend on the thread count: the
 * noise is the same stream of normal draws (distill/normal.h), each thread jumping
 * to its share (dk_rng_skip), and each accumulator cell is one thread's. Run on one
 * thread, they took about a fifth of a precompute's wall time on 2 cores. */
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

/* acc (C x dims, W fastest) += the crop of prob (one sample, C x padded dims)
 * starting at voxel `before`. */
void dk_pass_add_cropped(const dk_tensor *prob, const int dims[3], const int before[3], float *acc,
                         dk_pool *pool);

#endif
