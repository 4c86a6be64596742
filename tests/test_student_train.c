/* test_student_train.c: the student trainer (student/train.h) on a real target
 * store (a tiny teacher trained and precomputed for the clinical profile): the
 * distillation losses fall during a run; an interrupted run resumed equals an
 * uninterrupted one; the same seed gives the same weights; a student whose
 * architecture is not the store's is refused naming the field (and trains with
 * --no-feature); supervised-only needs no store; the CLI's student and the
 * teacher (the zero-shot row) evaluate; transfer samples are laid out on the padded
 * grid of the store's feature targets; kill -9 of the CLI then --resume equals an
 * uninterrupted run. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "distill/unet_checkpoint.h"
#include "student/train.h"
#include "student/transfer.h"
#include "teacher/precompute.h"
#include "teacher/precompute_run.h"
#include "testutil.h"

static char *site, *store;

/* A store of the tiny teacher for the clinical profile (temperature T) in out_dir. */
static char *precompute(const char *out_dir, double temperature)
{
    char *repo = dk_test_path("repo.h5"), *teacher = dk_test_path("teacher.h5");
    dk_unet_config s = dk_unet_config_default(1, 3);
    s.levels = 2;
    s.base_width = 4;
    s.pool[0][0] = 1; /* the profile has 3-4 slices */
    char *student = dk_unet_config_to_json(&s);
    dk_precompute_options o = dk_precompute_options_default();
    o.teacher_path = teacher, o.data_path = repo, o.out_dir = out_dir, o.passes = 2;
    o.student_json = student;
    o.temperature = temperature;
    dk_err err = {0};
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &o.profile, &err), DK_OK, "%s", err.msg);
    dk_precompute_result res;
    cr_assert_eq(dk_precompute_run(&o, &res, &err), DK_OK, "%s", err.msg);
    free(student), free(repo), free(teacher);
    return strdup(res.store_path);
}

static void make_store(void)
{
    char *repo = dk_test_path("repo.h5"), *teacher = dk_test_path("teacher.h5");
    char *out = dk_test_path("store");
    dk_test_write_phantoms(repo, 3, 1, true);
    char config[512];
    snprintf(config, sizeof config, DK_TEST_TINY_TEACHER, 4, 4);
    dk_test_train_teacher(repo, teacher, config, 5);
    store = precompute(out, 2.0);
    free(repo), free(teacher), free(out);
}

static void setup(void)
{
    dk_test_dir_setup();
    site = dk_test_path("site.h5");
    dk_test_write_phantoms(site, 2, 1, true);
    make_store();
}

static void teardown(void)
{
    free(site);
    free(store);
    dk_test_dir_teardown();
}

TestSuite(student, .init = setup, .fini = teardown, .timeout = 300);

static const char *tiny_config =
    "{\"patch\": [2, 16, 16], \"batch\": 1, \"steps\": %d, \"steps_per_epoch\": %d,"
    " \"checkpoint_every\": 0, \"optimizer\": {\"lr\": 0.01},"
    " \"distill\": {\"transfer_batch\": 2,"
    "   \"response\": {\"kind\": \"%s\", \"weight\": 0.5, \"ramp_steps\": 0},"
    "   \"feature\": {\"kind\": \"%s\", \"weight\": 1, \"ramp_steps\": 0}}%s}";

static dk_student_run tiny_run(const char *out, dk_target_source *src, int steps, int per,
                               const char *response, const char *feature, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, tiny_config, steps, per, response, feature, extra);
    dk_student_run r = {.data_path = site, .source = src, .out_path = out, .seed = 3};
    dk_err err = {0};
    cr_assert_eq(dk_student_config_from_json(text, &r.config, &err), DK_OK, "%s", err.msg);
    return r;
}

static void train_ok(const dk_student_run *r)
{
    dk_err err = {0};
    cr_assert_eq(dk_student_train(r, &err), DK_OK, "%s", err.msg);
}

static void die_at_step(const dk_student_progress *p, void *ctx)
{
    if (p->step == *(const long *)ctx) raise(SIGKILL);
}

/* Run in a child process SIGKILLed during step steps + 1 (before that step's save):
 * on disk is what a crash after `steps` steps leaves. */
static void train_killed_after(dk_student_run run, long steps)
{
    long at = steps + 1;
    run.callbacks = (dk_student_callbacks){.progress = die_at_step, .ctx = &at};
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        dk_student_train(&run, NULL);
        _exit(0); /* not killed: the parent's check fails */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the run was not killed at step %ld (status %d)", at, status);
}

static json_t *runlog(const char *out)
{
    char path[4200], line[8192];
    dk_teacher_runlog_path(out, path, sizeof path);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no run log %s", path);
    json_t *lines = json_array();
    while (fgets(line, sizeof line, f))
        json_array_append_new(lines, json_loads(line, 0, NULL));
    fclose(f);
    return lines;
}

