/* test_precompute.c: `dualkd teacher precompute` with a tiny teacher trained
 * here: stored probabilities sum to one, uncertainty within [0, ln C], float16
 * targets close to the float32 ones, the teacher untouched, resume after a
 * stop (and after kill -9 of the binary) equal to an uninterrupted run, clear
 * errors for bad pairings and inputs, and h5py reading the store per
 * docs/store.md. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "distill/checkpoint.h"
#include "distill/rng.h"
#include "teacher/precompute.h"
#include "teacher/precompute_run.h"
#include "teacher/sha256.h"
#include "teacher/store.h"
#include "teacher/train.h"
#include "testutil.h"

static char *data, *teacher;

static void train_tiny_teacher(const char *data_path, const char *out)
{
    char config[512];
    snprintf(config, sizeof config, DK_TEST_TINY_TEACHER, 6, 3);
    dk_test_train_teacher(data_path, out, config, 5);
}

static void setup(void)
{
    dk_test_dir_setup();
    data = dk_test_path("repo.h5");
    teacher = dk_test_path("teacher.h5");
    dk_test_write_phantoms(data, 3, 1, true);
    train_tiny_teacher(data, teacher);
}

static void teardown(void)
{
    free(data);
    free(teacher);
    dk_test_dir_teardown();
}

TestSuite(precompute, .init = setup, .fini = teardown, .timeout = 240);

static dk_precompute_options options(const char *out_dir)
{
    dk_precompute_options o = dk_precompute_options_default();
    dk_err err = {0};
    o.teacher_path = teacher, o.data_path = data, o.out_dir = out_dir;
    o.passes = 3;
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &o.profile, &err), DK_OK, "%s", err.msg);
    return o;
}

static void run_ok(const dk_precompute_options *o, dk_precompute_result *res)
{
    dk_err err = {0};
    cr_assert_eq(dk_precompute_run(o, res, &err), DK_OK, "%s", err.msg);
}

static void die_after(const dk_precompute_progress *p, void *ctx)
{
    if (!p->resumed && p->done == *(const int *)ctx) raise(SIGKILL);
}

/* Run in a child process that is SIGKILLed right after `samples` samples are stored:
 * on disk is what a crash at that moment leaves. */
static void run_killed_after(dk_precompute_options o, int samples)
{
    o.progress = die_after, o.ctx = &samples;
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        dk_precompute_result res;
        dk_precompute_run(&o, &res, NULL);
        _exit(0); /* not killed: the parent's check fails */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the run was not killed after %d samples (status %d)", samples, status);
}

static float *read_all(dk_store *s, int i, const char *kind, size_t *n)
{
    dk_err err = {0};
    const dk_store_array_info *a = dk_store_array_of(s, i, kind);
    cr_assert_not_null(a, "sample %d has no '%s'", i, kind);
    *n = dk_store_array_numel(a);
    float *x = malloc(*n * sizeof(float));
    cr_assert_eq(dk_store_read(s, i, kind, x, *n, &err), DK_OK, "%s", err.msg);
    return x;
}

/* |stored - exact| within float16 rounding (relative 2^-11, plus subnormal spacing). */
static void expect_half_close(const float *stored, const float *exact, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double tol = fabs(exact[i]) * (1.0 / 2048) + 1e-7;
        cr_assert(fabs(stored[i] - exact[i]) <= tol, "%s[%zu]: stored %.7g vs float32 %.7g", what,
                  i, stored[i], exact[i]);
    }
}

