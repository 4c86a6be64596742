/* train_config.c: the student's training config (train.h): the teacher's fields,
 * read by the teacher's reader, plus the "distill" section read here. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "student/train.h"

#define NAME "student config"

dk_student_config dk_student_config_default(void)
{
    dk_student_config c = {
        .base = dk_teacher_config_default(),
        .transfer_batch = 2,
        /* the original method: softmax-MSE at 0.1, masked where the teacher's
         * entropy < (0.75 + 0.25 ramp) ln 2; channel-softmax KL of the bottleneck at 1 */
        .response = DK_RESPONSE_MSE,
        .alpha = 0.1f,
        .alpha_ramp_steps = 120,
        .uncertainty_mask = true,
        .mask_threshold_start = 0.75f * 0.69314718f,
        .mask_threshold_end = 0.69314718f,
        .feature = DK_FEATURE_KL,
        .beta = 1.0f,
        .beta_ramp_steps = 120,
        .feature_layer = "bottleneck",
        .feature_temperature = 1.0f,
    };
    return c;
}

static dk_status bad(dk_err *err, const char *field, const char *expected)
{
    return dk_err_set(err, DK_EINVAL, NAME ": field 'distill.%s': expected %s", field, expected);
}

static dk_status number(json_t *o, const char *key, const char *field, double lo, double hi,
                        float *out, dk_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) return DK_OK;
    char what[80];
    snprintf(what, sizeof what, "a number in [%g, %g]", lo, hi);
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return bad(err, field, what);
    *out = (float)json_number_value(v);
    return DK_OK;
}

static dk_status steps(json_t *o, const char *key, const char *field, long *out, dk_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) return DK_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000000)
        return bad(err, field, "an integer in 0..100000000");
    *out = (long)json_integer_value(v);
    return DK_OK;
}

static dk_status only_keys(json_t *o, const char *section, const char *const *known, int n,
                           dk_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        int i = 0;
        while (i < n && strcmp(key, known[i]))
            i++;
        if (i == n)
            return dk_err_set(err, DK_EINVAL, NAME ": unknown field 'distill.%s%s'", section, key);
    }
    return DK_OK;
}

static dk_status read_response(json_t *r, dk_student_config *c, dk_err *err)
{
    static const char *const known[] = {"kind", "weight", "ramp_steps", "mask",
                                        "threshold_start", "threshold_end"};
    if (!json_is_object(r)) return bad(err, "response", "an object");
    dk_status st = only_keys(r, "response.", known, 6, err);
    json_t *kind = json_object_get(r, "kind"), *mask = json_object_get(r, "mask");
    const char *k = json_string_value(kind);
    if (!st && kind && (!k || (strcmp(k, "kl") && strcmp(k, "mse"))))
        st = bad(err, "response.kind", "\"kl\" or \"mse\"");
    if (!st && k) c->response = strcmp(k, "kl") ? DK_RESPONSE_MSE : DK_RESPONSE_KL;
    if (!st && mask && !json_is_boolean(mask)) st = bad(err, "response.mask", "true or false");
    if (!st && mask) c->uncertainty_mask = json_is_true(mask);
    if (!st) st = number(r, "weight", "response.weight", 0, 1000, &c->alpha, err);
    if (!st) st = steps(r, "ramp_steps", "response.ramp_steps", &c->alpha_ramp_steps, err);
    if (!st)
        st = number(r, "threshold_start", "response.threshold_start", 0, 100,
                    &c->mask_threshold_start, err);
    if (!st)
        st = number(r, "threshold_end", "response.threshold_end", 0, 100, &c->mask_threshold_end,
                    err);
    return st;
}

static dk_status read_feature(json_t *f, dk_student_config *c, dk_err *err)
{
    static const char *const known[] = {"kind", "weight", "ramp_steps", "layer", "temperature"};
    if (!json_is_object(f)) return bad(err, "feature", "an object");
    dk_status st = only_keys(f, "feature.", known, 5, err);
    const char *k = json_string_value(json_object_get(f, "kind"));
    json_t *layer = json_object_get(f, "layer");
    if (!st && json_object_get(f, "kind") && (!k || (strcmp(k, "kl") && strcmp(k, "mse"))))
        st = bad(err, "feature.kind", "\"kl\" or \"mse\"");
    if (!st && k) c->feature = strcmp(k, "kl") ? DK_FEATURE_MSE : DK_FEATURE_KL;
    if (!st && layer &&
        (!json_is_string(layer) || json_string_length(layer) >= sizeof c->feature_layer ||
         json_string_length(layer) == 0))
        st = bad(err, "feature.layer", "a tap name such as \"bottleneck\" or \"dec1\"");
    if (!st && layer)
        snprintf(c->feature_layer, sizeof c->feature_layer, "%s", json_string_value(layer));
    if (!st) st = number(f, "weight", "feature.weight", 0, 1000, &c->beta, err);
    if (!st) st = steps(f, "ramp_steps", "feature.ramp_steps", &c->beta_ramp_steps, err);
    if (!st)
        st = number(f, "temperature", "feature.temperature", 0.01, 100, &c->feature_temperature,
                    err);
    return st;
}

