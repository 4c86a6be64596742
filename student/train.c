/* train.c: the student's training run (train.h): which terms are on, the network
 * and its match with the store, the batch (labelled patches, then transfer
 * patches), the step loop with ramps, validation, best/last checkpoints, resume,
 * and the run record. The loss is kd_loss.c; transfer patches transfer.c. */
#include "student/train.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "distill/unet_checkpoint.h"
#include "student/transfer.h"
#include "teacher/runlog.h"
#include "teacher/train_data.h"
#include "distill/clock.h"

#define RECORD_KIND  "dualkd-student-run"
#define CACHE_BYTES  ((size_t)1 << 30) /* transfer samples kept in memory */

struct dk_student_session {
    const dk_student_run *run;
    dk_student_config cfg;
    dk_train_data data;
    dk_target_source *src;
    bool use_response, use_feature;
    int L, T; /* labelled and transfer patches per step */
    dk_unet *net;
    char *arch_json;
    dk_adapter ad;
    dk_transfer_spec spec;
    dk_params all; /* the network's parameters, then the adapter's */
    dk_params adapter_params; /* the adapter's alone (empty without the feature term) */
    dk_optimizer opt;
    dk_tensor x, response, features;
    uint8_t *labels;
    float *entropy, *mask;
    dk_transfer_sample *cache; /* per source sample; input NULL = not loaded */
    size_t cache_bytes;
    /* the run's state (what <out>.last.h5 holds) */
    long step;
    uint64_t seed;
    dk_rng rng;
    double sums[4]; /* loss, sup, response, feature over the epoch so far */
    long sum_count;
    double best_dice;
    int best_epoch;
    json_t *history;
    char last_path[4096], log_path[4096];
};
typedef struct dk_student_session trainer;

static size_t patch_voxels(const trainer *t)
{
    const int *p = t->cfg.base.patch;
    return (size_t)p[0] * p[1] * p[2];
}

/* ---- the terms, the network and its match with the store ---- */

static dk_status resolve_terms(trainer *t, dk_err *err)
{
    const dk_student_run *r = t->run;
    t->use_response = !r->supervised_only && !r->no_response && t->cfg.alpha > 0;
    t->use_feature = !r->supervised_only && !r->no_feature && t->cfg.beta > 0;
    t->L = t->cfg.base.batch;
    t->T = t->use_response || t->use_feature ? t->cfg.transfer_batch : 0;
    if (t->T == 0) t->use_response = t->use_feature = false;
    if (t->T > 0 && !r->source)
        return dk_err_set(err, DK_EINVAL,
                          "the distillation terms need transfer samples: give a target store "
                          "(--store), or train with --supervised-only");
    t->src = t->T > 0 ? r->source : NULL;
    if (t->L + t->T > 64)
        return dk_err_set(err, DK_EINVAL, "student config: batch + distill.transfer_batch = %d "
                          "(at most 64)", t->L + t->T);
    return DK_OK;
}

static dk_status check_classes(const trainer *t, dk_err *err)
{
    const dk_classes *a = &t->src->manifest->classes, *b = &t->data.classes;
    bool same = a->count == b->count;
    for (int c = 0; same && c < a->count; c++)
        same = !strcmp(a->names[c], b->names[c]);
    if (!same)
        return dk_err_set(err, DK_EMISMATCH,
                          "%s names %d classes (%s, ...), the site dataset '%s' %d (%s, ...): "
                          "the teacher's classes must be the site's",
                          t->src->where, a->count, a->names[a->count - 1], t->run->data_path,
                          b->count, b->names[b->count - 1]);
    return DK_OK;
}

