/* unet_config.c: the U-Net's config: defaults, validation, JSON (the checkpoint's
 * "architecture" attribute). The network itself lives in unet.c. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "distill/unet.h"

dk_unet_config dk_unet_config_default(int in_channels, int classes)
{
    dk_unet_config c = {
        .in_channels = in_channels,
        .classes = classes,
        .levels = 4,
        .base_width = 16,
        .norm = DK_NORM_INSTANCE,
        .leaky_slope = 0.0f,
        .norm_eps = 1e-5f,
    };
    for (int l = 0; l < DK_UNET_MAX_LEVELS; l++)
        for (int a = 0; a < 3; a++) {
            c.pool[l][a] = 2;
            c.kernel[l][a] = 3;
        }
    return c;
}

static dk_status check_triple(const int v[3], int lo, int hi, bool odd, const char *what, int level,
                              dk_err *err)
{
    for (int a = 0; a < 3; a++)
        if (v[a] < lo || v[a] > hi || (odd && v[a] % 2 == 0))
            return dk_err_set(err, DK_EINVAL,
                              "unet config: %s[%d] = (%d, %d, %d): each must be %s in %d..%d", what,
                              level, v[0], v[1], v[2], odd ? "odd" : "an integer", lo, hi);
    return DK_OK;
}

dk_status dk_unet_config_validate(const dk_unet_config *c, dk_err *err)
{
    dk_status st;
    if (c->in_channels < 1 || c->in_channels > 64)
        return dk_err_set(err, DK_EINVAL, "unet config: in_channels = %d, expected 1..64",
                          c->in_channels);
    if (c->classes < 2 || c->classes > 64)
        return dk_err_set(err, DK_EINVAL, "unet config: classes = %d, expected 2..64", c->classes);
    if (c->levels < 2 || c->levels > DK_UNET_MAX_LEVELS)
        return dk_err_set(err, DK_EINVAL, "unet config: levels = %d, expected 2..%d", c->levels,
                          DK_UNET_MAX_LEVELS);
    if (c->base_width < 1 || (c->base_width << (c->levels - 1)) > 1024)
        return dk_err_set(err, DK_EINVAL,
                          "unet config: base_width = %d with %d levels, expected 1.. and at most "
                          "1024 channels at the bottleneck",
                          c->base_width, c->levels);
    for (int l = 0; l < c->levels; l++) {
        if ((st = check_triple(c->kernel[l], 1, 7, true, "kernel", l, err))) return st;
        if (l < c->levels - 1 && (st = check_triple(c->pool[l], 1, 4, false, "pool", l, err)))
            return st;
    }
    if (c->norm != DK_NORM_NONE && c->norm != DK_NORM_INSTANCE)
        return dk_err_set(err, DK_EINVAL, "unet config: unknown norm %d", (int)c->norm);
    if (!(c->leaky_slope >= 0 && c->leaky_slope < 1))
        return dk_err_set(err, DK_EINVAL, "unet config: leaky_slope = %g, expected 0 <= s < 1",
                          c->leaky_slope);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return dk_err_set(err, DK_EINVAL, "unet config: norm_eps = %g, expected 0 < eps < 1",
                          c->norm_eps);
    return DK_OK;
}

static json_t *triples_json(const int v[][3], int count)
{
    json_t *list = json_array();
    for (int l = 0; l < count; l++)
        json_array_append_new(list, json_pack("[iii]", v[l][0], v[l][1], v[l][2]));
    return list;
}

char *dk_unet_config_to_json(const dk_unet_config *c)
{
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:i, s:o, s:o, s:s, s:f, s:f}", "kind", "unet3d",
                             "in_channels", c->in_channels, "classes", c->classes, "levels",
                             c->levels, "base_width", c->base_width, "pool",
                             triples_json(c->pool, c->levels - 1), "kernel",
                             triples_json(c->kernel, c->levels), "norm",
                             c->norm == DK_NORM_INSTANCE ? "instance" : "none", "leaky_slope",
                             (double)c->leaky_slope, "norm_eps", (double)c->norm_eps);
    if (!root) return NULL;
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    return text;
}

static dk_status read_triples(json_t *root, const char *key, int want, int out[][3], dk_err *err)
{
    json_t *list = json_object_get(root, key);
    if (!json_is_array(list) || (int)json_array_size(list) != want)
        return dk_err_set(err, DK_EFORMAT, "unet config: '%s' must be a list of %d [d, h, w] triples",
                          key, want);
    for (int l = 0; l < want; l++) {
        json_t *t = json_array_get(list, (size_t)l);
        if (json_unpack(t, "[iii]", &out[l][0], &out[l][1], &out[l][2]) != 0)
            return dk_err_set(err, DK_EFORMAT, "unet config: '%s'[%d] is not a [d, h, w] triple of "
                              "integers", key, l);
    }
    return DK_OK;
}

static dk_status check_keys(json_t *root, dk_err *err)
{
    static const char *known[] = {"kind",   "in_channels", "classes", "levels",   "base_width",
                                  "pool",   "kernel",      "norm",    "leaky_slope", "norm_eps"};
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        bool found = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) found |= !strcmp(key, known[i]);
        if (!found) return dk_err_set(err, DK_EFORMAT, "unet config: unknown field '%s'", key);
    }
    return DK_OK;
}

static dk_status parse_config(json_t *root, dk_unet_config *c, dk_err *err)
{
    dk_status st;
    const char *kind = NULL, *norm = NULL;
    double slope = 0, eps = 1e-5;
    *c = dk_unet_config_default(1, 2);
    json_error_t jerr;
    if (json_unpack_ex(root, &jerr, 0, "{s:s, s:i, s:i, s:i, s:i, s?s, s?F, s?F}",
                       "kind", &kind, "in_channels", &c->in_channels, "classes", &c->classes,
                       "levels", &c->levels, "base_width", &c->base_width, "norm", &norm,
                       "leaky_slope", &slope, "norm_eps", &eps) != 0)
        return dk_err_set(err, DK_EFORMAT, "unet config: %s", jerr.text);
    if (strcmp(kind, "unet3d") != 0)
        return dk_err_set(err, DK_EFORMAT, "unet config: kind '%s', expected 'unet3d'", kind);
    if (norm && strcmp(norm, "instance") != 0 && strcmp(norm, "none") != 0)
        return dk_err_set(err, DK_EFORMAT, "unet config: norm '%s', expected 'instance' or 'none'",
                          norm);
    c->norm = (!norm || !strcmp(norm, "instance")) ? DK_NORM_INSTANCE : DK_NORM_NONE;
    c->leaky_slope = (float)slope;
    c->norm_eps = (float)eps;
    if (c->levels < 2 || c->levels > DK_UNET_MAX_LEVELS)
        return dk_err_set(err, DK_EINVAL, "unet config: levels = %d, expected 2..%d", c->levels,
                          DK_UNET_MAX_LEVELS);
    if ((st = read_triples(root, "pool", c->levels - 1, c->pool, err))) return st;
    if ((st = read_triples(root, "kernel", c->levels, c->kernel, err))) return st;
    return dk_unet_config_validate(c, err);
}

dk_status dk_unet_config_from_json(const char *text, dk_unet_config *c, dk_err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        return dk_err_set(err, DK_EFORMAT, "unet config: not JSON (line %d: %s)", jerr.line,
                          jerr.text);
    dk_status st = json_is_object(root) ? check_keys(root, err)
                                        : dk_err_set(err, DK_EFORMAT, "unet config: not an object");
    if (st == DK_OK) st = parse_config(root, c, err);
    json_decref(root);
    return st;
}
