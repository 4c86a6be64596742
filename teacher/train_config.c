/* train_config.c: the teacher's training config: defaults (the same values as
 * teacher/default_teacher.json), JSON parsing with field-named errors, validation
 * and serialisation for the run record. The training loop lives in train.c. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "teacher/train.h"

/* Appearance augmentation (teacher/augment.h; docs/teacher.md, "Augmentation"): the
 * ranges span the repository's DESS and the clinical PD-fs and T1 sites of the synthetic
 * generator (tissue levels within about +-1.5 sd of the volume) and slices up to 6.5x the
 * repository's 0.7 mm (4.5 mm). */
#define DEFAULT_APPEARANCE                                                                   \
    {.gamma_p = 0, .gamma_range = {0.7f, 1.5f}, .label_intensity_p = 0,                       \
     .label_intensity_range = 1.5f, .invert_p = 0, .thick_slices_p = 0,                       \
     .thick_slices_max = 6.5f}

dk_teacher_config dk_teacher_config_default(void)
{
    dk_teacher_config c = {
        .network = dk_unet_config_default(1, 2),
        .patch = {16, 128, 128},
        .batch = 2,
        .steps = 240,
        .steps_per_epoch = 80,
        .checkpoint_every = 40,
        .optim = dk_optim_defaults(DK_OPTIM_ADAM, 3e-3f),
        .poly_power = 0.9f,
        .dice_weight = 0.5f,
        .ce_weight = 0.5f,
        /* background out of the Dice mean (as nnU-Net): with it in, a thin class could
         * stay merged into its bone for the whole run (seed 2: tibial cartilage 0.02) */
        .dice_include_background = false,
        .foreground_fraction = 0.667f,
        .augment = {.flip = {0.0f, 0.0f, 0.5f},
                    .rotate_degrees = 10.0f,
                    .intensity_scale = 0.1f,
                    .intensity_shift = 0.1f,
                    .appearance = DEFAULT_APPEARANCE},
        .validation_overlap = 0.0f,
        .validation_max_volumes = 0,
    };
    /* Five levels and 128 x 128 in-plane patches (46 mm at 0.36 mm): telling femur
     * from tibia (and either from the equally grey background) needs context that
     * reaches a joint line or a bone edge; 4 levels on 64 x 64 patches left the bones
     * at Dice ~0.6 (docs/teacher.md, "Default config"). */
    c.network.levels = 5;
    c.network.base_width = 8;
    c.network.leaky_slope = 0.01f;
    /* the repository's slices are twice as thick as its pixels, and a patch is thin
     * in z (16 slices, 11 mm): pool in-plane only at the first two levels (pooling z
     * from level 1 on lost tibial cartilage in a trial: docs/teacher.md) */
    c.network.pool[0][0] = c.network.pool[1][0] = 1;
    return c;
}

/* ---- reading: a parse context that knows the path of the object it reads ---- */

typedef struct reader {
    json_t *obj;
    const char *path; /* "" at the root, "optimizer." inside optimizer */
    dk_err *err;
    const char *name; /* "teacher config", "student config": the head of every message */
} reader;

static dk_status check_keys(const reader *r, const char *const *known, size_t count)
{
    const char *key;
    json_t *value;
    json_object_foreach(r->obj, key, value)
    {
        bool found = false;
        for (size_t i = 0; i < count; i++)
            found |= strcmp(key, known[i]) == 0;
        if (!found)
            return dk_err_set(r->err, DK_EINVAL, "%s: unknown field '%s%s'", r->name,
                              r->path, key);
    }
    return DK_OK;
}

static dk_status bad(const reader *r, const char *key, const char *expected)
{
    return dk_err_set(r->err, DK_EINVAL, "%s: field '%s%s': expected %s", r->name, r->path, key,
                      expected);
}

static dk_status get_long(const reader *r, const char *key, long lo, long hi, long *out)
{
    json_t *v = json_object_get(r->obj, key);
    if (!v) return DK_OK;
    char what[96];
    snprintf(what, sizeof what, "an integer in %ld..%ld", lo, hi);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(r, key, what);
    *out = (long)json_integer_value(v);
    return DK_OK;
}

static dk_status get_int(const reader *r, const char *key, int lo, int hi, int *out)
{
    dk_status st;
    long v = *out;
    if ((st = get_long(r, key, lo, hi, &v))) return st;
    *out = (int)v;
    return DK_OK;
}

