/* nifti.c: reading NIfTI-1 single files (.nii, .nii.gz) into dk_volume: header
 * validation, the sform/qform/pixdim affine, bounded reads through zlib, and the
 * conversion of every supported datatype to float32 images or uint8 labels.
 * The writer is nifti_write.c; the axis and affine conventions are in nifti.h. */
#include "datasets/nifti.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define HEADER_BYTES   348
#define MAX_VOX_OFFSET (1 << 24) /* header extensions beyond 16 MB are not credible */

/* A header that passed validation, plus its raw voxel bytes once read. */
typedef struct nifti_file {
    const char *path;
    int nx, ny, nz;
    int datatype, bytes_per_voxel;
    bool swap; /* the file's byte order is not ours */
    double slope, inter;
    bool scaled;
    long vox_offset;
    size_t voxels;
    double affine[3][4]; /* voxel (i, j, k) -> RAS+ mm */
    unsigned char *raw;  /* voxels * bytes_per_voxel, native byte order after load */
} nifti_file;

/* ---- byte access to the 348-byte header, in the file's byte order ---- */

static void swap_bytes(unsigned char *p, int n)
{
    for (int a = 0, b = n - 1; a < b; a++, b--) {
        unsigned char t = p[a];
        p[a] = p[b];
        p[b] = t;
    }
}

/* Copy n header bytes at off into out (n-byte object), in native byte order. */
static void hdr_field(const unsigned char *h, int off, int n, bool swap, void *out)
{
    memcpy(out, h + off, (size_t)n);
    if (swap) swap_bytes(out, n);
}

static int32_t hdr_i32(const unsigned char *h, int off, bool swap)
{
    int32_t v;
    hdr_field(h, off, 4, swap, &v);
    return v;
}

static int16_t hdr_i16(const unsigned char *h, int off, bool swap)
{
    int16_t v;
    hdr_field(h, off, 2, swap, &v);
    return v;
}

static double hdr_f32(const unsigned char *h, int off, bool swap)
{
    float v;
    hdr_field(h, off, 4, swap, &v);
    return v;
}

static const char *datatype_name(int code)
{
    switch (code) {
    case 0:
        return "unknown";
    case 1:
        return "binary";
    case 2:
        return "uint8";
    case 4:
        return "int16";
    case 8:
        return "int32";
    case 16:
        return "float32";
    case 32:
        return "complex64";
    case 64:
        return "float64";
    case 128:
        return "rgb24";
    case 256:
        return "int8";
    case 512:
        return "uint16";
    case 768:
        return "uint32";
    case 1024:
        return "int64";
    case 1280:
        return "uint64";
    case 1536:
        return "float128";
    case 1792:
        return "complex128";
    case 2048:
        return "complex256";
    case 2304:
        return "rgba32";
    }
    return "not a NIfTI-1 code";
}

static int datatype_bytes(int code)
{
    switch (code) {
    case DK_NIFTI_UINT8:
        return 1;
    case DK_NIFTI_INT16:
    case DK_NIFTI_UINT16:
        return 2;
    case DK_NIFTI_INT32:
    case DK_NIFTI_FLOAT32:
        return 4;
    case DK_NIFTI_FLOAT64:
        return 8;
    }
    return 0;
}

/* ---- header validation ---- */

static dk_status check_magic_and_size(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    if (memcmp(h + 344, "ni1\0", 4) == 0)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': magic 'ni1' is a separate .hdr/.img pair; only single-file "
                          "NIfTI-1 ('n+1') is supported",
                          nf->path);
    if (memcmp(h + 344, "n+1\0", 4) != 0)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': bad magic %02x %02x %02x %02x: expected \"n+1\\0\" (not a "
                          "NIfTI-1 file, or NIfTI-2)",
                          nf->path, h[344], h[345], h[346], h[347]);
    int32_t size = hdr_i32(h, 0, false);
    if (size == HEADER_BYTES) {
        nf->swap = false;
    } else if (hdr_i32(h, 0, true) == HEADER_BYTES) {
        nf->swap = true;
    } else {
        return dk_err_set(err, DK_EFORMAT, "'%s': sizeof_hdr is %d: expected 348", nf->path,
                          (int)size);
    }
    return DK_OK;
}

