/* test_nifti.c: NIfTI-1 reading and writing (datasets/nifti.h), checked against
 * hand-crafted headers, against nibabel in both directions and against malformed
 * and hostile files (`dualkd data import` / `data export`: test_data_import.c). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "testutil.h"

static char *tmp;

static void setup(void)
{
    tmp = dk_test_tmpdir();
    cr_assert(tmp);
}
static void teardown(void)
{
    dk_test_rmtree(tmp);
    free(tmp);
}

TestSuite(nifti, .init = setup, .fini = teardown);

/* A path inside this test's directory (static storage, rotating over 16 slots). */
static const char *in_tmp(const char *name)
{
    static char paths[16][512];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof paths[0], "%s/%s", tmp, name);
    return p;
}

/* ---- crafted files ---- */

static void put16(unsigned char *h, int off, int16_t v)
{
    memcpy(h + off, &v, 2);
}
static void put32(unsigned char *h, int off, int32_t v)
{
    memcpy(h + off, &v, 4);
}
static void putf(unsigned char *h, int off, float v)
{
    memcpy(h + off, &v, 4);
}

/* A valid little-endian header: 3D nx*ny*nz, unit pixdim, no sform/qform. */
static void craft_header(unsigned char h[352], int datatype, int bitpix, int nx, int ny, int nz)
{
    memset(h, 0, 352);
    put32(h, 0, 348);
    put16(h, 40, 3);
    put16(h, 42, (int16_t)nx);
    put16(h, 44, (int16_t)ny);
    put16(h, 46, (int16_t)nz);
    for (int a = 4; a <= 7; a++)
        put16(h, 40 + 2 * a, 1);
    put16(h, 70, (int16_t)datatype);
    put16(h, 72, (int16_t)bitpix);
    for (int a = 0; a <= 3; a++)
        putf(h, 76 + 4 * a, 1);
    putf(h, 108, 352);
    memcpy(h + 344, "n+1\0", 4);
}