static dk_status get_float(const reader *r, const char *key, double lo, double hi, float *out)
{
    json_t *v = json_object_get(r->obj, key);
    if (!v) return DK_OK;
    char what[96];
    snprintf(what, sizeof what, "a number in [%g, %g]", lo, hi);
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return bad(r, key, what);
    *out = (float)json_number_value(v);
    return DK_OK;
}

static dk_status get_bool(const reader *r, const char *key, bool *out)
{
    json_t *v = json_object_get(r->obj, key);
    if (!v) return DK_OK;
    if (!json_is_boolean(v)) return bad(r, key, "true or false");
    *out = json_is_true(v);
    return DK_OK;
}

/* A list of `count` numbers, each checked into [lo, hi]. */
static dk_status get_numbers(const reader *r, const char *key, int count, double lo, double hi,
                             double *out)
{
    json_t *v = json_object_get(r->obj, key);
    if (!v) return DK_OK;
    char what[96];
    snprintf(what, sizeof what, "a list of %d numbers in [%g, %g]", count, lo, hi);
    if (!json_is_array(v) || (int)json_array_size(v) != count) return bad(r, key, what);
    for (int i = 0; i < count; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e) || !(json_number_value(e) >= lo && json_number_value(e) <= hi))
            return bad(r, key, what);
        out[i] = json_number_value(e);
    }
    return DK_OK;
}

static dk_status get_triple(const reader *r, const char *key, int lo, int hi, int out[3])
{
    json_t *v = json_object_get(r->obj, key);
    if (!v) return DK_OK;
    char what[96];
    snprintf(what, sizeof what, "a list of 3 integers [z, y, x] in %d..%d", lo, hi);
    if (!json_is_array(v) || json_array_size(v) != 3) return bad(r, key, what);
    for (int a = 0; a < 3; a++) {
        json_t *e = json_array_get(v, (size_t)a);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
            return bad(r, key, what);
        out[a] = (int)json_integer_value(e);
    }
    return DK_OK;
}

/* A sub-object ("optimizer"); absent is fine (all defaults). */
static dk_status sub(const reader *r, const char *key, char *path, size_t cap, reader *out,
                     bool *present)
{
    json_t *v = json_object_get(r->obj, key);
    *present = v != NULL;
    snprintf(path, cap, "%s%s.", r->path, key);
    *out = (reader){v, path, r->err, r->name};
    if (v && !json_is_object(v)) return bad(r, key, "an object");
    return DK_OK;
}

static dk_status get_triples(const reader *r, const char *key, int count, int lo, int hi,
                             int out[][3])
{
    json_t *v = json_object_get(r->obj, key);
    if (!v) return DK_OK;
    char what[128];
    snprintf(what, sizeof what, "a list of %d [z, y, x] triples of integers in %d..%d", count, lo,
             hi);
    if (!json_is_array(v) || (int)json_array_size(v) != count) return bad(r, key, what);
    for (int l = 0; l < count; l++) {
        json_t *t = json_array_get(v, (size_t)l);
        if (!json_is_array(t) || json_array_size(t) != 3) return bad(r, key, what);
        for (int a = 0; a < 3; a++) {
            json_t *e = json_array_get(t, (size_t)a);
            if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
                return bad(r, key, what);
            out[l][a] = (int)json_integer_value(e);
        }
    }
    return DK_OK;
}

static dk_status read_network(const reader *parent, dk_unet_config *n)
{
    dk_status st;
    static const char *const known[] = {"levels", "base_width",  "pool",    "kernel",
                                        "norm",   "leaky_slope", "norm_eps"};
    char path[64];
    reader r;
    bool present;
    if ((st = sub(parent, "network", path, sizeof path, &r, &present)) || !present) return st;
    if ((st = check_keys(&r, known, sizeof known / sizeof *known)) ||
        (st = get_int(&r, "levels", 2, DK_UNET_MAX_LEVELS, &n->levels)) ||
        (st = get_int(&r, "base_width", 1, 256, &n->base_width)) ||
        (st = get_triples(&r, "pool", n->levels - 1, 1, 4, n->pool)) ||
        (st = get_triples(&r, "kernel", n->levels, 1, 7, n->kernel)) ||
        (st = get_float(&r, "leaky_slope", 0, 0.99, &n->leaky_slope)) ||
        (st = get_float(&r, "norm_eps", 1e-12, 0.1, &n->norm_eps)))
        return st;
    json_t *norm = json_object_get(r.obj, "norm");
    if (norm) {
        const char *s = json_string_value(norm);
        if (!s || (strcmp(s, "instance") && strcmp(s, "none")))
            return bad(&r, "norm", "\"instance\" or \"none\"");
        n->norm = strcmp(s, "instance") == 0 ? DK_NORM_INSTANCE : DK_NORM_NONE;
    }
    return DK_OK;
}