Test(precompute, targets_are_probabilities_with_bounded_uncertainty_and_fp16_error)
{
    char *out = dk_test_path("store");
    dk_precompute_options o = options(out);
    o.feature_count = 2;
    strcpy(o.feature_layers[1], "dec0");
    dk_precompute_result res;
    run_ok(&o, &res);
    cr_assert_eq(res.samples, 4);
    cr_assert_eq(res.computed, 4);
    dk_err err = {0};
    dk_store *s = dk_store_open(res.store_path, &err);
    cr_assert_not_null(s, "%s", err.msg);
    const dk_store_manifest *m = dk_store_manifest_of(s);
    cr_assert_eq(m->classes.count, 3);
    cr_assert_float_eq(m->temperature, 2.0, 0);
    cr_assert_eq(m->passes, 3);
    cr_assert_eq(dk_store_count(s), 4);
    dk_precomputer *pc = dk_precomputer_create(&o, &err);
    cr_assert_not_null(pc, "%s", err.msg);
    dk_dataset *ds = dk_dataset_open(data, &err);
    double lnc = log(3.0);
    for (int i = 0; i < 4; i++) {
        dk_volume v;
        dk_targets t;
        cr_assert_eq(dk_dataset_read(ds, i, &v, &err), DK_OK, "%s", err.msg);
        cr_assert_eq(dk_precompute_volume(pc, &v, i, &t, &err), DK_OK, "%s", err.msg);
        const dk_store_sample_info *info = dk_store_sample_at(s, i);
        cr_assert_str_eq(info->id, v.id);
        cr_assert_eq(info->grid.dims[0], 3); /* 16 x 0.7 mm at 3.3 mm slices */
        size_t n, nu, ni, vox = dk_grid_voxels(&info->grid);
        float *resp = read_all(s, i, "response", &n), *unc = read_all(s, i, "uncertainty", &nu);
        float *in = read_all(s, i, "input", &ni);
        cr_assert_eq(n, 3 * vox);
        for (size_t k = 0; k < vox; k++) {
            double sum = resp[k] + resp[vox + k] + resp[2 * vox + k];
            cr_assert(fabs(sum - 1) <= 1e-3, "voxel %zu: probabilities sum to %.6f", k, sum);
            cr_assert(unc[k] >= 0 && unc[k] <= lnc, "voxel %zu: uncertainty %.6f", k, unc[k]);
        }
        expect_half_close(resp, t.response, n, "response");
        expect_half_close(unc, t.uncertainty, nu, "uncertainty");
        cr_assert_eq(memcmp(in, t.input.image, ni * sizeof(float)), 0, "input differs");
        for (int k = 0; k < 2; k++) {
            char kind[32];
            snprintf(kind, sizeof kind, "features/%s", m->features[k].layer);
            size_t nf;
            float *f = read_all(s, i, kind, &nf);
            cr_assert_eq(nf,
                         (size_t)m->features[k].channels * dk_grid_voxels(&info->feature_grid[k]));
            expect_half_close(f, t.features[k], nf, kind);
            free(f);
        }
        /* the bottleneck of a 2-level net pools by 2: its grid is half the padded input */
        cr_assert_eq(info->feature_grid[0].dims[0], 2);
        cr_assert_float_eq(info->feature_grid[0].spacing[0], 6.6, 1e-9);
        free(resp), free(unc), free(in);
        dk_targets_release(&t);
        dk_volume_release(&v);
    }
    dk_dataset_close(ds);
    dk_precomputer_free(pc);
    dk_store_close(s);
    free(out);
}

/* A profile finer than the repository (here 0.35 x 0.18 x 0.18 mm against the phantoms'
 * 0.7 x 0.36 x 0.36) has more voxels than the teacher's grid: its targets must not be
 * written through buffers sized for the teacher's grid (ASan caught that overflow). */
Test(precompute, a_profile_finer_than_the_repository)
{
    char *out = dk_test_path("fine");
    dk_precompute_options o = options(out);
    o.profile.spacing[0] = 0.35, o.profile.spacing[1] = o.profile.spacing[2] = 0.18;
    snprintf(o.profile.name, sizeof o.profile.name, "fine");
    dk_precompute_result res;
    run_ok(&o, &res);
    dk_err err = {0};
    dk_store *s = dk_store_open(res.store_path, &err);
    cr_assert_not_null(s, "%s", err.msg);
    size_t n;
    float *u = read_all(s, 0, "uncertainty", &n);
    for (size_t i = 0; i < n; i++)
        cr_assert(u[i] >= 0 && u[i] <= logf(3.0f), "uncertainty[%zu] = %g", i, u[i]);
    free(u);
    dk_store_close(s);
    free(out);
}

