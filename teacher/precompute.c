/* precompute.c: the frozen teacher's response, uncertainty and feature targets
 * for one site profile (precompute.h): loading the teacher and its card, the
 * student pairing checks, the planning and the per-volume computation; its noisy
 * passes are precompute_passes.c, the run over a dataset into the target store
 * precompute_run.c. */
#define _GNU_SOURCE
#include "teacher/precompute.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/acquire.h"
#include "datasets/dataset.h"
#include "datasets/resample.h"
#include "distill/blas.h"
#include "distill/checkpoint.h"
#include "distill/layers.h"
#include "distill/parallel.h"
#include "distill/rng.h"
#include "teacher/content_hash.h"
#include "teacher/precompute_internal.h"
#include "teacher/train.h"

dk_precompute_options dk_precompute_options_default(void)
{
    dk_precompute_options o = {.temperature = 2.0,
                               .passes = 8,
                               .input_noise = 0.1,
                               .feature_count = 1,
                               .seed = 1,
                               .pass_batch = 1,
                               .pass_lanes = 0};
    strcpy(o.feature_layers[0], "bottleneck");
    return o;
}

dk_status dk_precompute_parse_layers(const char *list, dk_precompute_options *o, dk_err *err)
{
    o->feature_count = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof o->feature_layers[0])
            return dk_err_set(err, DK_EINVAL, "--feature-layers '%s': empty or overlong layer name",
                              list);
        if (o->feature_count == DK_STORE_MAX_FEATURES)
            return dk_err_set(err, DK_ELIMIT, "--feature-layers '%s': at most %d layers", list,
                              DK_STORE_MAX_FEATURES);
        snprintf(o->feature_layers[o->feature_count++], sizeof o->feature_layers[0], "%.*s", (int)n,
                 p);
        p += n + (p[n] == ',');
    }
    return DK_OK;
}

uint64_t dk_precompute_sample_seed(uint64_t seed, const char *id, int purpose)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a of the id */
    for (const unsigned char *c = (const unsigned char *)id; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    dk_rng r = dk_rng_seed(seed ^ h ^ ((uint64_t)purpose * 0xD1B54A32D192ED03ULL));
    return dk_rng_next(&r);
}

/* ---- the teacher, its card, the student ---- */

static dk_status read_card(const char *path, dk_store_manifest *m, dk_err *err)
{
    dk_status st;
    char *text = NULL;
    if ((st = dk_checkpoint_read_run_record(path, &text, err))) return st;
    if (!text)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s' has no run record (teacher card); make the teacher with `dualkd "
                          "teacher train`",
                          path);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    json_t *card = json_object_get(root, "teacher");
    json_t *classes = json_object_get(card, "classes"),
           *sp = json_object_get(card, "training_spacing");
    const char *norm =
        json_string_value(json_object_get(json_object_get(card, "normalisation"), "kind"));
    st = DK_OK;
    if (!json_is_array(classes) || json_array_size(classes) < 2 ||
        json_array_size(classes) > DK_MAX_CLASSES || !json_is_array(sp) || json_array_size(sp) != 3)
        st = dk_err_set(err, DK_EFORMAT, "'%s': the teacher card lacks classes or training_spacing",
                        path);
    else if (!norm || strcmp(norm, "zscore"))
        st = dk_err_set(err, DK_EFORMAT, "'%s': teacher normalisation '%s', expected 'zscore'",
                        path, norm ? norm : "(none)");
    for (size_t c = 0; !st && c < json_array_size(classes); c++) {
        const char *name = json_string_value(json_array_get(classes, c));
        if (!name)
            st = dk_err_set(err, DK_EFORMAT, "'%s': teacher card class %zu is not a string", path,
                            c);
        else
            snprintf(m->classes.names[c], sizeof m->classes.names[c], "%s", name);
    }
    m->classes.count = (int)json_array_size(classes);
    for (int a = 0; !st && a < 3; a++)
        if ((m->teacher_spacing[a] = json_number_value(json_array_get(sp, a))) <= 0)
            st = dk_err_set(err, DK_EFORMAT, "'%s': training_spacing[%d] is not positive", path, a);
    json_decref(root);
    return st;
}

