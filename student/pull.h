/* pull.h: the targets of one profile pulled from `dualkd serve` into a local
 * cache (docs/student.md, "Pulling from a server"), and a target source over
 * that cache, so the trainer reads pulled arrays as it reads a store file.
 *
 * The cache, <cache>/<profile>/: teacher.json (GET /v1/teacher), profile.json
 * (the profile's entry of GET /v1/profiles), catalogue.json (every page of GET
 * /v1/targets), pages/<n>.json (each page as sent), index.json (page -> ETag,
 * "<sample>/<kind>" -> ETag, sha256, bytes) and arrays/<sample>/<kind>.npy as the
 * server sent them. Pages are asked for with If-None-Match; a 304 reuses the kept one. Every file
 * is written to a temporary name, fsync'ed and renamed; an array joins the index only after its
 * header matched the catalogue and its data the catalogue's SHA-256. A download
 * in progress is arrays/<sample>/<kind>.<etag>.part: an interrupted pull leaves
 * it, and the next one resumes it with Range and If-Range. An array whose index
 * entry has the catalogue's checksum is not downloaded again. */
#ifndef DK_PULL_H
#define DK_PULL_H

#include <stdint.h>

#include "student/fetch.h"
#include "student/target_source.h"

typedef struct dk_pull_progress {
    int arrays_done, arrays_total;     /* arrays checked, of all the profile's */
    uint64_t bytes, bytes_total;       /* body bytes received, of those still to fetch */
    uint64_t array_bytes, array_total; /* of the array being fetched (0, 0 between arrays) */
    double seconds;                    /* since the pull started */
} dk_pull_progress;

typedef struct dk_pull_options {
    const char *server; /* "http://host:port" (a trailing '/' is ignored) */
    const char *profile;
    const char *cache_dir;  /* the cache's root; the profile's directory is made inside */
    dk_fetch_options fetch; /* token, retries, timeouts (dk_fetch_options_default) */
    void (*progress)(const dk_pull_progress *p, void *ctx); /* may be NULL */
    void *ctx;
} dk_pull_options;

typedef struct dk_pull_result {
    int samples, arrays;
    int pages, pages_cached; /* catalogue pages; of them, unchanged (304 to their ETag) */
    int cached;              /* arrays already in the cache with the catalogue's checksum */
    int downloaded;          /* arrays fetched by this pull */
    int resumed;             /* of those, continued from a .part left by an earlier pull */
    uint64_t bytes;          /* body bytes received */
    double seconds;
} dk_pull_result;

/* Pull o->profile's model card, catalogue and arrays into the cache (one pull at
 * a time per cache: a second gets DK_EIO naming the lock). Needs
 * dk_fetch_global_init. Messages name the URL and what was wrong with it. */
dk_status dk_pull(const dk_pull_options *o, dk_pull_result *res, dk_err *err);

/* A target source over a complete pull in <cache_dir>/<profile> (every array of
 * its catalogue in the index). Arrays are checked again (header, SHA-256) when
 * read. Close with dk_target_source_close. On failure src is left closed. */
dk_status dk_target_source_open_pulled(const char *cache_dir, const char *profile,
                                       dk_target_source *src, dk_err *err);

#endif
