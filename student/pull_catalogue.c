/* pull_catalogue.c: the server's model card, profile entry and catalogue as a
 * manifest and sample entries, checked (pull_catalogue.h). */
#include "student/pull_catalogue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/npy.h"
#include "datasets/profile.h"
#include "datasets/volume.h"
#include "distill/unet.h"

#define MAX_DIM 8192

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool doubles(const json_t *a, double out[3], bool positive)
{
    if (json_array_size(a) != 3) return false;
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v)) return false;
        out[i] = json_number_value(v);
        if (!isfinite(out[i]) || (positive && !(out[i] > 0))) return false;
    }
    return true;
}

/* An architecture (JSON object) parsed into cfg and written back as the text
 * dk_unet_config_to_json makes, as precompute and the trainer write theirs: the
 * server prints reals with 7 digits, so a float field (leaky_slope) would
 * otherwise differ in its last bits from the store's and the trainer's text. */
static dk_status canonical_arch(const json_t *v, const char *field, const char *where,
                                dk_unet_config *cfg, char *out, size_t cap, dk_err *err)
{
    char *text = json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
    dk_status st = text ? dk_unet_config_from_json(text, cfg, err)
                        : dk_err_set(err, DK_EFORMAT, "no architecture object");
    free(text);
    char *canonical = st ? NULL : dk_unet_config_to_json(cfg);
    if (!st && (!canonical || strlen(canonical) >= cap))
        st = dk_err_set(err, DK_ELIMIT, "the architecture's JSON is over %zu bytes", cap);
    if (!st) snprintf(out, cap, "%s", canonical);
    free(canonical);
    return st ? dk_err_prefix(err, st, "%s: field '%s'", where, field) : DK_OK;
}

/* The profile in the text dk_profile_to_json makes (as precompute writes it). */
static dk_status canonical_profile(const json_t *v, const char *where, char *out, size_t cap,
                                   dk_err *err)
{
    char *text = json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
    dk_profile p;
    dk_status st = text ? dk_profile_from_json_text(text, "profile", &p, err)
                        : dk_err_set(err, DK_EFORMAT, "no profile object");
    free(text);
    char *canonical = st ? NULL : dk_profile_to_json(&p);
    if (!st && (!canonical || strlen(canonical) >= cap))
        st = dk_err_set(err, DK_ELIMIT, "the profile's JSON is over %zu bytes", cap);
    if (!st) snprintf(out, cap, "%s", canonical);
    free(canonical);
    return st ? dk_err_prefix(err, st, "%s", where) : DK_OK;
}

/* Tap index of "bottleneck" or "decK" in c; -1 when c has no such tap (as precompute). */
static int tap_of(const dk_unet_config *c, const char *layer)
{
    if (!strcmp(layer, "bottleneck")) return c->levels - 1;
    char *end;
    if (strncmp(layer, "dec", 3) || !layer[3]) return -1;
    long k = strtol(layer + 3, &end, 10);
    return *end || k < 0 || k >= c->levels - 1 ? -1 : (int)k;
}

static dk_status classes_of(const json_t *list, dk_classes *c, const char *where, dk_err *err)
{
    size_t n = json_array_size(list);
    if (n < 2 || n > DK_MAX_CLASSES)
        return dk_err_set(err, DK_EFORMAT, "%s: 'classes' must list 2..%d names", where,
                          DK_MAX_CLASSES);
    c->count = (int)n;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(list, i));
        if (!name || !*name || strlen(name) >= sizeof c->names[0])
            return dk_err_set(err, DK_EFORMAT, "%s: class %zu is not a name of 1..31 bytes", where,
                              i);
        snprintf(c->names[i], sizeof c->names[i], "%s", name);
    }
    return DK_OK;
}

