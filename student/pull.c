/* pull.c: one profile's targets from `dualkd serve` into the cache (pull.h):
 * the model card, the profile's entry, every catalogue page, then each array
 * not yet cached, downloaded to its .part (resumed when one is left), checked
 * against the catalogue and renamed into place. The HTTP is fetch.c; the cache
 * and the checks pull_cache.c and pull_catalogue.c. */
#include "student/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/clock.h"
#include "datasets/npy.h"
#include "student/pull_cache.h"

#define CARD_MAX ((size_t)1 << 20)
#define PAGE_MAX ((size_t)64 << 20)
#define PER_PAGE 500

typedef struct puller {
    const dk_pull_options *o;
    dk_fetch_options fetch;
    char base[2048];
    dk_pull_cache cache;
    dk_pull_result *res;
    dk_pull_progress progress;
    double t0;
} puller;

static void report(puller *p)
{
    p->progress.seconds = dk_clock_seconds() - p->t0;
    if (p->o->progress) p->o->progress(&p->progress, p->o->ctx);
}

static void on_bytes(size_t n, void *ctx)
{
    puller *p = ctx;
    p->progress.bytes += n;
    p->progress.array_bytes += n;
    report(p);
}

static dk_status get_json(puller *p, const char *path, size_t max, char **body, dk_err *err)
{
    char url[4096], etag[128];
    size_t len;
    bool not_modified;
    snprintf(url, sizeof url, "%s%s", p->base, path);
    return dk_fetch_json(&p->fetch, url, NULL, max, body, &len, etag, &not_modified, err);
}

/* Catalogue page n as text (caller frees): the kept copy when the server answers
 * 304 to its ETag, else the new one, kept with its ETag. */
static dk_status get_page(puller *p, const char *path, int n, char **text, dk_err *err)
{
    char url[4096], etag[128];
    size_t len;
    bool not_modified;
    snprintf(url, sizeof url, "%s%s", p->base, path);
    const char *kept = dk_pull_cache_page_etag(&p->cache, n);
    char *kept_text = kept[0] ? dk_pull_cache_page_text(&p->cache, n) : NULL;
    dk_status st = dk_fetch_json(&p->fetch, url, kept_text ? kept : NULL, PAGE_MAX, text, &len,
                                 etag, &not_modified, err);
    if (!st && not_modified) {
        *text = kept_text, kept_text = NULL;
        p->res->pages_cached++;
    } else if (!st) {
        st = dk_pull_cache_page_put(&p->cache, n, etag, *text, err);
    }
    free(kept_text);
    return st;
}

/* The profile's entry of GET /v1/profiles as JSON text (caller frees). */
static dk_status profile_entry(puller *p, char **entry, dk_err *err)
{
    char *text = NULL;
    dk_status st = get_json(p, "/v1/profiles", CARD_MAX, &text, err);
    if (st) return st;
    json_t *root = json_loads(text, 0, NULL), *list = json_object_get(root, "profiles");
    free(text);
    char names[600] = "";
    *entry = NULL;
    for (size_t i = 0, n = 0; i < json_array_size(list) && !*entry; i++) {
        json_t *e = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        if (name && !strcmp(name, p->o->profile))
            *entry = json_dumps(e, JSON_COMPACT);
        else if (name && n < sizeof names - 70)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%.64s", n ? ", " : "", name);
    }
    st = !json_is_array(list) ? dk_err_set(err, DK_EFORMAT,
                                           "GET %s/v1/profiles: the answer has no 'profiles' "
                                           "list",
                                           p->base)
         : !*entry            ? dk_err_set(err, DK_ENOTFOUND,
                                           "GET %s/v1/profiles: no profile '%s' for this "
                                                      "token (it may read: %s)",
                                           p->base, p->o->profile, names[0] ? names : "none")
                              : DK_OK;
    json_decref(root);
    return st;
}