/* The feature targets were made for one student architecture: the network must be it. */
static dk_status check_architecture(trainer *t, const dk_unet_config *n, dk_err *err)
{
    const char *made_for = t->src->manifest->student_architecture;
    json_t *store = json_loads(made_for, 0, NULL), *ours = json_loads(t->arch_json, 0, NULL);
    char field[128];
    bool differs = store && ours && dk_json_first_diff(store, ours, field, sizeof field);
    json_decref(store);
    json_decref(ours);
    if (!differs) return DK_OK;
    return dk_err_set(err, DK_EMISMATCH,
                      "%s holds feature targets for the student architecture %s (made with "
                      "`dualkd teacher precompute --student` of that JSON); this student's "
                      "network differs in field '%s': drop \"network\" from the config to use "
                      "the store's, or train with --no-feature",
                      t->src->where, made_for, field);
}

/* A federation fixes the network: its architecture, with this site's classes. */
static dk_status federation_network(trainer *t, dk_unet_config *n, dk_err *err)
{
    dk_status st = dk_unet_config_from_json(t->run->architecture_json, n, err);
    if (st) return dk_err_prefix(err, st, "the federation's architecture");
    if (n->classes != t->data.classes.count || n->in_channels != 1)
        return dk_err_set(err, DK_EMISMATCH, "the federation's student has %d input channel(s) "
                          "and %d classes; the site dataset '%s' needs 1 and %d",
                          n->in_channels, n->classes, t->run->data_path, t->data.classes.count);
    return DK_OK;
}

static dk_status resolve_network(trainer *t, dk_unet_config *n, dk_err *err)
{
    *n = t->cfg.base.network;
    if (t->run->architecture_json) {
        dk_status st = federation_network(t, n, err);
        if (st) return st;
    } else if (!t->cfg.network_given && t->src) {
        dk_status st = dk_unet_config_from_json(t->src->manifest->student_architecture, n, err);
        if (st) return dk_err_prefix(err, st, "%s: student_architecture", t->src->where);
    }
    n->in_channels = 1;
    n->classes = t->data.classes.count;
    t->arch_json = dk_unet_config_to_json(n);
    if (!t->arch_json) return dk_err_set(err, DK_ENOMEM, "no memory for the architecture");
    dk_status st = t->src ? check_classes(t, err) : DK_OK;
    if (!st && t->use_feature) st = check_architecture(t, n, err);
    return st;
}

static dk_status resolve_feature(trainer *t, const dk_unet_config *n, dk_err *err)
{
    const dk_store_manifest *m = t->src->manifest;
    memcpy(t->spec.multiple, m->student_multiple, sizeof t->spec.multiple);
    t->spec.response = t->use_response;
    /* softmax-MSE compares the student's plain softmax: bring the targets back to T = 1 */
    t->spec.response_power = t->cfg.response == DK_RESPONSE_MSE ? (float)m->temperature : 1.0f;
    for (int a = 0; a < 3; a++)
        t->spec.factor[a] = 1;
    if (!t->use_feature) return DK_OK;
    const char *layer = t->cfg.feature_layer;
    int k = 0;
    while (k < m->feature_count && strcmp(m->features[k].layer, layer))
        k++;
    if (k == m->feature_count)
        return dk_err_set(err, DK_ENOTFOUND, "%s has no feature targets for layer '%s' (it has "
                          "'%s'); set distill.feature.layer", t->src->where, layer,
                          m->feature_count ? m->features[0].layer : "none");
    int tap = dk_unet_tap_index(t->net, layer), ch, out[3];
    if (tap < 0)
        return dk_err_set(err, DK_ENOTFOUND, "the student has no tap '%s'", layer);
    const int *in = t->cfg.base.patch;
    dk_unet_tap_dims(n, tap, in, &ch, out);
    for (int a = 0; a < 3; a++)
        t->spec.factor[a] = in[a] / out[a];
    snprintf(t->spec.feature_kind, sizeof t->spec.feature_kind, "features/%s", layer);
    return dk_adapter_init(&t->ad, n, tap, layer, m->features[k].channels, in, t->L, t->T,
                           t->seed, err);
}

