/* fetch.c: HTTP GETs with retries for the pull (fetch.h), over libcurl. One
 * attempt is one curl_easy_perform; the callbacks decide, once the headers are
 * in, whether the body is what was asked for (status, content type, ETag,
 * Content-Range) and either write it or keep a short error body for the message. */
#define _GNU_SOURCE
#include "student/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "distill/clock.h"
#include "distill/rng.h"

#define ERROR_BODY_MAX 2048 /* of a refusal's body, kept for the message */

dk_fetch_options dk_fetch_options_default(void)
{
    return (dk_fetch_options){
        .retries = 4, .backoff_s = 0.5, .connect_timeout_s = 10, .low_speed_s = 30};
}

dk_status dk_fetch_global_init(dk_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return dk_err_set(err, DK_EIO, "libcurl could not be initialised");
    return DK_OK;
}

void dk_fetch_global_cleanup(void)
{
    curl_global_cleanup();
}

/* One attempt's state, shared by the header and body callbacks. */
typedef struct attempt {
    const dk_fetch_options *o;
    CURL *curl;
    bool want_file;
    bool any_answer; /* dk_fetch_request: any 2xx body; the caller judges it */
    const char *method;
    const void *send; /* request body (POST) */
    size_t send_len;
    /* what the answer said */
    char etag[128], content_range[128], round[32];
    bool decided, to_file;
    long status;
    /* memory body (JSON, or a refusal kept for the message) */
    char *mem;
    size_t mem_len, mem_max;
    /* file body */
    int fd;
    uint64_t have, max, received;
    const char *want_etag;
    /* why the callbacks stopped the transfer (st != DK_OK) */
    dk_status st;
    char why[400];
} attempt;

static void header_value(const char *line, size_t n, char *out, size_t cap)
{
    const char *colon = memchr(line, ':', n);
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, cap, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *line, size_t size, size_t n, void *ctx)
{
    attempt *a = ctx;
    n *= size;
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) /* a new answer (after 100 Continue) */
        a->etag[0] = a->content_range[0] = a->round[0] = '\0';
    else if (n > 5 && !strncasecmp(line, "ETag:", 5))
        header_value(line, n, a->etag, sizeof a->etag);
    else if (n > 13 && !strncasecmp(line, "Dualkd-Round:", 13))
        header_value(line, n, a->round, sizeof a->round);
    else if (n > 14 && !strncasecmp(line, "Content-Range:", 14))
        header_value(line, n, a->content_range, sizeof a->content_range);
    return n;
}

static size_t stop(attempt *a, dk_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t stop(attempt *a, dk_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->why, sizeof a->why, fmt, ap);
    va_end(ap);
    a->st = st;
    return 0; /* makes curl end the transfer with CURLE_WRITE_ERROR */
}

static bool content_type_is(CURL *c, const char *want)
{
    char *type = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    size_t n = strlen(want);
    return type && !strncasecmp(type, want, n) && (type[n] == '\0' || type[n] == ';');
}

static const char *content_type(CURL *c)
{
    char *type = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    return type ? type : "none";
}

/* For an array: is this 200/206 answer the body asked for? 0 = yes, else stop. */
static size_t decide_file(attempt *a)
{
    if (!content_type_is(a->curl, "application/x-npy"))
        return stop(a, DK_EFORMAT, "answered Content-Type '%.100s', not application/x-npy",
                    content_type(a->curl));
    if (strcmp(a->etag, a->want_etag))
        return stop(a, DK_EMISMATCH,
                    "answered ETag '%.100s', not the catalogue's checksum "
                    "(the store changed while pulling? pull again)",
                    a->etag);
    if (a->status == 200 && a->have) { /* the server sends everything: start over */
        if (ftruncate(a->fd, 0) || lseek(a->fd, 0, SEEK_SET) < 0)
            return stop(a, DK_EIO, "cannot truncate the partial file: %s", strerror(errno));
        a->have = 0;
    }
    if (a->status == 206) {
        char want[64];
        snprintf(want, sizeof want, "bytes %" PRIu64 "-", a->have);
        if (strncmp(a->content_range, want, strlen(want)))
            return stop(a, DK_EFORMAT,
                        "answered Content-Range '%.100s' to a Range request "
                        "from the partial file's end",
                        a->content_range);
    }
    a->to_file = true;
    return 1;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    attempt *a = ctx;
    n *= size;
    if (!a->decided) {
        a->decided = true;
        curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
        bool ok = a->want_file    ? a->status == 200 || a->status == 206
                  : a->any_answer ? a->status / 100 == 2
                                  : a->status == 200;
        if (!ok)
            a->mem_max = ERROR_BODY_MAX; /* keep the refusal for the message */
        else if (a->want_file && !decide_file(a))
            return 0;
        else if (!a->want_file && !a->any_answer &&
                 !content_type_is(a->curl, "application/json"))
            return stop(a, DK_EFORMAT, "answered Content-Type '%.100s', not application/json",
                        content_type(a->curl));
    }
    if (a->to_file) {
        if (a->have + a->received + n > a->max)
            return stop(a, DK_ELIMIT,
                        "sent more than the %" PRIu64 " bytes the catalogue's "
                        "dtype and shape allow",
                        a->max);
        for (size_t done = 0; done < n;) {
            ssize_t w = write(a->fd, data + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return stop(a, DK_EIO, "cannot write the partial file: %s", strerror(errno));
            done += (size_t)w;
        }
        a->received += n;
        if (a->o->on_bytes) a->o->on_bytes(n, a->o->ctx);
        return n;
    }
    if (a->mem_len + n > a->mem_max) {
        if (a->status / 100 != 2) return n; /* a refusal: its start is enough */
        return stop(a, DK_ELIMIT, "sent a body over the %zu bytes allowed for it", a->mem_max);
    }
    char *grown = realloc(a->mem, a->mem_len + n + 1);
    if (!grown) return stop(a, DK_ENOMEM, "no memory for the body");
    memcpy(grown + a->mem_len, data, n);
    a->mem = grown;
    a->mem_len += n;
    a->mem[a->mem_len] = '\0';
    return n;
}

static struct curl_slist *headers(const dk_fetch_options *o, const char *const *extra)
{
    struct curl_slist *list = NULL;
    if (o->token) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", o->token);
        list = curl_slist_append(list, auth);
        memset(auth, 0, sizeof auth);
    }
    for (int i = 0; extra && extra[i]; i++)
        list = curl_slist_append(list, extra[i]);
    return list;
}