/* Every catalogue page's samples, in order, into *all (a JSON array). */
static dk_status catalogue_page(puller *p, int page, json_t *all, long *pages, dk_err *err)
{
    char path[256], *text = NULL;
    snprintf(path, sizeof path, "/v1/targets?profile=%s&page=%d&per_page=%d", p->o->profile, page,
             PER_PAGE);
    dk_status st = get_page(p, path, page, &text, err);
    if (st) return st;
    p->res->pages++;
    json_t *root = json_loads(text, 0, NULL), *samples = json_object_get(root, "samples");
    free(text);
    json_t *total = json_object_get(root, "total"), *np = json_object_get(root, "pages");
    if (!json_is_array(samples) || !json_is_integer(total) || !json_is_integer(np) ||
        json_integer_value(total) < 0 || json_integer_value(total) > DK_PULL_MAX_SAMPLES ||
        json_integer_value(np) != (json_integer_value(total) + PER_PAGE - 1) / PER_PAGE)
        st = dk_err_set(err, DK_EFORMAT,
                        "GET %s%s: not a catalogue page (samples, total at most "
                        "%d, pages)",
                        p->base, path, DK_PULL_MAX_SAMPLES);
    else if (json_array_extend(all, samples))
        st = dk_err_set(err, DK_ENOMEM, "no memory for the catalogue");
    if (!st && page == 1) p->res->samples = (int)json_integer_value(total);
    if (!st) *pages = (long)json_integer_value(np);
    json_decref(root);
    return st;
}

/* Model card, profile entry and catalogue: fetched, checked, written to the cache. */
static dk_status metadata(puller *p, dk_err *err)
{
    char *card = NULL, *entry = NULL, *catalogue = NULL;
    json_t *all = json_array();
    long pages = 1;
    dk_status st = get_json(p, "/v1/teacher", CARD_MAX, &card, err);
    if (!st) st = profile_entry(p, &entry, err);
    for (int page = 1; !st && page <= pages; page++)
        st = catalogue_page(p, page, all, &pages, err);
    if (!st && (int)json_array_size(all) != p->res->samples)
        st = dk_err_set(err, DK_EFORMAT,
                        "GET %s/v1/targets?profile=%s: the catalogue says %d "
                        "samples but its pages list %zu",
                        p->base, p->o->profile, p->res->samples, json_array_size(all));
    if (!st && p->res->samples == 0)
        st = dk_err_set(err, DK_ENOTFOUND,
                        "GET %s/v1/targets?profile=%s: the catalogue lists "
                        "no samples: there is nothing to distil from",
                        p->base, p->o->profile);
    if (!st && !(catalogue = json_dumps(all, JSON_COMPACT)))
        st = dk_err_set(err, DK_ENOMEM, "no memory for the catalogue");
    char where[2200];
    snprintf(where, sizeof where, "server %s, profile '%s'", p->base, p->o->profile);
    if (!st) st = dk_pull_cache_parse(&p->cache, card, entry, catalogue, where, err);
    if (!st) st = dk_pull_cache_index_save(&p->cache, err); /* the pages' ETags */
    if (!st) st = dk_pull_cache_write(&p->cache, "teacher.json", card, strlen(card), err);
    if (!st) st = dk_pull_cache_write(&p->cache, "profile.json", entry, strlen(entry), err);
    if (!st)
        st = dk_pull_cache_write(&p->cache, "catalogue.json", catalogue, strlen(catalogue), err);
    free(card), free(entry), free(catalogue);
    json_decref(all);
    return st;
}

/* Download, check and rename one array. */
static dk_status pull_array(puller *p, const dk_store_sample_info *s, const dk_store_array_info *a,
                            dk_err *err)
{
    char url[4096], etag[80], part[4400], path[4400];
    snprintf(url, sizeof url, "%s/v1/targets/%s/%s?profile=%s", p->base, s->id, a->kind,
             p->o->profile);
    snprintf(etag, sizeof etag, "\"%s\"", a->sha256);
    dk_pull_cache_part_path(&p->cache, s->id, a, part, sizeof part);
    dk_pull_cache_array_path(&p->cache, s->id, a->kind, path, sizeof path);
    uint64_t max = dk_store_array_numel(a) * dk_store_dtype_size(a->dtype) + DK_NPY_HEADER_MAX + 16;
    dk_fetch_file_result fr;
    uint64_t bytes = 0;
    dk_status st = dk_pull_cache_sample_dir(&p->cache, s->id, err);
    struct stat sb;
    p->progress.array_total = dk_pull_npy_bytes(a);
    p->progress.array_bytes = stat(part, &sb) ? 0 : (uint64_t)sb.st_size;
    if (!st) st = dk_fetch_file(&p->fetch, url, etag, part, max, &fr, err);
    if (!st) st = dk_pull_cache_check(part, a, url, NULL, &bytes, err);
    if (st && st != DK_EIO) unlink(part); /* resume a broken transfer, never a bad body */
    if (!st && rename(part, path))
        st = dk_err_set(err, DK_EIO, "cannot rename '%s' into place", part);
    if (!st) st = dk_pull_cache_index_put(&p->cache, s->id, a, bytes, err);
    if (!st) st = dk_pull_cache_index_save(&p->cache, err);
    p->progress.array_bytes = p->progress.array_total = 0;
    if (st) return st;
    p->res->downloaded++;
    p->res->resumed += fr.resumed_from > 0;
    return DK_OK;
}

