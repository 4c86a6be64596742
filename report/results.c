/* results.c: reading and validating results.json (results.h). Every check happens
 * here, once; the pictures and the page trust what comes out. Field paths in the
 * messages ("sites[0].overlay.axis") are the ones docs/demo.md uses. */
#define _GNU_SOURCE
#include "report/results.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct reader {
    char base[DK_RESULTS_PATH]; /* directory of results.json */
    dk_err *err;
} reader;

#define WHERE_MAX 256

/* A field path ("methods[1].sites.site-a"); names are bounded, so it always fits. */
static void __attribute__((format(printf, 2, 3))) path_of(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, WHERE_MAX, fmt, ap);
    va_end(ap);
}

static dk_status bad(reader *rd, const char *where, const char *key, const char *want)
{
    return dk_err_set(rd->err, DK_EFORMAT, "%s%s%s: expected %s", where, *where ? "." : "", key,
                      want);
}

/* obj[key], or NULL (with err set) when absent and required. */
static json_t *field(reader *rd, json_t *obj, const char *where, const char *key, bool required,
                     dk_status *st)
{
    json_t *v = json_object_get(obj, key);
    *st = DK_OK;
    if (!v && required)
        *st = dk_err_set(rd->err, DK_EFORMAT, "%s%s%s: missing", where, *where ? "." : "", key);
    return v;
}

static dk_status get_string(reader *rd, json_t *obj, const char *where, const char *key, char *out,
                            size_t cap)
{
    dk_status st;
    json_t *v = field(rd, obj, where, key, true, &st);
    if (st) return st;
    if (!json_is_string(v)) return bad(rd, where, key, "a string");
    if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v)) {
        char want[64];
        snprintf(want, sizeof want, "a string of at most %zu bytes without NUL", cap - 1);
        return bad(rd, where, key, want);
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return DK_OK;
}

/* A number in [lo, hi]; null gives NAN when nullable. */
static dk_status get_number(reader *rd, json_t *obj, const char *where, const char *key, double lo,
                            double hi, bool nullable, double *out)
{
    dk_status st;
    json_t *v = field(rd, obj, where, key, true, &st);
    if (st) return st;
    char want[96];
    snprintf(want, sizeof want, "a number in [%g, %g]%s", lo, hi, nullable ? " or null" : "");
    if (nullable && json_is_null(v)) {
        *out = NAN;
        return DK_OK;
    }
    if (!json_is_number(v)) return bad(rd, where, key, want);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return bad(rd, where, key, want);
    *out = x;
    return DK_OK;
}

static dk_status get_int(reader *rd, json_t *obj, const char *where, const char *key, long long lo,
                         long long hi, long long *out)
{
    dk_status st;
    json_t *v = field(rd, obj, where, key, true, &st);
    if (st) return st;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char want[96];
        snprintf(want, sizeof want, "an integer in [%lld, %lld]", lo, hi);
        return bad(rd, where, key, want);
    }
    *out = json_integer_value(v);
    return DK_OK;
}

/* Names become file names (overlay-<site>.png) and HTML ids. */
static bool name_ok(const char *s)
{
    return dk_volume_id_valid(s) && s[0] != '.';
}

/* given, relative to the directory of results.json, must exist as a file or directory. */
static dk_status resolve(reader *rd, const char *where, const char *key, const char *given,
                         bool directory, char *out)
{
    int n = given[0] == '/' ? snprintf(out, DK_RESULTS_PATH, "%s", given)
                            : snprintf(out, DK_RESULTS_PATH, "%s/%s", rd->base, given);
    if (n < 0 || n >= DK_RESULTS_PATH) return bad(rd, where, key, "a shorter path");
    struct stat sb;
    if (stat(out, &sb) != 0)
        return dk_err_set(rd->err, DK_ENOTFOUND, "%s.%s: '%s' (%s): %s", where, key, given, out,
                          strerror(errno));
    if (directory != !!S_ISDIR(sb.st_mode))
        return dk_err_set(rd->err, DK_EFORMAT, "%s.%s: '%s' (%s): expected a %s", where, key, given,
                          out, directory ? "directory" : "file");
    return DK_OK;
}