/* The teacher's identity in the manifest: its contents, not its file's bytes. */
static dk_status hash_teacher(dk_precomputer *pc, dk_err *err)
{
    char *arch = dk_unet_config_to_json(&pc->tcfg);
    if (!arch) return dk_err_set(err, DK_ENOMEM, "out of memory");
    dk_status st = dk_content_hash_teacher(arch, dk_unet_params(pc->teacher), &pc->m.classes,
                                           pc->m.teacher_spacing, pc->m.teacher_sha256, err);
    free(arch);
    return st;
}

static dk_status load_teacher(dk_precomputer *pc, dk_err *err)
{
    dk_status st;
    const char *path = pc->opt.teacher_path;
    char *arch = NULL;
    if ((st = dk_checkpoint_read_architecture(path, &arch, err))) return st;
    st = dk_unet_config_from_json(arch, &pc->tcfg, err);
    if (st) dk_err_prefix(err, st, "'%s'", path);
    dk_err e;
    if (!st && !(pc->teacher = dk_unet_create(&pc->tcfg, 0, &e))) st = dk_err_forward(err, &e);
    if (!st) st = dk_checkpoint_load(path, arch, dk_unet_params(pc->teacher), NULL, err);
    if (!st) st = read_card(path, &pc->m, err);
    if (!st && pc->m.classes.count != pc->tcfg.classes)
        st = dk_err_set(err, DK_EFORMAT, "'%s': the card names %d classes, the network has %d",
                        path, pc->m.classes.count, pc->tcfg.classes);
    if (!st) snprintf(pc->m.teacher_architecture, sizeof pc->m.teacher_architecture, "%s", arch);
    free(arch);
    return st ? st : hash_teacher(pc, err);
}

static dk_status resolve_student(dk_precomputer *pc, dk_err *err)
{
    const char *name = pc->opt.profile.student;
    if (pc->opt.student_json) {
        dk_status st = dk_unet_config_from_json(pc->opt.student_json, &pc->scfg, err);
        if (st) return dk_err_prefix(err, st, "--student");
    } else if (!name[0] || !strcmp(name, "teacher")) {
        pc->scfg = pc->tcfg;
    } else if (!strcmp(name, "reference")) {
        pc->scfg = dk_unet_config_default(1, pc->tcfg.classes);
    } else {
        return dk_err_set(err, DK_ENOTFOUND,
                          "profile '%s' names student architecture '%s', which is not built in "
                          "(\"\" or \"teacher\": the teacher's, \"reference\": the 4-level "
                          "reference U-Net); give --student FILE.json",
                          pc->opt.profile.name, name);
    }
    const dk_unet_config *s = &pc->scfg;
    if (s->in_channels != 1)
        return dk_err_set(err, DK_EMISMATCH,
                          "student in_channels %d: the targets are for 1 channel", s->in_channels);
    if (s->classes != pc->tcfg.classes)
        return dk_err_set(err, DK_EMISMATCH,
                          "the student has %d classes but the teacher %d: response targets cannot "
                          "be matched",
                          s->classes, pc->tcfg.classes);
    char *json = dk_unet_config_to_json(s);
    if (!json) return dk_err_set(err, DK_ENOMEM, "out of memory");
    snprintf(pc->m.student_architecture, sizeof pc->m.student_architecture, "%s", json);
    free(json);
    return DK_OK;
}

/* Tap index of a layer name for a config: "bottleneck" or "decK", K < levels - 1. */
static int tap_of(const dk_unet_config *c, const char *layer)
{
    if (!strcmp(layer, "bottleneck")) return c->levels - 1;
    char *end;
    if (strncmp(layer, "dec", 3) || !layer[3]) return -1;
    long k = strtol(layer + 3, &end, 10);
    return *end || k < 0 || k >= c->levels - 1 ? -1 : (int)k;
}

