/* train.c: the teacher's training run (train.h): data loading and normalisation,
 * the step loop, sliding-window validation, best/last checkpoints, resume, and
 * the run record (in the checkpoints and as JSON lines beside them). Patch
 * sampling lives in patches.c, the config in train_config.c. */
#include "teacher/train.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "datasets/segment.h"
#include "distill/checkpoint.h"
#include "distill/train_step.h"

#define RECORD_KIND "dualkd-teacher-run"
#define NORM_EPS    1e-6

typedef struct trainer {
    const dk_teacher_run *run;
    dk_teacher_config cfg;
    dk_classes classes;
    dk_patch_source *train;
    int train_count;
    dk_volume *val;
    int val_count;
    double spacing[3]; /* median training spacing, for the teacher card */
    dk_unet *net;
    char *arch_json;
    dk_optimizer opt;
    dk_tensor x;     /* (batch, 1, patch) */
    uint8_t *labels; /* (batch, patch) */
    /* the run's state: what <out>.last.h5 must hold to continue bit for bit */
    long step;
    uint64_t seed; /* the run's: --seed, or on resume the interrupted run's */
    dk_rng rng;
    double epoch_loss_sum;
    long epoch_loss_count;
    double best_dice;
    int best_epoch;
    json_t *history; /* one object per finished epoch */
    char last_path[4096], log_path[4096];
} trainer;

void dk_teacher_last_path(const char *out, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.last.h5", out);
}

void dk_teacher_runlog_path(const char *out, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.runlog.jsonl", out);
}

void dk_teacher_normalise(float *image, size_t n)
{
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++)
        sum += image[i];
    double mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++)
        sq += (image[i] - mean) * (image[i] - mean);
    double sd = n ? sqrt(sq / (double)n) : 1;
    if (sd < NORM_EPS) sd = 1;
    for (size_t i = 0; i < n; i++)
        image[i] = (float)((image[i] - mean) / sd);
}

