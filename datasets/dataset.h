/* dataset.h: the HDF5 dataset format (docs/formats.md): one group per volume under
 * /volumes, each with `image` float32 [z][y][x], optional `label` uint8, and
 * attributes spacing, origin, direction, source, split; root attributes name the
 * classes and the format version.
 *
 * Reading validates everything once (format version, shapes, label ids < class
 * count, spacing present and positive) and names the file, volume and field in
 * any error. Writing goes to "<path>.tmp-XXXXXX", is fsync'ed, then renamed over
 * path: a crash leaves either no file or the old one, never half a dataset. */
#ifndef DK_DATASET_H
#define DK_DATASET_H

#include "datasets/volume.h"

#define DK_DATASET_FORMAT_VERSION 1

typedef struct dk_dataset dk_dataset;               /* an open, validated dataset file */
typedef struct dk_dataset_writer dk_dataset_writer; /* a dataset being written */

/* Open and validate path. Caller closes with dk_dataset_close. NULL on failure. */
dk_dataset *dk_dataset_open(const char *path, dk_err *err);
void dk_dataset_close(dk_dataset *ds);

const dk_classes *dk_dataset_classes(const dk_dataset *ds);
int dk_dataset_count(const dk_dataset *ds);
/* Id and split of volume i (borrowed, valid until close). */
const char *dk_dataset_volume_id(const dk_dataset *ds, int i);
const char *dk_dataset_volume_split(const dk_dataset *ds, int i);
/* Index of the volume with this id, or -1. */
int dk_dataset_find(const dk_dataset *ds, const char *id);
/* What open learned about volume i without reading its image (borrowed, valid
 * until close): class_voxels counts each class id in the label (all 0 if none). */
typedef struct dk_volume_info {
    char id[64];
    char split[16];
    int dims[3];
    double spacing[3];
    bool has_label;
    long long class_voxels[DK_MAX_CLASSES];
} dk_volume_info;
const dk_volume_info *dk_dataset_info(const dk_dataset *ds, int i);
/* Read volume i into v (caller releases v with dk_volume_release). */
dk_status dk_dataset_read(dk_dataset *ds, int i, dk_volume *v, dk_err *err);

/* Start writing a new dataset at path with these classes. NULL on failure. */
dk_dataset_writer *dk_dataset_writer_open(const char *path, const dk_classes *classes,
                                          dk_err *err);
/* Append one volume (validated: id unique, label ids < class count, spacing > 0). */
dk_status dk_dataset_writer_add(dk_dataset_writer *w, const dk_volume *v, dk_err *err);
/* Close, fsync and rename into place; frees w in every case. */
dk_status dk_dataset_writer_commit(dk_dataset_writer *w, dk_err *err);
/* Drop the partial file; frees w. */
void dk_dataset_writer_abort(dk_dataset_writer *w);

#endif