static void pool_product(const dk_unet_config *c, int levels, int out[3])
{
    for (int a = 0; a < 3; a++) {
        out[a] = 1;
        for (int l = 0; l < levels; l++)
            out[a] *= c->pool[l][a];
    }
}

static dk_status build_features(dk_precomputer *pc, dk_err *err)
{
    dk_store_manifest *m = &pc->m;
    m->feature_count = pc->opt.feature_count;
    for (int k = 0; k < m->feature_count; k++) {
        dk_store_feature *f = &m->features[k];
        snprintf(f->layer, sizeof f->layer, "%s", pc->opt.feature_layers[k]);
        f->teacher_tap = tap_of(&pc->tcfg, f->layer);
        f->student_tap = tap_of(&pc->scfg, f->layer);
        if (f->teacher_tap < 0 || f->student_tap < 0)
            return dk_err_set(err, DK_EMISMATCH,
                              "feature layer '%s' is not a tap of the %s (taps: bottleneck, "
                              "dec0..dec%d)",
                              f->layer, f->teacher_tap < 0 ? "teacher" : "student",
                              (f->teacher_tap < 0 ? pc->tcfg.levels : pc->scfg.levels) - 2);
        int one[3] = {1, 1, 1}, dims[3], factor[3];
        dk_unet_tap_dims(&pc->tcfg, f->teacher_tap, one, &f->channels, dims);
        dk_unet_tap_dims(&pc->scfg, f->student_tap, one, &f->student_channels, dims);
        pool_product(&pc->scfg, f->student_tap, factor); /* tap l is below l poolings */
        for (int a = 0; a < 3; a++)
            f->spacing[a] = m->profile_spacing[a] * factor[a];
    }
    return DK_OK;
}

static dk_status build_manifest(dk_precomputer *pc, dk_err *err)
{
    const dk_precompute_options *o = &pc->opt;
    dk_store_manifest *m = &pc->m;
    if (!dk_volume_id_valid(o->profile.name))
        return dk_err_set(err, DK_EINVAL, "profile name '%s' cannot name a store file",
                          o->profile.name);
    snprintf(m->profile, sizeof m->profile, "%s", o->profile.name);
    char *pj = dk_profile_to_json(&o->profile);
    if (!pj) return dk_err_set(err, DK_ENOMEM, "out of memory");
    snprintf(m->profile_json, sizeof m->profile_json, "%s", pj);
    free(pj);
    memcpy(m->profile_spacing, o->profile.spacing, sizeof m->profile_spacing);
    m->temperature = o->temperature, m->passes = o->passes, m->input_noise = o->input_noise;
    m->seed = o->seed;
    pool_product(&pc->tcfg, pc->tcfg.levels - 1, pc->tmult);
    pool_product(&pc->scfg, pc->scfg.levels - 1, pc->smult);
    memcpy(m->student_multiple, pc->smult, sizeof pc->smult);
    /* m->created stays empty: a store's bytes depend on its inputs only. */
    return build_features(pc, err);
}

dk_precomputer *dk_precomputer_create(const dk_precompute_options *o, dk_err *err)
{
    dk_precomputer *pc = calloc(1, sizeof *pc);
    if (!pc) {
        dk_err_set(err, DK_ENOMEM, "out of memory");
        return NULL;
    }
    pc->opt = *o;
    dk_status st = DK_OK;
    if (!(o->temperature > 0 && o->temperature <= 100) || o->passes < 1 || o->passes > 1000 ||
        !(o->input_noise >= 0 && o->input_noise <= 10) || o->feature_count < 0 ||
        o->feature_count > DK_STORE_MAX_FEATURES)
        st = dk_err_set(err, DK_EINVAL,
                        "temperature %g (0..100], passes %d (1..1000), input noise %g [0, 10] or "
                        "%d feature layers out of range",
                        o->temperature, o->passes, o->input_noise, o->feature_count);
    if (!st) st = load_teacher(pc, err);
    if (!st) st = resolve_student(pc, err);
    if (!st) st = build_manifest(pc, err);
    if (st) {
        dk_precomputer_free(pc);
        return NULL;
    }
    return pc;
}

