/* test_teacher_train.c: teacher training: the config JSON (defaults, the shipped
 * default_teacher.json, field-named errors), patch sampling (foreground bias,
 * patches inside the volume, image/label alignment under flips and rotation),
 * determinism, resume after an interruption equal bit for bit to an uninterrupted
 * run, the run log, best-checkpoint selection, input errors, and the real
 * `dualkd teacher train` binary end to end, including kill -9 and --resume. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "distill/checkpoint.h"
#include "teacher/train.h"
#include "testutil.h"

TestSuite(teacher, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 300);

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* ---- the config ---- */

static char *config_text(const dk_teacher_config *c)
{
    char *t = dk_teacher_config_to_json(c);
    cr_assert_not_null(t);
    return t;
}

Test(teacher, config_defaults_and_shipped_file_agree)
{
    dk_err err = {0};
    dk_teacher_config def = dk_teacher_config_default(), empty, file;
    cr_assert_eq(dk_teacher_config_validate(&def, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_teacher_config_from_json("{}", &empty, &err), DK_OK, "%s", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/teacher/default_teacher.json", dk_test_source());
    char *shipped = slurp(path);
    cr_assert_not_null(shipped, "cannot read %s", path);
    cr_assert_eq(dk_teacher_config_from_json(shipped, &file, &err), DK_OK, "%s", err.msg);
    char *a = config_text(&def), *b = config_text(&empty), *c = config_text(&file);
    cr_assert_str_eq(a, b);
    cr_assert_str_eq(a, c, "teacher/default_teacher.json differs from the compiled-in default");
    /* the serialised config reads back to itself */
    dk_teacher_config again;
    cr_assert_eq(dk_teacher_config_from_json(a, &again, &err), DK_OK, "%s", err.msg);
    char *d = config_text(&again);
    cr_assert_str_eq(a, d);
    free(a), free(b), free(c), free(d), free(shipped);
}

Test(teacher, config_overrides_only_what_it_names)
{
    dk_err err = {0};
    dk_teacher_config c;
    cr_assert_eq(dk_teacher_config_from_json("{\"optimizer\": {\"lr\": 0.001}, \"patch\": [16, 32, "
                                             "32], \"augment\": {\"flip\": [0, 0.5, 0.5]}}",
                                             &c, &err),
                 DK_OK, "%s", err.msg);
    dk_teacher_config d = dk_teacher_config_default();
    cr_assert_float_eq(c.optim.lr, 0.001f, 1e-9);
    cr_assert_eq(c.optim.kind, DK_OPTIM_ADAM);
    cr_assert_eq(c.patch[0], 16);
    cr_assert_eq(c.patch[2], 32);
    cr_assert_float_eq(c.augment.flip[1], 0.5f, 0);
    cr_assert_eq(c.steps, d.steps);
    cr_assert_eq(c.network.base_width, d.network.base_width);
    /* a new optimiser kind brings its own defaults (SGD momentum 0.9) */
    cr_assert_eq(dk_teacher_config_from_json("{\"optimizer\": {\"kind\": \"sgd\"}}", &c, &err),
                 DK_OK, "%s", err.msg);
    cr_assert_eq(c.optim.kind, DK_OPTIM_SGD);
    cr_assert_float_eq(c.optim.momentum, 0.9f, 1e-7);
}

static void expect_config_error(const char *json, const char *field)
{
    dk_err err = {0};
    dk_teacher_config c;
    cr_assert_neq(dk_teacher_config_from_json(json, &c, &err), DK_OK, "accepted %s", json);
    cr_assert(strstr(err.msg, field), "message '%s' does not name '%s'", err.msg, field);
}

Test(teacher, config_errors_name_the_field)
{
    expect_config_error("{\"stepz\": 10}", "'stepz'");
    expect_config_error("{\"augment\": {\"flipp\": [0, 0, 1]}}", "'augment.flipp'");
    expect_config_error("{\"optimizer\": {\"lr\": -1}}", "'optimizer.lr'");
    expect_config_error("{\"optimizer\": {\"kind\": \"adagrad\"}}", "'optimizer.kind'");
    expect_config_error("{\"network\": {\"norm\": \"batch\"}}", "'network.norm'");
    expect_config_error("{\"network\": {\"levels\": 3, \"pool\": [[2, 2, 2]]}}", "'network.pool'");
    expect_config_error("{\"patch\": [33, 64, 64]}", "'patch'");
    expect_config_error("{\"batch\": 0}", "'batch'");
    expect_config_error("{\"batch\": 2.5}", "'batch'");
    expect_config_error("{\"loss\": {\"dice_include_background\": 1}}",
                        "'loss.dice_include_background'");
    expect_config_error("{\"validation\": []}", "'validation'");
    expect_config_error("{\"steps\": 10,}", "not valid JSON");
    expect_config_error("[1]", "JSON object");
}

/* ---- patches ---- */

/* A 32 x 64 x 64 volume: class 1 a 4^3 cube near a corner, class 2 a 2 x 2 x 8 bar. */
static void corner_source(dk_patch_source *s)
{
    dk_err err = {0};
    dk_volume v;
    const int dims[3] = {32, 64, 64};
    cr_assert_eq(dk_volume_alloc(&v, "v", dims, true, &err), DK_OK, "%s", err.msg);
    v.spacing[0] = 0.7, v.spacing[1] = v.spacing[2] = 0.36;
    for (int z = 2; z < 6; z++)
        for (int y = 4; y < 8; y++)
            for (int x = 4; x < 8; x++)
                v.label[(z * 64 + y) * 64 + x] = 1;
    for (int z = 28; z < 30; z++)
        for (int y = 56; y < 58; y++)
            for (int x = 50; x < 58; x++)
                v.label[(z * 64 + y) * 64 + x] = 2;
    for (size_t i = 0; i < dk_volume_voxels(&v); i++)
        v.image[i] = v.label[i];
    cr_assert_eq(dk_patch_source_init(s, &v, 3, &err), DK_OK, "%s", err.msg);
    cr_assert_null(v.image, "the source takes the image");
    dk_volume_release(&v);
}

static bool patch_has_class(const uint8_t *label, size_t n, int c)
{
    for (size_t i = 0; i < n; i++)
        if (label[i] == c) return true;
    return false;
}

/* Fraction of patches holding foreground, and per class. */
static double foreground_share(const dk_patch_source *s, float fraction, int draws, double *c1,
                               double *c2)
{
    const int patch[3] = {16, 16, 16};
    dk_augment_config none = {0};
    dk_rng rng = dk_rng_seed(5);
    float img[16 * 16 * 16];
    uint8_t lab[16 * 16 * 16];
    int fg = 0, n1 = 0, n2 = 0;
    for (int i = 0; i < draws; i++) {
        dk_patch_params p;
        dk_patch_draw(s, 1, patch, fraction, &none, &rng, &p);
        /* inside the volume: no padding needed when the volume is larger */
        for (int a = 0; a < 3; a++)
            cr_assert(p.centre[a] - 8 >= 0 && p.centre[a] + 8 <= s->dims[a], "axis %d at %d", a,
                      p.centre[a]);
        dk_patch_extract(s, patch, &p, img, lab);
        bool h1 = patch_has_class(lab, sizeof lab, 1), h2 = patch_has_class(lab, sizeof lab, 2);
        fg += h1 || h2;
        n1 += h1;
        n2 += h2;
    }
    if (c1) *c1 = (double)n1 / draws;
    if (c2) *c2 = (double)n2 / draws;
    return (double)fg / draws;
}

Test(teacher, patch_sampling_is_biased_toward_foreground)
{
    dk_patch_source s;
    corner_source(&s);
    double uniform = foreground_share(&s, 0.0f, 3000, NULL, NULL);
    double c1, c2;
    double biased = foreground_share(&s, 2.0f / 3.0f, 3000, &c1, &c2);
    double expected = 2.0 / 3.0 + uniform / 3.0;
    cr_assert(uniform < 0.2, "uniform patches hold foreground %.3f of the time", uniform);
    cr_assert(fabs(biased - expected) < 0.04, "biased share %.3f, expected %.3f", biased, expected);
    /* classes, not voxels, are drawn: the 32-voxel bar gets as many patches as the cube */
    cr_assert(c1 > 0.3 && c2 > 0.3, "per-class shares %.3f %.3f", c1, c2);
    dk_patch_source_release(&s);
}

/* A volume whose image is its label (blocks of 6 voxels), so alignment is visible. */
static void block_source(dk_patch_source *s)
{
    dk_err err = {0};
    dk_volume v;
    const int dims[3] = {20, 40, 40};
    cr_assert_eq(dk_volume_alloc(&v, "b", dims, true, &err), DK_OK, "%s", err.msg);
    v.spacing[0] = 0.7, v.spacing[1] = v.spacing[2] = 0.36;
    for (int z = 0; z < 20; z++)
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++) {
                uint8_t l = (uint8_t)((z / 6 + y / 6 * 2 + x / 6 * 3) % 4);
                v.label[(z * 40 + y) * 40 + x] = l;
                v.image[(z * 40 + y) * 40 + x] = l;
            }
    cr_assert_eq(dk_patch_source_init(s, &v, 4, &err), DK_OK, "%s", err.msg);
    dk_volume_release(&v);
}

Test(teacher, flips_move_image_and_label_together)
{
    dk_patch_source s;
    block_source(&s);
    enum { P = 16, N = P * P * P };
    const int patch[3] = {P, P, P};
    static float a[N], b[N];
    static uint8_t la[N], lb[N];
    dk_patch_params p = {.centre = {10, 17, 23}, .scale = 1, .shift = 0};
    dk_patch_extract(&s, patch, &p, a, la);
    for (int i = 0; i < N; i++)
        cr_assert_eq(a[i], la[i], "image and label differ at %d", i);
    for (int axis = 0; axis < 3; axis++) {
        dk_patch_params q = p;
        q.flip[axis] = true;
        dk_patch_extract(&s, patch, &q, b, lb);
        for (int k = 0; k < P; k++)
            for (int j = 0; j < P; j++)
                for (int i = 0; i < P; i++) {
                    int m[3] = {k, j, i};
                    m[axis] = P - 1 - m[axis];
                    int o = (k * P + j) * P + i, f = (m[0] * P + m[1]) * P + m[2];
                    cr_assert_eq(b[o], a[f], "flip %d: image at (%d,%d,%d)", axis, k, j, i);
                    cr_assert_eq(lb[o], la[f], "flip %d: label at (%d,%d,%d)", axis, k, j, i);
                }
    }
    dk_patch_source_release(&s);
}

Test(teacher, rotation_and_intensity_keep_image_and_label_aligned)
{
    dk_patch_source s;
    block_source(&s);
    enum { P = 16, N = P * P * P };
    const int patch[3] = {P, P, P};
    static float img[N];
    static uint8_t lab[N];
    dk_patch_params p = {.centre = {10, 20, 20}, .angle = 0.35f, .scale = 1.25f, .shift = 0.5f};
    p.flip[2] = true;
    dk_patch_extract(&s, patch, &p, img, lab);
    int interior = 0;
    for (int i = 0; i < N; i++) {
        double v = (img[i] - 0.5) / 1.25; /* undo the intensity change */
        if (fabs(v - lround(v)) < 1e-4) { /* inside a block: bilinear and nearest agree */
            interior++;
            cr_assert_eq(lab[i], lround(v), "voxel %d: label %d, image says %.4f", i, lab[i], v);
        }
    }
    cr_assert(interior > N / 2, "only %d of %d voxels inside blocks", interior, N);
    /* the rotation really happened: compare with the unrotated patch */
    static float flat[N];
    static uint8_t flat_lab[N];
    p.angle = 0;
    dk_patch_extract(&s, patch, &p, flat, flat_lab);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += flat_lab[i] != lab[i];
    cr_assert(differ > N / 10, "rotation changed only %d labels", differ);
    dk_patch_source_release(&s);
}

/* ---- training on a dataset written here ---- */

static dk_teacher_config tiny_config(void)
{
    dk_teacher_config c;
    dk_err err = {0};
    cr_assert_eq(dk_teacher_config_from_json(
                     "{\"network\": {\"levels\": 2, \"base_width\": 4, \"pool\": [[2, 2, 2]],"
                     " \"kernel\": [[3, 3, 3], [3, 3, 3]]}, \"patch\": [16, 16, 16], \"batch\": 2,"
                     " \"steps\": 8, \"steps_per_epoch\": 3, \"checkpoint_every\": 2,"
                     " \"optimizer\": {\"lr\": 0.01}}",
                     &c, &err),
                 DK_OK, "%s", err.msg);
    return c;
}

static dk_teacher_run tiny_run(const char *data, const char *out, uint64_t seed)
{
    return (dk_teacher_run){
        .data_path = data, .out_path = out, .config = tiny_config(), .seed = seed};
}

/* A network with the checkpoint's weights; caller frees. */
static dk_unet *load_net(const char *path)
{
    dk_err err = {0};
    char *arch = NULL;
    cr_assert_eq(dk_checkpoint_read_architecture(path, &arch, &err), DK_OK, "%s", err.msg);
    dk_unet_config c;
    cr_assert_eq(dk_unet_config_from_json(arch, &c, &err), DK_OK, "%s", err.msg);
    dk_unet *net = dk_unet_create(&c, 999, &err);
    cr_assert_not_null(net, "%s", err.msg);
    cr_assert_eq(dk_checkpoint_load(path, arch, dk_unet_params(net), NULL, &err), DK_OK, "%s",
                 err.msg);
    free(arch);
    return net;
}

static bool same_weights(const char *a, const char *b)
{
    dk_unet *x = load_net(a), *y = load_net(b);
    const dk_params *px = dk_unet_params(x), *py = dk_unet_params(y);
    bool same = px->count == py->count;
    for (int i = 0; same && i < px->count; i++)
        same = memcmp(px->items[i]->value.data, py->items[i]->value.data,
                      dk_tensor_numel(&px->items[i]->value) * sizeof(float)) == 0;
    dk_unet_free(x);
    dk_unet_free(y);
    return same;
}

static void train_ok(const dk_teacher_run *run)
{
    dk_err err = {0};
    cr_assert_eq(dk_teacher_train(run, &err), DK_OK, "%s", err.msg);
}

static void die_at_step(const dk_teacher_progress *p, void *ctx)
{
    if (p->step == *(const long *)ctx) raise(SIGKILL);
}

/* Run in a child process that is SIGKILLed during step steps + 1 (before that step's
 * save): on disk is what a crash after `steps` steps leaves. */
static void train_killed_after(dk_teacher_run run, long steps)
{
    long at = steps + 1;
    run.callbacks = (dk_teacher_callbacks){.progress = die_at_step, .ctx = &at};
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        dk_teacher_train(&run, NULL);
        _exit(0); /* not killed: the parent's check fails */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the run was not killed at step %ld (status %d)", at, status);
}

Test(teacher, same_seed_same_weights_other_seed_other_weights)
{
    char *data = dk_test_path("d.h5"), *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5"), *c = dk_test_path("c.h5");
    dk_test_write_phantoms(data, 3, 2, true);
    dk_teacher_run ra = tiny_run(data, a, 7), rb = tiny_run(data, b, 7), rc = tiny_run(data, c, 8);
    train_ok(&ra);
    train_ok(&rb);
    train_ok(&rc);
    char la[4200], lb[4200], lc[4200];
    dk_teacher_last_path(a, la, sizeof la);
    dk_teacher_last_path(b, lb, sizeof lb);
    dk_teacher_last_path(c, lc, sizeof lc);
    cr_assert(same_weights(la, lb), "same seed, different final weights");
    cr_assert(same_weights(a, b), "same seed, different best weights");
    cr_assert(!same_weights(la, lc), "another seed gave the same weights");
    free(data), free(a), free(b), free(c);
}

static int count_lines(const char *path)
{
    char *text = slurp(path);
    cr_assert_not_null(text, "no %s", path);
    int n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

Test(teacher, resume_after_interruption_equals_uninterrupted_run)
{
    char *data = dk_test_path("d.h5"), *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5");
    dk_test_write_phantoms(data, 3, 2, true);
    dk_teacher_run ra = tiny_run(data, a, 3);
    train_ok(&ra);
    /* b "dies" after step 5: its last save was at step 4 (checkpoint_every 2), so
     * step 5 is lost and must be redone identically; epochs end at 3, 6, 8 */
    dk_teacher_run rb = tiny_run(data, b, 3);
    train_killed_after(rb, 5);
    char lb[4200], la[4200], logb[4200];
    dk_teacher_last_path(b, lb, sizeof lb);
    dk_teacher_last_path(a, la, sizeof la);
    dk_teacher_runlog_path(b, logb, sizeof logb);
    cr_assert(!same_weights(la, lb), "the interrupted run already has the final weights");
    cr_assert_eq(count_lines(logb), 1);
    /* resuming twice from the same point (a crash during the resumed run) is fine too */
    rb.resume = true;
    train_killed_after(rb, 7);
    rb.seed = 12345; /* not given: the run's own seed is used */
    train_ok(&rb);
    cr_assert(same_weights(la, lb), "resumed final weights differ from the uninterrupted run");
    cr_assert(same_weights(a, b), "resumed best weights differ from the uninterrupted run");
    cr_assert_eq(count_lines(logb), 3, "the run log repeats or loses epochs");
    /* a seed that contradicts the run is refused */
    rb.seed_given = true;
    dk_err err = {0};
    cr_assert_neq(dk_teacher_train(&rb, &err), DK_OK);
    cr_assert(strstr(err.msg, "seed"), "%s", err.msg);
    free(data), free(a), free(b);
}

typedef struct epoch_copies {
    const char *out;
    int epochs;
} epoch_copies;

/* Keep each epoch's weights (the last checkpoint right after the epoch) aside. */
static void copy_epoch(const dk_teacher_epoch *e, const dk_classes *classes, void *ctx)
{
    epoch_copies *ec = ctx;
    char cmd[9000], last[4200];
    dk_teacher_last_path(ec->out, last, sizeof last);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.epoch%d.h5'", last, ec->out, e->epoch);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(classes->count, 3);
    ec->epochs++;
}

Test(teacher, run_log_is_json_and_best_checkpoint_has_best_dice)
{
    char *data = dk_test_path("d.h5"), *out = dk_test_path("t.h5");
    dk_test_write_phantoms(data, 3, 2, true);
    dk_teacher_run run = tiny_run(data, out, 11);
    run.config.steps = 12;
    epoch_copies ec = {.out = out};
    run.callbacks = (dk_teacher_callbacks){.epoch = copy_epoch, .ctx = &ec};
    train_ok(&run);
    cr_assert_eq(ec.epochs, 4);
    char log[4200];
    dk_teacher_runlog_path(out, log, sizeof log);
    char *text = slurp(log);
    int best = 0, lines = 0;
    double best_dice = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        cr_assert_not_null(j, "line %d is not JSON: %s", lines + 1, jerr.text);
        cr_assert_eq(json_integer_value(json_object_get(j, "epoch")), lines + 1);
        json_t *dice = json_object_get(j, "dice");
        cr_assert(json_is_number(json_object_get(dice, "ball")));
        cr_assert(json_is_number(json_object_get(dice, "slab")));
        cr_assert(json_is_number(json_object_get(j, "train_loss")));
        double m = json_number_value(json_object_get(j, "mean_foreground_dice"));
        double want = (json_number_value(json_object_get(dice, "ball")) +
                       json_number_value(json_object_get(dice, "slab"))) /
                      2;
        cr_assert(fabs(m - want) < 1e-6, "mean %g, classes say %g", m, want);
        if (m > best_dice) best_dice = m, best = lines + 1;
        json_decref(j);
    }
    cr_assert_eq(lines, 4);
    free(text);
    /* the best checkpoint holds the best epoch's weights and the whole record */
    char copy[4300];
    snprintf(copy, sizeof copy, "%s.epoch%d.h5", out, best);
    cr_assert(same_weights(out, copy), "out is not epoch %d's weights", best);
    dk_err err = {0};
    char *rec_text = NULL;
    cr_assert_eq(dk_checkpoint_read_run_record(out, &rec_text, &err), DK_OK, "%s", err.msg);
    json_t *rec = json_loads(rec_text, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "best"), "epoch")), best);
    cr_assert_eq(json_array_size(json_object_get(rec, "epochs")), 4);
    json_t *card = json_object_get(rec, "teacher");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(card, "classes"), 2)),
                     "slab");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(card, "normalisation"), "kind")),
        "zscore");
    cr_assert_float_eq(
        json_number_value(json_array_get(json_object_get(card, "training_spacing"), 0)), 0.7, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(rec, "seed")), 11);
    cr_assert(json_is_object(json_object_get(rec, "config")));
    json_decref(rec);
    free(rec_text), free(data), free(out);
}

