/* pull_cache.h: the pull's cache directory (layout in pull.h), shared by the
 * pull (pull.c) and the target source over it (pull_cache.c): atomic writes,
 * the metadata as a manifest and samples, the index, and the check of one
 * array's file against its catalogue entry. student/ only. */
#ifndef DK_PULL_CACHE_H
#define DK_PULL_CACHE_H

#include <jansson.h>
#include <stdbool.h>

#include "student/pull_catalogue.h"

typedef struct dk_pull_cache {
    char dir[4096]; /* <cache>/<profile> */
    dk_store_manifest manifest;
    dk_store_sample_info *samples; /* owned */
    int count;
    json_t *index; /* {"<sample>/<kind>": {"etag", "sha256", "bytes"}} (owned) */
    json_t *pages; /* {"<n>": "<etag>"}: catalogue pages kept in pages/<n>.json (owned) */
} dk_pull_cache;

/* dir = <root>/<profile> (profile checked as a file name), made with its parents
 * when make. Clears c. */
dk_status dk_pull_cache_init(dk_pull_cache *c, const char *root, const char *profile, bool make,
                             dk_err *err);
void dk_pull_cache_release(dk_pull_cache *c);

/* Write data to <dir>/name: temporary name, fsync, rename, fsync of the directory. */
dk_status dk_pull_cache_write(const dk_pull_cache *c, const char *name, const char *data,
                              size_t len, dk_err *err);

/* Manifest and samples from the card, entry and catalogue texts (where names the
 * server for messages). Replaces c's. */
dk_status dk_pull_cache_parse(dk_pull_cache *c, const char *card, const char *entry,
                              const char *catalogue, const char *where, dk_err *err);
/* The same from the cache's teacher.json, profile.json and catalogue.json. */
dk_status dk_pull_cache_load(dk_pull_cache *c, dk_err *err);

/* The index from index.json (absent or unreadable: empty), and saving it. */
void dk_pull_cache_index_load(dk_pull_cache *c);
dk_status dk_pull_cache_index_save(const dk_pull_cache *c, dk_err *err);
/* True when the index has array a of sample id with a's checksum and the file has its size. */
bool dk_pull_cache_has(const dk_pull_cache *c, const char *id, const dk_store_array_info *a);
dk_status dk_pull_cache_index_put(dk_pull_cache *c, const char *id, const dk_store_array_info *a,
                                  uint64_t bytes, dk_err *err);

/* Catalogue page n: its ETag ("" when not kept), its kept text (caller frees; NULL
 * when not kept), and keeping a page's text and ETag. */
const char *dk_pull_cache_page_etag(const dk_pull_cache *c, int n);
char *dk_pull_cache_page_text(const dk_pull_cache *c, int n);
dk_status dk_pull_cache_page_put(dk_pull_cache *c, int n, const char *etag, const char *text,
                                 dk_err *err);

/* <dir>/arrays/<id>/<kind>.npy, and the partial download <...>/<kind>.<etag16>.part. */
void dk_pull_cache_array_path(const dk_pull_cache *c, const char *id, const char *kind, char *out,
                              size_t cap);
void dk_pull_cache_part_path(const dk_pull_cache *c, const char *id, const dk_store_array_info *a,
                             char *out, size_t cap);
/* mkdir <dir>/arrays/<id>. */
dk_status dk_pull_cache_sample_dir(const dk_pull_cache *c, const char *id, dk_err *err);

/* Check the .npy file at path against a (dtype, shape, whole length, SHA-256 of
 * the data); with out, the elements as float32 into out[0..numel). what names
 * the array's origin in messages (a URL or the cached file). *bytes = file size. */
dk_status dk_pull_cache_check(const char *path, const dk_store_array_info *a, const char *what,
                              float *out, uint64_t *bytes, dk_err *err);

#endif