void dk_teacher_dice(const uint8_t *pred, const uint8_t *truth, size_t n, int classes, float *dice)
{
    long long inter[DK_MAX_CLASSES] = {0}, np[DK_MAX_CLASSES] = {0}, ng[DK_MAX_CLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        np[pred[i]]++;
        ng[truth[i]]++;
        inter[pred[i]] += pred[i] == truth[i];
    }
    for (int c = 0; c < classes; c++)
        dice[c] = np[c] + ng[c] ? (float)(2.0 * inter[c] / (double)(np[c] + ng[c])) : 1.0f;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- data ---- */

static bool is_train_split(const char *s)
{
    return !strcmp(s, "train") || !strcmp(s, "labelled");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Check which volumes train and validate, before reading any image. */
static dk_status survey(trainer *t, dk_dataset *ds, dk_err *err)
{
    const char *path = t->run->data_path;
    int n = dk_dataset_count(ds);
    for (int i = 0; i < n; i++) {
        const dk_volume_info *v = dk_dataset_info(ds, i);
        bool tr = is_train_split(v->split), va = !strcmp(v->split, "validation");
        if ((tr || va) && !v->has_label)
            return dk_err_set(err, DK_EINVAL,
                              "'%s': volume '%s' (split '%s') has no label map; "
                              "training and validation volumes need labels",
                              path, v->id, v->split);
        t->train_count += tr;
        t->val_count += va;
    }
    if (t->train_count == 0)
        return dk_err_set(err, DK_EINVAL,
                          "'%s' has no training volumes (split \"train\" or "
                          "\"labelled\", with labels)",
                          path);
    if (t->val_count == 0)
        return dk_err_set(err, DK_EINVAL,
                          "'%s' has no validation volumes (split \"validation\", "
                          "with labels)",
                          path);
    int cap = t->cfg.validation_max_volumes;
    if (cap > 0 && t->val_count > cap) t->val_count = cap;
    return DK_OK;
}

static void median_spacing(trainer *t, dk_dataset *ds)
{
    double *s = malloc((size_t)t->train_count * sizeof *s);
    for (int a = 0; a < 3; a++) {
        int k = 0;
        for (int i = 0; i < dk_dataset_count(ds) && s; i++)
            if (is_train_split(dk_dataset_info(ds, i)->split))
                s[k++] = dk_dataset_info(ds, i)->spacing[a];
        if (s) qsort(s, (size_t)k, sizeof *s, cmp_double);
        t->spacing[a] = s ? s[k / 2] : 0;
    }
    free(s);
}

static dk_status load_data(trainer *t, dk_err *err)
{
    dk_dataset *ds = dk_dataset_open(t->run->data_path, err);
    if (!ds) return err->code;
    t->classes = *dk_dataset_classes(ds);
    dk_status st = survey(t, ds, err);
    if (st == DK_OK) {
        median_spacing(t, ds);
        t->train = calloc((size_t)t->train_count, sizeof *t->train);
        t->val = calloc((size_t)t->val_count, sizeof *t->val);
        if (!t->train || !t->val) st = dk_err_set(err, DK_ENOMEM, "no memory for the volumes");
    }
    int nt = 0, nv = 0;
    for (int i = 0; st == DK_OK && i < dk_dataset_count(ds); i++) {
        const char *split = dk_dataset_info(ds, i)->split;
        bool tr = is_train_split(split), va = !strcmp(split, "validation") && nv < t->val_count;
        if (!tr && !va) continue;
        dk_volume v = {0};
        st = dk_dataset_read(ds, i, &v, err);
        if (st) break;
        dk_teacher_normalise(v.image, dk_volume_voxels(&v));
        if (va) {
            t->val[nv++] = v;
            continue;
        }
        st = dk_patch_source_init(&t->train[nt], &v, t->classes.count, err);
        if (st == DK_OK) nt++;
        dk_volume_release(&v);
    }
    dk_dataset_close(ds);
    if (st) dk_err_prefix(err, "'%s': ", t->run->data_path);
    return st;
}

/* ---- the network and the run record ---- */

static dk_status build_net(trainer *t, dk_err *err)
{
    dk_unet_config n = t->cfg.network;
    n.in_channels = 1;
    n.classes = t->classes.count;
    t->net = dk_unet_create(&n, t->seed, err);
    if (!t->net) return err->code;
    t->arch_json = dk_unet_config_to_json(&n);
    const int *p = t->cfg.patch, b = t->cfg.batch;
    size_t voxels = (size_t)p[0] * p[1] * p[2];
    t->labels = malloc((size_t)b * voxels);
    if (!t->arch_json || !t->labels) return dk_err_set(err, DK_ENOMEM, "no memory for the network");
    if (dk_unet_plan(t->net, b, p[0], p[1], p[2], err) ||
        dk_tensor_alloc(&t->x, b, 1, p[0], p[1], p[2], err) ||
        dk_optim_init(&t->opt, &t->cfg.optim, dk_unet_params(t->net), err))
        return err->code;
    return DK_OK;
}

static json_t *teacher_card(const trainer *t)
{
    json_t *names = json_array();
    for (int c = 0; c < t->classes.count; c++)
        json_array_append_new(names, json_string(t->classes.names[c]));
    json_t *arch = json_loads(t->arch_json, 0, NULL);
    return json_pack("{s:o, s:[fff], s:{s:s, s:s, s:s, s:f}, s:o, s:i, s:[iii], s:s}", "classes",
                     names, "training_spacing", t->spacing[0], t->spacing[1], t->spacing[2],
                     "normalisation", "kind", "zscore", "scope", "volume", "rule",
                     "(x - mean) / std over all voxels of the volume; std < epsilon -> 1",
                     "epsilon", NORM_EPS, "architecture", arch, "in_channels", 1, "patch",
                     t->cfg.patch[0], t->cfg.patch[1], t->cfg.patch[2], "inference",
                     "sliding window of patch-shaped tiles, mean of softmax probabilities");
}

/* The run record; with_state adds what resuming needs. Caller frees. */
static char *run_record(const trainer *t, bool with_state)
{
    char *cfg_text = dk_teacher_config_to_json(&t->cfg);
    json_t *cfg = cfg_text ? json_loads(cfg_text, 0, NULL) : NULL;
    free(cfg_text);
    json_t *root =
        json_pack("{s:s, s:i, s:s, s:I, s:o, s:o, s:O, s:{s:i, s:f}}", "kind", RECORD_KIND,
                  "version", 1, "data", t->run->data_path, "seed", (json_int_t)t->seed, "config",
                  cfg, "teacher", teacher_card(t), "epochs", t->history, "best", "epoch",
                  t->best_epoch, "mean_foreground_dice", t->best_dice);
    if (root && with_state) {
        char rng[32];
        snprintf(rng, sizeof rng, "%016" PRIx64, t->rng.state);
        json_object_set_new(root, "state",
                            json_pack("{s:I, s:s, s:f, s:I}", "step", (json_int_t)t->step, "rng",
                                      rng, "epoch_loss_sum", t->epoch_loss_sum, "epoch_loss_count",
                                      (json_int_t)t->epoch_loss_count));
    }
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(root);
    return text;
}

static dk_status save(trainer *t, const char *path, bool with_state, dk_err *err)
{
    char *record = run_record(t, with_state);
    if (!record) return dk_err_set(err, DK_ENOMEM, "no memory for the run record");
    dk_status st = dk_checkpoint_save(path, t->arch_json, dk_unet_params(t->net),
                                      with_state ? &t->opt : NULL, record, err);
    free(record);
    return st;
}

/* ---- the run log ---- */

static dk_status write_all(int fd, const char *text, const char *path, dk_err *err)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return dk_err_set(err, DK_EIO, "writing '%s': %s", path, strerror(errno));
        text += w;
        len -= (size_t)w;
    }
    return DK_OK;
}

