/* content_hash.h: what names a teacher and a repository dataset in the target
 * store's manifest (teacher_sha256, data_sha256): a SHA-256 of their contents
 * (parameters; volumes), not of their files' bytes. A retrained, bit-identical
 * teacher, or a dataset rewritten with the same volumes, keeps its hash although
 * its file differs (run record seconds, HDF5 layout), so `--resume` accepts it.
 *
 * The hashed stream is a sequence of tagged, length-prefixed fields with every
 * number little-endian (docs/store.md, "Content hashes"), so it does not depend
 * on field boundaries, the host or the HDF5 library. */
#ifndef DK_CONTENT_HASH_H
#define DK_CONTENT_HASH_H

#include "datasets/dataset.h"
#include "distill/param.h"
#include "teacher/sha256.h"

/* The teacher: its architecture JSON (canonical, as dk_unet_config_to_json
 * writes it), every parameter in order (name, shape, float32 values), and the
 * card fields targets depend on (class names, training spacing). */
dk_status dk_content_hash_teacher(const char *architecture_json, const dk_params *params,
                                  const dk_classes *classes, const double training_spacing[3],
                                  char hex[DK_SHA256_HEX], dk_err *err);

/* The dataset: its class names, then each volume in order (id, split, dims,
 * spacing, origin, direction, image, label when present). Reads every volume
 * once, one at a time. The `source` note is left out: it records where a volume
 * came from, not what it is. */
dk_status dk_content_hash_dataset(dk_dataset *ds, char hex[DK_SHA256_HEX], dk_err *err);

#endif