static dk_status check_dims(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    int ndim = hdr_i16(h, 40, nf->swap);
    if (ndim < 1 || ndim > 7)
        return dk_err_set(err, DK_EFORMAT, "'%s': dim[0] is %d: expected 1..7", nf->path, ndim);
    int d[8] = {ndim, 1, 1, 1, 1, 1, 1, 1};
    for (int a = 1; a <= ndim; a++) {
        d[a] = hdr_i16(h, 40 + 2 * a, nf->swap);
        if (d[a] < 1 || d[a] > DK_NIFTI_MAX_DIM)
            return dk_err_set(err, DK_EFORMAT, "'%s': dim[%d] is %d: expected 1..%d", nf->path, a,
                              d[a], DK_NIFTI_MAX_DIM);
    }
    for (int a = 4; a <= ndim; a++)
        if (d[a] > 1)
            return dk_err_set(err, DK_EFORMAT,
                              "'%s': dim[%d] is %d: %dD volumes (time series, vectors) are "
                              "unsupported; only 3D",
                              nf->path, a, d[a], ndim);
    nf->nx = d[1];
    nf->ny = d[2];
    nf->nz = d[3];
    nf->voxels = (size_t)d[1] * d[2] * d[3];
    return DK_OK;
}

static dk_status check_datatype(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    nf->datatype = hdr_i16(h, 70, nf->swap);
    nf->bytes_per_voxel = datatype_bytes(nf->datatype);
    if (!nf->bytes_per_voxel)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': datatype %d (%s) is unsupported: expected uint8, int16, "
                          "uint16, int32, float32 or float64",
                          nf->path, nf->datatype, datatype_name(nf->datatype));
    /* Bound both the file's bytes and the float32 copy we make of them. */
    size_t widest = nf->bytes_per_voxel > 4 ? (size_t)nf->bytes_per_voxel : 4;
    if (nf->voxels > dk_volume_max_voxels())
        return dk_err_set(err, DK_ELIMIT,
                          "'%s': %d x %d x %d = %zu voxels, over the limit of %zu per volume "
                          "(docs/formats.md, \"Limits\")",
                          nf->path, nf->nx, nf->ny, nf->nz, nf->voxels, dk_volume_max_voxels());
    if (nf->voxels > DK_NIFTI_MAX_BYTES / widest)
        return dk_err_set(err, DK_ELIMIT,
                          "'%s': %d x %d x %d voxels of %s exceed the %zu-byte limit", nf->path,
                          nf->nx, nf->ny, nf->nz, datatype_name(nf->datatype), DK_NIFTI_MAX_BYTES);
    return DK_OK;
}

static dk_status check_offset_and_scaling(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    double off = hdr_f32(h, 108, nf->swap);
    if (!(off >= HEADER_BYTES + 4 && off <= MAX_VOX_OFFSET) || off != floor(off))
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': vox_offset is %g: expected a whole number in 352..%d", nf->path,
                          off, MAX_VOX_OFFSET);
    nf->vox_offset = (long)off;
    /* As nibabel: slope 0 or NaN means unscaled; a NaN intercept means 0. */
    double slope = hdr_f32(h, 112, nf->swap), inter = hdr_f32(h, 116, nf->swap);
    /* slope 1, intercept 0 is "unscaled" too, so -0.0 and NaN payloads survive bit-exact */
    nf->scaled = isfinite(slope) && slope != 0 && !(slope == 1 && (inter == 0 || isnan(inter)));
    nf->slope = nf->scaled ? slope : 1;
    nf->inter = nf->scaled && isfinite(inter) ? inter : 0;
    if (nf->scaled && !isfinite(inter) && !isnan(inter))
        return dk_err_set(err, DK_EFORMAT, "'%s': scl_inter is %g", nf->path, inter);
    return DK_OK;
}

static dk_status check_pixdim(const unsigned char *h, nifti_file *nf, double pixdim[4], dk_err *err)
{
    pixdim[0] = hdr_f32(h, 76, nf->swap);
    for (int a = 1; a <= 3; a++) {
        pixdim[a] = hdr_f32(h, 76 + 4 * a, nf->swap);
        if (!isfinite(pixdim[a]) || pixdim[a] <= 0)
            return dk_err_set(err, DK_EFORMAT,
                              "'%s': pixdim[%d] is %g: expected a finite spacing > 0", nf->path, a,
                              pixdim[a]);
    }
    return DK_OK;
}

/* ---- the affine ---- */

static dk_status affine_from_sform(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            nf->affine[r][c] = hdr_f32(h, 280 + 16 * r + 4 * c, nf->swap);
            if (!isfinite(nf->affine[r][c]))
                return dk_err_set(err, DK_EFORMAT, "'%s': srow_%c[%d] is %g", nf->path, "xyz"[r], c,
                                  nf -> affine[r][c]);
        }
    return DK_OK;
}