static dk_status log_append(const char *path, json_t *line, dk_err *err)
{
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9));
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    dk_status st = !text    ? dk_err_set(err, DK_ENOMEM, "no memory for a run log line")
                   : fd < 0 ? dk_err_set(err, DK_EIO, "opening '%s': %s", path, strerror(errno))
                            : write_all(fd, text, path, err);
    if (st == DK_OK) st = write_all(fd, "\n", path, err);
    if (st == DK_OK && fsync(fd) != 0)
        st = dk_err_set(err, DK_EIO, "syncing '%s': %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    free(text);
    return st;
}

/* Rewrite the log from the history (resume): a crash between saving the last
 * checkpoint and appending its line must neither lose nor repeat a line. */
static dk_status log_rewrite(const trainer *t, dk_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", t->log_path);
    unlink(tmp);
    size_t i;
    json_t *line;
    json_array_foreach(t->history, i, line) if (log_append(tmp, line, err)) return err->code;
    if (json_array_size(t->history) == 0) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return dk_err_set(err, DK_EIO, "creating '%s': %s", tmp, strerror(errno));
        close(fd);
    }
    if (rename(tmp, t->log_path) != 0)
        return dk_err_set(err, DK_EIO, "renaming '%s': %s", tmp, strerror(errno));
    return DK_OK;
}

/* ---- validation: sliding window of patch-shaped tiles (datasets/segment.h) ---- */

static dk_status validate_volume(trainer *t, const dk_volume *v, float *dice, dk_err *err)
{
    dk_segment_options o = {.batch = t->cfg.batch,
                            .overlap = t->cfg.validation_overlap,
                            .gaussian_sigma = 0}; /* the card's "mean of softmax probabilities" */
    memcpy(o.tile, t->cfg.patch, sizeof o.tile);
    uint8_t *pred = malloc(dk_volume_voxels(v));
    if (!pred) return dk_err_set(err, DK_ENOMEM, "no memory to validate volume '%s'", v->id);
    dk_status st = dk_segment_labels(t->net, &o, v->image, v->dims, pred, err);
    if (st == DK_OK) dk_teacher_dice(pred, v->label, dk_volume_voxels(v), t->classes.count, dice);
    free(pred);
    return st;
}