/* Every transfer sample's padded grid must hold the patch. */
static dk_status check_patch_fits(const trainer *t, dk_err *err)
{
    const int *p = t->cfg.base.patch, *m = t->spec.multiple;
    for (int i = 0; i < t->src->count; i++) {
        const dk_store_sample_info *s = t->src->sample(t->src, i);
        for (int a = 0; a < 3; a++) {
            int padded = (s->grid.dims[a] + m[a] - 1) / m[a] * m[a];
            if (padded < p[a])
                return dk_err_set(err, DK_EINVAL,
                                  "student config: field 'patch': %d along %s does not fit "
                                  "transfer sample '%s' (%d voxels padded); use at most %d",
                                  p[a], a == 0 ? "z" : a == 1 ? "y" : "x", s->id, padded, padded);
        }
    }
    return DK_OK;
}

static dk_status build(trainer *t, dk_err *err)
{
    dk_unet_config n;
    dk_status st = resolve_network(t, &n, err);
    dk_teacher_config with_net = t->cfg.base;
    with_net.network = n;
    if (!st) st = dk_train_config_validate(&with_net, "student config", err);
    if (!st && !(t->net = dk_unet_create(&n, t->seed, err))) st = DK_EINVAL;
    const int *p = t->cfg.base.patch, N = t->L + t->T, C = n.classes;
    if (!st) st = dk_unet_plan(t->net, N, p[0], p[1], p[2], err);
    if (!st && t->src) st = resolve_feature(t, &n, err);
    if (!st && t->src) st = check_patch_fits(t, err);
    const dk_params *np = st ? NULL : dk_unet_params(t->net);
    for (int i = 0; !st && i < np->count; i++)
        st = dk_params_push(&t->all, np->items[i], err);
    if (!st && t->use_feature) st = dk_params_push(&t->all, &t->ad.weight, err);
    if (!st && t->use_feature) st = dk_params_push(&t->all, &t->ad.bias, err);
    if (!st && t->use_feature) st = dk_params_push(&t->adapter_params, &t->ad.weight, err);
    if (!st && t->use_feature) st = dk_params_push(&t->adapter_params, &t->ad.bias, err);
    if (!st) st = dk_optim_init(&t->opt, &t->cfg.base.optim, &t->all, err);
    if (!st) st = dk_tensor_alloc(&t->x, N, 1, p[0], p[1], p[2], err);
    if (!st && t->T) st = dk_tensor_alloc(&t->response, t->T, C, p[0], p[1], p[2], err);
    if (!st && t->use_feature)
        st = dk_tensor_alloc(&t->features, t->T, t->ad.adapted.c, t->ad.adapted.d,
                             t->ad.adapted.h, t->ad.adapted.w, err);
    size_t V = patch_voxels(t);
    t->labels = malloc((size_t)(t->L ? t->L : 1) * V);
    t->entropy = malloc((size_t)(t->T ? t->T : 1) * V * sizeof(float));
    t->mask = malloc((size_t)(t->T ? t->T : 1) * V * sizeof(float));
    t->cache = t->src ? calloc((size_t)t->src->count, sizeof *t->cache) : NULL;
    if (!st && (!t->labels || !t->entropy || !t->mask || (t->src && !t->cache)))
        st = dk_err_set(err, DK_ENOMEM, "no memory for the batch");
    return st;
}

/* ---- the batch ---- */

static dk_status transfer_sample(trainer *t, int i, dk_transfer_sample **s,
                                 dk_transfer_sample *scratch, dk_err *err)
{
    if (t->cache[i].input) {
        *s = &t->cache[i];
        return DK_OK;
    }
    dk_status st = dk_transfer_load(t->src, i, &t->spec, scratch, err);
    if (st) return st;
    size_t bytes = sizeof(float) * ((size_t)(1 + scratch->classes + 1) * scratch->padded[0] *
                                        scratch->padded[1] * scratch->padded[2] +
                                    (size_t)scratch->feature_channels * scratch->feature_dims[0] *
                                        scratch->feature_dims[1] * scratch->feature_dims[2]);
    if (t->cache_bytes + bytes <= CACHE_BYTES) {
        t->cache[i] = *scratch;
        memset(scratch, 0, sizeof *scratch);
        t->cache_bytes += bytes;
        *s = &t->cache[i];
    } else {
        *s = scratch;
    }
    return DK_OK;
}

