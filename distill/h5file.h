/* h5file.h: the HDF5 helpers every dualkd file format is built on (datasets,
 * checkpoints, target stores): files, groups, datasets; attributes are h5attr.h.
 *
 * - HDF5's own error printing is silenced; every failure becomes a dk_err whose
 *   message names the file and the object ("'a.h5': /volumes/v1: attribute
 *   'spacing': ...") and, when HDF5 said why, its innermost reason.
 * - Files are written atomically: dk_h5_create makes "<path>.tmp-XXXXXX";
 *   dk_h5_commit closes, fsyncs, renames over path and fsyncs the directory;
 *   dk_h5_abort unlinks the temporary. A crash leaves the old file (or none)
 *   plus, at worst, a stray "<path>.tmp-XXXXXX", never half a file at path.
 * - Files are created in the HDF5 1.10 format (readable by HDF5 >= 1.10, h5py),
 *   which checksums all metadata; add fletcher32 to checksum raw data too.
 * - Objects carry no timestamps (HDF5 time tracking is off for the root group,
 *   groups and datasets made here): the same contents give the same bytes.
 *   Code that calls H5Dcreate2 / H5Gcreate2 itself must do the same.
 *
 * Handles (hid_t) returned here are closed by the caller with the matching
 * H5?close or with dk_h5_close_file. The HDF5 library is not thread-safe in
 * Debian's serial build: callers serialise HDF5 use across threads. */
#ifndef DK_H5FILE_H
#define DK_H5FILE_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distill/err.h"

#define DK_H5_MAX_RANK 8

/* ---- files ---------------------------------------------------------------- */

/* Open an existing file read-only. Distinguishes: missing file (DK_ENOTFOUND),
 * not HDF5 (DK_EFORMAT "is not an HDF5 file"), truncated/corrupted (DK_EFORMAT
 * "is truncated or corrupted"), an old format without metadata checksums
 * (DK_EFORMAT, distill/h5fence.h). On success *file is the open file. Groups,
 * datasets and attributes read through this module and h5attr.h pass h5fence's
 * checks. */
dk_status dk_h5_open_read(const char *path, hid_t *file, dk_err *err);

/* Close a file opened for reading, and every object still open in it. */
void dk_h5_close_file(hid_t file);

/* A file being written atomically. */
typedef struct dk_h5_writer {
    hid_t file;     /* write objects here */
    char *path;     /* final path (owned) */
    char *tmp_path; /* "<path>.tmp-XXXXXX" (owned) */
    int fd;         /* our descriptor on the temporary, for fsync */
} dk_h5_writer;

/* Create "<path>.tmp-XXXXXX" (mode 0644) as an empty HDF5 file in w. */
dk_status dk_h5_create(const char *path, dk_h5_writer *w, dk_err *err);
/* Close, fsync, rename over path, fsync the directory. On failure the
 * temporary is removed. w is released in every case. */
dk_status dk_h5_commit(dk_h5_writer *w, dk_err *err);
/* Close and unlink the temporary; release w. Safe on a zeroed or released w. */
void dk_h5_abort(dk_h5_writer *w);

/* ---- messages --------------------------------------------------------------- */

/* "'<file>': <object path>" for any open HDF5 object, into buf; returns buf. */
const char *dk_h5_where(hid_t obj, char *buf, size_t cap);

/* Set err to "<where obj>: <formatted what>[ (HDF5: <innermost reason>)]".
 * Call right after the failing HDF5 call, while HDF5's error stack is fresh. */
dk_status dk_h5_fail(dk_err *err, dk_status code, hid_t obj, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- groups ------------------------------------------------------------------- */

/* Create group `path` under loc (intermediate groups too) that remembers the
 * order its members were added in. Caller closes with H5Gclose. */
dk_status dk_h5_group_create(hid_t loc, const char *path, hid_t *group, dk_err *err);
/* Open an existing group; DK_ENOTFOUND (naming it) when there is none. */
dk_status dk_h5_group_open(hid_t loc, const char *path, hid_t *group, dk_err *err);
/* True when loc has a link `name` (a direct child; no '/' walking). */
bool dk_h5_exists(hid_t loc, const char *name);

/* The names of the members of group `group`, in the order they were added when
 * the group tracks it (ours do), else by name. *names is a NULL-terminated array;
 * caller frees with dk_h5_free_strings. */
dk_status dk_h5_group_list(hid_t group, char ***names, int *count, dk_err *err);
void dk_h5_free_strings(char **strings);

/* ---- float16 ------------------------------------------------------------------ */
/* The IEEE binary16 file type (numpy's float16, little-endian). Caller closes.
 * Storage with `half` converts through dk_half_from_float (distill/half.h). */
hid_t dk_h5_half_type(void);

/* ---- datasets ------------------------------------------------------------------ */

typedef enum dk_h5_elem { DK_H5_FLOAT32, DK_H5_UINT8 } dk_h5_elem;

/* How a dataset is laid out on disk. A zeroed struct means contiguous, raw.
 * Filters (gzip, shuffle, fletcher32) need chunks: when chunk_rank is 0 and a
 * filter is asked for, the whole array is one chunk. */
typedef struct dk_h5_storage {
    int chunk_rank;                /* 0 = contiguous (or one chunk if filtered) */
    hsize_t chunk[DK_H5_MAX_RANK]; /* each <= the dataset's dim */
    int gzip_level;                /* 0 = off, 1..9 */
    bool shuffle;                  /* byte shuffle before gzip (helps floats, not uint8) */
    bool fletcher32;               /* checksum each chunk: corruption fails the read */
    bool half;                     /* store float32 data as IEEE float16 (lossy; reads as float) */
} dk_h5_storage;

/* Write a new dataset `name` under loc (fails if it exists). storage may be NULL. */
dk_status dk_h5_write_array(hid_t loc, const char *name, dk_h5_elem elem, int rank,
                            const hsize_t *dims, const void *data, const dk_h5_storage *storage,
                            dk_err *err);

/* Rank and dims of dataset `name`, and whether its element type fits elem
 * (DK_EFORMAT naming both types if not). dims has room for DK_H5_MAX_RANK. */
dk_status dk_h5_array_shape(hid_t loc, const char *name, dk_h5_elem elem, int *rank, hsize_t *dims,
                            dk_err *err);

/* Read all of dataset `name` into data, after checking its element type and that
 * its shape is exactly rank/dims (DK_EMISMATCH naming both shapes). A failed
 * read (checksum, truncation) says "truncated or corrupted". */
dk_status dk_h5_read_array(hid_t loc, const char *name, dk_h5_elem elem, int rank,
                           const hsize_t *dims, void *data, dk_err *err);

/* Read rows [first, first+count) along axis 0 of dataset `name` (any rank) into
 * data; the caller knows the row size from dk_h5_array_shape. */
dk_status dk_h5_read_rows(hid_t loc, const char *name, dk_h5_elem elem, hsize_t first,
                          hsize_t count, void *data, dk_err *err);

/* Read the block at start[] of extent count[] (one entry per axis; rank must be
 * the dataset's) of dataset `name` into data, C order. Lets a caller read a
 * large array in slabs of bounded size. */
dk_status dk_h5_read_block(hid_t loc, const char *name, dk_h5_elem elem, int rank,
                           const hsize_t *start, const hsize_t *count, void *data, dk_err *err);

/* A type in words ("float32", "uint8", "string", ...) into buf; returns buf. */
const char *dk_h5_type_str(hid_t type, char *buf, size_t cap);

/* "(2, 3, 4)" into buf; returns buf. */
const char *dk_h5_shape_str(int rank, const hsize_t *dims, char *buf, size_t cap);

#endif
