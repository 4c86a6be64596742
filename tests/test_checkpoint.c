/* test_checkpoint.c: checkpoints: bit-exact round trips with optimiser state,
 * architecture and parameter mismatches named precisely, all-or-nothing loads,
 * and truncated or bit-flipped files failing cleanly (never crashing). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "distill/h5file.h"
#include "testutil.h"

/* LeakSanitizer's switches, present only in the sanitizer build. HDF5 1.10 leaks
 * some metadata-cache memory when a checksum fails on a corrupted header; the
 * flipped-byte loop ignores allocations made inside it (and checks instead that
 * no HDF5 handle stays open), every other test keeps full leak checking. */
void __lsan_disable(void) __attribute__((weak));
void __lsan_enable(void) __attribute__((weak));

TestSuite(checkpoint, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

static const char *arch = "{\"name\": \"unet3d\", \"widths\": [4, 8, 16], \"norm\": \"batch\", "
                          "\"kernel\": {\"z\": 1, \"xy\": 3}}";

/* A tiny model: three parameters with awkward values (signed zero, subnormal, a NaN payload). */
typedef struct model {
    dk_param p[3];
    dk_params list;
} model;

static void model_init(model *m, unsigned seed, int head_channels)
{
    dk_err err = {0};
    *m = (model){0};
    cr_assert_eq(dk_param_init(&m->p[0], "enc1.conv2.weight", 4, 2, 1, 3, 3, &err), DK_OK);
    cr_assert_eq(dk_param_init(&m->p[1], "enc1.conv2.bias", 1, 4, 1, 1, 1, &err), DK_OK);
    cr_assert_eq(dk_param_init(&m->p[2], "head.weight", head_channels, 4, 1, 1, 1, &err), DK_OK);
    for (int i = 0; i < 3; i++) {
        dk_tensor *t = &m->p[i].value;
        dk_test_fill_uniform(t->data, dk_tensor_numel(t), seed + i, -2.0f, 2.0f);
        cr_assert_eq(dk_params_push(&m->list, &m->p[i], &err), DK_OK);
    }
    float *w = m->p[0].value.data;
    uint32_t nan_bits = 0x7fc12345u;
    w[0] = -0.0f;
    w[1] = 1e-40f;
    memcpy(&w[2], &nan_bits, 4);
}

static void model_release(model *m)
{
    for (int i = 0; i < 3; i++)
        dk_param_release(&m->p[i]);
    dk_params_release(&m->list);
}

static void adam_init(dk_optimizer *opt, const model *m, float lr)
{
    dk_err err = {0};
    dk_optim_config config = dk_optim_defaults(DK_OPTIM_ADAM, lr);
    cr_assert_eq(dk_optim_init(opt, &config, &m->list, &err), DK_OK, "%s", err.msg);
}

/* Save model m (with a trained-looking Adam state) to <tmp>/ck.h5. */
static char *save_trained(model *m, dk_optimizer *opt)
{
    model_init(m, 10, 3);
    adam_init(opt, m, 0.01f);
    for (int i = 0; i < 3; i++) {
        dk_test_fill_uniform(opt->moment1[i].data, dk_tensor_numel(&opt->moment1[i]), 50 + i, -1,
                             1);
        dk_test_fill_uniform(opt->moment2[i].data, dk_tensor_numel(&opt->moment2[i]), 60 + i, 0, 1);
    }
    opt->step = 1234;
    opt->config.beta2 = 0.997f;
    opt->config.weight_decay = 3e-5f;
    char *path = dk_test_path("ck.h5");
    dk_err err = {0};
    cr_assert_eq(
        dk_checkpoint_save(path, arch, &m->list, opt, "{\"epochs\": 3, \"loss\": [0.5]}", &err),
        DK_OK, "%s", err.msg);
    return path;
}

static bool same_bits(const dk_tensor *a, const dk_tensor *b)
{
    return dk_tensor_same_shape(a, b) && memcmp(a->data, b->data, dk_tensor_numel(a) * 4) == 0;
}

Test(checkpoint, round_trip_is_bit_exact_with_optimizer)
{
    model saved, loaded;
    dk_optimizer opt_saved, opt_loaded;
    char *path = save_trained(&saved, &opt_saved);
    model_init(&loaded, 99, 3);
    adam_init(&opt_loaded, &loaded, 0.5f);
    dk_err err = {0};
    /* same architecture, other key order and spacing */
    const char *reordered = "{\"kernel\":{\"xy\":3,\"z\":1},\"norm\":\"batch\",\"name\":\"unet3d\","
                            "\"widths\":[4,8,16]}";
    cr_assert_eq(dk_checkpoint_load(path, reordered, &loaded.list, &opt_loaded, &err), DK_OK, "%s",
                 err.msg);
    for (int i = 0; i < 3; i++) {
        cr_assert(same_bits(&saved.p[i].value, &loaded.p[i].value), "param %d differs", i);
        cr_assert(same_bits(&opt_saved.moment1[i], &opt_loaded.moment1[i]));
        cr_assert(same_bits(&opt_saved.moment2[i], &opt_loaded.moment2[i]));
    }
    cr_assert_eq(opt_loaded.step, 1234);
    const dk_optim_config *a = &opt_loaded.config, *b = &opt_saved.config;
    cr_assert(a->kind == b->kind && a->lr == b->lr && a->momentum == b->momentum &&
              a->nesterov == b->nesterov && a->beta1 == b->beta1 && a->beta2 == b->beta2 &&
              a->eps == b->eps && a->weight_decay == b->weight_decay);
    char *text = NULL;
    cr_assert_eq(dk_checkpoint_read_architecture(path, &text, &err), DK_OK, "%s", err.msg);
    cr_assert_str_eq(text, arch);
    free(text);
    cr_assert_eq(dk_checkpoint_read_run_record(path, &text, &err), DK_OK, "%s", err.msg);
    cr_assert_str_eq(text, "{\"epochs\": 3, \"loss\": [0.5]}");
    free(text);
    bool has_opt = false;
    cr_assert_eq(dk_checkpoint_has_optimizer(path, &has_opt, &err), DK_OK);
    cr_assert(has_opt);
    cr_assert_eq(dk_checkpoint_load(path, NULL, &loaded.list, NULL, &err), DK_OK, "%s", err.msg);
    dk_optim_release(&opt_saved);
    dk_optim_release(&opt_loaded);
    model_release(&saved);
    model_release(&loaded);
    free(path);
}

Test(checkpoint, sgd_without_moment2_and_no_run_record)
{
    model m, back;
    model_init(&m, 1, 2);
    model_init(&back, 2, 2);
    dk_optimizer opt, opt_back;
    dk_err err = {0};
    dk_optim_config sgd = dk_optim_defaults(DK_OPTIM_SGD, 0.1f);
    sgd.nesterov = true;
    cr_assert_eq(dk_optim_init(&opt, &sgd, &m.list, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_optim_init(&opt_back, &sgd, &back.list, &err), DK_OK);
    dk_test_fill_uniform(opt.moment1[2].data, dk_tensor_numel(&opt.moment1[2]), 7, -1, 1);
    opt.step = 5;
    char *path = dk_test_path("sgd.h5");
    cr_assert_eq(dk_checkpoint_save(path, "[1, 2]", &m.list, &opt, NULL, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(dk_checkpoint_load(path, "[1,2]", &back.list, &opt_back, &err), DK_OK, "%s",
                 err.msg);
    cr_assert(same_bits(&opt.moment1[2], &opt_back.moment1[2]));
    cr_assert(opt_back.config.nesterov);
    cr_assert_eq(opt_back.step, 5);
    char *text = (char *)"x";
    cr_assert_eq(dk_checkpoint_read_run_record(path, &text, &err), DK_OK);
    cr_assert_null(text);
    /* an Adam optimiser cannot take SGD state */
    dk_optimizer adam;
    adam_init(&adam, &back, 0.1f);
    cr_assert_eq(dk_checkpoint_load(path, NULL, &back.list, &adam, &err), DK_EMISMATCH);
    cr_assert(strstr(err.msg, "optimiser is sgd, not adam"), "%s", err.msg);
    dk_optim_release(&adam);
    dk_optim_release(&opt);
    dk_optim_release(&opt_back);
    /* a checkpoint without optimiser state, asked for one */
    cr_assert_eq(dk_checkpoint_save(path, "[1, 2]", &m.list, NULL, NULL, &err), DK_OK);
    cr_assert_eq(dk_optim_init(&opt_back, &sgd, &back.list, &err), DK_OK);
    cr_assert_eq(dk_checkpoint_load(path, NULL, &back.list, &opt_back, &err), DK_ENOTFOUND);
    cr_assert(strstr(err.msg, "no optimiser state"), "%s", err.msg);
    dk_optim_release(&opt_back);
    model_release(&m);
    model_release(&back);
    free(path);
}

/* Loading with this expected architecture must fail with a message holding needle. */
static void expect_arch_mismatch(const char *path, model *m, const char *expected,
                                 const char *needle)
{
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_load(path, expected, &m->list, NULL, &err), DK_EMISMATCH,
                 "loaded with %s: %s", expected, err.msg);
    cr_assert(strstr(err.msg, needle), "want '%s' in: %s", needle, err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
}

Test(checkpoint, architecture_mismatch_names_the_field)
{
    model m;
    dk_optimizer opt;
    char *path = save_trained(&m, &opt);
    expect_arch_mismatch(path, &m,
                         "{\"name\": \"unet3d\", \"widths\": [4, 8, 32], \"norm\": \"batch\", "
                         "\"kernel\": {\"z\": 1, \"xy\": 3}}",
                         "'widths[2]' is 16 in the checkpoint, expected 32");
    expect_arch_mismatch(path, &m,
                         "{\"name\": \"unet3d\", \"widths\": [4, 8, 16], \"norm\": \"batch\", "
                         "\"kernel\": {\"z\": 3, \"xy\": 3}}",
                         "'kernel.z' is 1 in the checkpoint, expected 3");
    expect_arch_mismatch(path, &m,
                         "{\"name\": \"unet3d\", \"widths\": [4, 8, 16], \"norm\": \"batch\", "
                         "\"kernel\": {\"z\": 1, \"xy\": 3}, \"dropout\": 0.1}",
                         "'dropout' is missing from the checkpoint (expected 0.1)");
    expect_arch_mismatch(path, &m,
                         "{\"name\": \"unet3d\", \"widths\": [4, 8, 16], \"kernel\": {\"z\": 1, "
                         "\"xy\": 3}}",
                         "the checkpoint has 'norm' = \"batch\", which is not expected");
    expect_arch_mismatch(path, &m,
                         "{\"name\": \"unet3d\", \"widths\": [4, 8], \"norm\": \"batch\", "
                         "\"kernel\": {\"z\": 1, \"xy\": 3}}",
                         "'widths' has 3 elements in the checkpoint, expected 2");
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_load(path, "{not json", &m.list, NULL, &err), DK_EINVAL);
    dk_optim_release(&opt);
    model_release(&m);
    free(path);
}

/* Load into m must fail with DK_EMISMATCH naming needle, leaving m's values untouched. */
static void expect_param_mismatch(const char *path, model *m, const char *needle,
                                  const char *needle2)
{
    dk_err err = {0};
    float before = m->p[0].value.data[5];
    dk_optimizer opt;
    adam_init(&opt, m, 0.1f);
    cr_assert_eq(dk_checkpoint_load(path, arch, &m->list, &opt, &err), DK_EMISMATCH, "%s", err.msg);
    cr_assert(strstr(err.msg, needle), "want '%s' in: %s", needle, err.msg);
    if (needle2) cr_assert(strstr(err.msg, needle2), "want '%s' in: %s", needle2, err.msg);
    cr_assert_eq(m->p[0].value.data[5], before, "a failed load changed the parameters");
    cr_assert_eq(opt.step, 0);
    dk_optim_release(&opt);
}

Test(checkpoint, parameter_mismatches_name_the_parameter_and_shapes)
{
    model m, other;
    dk_optimizer opt;
    char *path = save_trained(&m, &opt);
    model_init(&other, 3, 5); /* head has 5 output channels instead of 3 */
    expect_param_mismatch(path, &other, "parameter 'head.weight' has shape (3, 4, 1, 1, 1)",
                          "the model's is (5, 4, 1, 1, 1)");
    model_release(&other);

    model_init(&other, 3, 3);
    snprintf(other.p[1].name, sizeof other.p[1].name, "enc1.conv2.gamma");
    expect_param_mismatch(path, &other, "parameter 'enc1.conv2.gamma' (1, 4, 1, 1, 1) is missing",
                          NULL);
    model_release(&other);

    model_init(&other, 3, 3);
    other.list.count = 2; /* the model lacks head.weight */
    expect_param_mismatch(path, &other,
                          "the checkpoint has parameter 'head.weight' (3, 4, 1, 1, 1)",
                          "which the model does not");
    model_release(&other);
    dk_optim_release(&opt);
    model_release(&m);
    free(path);
}

Test(checkpoint, save_rejects_bad_input)
{
    model m;
    model_init(&m, 1, 3);
    char *path = dk_test_path("bad.h5");
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_save(path, "{\"a\": ", &m.list, NULL, NULL, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "architecture is not valid JSON"), "%s", err.msg);
    cr_assert_eq(dk_checkpoint_save(path, "{}", &m.list, NULL, "[", &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "run record"), "%s", err.msg);
    snprintf(m.p[2].name, sizeof m.p[2].name, "enc1.conv2.bias");
    cr_assert_eq(dk_checkpoint_save(path, "{}", &m.list, NULL, NULL, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "'enc1.conv2.bias' is used twice"), "%s", err.msg);
    snprintf(m.p[2].name, sizeof m.p[2].name, "head/weight");
    cr_assert_eq(dk_checkpoint_save(path, "{}", &m.list, NULL, NULL, &err), DK_EINVAL);
    cr_assert_eq(access(path, F_OK), -1, "a rejected save left a file");
    model_release(&m);
    free(path);
}

Test(checkpoint, large_run_record_and_h5py_reader)
{
    model m;
    model_init(&m, 4, 3);
    size_t len = 200000;
    char *record = malloc(len + 16);
    strcpy(record, "[\"");
    memset(record + 2, 'x', len);
    strcpy(record + 2 + len, "\"]");
    char *path = dk_test_path("big.h5");
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_save(path, arch, &m.list, NULL, record, &err), DK_OK, "%s", err.msg);
    char *back = NULL;
    cr_assert_eq(dk_checkpoint_read_run_record(path, &back, &err), DK_OK, "%s", err.msg);
    cr_assert_str_eq(back, record);
    free(back);
    free(record);
    char *cmd = NULL, out[4096];
    cr_assert_geq(
        asprintf(
            &cmd,
            "%s -c \"import h5py, json\n"
            "f = h5py.File('%s', 'r')\n"
            "w = f['params/enc1.conv2.weight']\n"
            "print(f.attrs['format'].decode(), json.loads(f.attrs['architecture'])['widths'])\n"
            "print(w.shape, w.dtype, w.fletcher32)\n\"",
            dk_test_python(), path),
        0);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "dualkd-checkpoint [4, 8, 16]"), "%s", out);
    cr_assert(strstr(out, "(4, 2, 1, 3, 3) float32 True"), "%s", out);
    free(cmd);
    model_release(&m);
    free(path);
}