static float mask_threshold(const trainer *t)
{
    const dk_student_config *c = &t->cfg;
    if (!c->uncertainty_mask) return INFINITY;
    float r = dk_sigmoid_rampup(t->step, c->alpha_ramp_steps);
    return c->mask_threshold_start + (c->mask_threshold_end - c->mask_threshold_start) * r;
}

static dk_status sample_batch(trainer *t, dk_err *err)
{
    const int *p = t->cfg.base.patch;
    const size_t V = patch_voxels(t);
    for (int b = 0; b < t->L; b++) {
        dk_patch_params pp;
        dk_patch_draw(t->data.train, t->data.train_count, p, t->cfg.base.foreground_fraction,
                      &t->cfg.base.augment, &t->rng, &pp);
        dk_patch_extract(&t->data.train[pp.volume], p, &pp, t->x.data + b * V, t->labels + b * V);
        dk_status st = dk_appearance_apply(&pp.appearance, p, t->data.train[pp.volume].classes,
                                           t->x.data + b * V, t->labels + b * V, err);
        if (st) return st;
    }
    const size_t C = (size_t)t->response.c, F = t->use_feature ? dk_tensor_numel(&t->features) / t->T : 0;
    for (int b = 0; b < t->T; b++) {
        int i = (int)dk_rng_below(&t->rng, (uint64_t)t->src->count), origin[3];
        dk_transfer_sample scratch = {0}, *s;
        dk_status st = transfer_sample(t, i, &s, &scratch, err);
        if (st) return st;
        dk_transfer_draw_origin(s, &t->spec, p, &t->rng, origin);
        dk_transfer_cut(s, &t->spec, p, origin, t->x.data + (t->L + b) * V,
                        t->use_response ? t->response.data + b * C * V : NULL,
                        t->use_response ? t->entropy + b * V : NULL,
                        t->use_feature ? t->features.data + b * F : NULL);
        dk_transfer_release(&scratch);
    }
    float thr = mask_threshold(t);
    for (size_t i = 0; t->use_response && i < (size_t)t->T * V; i++)
        t->mask[i] = t->entropy[i] < thr ? 1.0f : 0.0f;
    return DK_OK;
}

static dk_kd_weights step_weights(const trainer *t)
{
    const dk_student_config *c = &t->cfg;
    dk_kd_weights w = {.sup = dk_sup_weights_default(),
                       .response = c->response,
                       .temperature = t->src ? (float)t->src->manifest->temperature : 1.0f,
                       .feature = c->feature,
                       .feature_temperature = c->feature_temperature};
    w.sup.dice = c->base.dice_weight;
    w.sup.ce = c->base.ce_weight;
    w.sup.dice_opts.include_background = c->base.dice_include_background;
    if (t->use_response) w.alpha = c->alpha * dk_sigmoid_rampup(t->step, c->alpha_ramp_steps);
    if (t->use_feature) w.beta = c->beta * dk_sigmoid_rampup(t->step, c->beta_ramp_steps);
    return w;
}

/* ---- the run record and checkpoints ---- */

static json_t *config_json(const trainer *t)
{
    char *text = dk_student_config_to_json(&t->cfg);
    json_t *c = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (c)
        json_object_set_new(c, "terms", json_pack("{s:b, s:b}", "response", t->use_response,
                                                  "feature", t->use_feature));
    return c;
}

static json_t *student_card(const trainer *t)
{
    json_t *names = json_array();
    for (int c = 0; c < t->data.classes.count; c++)
        json_array_append_new(names, json_string(t->data.classes.names[c]));
    const dk_store_manifest *m = t->src ? t->src->manifest : NULL;
    return json_pack("{s:o, s:o, s:{s:s, s:s}, s:s, s:s, s:s}", "classes", names, "architecture",
                     json_loads(t->arch_json, 0, NULL), "normalisation", "kind", "zscore", "scope",
                     "volume", "source", t->src ? t->src->where : "", "teacher_sha256",
                     m ? m->teacher_sha256 : "", "profile", m ? m->profile : "");
}

