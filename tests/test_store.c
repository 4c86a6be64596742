/* test_store.c: the target store without a teacher: SHA-256 against the FIPS
 * vectors, float16 rounding, writer/reader round trip (manifest, catalogue,
 * float and raw reads), the partial directory (abort, resume, mismatch), and
 * verify naming the sample whose bytes were flipped (library and CLI). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "teacher/sha256.h"
#include "teacher/store.h"
#include "testutil.h"

TestSuite(store, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 120);

Test(store, sha256_matches_the_fips_vectors)
{
    char hex[DK_SHA256_HEX];
    cr_assert_eq(dk_sha256_hex("abc", 3, hex, NULL), DK_OK);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_eq(dk_sha256_hex("", 0, hex, NULL), DK_OK);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cr_assert_eq(dk_sha256_hex(two, strlen(two), hex, NULL), DK_OK);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* a million 'a' fed in odd-sized pieces through the streaming interface */
    dk_sha256 s;
    cr_assert_eq(dk_sha256_init(&s, NULL), DK_OK);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : sizeof a;
        dk_sha256_update(&s, a, n);
        left -= n;
    }
    uint8_t d[32];
    cr_assert_eq(dk_sha256_final(&s, d, NULL), DK_OK);
    cr_assert_null(s.ctx, "final releases the context");
    cr_assert_eq(d[0], 0xcd);
    cr_assert_eq(d[31], 0xd0);
}

/* A manifest with 3 classes and one feature layer. */
static dk_store_manifest manifest(void)
{
    dk_store_manifest m = {0};
    memset(m.teacher_sha256, 'a', 64);
    memset(m.data_sha256, 'b', 64);
    strcpy(m.teacher_architecture, "{\"kind\": \"unet3d\"}");
    strcpy(m.student_architecture, "{\"kind\": \"unet3d\"}");
    strcpy(m.profile, "site-x");
    strcpy(m.profile_json, "{\"name\": \"site-x\"}");
    m.classes.count = 3;
    strcpy(m.classes.names[0], "background");
    strcpy(m.classes.names[1], "a");
    strcpy(m.classes.names[2], "b");
    for (int a = 0; a < 3; a++) {
        m.teacher_spacing[a] = 0.5, m.profile_spacing[a] = 1.0, m.student_multiple[a] = 2;
    }
    m.temperature = 2, m.passes = 4, m.input_noise = 0.1, m.seed = 77;
    m.feature_count = 1;
    strcpy(m.features[0].layer, "bottleneck");
    m.features[0].channels = 2, m.features[0].student_channels = 8, m.features[0].teacher_tap = 1;
    m.features[0].student_tap = 1;
    for (int a = 0; a < 3; a++)
        m.features[0].spacing[a] = 2.0;
    strcpy(m.created, "2024-01-01T00:00:00Z");
    return m;
}

#define D 4
#define H 6
#define W 6
#define V (D * H * W)

/* Sample k: input, response (3 classes), uncertainty, bottleneck 2 x 2 x 3 x 3. */
typedef struct sample_data {
    float input[V], response[3 * V], uncertainty[V], features[2 * 2 * 3 * 3];
    dk_store_sample s;
} sample_data;

static void make_sample(sample_data *d, int k)
{
    dk_test_fill_uniform(d->input, V, 10 + k, 0, 100);
    dk_test_fill_uniform(d->uncertainty, V, 20 + k, 0, 1);
    dk_test_fill_uniform(d->features, 36, 30 + k, -3, 3);
    for (int i = 0; i < V; i++) {
        float p = 0.1f + 0.02f * (i % 10);
        d->response[i] = p, d->response[V + i] = 0.3f, d->response[2 * V + i] = 0.7f - p;
    }
    memset(&d->s, 0, sizeof d->s);
    dk_store_sample_info *in = &d->s.info;
    snprintf(in->id, sizeof in->id, "knee-%c", 'a' + k);
    strcpy(in->split, "train");
    in->index = k;
    in->grid = (dk_grid){{D, H, W}, {1, 1, 1}, {0, 0, 0}};
    in->feature_grid[0] = (dk_grid){{2, 3, 3}, {2, 2, 2}, {0.5, 0.5, 0.5}};
    in->noise_seed = 0xFEDCBA9876543210ULL, in->acquire_seed = 5;
    d->s.array_count = 4;
    d->s.arrays[0] = (dk_store_array){"input", DK_STORE_F32, 3, {D, H, W}, d->input};
    d->s.arrays[1] = (dk_store_array){"response", DK_STORE_F16, 4, {3, D, H, W}, d->response};
    d->s.arrays[2] = (dk_store_array){"uncertainty", DK_STORE_F16, 3, {D, H, W}, d->uncertainty};
    d->s.arrays[3] =
        (dk_store_array){"features/bottleneck", DK_STORE_F16, 4, {2, 2, 3, 3}, d->features};
}