static void expect_train_error(const dk_teacher_run *run, const char *needle)
{
    dk_err err = {0};
    cr_assert_neq(dk_teacher_train(run, &err), DK_OK, "no error (expected '%s')", needle);
    cr_assert(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
}

Test(teacher, input_errors_are_named)
{
    char *novals = dk_test_path("noval.h5"), *nolab = dk_test_path("nolab.h5"), *good = dk_test_path("d.h5");
    char *out = dk_test_path("t.h5");
    dk_test_write_phantoms(novals, 3, 0, true);
    dk_test_write_phantoms(nolab, 2, 1, false);
    dk_test_write_phantoms(good, 2, 1, true);
    dk_teacher_run run = tiny_run(novals, out, 1);
    expect_train_error(&run, "no validation volumes");
    run.data_path = nolab;
    expect_train_error(&run, "has no label map");
    run.data_path = good;
    run.resume = true;
    expect_train_error(&run, "no last checkpoint");
    run.resume = false;
    train_killed_after(run, 2);
    run.resume = true;
    dk_teacher_run wider = run;
    wider.config.network.base_width = 8;
    expect_train_error(&wider, "base_width"); /* named by the checkpoint module */
    dk_teacher_run faster = run;
    faster.config.optim.lr = 0.02f;
    expect_train_error(&faster, "optimizer.lr");
    run.data_path = "/nonexistent/repo.h5";
    expect_train_error(&run, "/nonexistent/repo.h5");
    free(novals), free(nolab), free(good), free(out);
}

/* ---- the binary ---- */

static const char *cli_config =
    "{\"network\": {\"levels\": 2, \"base_width\": 4, \"pool\": [[2, 2, 2]], \"kernel\": [[3, 3, "
    "3],"
    " [3, 3, 3]]}, \"patch\": [16, 16, 16], \"batch\": 1, \"steps\": %d, \"steps_per_epoch\": %d,"
    " \"checkpoint_every\": 3}";

static char *write_config(const char *name, int steps, int per_epoch)
{
    char *path = dk_test_path(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, cli_config, steps, per_epoch);
    fclose(f);
    return path;
}

Test(teacher, cli_trains_end_to_end_and_reports_errors)
{
    char *data = dk_test_path("d.h5"), *out = dk_test_path("t.h5"), *cfg = write_config("c.json", 6, 3);
    dk_test_write_phantoms(data, 3, 2, true);
    char cmd[16384], output[16384];
    snprintf(cmd, sizeof cmd,
             "%s teacher train --data %s --config %s --out %s --threads 1 "
             "--seed 4",
             dk_test_bin(), data, cfg, out);
    int rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "epoch 2"), "%s", output);
    cr_assert(strstr(output, "ball"), "%s", output);
    cr_assert_null(strchr(output, '\r'), "carriage returns in a log file: %s", output);
    cr_assert_eq(access(out, F_OK), 0);
    char log[4200];
    dk_teacher_runlog_path(out, log, sizeof log);
    cr_assert_eq(count_lines(log), 2);
    /* a typo in the config names the field and fails with status 1 */
    char *bad = dk_test_path("bad.json");
    FILE *f = fopen(bad, "w");
    fputs("{\"augment\": {\"rotate_degree\": 5}}", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s teacher train --data %s --config %s --out %s", dk_test_bin(),
             data, bad, out);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "augment.rotate_degree"), "%s", output);
    /* --resume with nothing to resume */
    char *other = dk_test_path("other.h5");
    snprintf(cmd, sizeof cmd, "%s teacher train --data %s --config %s --out %s --resume",
             dk_test_bin(), data, cfg, other);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, output);
    cr_assert(strstr(output, "no last checkpoint"), "%s", output);
    /* usage errors exit 2 */
    snprintf(cmd, sizeof cmd, "%s teacher train --data %s --threads 0 --out %s", dk_test_bin(),
             data, out);
    cr_assert_eq(dk_test_run(cmd, output, sizeof output), 2, "%s", output);
    free(data), free(out), free(cfg), free(bad), free(other);
}