/* The detail of a problem+json refusal, else the start of the body, into out. */
static void refusal(const attempt *a, char *out, size_t cap)
{
    json_t *p = a->mem ? json_loads(a->mem, 0, NULL) : NULL;
    const char *detail = json_string_value(json_object_get(p, "detail"));
    if (detail)
        snprintf(out, cap, "HTTP %ld: %.300s", a->status, detail);
    else
        snprintf(out, cap, "HTTP %ld (Content-Type '%.60s')", a->status, content_type(a->curl));
    json_decref(p);
}

/* One attempt. *retry says whether another may succeed. Sets err with the reason. */
static dk_status perform(attempt *a, const char *url, const char *const *extra, bool *retry,
                         dk_err *err)
{
    const dk_fetch_options *o = a->o;
    const char *m = a->method ? a->method : "GET";
    char curl_msg[CURL_ERROR_SIZE] = "";
    struct curl_slist *list = headers(o, extra);
    CURL *c = a->curl = curl_easy_init();
    if (!c) {
        curl_slist_free_all(list);
        return dk_err_set(err, DK_ENOMEM, "%s %s: no memory for a libcurl handle", m, url);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->low_speed_s);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    if (!strcmp(m, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->send ? (const char *)a->send : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->send_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (!a->decided) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    dk_status st = DK_OK;
    *retry = false;
    if (a->st) { /* our callbacks refused the answer: retrying gets the same */
        st = dk_err_set(err, a->st, "%s %s: %s", m, url, a->why);
    } else if (rc != CURLE_OK) {
        *retry = true;
        st = dk_err_set(err, DK_EIO, "%s %s: %s", m, url,
                        curl_msg[0] ? curl_msg : curl_easy_strerror(rc));
    } else if (a->any_answer) {
        *retry = a->status == 429 || a->status >= 500;
        if (*retry || a->status / 100 == 1) {
            char why[400];
            refusal(a, why, sizeof why);
            st = dk_err_set(err, DK_EIO, "%s %s: %s", m, url, why);
        }
    } else if (a->status != 200 && !(a->want_file && a->status == 206) && a->status != 304) {
        char why[400];
        refusal(a, why, sizeof why);
        *retry = a->status == 429 || a->status >= 500;
        st = dk_err_set(err, a->status == 404 ? DK_ENOTFOUND : DK_EIO, "%s %s: %s", m, url, why);
    } else if (!a->decided && a->status != 304 && a->want_file) {
        st = dk_err_set(err, DK_EFORMAT, "GET %s: answered an empty body", url);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    a->curl = NULL;
    return st;
}

static void back_off(const dk_fetch_options *o, int attempt_no, dk_rng *rng)
{
    double s = o->backoff_s * (double)(1u << (attempt_no < 10 ? attempt_no : 10)) *
               (0.5 + dk_rng_uniform(rng));
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* After attempt i ended with st: true when it is worth another try (the back-off has
 * been slept); false when the loop stops, with "after N attempts" added to a failure
 * that was retried. */
static bool try_again(const dk_fetch_options *o, dk_status st, bool retry, int i, dk_rng *rng,
                      dk_err *err)
{
    if (!st || !retry || i >= o->retries) {
        if (st && i > 0) dk_err_prefix(err, st, "after %d attempts", i + 1);
        return false;
    }
    back_off(o, i, rng);
    return true;
}

static dk_rng jitter_rng(const char *url)
{
    uint64_t seed = (uint64_t)(dk_clock_seconds() * 1e9) ^ ((uint64_t)getpid() << 32);
    for (const char *c = url; *c; c++)
        seed = seed * 131 + (unsigned char)*c;
    return dk_rng_seed(seed);
}

dk_status dk_fetch_json(const dk_fetch_options *o, const char *url, const char *if_none_match,
                        size_t max, char **body, size_t *len, char etag[128], bool *not_modified,
                        dk_err *err)
{
    char inm[200];
    const char *extra[3] = {"Accept: application/json", NULL, NULL};
    if (if_none_match && *if_none_match) {
        snprintf(inm, sizeof inm, "If-None-Match: %.150s", if_none_match);
        extra[1] = inm;
    }
    *body = NULL, *len = 0, *not_modified = false, etag[0] = '\0';
    dk_rng rng = jitter_rng(url);
    dk_status st = DK_OK;
    for (int i = 0;; i++) {
        attempt a = {.o = o, .mem_max = max, .fd = -1};
        bool retry;
        st = perform(&a, url, extra, &retry, err);
        if (!st) {
            snprintf(etag, 128, "%s", a.etag);
            *not_modified = a.status == 304;
            if (*not_modified && !extra[1])
                st = dk_err_set(err, DK_EFORMAT,
                                "GET %s: answered 304 Not Modified to a request without "
                                "If-None-Match",
                                url);
            if (!st && !*not_modified && !a.mem)
                st = dk_err_set(err, DK_EFORMAT, "GET %s: answered an empty body", url);
            if (!st && !*not_modified) *body = a.mem, *len = a.mem_len, a.mem = NULL;
        }
        free(a.mem);
        if (!try_again(o, st, retry, i, &rng, err)) break;
    }
    return st;
}

static dk_status open_part(const char *path, int *fd, uint64_t *have, dk_err *err)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat sb;
    if (*fd < 0 || fstat(*fd, &sb))
        return dk_err_set(err, DK_EIO, "cannot open '%s': %s", path, strerror(errno));
    *have = (uint64_t)sb.st_size;
    return DK_OK;
}

dk_status dk_fetch_file(const dk_fetch_options *o, const char *url, const char *etag,
                        const char *part_path, uint64_t max, dk_fetch_file_result *res, dk_err *err)
{
    memset(res, 0, sizeof *res);
    dk_rng rng = jitter_rng(url);
    dk_status st = DK_OK;
    bool restarted = false;
    for (int i = 0;; i++) {
        attempt a = {.o = o, .want_file = true, .want_etag = etag, .max = max};
        if ((st = open_part(part_path, &a.fd, &a.have, err))) break;
        if (i == 0) res->resumed_from = a.have;
        char range[64], if_range[200];
        snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-", a.have);
        snprintf(if_range, sizeof if_range, "If-Range: %.150s", etag);
        const char *extra[4] = {"Accept: application/x-npy", range, if_range, NULL};
        if (!a.have) extra[1] = NULL; /* a fresh download asks for everything */
        bool retry;
        st = perform(&a, url, extra, &retry, err);
        if (st && a.status == 416 && a.have && !restarted && !ftruncate(a.fd, 0)) {
            close(a.fd); /* the part is longer than the array: start it over, once */
            free(a.mem);
            restarted = true;
            res->resumed_from = 0;
            i--;
            continue;
        }
        res->received += a.received;
        res->attempts = i + 1;
        if (!st && fsync(a.fd))
            st = dk_err_set(err, DK_EIO, "cannot sync '%s': %s", part_path, strerror(errno));
        close(a.fd);
        free(a.mem);
        if (!st || !retry || i >= o->retries) break;
        back_off(o, i, &rng);
    }
    if (st && res->attempts > 1) dk_err_prefix(err, st, "after %d attempts", res->attempts);
    return st;
}

dk_status dk_fetch_request(const dk_fetch_options *o, const char *method, const char *url,
                           const void *body, size_t body_len, const char *if_none_match,
                           size_t max, dk_fetch_answer *ans, dk_err *err)
{
    char inm[200];
    const char *extra[4] = {"Expect:", NULL, NULL, NULL}; /* no 100-continue round trip */
    if (if_none_match && *if_none_match) {
        snprintf(inm, sizeof inm, "If-None-Match: %.150s", if_none_match);
        extra[1] = inm;
    }
    memset(ans, 0, sizeof *ans);
    dk_rng rng = jitter_rng(url);
    dk_status st = DK_OK;
    for (int i = 0;; i++) {
        attempt a = {.o = o, .any_answer = true, .method = method, .send = body,
                     .send_len = body_len, .mem_max = max, .fd = -1};
        bool retry;
        st = perform(&a, url, extra, &retry, err);
        if (!st) {
            ans->status = a.status;
            snprintf(ans->etag, sizeof ans->etag, "%s", a.etag);
            snprintf(ans->round, sizeof ans->round, "%s", a.round);
            if (a.status / 100 == 2) {
                ans->body = a.mem, ans->len = a.mem_len, a.mem = NULL;
            } else if (a.status != 304) {
                refusal(&a, ans->detail, sizeof ans->detail);
            }
        }
        free(a.mem);
        if (!try_again(o, st, retry, i, &rng, err)) break;
    }
    return st;
}