static double field(json_t *lines, size_t i, const char *name)
{
    return json_number_value(json_object_get(json_array_get(lines, i), name));
}

Test(student, distillation_losses_fall_during_a_run)
{
    dk_target_source src;
    dk_err err = {0};
    cr_assert_eq(dk_target_source_open_store(store, &src, &err), DK_OK, "%s", err.msg);
    char *out = dk_test_path("s.h5");
    dk_student_run r = tiny_run(out, &src, 60, 15, "kl", "mse", "");
    train_ok(&r);
    json_t *log = runlog(out);
    cr_assert_eq(json_array_size(log), 4);
    for (const char *term = "response"; term; term = strcmp(term, "response") ? NULL : "feature") {
        double first = field(log, 0, term), last = field(log, 3, term);
        cr_expect(first > 0 && last < 0.8 * first, "%s loss %g -> %g", term, first, last);
    }
    json_decref(log);
    dk_target_source_close(&src);
    free(out);
}

static bool same_weights(const char *a, const char *b)
{
    dk_unet *na = dk_unet_load_checkpoint(a, NULL, NULL), *nb = dk_unet_load_checkpoint(b, NULL, NULL);
    cr_assert(na && nb, "cannot load %s or %s", a, b);
    const dk_params *pa = dk_unet_params(na), *pb = dk_unet_params(nb);
    bool same = pa->count == pb->count;
    for (int i = 0; same && i < pa->count; i++)
        same = !memcmp(pa->items[i]->value.data, pb->items[i]->value.data,
                       dk_tensor_numel(&pa->items[i]->value) * sizeof(float));
    dk_unet_free(na);
    dk_unet_free(nb);
    return same;
}

Test(student, resume_after_interruption_equals_uninterrupted_run)
{
    dk_target_source src;
    cr_assert_eq(dk_target_source_open_store(store, &src, NULL), DK_OK);
    char *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5"), *c = dk_test_path("c.h5");
    dk_student_run ra = tiny_run(a, &src, 10, 4, "mse", "kl", "");
    train_ok(&ra);
    /* b is killed after step 6: its last save was at the end of epoch 1 (step 4), so
     * steps 5 and 6 are lost and redone; then killed again during the resumed run */
    dk_student_run rb = tiny_run(b, &src, 10, 4, "mse", "kl", "");
    train_killed_after(rb, 6);
    rb.resume = true;
    train_killed_after(rb, 9);
    train_ok(&rb);
    cr_expect(same_weights(a, b), "resumed best weights differ from the uninterrupted run");
    json_t *loga = runlog(a), *logb = runlog(b);
    cr_assert_eq(json_array_size(logb), 3, "the run log repeats or loses epochs");
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(field(loga, i, "loss"), field(logb, i, "loss"), "epoch %zu loss", i + 1);
    json_decref(loga);
    json_decref(logb);
    /* the same seed again gives the same weights; the flags must match on resume */
    dk_student_run rc = tiny_run(c, &src, 10, 4, "mse", "kl", "");
    train_ok(&rc);
    cr_expect(same_weights(a, c), "the same seed gave other weights");
    rb.no_response = true;
    dk_err err = {0};
    cr_expect_eq(dk_student_train(&rb, &err), DK_EMISMATCH);
    cr_expect(strstr(err.msg, "terms"), "%s", err.msg);
    dk_target_source_close(&src);
    free(a), free(b), free(c);
}

Test(student, an_architecture_other_than_the_stores_is_refused_naming_it)
{
    dk_target_source src;
    cr_assert_eq(dk_target_source_open_store(store, &src, NULL), DK_OK);
    char *out = dk_test_path("w.h5");
    dk_student_run r = tiny_run(out, &src, 2, 2, "kl", "kl",
                                ", \"network\": {\"levels\": 2, \"base_width\": 8, "
                                "\"pool\": [[1, 2, 2]]}");
    dk_err err = {0};
    cr_assert_eq(dk_student_train(&r, &err), DK_EMISMATCH);
    cr_expect(strstr(err.msg, "base_width") && strstr(err.msg, "--student") &&
                  strstr(err.msg, "\"base_width\":4"),
              "%s", err.msg);
    r.no_feature = true;
    train_ok(&r);
    dk_target_source_close(&src);
    free(out);
}

