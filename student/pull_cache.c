/* pull_cache.c: the pull's cache directory (pull_cache.h) and the target source
 * over it (dk_target_source_open_pulled, pull.h). */
#define _GNU_SOURCE
#include "student/pull_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/npy.h"
#include "datasets/volume.h"
#include "distill/half.h"
#include "student/pull.h"

#define META_MAX ((size_t)256 << 20) /* the largest metadata file read back */

static dk_status make_dir(const char *path, dk_err *err)
{
    if (mkdir(path, 0755) && errno != EEXIST)
        return dk_err_set(err, DK_EIO, "cannot make directory '%s': %s", path, strerror(errno));
    return DK_OK;
}

dk_status dk_pull_cache_init(dk_pull_cache *c, const char *root, const char *profile, bool make,
                             dk_err *err)
{
    memset(c, 0, sizeof *c);
    if (!dk_volume_id_valid(profile))
        return dk_err_set(err, DK_EINVAL,
                          "profile '%s' cannot name a cache directory "
                          "([A-Za-z0-9._-], under 64 bytes)",
                          profile);
    snprintf(c->dir, sizeof c->dir, "%.3900s/%s", root, profile);
    char arrays[4200];
    snprintf(arrays, sizeof arrays, "%s/arrays", c->dir);
    dk_status st = DK_OK;
    if (make && !(st = make_dir(root, err)) && !(st = make_dir(c->dir, err)))
        st = make_dir(arrays, err);
    snprintf(arrays, sizeof arrays, "%s/pages", c->dir);
    if (make && !st) st = make_dir(arrays, err);
    c->index = json_object();
    c->pages = json_object();
    return st;
}

void dk_pull_cache_release(dk_pull_cache *c)
{
    free(c->samples);
    json_decref(c->index);
    json_decref(c->pages);
    memset(c, 0, sizeof *c);
}

static dk_status sync_dir(const char *dir, dk_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd)) {
        if (fd >= 0) close(fd);
        return dk_err_set(err, DK_EIO, "cannot sync directory '%s': %s", dir, strerror(errno));
    }
    close(fd);
    return DK_OK;
}

dk_status dk_pull_cache_write(const dk_pull_cache *c, const char *name, const char *data,
                              size_t len, dk_err *err)
{
    char path[4300], tmp[4400];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < len;) {
        ssize_t w = write(fd, data + done, len - done);
        ok = w > 0 || (w < 0 && errno == EINTR);
        if (w > 0) done += (size_t)w;
    }
    ok = ok && !fsync(fd);
    if (fd >= 0 && close(fd)) ok = false;
    if (!ok || rename(tmp, path)) {
        dk_status st = dk_err_set(err, DK_EIO, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return st;
    }
    *strrchr(path, '/') = '\0'; /* the directory the name was made in */
    return sync_dir(path, err);
}

static char *read_file(const char *path, size_t max, size_t *len, dk_err *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size = -1;
    if (f && !fseek(f, 0, SEEK_END)) size = ftell(f);
    if (f && size >= 0 && (size_t)size <= max && !fseek(f, 0, SEEK_SET) &&
        (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
        buf[size] = '\0';
        *len = (size_t)size;
    } else {
        free(buf);
        buf = NULL;
        dk_err_set(err, size > 0 && (size_t)size > max ? DK_ELIMIT : DK_EIO,
                   "cannot read '%s' (at most %zu bytes): %s", path, max,
                   f ? "read failed or too large" : strerror(errno));
    }
    if (f) fclose(f);
    return buf;
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(const dk_store_sample_info *const *)a)->id,
                  (*(const dk_store_sample_info *const *)b)->id);
}

/* Ids name cache directories: two samples with one id would share files. */
static dk_status check_unique(const dk_store_sample_info *samples, size_t n, const char *where,
                              dk_err *err)
{
    const dk_store_sample_info **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return dk_err_set(err, DK_ENOMEM, "no memory for %zu sample ids", n);
    for (size_t i = 0; i < n; i++)
        sorted[i] = &samples[i];
    qsort(sorted, n, sizeof *sorted, by_id);
    dk_status st = DK_OK;
    for (size_t i = 1; !st && i < n; i++)
        if (!strcmp(sorted[i - 1]->id, sorted[i]->id))
            st = dk_err_set(err, DK_EFORMAT, "%s: sample '%s' is listed twice", where,
                            sorted[i]->id);
    free(sorted);
    return st;
}