/* The NIfTI-1 quaternion convention: a = sqrt(1 - b^2 - c^2 - d^2), qfac =
 * pixdim[0] (0 read as 1) flips the k axis. */
static dk_status affine_from_qform(const unsigned char *h, nifti_file *nf, const double pixdim[4],
                                   dk_err *err)
{
    double b = hdr_f32(h, 256, nf->swap), c = hdr_f32(h, 260, nf->swap),
           d = hdr_f32(h, 264, nf->swap);
    double t[3] = {hdr_f32(h, 268, nf->swap), hdr_f32(h, 272, nf->swap), hdr_f32(h, 276, nf->swap)};
    double bcd = b * b + c * c + d * d;
    if (!isfinite(bcd) || bcd > 1 + 1e-5 || !isfinite(t[0] + t[1] + t[2]))
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': qform quaternion (%g, %g, %g) offset (%g, %g, %g) is not a "
                          "finite unit rotation",
                          nf->path, b, c, d, t[0], t[1], t[2]);
    double a = bcd < 1 ? sqrt(1 - bcd) : 0;
    if (bcd > 1) { /* float rounding: renormalise a 180-degree rotation */
        double s = 1 / sqrt(bcd);
        b *= s, c *= s, d *= s;
    }
    double R[3][3] = {
        {a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
        {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
        {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c},
    };
    double qfac = pixdim[0] < 0 ? -1 : 1;
    double scale[3] = {pixdim[1], pixdim[2], pixdim[3] * qfac};
    for (int r = 0; r < 3; r++) {
        for (int col = 0; col < 3; col++)
            nf->affine[r][col] = R[r][col] * scale[col];
        nf->affine[r][3] = t[r];
    }
    return DK_OK;
}

static dk_status read_affine(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    double pixdim[4];
    dk_status st = check_pixdim(h, nf, pixdim, err);
    if (st) return st;
    int qform_code = hdr_i16(h, 252, nf->swap), sform_code = hdr_i16(h, 254, nf->swap);
    if (sform_code > 0) {
        st = affine_from_sform(h, nf, err);
    } else if (qform_code > 0) {
        st = affine_from_qform(h, nf, pixdim, err);
    } else { /* NIfTI-1 "method 1": scaling only, origin at voxel 0 */
        memset(nf->affine, 0, sizeof nf->affine);
        for (int a = 0; a < 3; a++)
            nf->affine[a][a] = pixdim[a + 1];
    }
    if (st) return st;
    for (int col = 0; col < 3; col++) {
        double n = hypot(hypot(nf->affine[0][col], nf->affine[1][col]), nf->affine[2][col]);
        if (!(n > 0))
            return dk_err_set(err, DK_EFORMAT, "'%s': the %s affine has a zero column %d", nf->path,
                              sform_code > 0 ? "sform" : "qform", col);
    }
    return DK_OK;
}

/* ---- reading the file ---- */

/* zlib's reason for gz's last error, without the "<path>: " zlib puts in front
 * of it (our messages name the file already); zerr gets zlib's code. */
static const char *zlib_reason(gzFile gz, const char *path, int *zerr)
{
    const char *msg = gzerror(gz, zerr);
    size_t n = strlen(path);
    if (!msg || !msg[0]) return "zlib error";
    if (!strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg;
}

/* Read exactly n bytes, or say how many the file really had. */
static dk_status read_exact(gzFile gz, void *buf, size_t n, const char *path, const char *what,
                            dk_err *err)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(gz, (unsigned char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *msg = zlib_reason(gz, path, &zerr);
            return dk_err_set(err, DK_EFORMAT, "'%s': reading the %s: %s", path, what, msg);
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got < n) {
        int zerr = 0;
        const char *msg = zlib_reason(gz, path, &zerr);
        return dk_err_set(err, DK_EFORMAT, "'%s': truncated %s: %zu of %zu bytes%s%s", path, what,
                          got, n, zerr ? ": " : "", zerr ? msg : "");
    }
    return DK_OK;
}

static dk_status parse_header(const unsigned char *h, nifti_file *nf, dk_err *err)
{
    dk_status st = check_magic_and_size(h, nf, err);
    if (!st) st = check_dims(h, nf, err);
    if (!st) st = check_datatype(h, nf, err);
    if (!st) st = check_offset_and_scaling(h, nf, err);
    if (!st) st = read_affine(h, nf, err);
    return st;
}

/* Skip the extensions between the header and vox_offset by reading through them. */
static dk_status skip_extensions(gzFile gz, const nifti_file *nf, dk_err *err)
{
    unsigned char chunk[4096];
    long left = nf->vox_offset - HEADER_BYTES;
    while (left > 0) {
        size_t n = left > (long)sizeof chunk ? sizeof chunk : (size_t)left;
        dk_status st = read_exact(gz, chunk, n, nf->path, "header extensions", err);
        if (st) return st;
        left -= (long)n;
    }
    return DK_OK;
}

/* The data must end where the header says: one more byte means a lying header
 * (or a gzip bomb), and we stop before inflating any further. */
static dk_status check_data_ends(gzFile gz, const nifti_file *nf, dk_err *err)
{
    unsigned char extra;
    int r = gzread(gz, &extra, 1);
    if (r > 0)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': data continue past the %zu bytes the header declares "
                          "(%d x %d x %d %s at offset %ld); refusing to read further",
                          nf->path, nf->voxels * nf->bytes_per_voxel, nf->nx, nf->ny, nf->nz,
                          datatype_name(nf->datatype), nf->vox_offset);
    if (r < 0) {
        int zerr = 0;
        const char *msg = zlib_reason(gz, nf->path, &zerr);
        return dk_err_set(err, DK_EFORMAT, "'%s': after the data: %s", nf->path, msg);
    }
    return DK_OK;
}

static void to_native_order(nifti_file *nf)
{
    if (!nf->swap || nf->bytes_per_voxel == 1) return;
    for (size_t v = 0; v < nf->voxels; v++)
        swap_bytes(nf->raw + v * nf->bytes_per_voxel, nf->bytes_per_voxel);
}

static dk_status load_file(const char *path, nifti_file *nf, dk_err *err)
{
    memset(nf, 0, sizeof *nf);
    nf->path = path;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return dk_err_set(err, DK_ENOTFOUND, "'%s': cannot open", path);
    unsigned char h[HEADER_BYTES];
    dk_status st = read_exact(gz, h, sizeof h, path, "header", err);
    if (!st) st = parse_header(h, nf, err);
    if (!st) st = skip_extensions(gz, nf, err);
    if (!st) {
        nf->raw = malloc(nf->voxels * nf->bytes_per_voxel);
        if (!nf->raw)
            st = dk_err_set(err, DK_ENOMEM, "'%s': no memory for %zu voxels", path, nf->voxels);
    }
    if (!st)
        st = read_exact(gz, nf->raw, nf->voxels * nf->bytes_per_voxel, path, "voxel data", err);
    if (!st) st = check_data_ends(gz, nf, err);
    gzclose(gz);
    if (st) {
        free(nf->raw);
        nf->raw = NULL;
        return st;
    }
    to_native_order(nf);
    return DK_OK;
}

/* Voxel v, scaled, in double (exact for every supported type but float64). */
static double voxel_value(const nifti_file *nf, size_t v)
{
    const unsigned char *p = nf->raw + v * nf->bytes_per_voxel;
    double x = 0;
    switch (nf->datatype) {
    case DK_NIFTI_UINT8:
        x = *p;
        break;
    case DK_NIFTI_INT16: {
        int16_t t;
        memcpy(&t, p, 2);
        x = t;
        break;
    }
    case DK_NIFTI_UINT16: {
        uint16_t t;
        memcpy(&t, p, 2);
        x = t;
        break;
    }
    case DK_NIFTI_INT32: {
        int32_t t;
        memcpy(&t, p, 4);
        x = t;
        break;
    }
    case DK_NIFTI_FLOAT32: {
        float t;
        memcpy(&t, p, 4);
        x = t;
        break;
    }
    case DK_NIFTI_FLOAT64:
        memcpy(&x, p, 8);
        break;
    }
    return nf->scaled ? x * nf->slope + nf->inter : x;
}

/* ---- the grid ---- */

static void grid_from_affine(const nifti_file *nf, dk_volume *v)
{
    /* Our axis a (z, y, x) is the file's column 2 - a (k, j, i). */
    for (int a = 0; a < 3; a++) {
        int col = 2 - a;
        double n = hypot(hypot(nf->affine[0][col], nf->affine[1][col]), nf->affine[2][col]);
        v->spacing[a] = n;
        for (int r = 0; r < 3; r++)
            v->direction[3 * r + a] = nf->affine[r][col] / n;
        v->origin[a] = nf->affine[a][3];
    }
}

void dk_nifti_affine(const dk_volume *v, double affine[3][4])
{
    for (int r = 0; r < 3; r++) {
        for (int a = 0; a < 3; a++)
            affine[r][2 - a] = v->direction[3 * r + a] * v->spacing[a];
        affine[r][3] = v->origin[r];
    }
}

double dk_nifti_grid_tolerance(const dk_volume *a, const dk_volume *b)
{
    double smallest = a->spacing[0];
    for (int i = 0; i < 3; i++) {
        smallest = fmin(smallest, a->spacing[i]);
        smallest = fmin(smallest, b->spacing[i]);
    }
    return 1e-3 * smallest;
}

/* ---- public ---- */

dk_status dk_nifti_read_image(const char *path, const char *id, dk_volume *v, dk_err *err)
{
    memset(v, 0, sizeof *v);
    if (!dk_volume_id_valid(id))
        return dk_err_set(err, DK_EINVAL, "'%s': volume id '%s' is not [A-Za-z0-9._-]{1,63}", path,
                          id);
    nifti_file nf;
    dk_status st = load_file(path, &nf, err);
    if (st) return st;
    int dims[3] = {nf.nz, nf.ny, nf.nx};
    st = dk_volume_alloc(v, id, dims, false, err);
    if (st) {
        free(nf.raw);
        return dk_err_prefix(err, st, "'%s'", path);
    }
    grid_from_affine(&nf, v);
    for (size_t i = 0; i < nf.voxels; i++)
        v->image[i] = (float)voxel_value(&nf, i);
    free(nf.raw);
    snprintf(v->source, sizeof v->source, "%s", path);
    v->split[0] = '\0';
    return DK_OK;
}

static dk_status check_same_grid(const char *path, const dk_volume *label_grid, const dk_volume *v,
                                 dk_err *err)
{
    if (memcmp(label_grid->dims, v->dims, sizeof v->dims) != 0)
        return dk_err_set(
            err, DK_EMISMATCH, "label '%s' is %d x %d x %d (z y x) but image '%s' is %d x %d x %d",
            path, label_grid->dims[0], label_grid->dims[1], label_grid->dims[2],
            v->source[0] ? v->source : "(unnamed)", v->dims[0], v->dims[1], v->dims[2]);
    double la[3][4], ia[3][4];
    dk_nifti_affine(label_grid, la);
    dk_nifti_affine(v, ia);
    double tol = dk_nifti_grid_tolerance(label_grid, v);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            if (!(fabs(la[r][c] - ia[r][c]) <= tol))
                return dk_err_set(err, DK_EMISMATCH,
                                  "label '%s' and image '%s' have different affines: element "
                                  "[%d][%d] is %g vs %g mm (tolerance %g)",
                                  path, v->source[0] ? v->source : "(unnamed)", r, c, la[r][c],
                                  ia[r][c], tol);
    return DK_OK;
}

static dk_status labels_from_values(const nifti_file *nf, uint8_t *label, dk_err *err)
{
    for (size_t i = 0; i < nf->voxels; i++) {
        double x = voxel_value(nf, i);
        if (!(x >= 0 && x <= 255) || x != floor(x)) {
            size_t xi = i % nf->nx, yj = i / nf->nx % nf->ny, zk = i / ((size_t)nf->nx * nf->ny);
            return dk_err_set(err, DK_EFORMAT,
                              "'%s': label value %g at voxel (i %zu, j %zu, k %zu) is not an "
                              "integer in 0..255",
                              nf->path, x, xi, yj, zk);
        }
        label[i] = (uint8_t)x;
    }
    return DK_OK;
}

dk_status dk_nifti_read_label(const char *path, dk_volume *v, dk_err *err)
{
    nifti_file nf;
    dk_status st = load_file(path, &nf, err);
    if (st) return st;
    dk_volume grid = {.dims = {nf.nz, nf.ny, nf.nx}};
    grid_from_affine(&nf, &grid);
    st = check_same_grid(path, &grid, v, err);
    uint8_t *label = NULL;
    if (!st) {
        label = malloc(nf.voxels);
        if (!label) st = dk_err_set(err, DK_ENOMEM, "'%s': no memory for labels", path);
    }
    if (!st) st = labels_from_values(&nf, label, err);
    free(nf.raw);
    if (st) {
        free(label);
        return st;
    }
    free(v->label);
    v->label = label;
    return DK_OK;
}