static dk_status read_optimizer(const reader *parent, dk_teacher_config *c)
{
    dk_status st;
    static const char *const known[] = {"kind",     "lr",    "weight_decay", "momentum",
                                        "nesterov", "betas", "eps",          "poly_power"};
    char path[64];
    reader r;
    bool present;
    if ((st = sub(parent, "optimizer", path, sizeof path, &r, &present)) || !present) return st;
    if ((st = check_keys(&r, known, sizeof known / sizeof *known))) return st;
    json_t *kind = json_object_get(r.obj, "kind");
    if (kind) {
        int k = json_is_string(kind) ? dk_optim_kind_parse(json_string_value(kind)) : -1;
        if (k < 0) return bad(&r, "kind", "\"adam\", \"adamw\" or \"sgd\"");
        /* a new kind brings its own defaults; the fields below override them */
        c->optim = dk_optim_defaults((dk_optim_kind)k, c->optim.lr);
    }
    double betas[2] = {c->optim.beta1, c->optim.beta2};
    if ((st = get_float(&r, "lr", 0, 10, &c->optim.lr)) ||
        (st = get_float(&r, "weight_decay", 0, 1, &c->optim.weight_decay)) ||
        (st = get_float(&r, "momentum", 0, 0.999, &c->optim.momentum)) ||
        (st = get_bool(&r, "nesterov", &c->optim.nesterov)) ||
        (st = get_numbers(&r, "betas", 2, 0, 0.99999, betas)) ||
        (st = get_float(&r, "eps", 1e-12, 1, &c->optim.eps)) ||
        (st = get_float(&r, "poly_power", 0, 10, &c->poly_power)))
        return st;
    c->optim.beta1 = (float)betas[0];
    c->optim.beta2 = (float)betas[1];
    return DK_OK;
}

static dk_status read_appearance(const reader *r, dk_appearance_config *a)
{
    dk_status st;
    double gamma[2] = {a->gamma_range[0], a->gamma_range[1]};
    if ((st = get_float(r, "gamma_p", 0, 1, &a->gamma_p)) ||
        (st = get_numbers(r, "gamma_range", 2, 0.1, 10, gamma)) ||
        (st = get_float(r, "label_intensity_p", 0, 1, &a->label_intensity_p)) ||
        (st = get_float(r, "label_intensity_range", 0, 10, &a->label_intensity_range)) ||
        (st = get_float(r, "invert_p", 0, 1, &a->invert_p)) ||
        (st = get_float(r, "thick_slices_p", 0, 1, &a->thick_slices_p)) ||
        (st = get_float(r, "thick_slices_max", 1.5, 64, &a->thick_slices_max)))
        return st;
    if (gamma[0] > gamma[1]) return bad(r, "gamma_range", "[lo, hi] with lo <= hi");
    a->gamma_range[0] = (float)gamma[0];
    a->gamma_range[1] = (float)gamma[1];
    return DK_OK;
}