static void release_buffers(dk_precomputer *pc)
{
    dk_tensor_release(&pc->x);
    dk_tensor_release(&pc->noisy);
    free(pc->acc_soft);
    free(pc->acc_plain);
    pc->acc_soft = pc->acc_plain = NULL;
    for (int k = 0; k < DK_STORE_MAX_FEATURES; k++) {
        free(pc->feat_acc[k]);
        pc->feat_acc[k] = NULL;
    }
    memset(pc->planned, 0, sizeof pc->planned);
    pc->grid_voxels = 0;
}

void dk_precomputer_free(dk_precomputer *pc)
{
    if (!pc) return;
    release_buffers(pc);
    dk_unet_free(pc->teacher);
    for (int k = 0; k < DK_PRECOMPUTE_MAX_LANES - 1; k++)
        dk_unet_free(pc->twins[k]);
    free(pc);
}

const dk_store_manifest *dk_precomputer_manifest(const dk_precomputer *pc)
{
    return &pc->m;
}
void dk_precomputer_set_data_sha256(dk_precomputer *pc, const char *hex)
{
    snprintf(pc->m.data_sha256, sizeof pc->m.data_sha256, "%s", hex);
}

const dk_unet *dk_precomputer_teacher(const dk_precomputer *pc)
{
    return pc->teacher;
}

/* ---- one volume ---- */

static bool same_spacing(const double a[3], const double b[3])
{
    for (int i = 0; i < 3; i++)
        if (fabs(a[i] - b[i]) > 1e-3 * b[i]) return false;
    return true;
}

/* Per axis: area averaging where dst is coarser (or always, for probabilities),
 * linear interpolation where it is finer. */
static dk_status resample_grid(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                               int channels, bool always_area, dk_err *err)
{
    dk_taps taps[3] = {{0}};
    dk_status st = DK_OK;
    for (int a = 0; !st && a < 3; a++) {
        bool area = always_area || dst->spacing[a] > src->spacing[a] * (1 + 1e-9);
        st = (area ? dk_taps_area : dk_taps_linear)(src->dims[a], src->origin[a], src->spacing[a],
                                                    dst->dims[a], dst->origin[a], dst->spacing[a],
                                                    &taps[a], err);
    }
    if (!st) st = dk_resample_separable(src->dims, in, taps, out, channels, err);
    for (int a = 0; a < 3; a++)
        dk_taps_release(&taps[a]);
    return st;
}

/* The grid of tap `tap` for an input grid padded by `before` voxels to `padded`:
 * a pooled voxel covers `factor` input voxels, so its centre moves by (f-1)/2. */
static dk_grid tap_grid(const dk_unet_config *c, int tap, const dk_grid *in, const int before[3],
                        const int padded[3])
{
    dk_grid g;
    int ch, factor[3];
    dk_unet_tap_dims(c, tap, padded, &ch, g.dims);
    pool_product(c, tap, factor);
    for (int a = 0; a < 3; a++) {
        g.spacing[a] = in->spacing[a] * factor[a];
        g.origin[a] = in->origin[a] + (-before[a] + (factor[a] - 1) / 2.0) * in->spacing[a];
    }
    return g;
}

static void pad_dims(const int dims[3], const int mult[3], int padded[3], int before[3])
{
    for (int a = 0; a < 3; a++) {
        padded[a] = (dims[a] + mult[a] - 1) / mult[a] * mult[a];
        before[a] = (padded[a] - dims[a]) / 2;
    }
}

