/* test_npy.c: .npy in memory: arrays this code writes read back by Debian's
 * numpy, arrays numpy writes (every dtype, both byte orders, versions 1.0 and
 * 2.0) read here, and refusals: bad magic, truncation, overflowing shapes, a
 * declared size that disagrees with the bytes, Fortran order, unknown or
 * mismatched dtypes, headers beyond the bound. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/npy.h"
#include "distill/half.h"
#include "testutil.h"

TestSuite(npy, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 120);

static const dk_npy_dtype all_types[] = {DK_NPY_U1, DK_NPY_I1, DK_NPY_U2, DK_NPY_I2, DK_NPY_U4,
                                         DK_NPY_I4, DK_NPY_F2, DK_NPY_F4, DK_NPY_F8};
#define NTYPES (sizeof all_types / sizeof all_types[0])

/* Element i of a test array: finite numbers for float types, a spread of bit patterns otherwise. */
static void fill(dk_npy_dtype t, void *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = (float)i * 0.25f - 3.0f;
        uint64_t bits = (uint64_t)i * 0x9E3779B97F4A7C15u;
        switch (t) {
        case DK_NPY_F2:
            ((uint16_t *)data)[i] = dk_half_from_float(v);
            break;
        case DK_NPY_F4:
            ((float *)data)[i] = v;
            break;
        case DK_NPY_F8:
            ((double *)data)[i] = v;
            break;
        default:
            memcpy((char *)data + i * dk_npy_dtype_size(t), &bits, dk_npy_dtype_size(t));
        }
    }
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*n + 1);
    cr_assert_eq(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

static void run_python(const char *code)
{
    char *script = dk_test_path("check.py"), cmd[8192], out[8192];
    write_file(script, code, strlen(code));
    snprintf(cmd, sizeof cmd, "cd %s && %s %s", dk_test_dir, dk_test_python(), script);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "python exit %d: %s", rc, out);
    cr_assert(strstr(out, "npy ok"), "%s", out);
    free(script);
}

Test(npy, numpy_reads_what_we_write_in_both_byte_orders)
{
    size_t shapes[3][3] = {{2, 3, 5}, {7, 0, 0}, {0, 0, 0}};
    int ranks[3] = {3, 1, 0};
    for (size_t k = 0; k < NTYPES; k++)
        for (int s = 0; s < 3; s++)
            for (int big = 0; big < 2; big++) {
                dk_npy_array a = {.dtype = all_types[k], .rank = ranks[s], .numel = 1};
                for (int d = 0; d < a.rank; d++)
                    a.shape[d] = shapes[s][d], a.numel *= shapes[s][d];
                a.data = malloc(a.numel * dk_npy_dtype_size(a.dtype));
                fill(a.dtype, a.data, a.numel);
                void *buf;
                size_t len;
                dk_err err = {0};
                cr_assert_eq(dk_npy_encode(&a, big, &buf, &len, &err), DK_OK, "%s", err.msg);
                cr_assert_eq(((const unsigned char *)buf)[8] + 10u,
                             len - a.numel * dk_npy_dtype_size(a.dtype));
                cr_assert_eq((len - a.numel * dk_npy_dtype_size(a.dtype)) % 64, 0);
                char name[64];
                snprintf(name, sizeof name, "%s/c-%s-%d-%d.npy", dk_test_dir,
                         dk_npy_dtype_name(a.dtype), s, big);
                write_file(name, buf, len);
                snprintf(name, sizeof name, "%s/c-%s-%d-%d.bin", dk_test_dir,
                         dk_npy_dtype_name(a.dtype), s, big);
                write_file(name, a.data, a.numel * dk_npy_dtype_size(a.dtype));
                /* and back through our own reader */
                dk_npy_array b;
                cr_assert_eq(dk_npy_decode(buf, len, 0, &b, &err), DK_OK, "%s", err.msg);
                cr_assert_eq(b.dtype, a.dtype);
                cr_assert_eq(b.rank, a.rank);
                cr_assert_eq(b.numel, a.numel);
                cr_assert_eq(memcmp(b.data, a.data, a.numel * dk_npy_dtype_size(a.dtype)), 0);
                dk_npy_array_free(&b);
                free(buf), free(a.data);
            }
    run_python("import glob, numpy as np\n"
               "n = 0\n"
               "for path in sorted(glob.glob('c-*.npy')):\n"
               "    _, t, s, big = path[:-4].split('-')\n"
               "    a = np.load(path)\n"
               "    shape = {'0': (2, 3, 5), '1': (7,), '2': ()}[s]\n"
               "    assert a.shape == shape, (path, a.shape)\n"
               "    assert a.dtype.name == np.dtype(t).name, (path, a.dtype)\n"
               "    order = '>' if big == '1' and a.dtype.itemsize > 1 else a.dtype.byteorder\n"
               "    assert a.dtype.byteorder in ('|', '<', '=', '>') and (a.dtype.itemsize == 1 or "
               "(a.dtype.byteorder == '>') == (big == '1')), (path, a.dtype.byteorder)\n"
               "    want = np.fromfile(path[:-4] + '.bin', dtype='<' + t).reshape(shape)\n"
               "    assert a.astype(a.dtype.newbyteorder('<')).tobytes() == want.tobytes(), path\n"
               "    n += 1\n"
               "assert n == 9 * 3 * 2, n\n"
               "print('npy ok', n)\n");
}