static char *run_record(const trainer *t, bool with_state)
{
    json_t *root = json_pack("{s:s, s:i, s:s, s:I, s:o, s:o, s:O, s:{s:i, s:f}}", "kind",
                             RECORD_KIND, "version", 1, "data", t->run->data_path, "seed",
                             (json_int_t)t->seed, "config", config_json(t), "student",
                             student_card(t), "epochs", t->history, "best", "epoch",
                             t->best_epoch, "mean_foreground_dice", t->best_dice);
    if (root && with_state) {
        char rng[32];
        snprintf(rng, sizeof rng, "%016" PRIx64, t->rng.state);
        json_object_set_new(root, "state",
                            json_pack("{s:I, s:s, s:[ffff], s:I}", "step", (json_int_t)t->step,
                                      "rng", rng, "sums", t->sums[0], t->sums[1], t->sums[2],
                                      t->sums[3], "sum_count", (json_int_t)t->sum_count));
    }
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(root);
    return text;
}

/* The best checkpoint holds the U-Net only (what a site shares); the last one the
 * adapter and the optimiser too (what resuming needs). */
static dk_status save(trainer *t, const char *path, bool last, dk_err *err)
{
    char *record = run_record(t, last);
    if (!record) return dk_err_set(err, DK_ENOMEM, "no memory for the run record");
    dk_status st = dk_checkpoint_save(path, t->arch_json, last ? &t->all : dk_unet_params(t->net),
                                      last ? &t->opt : NULL, record, err);
    free(record);
    return st;
}

/* ---- epochs ---- */

static int epoch_of(const trainer *t, long step)
{
    long per = t->cfg.base.steps_per_epoch;
    return (int)((step + per - 1) / per);
}

static void epoch_means(const trainer *t, float out[4])
{
    for (int k = 0; k < 4; k++)
        out[k] = (float)(t->sums[k] / (t->sum_count ? t->sum_count : 1));
}

static json_t *epoch_json(const trainer *t, const dk_student_epoch *e)
{
    json_t *dice = json_object();
    for (int c = 0; c < e->classes; c++)
        json_object_set_new(dice, t->data.classes.names[c], json_real(e->dice[c]));
    return json_pack("{s:i, s:I, s:f, s:f, s:f, s:f, s:o, s:f, s:b, s:f}", "epoch", e->epoch,
                     "step", (json_int_t)e->step, "loss", (double)e->loss, "sup", (double)e->sup,
                     "response", (double)e->response, "feature", (double)e->feature, "dice", dice,
                     "mean_foreground_dice", (double)e->mean_dice, "best", e->best, "seconds",
                     e->seconds);
}

static dk_status validate(trainer *t, float *dice, float *mean_dice, dk_err *err)
{
    dk_segment_options o = dk_segment_options_default(t->cfg.base.patch);
    o.batch = t->L + t->T;
    o.overlap = t->cfg.base.validation_overlap;
    return dk_train_data_validate(&t->data, t->net, &o, dice, mean_dice, err);
}

static dk_status end_epoch(trainer *t, double started, dk_err *err)
{
    dk_student_epoch e = {.epoch = epoch_of(t, t->step), .step = t->step,
                          .classes = t->data.classes.count};
    float m[4];
    epoch_means(t, m);
    e.loss = m[0], e.sup = m[1], e.response = m[2], e.feature = m[3];
    dk_status st = validate(t, e.dice, &e.mean_dice, err);
    if (st) return st;
    e.best = e.mean_dice > t->best_dice;
    e.seconds = dk_clock_seconds() - started;
    json_t *line = epoch_json(t, &e);
    if (!line || json_array_append_new(t->history, line))
        return dk_err_set(err, DK_ENOMEM, "no memory for the run record");
    if (e.best) {
        t->best_dice = e.mean_dice;
        t->best_epoch = e.epoch;
        if ((st = save(t, t->run->out_path, false, err))) return st;
    }
    memset(t->sums, 0, sizeof t->sums);
    t->sum_count = 0;
    if ((st = save(t, t->last_path, true, err)) || (st = dk_runlog_append(t->log_path, line, err)))
        return st;
    const dk_student_callbacks *cb = &t->run->callbacks;
    if (cb->epoch) cb->epoch(&e, &t->data.classes, cb->ctx);
    return DK_OK;
}

