/* nifti.h: NIfTI-1 single-file volumes (`.nii`, `.nii.gz`) to and from dk_volume.
 *
 * Axis mapping. A NIfTI array is stored i fastest, then j, then k; our arrays are
 * [z][y][x] with x fastest, so the bytes map one to one: x = i, y = j, z = k (the
 * file's slice axis). The voxel-to-RAS+ affine A (sform when sform_code > 0, else
 * the qform quaternion when qform_code > 0, else diag(pixdim), origin 0) becomes
 *   spacing[a]   = |column of A for axis a|      (a = 0 z/k, 1 y/j, 2 x/i)
 *   direction[:, a] = that column / spacing[a]
 *   origin       = A's translation (RAS+ position of voxel (0, 0, 0)),
 * so origin + direction * (k*sz, j*sy, i*sx) is exactly A * (i, j, k, 1). Writing
 * inverts this, so nibabel reads back the same affine.
 *
 * Reading validates the header once (magic "n+1", sizeof_hdr 348 in either byte
 * order, 1 <= dim[0] <= 7, every dim in 1..DK_NIFTI_MAX_DIM, no 4th+ axis longer
 * than 1, a supported datatype, vox_offset in range, finite positive pixdim,
 * data no larger than DK_NIFTI_MAX_BYTES) and then reads exactly the declared
 * bytes: a short file is "truncated", and a file (or gzip stream) that goes on
 * past them is refused after one extra byte, so a gzip bomb costs nothing.
 * Errors name the file and the field or value.
 *
 * Writing goes to "<path>.tmp-XXXXXX" in the same directory (through zlib when
 * path ends in ".gz"), is fsync'ed, then renamed over path; on failure the
 * temporary file is removed. */
#ifndef DK_NIFTI_H
#define DK_NIFTI_H

#include "datasets/volume.h"

#define DK_NIFTI_MAX_DIM   4096
#define DK_NIFTI_MAX_BYTES ((size_t)1 << 31) /* voxel data, in the file and as float32 */

/* NIfTI-1 datatype codes this module reads (and, for the first two, writes). */
enum {
    DK_NIFTI_UINT8 = 2,
    DK_NIFTI_INT16 = 4,
    DK_NIFTI_INT32 = 8,
    DK_NIFTI_FLOAT32 = 16,
    DK_NIFTI_FLOAT64 = 64,
    DK_NIFTI_UINT16 = 512,
};

/* Read path as an image: v is allocated (image only, no label) with the file's
 * grid, voxel values as float32 after scl_slope/scl_inter (slope 0 or NaN: none),
 * source = path, split = "". id must satisfy dk_volume_id_valid.
 * Caller releases v with dk_volume_release; on failure v is left empty. */
dk_status dk_nifti_read_image(const char *path, const char *id, dk_volume *v, dk_err *err);

/* Read path as the label map of v (which holds an image read as above): the
 * file's grid must equal v's (same dims; affine within dk_nifti_grid_tolerance),
 * and every (scaled) value must be an integer in 0..255. Fills v->label (owned by
 * v; any previous label is freed). On failure v is unchanged. */
dk_status dk_nifti_read_label(const char *path, dk_volume *v, dk_err *err);

/* Write v->image as float32, or v->label as uint8 (DK_EINVAL when v has none),
 * with v's grid as both sform and (when direction is orthonormal) qform, code 1
 * (scanner anatomical), units mm. ".gz" at the end of path means gzip. */
dk_status dk_nifti_write_image(const char *path, const dk_volume *v, dk_err *err);
dk_status dk_nifti_write_label(const char *path, const dk_volume *v, dk_err *err);

/* The voxel (i, j, k) -> RAS+ mm affine of v's grid, rows of [R | t] (3x4). */
void dk_nifti_affine(const dk_volume *v, double affine[3][4]);

/* Largest difference (mm) two grids' affines may have and still be one grid:
 * 1e-3 of the smaller grid's smallest spacing, i.e. far below a voxel. */
double dk_nifti_grid_tolerance(const dk_volume *a, const dk_volume *b);

#endif
