/* target_source.c: the target-source interface over a store file (target_source.h). */
#include "student/target_source.h"

#include <stdio.h>
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

void dk_target_source_close(dk_target_source *src)
{
    if (src->close) src->close(src);
    memset(src, 0, sizeof *src);
}