/* ---- resume ---- */

static dk_status check_same_run(trainer *t, json_t *rec, dk_err *err)
{
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    if (!kind || strcmp(kind, RECORD_KIND) || !json_is_object(json_object_get(rec, "state")))
        return dk_err_set(err, DK_EFORMAT, "'%s' is not a student run's last checkpoint "
                          "(no run state in its run record)", t->last_path);
    uint64_t seed = (uint64_t)json_integer_value(json_object_get(rec, "seed"));
    if (t->run->seed_given && seed != t->run->seed)
        return dk_err_set(err, DK_EMISMATCH, "--seed %" PRIu64 " differs from the run's seed %"
                          PRIu64 " in '%s'", t->run->seed, seed, t->last_path);
    json_t *now = config_json(t);
    char field[128];
    bool differs = !now || dk_json_first_diff(json_object_get(rec, "config"), now, field,
                                              sizeof field);
    json_decref(now);
    if (differs)
        return dk_err_set(err, DK_EMISMATCH, "the config or terms differ from the interrupted "
                          "run's (field '%s'); resume with the same config and flags", field);
    return DK_OK;
}

static dk_status restore_state(trainer *t, json_t *rec, dk_err *err)
{
    json_t *state = json_object_get(rec, "state"), *best = json_object_get(rec, "best");
    json_t *sums = json_object_get(state, "sums"), *epochs = json_object_get(rec, "epochs");
    const char *rng = json_string_value(json_object_get(state, "rng"));
    char *end = NULL;
    uint64_t rs = rng ? strtoull(rng, &end, 16) : 0;
    if (!rng || *end || !json_is_array(epochs) || json_array_size(sums) != 4 ||
        !json_is_integer(json_object_get(state, "step")))
        return dk_err_set(err, DK_EFORMAT, "'%s': the run state is incomplete", t->last_path);
    t->rng.state = rs;
    t->seed = (uint64_t)json_integer_value(json_object_get(rec, "seed"));
    t->step = (long)json_integer_value(json_object_get(state, "step"));
    for (int k = 0; k < 4; k++)
        t->sums[k] = json_number_value(json_array_get(sums, (size_t)k));
    t->sum_count = (long)json_integer_value(json_object_get(state, "sum_count"));
    t->best_epoch = (int)json_integer_value(json_object_get(best, "epoch"));
    t->best_dice = json_number_value(json_object_get(best, "mean_foreground_dice"));
    json_decref(t->history);
    t->history = json_deep_copy(epochs);
    return DK_OK;
}

/* The seed decides the initial weights, so the run's seed is read before building. */
static dk_status read_last_record(trainer *t, json_t **rec, dk_err *err)
{
    if (access(t->last_path, F_OK) != 0)
        return dk_err_set(err, DK_ENOTFOUND, "--resume: there is no last checkpoint '%s' to "
                          "continue from (run without --resume to start a new run)", t->last_path);
    char *text = NULL;
    dk_status st = dk_checkpoint_read_run_record(t->last_path, &text, err);
    if (st) return st;
    *rec = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!*rec) return dk_err_set(err, DK_EFORMAT, "'%s' has no readable run record", t->last_path);
    json_t *seed = json_object_get(*rec, "seed");
    if (json_is_integer(seed)) t->seed = (uint64_t)json_integer_value(seed);
    return DK_OK;
}

