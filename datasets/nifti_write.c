/* nifti_write.c: writing a dk_volume's image (float32) or label (uint8) as a
 * single-file NIfTI-1 (.nii, or .nii.gz through zlib), atomically: temporary
 * file in the same directory, fsync, rename. The reader is nifti.c. */
#define _GNU_SOURCE
#include "datasets/nifti.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_BYTES 348
#define VOX_OFFSET   352 /* header + the 4-byte "no extensions" flag */

static void put_i16(unsigned char *h, int off, int16_t v)
{
    memcpy(h + off, &v, 2);
}
static void put_i32(unsigned char *h, int off, int32_t v)
{
    memcpy(h + off, &v, 4);
}
static void put_f32(unsigned char *h, int off, double v)
{
    float f = (float)v;
    memcpy(h + off, &f, 4);
}

/* True when the 3x3 m (columns = axes) is a rotation or a reflection. */
static bool is_orthonormal(const double m[3][3])
{
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double dot = 0;
            for (int r = 0; r < 3; r++)
                dot += m[r][a] * m[r][b];
            if (fabs(dot - (a == b)) > 1e-4) return false;
        }
    return true;
}

/* Quaternion (b, c, d) and qfac of the orthonormal m whose columns are the i, j, k
 * directions; the inverse of the reader's formula. Picks the largest of a, b, c, d
 * to divide by, so no rotation loses precision. */
static void quaternion_of(const double m_in[3][3], double q[3], double *qfac)
{
    double m[3][3];
    memcpy(m, m_in, sizeof m);
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                 m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    *qfac = det < 0 ? -1 : 1;
    if (det < 0)
        for (int r = 0; r < 3; r++)
            m[r][2] = -m[r][2];
    double tr = m[0][0] + m[1][1] + m[2][2], a, b, c, d;
    if (tr > 0) {
        a = 0.5 * sqrt(1 + tr);
        b = (m[2][1] - m[1][2]) / (4 * a), c = (m[0][2] - m[2][0]) / (4 * a),
        d = (m[1][0] - m[0][1]) / (4 * a);
    } else if (m[0][0] >= m[1][1] && m[0][0] >= m[2][2]) {
        b = 0.5 * sqrt(1 + m[0][0] - m[1][1] - m[2][2]);
        a = (m[2][1] - m[1][2]) / (4 * b), c = (m[0][1] + m[1][0]) / (4 * b),
        d = (m[0][2] + m[2][0]) / (4 * b);
    } else if (m[1][1] >= m[2][2]) {
        c = 0.5 * sqrt(1 + m[1][1] - m[0][0] - m[2][2]);
        a = (m[0][2] - m[2][0]) / (4 * c), b = (m[0][1] + m[1][0]) / (4 * c),
        d = (m[1][2] + m[2][1]) / (4 * c);
    } else {
        d = 0.5 * sqrt(1 + m[2][2] - m[0][0] - m[1][1]);
        a = (m[1][0] - m[0][1]) / (4 * d), b = (m[0][2] + m[2][0]) / (4 * d),
        c = (m[1][2] + m[2][1]) / (4 * d);
    }
    double s = a < 0 ? -1 : 1; /* NIfTI keeps a >= 0 */
    q[0] = s * b, q[1] = s * c, q[2] = s * d;
}

static void fill_geometry(unsigned char *h, const dk_volume *v)
{
    double affine[3][4], dir[3][3];
    dk_nifti_affine(v, affine);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            put_f32(h, 280 + 16 * r + 4 * c, affine[r][c]);
    put_i16(h, 254, 1); /* sform_code: scanner anatomical */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            dir[r][c] = v->direction[3 * r + (2 - c)];
    double qfac = 1;
    if (is_orthonormal(dir)) {
        double q[3];
        quaternion_of(dir, q, &qfac);
        put_i16(h, 252, 1);
        for (int a = 0; a < 3; a++) {
            put_f32(h, 256 + 4 * a, q[a]);
            put_f32(h, 268 + 4 * a, v->origin[a]);
        }
    }
    put_f32(h, 76, qfac);
    for (int a = 1; a <= 3; a++)
        put_f32(h, 76 + 4 * a, v->spacing[3 - a]);
}

static void fill_header(unsigned char *h, const dk_volume *v, int datatype, int bytes)
{
    memset(h, 0, HEADER_BYTES + 4);
    put_i32(h, 0, HEADER_BYTES);
    put_i16(h, 40, 3);
    put_i16(h, 42, (int16_t)v->dims[2]);
    put_i16(h, 44, (int16_t)v->dims[1]);
    put_i16(h, 46, (int16_t)v->dims[0]);
    for (int a = 4; a <= 7; a++)
        put_i16(h, 40 + 2 * a, 1);
    put_i16(h, 70, (int16_t)datatype);
    put_i16(h, 72, (int16_t)(8 * bytes));
    put_f32(h, 108, VOX_OFFSET);
    put_f32(h, 112, 1); /* scl_slope 1, scl_inter 0: values as stored */
    h[123] = 2;         /* xyzt_units: millimetres */
    snprintf((char *)h + 148, 80, "dualkd %s", v->id);
    fill_geometry(h, v);
    memcpy(h + 344, "n+1\0", 4);
}