dk_status dk_pull_cache_parse(dk_pull_cache *c, const char *card, const char *entry,
                              const char *catalogue, const char *where, dk_err *err)
{
    free(c->samples);
    c->samples = NULL, c->count = 0;
    dk_status st = dk_pull_manifest(card, entry, where, &c->manifest, err);
    if (st) return st;
    json_t *list = json_loads(catalogue, 0, NULL);
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n > DK_PULL_MAX_SAMPLES) {
        json_decref(list);
        return dk_err_set(err, DK_EFORMAT, "%s: the catalogue is not a list of at most %d samples",
                          where, DK_PULL_MAX_SAMPLES);
    }
    c->samples = calloc(n ? n : 1, sizeof *c->samples);
    if (!c->samples) st = dk_err_set(err, DK_ENOMEM, "no memory for %zu samples", n);
    for (size_t i = 0; !st && i < n; i++)
        st = dk_pull_sample(json_array_get(list, i), &c->manifest, where, &c->samples[i], err);
    json_decref(list);
    if (!st) st = check_unique(c->samples, n, where, err);
    if (!st) c->count = (int)n;
    return st;
}

dk_status dk_pull_cache_load(dk_pull_cache *c, dk_err *err)
{
    const char *names[3] = {"teacher.json", "profile.json", "catalogue.json"};
    char *text[3] = {NULL, NULL, NULL}, path[4300];
    dk_status st = DK_OK;
    for (int k = 0; !st && k < 3; k++) {
        size_t len;
        snprintf(path, sizeof path, "%s/%s", c->dir, names[k]);
        if (!(text[k] = read_file(path, META_MAX, &len, err)))
            st = dk_err_prefix(err, DK_ENOTFOUND,
                               "the pull cache '%s' is incomplete (pull with "
                               "--server first)",
                               c->dir);
    }
    char where[4300];
    snprintf(where, sizeof where, "pull cache '%s'", c->dir);
    if (!st) st = dk_pull_cache_parse(c, text[0], text[1], text[2], where, err);
    for (int k = 0; k < 3; k++)
        free(text[k]);
    return st;
}

/* ---- the index ---- */

void dk_pull_cache_index_load(dk_pull_cache *c)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/index.json", c->dir);
    json_t *root = json_load_file(path, 0, NULL);
    json_t *arrays = json_object_get(root, "arrays"), *pages = json_object_get(root, "pages");
    if (json_is_object(arrays)) {
        json_decref(c->index);
        c->index = json_incref(arrays);
    }
    if (json_is_object(pages)) {
        json_decref(c->pages);
        c->pages = json_incref(pages);
    }
    json_decref(root);
}

dk_status dk_pull_cache_index_save(const dk_pull_cache *c, dk_err *err)
{
    json_t *root =
        json_pack("{s:s, s:i, s:s, s:O, s:O}", "format", "dualkd-pull-index", "version", 1,
                  "profile", c->manifest.profile, "pages", c->pages, "arrays", c->index);
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text) return dk_err_set(err, DK_ENOMEM, "no memory for the cache index");
    dk_status st = dk_pull_cache_write(c, "index.json", text, strlen(text), err);
    free(text);
    return st;
}

static void key_of(const char *id, const char *kind, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", id, kind);
}

bool dk_pull_cache_has(const dk_pull_cache *c, const char *id, const dk_store_array_info *a)
{
    char key[128], path[4400];
    key_of(id, a->kind, key, sizeof key);
    json_t *e = json_object_get(c->index, key);
    const char *sha = json_string_value(json_object_get(e, "sha256"));
    json_int_t bytes = json_integer_value(json_object_get(e, "bytes"));
    struct stat sb;
    dk_pull_cache_array_path(c, id, a->kind, path, sizeof path);
    return sha && !strcmp(sha, a->sha256) && !stat(path, &sb) && sb.st_size == bytes;
}