Test(checkpoint, truncated_file_fails_cleanly)
{
    model m, back;
    dk_optimizer opt;
    char *path = save_trained(&m, &opt);
    model_init(&back, 5, 3);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    off_t sizes[] = {st.st_size - 1, st.st_size * 3 / 4, st.st_size / 2, 600, 7, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        cr_assert_eq(truncate(path, sizes[i]), 0);
        dk_err err = {0};
        cr_assert_neq(dk_checkpoint_load(path, arch, &back.list, NULL, &err), DK_OK);
        cr_assert(strstr(err.msg, "truncated or corrupted") || strstr(err.msg, "not an HDF5 file"),
                  "size %lld: %s", (long long)sizes[i], err.msg);
        char *text = NULL;
        cr_assert_neq(dk_checkpoint_read_architecture(path, &text, &err), DK_OK);
        cr_assert_null(text);
    }
    dk_optim_release(&opt);
    model_release(&m);
    model_release(&back);
    free(path);
}

/* Flip one byte at offset; returns the byte's old value. */
static int flip_byte(const char *path, long offset)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, offset, SEEK_SET);
    int old = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(old ^ 0x5a, f);
    fclose(f);
    return old;
}

static void restore_byte(const char *path, long offset, int old)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, SEEK_SET);
    fputc(old, f);
    fclose(f);
}