/* The largest divisor of the passes that is at most `most`. */
static int batch_dividing(int passes, int most)
{
    int b = most < passes ? most : passes;
    while (b > 1 && passes % b)
        b--;
    return b < 1 ? 1 : b;
}

/* Lanes for pass_lanes (0: auto, one per thread while the activations fit). */
static int lanes_wanted(const dk_precomputer *pc, size_t per_pass)
{
    const dk_precompute_options *o = &pc->opt;
    int lanes = o->pass_lanes;
    if (lanes < 1) {
        lanes = dk_blas_threads();
        size_t fit = DK_PRECOMPUTE_BATCH_BYTES / per_pass;
        if ((size_t)lanes > fit) lanes = fit > 0 ? (int)fit : 1;
    }
    if (lanes > DK_PRECOMPUTE_MAX_LANES) lanes = DK_PRECOMPUTE_MAX_LANES;
    if (lanes > o->passes) lanes = o->passes;
    return pc->batch > 1 || lanes < 1 ? 1 : lanes;
}

/* Copy k of the teacher for lane k + 1: the same architecture and weights, its own
 * activations, planned like the teacher. */
static dk_status plan_twin(dk_precomputer *pc, int k, const int padded[3], unsigned keep,
                           dk_err *err)
{
    if (!pc->twins[k]) {
        dk_err e;
        if (!(pc->twins[k] = dk_unet_create(&pc->tcfg, 0, &e))) return dk_err_forward(err, &e);
        const dk_params *from = dk_unet_params(pc->teacher), *to = dk_unet_params(pc->twins[k]);
        for (int i = 0; i < from->count; i++)
            memcpy(to->items[i]->value.data, from->items[i]->value.data,
                   dk_tensor_numel(&from->items[i]->value) * sizeof(float));
    }
    return dk_unet_plan_inference(pc->twins[k], 1, padded[0], padded[1], padded[2], keep, err);
}

/* Plan the teacher for inference (forward only, the feature taps kept) with as
 * many passes per forward as the options allow: pass_batch, or with 0 as many as
 * fit DK_PRECOMPUTE_BATCH_BYTES of activations and per-pass buffers. Batching
 * does not change a bit: each sample's forward is the same computation. Then a
 * copy of the teacher per lane past the first, for the passes side by side. */
static dk_status plan_teacher(dk_precomputer *pc, const int padded[3], dk_err *err)
{
    unsigned keep = 0;
    for (int k = 0; k < pc->m.feature_count; k++)
        keep |= 1u << pc->m.features[k].teacher_tap;
    int most = pc->opt.pass_batch;
    dk_status st =
        dk_unet_plan_inference(pc->teacher, 1, padded[0], padded[1], padded[2], keep, err);
    if (st) return st;
    size_t per_pass = dk_unet_activation_bytes(pc->teacher) +
                      sizeof(float) * padded[0] * padded[1] * padded[2]; /* noisy input */
    if (most < 1) most = (int)(DK_PRECOMPUTE_BATCH_BYTES / per_pass);
    pc->batch = batch_dividing(pc->opt.passes, most);
    if (pc->batch > 1)
        st = dk_unet_plan_inference(pc->teacher, pc->batch, padded[0], padded[1], padded[2], keep,
                                    err);
    pc->lanes = lanes_wanted(pc, per_pass);
    for (int k = 0; !st && k + 1 < pc->lanes; k++)
        st = plan_twin(pc, k, padded, keep, err);
    return st;
}

