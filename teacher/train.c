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
#include <unistd.h>

#include "datasets/dataset.h"
#include "distill/checkpoint.h"
#include "distill/clock.h"
#include "distill/train_step.h"
#include "teacher/runlog.h"
#include "teacher/train_data.h"

#define RECORD_KIND "dualkd-teacher-run"
#define NORM_EPS    1e-6

typedef struct trainer {
    const dk_teacher_run *run;
    dk_teacher_config cfg;
    dk_train_data data; /* its classes, training and validation volumes, median spacing */
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

/* ---- the network and the run record ---- */

static dk_status build_net(trainer *t, dk_err *err)
{
    dk_unet_config n = t->cfg.network;
    n.in_channels = 1;
    n.classes = t->data.classes.count;
    dk_status st;
    dk_err e;
    t->net = dk_unet_create(&n, t->seed, &e);
    if (!t->net) return dk_err_forward(err, &e);
    t->arch_json = dk_unet_config_to_json(&n);
    const int *p = t->cfg.patch, b = t->cfg.batch;
    size_t voxels = (size_t)p[0] * p[1] * p[2];
    t->labels = malloc((size_t)b * voxels);
    if (!t->arch_json || !t->labels) return dk_err_set(err, DK_ENOMEM, "no memory for the network");
    if ((st = dk_unet_plan(t->net, b, p[0], p[1], p[2], err)) ||
        (st = dk_tensor_alloc(&t->x, b, 1, p[0], p[1], p[2], err)) ||
        (st = dk_optim_init(&t->opt, &t->cfg.optim, dk_unet_params(t->net), err)))
        return st;
    return DK_OK;
}

static json_t *teacher_card(const trainer *t)
{
    json_t *names = json_array();
    for (int c = 0; c < t->data.classes.count; c++)
        json_array_append_new(names, json_string(t->data.classes.names[c]));
    json_t *arch = json_loads(t->arch_json, 0, NULL);
    return json_pack("{s:o, s:[fff], s:{s:s, s:s, s:s, s:f}, s:o, s:i, s:[iii], s:s}", "classes",
                     names, "training_spacing", t->data.spacing[0], t->data.spacing[1], t->data.spacing[2],
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

/* ---- epochs, resume, the loop ---- */

static json_t *epoch_json(const trainer *t, const dk_teacher_epoch *e, float lr)
{
    json_t *dice = json_object();
    for (int c = 0; c < e->classes; c++)
        json_object_set_new(dice, t->data.classes.names[c], json_real(e->dice[c]));
    return json_pack("{s:i, s:I, s:f, s:f, s:o, s:f, s:b, s:f}", "epoch", e->epoch, "step",
                     (json_int_t)e->step, "train_loss", (double)e->train_loss, "lr", (double)lr,
                     "dice", dice, "mean_foreground_dice", (double)e->mean_dice, "best", e->best,
                     "seconds", e->seconds);
}

static dk_status end_epoch(trainer *t, float lr, double started, dk_err *err)
{
    const dk_teacher_run *run = t->run;
    dk_teacher_epoch e = {.step = t->step, .classes = t->data.classes.count};
    e.epoch = (int)((t->step + t->cfg.steps_per_epoch - 1) / t->cfg.steps_per_epoch);
    e.train_loss = (float)(t->epoch_loss_sum / (t->epoch_loss_count ? t->epoch_loss_count : 1));
    dk_segment_options o = {.batch = t->cfg.batch,
                            .overlap = t->cfg.validation_overlap,
                            .gaussian_sigma = 0}; /* the card's "mean of softmax probabilities" */
    memcpy(o.tile, t->cfg.patch, sizeof o.tile);
    dk_status st = dk_train_data_validate(&t->data, t->net, &o, e.dice, &e.mean_dice, err);
    if (st) return st;
    e.best = e.mean_dice > t->best_dice;
    e.seconds = dk_clock_seconds() - started;
    json_t *line = epoch_json(t, &e, lr);
    if (!line || json_array_append_new(t->history, line))
        return dk_err_set(err, DK_ENOMEM, "no memory for the run record");
    if (e.best) {
        t->best_dice = e.mean_dice;
        t->best_epoch = e.epoch;
        if ((st = save(t, run->out_path, false, err))) return st;
    }
    t->epoch_loss_sum = 0;
    t->epoch_loss_count = 0;
    if ((st = save(t, t->last_path, true, err)) || (st = dk_runlog_append(t->log_path, line, err)))
        return st;
    if (run->callbacks.epoch) run->callbacks.epoch(&e, &t->data.classes, run->callbacks.ctx);
    return DK_OK;
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
    bool differs = now && dk_json_first_diff(json_object_get(rec, "config"), now, field, sizeof field);
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
    dk_status st = dk_checkpoint_read_run_record(t->last_path, &text, err);
    if (st) return st;
    json_t *rec = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    st = rec ? DK_OK : dk_err_set(err, DK_EFORMAT, "'%s' has no readable run record", t->last_path);
    /* the checkpoint module names an architecture field that differs */
    if (st == DK_OK)
        st = dk_checkpoint_load(t->last_path, t->arch_json, dk_unet_params(t->net), &t->opt, err);
    if (st == DK_OK) st = check_same_run(t, rec, err);
    if (st == DK_OK) st = restore_state(t, rec, err);
    json_decref(rec);
    if (st == DK_OK) st = dk_runlog_rewrite(t->log_path, t->history, err);
    return st;
}

static dk_status fresh_start(trainer *t, dk_err *err)
{
    unlink(t->last_path); /* a stale run must never be resumed by mistake */
    return dk_runlog_rewrite(t->log_path, t->history, err);
}

static dk_status sample_batch(trainer *t, dk_err *err)
{
    const int *p = t->cfg.patch;
    const size_t tv = (size_t)p[0] * p[1] * p[2];
    for (int b = 0; b < t->cfg.batch; b++) {
        dk_patch_params pp;
        dk_patch_draw(t->data.train, t->data.train_count, p, t->cfg.foreground_fraction, &t->cfg.augment,
                      &t->rng, &pp);
        dk_patch_extract(&t->data.train[pp.volume], p, &pp, t->x.data + b * tv, t->labels + b * tv);
        dk_status st = dk_appearance_apply(&pp.appearance, p, t->data.classes.count,
                                           t->x.data + b * tv, t->labels + b * tv, err);
        if (st) return st;
    }
    return DK_OK;
}

static void report_progress(const trainer *t, long first_step, double t0, float lr)
{
    const dk_teacher_callbacks *cb = &t->run->callbacks;
    if (!cb->progress) return;
    const dk_teacher_config *c = &t->cfg;
    double rate = (t->step - first_step) / fmax(dk_clock_seconds() - t0, 1e-9);
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

/* Steps until done. A kill at any point leaves the last checkpoint for --resume. */
static dk_status train_loop(trainer *t, dk_err *err)
{
    dk_status st;
    const dk_teacher_config *c = &t->cfg;
    dk_sup_weights w = dk_sup_weights_default();
    w.dice = c->dice_weight;
    w.ce = c->ce_weight;
    w.dice_opts.include_background = c->dice_include_background;
    const long first_step = t->step;
    double t0 = dk_clock_seconds(), epoch_start = t0;
    while (t->step < c->steps) {
        if ((st = sample_batch(t, err))) return st;
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
            if ((st = end_epoch(t, lr, epoch_start, err))) return st;
            epoch_start = dk_clock_seconds();
        } else if (c->checkpoint_every && t->step % c->checkpoint_every == 0) {
            if ((st = save(t, t->last_path, true, err))) return st;
        }
    }
    return DK_OK;
}

/* The best weights at out_path get the complete run record (all epochs). */
static dk_status finish(trainer *t, dk_err *err)
{
    dk_status st =
        dk_checkpoint_load(t->run->out_path, t->arch_json, dk_unet_params(t->net), NULL, err);
    if (st) return st;
    return save(t, t->run->out_path, false, err);
}

static void trainer_release(trainer *t)
{
    dk_train_data_release(&t->data);
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
    dk_status st = dk_teacher_config_validate(&t.cfg, err);
    if (st == DK_OK)
        st = dk_train_data_load(run->data_path, t.cfg.validation_max_volumes, &t.data, err);
    if (st == DK_OK) st = build_net(&t, err);
    if (st == DK_OK) st = run->resume ? resume(&t, err) : fresh_start(&t, err);
    if (st == DK_OK) st = train_loop(&t, err);
    if (st == DK_OK) st = finish(&t, err);
    trainer_release(&t);
    return st;
}
