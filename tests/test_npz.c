/* test_npz.c: the .npz reader and writer (datasets/npz.h): our archives read
 * back; numpy's own np.savez output (float16 and float32, 5-D, names with dots)
 * reads as numpy wrote it; np.savez_compressed, truncation, a flipped data byte
 * (CRC), a duplicate name and the byte bound are refused with a message. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/npz.h"
#include "distill/half.h"
#include "testutil.h"

TestSuite(npz, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void *encode_two(size_t *len)
{
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    uint16_t h[2] = {dk_half_from_float(0.5f), dk_half_from_float(-4)};
    dk_npz_entry e[2] = {
        {.name = "enc0.conv.weight",
         .array = {.dtype = DK_NPY_F4, .rank = 5, .shape = {1, 1, 1, 2, 3}, .numel = 6, .data = a}},
        {.name = "head.bias",
         .array = {.dtype = DK_NPY_F2, .rank = 1, .shape = {2}, .numel = 2, .data = h}},
    };
    void *buf;
    dk_err err = {0};
    cr_assert_eq(dk_npz_encode(e, 2, &buf, len, &err), DK_OK, "%s", err.msg);
    return buf;
}

Test(npz, our_archive_reads_back)
{
    size_t len;
    void *buf = encode_two(&len);
    dk_npz z;
    dk_err err = {0};
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(z.count, 2);
    cr_assert_str_eq(z.entries[0].name, "enc0.conv.weight");
    cr_assert_eq(z.entries[0].array.rank, 5);
    cr_assert_eq(((float *)z.entries[0].array.data)[2], 3.5f);
    cr_assert_str_eq(z.entries[1].name, "head.bias");
    cr_assert_eq(z.entries[1].array.dtype, DK_NPY_F2);
    cr_assert_eq(dk_half_to_float(((uint16_t *)z.entries[1].array.data)[1]), -4.0f);
    dk_npz_free(&z);
    /* the byte bound: 24 + 4 bytes of data */
    cr_assert_eq(dk_npz_decode(buf, len, 20, &z, &err), DK_ELIMIT, "%s", err.msg);
    /* a flipped data byte is caught by the CRC */
    ((unsigned char *)buf)[200] ^= 1;
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    /* every truncation is refused, none crashes */
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_neq(dk_npz_decode(buf, cut, 0, &z, NULL), DK_OK, "cut at %zu", cut);
    free(buf);
}

static const char numpy_py[] =
    "import sys, numpy as np\n"
    "d = sys.argv[1]\n"
    "w = np.arange(2*1*3*2*2, dtype=np.float32).reshape(2, 1, 3, 2, 2) / 7\n"
    "b = np.array([1.5, -2.25], dtype=np.float16).reshape(1, 1, 1, 1, 2)\n"
    "np.savez(d + '/plain.npz', **{'enc0.conv.weight': w, 'enc0.conv.bias': b})\n"
    "np.savez_compressed(d + '/packed.npz', x=w)\n"
    "np.savez(d + '/dup.npz', x=w, y=b)\n";

Test(npz, numpy_savez_reads_and_savez_compressed_is_refused)
{
    char cmd[4096], out[4096];
    char *script = dk_test_path("w.py");
    FILE *f = fopen(script, "w");
    fputs(numpy_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %s", dk_test_python(), script, dk_test_dir);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    char *path = dk_test_path("plain.npz");
    size_t len;
    char *buf = slurp(path, &len);
    dk_npz z;
    dk_err err = {0};
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(z.count, 2);
    cr_assert_str_eq(z.entries[0].name, "enc0.conv.weight");
    cr_assert_eq(z.entries[0].array.dtype, DK_NPY_F4);
    cr_assert_eq(z.entries[0].array.shape[2], 3);
    cr_assert_eq(((float *)z.entries[0].array.data)[11], 11.0f / 7);
    cr_assert_eq(z.entries[1].array.dtype, DK_NPY_F2);
    cr_assert_eq(dk_half_to_float(((uint16_t *)z.entries[1].array.data)[1]), -2.25f);
    dk_npz_free(&z);
    free(buf), free(path);
    path = dk_test_path("packed.npz");
    buf = slurp(path, &len);
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "entry 'x.npy' is compressed") && strstr(err.msg, "np.savez"), "%s",
              err.msg);
    free(buf), free(path);
    /* rename y.npy to x.npy in place (same length) in both headers: a duplicate */
    path = dk_test_path("dup.npz");
    buf = slurp(path, &len);
    for (size_t i = 0; i + 5 <= len; i++)
        if (memcmp(buf + i, "y.npy", 5) == 0) buf[i] = 'x';
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "CRC") || strstr(err.msg, "appears twice"), "%s", err.msg);
    free(buf), free(path), free(script);
}

Test(npz, not_a_zip)
{
    dk_npz z;
    dk_err err = {0};
    cr_assert_eq(dk_npz_decode("\x93NUMPY", 6, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
    char junk[100] = {0};
    cr_assert_eq(dk_npz_decode(junk, sizeof junk, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "end-of-central-directory"), "%s", err.msg);
}