/* (Re)plan the teacher and the accumulators for a padded shape. */
static dk_status plan_for(dk_precomputer *pc, const int padded[3], size_t grid_voxels, dk_err *err)
{
    dk_status st;
    if (!memcmp(pc->planned, padded, sizeof pc->planned) && pc->grid_voxels == grid_voxels)
        return DK_OK;
    release_buffers(pc);
    int C = pc->tcfg.classes, b;
    st = plan_teacher(pc, padded, err);
    b = pc->batch > pc->lanes ? pc->batch : pc->lanes;
    if (!st) st = dk_tensor_alloc(&pc->x, 1, 1, padded[0], padded[1], padded[2], err);
    if (!st) st = dk_tensor_alloc(&pc->noisy, b, 1, padded[0], padded[1], padded[2], err);
    if (st) return st;
    pc->acc_soft = malloc(sizeof(float) * C * grid_voxels);
    pc->acc_plain = malloc(sizeof(float) * C * grid_voxels);
    bool ok = pc->acc_soft && pc->acc_plain;
    for (int k = 0; ok && k < pc->m.feature_count; k++) {
        int ch, dims[3];
        dk_unet_tap_dims(&pc->tcfg, pc->m.features[k].teacher_tap, padded, &ch, dims);
        ok = (pc->feat_acc[k] = malloc(sizeof(float) * ch * dims[0] * dims[1] * dims[2])) != NULL;
    }
    if (!ok)
        return dk_err_set(err, DK_ENOMEM, "no memory for the targets of a %dx%dx%d volume",
                          padded[0], padded[1], padded[2]);
    memcpy(pc->planned, padded, sizeof pc->planned);
    pc->grid_voxels = grid_voxels;
    return DK_OK;
}

/* x = the image, z-scored, edge-replicated into the padded shape. */
static void fill_padded(dk_tensor *x, const float *img, const int dims[3], const int before[3])
{
    for (int z = 0; z < x->d; z++) {
        int sz = z - before[0] < 0 ? 0 : z - before[0] >= dims[0] ? dims[0] - 1 : z - before[0];
        for (int y = 0; y < x->h; y++) {
            int sy = y - before[1] < 0 ? 0 : y - before[1] >= dims[1] ? dims[1] - 1 : y - before[1];
            const float *row = img + ((size_t)sz * dims[1] + sy) * dims[2];
            float *out = x->data + ((size_t)z * x->h + y) * x->w;
            for (int i = 0; i < x->w; i++) {
                int sx = i - before[2] < 0          ? 0
                         : i - before[2] >= dims[2] ? dims[2] - 1
                                                    : i - before[2];
                out[i] = row[sx];
            }
        }
    }
}

/* The volume on the teacher's training grid: as is when it already is, else resampled. */
static dk_status to_teacher_grid(const dk_precomputer *pc, const dk_volume *v, dk_grid *tg,
                                 float **img, dk_err *err)
{
    dk_grid g = dk_grid_of_volume(v);
    bool native = same_spacing(v->spacing, pc->m.teacher_spacing);
    *tg = native ? g : dk_grid_respaced(&g, pc->m.teacher_spacing);
    *img = malloc(sizeof(float) * dk_grid_voxels(tg));
    if (!*img) return dk_err_set(err, DK_ENOMEM, "no memory for volume '%s'", v->id);
    if (native) {
        memcpy(*img, v->image, sizeof(float) * dk_grid_voxels(tg));
        return DK_OK;
    }
    return resample_grid(&g, v->image, tg, *img, 1, false, err);
}

/* The input the site would have acquired; a volume already at the profile's
 * spacing is a site's own scan and is served as it is. */
static dk_status site_input(const dk_precomputer *pc, const dk_volume *v, dk_targets *t,
                            dk_err *err)
{
    dk_status st;
    const dk_profile *pr = &pc->opt.profile;
    if (!same_spacing(v->spacing, pr->spacing))
        return dk_acquire(v, pr, t->info.acquire_seed, pc->m.classes.count, &t->input, err);
    if ((st = dk_volume_alloc(&t->input, v->id, v->dims, v->label != NULL, err))) return st;
    size_t n = dk_volume_voxels(v);
    memcpy(t->input.image, v->image, n * sizeof(float));
    if (v->label) memcpy(t->input.label, v->label, n);
    snprintf(t->input.split, sizeof t->input.split, "%s", v->split);
    memcpy(t->input.spacing, v->spacing, sizeof v->spacing);
    memcpy(t->input.origin, v->origin, sizeof v->origin);
    return DK_OK;
}

