/* components.h: connected components of a label map, for the usual clean-up of a
 * predicted segmentation: keep, per foreground class, only its largest connected
 * component (6-connectivity: face neighbours, scipy.ndimage.label's default in 3D);
 * the voxels of the other components become background (0). */
#ifndef DK_COMPONENTS_H
#define DK_COMPONENTS_H

#include <stdint.h>

#include "distill/err.h"

/* In place over labels (dims z y x). Classes 1..classes-1 are cleaned; a class with
 * two equally large largest components keeps the one met first in memory order.
 * *removed (nullable) receives the number of voxels set to background. */
dk_status dk_keep_largest_components(uint8_t *labels, const int dims[3], int classes,
                                     long long *removed, dk_err *err);

#endif
