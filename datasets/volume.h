/* volume.h: one 3D scan in memory: image, optional label map, and its voxel grid.
 *
 * Arrays are [z][y][x] (x fastest); dims, spacing and origin are in that same
 * (z, y, x) order, in voxels and millimetres. The physical position of voxel
 * (k, j, i) is origin + direction * (k*sz, j*sy, i*sx), where direction's
 * column a is the unit vector (in RAS+ patient coordinates) of array axis a.
 * dk_volume owns image and label. */
#ifndef DK_VOLUME_H
#define DK_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distill/err.h"

#define DK_MAX_CLASSES 16

typedef struct dk_volume {
    char id[64];          /* unique within a dataset: letters, digits, '-', '_', '.' */
    int dims[3];          /* z, y, x */
    double spacing[3];    /* mm, z y x */
    double origin[3];     /* mm, RAS+ position of voxel (0, 0, 0) */
    double direction[9];  /* row-major 3x3; identity when unknown */
    float *image;         /* owned, dims[0]*dims[1]*dims[2] */
    uint8_t *label;       /* owned, same size, or NULL */
    char source[128];     /* where it came from: "synthetic seed=3", a NIfTI path, ... */
    char split[16];       /* "labelled", "unlabelled", "validation", "test", "train", or "" */
} dk_volume;

/* The class names of a dataset; class ids are indices (0 = background). */
typedef struct dk_classes {
    int count;
    char names[DK_MAX_CLASSES][32];
} dk_classes;

/* Allocate image (zeroed) and, if with_label, label (zeroed); identity direction,
 * unit spacing, zero origin. */
dk_status dk_volume_alloc(dk_volume *v, const char *id, const int dims[3], bool with_label,
                          dk_err *err);
void dk_volume_release(dk_volume *v);

static inline size_t dk_volume_voxels(const dk_volume *v)
{
    return (size_t)v->dims[0] * v->dims[1] * v->dims[2];
}

/* The most voxels a volume read from a file may have. A file's header may declare
 * any size (a 1 kB HDF5 file or a 2 MB .nii.gz can claim billions of voxels);
 * this bounds what reading it costs (an image and label take 5 bytes a voxel).
 * The default, 2^28 (268 M voxels, a 1 GiB float32 image), is 10x an OAI DESS
 * volume; docs/formats.md, "Limits". */
#define DK_MAX_VOXELS_DEFAULT ((size_t)1 << 28)
size_t dk_volume_max_voxels(void);
/* Set the limit for this process (0 restores the default). Not thread-safe:
 * cli/ calls it once, before reading any file. */
void dk_volume_set_max_voxels(size_t voxels);

/* True when id is a usable volume id (non-empty, < 64 bytes, [A-Za-z0-9._-]). */
bool dk_volume_id_valid(const char *id);

#endif