static dk_status read_bytes(reader *rd, json_t *obj, const char *where, const char *key,
                            bool nullable, bool *present, long long *down, long long *up)
{
    dk_status st;
    json_t *v = field(rd, obj, where, key, true, &st);
    if (st) return st;
    *present = !json_is_null(v);
    if (!*present && nullable) return DK_OK;
    if (!json_is_object(v))
        return bad(rd, where, key,
                   nullable ? "{\"down\": N, \"up\": N} or null" : "{\"down\": N, \"up\": N}");
    char inner[WHERE_MAX];
    path_of(inner, "%s%s%s", where, *where ? "." : "", key);
    if ((st = get_int(rd, v, inner, "down", 0, (long long)1 << 50, down))) return st;
    return get_int(rd, v, inner, "up", 0, (long long)1 << 50, up);
}

static dk_status read_classes(reader *rd, json_t *root, dk_results *r)
{
    dk_status st;
    json_t *a = field(rd, root, "", "classes", true, &st);
    if (st) return st;
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) >= DK_MAX_CLASSES)
        return bad(rd, "", "classes", "an array of 1..15 class names");
    r->class_count = (int)json_array_size(a);
    for (int c = 0; c < r->class_count; c++) {
        json_t *v = json_array_get(a, c);
        if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) >= 32)
            return dk_err_set(rd->err, DK_EFORMAT, "classes[%d]: expected a name of 1..31 bytes",
                              c);
        snprintf(r->classes[c], sizeof r->classes[c], "%s", json_string_value(v));
        for (int k = 0; k < c; k++)
            if (!strcmp(r->classes[k], r->classes[c]))
                return dk_err_set(rd->err, DK_EFORMAT, "classes[%d]: '%s' repeated", c,
                                  r->classes[c]);
    }
    return DK_OK;
}

static dk_status read_overlay(reader *rd, json_t *site, const char *where, dk_results_site *s)
{
    s->overlay_volume[0] = '\0';
    s->overlay_axis = 0;
    s->overlay_slice = -1;
    json_t *o = json_object_get(site, "overlay");
    if (!o || json_is_null(o)) return DK_OK;
    char w[WHERE_MAX];
    path_of(w, "%s.overlay", where);
    if (!json_is_object(o)) return bad(rd, where, "overlay", "an object or null");
    json_t *vol = json_object_get(o, "volume");
    if (vol && !json_is_null(vol)) {
        dk_status st = get_string(rd, o, w, "volume", s->overlay_volume, sizeof s->overlay_volume);
        if (st) return st;
        if (!dk_volume_id_valid(s->overlay_volume)) return bad(rd, w, "volume", "a volume id");
    }
    json_t *axis = json_object_get(o, "axis");
    if (axis && !json_is_null(axis)) {
        const char *a = json_is_string(axis) ? json_string_value(axis) : "";
        const char *p = strlen(a) == 1 ? strchr("zyx", a[0]) : NULL;
        if (!p) return bad(rd, w, "axis", "\"z\", \"y\" or \"x\"");
        s->overlay_axis = (int)(p - "zyx");
    }
    json_t *slice = json_object_get(o, "slice");
    if (slice && !json_is_null(slice)) {
        long long n;
        dk_status st = get_int(rd, o, w, "slice", 0, 65535, &n);
        if (st) return st;
        s->overlay_slice = (int)n;
    }
    return DK_OK;
}

static dk_status read_site(reader *rd, json_t *v, int i, dk_results *r)
{
    char w[WHERE_MAX];
    path_of(w, "sites[%d]", i);
    if (!json_is_object(v)) return dk_err_set(rd->err, DK_EFORMAT, "%s: expected an object", w);
    dk_results_site *s = &r->sites[i];
    dk_status st;
    if ((st = get_string(rd, v, w, "name", s->name, sizeof s->name))) return st;
    if (!name_ok(s->name))
        return bad(rd, w, "name", "a name of [A-Za-z0-9._-] not starting with '.'");
    for (int k = 0; k < i; k++)
        if (!strcmp(r->sites[k].name, s->name))
            return dk_err_set(rd->err, DK_EFORMAT, "%s.name: '%s' repeated", w, s->name);
    if ((st = get_string(rd, v, w, "profile", s->profile, sizeof s->profile)) ||
        (st = get_string(rd, v, w, "contrast", s->contrast, sizeof s->contrast)) ||
        (st = get_string(rd, v, w, "data", s->data_given, sizeof s->data_given)) ||
        (st = get_int(rd, v, w, "labelled", 0, 1000000, &s->labelled)) ||
        (st = get_int(rd, v, w, "validation", 0, 1000000, &s->validation)) ||
        (st = read_overlay(rd, v, w, s)))
        return st;
    return resolve(rd, w, "data", s->data_given, false, s->data);
}