/* Mean per-class Dice over the validation volumes; returns the foreground mean. */
static dk_status validate(trainer *t, float *dice, float *mean_fg, dk_err *err)
{
    const int C = t->classes.count;
    double sum[DK_MAX_CLASSES] = {0};
    for (int i = 0; i < t->val_count; i++) {
        float d[DK_MAX_CLASSES];
        if (validate_volume(t, &t->val[i], d, err)) return err->code;
        for (int c = 0; c < C; c++)
            sum[c] += d[c];
    }
    double fg = 0;
    for (int c = 0; c < C; c++) {
        dice[c] = (float)(sum[c] / t->val_count);
        if (c > 0) fg += dice[c];
    }
    *mean_fg = (float)(fg / (C - 1));
    return DK_OK;
}

/* ---- epochs, resume, the loop ---- */

static json_t *epoch_json(const trainer *t, const dk_teacher_epoch *e, float lr)
{
    json_t *dice = json_object();
    for (int c = 0; c < e->classes; c++)
        json_object_set_new(dice, t->classes.names[c], json_real(e->dice[c]));
    return json_pack("{s:i, s:I, s:f, s:f, s:o, s:f, s:b, s:f}", "epoch", e->epoch, "step",
                     (json_int_t)e->step, "train_loss", (double)e->train_loss, "lr", (double)lr,
                     "dice", dice, "mean_foreground_dice", (double)e->mean_dice, "best", e->best,
                     "seconds", e->seconds);
}

static dk_status end_epoch(trainer *t, float lr, double started, dk_err *err)
{
    const dk_teacher_run *run = t->run;
    dk_teacher_epoch e = {.step = t->step, .classes = t->classes.count};
    e.epoch = (int)((t->step + t->cfg.steps_per_epoch - 1) / t->cfg.steps_per_epoch);
    e.train_loss = (float)(t->epoch_loss_sum / (t->epoch_loss_count ? t->epoch_loss_count : 1));
    if (validate(t, e.dice, &e.mean_dice, err)) return err->code;
    e.best = e.mean_dice > t->best_dice;
    e.seconds = now_s() - started;
    json_t *line = epoch_json(t, &e, lr);
    if (!line || json_array_append_new(t->history, line))
        return dk_err_set(err, DK_ENOMEM, "no memory for the run record");
    if (e.best) {
        t->best_dice = e.mean_dice;
        t->best_epoch = e.epoch;
        if (save(t, run->out_path, false, err)) return err->code;
    }
    t->epoch_loss_sum = 0;
    t->epoch_loss_count = 0;
    if (save(t, t->last_path, true, err) || log_append(t->log_path, line, err)) return err->code;
    if (run->callbacks.epoch) run->callbacks.epoch(&e, &t->classes, run->callbacks.ctx);
    return DK_OK;
}

/* Name the first config field that differs between the run and this invocation. */
static bool first_diff(json_t *saved, json_t *now, const char *path, char *out, size_t cap)
{
    if (json_equal(saved, now)) return false;
    if (json_is_object(saved) && json_is_object(now)) {
        const char *key;
        json_t *value;
        json_object_foreach(now, key, value)
        {
            char child[128];
            snprintf(child, sizeof child, "%s%s%s", path, path[0] ? "." : "", key);
            json_t *other = json_object_get(saved, key);
            if (!other || first_diff(other, value, child, out, cap)) {
                if (!other) snprintf(out, cap, "%s", child);
                return true;
            }
        }
    }
    snprintf(out, cap, "%s", path[0] ? path : "(the whole config)");
    return true;
}

