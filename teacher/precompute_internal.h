/* precompute_internal.h: what precompute.c (the teacher, the plan, a volume's
 * targets) shares with precompute_passes.c (its noisy passes). Not for use
 * outside teacher/precompute*.c. */
#ifndef DK_PRECOMPUTE_INTERNAL_H
#define DK_PRECOMPUTE_INTERNAL_H

#include <stdint.h>

#include "teacher/precompute.h"

struct dk_precomputer {
    dk_precompute_options opt;
    dk_unet *teacher;
    dk_unet_config tcfg, scfg;
    dk_store_manifest m;
    int tmult[3], smult[3]; /* pooling products: inputs are padded to multiples of these */
    int planned[3];         /* the padded teacher input the net is planned for */
    int batch;              /* passes per forward (a divisor of the passes) */
    int lanes;              /* passes side by side (precompute_passes.c), 1 with batch > 1 */
    dk_unet *twins[DK_PRECOMPUTE_MAX_LANES - 1]; /* the teacher again, for lanes 1 .. */
    dk_tensor x, noisy;          /* noisy: a sample per pass of a batch, or per lane */
    size_t grid_voxels;          /* teacher-grid voxels the accumulators hold */
    float *acc_soft, *acc_plain; /* classes x teacher grid: mean softmax at T and at 1 */
    float *feat_acc[DK_STORE_MAX_FEATURES];
};

/* The N noisy forward passes of the volume in pc->x (padded to pc->planned, the
 * volume's dims from `before` on), side by side (pc->lanes > 1) or a batch at a time:
 * the accumulators end as the passes' means. Forward only. */
void dk_precompute_passes(dk_precomputer *pc, uint64_t noise_seed, const int dims[3],
                          const int before[3]);

#endif