static dk_status resume(trainer *t, json_t *rec, dk_err *err)
{
    dk_status st = dk_checkpoint_load(t->last_path, t->arch_json, &t->all, &t->opt, err);
    if (!st) st = check_same_run(t, rec, err);
    if (!st) st = restore_state(t, rec, err);
    if (!st) st = dk_runlog_rewrite(t->log_path, t->history, err);
    return st;
}

/* ---- the loop ---- */

static void report_progress(const trainer *t, long first, double t0, const dk_kd_weights *w,
                            float lr)
{
    const dk_student_callbacks *cb = &t->run->callbacks;
    if (!cb->progress) return;
    const dk_teacher_config *c = &t->cfg.base;
    double rate = (t->step - first) / fmax(dk_clock_seconds() - t0, 1e-9);
    float m[4];
    epoch_means(t, m);
    dk_student_progress p = {.step = t->step, .steps = c->steps, .epoch = epoch_of(t, t->step),
                             .epochs = epoch_of(t, c->steps), .loss = m[0], .sup = m[1],
                             .response = m[2], .feature = m[3], .alpha = w->alpha,
                             .beta = w->beta, .lr = lr, .steps_per_s = rate,
                             .eta_s = (c->steps - t->step) / fmax(rate, 1e-9)};
    cb->progress(&p, cb->ctx);
}

static dk_status one_step(trainer *t, float lr, dk_kd_weights *w, dk_err *err)
{
    dk_status st = sample_batch(t, err);
    if (st) return st;
    *w = step_weights(t);
    dk_kd_batch b = {t->L, t->T, t->labels, &t->response, t->mask, &t->features};
    dk_kd_stats s = dk_kd_forward_backward(t->net, t->use_feature ? &t->ad : NULL, &t->x, &b, w,
                                           true);
    if (!isfinite(s.loss))
        return dk_err_set(err, DK_EINVAL, "training diverged at step %ld (loss %g); lower "
                          "optimizer.lr", t->step + 1, s.loss);
    dk_optim_step(&t->opt, lr);
    t->step++;
    t->sums[0] += s.loss;
    t->sums[1] += w->sup.dice * s.dice + w->sup.ce * s.ce;
    t->sums[2] += s.response;
    t->sums[3] += s.feature;
    t->sum_count++;
    return DK_OK;
}