static dk_status check_writable(const char *path, const dk_volume *v, dk_err *err)
{
    for (int a = 0; a < 3; a++) {
        if (v->dims[a] < 1 || v->dims[a] > DK_NIFTI_MAX_DIM)
            return dk_err_set(err, DK_EINVAL, "'%s': volume '%s' dims[%d] = %d: expected 1..%d",
                              path, v->id, a, v->dims[a], DK_NIFTI_MAX_DIM);
        if (!isfinite(v->spacing[a]) || v->spacing[a] <= 0)
            return dk_err_set(err, DK_EINVAL, "'%s': volume '%s' spacing[%d] = %g", path, v->id, a,
                              v->spacing[a]);
    }
    return DK_OK;
}

static dk_status write_all(gzFile gz, const void *buf, size_t n, const char *tmp, dk_err *err)
{
    size_t done = 0;
    while (done < n) {
        unsigned want = n - done > (1u << 30) ? (1u << 30) : (unsigned)(n - done);
        int w = gzwrite(gz, (const unsigned char *)buf + done, want);
        if (w <= 0) {
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            return dk_err_set(err, DK_EIO, "writing '%s': %s", tmp,
                              zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        done += (size_t)w;
    }
    return DK_OK;
}

/* Everything through zlib: "wbT" writes plain bytes, "wb6" gzip. gzclose closes a
 * dup of fd, so fd stays open for the fsync. */
static dk_status write_stream(int fd, const char *tmp, bool gzip, const unsigned char *header,
                              const void *data, size_t bytes, dk_err *err)
{
    int dupfd = dup(fd);
    gzFile gz = dupfd < 0 ? NULL : gzdopen(dupfd, gzip ? "wb6" : "wbT");
    if (!gz) {
        if (dupfd >= 0) close(dupfd);
        return dk_err_set(err, DK_EIO, "writing '%s': cannot start the stream", tmp);
    }
    dk_status st = write_all(gz, header, VOX_OFFSET, tmp, err);
    if (!st) st = write_all(gz, data, bytes, tmp, err);
    int rc = gzclose(gz);
    if (!st && rc != Z_OK)
        st = dk_err_set(err, DK_EIO, "writing '%s': closing the stream failed (zlib %d)", tmp, rc);
    if (!st && fsync(fd) != 0) st = dk_err_set(err, DK_EIO, "fsync '%s': %s", tmp, strerror(errno));
    return st;
}

static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: the rename is already durable on most filesystems */
        close(dfd);
    }
    free(copy);
}

static dk_status write_file(const char *path, const dk_volume *v, int datatype, int bytes,
                            const void *data, dk_err *err)
{
    dk_status st = check_writable(path, v, err);
    if (st) return st;
    unsigned char header[VOX_OFFSET];
    fill_header(header, v, datatype, bytes);
    size_t len = strlen(path);
    bool gzip = len > 3 && strcmp(path + len - 3, ".gz") == 0;
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
        return dk_err_set(err, DK_ENOMEM, "'%s': no memory", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = dk_err_set(err, DK_EIO, "creating a temporary file next to '%s': %s", path,
                        strerror(errno));
        free(tmp);
        return st;
    }
    st = write_stream(fd, tmp, gzip, header, data, dk_volume_voxels(v) * bytes, err);
    if (!st && fchmod(fd, 0644) != 0)
        st = dk_err_set(err, DK_EIO, "chmod '%s': %s", tmp, strerror(errno));
    close(fd);
    if (!st && rename(tmp, path) != 0)
        st = dk_err_set(err, DK_EIO, "renaming '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st)
        unlink(tmp);
    else
        sync_parent_dir(path);
    free(tmp);
    return st;
}

dk_status dk_nifti_write_image(const char *path, const dk_volume *v, dk_err *err)
{
    if (!v->image) return dk_err_set(err, DK_EINVAL, "'%s': volume '%s' has no image", path, v->id);
    return write_file(path, v, DK_NIFTI_FLOAT32, 4, v->image, err);
}

dk_status dk_nifti_write_label(const char *path, const dk_volume *v, dk_err *err)
{
    if (!v->label)
        return dk_err_set(err, DK_EINVAL, "'%s': volume '%s' has no label map", path, v->id);
    return write_file(path, v, DK_NIFTI_UINT8, 1, v->label, err);
}
