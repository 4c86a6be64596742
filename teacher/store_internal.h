/* store_internal.h: what store.c (layout, reader, verify) shares with
 * store_write.c (the crash-safe writer). Not for use outside teacher/store*.c. */
#ifndef DK_STORE_INTERNAL_H
#define DK_STORE_INTERNAL_H

#include <hdf5.h>

#include "teacher/store.h"

/* The little-endian HDF5 file type of a dtype; caller closes with H5Tclose. */
hid_t dk_store_h5_type(dk_store_dtype t);
dk_status dk_store_attr_write_ints(hid_t obj, const char *name, const int64_t *v, int count,
                                   dk_err *err);

/* Root attributes (format, version) and the /manifest group. */
dk_status dk_store_manifest_write(hid_t file, const dk_store_manifest *m, dk_err *err);
dk_status dk_store_manifest_read(hid_t file, dk_store_manifest *m, dk_err *err);

/* /samples/<id>: arrays (one chunk each, Fletcher-32) and the catalogue attributes. */
dk_status dk_store_sample_write(hid_t file, const dk_store_manifest *m, const dk_store_sample *s,
                                dk_err *err);
/* Read /samples/<id>'s catalogue entry and check every array's type and shape. */
dk_status dk_store_sample_read_info(hid_t file, const dk_store_manifest *m, const char *id,
                                    dk_store_sample_info *s, dk_err *err);
/* Recompute every array's SHA-256 and compare with the catalogue. */
dk_status dk_store_sample_check_sums(hid_t file, const dk_store_sample_info *s, dk_err *err);
const dk_store_array_info *dk_store_array_find(const dk_store_sample_info *s, const char *kind);

#endif
