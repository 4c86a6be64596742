/* fetch.h: HTTP GETs for the pull (libcurl): a small JSON body into memory, or
 * one array's body into a ".part" file that a later call resumes with Range and
 * If-Range. Only http and https; connect and low-speed timeouts; a body larger
 * than the caller's bound is cut off; transport failures, 429 and 5xx are retried
 * with exponential back-off and jitter, other answers are not. The bearer token
 * goes into the Authorization header only and never into a message. Messages
 * name the URL and what was wrong with the answer. */
#ifndef DK_FETCH_H
#define DK_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distill/err.h"

typedef struct dk_fetch_options {
    const char *token; /* bearer token; NULL for none */
    int retries;       /* attempts after the first (transport errors, 429, 5xx) */
    double backoff_s;  /* first wait; doubled each retry, times a jitter in [0.5, 1.5) */
    long connect_timeout_s;
    long low_speed_s; /* give up when under 1 KiB/s for this long */
    /* Called with each chunk's byte count as body bytes arrive (may be NULL). */
    void (*on_bytes)(size_t n, void *ctx);
    void *ctx;
} dk_fetch_options;

dk_fetch_options dk_fetch_options_default(void);

/* Call once before any fetch (curl_global_init) and once after (cleanup). */
dk_status dk_fetch_global_init(dk_err *err);
void dk_fetch_global_cleanup(void);

/* GET url, expecting 200 and a JSON content type, body at most max bytes. With
 * if_none_match (may be NULL) a 304 sets *not_modified and leaves *body NULL.
 * The answer's ETag (quotes kept, "" when none) into etag[128]. On success *body
 * is NUL-terminated: caller frees with free(). */
dk_status dk_fetch_json(const dk_fetch_options *o, const char *url, const char *if_none_match,
                        size_t max, char **body, size_t *len, char etag[128], bool *not_modified,
                        dk_err *err);

/* What one array download did. */
typedef struct dk_fetch_file_result {
    uint64_t resumed_from; /* bytes of the .part kept (0: from the start) */
    uint64_t received;     /* body bytes received by this call */
    int attempts;
} dk_fetch_file_result;

/* GET url (application/x-npy) into part_path until it holds the whole body of at
 * most max bytes, whose ETag must be etag (quoted). An existing part_path is
 * resumed (Range: bytes=N-, If-Range: etag); a 200 instead of 206 starts over.
 * part_path is fsync'ed but not renamed: the caller checks it and renames it. */
dk_status dk_fetch_file(const dk_fetch_options *o, const char *url, const char *etag,
                        const char *part_path, uint64_t max, dk_fetch_file_result *res,
                        dk_err *err);

/* The final answer of dk_fetch_request. */
typedef struct dk_fetch_answer {
    long status;       /* HTTP status */
    char etag[128];    /* quotes kept; "" when none */
    char round[32];    /* the Dualkd-Round header; "" when none */
    char *body;        /* a 2xx body, NUL-terminated (NULL when empty); caller frees with free() */
    size_t len;
    char detail[400];  /* any other answer: "HTTP 409: <problem+json detail>" */
} dk_fetch_answer;

/* method ("GET" or "POST") url, with body[0..body_len) (POST; may be NULL) and
 * If-None-Match (may be NULL). Transport failures, 429 and 5xx are retried as
 * above and then fail (DK_EIO naming the method, URL and answer); every other
 * answer returns DK_OK with its status for the caller to judge (no content type
 * is checked): 2xx with its body (at most max bytes, else DK_ELIMIT), 304, and
 * 4xx with the refusal's detail. A POST is retried only where resending is safe
 * for the caller (the federation refuses a second copy of an update). */
dk_status dk_fetch_request(const dk_fetch_options *o, const char *method, const char *url,
                           const void *body, size_t body_len, const char *if_none_match,
                           size_t max, dk_fetch_answer *ans, dk_err *err);

#endif