Test(npy, we_read_what_numpy_writes_v1_v2_both_orders)
{
    run_python("import numpy as np, numpy.lib.format as fmt\n"
               "for t in ['u1', 'i1', 'u2', 'i2', 'u4', 'i4', 'f2', 'f4', 'f8']:\n"
               "    for order in '<>':\n"
               "        for v in [(1, 0), (2, 0)]:\n"
               "            a = (np.arange(24).reshape(2, 3, 4) * 3 - 20).astype(order + t)\n"
               "            with open('py-%s-%s-%d.npy' % (t, 'big' if order == '>' else 'little', "
               "v[0]), 'wb') as f:\n"
               "                fmt.write_array(f, a, version=v)\n"
               "            a.astype('<' + t).tofile('py-%s.bin' % t)\n"
               "np.save('py-fortran.npy', np.asfortranarray(np.arange(6.0).reshape(2, 3)))\n"
               "np.save('py-scalar.npy', np.float32(2.5))\n"
               "np.save('py-c8.npy', np.zeros(3, np.complex64))\n"
               "print('npy ok')\n");
    const char *orders[2] = {"little", "big"};
    for (size_t k = 0; k < NTYPES; k++) {
        const char *t = dk_npy_dtype_name(all_types[k]);
        char path[4200];
        snprintf(path, sizeof path, "%s/py-%s.bin", dk_test_dir, t);
        size_t want_len;
        void *want = read_file(path, &want_len);
        for (int o = 0; o < 2; o++)
            for (int v = 1; v <= 2; v++) {
                snprintf(path, sizeof path, "%s/py-%s-%s-%d.npy", dk_test_dir, t, orders[o], v);
                size_t len;
                void *buf = read_file(path, &len);
                dk_npy_array a;
                dk_err err = {0};
                cr_assert_eq(dk_npy_decode(buf, len, 0, &a, &err), DK_OK, "%s: %s", path, err.msg);
                cr_assert_eq(dk_npy_expect(&a, all_types[k], 3, path, &err), DK_OK, "%s", err.msg);
                cr_assert(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4, "%s", path);
                cr_assert_eq(a.numel * dk_npy_dtype_size(a.dtype), want_len);
                cr_assert_eq(memcmp(a.data, want, want_len), 0, "%s: values differ", path);
                dk_npy_header h;
                cr_assert_eq(dk_npy_parse_header(buf, len, &h, &err), DK_OK);
                cr_assert_eq(h.version, v);
                cr_assert_eq(h.big_endian, o == 1 && dk_npy_dtype_size(a.dtype) > 1);
                dk_npy_array_free(&a);
                free(buf);
            }
        free(want);
    }
    char path[4200];
    size_t len;
    dk_npy_array a;
    dk_err err = {0};
    snprintf(path, sizeof path, "%s/py-scalar.npy", dk_test_dir);
    void *buf = read_file(path, &len);
    cr_assert_eq(dk_npy_decode(buf, len, 0, &a, &err), DK_OK, "%s", err.msg);
    cr_assert(a.rank == 0 && a.numel == 1 && *(float *)a.data == 2.5f);
    dk_npy_array_free(&a), free(buf);
    snprintf(path, sizeof path, "%s/py-fortran.npy", dk_test_dir);
    buf = read_file(path, &len);
    cr_assert_eq(dk_npy_decode(buf, len, 0, &a, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "Fortran order") && strstr(err.msg, "ascontiguousarray"), "%s",
              err.msg);
    cr_assert_null(a.data);
    free(buf);
    snprintf(path, sizeof path, "%s/py-c8.npy", dk_test_dir);
    buf = read_file(path, &len);
    cr_assert_eq(dk_npy_decode(buf, len, 0, &a, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "'<c8' is not supported"), "%s", err.msg);
    free(buf);
}

/* A v1.0 file with this header dict (padded to 64) and data_bytes zero bytes of data. */
static size_t make(char *buf, const char *dict, size_t data_bytes)
{
    size_t n = strlen(dict), total = (10 + n + 1 + 63) / 64 * 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff), buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', total - 10 - n - 1);
    buf[total - 1] = '\n';
    memset(buf + total, 0, data_bytes);
    return total + data_bytes;
}

static void expect_refused(const char *buf, size_t len, dk_status code, const char *words)
{
    dk_npy_array a;
    dk_err err = {0};
    cr_assert_eq(dk_npy_decode(buf, len, 0, &a, &err), code, "want %d for '%s', got: %s", code,
                 words, err.msg);
    cr_assert(strstr(err.msg, words), "'%s' not in: %s", words, err.msg);
    cr_assert_null(a.data);
}