static dk_status feature_of(const json_t *f, const dk_unet_config *s, const dk_unet_config *t,
                            const double profile_spacing[3], const char *where,
                            dk_store_feature *out, dk_err *err)
{
    const char *layer = json_string_value(json_object_get(f, "layer"));
    json_t *ch = json_object_get(f, "channels"), *sch = json_object_get(f, "student_channels");
    if (!layer || strlen(layer) >= sizeof out->layer || !dk_volume_id_valid(layer) ||
        !json_is_integer(ch) || !json_is_integer(sch) || json_integer_value(ch) < 1 ||
        json_integer_value(ch) > 4096 ||
        !doubles(json_object_get(f, "spacing"), out->spacing, true))
        return dk_err_set(err, DK_EFORMAT,
                          "%s: a feature layer lacks a layer name, channels, "
                          "student_channels or spacing",
                          where);
    snprintf(out->layer, sizeof out->layer, "%s", layer);
    out->channels = (int)json_integer_value(ch);
    out->student_channels = (int)json_integer_value(sch);
    out->student_tap = tap_of(s, layer);
    out->teacher_tap = tap_of(t, layer);
    int one[3] = {1, 1, 1}, dims[3], channels = 0, teacher_channels = 0;
    if (out->student_tap >= 0) dk_unet_tap_dims(s, out->student_tap, one, &channels, dims);
    if (out->teacher_tap >= 0) dk_unet_tap_dims(t, out->teacher_tap, one, &teacher_channels, dims);
    if (out->student_tap < 0 || channels != out->student_channels || out->teacher_tap < 0 ||
        teacher_channels != out->channels)
        return dk_err_set(err, DK_EMISMATCH,
                          "%s: feature layer '%s' (%d channels, %d student channels) is not a "
                          "tap of the teacher and student architectures named",
                          where, layer, out->channels, out->student_channels);
    for (int a = 0; a < 3; a++) { /* as precompute: the profile's grid below the pooling */
        double spacing = profile_spacing[a];
        for (int l = 0; l < out->student_tap; l++)
            spacing *= s->pool[l][a];
        if (fabs(spacing - out->spacing[a]) > 1e-6 * spacing)
            return dk_err_set(err, DK_EMISMATCH,
                              "%s: feature layer '%s' has spacing %g along axis %d; the profile "
                              "and the student's pooling make it %g",
                              where, layer, out->spacing[a], a, spacing);
        out->spacing[a] = spacing;
    }
    return DK_OK;
}

static dk_status from_json(json_t *card, json_t *e, const char *where, dk_store_manifest *m,
                           dk_err *err)
{
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *tsha = json_string_value(json_object_get(e, "teacher_sha256"));
    const char *created = json_string_value(json_object_get(e, "created"));
    json_t *T = json_object_get(e, "temperature"), *passes = json_object_get(e, "passes");
    json_t *feats = json_object_get(e, "feature_layers"),
           *sarch = json_object_get(e, "student_architecture");
    if (!name || !dk_volume_id_valid(name) || !is_hex64(tsha) || !json_is_number(T) ||
        !(json_number_value(T) > 0 && json_number_value(T) <= 100) || !json_is_integer(passes) ||
        !json_is_array(feats) || json_array_size(feats) > DK_STORE_MAX_FEATURES ||
        !doubles(json_object_get(e, "spacing"), m->profile_spacing, true))
        return dk_err_set(err, DK_EFORMAT,
                          "%s: the profile entry lacks a valid name, "
                          "teacher_sha256, temperature (0, 100], passes, spacing or "
                          "feature_layers (at most %d)",
                          where, DK_STORE_MAX_FEATURES);
    if (!sarch)
        return dk_err_set(err, DK_EFORMAT,
                          "%s: profile '%s' does not say which student architecture its targets "
                          "were made for (field 'student_architecture'; a dualkd serve of this "
                          "release does)",
                          where, name);
    dk_unet_config s, t;
    dk_status st = canonical_arch(sarch, "student_architecture", where, &s, m->student_architecture,
                                  sizeof m->student_architecture, err);
    if (!st)
        st = canonical_arch(json_object_get(card, "architecture"), "architecture", where, &t,
                            m->teacher_architecture, sizeof m->teacher_architecture, err);
    if (!st)
        st = canonical_profile(json_object_get(e, "profile"), where, m->profile_json,
                               sizeof m->profile_json, err);
    if (!st) st = classes_of(json_object_get(e, "classes"), &m->classes, where, err);
    if (st) return st;
    if (s.classes != m->classes.count || s.in_channels != 1)
        return dk_err_set(err, DK_EMISMATCH,
                          "%s: the student architecture has %d classes and "
                          "%d input channels; the targets have %d classes and 1 channel",
                          where, s.classes, s.in_channels, m->classes.count);
    snprintf(m->profile, sizeof m->profile, "%s", name);
    snprintf(m->teacher_sha256, sizeof m->teacher_sha256, "%s", tsha);
    snprintf(m->created, sizeof m->created, "%.31s", created ? created : "");
    m->temperature = json_number_value(T);
    m->passes = (int)json_integer_value(passes);
    m->input_noise = json_number_value(json_object_get(e, "input_noise"));
    if (!doubles(json_object_get(card, "training_spacing"), m->teacher_spacing, true))
        return dk_err_set(err, DK_EFORMAT, "%s: the model card has no training_spacing", where);
    for (int a = 0; a < 3; a++) { /* as precompute: the pooling product of every level */
        m->student_multiple[a] = 1;
        for (int l = 0; l < s.levels - 1; l++)
            m->student_multiple[a] *= s.pool[l][a];
    }
    m->feature_count = (int)json_array_size(feats);
    for (int k = 0; !st && k < m->feature_count; k++)
        st = feature_of(json_array_get(feats, (size_t)k), &s, &t, m->profile_spacing, where,
                        &m->features[k], err);
    return st;
}