static dk_status read_curve(reader *rd, json_t *cell, const char *where, dk_results_cell *c)
{
    dk_status st;
    json_t *a = field(rd, cell, where, "curve", true, &st);
    if (st) return st;
    if (!json_is_array(a) || json_array_size(a) > DK_RESULTS_MAX_CURVE)
        return bad(rd, where, "curve", "an array of at most 10000 points");
    c->curve_count = (int)json_array_size(a);
    if (!c->curve_count) return DK_OK;
    c->curve = calloc(c->curve_count, sizeof *c->curve);
    if (!c->curve) return dk_err_set(rd->err, DK_ENOMEM, "%s.curve: no memory", where);
    for (int k = 0; k < c->curve_count; k++) {
        char w[WHERE_MAX];
        path_of(w, "%s.curve[%d]", where, k);
        json_t *p = json_array_get(a, k);
        if (!json_is_object(p)) return dk_err_set(rd->err, DK_EFORMAT, "%s: expected an object", w);
        long long round;
        if ((st = get_int(rd, p, w, "round", 0, 1000000, &round)) ||
            (st = get_number(rd, p, w, "dice", 0, 1, false, &c->curve[k].dice)))
            return st;
        c->curve[k].round = (int)round;
    }
    return DK_OK;
}

static dk_status read_cell(reader *rd, json_t *cell, const char *where, const dk_results *r,
                           dk_results_cell *c)
{
    if (!json_is_object(cell))
        return dk_err_set(rd->err, DK_EFORMAT, "%s: expected an object", where);
    char given[DK_RESULTS_PATH];
    dk_status st;
    if ((st = get_string(rd, cell, where, "predictions", given, sizeof given)) ||
        (st = resolve(rd, where, "predictions", given, true, c->predictions)) ||
        (st = get_number(rd, cell, where, "mean_dice", 0, 1, true, &c->mean_dice)))
        return st;
    json_t *classes = field(rd, cell, where, "classes", true, &st);
    if (st) return st;
    if (!json_is_object(classes)) return bad(rd, where, "classes", "an object keyed by class name");
    for (int k = 0; k < r->class_count; k++) {
        char w[WHERE_MAX];
        path_of(w, "%s.classes", where);
        json_t *m = field(rd, classes, w, r->classes[k], true, &st);
        if (st) return st;
        path_of(w, "%s.classes.%s", where, r->classes[k]);
        if (!json_is_object(m)) return dk_err_set(rd->err, DK_EFORMAT, "%s: expected an object", w);
        dk_results_class *x = &c->classes[k];
        if ((st = get_number(rd, m, w, "dice", 0, 1, true, &x->dice)) ||
            (st = get_number(rd, m, w, "hd95_mm", 0, 1e6, true, &x->hd95_mm)))
            return st;
        x->assd_mm = NAN;
        if (json_object_get(m, "assd_mm") &&
            (st = get_number(rd, m, w, "assd_mm", 0, 1e6, true, &x->assd_mm)))
            return st;
    }
    return read_curve(rd, cell, where, c);
}

static dk_status read_method(reader *rd, json_t *v, int i, dk_results *r)
{
    char w[WHERE_MAX];
    path_of(w, "methods[%d]", i);
    if (!json_is_object(v)) return dk_err_set(rd->err, DK_EFORMAT, "%s: expected an object", w);
    dk_results_method *m = &r->methods[i];
    dk_status st;
    if ((st = get_string(rd, v, w, "name", m->name, sizeof m->name))) return st;
    if (!name_ok(m->name))
        return bad(rd, w, "name", "a name of [A-Za-z0-9._-] not starting with '.'");
    for (int k = 0; k < i; k++)
        if (!strcmp(r->methods[k].name, m->name))
            return dk_err_set(rd->err, DK_EFORMAT, "%s.name: '%s' repeated", w, m->name);
    if ((st = get_string(rd, v, w, "title", m->title, sizeof m->title)) ||
        (st = get_number(rd, v, w, "seconds", 0, 1e9, false, &m->seconds)) ||
        (st = get_int(rd, v, w, "rounds", 0, 1000000, &m->rounds)) ||
        (st = get_int(rd, v, w, "local_steps", 0, (long long)1 << 40, &m->local_steps)) ||
        (st = read_bytes(rd, v, w, "bytes_per_round", true, &m->has_bytes, &m->bytes_down,
                         &m->bytes_up)))
        return st;
    json_t *sites = field(rd, v, w, "sites", true, &st);
    if (st) return st;
    if (!json_is_object(sites)) return bad(rd, w, "sites", "an object keyed by site name");
    const char *key;
    json_t *cell;
    json_object_foreach(sites, key, cell)
    {
        int s = 0;
        while (s < r->site_count && strcmp(r->sites[s].name, key))
            s++;
        if (s == r->site_count)
            return dk_err_set(rd->err, DK_EFORMAT, "%s.sites.%.64s: no such site in sites", w, key);
    }
    for (int s = 0; s < r->site_count; s++) {
        char cw[WHERE_MAX];
        path_of(cw, "%s.sites", w);
        cell = field(rd, sites, cw, r->sites[s].name, true, &st);
        if (st) return st;
        path_of(cw, "%s.sites.%s", w, r->sites[s].name);
        if ((st = read_cell(rd, cell, cw, r, &m->sites[s]))) return st;
    }
    return DK_OK;
}