Test(npy, refuses_bad_input_with_messages)
{
    static char buf[70000];
    size_t n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    dk_npy_array a;
    cr_assert_eq(dk_npy_decode(buf, n, 0, &a, NULL), DK_OK); /* err may be NULL */
    dk_npy_array_free(&a);
    cr_assert_eq(dk_npy_decode(buf, n, 16, &a, NULL), DK_ELIMIT);
    expect_refused(buf, n - 1, DK_EFORMAT, "declares 24 data bytes (f4, 6 elements) but 23 follow");
    expect_refused(buf, n + 1, DK_EFORMAT, "but 25 follow");
    expect_refused(buf, 40, DK_EFORMAT, "truncated header");
    expect_refused(buf, 5, DK_EFORMAT, "too short");
    buf[1] = 'X';
    expect_refused(buf, n, DK_EFORMAT, "bad magic");
    buf[1] = 'N', buf[6] = 4;
    expect_refused(buf, n, DK_EFORMAT, "version 4.0");
    n = make(buf,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
             0);
    expect_refused(buf, n, DK_ELIMIT, "overflows");
    n = make(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }", 0);
    expect_refused(buf, n, DK_ELIMIT, "byte count overflows");
    n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
             0);
    expect_refused(buf, n, DK_ELIMIT, "dimension overflows");
    n = make(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16);
    expect_refused(buf, n, DK_EFORMAT, "Fortran order");
    n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8);
    expect_refused(buf, n, DK_EFORMAT, "write (n,)");
    n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8);
    expect_refused(buf, n, DK_EFORMAT, "non-negative integers");
    n = make(buf, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", 8);
    expect_refused(buf, n, DK_EFORMAT, "needs a 1-byte type");
    n = make(buf, "{'descr': '<f4', 'shape': (2,), }", 8);
    expect_refused(buf, n, DK_EFORMAT, "missing 'fortran_order'");
    n = make(buf, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    expect_refused(buf, n, DK_EFORMAT, "appears twice");
    n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8);
    expect_refused(buf, n, DK_EFORMAT, "unexpected key 'x'");
    n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4);
    expect_refused(buf, n, DK_ELIMIT, "more than 8 dimensions");
    n = make(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", 8);
    expect_refused(buf, n, DK_EFORMAT, "after the dict");
    n = make(buf, "{'descr': '<f4\\x', 'fortran_order': False, 'shape': (2,), }", 8);
    expect_refused(buf, n, DK_EFORMAT, "escapes");
    /* a v2.0 header longer than the bound */
    memcpy(buf, "\x93NUMPY\x02\x00", 8);
    uint32_t big = 60000;
    memcpy(buf + 8, &big, 4);
    expect_refused(buf, sizeof buf, DK_ELIMIT, "exceeds the limit");
    /* a dtype that parses but is not what the caller wants */
    n = make(buf, "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 2), }", 8);
    dk_err err = {0};
    cr_assert_eq(dk_npy_decode(buf, n, 0, &a, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_npy_expect(&a, DK_NPY_U1, 2, "the label map", &err), DK_EMISMATCH);
    cr_assert_str_eq(err.msg, "the label map: dtype u2, expected u1 (shape (2, 2))");
    cr_assert_eq(dk_npy_expect(&a, DK_NPY_U2, 3, "the label map", &err), DK_EMISMATCH);
    cr_assert(strstr(err.msg, "2 dimensions (2, 2), expected 3"), "%s", err.msg);
    dk_npy_array_free(&a);
}

Test(npy, header_for_streaming_then_data)
{
    /* the server's path: a header for dtype+shape, then the stored bytes */
    dk_npy_header h = {.dtype = DK_NPY_F2, .rank = 4, .shape = {3, 4, 5, 6}};
    char prefix[DK_NPY_PREFIX_CAP];
    size_t plen;
    dk_err err = {0};
    cr_assert_eq(dk_npy_format_header(&h, prefix, sizeof prefix, &plen, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(plen, 128);
    cr_assert_eq(h.data_offset, plen);
    cr_assert_eq(h.data_bytes, 3 * 4 * 5 * 6 * 2);
    dk_npy_header back;
    cr_assert_eq(dk_npy_parse_header(prefix, plen, &back, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(back.dtype, DK_NPY_F2);
    cr_assert_eq(back.rank, 4);
    cr_assert_eq(back.shape[3], 6);
    cr_assert_eq(back.data_bytes, h.data_bytes);
    h.rank = 9;
    cr_assert_eq(dk_npy_format_header(&h, prefix, sizeof prefix, &plen, &err), DK_EINVAL);
    dk_npy_dtype t;
    bool be;
    cr_assert_eq(dk_npy_dtype_parse(">i2", &t, &be, &err), DK_OK);
    cr_assert(t == DK_NPY_I2 && be);
    cr_assert_eq(dk_npy_dtype_parse("f4", &t, &be, &err), DK_OK);
    cr_assert(t == DK_NPY_F4 && !be);
    cr_assert_eq(dk_npy_dtype_parse("f16", &t, &be, &err), DK_EFORMAT);
}
