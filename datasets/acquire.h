/* acquire.h: simulated MR acquisition of a fine-grid (ground-truth) scan at a site
 * profile: what a scanner with that protocol would have recorded.
 *
 * Steps, in order: slice-profile blur along z on the fine grid (Gaussian, FWHM =
 * slice_thickness), area (partial-volume) down-sampling to the profile grid
 * (dk_grid_respaced of the fine grid), a smooth multiplicative bias field (few
 * low-frequency terms with seeded coefficients, |field - 1| <= profile->bias),
 * and Rician noise (magnitude of a complex Gaussian, sigma = profile->noise * the
 * largest intensity of the fine image). Labels come from the fine labels by
 * majority over each profile voxel, so thin structures vanish at thick slices as
 * they do in real scans. Randomness is a counter-based generator keyed by seed and
 * voxel index: the same seed gives the same bytes whatever the thread count. */
#ifndef DK_ACQUIRE_H
#define DK_ACQUIRE_H

#include <stdint.h>

#include "datasets/profile.h"
#include "datasets/volume.h"
#include "distill/err.h"

/* fine: image required, label optional (if present, every id < n_classes).
 * out: filled afresh (its previous contents are not released); caller releases with
 * dk_volume_release. out keeps fine's id, direction, split; spacing/origin/dims are
 * those of dk_grid_respaced(fine grid, profile->spacing); source records the profile
 * and seed. */
dk_status dk_acquire(const dk_volume *fine, const dk_profile *profile, uint64_t seed, int n_classes,
                     dk_volume *out, dk_err *err);

/* The bias field alone (values in [1 - bias, 1 + bias]) on a grid of dims voxels, for
 * tests and figures. field: dims[0]*dims[1]*dims[2] floats, caller-owned. */
void dk_acquire_bias_field(const int dims[3], double bias, uint64_t seed, float *field);

#endif