static dk_status arrays(puller *p, dk_err *err)
{
    dk_pull_cache *c = &p->cache;
    for (int i = 0; i < c->count; i++) /* what is left to fetch, for the progress line */
        for (int k = 0; k < c->samples[i].array_count; k++) {
            p->progress.arrays_total++;
            if (!dk_pull_cache_has(c, c->samples[i].id, &c->samples[i].arrays[k]))
                p->progress.bytes_total += dk_pull_npy_bytes(&c->samples[i].arrays[k]);
        }
    report(p);
    for (int i = 0; i < c->count; i++)
        for (int k = 0; k < c->samples[i].array_count; k++) {
            const dk_store_array_info *a = &c->samples[i].arrays[k];
            p->res->arrays++;
            dk_status st = DK_OK;
            if (dk_pull_cache_has(c, c->samples[i].id, a))
                p->res->cached++;
            else
                st = pull_array(p, &c->samples[i], a, err);
            if (st) return st;
            p->progress.arrays_done++;
            report(p);
        }
    return DK_OK;
}

/* One pull at a time per cache directory: two would write the same parts. The lock
 * goes with the process (also on kill -9). Returns the descriptor to close, or -1. */
static int lock_cache(const dk_pull_cache *c, dk_status *st, dk_err *err)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/.lock", c->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        *st = dk_err_set(err, DK_EIO, "cannot open '%s': %s", path, strerror(errno));
    } else if (flock(fd, LOCK_EX | LOCK_NB)) {
        *st = dk_err_set(err, DK_EIO, "another pull is using the cache '%s' (lock '%s')", c->dir,
                         path);
        close(fd);
        fd = -1;
    }
    return fd;
}

static dk_status check_options(const dk_pull_options *o, puller *p, dk_err *err)
{
    const char *s = o->server;
    if (!s || (strncmp(s, "http://", 7) && strncmp(s, "https://", 8)))
        return dk_err_set(err, DK_EINVAL, "server '%s': expected an http:// or https:// URL",
                          s ? s : "");
    if (strlen(s) >= sizeof p->base - 1 || strpbrk(s, " \t\r\n?#"))
        return dk_err_set(err, DK_EINVAL,
                          "server '%.100s': a base URL (no spaces, query or "
                          "fragment, under %zu bytes)",
                          s, sizeof p->base - 1);
    snprintf(p->base, sizeof p->base, "%s", s);
    for (size_t n = strlen(p->base); n > 0 && p->base[n - 1] == '/'; n--)
        p->base[n - 1] = '\0';
    return DK_OK;
}

dk_status dk_pull(const dk_pull_options *o, dk_pull_result *res, dk_err *err)
{
    memset(res, 0, sizeof *res);
    puller p = {.o = o, .fetch = o->fetch, .res = res, .t0 = dk_clock_seconds()};
    p.fetch.on_bytes = on_bytes;
    p.fetch.ctx = &p;
    dk_status st = check_options(o, &p, err);
    if (!st) st = dk_pull_cache_init(&p.cache, o->cache_dir, o->profile, true, err);
    int lock = st ? -1 : lock_cache(&p.cache, &st, err);
    if (!st) dk_pull_cache_index_load(&p.cache);
    if (!st) st = metadata(&p, err);
    if (!st) st = arrays(&p, err);
    res->bytes = p.progress.bytes;
    res->seconds = dk_clock_seconds() - p.t0;
    dk_pull_cache_release(&p.cache);
    if (lock >= 0) close(lock);
    return st;
}