static dk_status read_small_sections(const reader *parent, dk_teacher_config *c)
{
    dk_status st;
    static const char *const loss_keys[] = {"dice", "ce", "dice_include_background"};
    static const char *const aug_keys[] = {
        "flip",     "rotate_degrees",    "intensity_scale",       "intensity_shift",
        "gamma_p",  "gamma_range",       "label_intensity_p",     "label_intensity_range",
        "invert_p", "thick_slices_p",    "thick_slices_max"};
    static const char *const val_keys[] = {"overlap", "max_volumes"};
    char path[64];
    reader r;
    bool present;
    if ((st = sub(parent, "loss", path, sizeof path, &r, &present))) return st;
    if (present && ((st = check_keys(&r, loss_keys, 3)) ||
                    (st = get_float(&r, "dice", 0, 100, &c->dice_weight)) ||
                    (st = get_float(&r, "ce", 0, 100, &c->ce_weight)) ||
                    (st = get_bool(&r, "dice_include_background", &c->dice_include_background))))
        return st;
    if ((st = sub(parent, "augment", path, sizeof path, &r, &present))) return st;
    double flip[3] = {c->augment.flip[0], c->augment.flip[1], c->augment.flip[2]};
    if (present &&
        ((st = check_keys(&r, aug_keys, sizeof aug_keys / sizeof *aug_keys)) ||
         (st = get_numbers(&r, "flip", 3, 0, 1, flip)) ||
         (st = get_float(&r, "rotate_degrees", 0, 180, &c->augment.rotate_degrees)) ||
         (st = get_float(&r, "intensity_scale", 0, 0.9, &c->augment.intensity_scale)) ||
         (st = get_float(&r, "intensity_shift", 0, 10, &c->augment.intensity_shift)) ||
         (st = read_appearance(&r, &c->augment.appearance))))
        return st;
    for (int a = 0; a < 3; a++)
        c->augment.flip[a] = (float)flip[a];
    if ((st = sub(parent, "validation", path, sizeof path, &r, &present))) return st;
    if (present && ((st = check_keys(&r, val_keys, 2)) ||
                    (st = get_float(&r, "overlap", 0, 0.875, &c->validation_overlap)) ||
                    (st = get_int(&r, "max_volumes", 0, 100000, &c->validation_max_volumes))))
        return st;
    return DK_OK;
}

static dk_status read_root(json_t *root, const char *name, dk_teacher_config *c, dk_err *err)
{
    dk_status st;
    static const char *const known[] = {"network",
                                        "patch",
                                        "batch",
                                        "steps",
                                        "steps_per_epoch",
                                        "checkpoint_every",
                                        "optimizer",
                                        "loss",
                                        "foreground_fraction",
                                        "augment",
                                        "validation"};
    reader r = {root, "", err, name};
    if ((st = check_keys(&r, known, sizeof known / sizeof *known)) ||
        (st = read_network(&r, &c->network)) || (st = get_triple(&r, "patch", 1, 1024, c->patch)) ||
        (st = get_int(&r, "batch", 1, 256, &c->batch)) ||
        (st = get_long(&r, "steps", 1, 100000000, &c->steps)) ||
        (st = get_long(&r, "steps_per_epoch", 1, 100000000, &c->steps_per_epoch)) ||
        (st = get_long(&r, "checkpoint_every", 0, 100000000, &c->checkpoint_every)) ||
        (st = read_optimizer(&r, c)) ||
        (st = get_float(&r, "foreground_fraction", 0, 1, &c->foreground_fraction)) ||
        (st = read_small_sections(&r, c)))
        return st;
    return DK_OK;
}

dk_status dk_train_config_validate(const dk_teacher_config *c, const char *name, dk_err *err)
{
    dk_unet_config n = c->network;
    if (n.classes < 2) n.classes = 2;
    dk_status st = dk_unet_config_validate(&n, err);
    if (st) return dk_err_prefix(err, st, "%s: network", name);
    for (int a = 0; a < 3; a++) {
        int product = 1;
        for (int l = 0; l + 1 < n.levels; l++)
            product *= n.pool[l][a];
        if (c->patch[a] < 1 || c->patch[a] % product != 0)
            return dk_err_set(err, DK_EINVAL,
                              "%s: field 'patch': %s size %d must be a multiple of "
                              "%d (the network's pooling product along that axis)",
                              name, a == 0   ? "z"
                                    : a == 1 ? "y"
                                             : "x",
                              c->patch[a], product);
    }
    if (c->dice_weight + c->ce_weight <= 0)
        return dk_err_set(err, DK_EINVAL,
                          "%s: fields 'loss.dice' and 'loss.ce' are both 0: nothing to train on",
                          name);
    if (c->steps < 1 || c->steps_per_epoch < 1 || c->batch < 1)
        return dk_err_set(err, DK_EINVAL, "%s: steps, steps_per_epoch and batch must be >= 1",
                          name);
    return DK_OK;
}

dk_status dk_teacher_config_validate(const dk_teacher_config *c, dk_err *err)
{
    return dk_train_config_validate(c, "teacher config", err);
}

dk_status dk_teacher_config_from_json(const char *text, dk_teacher_config *c, dk_err *err)
{
    *c = dk_teacher_config_default();
    return dk_train_config_parse(text, "teacher config", c, err);
}

