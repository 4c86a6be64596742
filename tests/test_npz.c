/* test_npz.c: the .npz reader and writer (datasets/npz.h): our archives, stored
 * and deflated, read back and numpy's np.load reads the deflated one; numpy's
 * own np.savez and np.savez_compressed output (float16 and float32, 5-D, names
 * with dots) and a deflated zip with data descriptors read as written; truncation, a flipped data byte (CRC), a
 * duplicate name, the byte bound, a zip bomb whose declared size lies, a cut
 * deflate stream, a wrong CRC and an unknown method are refused with a message. */
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

static void *encode_two(dk_npz_compression how, size_t *len)
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
    cr_assert_eq(dk_npz_encode(e, 2, how, &buf, len, &err), DK_OK, "%s", err.msg);
    return buf;
}

static void our_archive_reads_back(dk_npz_compression how)
{
    size_t len;
    void *buf = encode_two(how, &len);
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
    /* a flipped data byte is caught by the CRC (or, deflated, by inflate) */
    ((unsigned char *)buf)[how == DK_NPZ_DEFLATE ? 60 : 200] ^= 1;
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    /* every truncation is refused, none crashes */
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_neq(dk_npz_decode(buf, cut, 0, &z, NULL), DK_OK, "cut at %zu", cut);
    free(buf);
}

Test(npz, our_stored_archive_reads_back)
{
    our_archive_reads_back(DK_NPZ_STORE);
}

Test(npz, our_deflated_archive_reads_back_smaller)
{
    our_archive_reads_back(DK_NPZ_DEFLATE);
    size_t stored, deflated;
    free(encode_two(DK_NPZ_STORE, &stored));
    free(encode_two(DK_NPZ_DEFLATE, &deflated));
    cr_assert_lt(deflated, stored);
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static const char numpy_reads_py[] =
    "import sys, zipfile, numpy as np\n"
    "p = sys.argv[1]\n"
    "assert all(i.compress_type == 8 for i in zipfile.ZipFile(p).infolist())\n"
    "z = np.load(p)\n"
    "w, b = z['enc0.conv.weight'], z['head.bias']\n"
    "assert w.dtype == np.float32 and w.shape == (1, 1, 1, 2, 3), w.shape\n"
    "assert w.ravel()[2] == 3.5 and b.dtype == np.float16 and b[1] == -4, (w, b)\n"
    "print('ok')\n";

Test(npz, numpy_loads_our_deflated_archive)
{
    size_t len;
    void *buf = encode_two(DK_NPZ_DEFLATE, &len);
    char *path = dk_test_path("ours.npz"), *script = dk_test_path("r.py");
    write_file(path, buf, len);
    write_file(script, numpy_reads_py, strlen(numpy_reads_py));
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s", dk_test_python(), script, path);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "ok"), "%s", out);
    free(buf), free(path), free(script);
}

/* The central directory entry of an archive we wrote (no comment, one entry). */
static unsigned char *central_of(void *buf, size_t len)
{
    unsigned char *b = buf, *end = b + len - 22;
    size_t at = (size_t)end[16] | (size_t)end[17] << 8 | (size_t)end[18] << 16;
    cr_assert(memcmp(b + at, "PK\1\2", 4) == 0);
    return b + at;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void *zeros_deflated(size_t *len)
{
    float *zeros = calloc(1 << 20, sizeof *zeros); /* 4 MiB that deflate to ~4 KiB */
    dk_npz_entry e = {.name = "bomb",
                      .array = {.dtype = DK_NPY_F4, .rank = 1, .shape = {1 << 20},
                                .numel = 1 << 20, .data = zeros}};
    void *buf;
    dk_err err = {0};
    cr_assert_eq(dk_npz_encode(&e, 1, DK_NPZ_DEFLATE, &buf, len, &err), DK_OK, "%s", err.msg);
    cr_assert_lt(*len, 40000);
    free(zeros);
    return buf;
}

Test(npz, zip_bombs_and_damaged_deflate_are_refused)
{
    size_t len;
    dk_npz z;
    dk_err err = {0};
    void *buf = zeros_deflated(&len);
    unsigned char *c = central_of(buf, len);
    cr_assert_eq(c[10], 8, "the entry is deflated");
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_OK, "%s", err.msg);
    dk_npz_free(&z);
    /* the declared size beyond the caller's bound: refused before allocating */
    cr_assert_eq(dk_npz_decode(buf, len, 1 << 16, &z, &err), DK_ELIMIT);
    cr_assert(strstr(err.msg, "'bomb.npy' declares 4194432 bytes"), "%s", err.msg);
    /* a declared size deflate cannot reach from these compressed bytes */
    unsigned char saved[4];
    memcpy(saved, c + 24, 4);
    put32(c + 24, 0xF0000000u);
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "more than deflate can produce"), "%s", err.msg);
    /* a bomb that lies small: inflate stops at the declared 1000 bytes */
    put32(c + 24, 1000);
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "'bomb.npy' does not end within its declared 1000 bytes"), "%s",
              err.msg);
    memcpy(c + 24, saved, 4);
    /* the deflate stream cut short by 16 bytes */
    uint32_t csize = (uint32_t)c[20] | (uint32_t)c[21] << 8 | (uint32_t)c[22] << 16;
    put32(c + 20, csize - 16);
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "'bomb.npy'") && strstr(err.msg, "truncated"), "%s", err.msg);
    put32(c + 20, csize);
    /* the inflated bytes do not match the directory's CRC-32 */
    c[16] ^= 1;
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "'bomb.npy': CRC-32 mismatch"), "%s", err.msg);
    c[16] ^= 1;
    /* another method (12, bzip2) in both headers */
    c[10] = 12, ((unsigned char *)buf)[8] = 12;
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "'bomb.npy' uses zip method 12"), "%s", err.msg);
    free(buf);
}