Test(precompute, the_teacher_is_frozen)
{
    char before[DK_SHA256_HEX], after[DK_SHA256_HEX];
    dk_err err = {0};
    cr_assert_eq(dk_sha256_file(teacher, before, &err), DK_OK, "%s", err.msg);
    char *out = dk_test_path("store");
    dk_precompute_options o = options(out);
    dk_precomputer *pc = dk_precomputer_create(&o, &err);
    cr_assert_not_null(pc, "%s", err.msg);
    const dk_params *p = dk_unet_params(dk_precomputer_teacher(pc));
    size_t total = dk_params_numel(p), at = 0;
    float *copy = malloc(total * sizeof(float));
    for (int i = 0; i < p->count; i++) {
        size_t n = dk_tensor_numel(&p->items[i]->value);
        memcpy(copy + at, p->items[i]->value.data, n * sizeof(float));
        at += n;
    }
    dk_dataset *ds = dk_dataset_open(data, &err);
    for (int i = 0; i < 2; i++) {
        dk_volume v;
        dk_targets t;
        cr_assert_eq(dk_dataset_read(ds, i, &v, &err), DK_OK);
        cr_assert_eq(dk_precompute_volume(pc, &v, i, &t, &err), DK_OK, "%s", err.msg);
        dk_targets_release(&t);
        dk_volume_release(&v);
    }
    at = 0;
    for (int i = 0; i < p->count; i++) {
        size_t n = dk_tensor_numel(&p->items[i]->value);
        cr_assert_eq(memcmp(copy + at, p->items[i]->value.data, n * sizeof(float)), 0,
                     "parameter '%s' changed during precompute", p->items[i]->name);
        at += n;
    }
    dk_precompute_result res;
    run_ok(&o, &res);
    cr_assert_eq(dk_sha256_file(teacher, after, &err), DK_OK);
    cr_assert_str_eq(before, after, "the checkpoint file changed");
    cr_assert_eq(strlen(dk_precomputer_manifest(pc)->teacher_sha256), 64);
    dk_dataset_close(ds);
    dk_precomputer_free(pc);
    free(copy), free(out);
}

/* Two finished stores hold the same samples, arrays (byte for byte) and manifest. */
static void expect_same_store(const char *a_path, const char *b_path)
{
    dk_err err = {0};
    dk_store *a = dk_store_open(a_path, &err), *b = NULL;
    cr_assert_not_null(a, "%s", err.msg);
    b = dk_store_open(b_path, &err);
    cr_assert_not_null(b, "%s", err.msg);
    const char *field = dk_store_manifest_diff(dk_store_manifest_of(a), dk_store_manifest_of(b));
    cr_assert_null(field, "manifests differ in %s", field);
    cr_assert_eq(dk_store_count(a), dk_store_count(b));
    for (int i = 0; i < dk_store_count(a); i++) {
        const dk_store_sample_info *x = dk_store_sample_at(a, i), *y = dk_store_sample_at(b, i);
        cr_assert_str_eq(x->id, y->id);
        cr_assert_eq(x->array_count, y->array_count);
        for (int k = 0; k < x->array_count; k++) {
            cr_assert_str_eq(x->arrays[k].sha256, y->arrays[k].sha256, "sample %s array %s", x->id,
                             x->arrays[k].kind);
            size_t bytes =
                dk_store_array_numel(&x->arrays[k]) * dk_store_dtype_size(x->arrays[k].dtype);
            char *p = malloc(bytes), *q = malloc(bytes);
            cr_assert_eq(dk_store_read_raw(a, i, x->arrays[k].kind, p, bytes, &err), DK_OK);
            cr_assert_eq(dk_store_read_raw(b, i, y->arrays[k].kind, q, bytes, &err), DK_OK);
            cr_assert_eq(memcmp(p, q, bytes), 0, "sample %s array %s differs", x->id,
                         x->arrays[k].kind);
            free(p), free(q);
        }
    }
    dk_store_close(a);
    dk_store_close(b);
}

/* Save the teacher again with the same parameters and another run record, as a
 * retrained, bit-identical teacher would be: its file's bytes change. */