Test(teacher, cli_kill_9_then_resume_finishes_like_an_uninterrupted_run)
{
    char *data = dk_test_path("d.h5"), *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5");
    char *cfg = write_config("c.json", 60, 20);
    dk_test_write_phantoms(data, 3, 2, true);
    char cmd[16384], output[16384], last[4200];
    snprintf(cmd, sizeof cmd, "%s teacher train --data %s --config %s --out %s --threads 1",
             dk_test_bin(), data, cfg, a);
    int rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    /* start b, wait for its first checkpoint, then kill -9 it mid-run */
    dk_teacher_last_path(b, last, sizeof last);
    snprintf(cmd, sizeof cmd,
             "%s teacher train --data %s --config %s --out %s --threads 1 & pid=$!; "
             "while [ ! -e %s ] && kill -0 $pid 2>/dev/null; do sleep 0.02; done; "
             "kill -9 $pid; wait $pid; echo status=$?",
             dk_test_bin(), data, cfg, b, last);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert(strstr(output, "status=137"), "the run was not killed: %s", output);
    cr_assert_eq(access(last, F_OK), 0);
    snprintf(cmd, sizeof cmd,
             "%s teacher train --data %s --config %s --out %s --threads 1 --resume", dk_test_bin(),
             data, cfg, b);
    rc = dk_test_run(cmd, output, sizeof output);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, output);
    char la[4200];
    dk_teacher_last_path(a, la, sizeof la);
    cr_assert(same_weights(la, last), "killed + resumed differs from uninterrupted");
    cr_assert(same_weights(a, b));
    char log[4200];
    dk_teacher_runlog_path(b, log, sizeof log);
    cr_assert_eq(count_lines(log), 3);
    free(data), free(a), free(b), free(cfg);
}