/* The largest float16 value <= v (v in [1, 65504)): ln C stored as float16 must
 * not round above ln C. */
static float half_floor(double v)
{
    double step = ldexp(1.0, ilogb(v) - 10);
    return (float)(floor(v / step) * step);
}

/* Entropy (nats) of the class distribution at each voxel, clamped to [0, ln C]
 * (to ln C rounded down to float16, so the stored maximum stays within ln C). */
static void entropy_map(const float *prob, int classes, size_t voxels, float *out)
{
    float top = half_floor(log((double)classes));
    for (size_t i = 0; i < voxels; i++) {
        double h = 0;
        for (int c = 0; c < classes; c++) {
            double p = prob[(size_t)c * voxels + i];
            if (p > 0) h -= p * log(p);
        }
        out[i] = h < 0 ? 0 : h > top ? top : (float)h;
    }
}

static dk_status student_fits(const dk_precomputer *pc, const dk_volume *v, const dk_grid *pg,
                              dk_err *err)
{
    static const char axis[3] = {'z', 'y', 'x'};
    for (int a = 0; a < 3; a++)
        if (pc->smult[a] > pg->dims[a])
            return dk_err_set(err, DK_EMISMATCH,
                              "volume '%s' at profile '%s' is %d voxels along %c, fewer than the "
                              "student's pooling product %d there: its bottleneck would be mostly "
                              "padding (pool less along %c)",
                              v->id, pc->m.profile, pg->dims[a], axis[a], pc->smult[a], axis[a]);
    return DK_OK;
}

static dk_status targets_alloc(const dk_precomputer *pc, dk_targets *t, size_t pv, dk_err *err)
{
    t->response = malloc(sizeof(float) * pc->m.classes.count * pv);
    t->uncertainty = malloc(sizeof(float) * pv);
    bool ok = t->response && t->uncertainty;
    for (int k = 0; ok && k < pc->m.feature_count; k++)
        ok = (t->features[k] = malloc(sizeof(float) * pc->m.features[k].channels *
                                      dk_grid_voxels(&t->info.feature_grid[k]))) != NULL;
    return ok ? DK_OK : dk_err_set(err, DK_ENOMEM, "no memory for the targets of '%s'", t->info.id);
}

static dk_status profile_targets(dk_precomputer *pc, const dk_grid *tg, const int before[3],
                                 dk_targets *t, dk_err *err)
{
    dk_status st;
    const dk_grid *pg = &t->info.grid;
    size_t pv = dk_grid_voxels(pg);
    int C = pc->m.classes.count, spad[3], sbefore[3];
    pad_dims(pg->dims, pc->smult, spad, sbefore);
    for (int k = 0; k < pc->m.feature_count; k++)
        t->info.feature_grid[k] =
            tap_grid(&pc->scfg, pc->m.features[k].student_tap, pg, sbefore, spad);
    if ((st = targets_alloc(pc, t, pv, err))) return st;
    /* The plain mean on the profile grid, for the entropy: its own buffer, as a profile
     * finer than the teacher's grid has more voxels than the accumulators hold. */
    float *plain = malloc(sizeof(float) * (size_t)C * pv);
    if (!plain) return dk_err_set(err, DK_ENOMEM, "no memory for the targets of '%s'", t->info.id);
    st = resample_grid(tg, pc->acc_soft, pg, t->response, C, true, err);
    if (!st) st = resample_grid(tg, pc->acc_plain, pg, plain, C, true, err);
    if (!st) entropy_map(plain, C, pv, t->uncertainty);
    free(plain);
    if (st) return st;
    for (int k = 0; k < pc->m.feature_count; k++) {
        const dk_store_feature *f = &pc->m.features[k];
        dk_grid src = tap_grid(&pc->tcfg, f->teacher_tap, tg, before, pc->planned);
        if ((st = resample_grid(&src, pc->feat_acc[k], &t->info.feature_grid[k], t->features[k],
                                f->channels, false, err)))
            return st;
    }
    return DK_OK;
}