static dk_status check_same_run(trainer *t, json_t *rec, dk_err *err)
{
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    json_t *state = json_object_get(rec, "state");
    if (!kind || strcmp(kind, RECORD_KIND) || !json_is_object(state))
        return dk_err_set(err, DK_EFORMAT,
                          "'%s' is not a teacher run's last checkpoint "
                          "(no run state in its run record)",
                          t->last_path);
    json_int_t seed = json_integer_value(json_object_get(rec, "seed"));
    if (t->run->seed_given && (uint64_t)seed != t->run->seed)
        return dk_err_set(err, DK_EMISMATCH,
                          "--seed %" PRIu64 " differs from the run's seed %" PRId64 " in '%s'",
                          t->run->seed, (int64_t)seed, t->last_path);
    char *now_text = dk_teacher_config_to_json(&t->cfg), field[128];
    json_t *now = now_text ? json_loads(now_text, 0, NULL) : NULL;
    free(now_text);
    bool differs = now && first_diff(json_object_get(rec, "config"), now, "", field, sizeof field);
    json_decref(now);
    if (differs)
        return dk_err_set(err, DK_EMISMATCH,
                          "the config differs from the interrupted run's "
                          "(field '%s'); resume with the same config",
                          field);
    return DK_OK;
}

static dk_status restore_state(trainer *t, json_t *rec, dk_err *err)
{
    json_t *state = json_object_get(rec, "state"), *best = json_object_get(rec, "best");
    const char *rng = json_string_value(json_object_get(state, "rng"));
    json_t *epochs = json_object_get(rec, "epochs");
    char *end = NULL;
    uint64_t rs = rng ? strtoull(rng, &end, 16) : 0;
    if (!rng || *end || !json_is_array(epochs) || !json_is_integer(json_object_get(state, "step")))
        return dk_err_set(err, DK_EFORMAT, "'%s': the run state is incomplete", t->last_path);
    t->rng.state = rs;
    t->seed = (uint64_t)json_integer_value(json_object_get(rec, "seed"));
    t->step = (long)json_integer_value(json_object_get(state, "step"));
    t->epoch_loss_sum = json_number_value(json_object_get(state, "epoch_loss_sum"));
    t->epoch_loss_count = (long)json_integer_value(json_object_get(state, "epoch_loss_count"));
    t->best_epoch = (int)json_integer_value(json_object_get(best, "epoch"));
    t->best_dice = json_number_value(json_object_get(best, "mean_foreground_dice"));
    json_decref(t->history);
    t->history = json_deep_copy(epochs);
    return DK_OK;
}

static dk_status resume(trainer *t, dk_err *err)
{
    if (access(t->last_path, F_OK) != 0)
        return dk_err_set(err, DK_ENOTFOUND,
                          "--resume: there is no last checkpoint '%s' to "
                          "continue from (run without --resume to start a new run)",
                          t->last_path);
    char *text = NULL;
    if (dk_checkpoint_read_run_record(t->last_path, &text, err)) return err->code;
    json_t *rec = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    dk_status st =
        rec ? DK_OK : dk_err_set(err, DK_EFORMAT, "'%s' has no readable run record", t->last_path);
    /* the checkpoint module names an architecture field that differs */
    if (st == DK_OK)
        st = dk_checkpoint_load(t->last_path, t->arch_json, dk_unet_params(t->net), &t->opt, err);
    if (st == DK_OK) st = check_same_run(t, rec, err);
    if (st == DK_OK) st = restore_state(t, rec, err);
    json_decref(rec);
    if (st == DK_OK) st = log_rewrite(t, err);
    return st;
}

static dk_status fresh_start(trainer *t, dk_err *err)
{
    unlink(t->last_path); /* a stale run must never be resumed by mistake */
    return log_rewrite(t, err);
}

static void sample_batch(trainer *t)
{
    const int *p = t->cfg.patch;
    const size_t tv = (size_t)p[0] * p[1] * p[2];
    for (int b = 0; b < t->cfg.batch; b++) {
        dk_patch_params pp;
        dk_patch_draw(t->train, t->train_count, p, t->cfg.foreground_fraction, &t->cfg.augment,
                      &t->rng, &pp);
        dk_patch_extract(&t->train[pp.volume], p, &pp, t->x.data + b * tv, t->labels + b * tv);
    }
}