/* An array field of 1..max objects, each read by fn. */
static dk_status read_list(reader *rd, json_t *root, const char *key, int max, int *count,
                           dk_status (*fn)(reader *, json_t *, int, dk_results *), dk_results *r)
{
    dk_status st;
    json_t *a = field(rd, root, "", key, true, &st);
    if (st) return st;
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > (size_t)max) {
        char want[64];
        snprintf(want, sizeof want, "an array of 1..%d objects", max);
        return bad(rd, "", key, want);
    }
    for (int i = 0; i < (int)json_array_size(a); i++) {
        if ((st = fn(rd, json_array_get(a, i), i, r))) return st;
        *count = i + 1;
    }
    return DK_OK;
}

static dk_status read_root(reader *rd, json_t *root, dk_results *r)
{
    if (!json_is_object(root)) return dk_err_set(rd->err, DK_EFORMAT, "expected a JSON object");
    dk_status st;
    json_t *quick = field(rd, root, "", "quick", true, &st);
    if (st) return st;
    if (!json_is_boolean(quick)) return bad(rd, "", "quick", "true or false");
    r->quick = json_is_true(quick);
    bool present;
    if ((st = get_string(rd, root, "", "dualkd", r->version, sizeof r->version)) ||
        (st = get_number(rd, root, "", "seconds", 0, 1e9, false, &r->seconds)) ||
        (st = read_classes(rd, root, r)) ||
        (st = read_list(rd, root, "sites", DK_RESULTS_MAX_SITES, &r->site_count, read_site, r)) ||
        (st = read_list(rd, root, "methods", DK_RESULTS_MAX_METHODS, &r->method_count, read_method,
                        r)) ||
        (st = read_bytes(rd, root, "", "original_bytes_per_round", false, &present,
                         &r->original_down, &r->original_up)))
        return st;
    char verdict[4096];
    if ((st = get_string(rd, root, "", "verdict", verdict, sizeof verdict))) return st;
    if (!(r->verdict = strdup(verdict)))
        return dk_err_set(rd->err, DK_ENOMEM, "verdict: no memory");
    return DK_OK;
}

dk_results *dk_results_read(const char *path, dk_err *err)
{
    reader rd = {.err = err};
    char copy[DK_RESULTS_PATH];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(rd.base, sizeof rd.base, "%s", dirname(copy));
    struct stat sb;
    if (stat(path, &sb) != 0) {
        dk_err_set(err, DK_ENOTFOUND, "'%s': %s", path, strerror(errno));
        return NULL;
    }
    if (sb.st_size > DK_RESULTS_MAX_BYTES) {
        dk_err_set(err, DK_ELIMIT, "'%s': %lld bytes (at most %ld)", path, (long long)sb.st_size,
                   DK_RESULTS_MAX_BYTES);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        dk_err_set(err, DK_EFORMAT, "'%s': line %d: %s", path, je.line, je.text);
        return NULL;
    }
    dk_results *r = calloc(1, sizeof *r);
    dk_status st = r ? read_root(&rd, root, r) : dk_err_set(err, DK_ENOMEM, "no memory");
    json_decref(root);
    if (st) {
        dk_err_prefix(err, st, "'%s'", path);
        dk_results_free(r);
        return NULL;
    }
    return r;
}

void dk_results_free(dk_results *r)
{
    if (!r) return;
    for (int m = 0; m < DK_RESULTS_MAX_METHODS; m++)
        for (int s = 0; s < DK_RESULTS_MAX_SITES; s++)
            free(r->methods[m].sites[s].curve);
    free(r->verdict);
    free(r);
}