static dk_status read_distill(json_t *d, dk_student_config *c, dk_err *err)
{
    static const char *const known[] = {"transfer_batch", "response", "feature"};
    if (!json_is_object(d))
        return dk_err_set(err, DK_EINVAL, NAME ": field 'distill': expected an object");
    dk_status st = only_keys(d, "", known, 3, err);
    json_t *tb = json_object_get(d, "transfer_batch");
    if (!st && tb &&
        (!json_is_integer(tb) || json_integer_value(tb) < 0 || json_integer_value(tb) > 64))
        st = bad(err, "transfer_batch", "an integer in 0..64");
    if (!st && tb) c->transfer_batch = (int)json_integer_value(tb);
    if (!st && json_object_get(d, "response")) st = read_response(json_object_get(d, "response"), c, err);
    if (!st && json_object_get(d, "feature")) st = read_feature(json_object_get(d, "feature"), c, err);
    return st;
}

dk_status dk_student_config_from_json(const char *text, dk_student_config *c, dk_err *err)
{
    *c = dk_student_config_default();
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dk_err_set(err, DK_EFORMAT, NAME ": not valid JSON (line %d, column %d: %s)",
                          jerr.line, jerr.column, jerr.text);
    dk_status st = DK_OK;
    if (!json_is_object(root)) st = dk_err_set(err, DK_EFORMAT, NAME ": expected a JSON object");
    json_t *distill = st ? NULL : json_incref(json_object_get(root, "distill"));
    c->network_given = !st && json_object_get(root, "network") != NULL;
    if (distill) json_object_del(root, "distill");
    char *base = st ? NULL : json_dumps(root, 0);
    if (!st && !base) st = dk_err_set(err, DK_ENOMEM, NAME ": no memory");
    dk_unet_config network = c->base.network;
    if (!st && !c->network_given) /* the patch is checked against the store's network later */
        for (int l = 0; l < DK_UNET_MAX_LEVELS; l++)
            c->base.network.pool[l][0] = c->base.network.pool[l][1] = c->base.network.pool[l][2] = 1;
    if (!st) st = dk_train_config_parse(base, NAME, &c->base, err);
    if (!c->network_given) c->base.network = network;
    if (!st && distill) st = read_distill(distill, c, err);
    free(base);
    json_decref(distill);
    json_decref(root);
    return st ? st : dk_student_config_validate(c, err);
}

dk_status dk_student_config_validate(const dk_student_config *c, dk_err *err)
{
    dk_teacher_config base = c->base;
    if (!c->network_given) /* the store's network: the patch is checked against it later */
        for (int l = 0; l < DK_UNET_MAX_LEVELS; l++)
            base.network.pool[l][0] = base.network.pool[l][1] = base.network.pool[l][2] = 1;
    dk_status st = dk_train_config_validate(&base, NAME, err);
    if (st) return st;
    if (c->mask_threshold_start < 0 || c->mask_threshold_end < 0)
        return dk_err_set(err, DK_EINVAL, NAME ": mask thresholds must be >= 0");
    if (c->transfer_batch < 0 || c->transfer_batch > 64)
        return bad(err, "transfer_batch", "an integer in 0..64");
    return DK_OK;
}

static json_t *distill_json(const dk_student_config *c)
{
    return json_pack("{s:i, s:{s:s, s:f, s:I, s:b, s:f, s:f}, s:{s:s, s:f, s:I, s:s, s:f}}",
                     "transfer_batch", c->transfer_batch, "response", "kind",
                     c->response == DK_RESPONSE_KL ? "kl" : "mse", "weight", (double)c->alpha,
                     "ramp_steps", (json_int_t)c->alpha_ramp_steps, "mask", c->uncertainty_mask,
                     "threshold_start", (double)c->mask_threshold_start, "threshold_end",
                     (double)c->mask_threshold_end, "feature", "kind",
                     c->feature == DK_FEATURE_KL ? "kl" : "mse", "weight", (double)c->beta,
                     "ramp_steps", (json_int_t)c->beta_ramp_steps, "layer", c->feature_layer,
                     "temperature", (double)c->feature_temperature);
}

char *dk_student_config_to_json(const dk_student_config *c)
{
    char *base = dk_teacher_config_to_json(&c->base);
    json_t *root = base ? json_loads(base, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    free(base);
    if (!root) return NULL;
    if (!c->network_given) json_object_del(root, "network");
    json_object_set_new(root, "distill", distill_json(c));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    return text;
}
