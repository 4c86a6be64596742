/* target_source.c: the target-source interface over a store file (target_source.h). */
#include "student/target_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dk_store_sample_info *store_sample(dk_target_source *s, int i)
{
    return dk_store_sample_at(s->impl, i);
}

static dk_status store_read(dk_target_source *s, int i, const char *kind, float *out,
                            size_t count, dk_err *err)
{
    return dk_store_read(s->impl, i, kind, out, count, err);
}

static void store_close(dk_target_source *s)
{
    dk_store_close(s->impl);
}

dk_status dk_target_source_open_store(const char *path, dk_target_source *src, dk_err *err)
{
    memset(src, 0, sizeof *src);
    dk_store *store = dk_store_open(path, err);
    if (!store) return DK_EFORMAT;
    snprintf(src->where, sizeof src->where, "store '%s'", path);
    src->manifest = dk_store_manifest_of(store);
    src->count = dk_store_count(store);
    src->sample = store_sample;
    src->read = store_read;
    src->close = store_close;
    src->impl = store;
    return DK_OK;
}

/* ---- the union of two sources ---- */

typedef struct pair {
    dk_target_source *a, *b;
} pair;

static const dk_store_sample_info *union_sample(dk_target_source *s, int i)
{
    pair *p = s->impl;
    return i < p->a->count ? p->a->sample(p->a, i) : p->b->sample(p->b, i - p->a->count);
}

static dk_status union_read(dk_target_source *s, int i, const char *kind, float *out,
                            size_t count, dk_err *err)
{
    pair *p = s->impl;
    return i < p->a->count ? p->a->read(p->a, i, kind, out, count, err)
                           : p->b->read(p->b, i - p->a->count, kind, out, count, err);
}

static void union_close(dk_target_source *s)
{
    free(s->impl);
}

dk_status dk_target_source_union(dk_target_source *a, dk_target_source *b, dk_target_source *out,
                                 dk_err *err)
{
    memset(out, 0, sizeof *out);
    dk_store_manifest *same = malloc(sizeof *same);
    pair *p = malloc(sizeof *p);
    if (!same || !p) {
        free(same);
        free(p);
        return dk_err_set(err, DK_ENOMEM, "no memory to join two target sources");
    }
    /* what may differ between a repository's store and a site's own targets */
    *same = *b->manifest;
    memcpy(same->data_sha256, a->manifest->data_sha256, sizeof same->data_sha256);
    same->passes = a->manifest->passes;
    same->input_noise = a->manifest->input_noise;
    same->seed = a->manifest->seed;
    const char *field = dk_store_manifest_diff(a->manifest, same);
    free(same);
    if (field) {
        free(p);
        return dk_err_set(err, DK_EMISMATCH, "%s and %s were made differently (manifest field "
                          "'%s'): the site's targets must come from the same teacher, profile "
                          "and student", a->where, b->where, field);
    }
    *p = (pair){a, b};
    snprintf(out->where, sizeof out->where, "%.2000s + %.2000s", a->where, b->where);
    out->manifest = a->manifest;
    out->count = a->count + b->count;
    out->sample = union_sample;
    out->read = union_read;
    out->close = union_close;
    out->impl = p;
    return DK_OK;
}

void dk_target_source_close(dk_target_source *src)
{
    if (src->close) src->close(src);
    memset(src, 0, sizeof *src);
}