/* After the passes: the profile's targets (from the accumulators) and the site's
 * input (from the volume) depend on neither each other nor the thread count, so
 * they run side by side, one thread each (single-threaded, they were 0.05 s each
 * of a volume while a core stood idle). They write different fields of out. */
typedef struct finish_job {
    dk_precomputer *pc;
    const dk_volume *v;
    const dk_grid *tg;
    const int *before;
    dk_targets *out;
    dk_status st[2];
    dk_err err[2];
} finish_job;

static void finish_worker(void *arg, int t, int nthreads)
{
    finish_job *j = arg;
    for (int k = t; k < 2; k += nthreads)
        j->st[k] = k == 0 ? profile_targets(j->pc, j->tg, j->before, j->out, &j->err[0])
                          : site_input(j->pc, j->v, j->out, &j->err[1]);
}

static dk_status finish_volume(dk_precomputer *pc, const dk_volume *v, const dk_grid *tg,
                               const int before[3], dk_targets *out, dk_err *err)
{
    finish_job j = {.pc = pc, .v = v, .tg = tg, .before = before, .out = out};
    dk_parallel_run(dk_unet_pool(pc->teacher), dk_parallel_threads(2, 1, 2), finish_worker, &j);
    for (int k = 0; k < 2; k++)
        if (j.st[k]) {
            dk_err_forward(err, &j.err[k]);
            return j.st[k];
        }
    return DK_OK;
}

dk_status dk_precompute_volume(dk_precomputer *pc, const dk_volume *v, int index, dk_targets *out,
                               dk_err *err)
{
    memset(out, 0, sizeof *out);
    dk_store_sample_info *info = &out->info;
    snprintf(info->id, sizeof info->id, "%s", v->id);
    snprintf(info->split, sizeof info->split, "%s", v->split);
    info->index = index;
    info->noise_seed = dk_precompute_sample_seed(pc->opt.seed, v->id, 1);
    info->acquire_seed = dk_precompute_sample_seed(pc->opt.seed, v->id, 2);
    dk_grid g = dk_grid_of_volume(v), tg;
    info->grid = dk_grid_respaced(&g, pc->opt.profile.spacing);
    float *img = NULL;
    int padded[3], before[3];
    dk_status st = student_fits(pc, v, &info->grid, err);
    if (!st) st = to_teacher_grid(pc, v, &tg, &img, err);
    if (!st) {
        dk_teacher_normalise(img, dk_grid_voxels(&tg));
        pad_dims(tg.dims, pc->tmult, padded, before);
        st = plan_for(pc, padded, dk_grid_voxels(&tg), err);
    }
    if (!st) {
        fill_padded(&pc->x, img, tg.dims, before);
        dk_precompute_passes(pc, info->noise_seed, tg.dims, before);
        st = finish_volume(pc, v, &tg, before, out, err);
    }
    free(img);
    if (!st && memcmp(out->input.dims, info->grid.dims, sizeof info->grid.dims))
        st = dk_err_set(err, DK_EMISMATCH,
                        "the acquired input's grid differs from the profile grid");
    if (st) {
        dk_err_prefix(err, st, "volume '%s'", v->id);
        dk_targets_release(out);
    }
    return st;
}

void dk_targets_release(dk_targets *t)
{
    dk_volume_release(&t->input);
    free(t->response);
    free(t->uncertainty);
    for (int k = 0; k < DK_STORE_MAX_FEATURES; k++)
        free(t->features[k]);
    memset(t, 0, sizeof *t);
}