Test(student, supervised_only_needs_no_store_and_the_cli_student_evaluates)
{
    char *out = dk_test_path("sup.h5");
    dk_student_run r = tiny_run(out, NULL, 2, 2, "kl", "kl",
                                ", \"network\": {\"levels\": 2, \"base_width\": 4, "
                                "\"pool\": [[1, 2, 2]]}");
    r.supervised_only = true;
    train_ok(&r);
    dk_err err = {0};
    r.supervised_only = false;
    cr_assert_eq(dk_student_train(&r, &err), DK_EINVAL);
    cr_expect(strstr(err.msg, "--store"), "%s", err.msg);

    char cmd[8192], text[1 << 14], *cfg = dk_test_path("cfg.json");
    FILE *f = fopen(cfg, "w");
    fprintf(f, tiny_config, 4, 2, "mse", "kl", "");
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "'%s' student train --store '%s' --site-targets '%s' --data '%s' --out '%s/cli.h5' "
             "--config '%s' --threads 1 2>&1 && '%s' eval --model '%s/cli.h5' --data '%s' --json "
             "2>/dev/null",
             dk_test_bin(), store, store, site, dk_test_dir, cfg, dk_test_bin(), dk_test_dir,
             site);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    cr_expect(strstr(text, "validation Dice") && strstr(text, "\"summary\""), "%s", text);
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s/teacher.h5' --data '%s' --json 2>&1",
             dk_test_bin(), dk_test_dir, site);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "the teacher as --model: %s", text);
    char *last = dk_test_path("cli.h5.last.h5");
    dk_unet *net = dk_unet_load_checkpoint(last, NULL, &err);
    cr_expect_null(net, "the last checkpoint holds the adapter too, the U-Net alone does not load");
    cr_expect(strstr(err.msg, "adapter"), "%s", err.msg);
    dk_unet_free(net);
    free(cfg);
    free(last);
    free(out);
}

Test(student, transfer_samples_are_laid_out_as_precompute_padded_them)
{
    dk_target_source src;
    dk_err err = {0};
    cr_assert_eq(dk_target_source_open_store(store, &src, &err), DK_OK, "%s", err.msg);
    const dk_store_manifest *m = src.manifest;
    dk_transfer_spec spec = {.response = true, .response_power = 2.0f,
                             .feature_kind = "features/bottleneck"};
    memcpy(spec.multiple, m->student_multiple, sizeof spec.multiple);
    for (int a = 0; a < 3; a++)
        spec.factor[a] = m->student_multiple[a]; /* the bottleneck is below every pooling */
    dk_transfer_sample s;
    cr_assert_eq(dk_transfer_load(&src, 1, &spec, &s, &err), DK_OK, "%s", err.msg);
    const dk_store_sample_info *info = src.sample(&src, 1);
    size_t G = 1, P = 1;
    for (int a = 0; a < 3; a++) {
        cr_expect_eq(s.padded[a] % spec.multiple[a], 0);
        cr_expect(s.padded[a] >= info->grid.dims[a] && s.padded[a] - info->grid.dims[a] < spec.multiple[a]);
        cr_expect_eq(s.before[a], (s.padded[a] - info->grid.dims[a]) / 2);
        cr_expect_eq(s.feature_dims[a], s.padded[a] / spec.factor[a]);
        G *= (size_t)info->grid.dims[a];
        P *= (size_t)s.padded[a];
    }
    float *resp = malloc(3 * G * sizeof *resp);
    cr_assert_eq(src.read(&src, 1, "response", resp, 3 * G, &err), DK_OK, "%s", err.msg);
    const int *g = info->grid.dims;
    for (int k = 0; k < s.padded[0]; k++)
        for (int j = 0; j < s.padded[1]; j++)
            for (int i = 0; i < s.padded[2]; i++) {
                size_t at = ((size_t)k * s.padded[1] + j) * s.padded[2] + i;
                int z = k - s.before[0], y = j - s.before[1], x = i - s.before[2];
                bool in = z >= 0 && y >= 0 && x >= 0 && z < g[0] && y < g[1] && x < g[2];
                float sum = s.response[at] + s.response[P + at] + s.response[2 * P + at];
                cr_assert(in ? fabsf(sum - 1) < 1e-3f : sum == 0 && isinf(s.entropy[at]),
                          "voxel %d %d %d: sum %g", k, j, i, sum);
                if (!in) continue;
                /* sharpened with power 2: p^2 / sum p^2 of the stored response */
                size_t src_at = ((size_t)z * g[1] + y) * g[2] + x;
                double q[3], qs = 0;
                for (int c = 0; c < 3; c++)
                    qs += q[c] = (double)resp[c * G + src_at] * resp[c * G + src_at];
                cr_assert(fabs(s.response[at] - q[0] / qs) < 1e-4, "voxel %d %d %d", k, j, i);
            }
    /* a patch cut at a drawn origin carries the feature map's crop at origin / factor */
    int patch[3] = {spec.multiple[0], 2 * spec.multiple[1], 2 * spec.multiple[2]}, origin[3];
    dk_rng rng = dk_rng_seed(9);
    dk_transfer_draw_origin(&s, &spec, patch, &rng, origin);
    int fn[3] = {patch[0] / spec.factor[0], patch[1] / spec.factor[1], patch[2] / spec.factor[2]};
    float *feat = malloc((size_t)s.feature_channels * fn[0] * fn[1] * fn[2] * sizeof *feat);
    dk_transfer_cut(&s, &spec, patch, origin, NULL, NULL, NULL, feat);
    int c = s.feature_channels - 1, fz = fn[0] - 1, fy = fn[1] - 1, fx = fn[2] - 1;
    float want = s.features[(((size_t)c * s.feature_dims[0] + origin[0] / spec.factor[0] + fz) *
                                 s.feature_dims[1] + origin[1] / spec.factor[1] + fy) *
                                s.feature_dims[2] + origin[2] / spec.factor[2] + fx];
    cr_expect_eq(feat[(((size_t)c * fn[0] + fz) * fn[1] + fy) * fn[2] + fx], want);
    for (int a = 0; a < 3; a++)
        cr_expect_eq(origin[a] % spec.factor[a], 0);
    free(feat);
    free(resp);
    dk_transfer_release(&s);
    dk_target_source_close(&src);
}