dk_status dk_train_config_parse(const char *text, const char *name, dk_teacher_config *c,
                                dk_err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dk_err_set(err, DK_EFORMAT, "%s: not valid JSON (line %d, column %d: %s)", name,
                          jerr.line, jerr.column, jerr.text);
    dk_status st = json_is_object(root)
                       ? read_root(root, name, c, err)
                       : dk_err_set(err, DK_EFORMAT, "%s: expected a JSON object", name);
    json_decref(root);
    return st ? st : dk_train_config_validate(c, name, err);
}

/* ---- writing ---- */

/* The shortest decimal that reads back as the same float ("0.01", not
 * "0.00999999978"), so the JSON is what a person would write. */
static double tidy(float f)
{
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static json_t *triple_json(const int v[3])
{
    return json_pack("[iii]", v[0], v[1], v[2]);
}

static json_t *network_json(const dk_unet_config *n)
{
    json_t *pool = json_array(), *kernel = json_array();
    for (int l = 0; l < n->levels; l++) {
        if (l + 1 < n->levels) json_array_append_new(pool, triple_json(n->pool[l]));
        json_array_append_new(kernel, triple_json(n->kernel[l]));
    }
    return json_pack("{s:i, s:i, s:o, s:o, s:s, s:f, s:f}", "levels", n->levels, "base_width",
                     n->base_width, "pool", pool, "kernel", kernel, "norm",
                     n->norm == DK_NORM_INSTANCE ? "instance" : "none", "leaky_slope",
                     tidy(n->leaky_slope), "norm_eps", tidy(n->norm_eps));
}

static json_t *optimizer_json(const dk_teacher_config *c)
{
    const dk_optim_config *o = &c->optim;
    return json_pack("{s:s, s:f, s:f, s:f, s:b, s:[ff], s:f, s:f}", "kind",
                     dk_optim_kind_name(o->kind), "lr", tidy(o->lr), "weight_decay",
                     tidy(o->weight_decay), "momentum", tidy(o->momentum), "nesterov", o->nesterov,
                     "betas", tidy(o->beta1), tidy(o->beta2), "eps", tidy(o->eps), "poly_power",
                     tidy(c->poly_power));
}

static json_t *augment_json(const dk_augment_config *a)
{
    const dk_appearance_config *p = &a->appearance;
    return json_pack("{s:[fff], s:f, s:f, s:f, s:f, s:[ff], s:f, s:f, s:f, s:f, s:f}", "flip",
                     tidy(a->flip[0]), tidy(a->flip[1]), tidy(a->flip[2]), "rotate_degrees",
                     tidy(a->rotate_degrees), "intensity_scale", tidy(a->intensity_scale),
                     "intensity_shift", tidy(a->intensity_shift), "gamma_p", tidy(p->gamma_p),
                     "gamma_range", tidy(p->gamma_range[0]), tidy(p->gamma_range[1]),
                     "label_intensity_p", tidy(p->label_intensity_p), "label_intensity_range",
                     tidy(p->label_intensity_range), "invert_p", tidy(p->invert_p),
                     "thick_slices_p", tidy(p->thick_slices_p), "thick_slices_max",
                     tidy(p->thick_slices_max));
}

char *dk_teacher_config_to_json(const dk_teacher_config *c)
{
    const dk_augment_config *a = &c->augment;
    json_t *root = json_pack(
        "{s:o, s:o, s:i, s:I, s:I, s:I, s:o, s:{s:f, s:f, s:b}, s:f, "
        "s:o, s:{s:f, s:i}}",
        "network", network_json(&c->network), "patch", triple_json(c->patch), "batch", c->batch,
        "steps", (json_int_t)c->steps, "steps_per_epoch", (json_int_t)c->steps_per_epoch,
        "checkpoint_every", (json_int_t)c->checkpoint_every, "optimizer", optimizer_json(c), "loss",
        "dice", tidy(c->dice_weight), "ce", tidy(c->ce_weight), "dice_include_background",
        c->dice_include_background, "foreground_fraction", tidy(c->foreground_fraction), "augment",
        augment_json(a), "validation", "overlap", tidy(c->validation_overlap),
        "max_volumes", c->validation_max_volumes);
    if (!root) return NULL;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    return text;
}