static void resave_teacher(const char *path)
{
    dk_err err = {0};
    char *arch = NULL, *record = NULL, before[DK_SHA256_HEX], after[DK_SHA256_HEX];
    dk_unet_config cfg;
    cr_assert_eq(dk_sha256_file(path, before, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_checkpoint_read_architecture(path, &arch, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_checkpoint_read_run_record(path, &record, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_unet_config_from_json(arch, &cfg, &err), DK_OK, "%s", err.msg);
    dk_unet *net = dk_unet_create(&cfg, 0, &err);
    cr_assert_not_null(net, "%s", err.msg);
    cr_assert_eq(dk_checkpoint_load(path, arch, dk_unet_params(net), NULL, &err), DK_OK);
    char *retrained = NULL;
    cr_assert_gt(asprintf(&retrained, "%.*s,\"retrained\":true}", (int)strlen(record) - 1, record),
                 0);
    cr_assert_eq(dk_checkpoint_save(path, arch, dk_unet_params(net), NULL, retrained, &err), DK_OK,
                 "%s", err.msg);
    cr_assert_eq(dk_sha256_file(path, after, &err), DK_OK, "%s", err.msg);
    cr_assert_str_neq(before, after, "the re-saved checkpoint has the same bytes");
    dk_unet_free(net);
    free(arch), free(record), free(retrained);
}

/* cmp(1) of two files: true when their bytes are equal. */
static bool same_bytes(const char *a, const char *b)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return dk_test_run(cmd, NULL, 0) == 0;
}

Test(precompute, resume_after_a_stop_equals_an_uninterrupted_run)
{
    char *a = dk_test_path("a"), *b = dk_test_path("b");
    dk_precompute_options oa = options(a), ob = options(b);
    dk_precompute_result ra, rb;
    run_ok(&oa, &ra);
    run_killed_after(ob, 2);
    snprintf(rb.store_path, sizeof rb.store_path, "%s/%s.h5", b, ob.profile.name);
    cr_assert_neq(access(rb.store_path, F_OK), 0, "a killed run left a final store");
    /* damage one finished sample and leave a stray temporary: resume redoes the first */
    char partial[4200], sample[4400], stray[4400];
    dk_store_partial_path(rb.store_path, partial, sizeof partial);
    snprintf(sample, sizeof sample, "%s/sample-vol-01.h5", partial);
    snprintf(stray, sizeof stray, "%s/sample-vol-02.h5.tmp-abc123", partial);
    cr_assert_eq(truncate(sample, 1000), 0);
    FILE *f = fopen(stray, "w");
    fputs("half", f);
    fclose(f);
    /* a different setting refuses to resume, naming it */
    dk_precompute_options other = ob;
    other.resume = true, other.temperature = 3;
    dk_err err = {0};
    dk_precompute_result rx;
    cr_assert_neq(dk_precompute_run(&other, &rx, &err), DK_OK);
    cr_assert(strstr(err.msg, "temperature"), "%s", err.msg);
    /* the teacher is identified by its contents: a re-saved copy still resumes */
    resave_teacher(teacher);
    ob.resume = true;
    run_ok(&ob, &rb);
    cr_assert_eq(rb.resumed, 1, "resumed %d", rb.resumed);
    cr_assert_eq(rb.computed, 3);
    cr_assert_neq(access(partial, F_OK), 0, "the partial directory was not removed");
    expect_same_store(ra.store_path, rb.store_path);
    cr_assert(same_bytes(ra.store_path, rb.store_path),
              "the resumed store's file differs from the uninterrupted run's");
    free(a), free(b);
}

/* After the first sample is reported, the partial store's directory disappears. */
static void move_partial_after_first(const dk_precompute_progress *p, void *ctx)
{
    const char *partial = ctx;
    char moved[4300];
    snprintf(moved, sizeof moved, "%s.moved", partial);
    if (!p->resumed && p->done == 1) cr_assert_eq(rename(partial, moved), 0);
}

/* A sample's write fails on the helper thread while the next volume is computed:
 * the run stops with the write's message, after the first sample was stored. */
Test(precompute, a_write_failing_behind_the_passes_stops_the_run)
{
    char *out = dk_test_path("store");
    dk_precompute_options o = options(out);
    char store[4200], partial[4200];
    snprintf(store, sizeof store, "%s/%s.h5", out, o.profile.name);
    dk_store_partial_path(store, partial, sizeof partial);
    o.progress = move_partial_after_first, o.ctx = partial;
    dk_err err = {0};
    dk_precompute_result res;
    cr_assert_neq(dk_precompute_run(&o, &res, &err), DK_OK, "a lost store directory went unnoticed");
    cr_assert(strstr(err.msg, "vol-01"), "message '%s' does not name the sample", err.msg);
    char moved[4300];
    snprintf(moved, sizeof moved, "%s.moved/sample-vol-00.h5", partial);
    cr_assert_eq(access(moved, F_OK), 0, "the first sample was not stored before it");
    free(out);
}

static void expect_run_error(const dk_precompute_options *o, const char *needle)
{
    dk_err err = {0};
    dk_precompute_result res;
    cr_assert_neq(dk_precompute_run(o, &res, &err), DK_OK, "accepted (wanted '%s')", needle);
    cr_assert(strstr(err.msg, needle), "message '%s' does not mention '%s'", err.msg, needle);
}

Test(precompute, bad_pairings_and_inputs_fail_with_clear_messages)
{
    char *out = dk_test_path("store"), *junk = dk_test_path("junk.h5");
    dk_precompute_options o = options(out);
    /* a student with another class count */
    o.student_json =
        "{\"kind\": \"unet3d\", \"in_channels\": 1, \"classes\": 5, \"levels\": 2,"
        " \"base_width\": 4, \"pool\": [[2, 2, 2]], \"kernel\": [[3, 3, 3], [3, 3, 3]]}";
    expect_run_error(&o, "5 classes");
    /* a student pooling 4x along z over 3 slices */
    o.student_json = "{\"kind\": \"unet3d\", \"in_channels\": 1, \"classes\": 3, \"levels\": 3,"
                     " \"base_width\": 4, \"pool\": [[2, 2, 2], [2, 2, 2]], \"kernel\": [[3, 3, 3],"
                     " [3, 3, 3], [3, 3, 3]]}";
    expect_run_error(&o, "pooling product 4");
    o.student_json = NULL;
    /* a tap the 2-level teacher does not have */
    dk_precompute_options bad = o;
    strcpy(bad.feature_layers[0], "dec3");
    expect_run_error(&bad, "'dec3'");
    /* a profile naming an unknown student */
    bad = o;
    strcpy(bad.profile.student, "tiny-9");
    expect_run_error(&bad, "'tiny-9'");
    /* unreadable inputs name the file */
    FILE *f = fopen(junk, "w");
    fputs("not hdf5", f);
    fclose(f);
    bad = o, bad.teacher_path = "/nonexistent/t.h5";
    expect_run_error(&bad, "/nonexistent/t.h5");
    bad = o, bad.data_path = junk;
    expect_run_error(&bad, "junk.h5");
    bad = o, bad.teacher_path = junk;
    expect_run_error(&bad, "not an HDF5 file");
    /* a dataset with other classes than the teacher's */
    char *other = dk_test_path("other.h5");
    dk_err err = {0};
    dk_classes cl = {.count = 2};
    strcpy(cl.names[0], "background"), strcpy(cl.names[1], "bone");
    dk_dataset_writer *w = dk_dataset_writer_open(other, &cl, &err);
    cr_assert_eq(dk_dataset_writer_commit(w, &err), DK_OK, "%s", err.msg);
    bad = o, bad.data_path = other;
    expect_run_error(&bad, "trained on 3");
    free(out), free(junk), free(other);
}

Test(precompute, cli_kill_9_then_resume_and_verify)
{
    char *a = dk_test_path("a"), *b = dk_test_path("b"), cmd[16384], output[16384];
    const char *common = "--profile clinical-4.5mm --threads 1 --passes 150 --feature-layers "
                         "bottleneck,dec0";
    snprintf(cmd, sizeof cmd, "%s teacher precompute --teacher %s --data %s --out %s %s",
             dk_test_bin(), teacher, data, a, common);
    int rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "volumes/s"), "%s", output);
    /* kill -9 once the first sample is durable */
    snprintf(cmd, sizeof cmd,
             "%s teacher precompute --teacher %s --data %s --out %s %s & pid=$!; "
             "while [ ! -e %s/clinical-4.5mm.h5.partial/sample-vol-00.h5 ] && kill -0 $pid "
             "2>/dev/null; do sleep 0.01; done; kill -9 $pid; wait $pid; echo status=$?",
             dk_test_bin(), teacher, data, b, common, b);
    dk_test_run(cmd, output, sizeof output);
    cr_assert(strstr(output, "status=137"), "the run was not killed: %s", output);
    snprintf(cmd, sizeof cmd, "%s teacher precompute --teacher %s --data %s --out %s %s --resume",
             dk_test_bin(), teacher, data, b, common);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "kept from the interrupted run"), "%s", output);
    char sa[4200], sb[4200];
    snprintf(sa, sizeof sa, "%s/clinical-4.5mm.h5", a);
    snprintf(sb, sizeof sb, "%s/clinical-4.5mm.h5", b);
    expect_same_store(sa, sb);
    snprintf(cmd, sizeof cmd, "%s teacher verify %s", dk_test_bin(), sb);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    /* errors: a wrong profile name, usage */
    snprintf(cmd, sizeof cmd,
             "%s teacher precompute --teacher %s --data %s --out %s --profile "
             "clinical-3.3",
             dk_test_bin(), teacher, data, a);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "'clinical-3.3' is neither a built-in profile"), "%s", output);
    snprintf(cmd, sizeof cmd, "%s teacher precompute --teacher %s --out %s", dk_test_bin(), teacher,
             a);
    cr_assert_eq(dk_test_run(cmd, output, sizeof output), 2, "%s", output);
    free(a), free(b);
}