static void write_store(const char *path, int n)
{
    dk_err err = {0};
    dk_store_manifest m = manifest();
    dk_store_writer *w = dk_store_writer_open(path, &m, false, &err);
    cr_assert_not_null(w, "%s", err.msg);
    const char *ids[8];
    static sample_data d[8];
    for (int k = 0; k < n; k++) {
        make_sample(&d[k], k);
        cr_assert_eq(dk_store_writer_add(w, &d[k].s, &err), DK_OK, "%s", err.msg);
        ids[k] = d[k].s.info.id;
    }
    cr_assert_eq(dk_store_writer_finish(w, ids, n, &err), DK_OK, "%s", err.msg);
}

Test(store, round_trip_of_manifest_catalogue_and_arrays)
{
    char *path = dk_test_path("s.h5");
    write_store(path, 3);
    dk_err err = {0};
    dk_store *s = dk_store_open(path, &err);
    cr_assert_not_null(s, "%s", err.msg);
    dk_store_manifest want = manifest();
    cr_assert_null(dk_store_manifest_diff(&want, dk_store_manifest_of(s)));
    cr_assert_str_eq(dk_store_manifest_of(s)->created, want.created);
    cr_assert_eq(dk_store_count(s), 3);
    cr_assert_eq(dk_store_find(s, "knee-b"), 1);
    cr_assert_eq(dk_store_find(s, "knee-z"), -1);
    const dk_store_sample_info *info = dk_store_sample_at(s, 1);
    cr_assert_eq(info->noise_seed, 0xFEDCBA9876543210ULL);
    cr_assert_eq(info->feature_grid[0].dims[2], 3);
    cr_assert_float_eq(info->feature_grid[0].origin[1], 0.5, 0);
    sample_data d;
    make_sample(&d, 1);
    float in[V], resp[3 * V];
    cr_assert_eq(dk_store_read(s, 1, "input", in, V, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(memcmp(in, d.input, sizeof in), 0, "float32 input not bit-exact");
    cr_assert_eq(dk_store_read(s, 1, "response", resp, 3 * V, &err), DK_OK, "%s", err.msg);
    for (int i = 0; i < 3 * V; i++)
        cr_assert_float_eq(resp[i], d.response[i], 2.5e-4);
    const dk_store_array_info *a = dk_store_array_of(s, 1, "response");
    cr_assert_eq(a->dtype, DK_STORE_F16);
    cr_assert_str_eq(dk_store_dtype_npy(a->dtype), "<f2");
    uint16_t raw[3 * V];
    cr_assert_eq(dk_store_read_raw(s, 1, "response", raw, sizeof raw, &err), DK_OK, "%s", err.msg);
    char hex[DK_SHA256_HEX];
    cr_assert_eq(dk_sha256_hex(raw, sizeof raw, hex, NULL), DK_OK);
    cr_assert_str_eq(hex, a->sha256);
    /* unknown kinds, wrong sizes, bad indices fail cleanly */
    cr_assert_null(dk_store_array_of(s, 1, "label"));
    cr_assert_neq(dk_store_read(s, 1, "../../manifest", in, V, &err), DK_OK);
    cr_assert(strstr(err.msg, "no array"), "%s", err.msg);
    cr_assert_neq(dk_store_read(s, 1, "input", in, V - 1, &err), DK_OK);
    cr_assert_neq(dk_store_read(s, 9, "input", in, V, &err), DK_OK);
    dk_store_close(s);
    free(path);
}

Test(store, float16_rounds_to_nearest_even)
{
    char *path = dk_test_path("h.h5");
    dk_err err = {0};
    dk_store_manifest m = manifest();
    m.feature_count = 0;
    dk_store_writer *w = dk_store_writer_open(path, &m, false, &err);
    cr_assert_not_null(w, "%s", err.msg);
    static const float values[8] = {1.999883f, 1.0f, 0.1f, 65504.0f, 1e-7f, -2.5f, 0.0f, 70000.f};
    static const uint16_t bits[8] = {0x4000, 0x3c00, 0x2e66, 0x7bff, 0x0002, 0xc100, 0, 0x7c00};
    float input[8] = {0}, resp[3 * 8];
    for (int i = 0; i < 8; i++)
        resp[i] = resp[8 + i] = resp[16 + i] = values[i];
    dk_store_sample s = {.info = {.id = "h", .grid = {{1, 1, 8}, {1, 1, 1}, {0, 0, 0}}},
                         .array_count = 3};
    s.arrays[0] = (dk_store_array){"input", DK_STORE_F32, 3, {1, 1, 8}, input};
    s.arrays[1] = (dk_store_array){"response", DK_STORE_F16, 4, {3, 1, 1, 8}, resp};
    s.arrays[2] = (dk_store_array){"uncertainty", DK_STORE_F16, 3, {1, 1, 8}, values};
    cr_assert_eq(dk_store_writer_add(w, &s, &err), DK_OK, "%s", err.msg);
    const char *ids[1] = {"h"};
    cr_assert_eq(dk_store_writer_finish(w, ids, 1, &err), DK_OK, "%s", err.msg);
    dk_store *st = dk_store_open(path, &err);
    cr_assert_not_null(st, "%s", err.msg);
    uint16_t got[8];
    cr_assert_eq(dk_store_read_raw(st, 0, "uncertainty", got, sizeof got, &err), DK_OK);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(got[i], bits[i], "%g -> 0x%04x, expected 0x%04x", values[i], got[i], bits[i]);
    dk_store_close(st);
    free(path);
}

Test(store, partial_directory_resume_and_mismatch)
{
    char *path = dk_test_path("p.h5"), partial[4200];
    dk_store_partial_path(path, partial, sizeof partial);
    dk_err err = {0};
    dk_store_manifest m = manifest();
    cr_assert_null(dk_store_writer_open(path, &m, true, &err), "resumed from nothing");
    cr_assert(strstr(err.msg, "no partial store"), "%s", err.msg);
    dk_store_writer *w = dk_store_writer_open(path, &m, false, &err);
    sample_data d0, d1;
    make_sample(&d0, 0), make_sample(&d1, 1);
    cr_assert_eq(dk_store_writer_add(w, &d0.s, &err), DK_OK, "%s", err.msg);
    dk_store_writer_abort(w);
    cr_assert_neq(access(path, F_OK), 0);
    /* another temperature: refused, naming the field */
    dk_store_manifest other = m;
    other.temperature = 1;
    cr_assert_null(dk_store_writer_open(path, &other, true, &err));
    cr_assert(strstr(err.msg, "temperature"), "%s", err.msg);
    /* the same manifest at another time resumes with sample a kept */
    strcpy(m.created, "2030-01-01T00:00:00Z");
    w = dk_store_writer_open(path, &m, true, &err);
    cr_assert_not_null(w, "%s", err.msg);
    cr_assert_eq(dk_store_writer_resumed(w), 1);
    cr_assert(dk_store_writer_has(w, "knee-a"));
    cr_assert(!dk_store_writer_has(w, "knee-b"));
    const char *bad[2] = {"knee-a", "knee-b"};
    cr_assert_eq(dk_store_writer_add(w, &d1.s, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_store_writer_finish(w, bad, 2, &err), DK_OK, "%s", err.msg);
    cr_assert_neq(access(partial, F_OK), 0);
    dk_store *s = dk_store_open(path, &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(dk_store_manifest_of(s)->created, "2024-01-01T00:00:00Z",
                     "a resumed store keeps the run's creation time");
    dk_store_close(s);
    /* finishing with a sample never written fails */
    w = dk_store_writer_open(path, &m, false, &err);
    cr_assert_neq(dk_store_writer_finish(w, bad, 1, &err), DK_OK);
    cr_assert(strstr(err.msg, "knee-a"), "%s", err.msg);
    free(path);
}

/* Flip one byte in the middle of sample id's chunk of kind. */
static void flip_chunk_byte(const char *path, const char *id, const char *kind)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char name[128];
    snprintf(name, sizeof name, "samples/%s/%s", id, kind);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0);
    hsize_t offset[4] = {0}, size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    hid_t space = H5Dget_space(d);
    cr_assert(H5Dget_chunk_info(d, space, 0, offset, &mask, &addr, &size) >= 0);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

Test(store, verify_names_the_sample_with_a_flipped_byte)
{
    char *path = dk_test_path("v.h5"), cmd[8192], out[8192];
    write_store(path, 3);
    dk_err err = {0};
    int good = 0;
    cr_assert_eq(dk_store_verify(path, &good, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(good, 3);
    snprintf(cmd, sizeof cmd, "%s teacher verify %s", dk_test_bin(), path);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    flip_chunk_byte(path, "knee-b", "response");
    cr_assert_neq(dk_store_verify(path, &good, &err), DK_OK);
    cr_assert(strstr(err.msg, "knee-b"), "%s", err.msg);
    cr_assert(strstr(err.msg, "response"), "%s", err.msg);
    cr_assert_eq(good, 1);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "knee-b"), "%s", out);
    /* a wrong checksum in the catalogue (data intact) is caught too */
    char *path2 = dk_test_path("w.h5");
    write_store(path2, 2);
    hid_t f = H5Fopen(path2, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "samples/knee-b", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "sha256", H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    size_t sz = H5Tget_size(t);
    char *buf = calloc(4, sz);
    H5Aread(a, t, buf);
    buf[0] = buf[0] == '0' ? '1' : '0';
    H5Awrite(a, t, buf);
    H5Tclose(t), H5Aclose(a), H5Gclose(g), H5Fclose(f);
    free(buf);
    cr_assert_neq(dk_store_verify(path2, &good, &err), DK_OK);
    cr_assert(strstr(err.msg, "knee-b") && strstr(err.msg, "checksum mismatch"), "%s", err.msg);
    /* not a store at all */
    snprintf(cmd, sizeof cmd, "%s teacher verify %s/nothing.h5", dk_test_bin(), dk_test_dir);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    free(path), free(path2);
}