dk_status dk_pull_cache_index_put(dk_pull_cache *c, const char *id, const dk_store_array_info *a,
                                  uint64_t bytes, dk_err *err)
{
    char key[128], etag[80];
    key_of(id, a->kind, key, sizeof key);
    snprintf(etag, sizeof etag, "\"%s\"", a->sha256);
    json_t *e =
        json_pack("{s:s, s:s, s:I}", "etag", etag, "sha256", a->sha256, "bytes", (json_int_t)bytes);
    if (!e || json_object_set_new(c->index, key, e))
        return dk_err_set(err, DK_ENOMEM, "no memory for the cache index");
    return DK_OK;
}

const char *dk_pull_cache_page_etag(const dk_pull_cache *c, int n)
{
    char key[16];
    snprintf(key, sizeof key, "%d", n);
    const char *etag = json_string_value(json_object_get(c->pages, key));
    return etag ? etag : "";
}

char *dk_pull_cache_page_text(const dk_pull_cache *c, int n)
{
    char path[4300];
    size_t len;
    snprintf(path, sizeof path, "%s/pages/%d.json", c->dir, n);
    return read_file(path, META_MAX, &len, NULL);
}

dk_status dk_pull_cache_page_put(dk_pull_cache *c, int n, const char *etag, const char *text,
                                 dk_err *err)
{
    char key[16], name[32];
    snprintf(key, sizeof key, "%d", n);
    snprintf(name, sizeof name, "pages/%d.json", n);
    dk_status st = dk_pull_cache_write(c, name, text, strlen(text), err);
    if (!st && json_object_set_new(c->pages, key, json_string(etag)))
        st = dk_err_set(err, DK_ENOMEM, "no memory for the cache index");
    return st;
}

void dk_pull_cache_array_path(const dk_pull_cache *c, const char *id, const char *kind, char *out,
                              size_t cap)
{
    char file[40];
    dk_pull_kind_file(kind, file, sizeof file);
    snprintf(out, cap, "%s/arrays/%s/%s.npy", c->dir, id, file);
}

void dk_pull_cache_part_path(const dk_pull_cache *c, const char *id, const dk_store_array_info *a,
                             char *out, size_t cap)
{
    char file[40];
    dk_pull_kind_file(a->kind, file, sizeof file);
    snprintf(out, cap, "%s/arrays/%s/%s.%.16s.part", c->dir, id, file, a->sha256);
}

dk_status dk_pull_cache_sample_dir(const dk_pull_cache *c, const char *id, dk_err *err)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/arrays/%s", c->dir, id);
    return make_dir(path, err);
}

/* ---- one array's file ---- */

/* SHA-256 through libcrypto (SHA-NI/AVX2 where the CPU has them): the portable
 * teacher/sha256.c took 60 % of a pull's CPU time (bench/bench_pull.c). */
static dk_status sha256_hex(const void *data, size_t n, char hex[65], dk_err *err)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, n, digest, &len, EVP_sha256(), NULL) || len != 32)
        return dk_err_set(err, DK_ENOMEM, "libcrypto could not compute a SHA-256");
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return DK_OK;
}

static dk_status check_header(const dk_npy_header *h, const dk_store_array_info *a, size_t size,
                              const char *what, dk_err *err)
{
    dk_npy_dtype want = a->dtype == DK_STORE_F32 ? DK_NPY_F4 : DK_NPY_F2;
    bool same = h->dtype == want && !h->big_endian && h->rank == a->rank;
    for (int d = 0; same && d < a->rank; d++)
        same = h->shape[d] == (size_t)a->dims[d];
    if (!same)
        return dk_err_set(err, DK_EMISMATCH,
                          "%s: the .npy holds %s%s of rank %d (first dim %zu); "
                          "the catalogue says %s of rank %d (first dim %d)",
                          what, h->big_endian ? "big-endian " : "", dk_npy_dtype_name(h->dtype),
                          h->rank, h->rank ? h->shape[0] : 0, dk_npy_dtype_name(want), a->rank,
                          a->dims[0]);
    if (size != h->data_offset + h->data_bytes)
        return dk_err_set(err, DK_EFORMAT,
                          "%s: the .npy is %zu bytes; its header says %zu "
                          "(%s)",
                          what, size, h->data_offset + h->data_bytes,
                          size < h->data_offset + h->data_bytes ? "truncated" : "trailing bytes");
    return DK_OK;
}