Test(precompute, h5py_reads_the_store_as_documented)
{
    char *out = dk_test_path("store"), *script = dk_test_path("check.py"), cmd[16384], output[16384];
    dk_precompute_options o = options(out);
    dk_precompute_result res;
    run_ok(&o, &res);
    FILE *f = fopen(script, "w");
    fputs(
        "import sys, hashlib, h5py, numpy as np\n"
        "f = h5py.File(sys.argv[1], 'r')\n"
        "assert f.attrs['format'].decode() == 'dualkd-target-store'\n"
        "assert int(f.attrs['format_version']) == 1\n"
        "m = f['manifest'].attrs\n"
        "C = len(m['classes']); T = float(m['temperature'])\n"
        "assert C == 3 and T == 2.0 and int(m['passes']) == 3, (C, T)\n"
        "assert len(m['teacher_sha256'].decode()) == 64\n"
        "layers = [x.decode() for x in m['feature_layers']]\n"
        "assert layers == ['bottleneck'], layers\n"
        "ids = list(f['samples'])\n"
        "assert len(ids) == int(f.attrs['sample_count']) == 4, ids\n"
        "for sid in ids:\n"
        "    g = f['samples'][sid]\n"
        "    kinds = [k.decode() for k in g.attrs['arrays']]\n"
        "    sums = [s.decode() for s in g.attrs['sha256']]\n"
        "    assert kinds == ['input', 'label', 'response', 'uncertainty', 'features/bottleneck'], "
        "kinds\n"
        "    dims = tuple(int(d) for d in g.attrs['dims'])\n"
        "    assert g['input'].dtype == np.dtype('<f4') and g['input'].shape == dims\n"
        "    assert g['response'].dtype == np.dtype('<f2') and g['response'].shape == (C,) + dims\n"
        "    assert g['response'].chunks == g['response'].shape and g['response'].fletcher32\n"
        "    for k, s in zip(kinds, sums):\n"
        "        a = g[k][()]\n"
        "        dt = {'f': a.dtype.newbyteorder('<')}.get(a.dtype.kind, a.dtype)\n"
        "        assert hashlib.sha256(a.astype(dt).tobytes()).hexdigest() == s, (sid, k)\n"
        "    r = g['response'][()].astype(np.float64)\n"
        "    assert np.abs(r.sum(0) - 1).max() <= 1e-3\n"
        "    u = g['uncertainty'][()]\n"
        "    assert u.min() >= 0 and u.max() <= np.log(C)\n"
        "    fb = g['features/bottleneck']\n"
        "    assert fb.shape[1:] == tuple(int(d) for d in fb.attrs['dims'])\n"
        "print('h5py ok', len(ids))\n",
        f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %s", dk_test_python(), script, res.store_path);
    int rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "h5py ok 4"), "%s", output);
    free(out), free(script);
}