static void write_file(const char *path, const unsigned char *head, size_t head_len,
                       const void *data, size_t data_len)
{
    size_t len = strlen(path);
    if (strcmp(path + len - 3, ".gz") == 0) {
        gzFile gz = gzopen(path, "wb");
        cr_assert(gz);
        cr_assert_eq(gzwrite(gz, head, (unsigned)head_len), (int)head_len);
        if (data_len) cr_assert_eq(gzwrite(gz, data, (unsigned)data_len), (int)data_len);
        cr_assert_eq(gzclose(gz), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert(f);
        cr_assert_eq(fwrite(head, 1, head_len, f), head_len);
        if (data_len) cr_assert_eq(fwrite(data, 1, data_len, f), data_len);
        cr_assert_eq(fclose(f), 0);
    }
}

/* Read path as an image and expect failure with code and every substring in msg. */
static void expect_read_error(const char *path, dk_status code, const char *a, const char *b)
{
    dk_volume v;
    dk_err err = {0};
    dk_status st = dk_nifti_read_image(path, "x", &v, &err);
    cr_assert_eq(st, code, "%s: status %d (%s)", path, st, err.msg);
    cr_assert(strstr(err.msg, path), "message does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, a), "message lacks '%s': %s", a, err.msg);
    if (b) cr_assert(strstr(err.msg, b), "message lacks '%s': %s", b, err.msg);
    cr_assert_null(v.image);
}

/* A 4x3x2 volume with a rotated, reflected grid and awkward float values. */
static void make_volume(dk_volume *v, bool with_label)
{
    int dims[3] = {2, 3, 4};
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(v, "case-1", dims, with_label, &err), DK_OK, "%s", err.msg);
    size_t n = dk_volume_voxels(v);
    dk_test_fill_uniform(v->image, n, 7, -1e4f, 1e4f);
    v->image[0] = 1e-40f; /* subnormal */
    v->image[1] = -0.0f;
    v->image[2] = 3.4e38f;
    for (size_t i = 0; with_label && i < n; i++)
        v->label[i] = (uint8_t)(i * 37 % 256);
    double s = sin(0.3), c = cos(0.3);
    /* rotation about the RAS z axis, then the z column flipped (det -1) */
    double dir[9] = {0, c, -s, 0, s, c, -1, 0, 0};
    memcpy(v->direction, dir, sizeof dir);
    v->spacing[0] = 3.3, v->spacing[1] = 0.31, v->spacing[2] = 0.29;
    v->origin[0] = -87.25, v->origin[1] = 12.5, v->origin[2] = 140.125;
}

/* ---- round trips ---- */

static void round_trip(const char *image_name, const char *label_name)
{
    dk_volume v, back;
    dk_err err = {0};
    make_volume(&v, true);
    cr_assert_eq(dk_nifti_write_image(in_tmp(image_name), &v, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_nifti_write_label(in_tmp(label_name), &v, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_nifti_read_image(in_tmp(image_name), "case-1", &back, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(dk_nifti_read_label(in_tmp(label_name), &back, &err), DK_OK, "%s", err.msg);
    dk_test_assert_same_grid(&v, &back);
    cr_assert_eq(memcmp(v.image, back.image, dk_volume_voxels(&v) * sizeof(float)), 0,
                 "float32 voxels are not bit-exact");
    cr_assert_eq(memcmp(v.label, back.label, dk_volume_voxels(&v)), 0);
    cr_assert_str_eq(back.source, in_tmp(image_name));
    dk_volume_release(&v);
    dk_volume_release(&back);
}

Test(nifti, round_trip_nii)
{
    round_trip("a.nii", "a_label.nii");
}
Test(nifti, round_trip_nii_gz)
{
    round_trip("a.nii.gz", "a_label.nii.gz");
    unsigned char magic[2];
    FILE *f = fopen(in_tmp("a.nii.gz"), "rb");
    cr_assert_eq(fread(magic, 1, 2, f), 2);
    fclose(f);
    cr_assert(magic[0] == 0x1f && magic[1] == 0x8b, "a .nii.gz is not gzip");
}

Test(nifti, writes_leave_no_temporary_files)
{
    dk_volume v;
    dk_err err = {0};
    make_volume(&v, false);
    cr_assert_eq(dk_nifti_write_image(in_tmp("b.nii.gz"), &v, &err), DK_OK);
    cr_assert_eq(dk_nifti_write_image(in_tmp("b.nii.gz"), &v, &err), DK_OK); /* replace */
    cr_assert_eq(dk_nifti_write_label(in_tmp("c.nii"), &v, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "no label"), "%s", err.msg);
    cr_assert_eq(dk_nifti_write_image(in_tmp("missing/d.nii"), &v, &err), DK_EIO);
    cr_assert(strstr(err.msg, "missing/d.nii"), "%s", err.msg);
    char out[1024];
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", tmp);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0);
    cr_assert_str_eq(out, "b.nii.gz\n");
    dk_volume_release(&v);
}

/* ---- datatypes, byte order, scaling ---- */

typedef struct typed_case {
    int code, bitpix;
    double values[4];
} typed_case;

static void encode(int code, double x, unsigned char *p)
{
    switch (code) {
    case 2:
        *p = (uint8_t)x;
        break;
    case 4: {
        int16_t t = (int16_t)x;
        memcpy(p, &t, 2);
        break;
    }
    case 512: {
        uint16_t t = (uint16_t)x;
        memcpy(p, &t, 2);
        break;
    }
    case 8: {
        int32_t t = (int32_t)x;
        memcpy(p, &t, 4);
        break;
    }
    case 16: {
        float t = (float)x;
        memcpy(p, &t, 4);
        break;
    }
    case 64:
        memcpy(p, &x, 8);
        break;
    }
}

Test(nifti, every_datatype_little_and_big_endian)
{
    typed_case cases[] = {
        {2, 8, {0, 1, 200, 255}},           {4, 16, {-32768, -1, 7, 32767}},
        {512, 16, {0, 1, 40000, 65535}},    {8, 32, {-2147483648.0, -5, 16777216, 123456}},
        {16, 32, {-1.5, 0.25, 3e38, 1e-3}}, {64, 64, {-1.5, 0.1, 1e300 * 0 + 12345.678, -2e-3}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int big = 0; big < 2; big++) {
            unsigned char h[352], data[32];
            int bytes = cases[c].bitpix / 8;
            craft_header(h, cases[c].code, cases[c].bitpix, 2, 2, 1);
            for (int i = 0; i < 4; i++)
                encode(cases[c].code, cases[c].values[i], data + i * bytes);
            if (big) { /* swap every multi-byte field we set, and every voxel */
                int fields4[] = {0, 76, 80, 84, 88, 108};
                for (size_t f = 0; f < sizeof fields4 / sizeof *fields4; f++)
                    for (int k = 0; k < 2; k++) {
                        unsigned char t = h[fields4[f] + k];
                        h[fields4[f] + k] = h[fields4[f] + 3 - k];
                        h[fields4[f] + 3 - k] = t;
                    }
                for (int off = 40; off < 74; off += 2) {
                    if (off >= 56 && off < 70) continue; /* intent floats and code: zero */
                    unsigned char t = h[off];
                    h[off] = h[off + 1];
                    h[off + 1] = t;
                }
                for (int i = 0; i < 4; i++)
                    for (int k = 0; k < bytes / 2; k++) {
                        unsigned char t = data[i * bytes + k];
                        data[i * bytes + k] = data[i * bytes + bytes - 1 - k];
                        data[i * bytes + bytes - 1 - k] = t;
                    }
            }
            char name[64];
            snprintf(name, sizeof name, "t%d_%d.nii%s", cases[c].code, big, c % 2 ? ".gz" : "");
            write_file(in_tmp(name), h, 352, data, (size_t)4 * bytes);
            dk_volume v;
            dk_err err = {0};
            cr_assert_eq(dk_nifti_read_image(in_tmp(name), "t", &v, &err), DK_OK, "%s: %s", name,
                         err.msg);
            cr_assert_eq(v.dims[0], 1);
            cr_assert_eq(v.dims[1], 2);
            cr_assert_eq(v.dims[2], 2);
            for (int i = 0; i < 4; i++)
                cr_assert_eq(v.image[i], (float)cases[c].values[i], "%s voxel %d: %g vs %g", name,
                             i, v.image[i], cases[c].values[i]);
            dk_volume_release(&v);
        }
    }
}

Test(nifti, scl_slope_and_inter_applied_zero_slope_ignored)
{
    unsigned char h[352];
    int16_t data[4] = {-4, 0, 6, 1000};
    craft_header(h, 4, 16, 4, 1, 1);
    putf(h, 112, 0.5f);
    putf(h, 116, -3.0f);
    write_file(in_tmp("s.nii.gz"), h, 352, data, sizeof data);
    dk_volume v;
    dk_err err = {0};
    cr_assert_eq(dk_nifti_read_image(in_tmp("s.nii.gz"), "s", &v, &err), DK_OK, "%s", err.msg);
    float expect[4] = {-5, -3, 0, 497};
    cr_assert_arr_eq(v.image, expect, sizeof expect);
    dk_volume_release(&v);

    putf(h, 112, 0.0f); /* slope 0: stored values as they are */
    write_file(in_tmp("s0.nii"), h, 352, data, sizeof data);
    cr_assert_eq(dk_nifti_read_image(in_tmp("s0.nii"), "s", &v, &err), DK_OK, "%s", err.msg);
    float raw[4] = {-4, 0, 6, 1000};
    cr_assert_arr_eq(v.image, raw, sizeof raw);
    dk_volume_release(&v);
}

Test(nifti, axes_follow_the_sform_and_qform)
{
    unsigned char h[352];
    float data[24];
    for (int i = 0; i < 24; i++)
        data[i] = (float)i;
    craft_header(h, 16, 32, 4, 3, 2); /* i=4, j=3, k=2 */
    put16(h, 254, 1);
    float srow[3][4] = {{-0.5f, 0, 0, 10}, {0, 0, 2.0f, -20}, {0, 0.75f, 0, 30}};
    memcpy(h + 280, srow, sizeof srow);
    write_file(in_tmp("ax.nii"), h, 352, data, sizeof data);
    dk_volume v;
    dk_err err = {0};
    cr_assert_eq(dk_nifti_read_image(in_tmp("ax.nii"), "ax", &v, &err), DK_OK, "%s", err.msg);
    int dims[3] = {2, 3, 4};
    cr_assert_arr_eq(v.dims, dims, sizeof dims);
    /* our z is the file's k (sform column 2: +A), y is j (+S), x is i (-R) */
    double dir[9] = {0, 0, -1, 1, 0, 0, 0, 1, 0};
    double sp[3] = {2.0, 0.75, 0.5}, org[3] = {10, -20, 30};
    for (int i = 0; i < 9; i++)
        cr_assert_float_eq(v.direction[i], dir[i], 1e-12, "dir %d", i);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(v.spacing[i], sp[i], 1e-12);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(v.origin[i], org[i], 1e-12);
    cr_assert_eq(v.image[1 * 12 + 2 * 4 + 3], 23.0f); /* [k=1][j=2][i=3] */
    dk_volume_release(&v);

    /* Same file with qform only: quaternion of a 90-degree turn about +S, qfac -1. */
    put16(h, 254, 0);
    put16(h, 252, 1);
    putf(h, 76, -1);
    putf(h, 80, 0.5f), putf(h, 84, 0.75f), putf(h, 88, 2.0f);
    putf(h, 264, (float)sqrt(0.5)); /* d; a = sqrt(1 - d^2) */
    putf(h, 268, 1), putf(h, 272, 2), putf(h, 276, 3);
    write_file(in_tmp("q.nii"), h, 352, data, sizeof data);
    cr_assert_eq(dk_nifti_read_image(in_tmp("q.nii"), "q", &v, &err), DK_OK, "%s", err.msg);
    /* i -> +A, j -> -R, k -> -S */
    double qdir[9] = {0, -1, 0, 0, 0, 1, -1, 0, 0};
    for (int i = 0; i < 9; i++)
        cr_assert_float_eq(v.direction[i], qdir[i], 1e-6, "qdir %d", i);
    dk_volume_release(&v);
}

/* ---- labels ---- */

Test(nifti, label_values_and_grid_are_checked)
{
    dk_volume v;
    dk_err err = {0};
    make_volume(&v, false);
    cr_assert_eq(dk_nifti_write_image(in_tmp("img.nii"), &v, &err), DK_OK);
    dk_volume_release(&v);
    cr_assert_eq(dk_nifti_read_image(in_tmp("img.nii"), "img", &v, &err), DK_OK);
    unsigned char h[352];
    int16_t bad[24] = {0};
    bad[5] = 300;
    craft_header(h, 4, 16, 4, 3, 2);
    double a[3][4];
    dk_nifti_affine(&v, a);
    put16(h, 254, 1);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            putf(h, 280 + 16 * r + 4 * c, (float)a[r][c]);
    write_file(in_tmp("l300.nii"), h, 352, bad, sizeof bad);
    cr_assert_eq(dk_nifti_read_label(in_tmp("l300.nii"), &v, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "l300.nii") && strstr(err.msg, "300"), "%s", err.msg);
    cr_assert_null(v.label);

    float frac[24] = {0};
    frac[3] = 1.5f;
    put16(h, 70, 16), put16(h, 72, 32);
    write_file(in_tmp("lfrac.nii"), h, 352, frac, sizeof frac);
    cr_assert_eq(dk_nifti_read_label(in_tmp("lfrac.nii"), &v, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "1.5"), "%s", err.msg);

    frac[3] = 2;
    putf(h, 280 + 12, (float)(a[0][3] + 1.0)); /* origin moved by 1 mm */
    write_file(in_tmp("lmoved.nii"), h, 352, frac, sizeof frac);
    cr_assert_eq(dk_nifti_read_label(in_tmp("lmoved.nii"), &v, &err), DK_EMISMATCH);
    cr_assert(strstr(err.msg, "lmoved.nii") && strstr(err.msg, "img.nii"), "%s", err.msg);

    craft_header(h, 2, 8, 4, 3, 3);
    unsigned char zeros[36] = {0};
    write_file(in_tmp("ldims.nii"), h, 352, zeros, sizeof zeros);
    cr_assert_eq(dk_nifti_read_label(in_tmp("ldims.nii"), &v, &err), DK_EMISMATCH);
    cr_assert(strstr(err.msg, "3 x 3 x 4") && strstr(err.msg, "2 x 3 x 4"), "%s", err.msg);
    cr_assert_null(v.label);
    dk_volume_release(&v);
}

/* ---- malformed files ---- */

static const char *craft_bad(const char *name, void (*mutate)(unsigned char *h), size_t data_len)
{
    unsigned char h[352], data[512] = {0};
    craft_header(h, 2, 8, 8, 8, 8);
    if (mutate) mutate(h);
    write_file(in_tmp(name), h, 352, data, data_len);
    return in_tmp(name);
}

static void bad_magic(unsigned char *h)
{
    memcpy(h + 344, "n+2\0", 4);
}
static void pair_magic(unsigned char *h)
{
    memcpy(h + 344, "ni1\0", 4);
}
static void bad_size(unsigned char *h)
{
    put32(h, 0, 540);
}
static void dim0_zero(unsigned char *h)
{
    put16(h, 40, 0);
}
static void dim0_eight(unsigned char *h)
{
    put16(h, 40, 8);
}
static void dim_zero(unsigned char *h)
{
    put16(h, 44, 0);
}
static void dim_negative(unsigned char *h)
{
    put16(h, 46, -8);
}
static void dim_huge(unsigned char *h)
{
    put16(h, 42, 5000);
}
static void too_many_bytes(unsigned char *h)
{
    put16(h, 42, 4096), put16(h, 44, 4096), put16(h, 46, 200), put16(h, 70, 64);
}
static void four_d(unsigned char *h)
{
    put16(h, 40, 4), put16(h, 48, 3);
}
static void rgb(unsigned char *h)
{
    put16(h, 70, 128), put16(h, 72, 24);
}
static void complex64(unsigned char *h)
{
    put16(h, 70, 32);
}
static void offset_small(unsigned char *h)
{
    putf(h, 108, 100);
}
static void offset_huge(unsigned char *h)
{
    putf(h, 108, 3e9f);
}
static void offset_fraction(unsigned char *h)
{
    putf(h, 108, 352.5f);
}
static void pixdim_nan(unsigned char *h)
{
    putf(h, 84, NAN);
}
static void pixdim_zero(unsigned char *h)
{
    putf(h, 80, 0);
}
static void sform_nan(unsigned char *h)
{
    put16(h, 254, 1), putf(h, 300, NAN);
}
static void sform_zero_column(unsigned char *h)
{
    put16(h, 254, 1);
}
static void qform_not_unit(unsigned char *h)
{
    put16(h, 252, 1), putf(h, 256, 1.5f);
}

Test(nifti, malformed_headers_name_file_and_problem)
{
    expect_read_error(craft_bad("m1.nii", bad_magic, 512), DK_EFORMAT, "bad magic", NULL);
    expect_read_error(craft_bad("m2.nii", pair_magic, 512), DK_EFORMAT, "ni1", ".hdr/.img");
    expect_read_error(craft_bad("m3.nii.gz", bad_size, 512), DK_EFORMAT, "sizeof_hdr is 540",
                      "348");
    expect_read_error(craft_bad("m4.nii", dim0_zero, 512), DK_EFORMAT, "dim[0] is 0", NULL);
    expect_read_error(craft_bad("m5.nii", dim0_eight, 512), DK_EFORMAT, "dim[0] is 8", NULL);
    expect_read_error(craft_bad("m6.nii", dim_zero, 512), DK_EFORMAT, "dim[2] is 0", NULL);
    expect_read_error(craft_bad("m7.nii", dim_negative, 512), DK_EFORMAT, "dim[3] is -8", NULL);
    expect_read_error(craft_bad("m8.nii", dim_huge, 512), DK_EFORMAT, "dim[1] is 5000", NULL);
    expect_read_error(craft_bad("m9.nii", too_many_bytes, 512), DK_ELIMIT, "4096 x 4096 x 200",
                      "limit");
    expect_read_error(craft_bad("m10.nii", four_d, 512), DK_EFORMAT, "dim[4] is 3", "unsupported");
    expect_read_error(craft_bad("m11.nii", rgb, 512), DK_EFORMAT, "datatype 128 (rgb24)",
                      "unsupported");
    expect_read_error(craft_bad("m12.nii", complex64, 512), DK_EFORMAT, "complex64", NULL);
    expect_read_error(craft_bad("m13.nii", offset_small, 512), DK_EFORMAT, "vox_offset is 100",
                      NULL);
    expect_read_error(craft_bad("m14.nii", offset_huge, 512), DK_EFORMAT, "vox_offset", NULL);
    expect_read_error(craft_bad("m15.nii", offset_fraction, 512), DK_EFORMAT, "vox_offset is 352.5",
                      NULL);
    expect_read_error(craft_bad("m16.nii", pixdim_nan, 512), DK_EFORMAT, "pixdim[2] is nan", NULL);
    expect_read_error(craft_bad("m17.nii", pixdim_zero, 512), DK_EFORMAT, "pixdim[1] is 0", NULL);
    expect_read_error(craft_bad("m18.nii", sform_nan, 512), DK_EFORMAT, "srow_y[1] is nan", NULL);
    expect_read_error(craft_bad("m19.nii", sform_zero_column, 512), DK_EFORMAT, "zero column",
                      NULL);
    expect_read_error(craft_bad("m20.nii", qform_not_unit, 512), DK_EFORMAT, "quaternion", NULL);
}

Test(nifti, truncated_extra_and_missing_files)
{
    expect_read_error(craft_bad("t1.nii", NULL, 500), DK_EFORMAT, "truncated voxel data",
                      "500 of 512");
    expect_read_error(craft_bad("t2.nii.gz", NULL, 100), DK_EFORMAT, "truncated voxel data",
                      "100 of 512");
    unsigned char h[352];
    craft_header(h, 2, 8, 8, 8, 8);
    write_file(in_tmp("t3.nii"), h, 200, NULL, 0);
    expect_read_error(in_tmp("t3.nii"), DK_EFORMAT, "truncated header", NULL);
    expect_read_error(in_tmp("nothing.nii"), DK_ENOTFOUND, "cannot open", NULL);

    /* a gzip stream cut in the middle */
    unsigned char data[512];
    dk_test_fill_uniform((float *)data, sizeof data / 4, 1, -1, 1);
    write_file(in_tmp("t5.nii.gz"), h, 352, data, sizeof data);
    struct stat st;
    cr_assert_eq(stat(in_tmp("t5.nii.gz"), &st), 0);
    cr_assert_eq(truncate(in_tmp("t5.nii.gz"), st.st_size / 2), 0);
    expect_read_error(in_tmp("t5.nii.gz"), DK_EFORMAT, "truncated", NULL);

    /* bytes after the declared data */
    unsigned char more[600] = {0};
    write_file(in_tmp("t6.nii"), h, 352, more, sizeof more);
    expect_read_error(in_tmp("t6.nii"), DK_EFORMAT, "past the 512 bytes", NULL);
}

static void four_d_of_one(unsigned char *h)
{
    put16(h, 40, 4), put16(h, 48, 1);
}

Test(nifti, four_d_with_one_frame_is_3d)
{
    dk_volume v;
    dk_err err = {0};
    cr_assert_eq(dk_nifti_read_image(craft_bad("f.nii", four_d_of_one, 512), "f", &v, &err), DK_OK,
                 "%s", err.msg);
    cr_assert_eq(dk_volume_voxels(&v), 512);
    dk_volume_release(&v);
}

/* 200 MB of zeros behind a header that declares 8x8x8 uint8 (512 bytes). */
Test(nifti, gzip_bomb_stops_at_the_declared_size)
{
    unsigned char h[352];
    craft_header(h, 2, 8, 8, 8, 8);
    gzFile gz = gzopen(in_tmp("bomb.nii.gz"), "wb9");
    cr_assert(gz);
    cr_assert_eq(gzwrite(gz, h, 352), 352);
    unsigned char *zeros = calloc(1, 1 << 20);
    for (int mb = 0; mb < 200; mb++)
        cr_assert_eq(gzwrite(gz, zeros, 1 << 20), 1 << 20);
    free(zeros);
    cr_assert_eq(gzclose(gz), Z_OK);
    struct stat st;
    cr_assert_eq(stat(in_tmp("bomb.nii.gz"), &st), 0);
    cr_assert_lt(st.st_size, 1 << 20, "the bomb is %ld bytes", (long)st.st_size);

    /* The message says the reader stopped right after the declared data. */
    expect_read_error(in_tmp("bomb.nii.gz"), DK_EFORMAT, "past the 512 bytes",
                      "refusing to read further");
}

/* ---- nibabel, both directions ---- */

static const char nibabel_writer_py[] =
    "import sys, numpy as np, nibabel as nib\n"
    "d = sys.argv[1]\n"
    "rng = np.random.default_rng(5)\n"
    "# LPS-ish: i runs to the left, j to the posterior, k superior\n"
    "A = np.array([[-0.3, 0, 0, 40.0], [0, -0.35, 0, 25.5], [0, 0, 3.3, -12.25], [0, 0, 0, 1]])\n"
    "shape = (7, 6, 5)\n"
    "img = nib.Nifti1Image(rng.uniform(-50, 80, size=shape), A)\n"
    "img.set_data_dtype(np.int16)  # nibabel chooses scl_slope and scl_inter\n"
    "img.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)  # a different qform: sform wins\n"
    "img.set_sform(A, code=1)\n"
    "nib.save(img, d + '/lps.nii.gz')\n"
    "lab = nib.Nifti1Image(rng.integers(0, 4, size=shape).astype(np.uint8), A)\n"
    "lab.set_sform(A, code=1)\n"
    "lab.set_qform(A, code=1)\n"
    "nib.save(lab, d + '/lps_label.nii.gz')\n"
    "# an oblique, reflected grid given by the qform alone\n"
    "u = np.array([1.0, 2.0, 3.0]); u /= np.linalg.norm(u)\n"
    "K = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])\n"
    "R = np.eye(3) + np.sin(0.4) * K + (1 - np.cos(0.4)) * K @ K\n"
    "R[:, 2] *= -1\n"
    "B = np.eye(4); B[:3, :3] = R @ np.diag([0.4, 0.5, 2.5]); B[:3, 3] = [-5.5, 60.25, 7.0]\n"
    "obl = nib.Nifti1Image(rng.standard_normal((5, 4, 3)).astype(np.float32), B)\n"
    "obl.set_qform(B, code=1)\n"
    "obl.set_sform(None, code=0)\n"
    "nib.save(obl, d + '/obl.nii')\n"
    "for name in ['lps.nii.gz', 'lps_label.nii.gz', 'obl.nii']:\n"
    "    im = nib.load(d + '/' + name)\n"
    "    np.asarray(im.get_fdata(), dtype=np.float32).ravel(order='F').tofile(d + '/' + name + "
    "'.f32')\n"
    "    np.savetxt(d + '/' + name + '.aff', im.affine[:3], fmt='%.9g')\n"
    "    print(name, int(im.header['sform_code']), int(im.header['qform_code']),\n"
    "          im.header.get_slope_inter())\n";

static const char nibabel_reader_py[] =
    "import sys, numpy as np, nibabel as nib\n"
    "path, raw, aff, dtype = sys.argv[1:5]\n"
    "im = nib.load(path)\n"
    "h = im.header\n"
    "assert int(h['sform_code']) == 1 and int(h['qform_code']) == 1, (h['sform_code'], "
    "h['qform_code'])\n"
    "expect = np.loadtxt(aff)\n"
    "assert np.allclose(im.affine[:3], expect, atol=1e-4), (im.affine, expect)\n"
    "# a float32 quaternion near a half turn loses precision (a = sqrt(1 - b2 - c2 - d2)):\n"
    "# about sqrt(float eps) = 3e-4 per unit of spacing; the sform above is exact\n"
    "assert np.allclose(h.get_qform()[:3], expect, atol=4e-3), (h.get_qform(), expect)\n"
    "slope, inter = h.get_slope_inter()\n"
    "assert slope in (None, 1.0) and inter in (None, 0.0), (slope, inter)\n"
    "data = np.asanyarray(im.dataobj)\n"
    "assert str(data.dtype) == dtype, data.dtype\n"
    "assert data.tobytes(order='F') == open(raw, 'rb').read(), 'voxels differ'\n"
    "assert np.allclose(h.get_zooms(), np.linalg.norm(expect[:, :3], axis=0)), h.get_zooms()\n"
    "print('nibabel agrees', path)\n";

static void save_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void load_floats(const char *path, float *x, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s missing", path);
    cr_assert_eq(fread(x, sizeof(float), n, f), n, "%s short", path);
    fclose(f);
}

static void assert_affine_matches(const dk_volume *v, const char *aff_path)
{
    double expect[3][4], got[3][4];
    FILE *f = fopen(aff_path, "r");
    cr_assert(f, "%s missing", aff_path);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            cr_assert_eq(fscanf(f, "%lf", &expect[r][c]), 1);
    fclose(f);
    dk_nifti_affine(v, got);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            cr_assert_float_eq(got[r][c], expect[r][c], 1e-5, "%s [%d][%d]: %.9g vs nibabel %.9g",
                               aff_path, r, c, got[r][c], expect[r][c]);
}

Test(nifti, reads_what_nibabel_wrote, .timeout = 60)
{
    save_text(in_tmp("w.py"), nibabel_writer_py);
    char cmd[1200], out[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", dk_test_python(), in_tmp("w.py"), tmp);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "nibabel writer failed: %s", out);
    cr_assert(strstr(out, "lps.nii.gz 1 1") && strstr(out, "obl.nii 0 1"), "%s", out);

    dk_volume v;
    dk_err err = {0};
    float expect[210];
    cr_assert_eq(dk_nifti_read_image(in_tmp("lps.nii.gz"), "lps", &v, &err), DK_OK, "%s", err.msg);
    int dims[3] = {5, 6, 7};
    cr_assert_arr_eq(v.dims, dims, sizeof dims);
    assert_affine_matches(&v, in_tmp("lps.nii.gz.aff"));
    cr_assert_float_eq(v.direction[2], -1.0, 1e-12, "x runs to the left (-R)");
    cr_assert_float_eq(v.direction[4], -1.0, 1e-12, "y runs to the back (-A)");
    load_floats(in_tmp("lps.nii.gz.f32"), expect, 210);
    for (int i = 0; i < 210; i++)
        cr_assert_float_eq(v.image[i], expect[i], 1e-6 * fmaxf(1, fabsf(expect[i])),
                           "voxel %d: %g vs nibabel %g", i, v.image[i], expect[i]);
    cr_assert_eq(dk_nifti_read_label(in_tmp("lps_label.nii.gz"), &v, &err), DK_OK, "%s", err.msg);
    load_floats(in_tmp("lps_label.nii.gz.f32"), expect, 210);
    for (int i = 0; i < 210; i++)
        cr_assert_eq(v.label[i], (uint8_t)expect[i], "label %d", i);
    dk_volume_release(&v);

    cr_assert_eq(dk_nifti_read_image(in_tmp("obl.nii"), "obl", &v, &err), DK_OK, "%s", err.msg);
    int odims[3] = {3, 4, 5};
    cr_assert_arr_eq(v.dims, odims, sizeof odims);
    assert_affine_matches(&v, in_tmp("obl.nii.aff"));
    load_floats(in_tmp("obl.nii.f32"), expect, 60);
    cr_assert_eq(memcmp(v.image, expect, 60 * sizeof(float)), 0, "float32 not bit-exact");
    dk_volume_release(&v);
}

static void check_with_nibabel(const char *path, const dk_volume *v, const void *data, size_t bytes,
                               const char *dtype)
{
    FILE *f = fopen(in_tmp("data.raw"), "wb");
    cr_assert_eq(fwrite(data, 1, bytes, f), bytes);
    fclose(f);
    double a[3][4];
    dk_nifti_affine(v, a);
    f = fopen(in_tmp("expect.aff"), "w");
    for (int r = 0; r < 3; r++)
        fprintf(f, "%.17g %.17g %.17g %.17g\n", a[r][0], a[r][1], a[r][2], a[r][3]);
    fclose(f);
    char cmd[2000], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s' '%s' %s", dk_test_python(), in_tmp("r.py"), path,
             in_tmp("data.raw"), in_tmp("expect.aff"), dtype);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "nibabel disagrees on %s: %s", path, out);
}

Test(nifti, nibabel_reads_what_we_wrote, .timeout = 60)
{
    save_text(in_tmp("r.py"), nibabel_reader_py);
    dk_volume v;
    dk_err err = {0};
    make_volume(&v, true);
    const char *img = in_tmp("ours.nii.gz");
    cr_assert_eq(dk_nifti_write_image(img, &v, &err), DK_OK, "%s", err.msg);
    check_with_nibabel(img, &v, v.image, dk_volume_voxels(&v) * 4, "float32");
    const char *lab = in_tmp("ours_label.nii");
    cr_assert_eq(dk_nifti_write_label(lab, &v, &err), DK_OK, "%s", err.msg);
    check_with_nibabel(lab, &v, v.label, dk_volume_voxels(&v), "uint8");
    dk_volume_release(&v);
}