static const char numpy_py[] =
    "import io, sys, zipfile, numpy as np\n"
    "d = sys.argv[1]\n"
    "class Unseekable(io.RawIOBase):  # zipfile then writes data descriptors (flag bit 3)\n"
    "    def __init__(s, f): s.f = f\n"
    "    def writable(s): return True\n"
    "    def write(s, b): return s.f.write(b)\n"
    "w = np.arange(2*1*3*2*2, dtype=np.float32).reshape(2, 1, 3, 2, 2) / 7\n"
    "b = np.array([1.5, -2.25], dtype=np.float16).reshape(1, 1, 1, 1, 2)\n"
    "np.savez(d + '/plain.npz', **{'enc0.conv.weight': w, 'enc0.conv.bias': b})\n"
    "np.savez_compressed(d + '/packed.npz', **{'enc0.conv.weight': w, 'enc0.conv.bias': b})\n"
    "np.savez(d + '/dup.npz', x=w, y=b)\n"
    "with open(d + '/stream.npz', 'wb') as f:\n"
    "    with zipfile.ZipFile(Unseekable(f), 'w', zipfile.ZIP_DEFLATED) as z:\n"
    "        a = io.BytesIO()\n"
    "        np.lib.format.write_array(a, w)\n"
    "        z.writestr('x.npy', a.getvalue())\n"
    "assert zipfile.ZipFile(d + '/stream.npz').infolist()[0].flag_bits & 8\n";

Test(npz, numpy_savez_savez_compressed_and_a_data_descriptor_read)
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
    path = dk_test_path("packed.npz"); /* the same arrays, deflated by numpy */
    buf = slurp(path, &len);
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(z.count, 2);
    cr_assert_eq(z.entries[0].array.shape[2], 3);
    cr_assert_eq(((float *)z.entries[0].array.data)[11], 11.0f / 7);
    cr_assert_eq(dk_half_to_float(((uint16_t *)z.entries[1].array.data)[1]), -2.25f);
    dk_npz_free(&z);
    free(buf), free(path);
    path = dk_test_path("stream.npz"); /* deflated with a data descriptor after the data */
    buf = slurp(path, &len);
    cr_assert_eq(dk_npz_decode(buf, len, 0, &z, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(z.count, 1);
    cr_assert_eq(((float *)z.entries[0].array.data)[11], 11.0f / 7);
    dk_npz_free(&z);
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
