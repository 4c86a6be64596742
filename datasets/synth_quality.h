/* synth_quality.h: per-scan image-quality defects of a synthetic knee scan that the
 * site profile does not fix: motion ghosting and wrap-around along the phase-encode
 * axis, the field of view a technologist planned (dk_knee_scan_draw) (and, in
 * synth_contrast.c, incomplete fat suppression; in dk_knee_synth, the scan's own
 * bias-field strength and noise level). docs/synthetic-knee.md gives their basis. */
#ifndef DK_SYNTH_QUALITY_H
#define DK_SYNTH_QUALITY_H

#include "distill/err.h"

/* Motion ghosts: along axis (1 = y, 2 = x: the phase-encode direction), each line
 * becomes |x + a (x shifted by +-step) - a/2 (x shifted by +-2 step)|, shifts
 * circular (ghosts wrap around the field of view as in a Fourier acquisition).
 * image: dims[0]*dims[1]*dims[2] floats, changed in place. amplitude 0 leaves it
 * unchanged. DK_EINVAL for a bad axis or step, DK_ENOMEM. */
dk_status dk_knee_ghosts(float *image, const int dims[3], int axis, double amplitude, int step,
                         dk_err *err);

/* Wrap-around: src is a scan extended by strip voxels beyond both edges along axis (1 =
 * y, 2 = x, the phase-encode direction); dst (src's dims less 2 * strip along axis) gets
 * the field of view with each strip added onto the opposite edge, as a Fourier
 * acquisition with too small a phase field of view aliases it. dst and src must not
 * overlap; 0 <= strip <= (src's dims along axis) / 4. */
void dk_knee_fold(const float *src, const int src_dims[3], int axis, int strip, float *dst);

#endif