static void report_progress(const trainer *t, long first_step, double t0, float lr)
{
    const dk_teacher_callbacks *cb = &t->run->callbacks;
    if (!cb->progress) return;
    const dk_teacher_config *c = &t->cfg;
    double rate = (t->step - first_step) / fmax(now_s() - t0, 1e-9);
    dk_teacher_progress p = {
        .step = t->step,
        .steps = c->steps,
        .lr = lr,
        .steps_per_s = rate,
        .epoch = (int)((t->step + c->steps_per_epoch - 1) / c->steps_per_epoch),
        .epochs = (int)((c->steps + c->steps_per_epoch - 1) / c->steps_per_epoch),
        .loss = (float)(t->epoch_loss_sum / (t->epoch_loss_count ? t->epoch_loss_count : 1)),
        .eta_s = (c->steps - t->step) / fmax(rate, 1e-9)};
    cb->progress(&p, cb->ctx);
}

/* Steps until done (DK_OK, *finished) or stopped by run->stop_after (DK_OK, !*finished). */
static dk_status train_loop(trainer *t, bool *finished, dk_err *err)
{
    const dk_teacher_config *c = &t->cfg;
    dk_sup_weights w = dk_sup_weights_default();
    w.dice = c->dice_weight;
    w.ce = c->ce_weight;
    w.dice_opts.include_background = c->dice_include_background;
    const long first_step = t->step;
    double t0 = now_s(), epoch_start = t0;
    *finished = false;
    while (t->step < c->steps) {
        if (t->run->stop_after && t->step >= t->run->stop_after) return DK_OK;
        sample_batch(t);
        float lr = dk_lr_poly(c->optim.lr, t->step, c->steps, c->poly_power);
        dk_step_stats s = dk_train_step_supervised(t->net, &t->opt, &t->x, t->labels, &w, lr);
        if (!isfinite(s.loss))
            return dk_err_set(err, DK_EINVAL,
                              "training diverged at step %ld (loss %g); lower "
                              "optimizer.lr",
                              t->step + 1, s.loss);
        t->step++;
        t->epoch_loss_sum += s.loss;
        t->epoch_loss_count++;
        report_progress(t, first_step, t0, lr);
        if (t->step % c->steps_per_epoch == 0 || t->step == c->steps) {
            if (end_epoch(t, lr, epoch_start, err)) return err->code;
            epoch_start = now_s();
        } else if (c->checkpoint_every && t->step % c->checkpoint_every == 0) {
            if (save(t, t->last_path, true, err)) return err->code;
        }
    }
    *finished = true;
    return DK_OK;
}

/* The best weights at out_path get the complete run record (all epochs). */
static dk_status finish(trainer *t, dk_err *err)
{
    if (dk_checkpoint_load(t->run->out_path, t->arch_json, dk_unet_params(t->net), NULL, err))
        return err->code;
    return save(t, t->run->out_path, false, err);
}

static void trainer_release(trainer *t)
{
    for (int i = 0; t->train && i < t->train_count; i++)
        dk_patch_source_release(&t->train[i]);
    for (int i = 0; t->val && i < t->val_count; i++)
        dk_volume_release(&t->val[i]);
    free(t->train);
    free(t->val);
    dk_optim_release(&t->opt);
    dk_unet_free(t->net);
    free(t->arch_json);
    dk_tensor_release(&t->x);
    free(t->labels);
    json_decref(t->history);
}

dk_status dk_teacher_train(const dk_teacher_run *run, dk_err *err)
{
    trainer t = {.run = run,
                 .cfg = run->config,
                 .seed = run->seed,
                 .best_dice = -1,
                 .history = json_array()};
    t.rng = dk_rng_seed(run->seed ^ 0x7465616368657221ULL); /* sampling stream != init stream */
    dk_teacher_last_path(run->out_path, t.last_path, sizeof t.last_path);
    dk_teacher_runlog_path(run->out_path, t.log_path, sizeof t.log_path);
    bool finished = false;
    dk_status st = dk_teacher_config_validate(&t.cfg, err);
    if (st == DK_OK) st = load_data(&t, err);
    if (st == DK_OK) st = build_net(&t, err);
    if (st == DK_OK) st = run->resume ? resume(&t, err) : fresh_start(&t, err);
    if (st == DK_OK) st = train_loop(&t, &finished, err);
    if (st == DK_OK && finished) st = finish(&t, err);
    trainer_release(&t);
    return st;
}