dk_status dk_pull_cache_check(const char *path, const dk_store_array_info *a, const char *what,
                              float *out, uint64_t *bytes, dk_err *err)
{
    size_t numel = dk_store_array_numel(a), len = 0;
    size_t max = numel * dk_store_dtype_size(a->dtype) + DK_NPY_HEADER_MAX + 16;
    char *buf = read_file(path, max, &len, err);
    if (!buf) return dk_err_prefix(err, DK_EIO, "%s", what);
    dk_npy_header h;
    dk_status st = dk_npy_parse_header(buf, len, &h, err);
    if (st) st = dk_err_prefix(err, st, "%s", what);
    if (!st) st = check_header(&h, a, len, what, err);
    char sha[65];
    if (!st) st = sha256_hex(buf + h.data_offset, h.data_bytes, sha, err);
    if (!st && strcmp(sha, a->sha256))
        st = dk_err_set(err, DK_EFORMAT,
                        "%s: the data's SHA-256 is %.16s..., the catalogue's "
                        "%.16s... (damaged in transit or on disk)",
                        what, sha, a->sha256);
    const char *data = buf + h.data_offset;
    for (size_t i = 0; !st && out && i < numel; i++) {
        if (a->dtype == DK_STORE_F32) {
            memcpy(&out[i], data + 4 * i, 4);
        } else {
            uint16_t half;
            memcpy(&half, data + 2 * i, 2);
            out[i] = dk_half_to_float(half);
        }
    }
    if (bytes) *bytes = len;
    free(buf);
    return st;
}

/* ---- the target source ---- */

static const dk_store_sample_info *pulled_sample(dk_target_source *s, int i)
{
    return &((dk_pull_cache *)s->impl)->samples[i];
}

static dk_status pulled_read(dk_target_source *s, int i, const char *kind, float *out, size_t count,
                             dk_err *err)
{
    dk_pull_cache *c = s->impl;
    const dk_store_sample_info *info = &c->samples[i];
    for (int k = 0; k < info->array_count; k++) {
        const dk_store_array_info *a = &info->arrays[k];
        if (strcmp(a->kind, kind)) continue;
        if (count != dk_store_array_numel(a))
            return dk_err_set(err, DK_EINVAL, "sample '%s', '%s': %zu values asked, it has %zu",
                              info->id, kind, count, dk_store_array_numel(a));
        char path[4400];
        dk_pull_cache_array_path(c, info->id, kind, path, sizeof path);
        return dk_pull_cache_check(path, a, path, out, NULL, err);
    }
    return dk_err_set(err, DK_ENOTFOUND, "%s: sample '%s' has no '%s'", s->where, info->id, kind);
}

static void pulled_close(dk_target_source *s)
{
    dk_pull_cache_release(s->impl);
    free(s->impl);
}

dk_status dk_target_source_open_pulled(const char *cache_dir, const char *profile,
                                       dk_target_source *src, dk_err *err)
{
    memset(src, 0, sizeof *src);
    dk_pull_cache *c = malloc(sizeof *c);
    if (!c) return dk_err_set(err, DK_ENOMEM, "no memory for the pull cache");
    dk_status st = dk_pull_cache_init(c, cache_dir, profile, false, err);
    if (!st) st = dk_pull_cache_load(c, err);
    if (!st) dk_pull_cache_index_load(c);
    for (int i = 0; !st && i < c->count; i++)
        for (int k = 0; !st && k < c->samples[i].array_count; k++)
            if (!dk_pull_cache_has(c, c->samples[i].id, &c->samples[i].arrays[k]))
                st = dk_err_set(err, DK_ENOTFOUND,
                                "the pull cache '%s' lacks sample '%s', array "
                                "'%s' (an interrupted pull? pull again with --server)",
                                c->dir, c->samples[i].id, c->samples[i].arrays[k].kind);
    if (st) {
        dk_pull_cache_release(c);
        free(c);
        return st;
    }
    snprintf(src->where, sizeof src->where, "pulled targets '%.4000s'", c->dir);
    src->manifest = &c->manifest;
    src->count = c->count;
    src->sample = pulled_sample;
    src->read = pulled_read;
    src->close = pulled_close;
    src->impl = c;
    return DK_OK;
}