Test(student, site_targets_join_the_store_when_made_alike)
{
    dk_target_source a, b, both;
    dk_err err = {0};
    cr_assert_eq(dk_target_source_open_store(store, &a, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_target_source_open_store(store, &b, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_target_source_union(&a, &b, &both, &err), DK_OK, "%s", err.msg);
    cr_expect_eq(both.count, 2 * a.count);
    cr_expect_str_eq(both.sample(&both, a.count + 1)->id, b.sample(&b, 1)->id);
    float x[1];
    cr_expect_neq(both.read(&both, a.count, "input", x, 1, &err), DK_OK, "count is checked");
    char *out = dk_test_path("joined.h5");
    dk_student_run r = tiny_run(out, &both, 2, 2, "kl", "mse", "");
    train_ok(&r);
    dk_target_source_close(&both);
    dk_target_source_close(&b);
    char *dir = dk_test_path("store-t3"), *other = precompute(dir, 3.0);
    cr_assert_eq(dk_target_source_open_store(other, &b, &err), DK_OK, "%s", err.msg);
    cr_expect_eq(dk_target_source_union(&a, &b, &both, &err), DK_EMISMATCH);
    cr_expect(strstr(err.msg, "'temperature'"), "%s", err.msg);
    dk_target_source_close(&b);
    dk_target_source_close(&a);
    free(out), free(dir), free(other);
}

Test(student, cli_kill_9_then_resume_equals_uninterrupted_run)
{
    char *cfg = dk_test_path("kill.json"), cmd[16384], text[16384];
    char body[2048];
    snprintf(body, sizeof body, tiny_config, 600, 200, "mse", "kl", "");
    char *at = strstr(body, "\"checkpoint_every\": 0");
    cr_assert_not_null(at);
    at[strlen("\"checkpoint_every\": ")] = '5'; /* a last checkpoint every 5 steps */
    FILE *f = fopen(cfg, "w");
    fputs(body, f);
    fclose(f);
    const char *common = "--threads 1 --seed 4";
    snprintf(cmd, sizeof cmd,
             "'%s' student train --store '%s' --data '%s' --out '%s/ka.h5' --config '%s' %s 2>&1",
             dk_test_bin(), store, site, dk_test_dir, cfg, common);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    snprintf(cmd, sizeof cmd,
             "'%s' student train --store '%s' --data '%s' --out '%s/kb.h5' --config '%s' %s "
             ">/dev/null 2>&1 & pid=$!; while [ ! -e '%s/kb.h5.last.h5' ] && kill -0 $pid "
             "2>/dev/null; do sleep 0.01; done; kill -9 $pid; wait $pid; echo status=$?",
             dk_test_bin(), store, site, dk_test_dir, cfg, common, dk_test_dir);
    dk_test_run(cmd, text, sizeof text);
    cr_assert(strstr(text, "status=137"), "the run was not killed: %s", text);
    snprintf(cmd, sizeof cmd,
             "'%s' student train --store '%s' --data '%s' --out '%s/kb.h5' --config '%s' %s "
             "--resume 2>&1",
             dk_test_bin(), store, site, dk_test_dir, cfg, common);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    char *a = dk_test_path("ka.h5"), *b = dk_test_path("kb.h5");
    cr_expect(same_weights(a, b), "killed and resumed best weights differ from the uninterrupted");
    json_t *la = runlog(a), *lb = runlog(b);
    cr_assert_eq(json_array_size(lb), 3);
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(field(la, i, "loss"), field(lb, i, "loss"), "epoch %zu", i + 1);
    json_decref(la);
    json_decref(lb);
    free(a), free(b), free(cfg);
}