dk_status dk_pull_manifest(const char *card, const char *entry, const char *where,
                           dk_store_manifest *m, dk_err *err)
{
    memset(m, 0, sizeof *m);
    json_t *c = json_loads(card, 0, NULL), *e = json_loads(entry, 0, NULL);
    dk_status st = !json_is_object(c) || !json_is_object(e)
                       ? dk_err_set(err, DK_EFORMAT,
                                    "%s: the model card or profile entry is "
                                    "not a JSON object",
                                    where)
                       : from_json(c, e, where, m, err);
    json_decref(c);
    json_decref(e);
    return st;
}

/* ---- samples ---- */

static dk_status grid_of(const json_t *g, dk_grid *out, const char *where, const char *id,
                         dk_err *err)
{
    const json_t *dims = json_object_get(g, "dims");
    bool ok = json_array_size(dims) == 3 &&
              doubles(json_object_get(g, "spacing"), out->spacing, true) &&
              doubles(json_object_get(g, "origin"), out->origin, false);
    for (size_t a = 0; ok && a < 3; a++) {
        json_int_t d = json_integer_value(json_array_get(dims, a));
        ok = d >= 1 && d <= MAX_DIM;
        out->dims[a] = (int)d;
    }
    return ok ? DK_OK
              : dk_err_set(err, DK_EFORMAT,
                           "%s: sample '%s' has no valid grid (dims "
                           "1..%d, spacing > 0, origin)",
                           where, id, MAX_DIM);
}

/* The shape the manifest wants for kind: rank and dims; false for a kind not pulled. */
static bool expected_shape(const char *kind, const dk_store_manifest *m, const dk_grid *g,
                           int *rank, int dims[4])
{
    const int *d = g->dims;
    if (!strcmp(kind, "input") || !strcmp(kind, "uncertainty")) {
        *rank = 3;
        memcpy(dims, d, 3 * sizeof *dims);
        return true;
    }
    if (!strcmp(kind, "response")) {
        *rank = 4;
        dims[0] = m->classes.count;
        memcpy(dims + 1, d, 3 * sizeof *dims);
        return true;
    }
    for (int k = 0; k < m->feature_count; k++) {
        char want[32];
        snprintf(want, sizeof want, "features/%s", m->features[k].layer);
        if (strcmp(kind, want)) continue;
        dk_unet_config s;
        if (dk_unet_config_from_json(m->student_architecture, &s, NULL)) return false;
        int padded[3], channels;
        for (int a = 0; a < 3; a++) {
            int mult = m->student_multiple[a];
            padded[a] = (d[a] + mult - 1) / mult * mult;
        }
        dk_unet_tap_dims(&s, m->features[k].student_tap, padded, &channels, dims + 1);
        *rank = 4;
        dims[0] = m->features[k].channels;
        return true;
    }
    return false;
}