static dk_status train_loop(trainer *t, dk_err *err)
{
    const dk_teacher_config *c = &t->cfg.base;
    const long first = t->step;
    double t0 = dk_clock_seconds(), epoch_start = t0;
    while (t->step < c->steps) {
        float lr = dk_lr_poly(c->optim.lr, t->step, c->steps, c->poly_power);
        dk_kd_weights w;
        dk_status st = one_step(t, lr, &w, err);
        if (st) return st;
        report_progress(t, first, t0, &w, lr);
        if (t->step % c->steps_per_epoch == 0 || t->step == c->steps) {
            if ((st = end_epoch(t, epoch_start, err))) return st;
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
    dk_status st = dk_checkpoint_load(t->run->out_path, t->arch_json, dk_unet_params(t->net),
                                      NULL, err);
    return st ? st : save(t, t->run->out_path, false, err);
}

static void trainer_release(trainer *t)
{
    dk_train_data_release(&t->data);
    for (int i = 0; t->cache && i < t->src->count; i++)
        dk_transfer_release(&t->cache[i]);
    free(t->cache);
    dk_optim_release(&t->opt);
    dk_params_release(&t->all);
    dk_params_release(&t->adapter_params);
    dk_adapter_release(&t->ad);
    dk_unet_free(t->net);
    free(t->arch_json);
    dk_tensor_release(&t->x);
    dk_tensor_release(&t->response);
    dk_tensor_release(&t->features);
    free(t->labels);
    free(t->entropy);
    free(t->mask);
    json_decref(t->history);
}

static dk_status prepare(trainer *t, const dk_student_run *run, dk_err *err)
{
    *t = (trainer){.run = run, .cfg = run->config, .seed = run->seed, .best_dice = -1,
                   .history = json_array()};
    t->rng = dk_rng_seed(run->seed ^ 0x73747564656e7421ULL); /* sampling != init stream */
    dk_teacher_last_path(run->out_path, t->last_path, sizeof t->last_path);
    dk_teacher_runlog_path(run->out_path, t->log_path, sizeof t->log_path);
    dk_status st = dk_student_config_validate(&t->cfg, err);
    if (!st) st = resolve_terms(t, err);
    if (!st) st = dk_train_data_load(run->data_path, t->cfg.base.validation_max_volumes, &t->data, err);
    return st;
}

dk_status dk_student_train(const dk_student_run *run, dk_err *err)
{
    trainer t;
    json_t *rec = NULL;
    dk_status st = prepare(&t, run, err);
    if (!st && run->resume) st = read_last_record(&t, &rec, err);
    if (!st) st = build(&t, err);
    if (!st && run->resume) st = resume(&t, rec, err);
    if (!st && !run->resume) {
        unlink(t.last_path); /* a stale run must never be resumed by mistake */
        st = dk_runlog_rewrite(t.log_path, t.history, err);
    }
    if (!st) st = train_loop(&t, err);
    if (!st) st = finish(&t, err);
    json_decref(rec);
    trainer_release(&t);
    return st;
}

/* ---- federated local rounds (train.h, "sessions") ---- */

dk_status dk_student_session_open(const dk_student_run *run, dk_student_session **out,
                                  dk_err *err)
{
    *out = NULL;
    trainer *t = malloc(sizeof *t);
    if (!t) return dk_err_set(err, DK_ENOMEM, "no memory for the trainer");
    dk_status st = prepare(t, run, err);
    if (!st) st = build(t, err);
    if (st) {
        trainer_release(t);
        free(t);
        return st;
    }
    *out = t;
    return DK_OK;
}

void dk_student_session_close(dk_student_session *s)
{
    if (!s) return;
    trainer_release(s);
    free(s);
}

const dk_params *dk_student_session_unet(dk_student_session *s)
{
    return dk_unet_params(s->net);
}

const dk_params *dk_student_session_adapter(dk_student_session *s)
{
    return &s->adapter_params;
}

const char *dk_student_session_architecture(const dk_student_session *s)
{
    return s->arch_json;
}

int dk_student_session_labelled(const dk_student_session *s)
{
    return s->data.train_count;
}

dk_status dk_student_session_validate(dk_student_session *s, float *mean_dice, dk_err *err)
{
    float dice[DK_MAX_CLASSES];
    return validate(s, dice, mean_dice, err);
}

/* Fresh optimiser state, and a sampling stream that depends on the seed and
 * first_step only, so a restarted site repeats a round exactly. */
dk_status dk_student_session_train(dk_student_session *s, long first_step, long steps,
                                   long total_steps, dk_student_round_stats *out, dk_err *err)
{
    const dk_teacher_config *c = &s->cfg.base;
    dk_optim_release(&s->opt);
    dk_status st = dk_optim_init(&s->opt, &c->optim, &s->all, err);
    if (st) return st;
    s->rng = dk_rng_seed(s->seed ^ 0x73747564656e7421ULL ^
                         (uint64_t)(first_step + 1) * 0x9e3779b97f4a7c15ULL);
    s->step = first_step;
    memset(s->sums, 0, sizeof s->sums);
    s->sum_count = 0;
    double t0 = dk_clock_seconds();
    for (long i = 0; i < steps; i++) {
        dk_kd_weights w;
        float lr = dk_lr_poly(c->optim.lr, s->step, total_steps, c->poly_power);
        if ((st = one_step(s, lr, &w, err))) return st;
    }
    float m[4];
    epoch_means(s, m);
    *out = (dk_student_round_stats){.loss = m[0], .sup = m[1], .response = m[2],
                                    .feature = m[3], .seconds = dk_clock_seconds() - t0};
    return DK_OK;
}

dk_status dk_student_session_save(dk_student_session *s, const char *path, dk_err *err)
{
    return save(s, path, false, err);
}
