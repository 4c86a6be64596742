/* synth_quality.h: per-scan image-quality defects of a synthetic knee scan that the
 * site profile does not fix: motion ghosting along the phase-encode axis (and, in
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

#endif