static dk_status array_of(const json_t *j, const dk_store_manifest *m, const dk_grid *g,
                          const char *where, const char *id, dk_store_sample_info *info,
                          dk_err *err)
{
    const char *kind = json_string_value(json_object_get(j, "kind"));
    const char *dtype = json_string_value(json_object_get(j, "dtype"));
    const char *sha = json_string_value(json_object_get(j, "sha256"));
    const json_t *shape = json_object_get(j, "shape");
    int rank, dims[4];
    if (!kind || !expected_shape(kind, m, g, &rank, dims)) return DK_OK; /* not pulled */
    if (info->array_count == DK_STORE_MAX_ARRAYS)
        return dk_err_set(err, DK_ELIMIT, "%s: sample '%s' lists too many arrays", where, id);
    dk_store_array_info *a = &info->arrays[info->array_count];
    bool f4 = dtype && !strcmp(dtype, "<f4"), f2 = dtype && !strcmp(dtype, "<f2");
    if ((!f4 && !f2) || !is_hex64(sha))
        return dk_err_set(err, DK_EFORMAT,
                          "%s: sample '%s', array '%s': dtype '%s' (expected "
                          "<f4 or <f2) or sha256 is not valid",
                          where, id, kind, dtype ? dtype : "none");
    bool same = json_array_size(shape) == (size_t)rank;
    for (int d = 0; same && d < rank; d++)
        same = json_integer_value(json_array_get(shape, (size_t)d)) == dims[d];
    if (!same) {
        char *got = json_dumps(shape, JSON_COMPACT | JSON_ENCODE_ANY);
        dk_status st = dk_err_set(err, DK_EMISMATCH,
                                  "%s: sample '%s', array '%s' has shape %s; "
                                  "the manifest wants [%d, %d, %d%s%d] (rank %d)",
                                  where, id, kind, got ? got : "?", dims[0], dims[1], dims[2],
                                  rank == 4 ? ", " : "", rank == 4 ? dims[3] : 0, rank);
        free(got);
        return st;
    }
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    snprintf(a->sha256, sizeof a->sha256, "%s", sha);
    a->dtype = f4 ? DK_STORE_F32 : DK_STORE_F16;
    a->rank = rank;
    memcpy(a->dims, dims, sizeof dims);
    info->array_count++;
    return DK_OK;
}

static bool has_kind(const dk_store_sample_info *info, const char *kind)
{
    for (int k = 0; k < info->array_count; k++)
        if (!strcmp(info->arrays[k].kind, kind)) return true;
    return false;
}

dk_status dk_pull_sample(const json_t *sample, const dk_store_manifest *m, const char *where,
                         dk_store_sample_info *info, dk_err *err)
{
    memset(info, 0, sizeof *info);
    const char *id = json_string_value(json_object_get(sample, "id"));
    const char *split = json_string_value(json_object_get(sample, "split"));
    const json_t *arrays = json_object_get(sample, "arrays");
    if (!id || !dk_volume_id_valid(id) || !json_is_array(arrays))
        return dk_err_set(err, DK_EFORMAT,
                          "%s: a sample has no valid id ([A-Za-z0-9._-], under "
                          "64 bytes) or no arrays",
                          where);
    snprintf(info->id, sizeof info->id, "%s", id);
    snprintf(info->split, sizeof info->split, "%.15s", split ? split : "");
    dk_status st = grid_of(json_object_get(sample, "grid"), &info->grid, where, id, err);
    for (size_t k = 0; !st && k < json_array_size(arrays); k++)
        st = array_of(json_array_get(arrays, k), m, &info->grid, where, id, info, err);
    const char *need[3] = {"input", "response", "uncertainty"};
    for (int k = 0; !st && k < 3 + m->feature_count; k++) {
        char kind[32];
        snprintf(kind, sizeof kind, k < 3 ? "%s" : "features/%s",
                 k < 3 ? need[k] : m->features[k - 3].layer);
        if (!has_kind(info, kind))
            st =
                dk_err_set(err, DK_EFORMAT, "%s: sample '%s' lists no array '%s'", where, id, kind);
    }
    return st;
}

uint64_t dk_pull_npy_bytes(const dk_store_array_info *a)
{
    dk_npy_header h = {.dtype = a->dtype == DK_STORE_F32 ? DK_NPY_F4 : DK_NPY_F2, .rank = a->rank};
    for (int d = 0; d < a->rank; d++)
        h.shape[d] = (size_t)a->dims[d];
    char buf[DK_NPY_PREFIX_CAP];
    size_t len = 0;
    if (dk_npy_format_header(&h, buf, sizeof buf, &len, NULL)) return 0;
    return (uint64_t)len + h.data_bytes;
}

void dk_pull_kind_file(const char *kind, char *out, size_t cap)
{
    snprintf(out, cap, "%s", kind);
    for (char *c = out; *c; c++)
        if (*c == '/') *c = '-';
}