Test(checkpoint, flipped_bytes_fail_cleanly_or_load_the_original)
{
    model m, back;
    dk_optimizer opt, opt_back;
    char *path = save_trained(&m, &opt);
    model_init(&back, 5, 3);
    adam_init(&opt_back, &back, 0.1f);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    int failed = 0, loaded = 0;
    /* No HDF5 free lists: blocks the loop takes must come from malloc inside it. */
    H5set_free_list_limits(0, 0, 0, 0, 0, 0);
    H5garbage_collect();
    for (long offset = 0; offset < st.st_size; offset += 17) {
        int old = flip_byte(path, offset);
        dk_err err = {0};
        if (__lsan_disable) __lsan_disable();
        dk_status status = dk_checkpoint_load(path, arch, &back.list, &opt_back, &err);
        if (__lsan_enable) __lsan_enable();
        cr_assert_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0, "offset %ld: handles left open",
                     offset);
        if (status == DK_OK) {
            loaded++; /* the byte was padding or unused: then every value must be intact */
            for (int i = 0; i < 3; i++) {
                cr_assert(same_bits(&m.p[i].value, &back.p[i].value), "offset %ld: bad values",
                          offset);
                cr_assert(same_bits(&opt.moment2[i], &opt_back.moment2[i]), "offset %ld", offset);
            }
        } else {
            failed++;
            cr_assert(err.msg[0], "offset %ld: failure without a message", offset);
        }
        restore_byte(path, offset, old);
    }
    cr_assert_gt(failed, 0);
    /* a flip in the middle of a parameter's raw data is caught by Fletcher-32 */
    char *cmd = NULL, out[256];
    cr_assert_geq(asprintf(&cmd,
                           "%s -c \"import h5py; f = h5py.File('%s', 'r'); "
                           "print(f['params/head.weight'].id.get_chunk_info(0).byte_offset)\"",
                           dk_test_python(), path),
                  0);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    long data_at = atol(out);
    cr_assert_gt(data_at, 0, "%s", out);
    flip_byte(path, data_at + 20);
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_load(path, arch, &back.list, NULL, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "head.weight") && strstr(err.msg, "truncated or corrupted"), "%s",
              err.msg);
    cr_log_info("flipped bytes: %d loads failed, %d loaded intact values", failed, loaded);
    free(cmd);
    dk_optim_release(&opt);
    dk_optim_release(&opt_back);
    model_release(&m);
    model_release(&back);
    free(path);
}
