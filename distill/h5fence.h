/* h5fence.h: the checks that stand between an untrusted HDF5 file and
 * libhdf5 1.10.8, which crashes or hangs on some damaged files (issue #10):
 * variable-length strings read from a corrupted global heap, damaged v1
 * B-trees and v1 object headers (none of which carry checksums).
 *
 * dualkd reads only what it writes: the 1.8+ file format, in which the
 * superblock, every object header and every chunk index dualkd uses are
 * checksummed, so HDF5 detects damage before it decodes it. Refused, each with
 * a message naming the file and object (docs/formats.md, "What dualkd refuses"):
 *   - superblock versions 0 and 1 (checked from the file's bytes, before HDF5
 *     parses anything), and version 1 object headers;
 *   - soft and external links on the way to an object (an external link opens
 *     another file, which these checks never saw);
 *   - chunked datasets indexed by a version 1 B-tree; filters other than
 *     deflate, shuffle and Fletcher-32; external or virtual storage (they would
 *     read other files);
 *   - variable-length attributes (strings included) and any attribute that is
 *     not an integer, float or fixed-length string, or larger than 16 MiB. */
#ifndef DK_H5FENCE_H
#define DK_H5FENCE_H

#include <hdf5.h>

#include "distill/err.h"

/* The file's superblock version from its bytes (signature at 0, 512, 1024, ...):
 * DK_EFORMAT for versions below 2; DK_OK also when there is no signature (the
 * caller's "not an HDF5 file" check reports that). */
dk_status dk_h5_check_superblock(const char *path, dk_err *err);

/* Object `name` under loc (name "." for loc itself) is reached through hard
 * links only, has a version 2 (checksummed) header and is of type want;
 * messages name the object. */
dk_status dk_h5_check_object(hid_t loc, const char *name, H5O_type_t want, dk_err *err);

/* Open dataset `name` under loc after dk_h5_check_object, then check its storage
 * (chunk index, filters, no external or virtual storage). DK_ENOTFOUND when
 * there is no such link. Caller closes *dset with H5Dclose. */
dk_status dk_h5_dataset_open(hid_t loc, const char *name, hid_t *dset, dk_err *err);

/* An attribute's type and space are safe to read: integer, float or
 * fixed-length string (nothing variable-length), at most 16 MiB. */
dk_status dk_h5_check_attr(hid_t obj, const char *name, hid_t type, hid_t space, dk_err *err);

#endif
