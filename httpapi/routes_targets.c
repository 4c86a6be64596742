/* routes_targets.c: GET /v1/targets?profile=P (the catalogue, paged, with an
 * ETag) and GET|HEAD /v1/targets/{sample}/{kind}?profile=P[&dtype=f4] (one
 * array as .npy v1.0: float16 as stored or float32 on request; ETag from the
 * stored checksum; If-None-Match -> 304; one byte range -> 206 or 416).
 *
 * An array is read under the HDF5 lock straight into the buffer that becomes
 * the response body, after its .npy header; MHD sends from that buffer (a
 * range from inside it). The body is kept in npy_cache.h, so the next request
 * for the same array sends it again without reading HDF5. HEAD and 304 read
 * nothing. Profile, sample and kind are only ever compared with
 * catalogue entries. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/npy.h"
#include "distill/half.h"
#include "httpapi/npy_cache.h"
#include "httpapi/router.h"
#include "httpapi/server_internal.h"

#define PER_PAGE_DEFAULT 50
#define PER_PAGE_MAX     500

/* The store for ?profile=, or an answer already sent (*answered). */
const dk_served_store *dk_profile_store(dk_request *req, enum MHD_Result *answered)
{
    const char *profile = dk_request_arg(req, "profile");
    if (!profile || !*profile) {
        *answered =
            dk_problem(req, MHD_HTTP_BAD_REQUEST,
                       "the query parameter 'profile' is required (GET /v1/profiles lists them)");
        return NULL;
    }
    if (!dk_token_grants(&req->who, profile)) {
        *answered = dk_problem(req, MHD_HTTP_FORBIDDEN,
                               "the token of site '%s' is not granted profile '%.64s'",
                               req->who.site, profile);
        return NULL;
    }
    dk_store_state state = DK_STORE_READY;
    const dk_served_store *s = dk_stores_find(req->server->stores, profile, &state);
    if (s) return s;
    if (state != DK_STORE_READY)
        *answered = dk_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                               "profile '%s' is not served yet: its store is %s (see /readyz)",
                               profile, state == DK_STORE_VERIFYING ? "being verified" : "damaged");
    else
        *answered = dk_problem(
            req, MHD_HTTP_NOT_FOUND,
            "no profile '%.64s' here (GET /v1/profiles lists the ones you may read)", profile);
    return NULL;
}

/* A positive integer query parameter in [1, max], or def when absent; 0 when malformed. */
static long positive_arg(dk_request *req, const char *name, long def, long max)
{
    const char *v = dk_request_arg(req, name);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 1 || x > max || v[0] == '+' || v[0] == ' ') return 0;
    return x;
}

static json_t *dims_json(const int *dims, int rank)
{
    json_t *a = json_array();
    for (int i = 0; i < rank; i++)
        json_array_append_new(a, json_integer(dims[i]));
    return a;
}

static json_t *sample_json(const dk_served_store *s, int i)
{
    const dk_store_sample_info *si = dk_store_sample_at(s->store, i);
    json_t *arrays = json_array();
    for (int k = 0; k < si->array_count; k++) {
        const dk_store_array_info *a = &si->arrays[k];
        json_array_append_new(arrays, json_pack("{s:s, s:s, s:o, s:s}", "kind", a->kind, "dtype",
                                                dk_store_dtype_npy(a->dtype), "shape",
                                                dims_json(a->dims, a->rank), "sha256", a->sha256));
    }
    const dk_grid *g = &si->grid;
    return json_pack("{s:s, s:s, s:{s:o, s:[fff], s:[fff]}, s:o}", "id", si->id, "split", si->split,
                     "grid", "dims", dims_json(g->dims, 3), "spacing", g->spacing[0], g->spacing[1],
                     g->spacing[2], "origin", g->origin[0], g->origin[1], g->origin[2], "arrays",
                     arrays);
}

enum MHD_Result dk_handle_targets(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered;
    const dk_served_store *s = dk_profile_store(req, &answered);
    if (!s) return answered;
    long page = positive_arg(req, "page", 1, 1000000);
    long per_page = positive_arg(req, "per_page", PER_PAGE_DEFAULT, PER_PAGE_MAX);
    if (!page || !per_page)
        return dk_problem(req, MHD_HTTP_BAD_REQUEST,
                          "'page' must be an integer >= 1 and 'per_page' one in 1..%d",
                          PER_PAGE_MAX);
    long total = dk_store_count(s->store), pages = (total + per_page - 1) / per_page;
    if (page > 1 && page > pages)
        return dk_problem(req, MHD_HTTP_NOT_FOUND, "page %ld of a catalogue with %ld pages of %ld",
                          page, pages, per_page);
    char etag[128];
    snprintf(etag, sizeof etag, "%.33s-%ld-%ld\"", s->catalogue_etag, page, per_page);
    if (dk_etag_matches(dk_request_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
        return dk_respond(req, MHD_HTTP_NOT_MODIFIED, r, 0);
    }
    json_t *samples = json_array();
    for (long i = (page - 1) * per_page; i < total && i < page * per_page; i++)
        json_array_append_new(samples, sample_json(s, (int)i));
    char next[160];
    snprintf(next, sizeof next, "/v1/targets?profile=%s&page=%ld&per_page=%ld", s->profile,
             page + 1, per_page);
    json_t *body = json_pack("{s:s, s:i, s:i, s:i, s:i, s:o, s:s?}", "profile", s->profile, "page",
                             (int)page, "per_page", (int)per_page, "total", (int)total, "pages",
                             (int)pages, "samples", samples, "next", page < pages ? next : NULL);
    return dk_respond_json(req, MHD_HTTP_OK, body, etag);
}

/* ---- one array ---- */

typedef struct target {
    const dk_served_store *s;
    int index;
    const dk_store_array_info *a;
    bool as_f4;
    dk_npy_header h;
    char prefix[DK_NPY_PREFIX_CAP];
    size_t prefix_len, total;
    size_t a_numel;
    char etag[80];
} target;

static dk_npy_dtype npy_dtype(dk_store_dtype t)
{
    return t == DK_STORE_F32 ? DK_NPY_F4 : t == DK_STORE_F16 ? DK_NPY_F2 : DK_NPY_U1;
}

/* Resolve sample, kind and dtype; false when an answer was sent. */
static bool resolve(dk_request *req, const dk_route_params *p, target *t, enum MHD_Result *answered)
{
    if (!(t->s = dk_profile_store(req, answered))) return false;
    t->index = dk_store_find(t->s->store, p->sample);
    if (t->index < 0) {
        *answered =
            dk_problem(req, MHD_HTTP_NOT_FOUND,
                       "no sample '%.100s' in profile '%s' (GET /v1/targets?profile=%s lists them)",
                       p->sample, t->s->profile, t->s->profile);
        return false;
    }
    if (!(t->a = dk_store_array_of(t->s->store, t->index, p->kind))) {
        const dk_store_sample_info *si = dk_store_sample_at(t->s->store, t->index);
        char kinds[400] = "";
        for (int k = 0, n = 0; k < si->array_count; k++)
            n += snprintf(kinds + n, sizeof kinds - (size_t)n, "%s%s", k ? ", " : "",
                          si->arrays[k].kind);
        *answered =
            dk_problem(req, MHD_HTTP_NOT_FOUND, "sample '%s' has no array '%.90s' (it has: %s)",
                       p->sample, p->kind, kinds);
        return false;
    }
    const char *dtype = dk_request_arg(req, "dtype");
    const char *stored = dk_npy_dtype_name(npy_dtype(t->a->dtype));
    if (dtype && strcmp(dtype, "f4") != 0 && strcmp(dtype, stored) != 0) {
        *answered =
            dk_problem(req, MHD_HTTP_BAD_REQUEST,
                       "dtype '%.20s' is not offered: omit it for the stored %s, or ask for f4",
                       dtype, stored);
        return false;
    }
    t->as_f4 = dtype && strcmp(dtype, "f4") == 0 && t->a->dtype != DK_STORE_F32;
    t->h =
        (dk_npy_header){.dtype = t->as_f4 ? DK_NPY_F4 : npy_dtype(t->a->dtype), .rank = t->a->rank};
    for (int d = 0; d < t->a->rank; d++)
        t->h.shape[d] = (size_t)t->a->dims[d];
    dk_err err = {0};
    if (dk_npy_format_header(&t->h, t->prefix, sizeof t->prefix, &t->prefix_len, &err)) {
        *answered = dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
        return false;
    }
    t->total = t->prefix_len + t->h.data_bytes;
    t->a_numel = t->h.numel;
    snprintf(t->etag, sizeof t->etag, "\"%s%s\"", t->a->sha256, t->as_f4 ? "-f4" : "");
    return true;
}

/* 0: no usable Range (send everything); 1: [*from, *to]; -1: unsatisfiable. */
static int parse_range(const char *h, size_t total, size_t *from, size_t *to)
{
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0; /* several ranges: send all */
    const char *spec = h + 6, *dash = strchr(spec, '-');
    if (!dash || strspn(spec, "0123456789-") != strlen(spec) || strchr(dash + 1, '-')) return 0;
    bool has_first = dash > spec, has_last = dash[1] != '\0';
    unsigned long long first = has_first ? strtoull(spec, NULL, 10) : 0;
    unsigned long long last = has_last ? strtoull(dash + 1, NULL, 10) : 0;
    if (!has_first && !has_last) return 0;
    if (!has_first) { /* the last n bytes */
        if (last == 0) return -1;
        *from = last >= total ? 0 : total - (size_t)last;
        *to = total - 1;
        return 1;
    }
    if (has_last && last < first) return 0;
    if (first >= total) return -1;
    *from = (size_t)first;
    *to = !has_last || last >= total ? total - 1 : (size_t)last;
    return 1;
}

static ssize_t never_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    return MHD_CONTENT_READER_END_WITH_ERROR; /* HEAD responses send no body */
}

static void add_headers(struct MHD_Response *r, const target *t, const dk_route_params *p)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-npy");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, t->etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
    if (dk_name_is_safe(p->sample)) {
        char disposition[300], kind[96];
        snprintf(kind, sizeof kind, "%s", p->kind);
        for (char *c = kind; *c; c++)
            if (*c == '/') *c = '-';
        snprintf(disposition, sizeof disposition, "attachment; filename=\"%s_%s.npy\"", p->sample,
                 kind);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition);
    }
}

/* Widen n float16 values, stored in the second half of a 4n-byte region, to
 * float32 over the whole region, in place: element i is read before any write
 * reaches it (writes of element i cover input elements 2i-n and 2i-n+1 <= i). */
static void widen_in_place(char *region, size_t n)
{
    const char *in = region + 2 * n;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        float f = dk_half_to_float(h);
        memcpy(region + 4 * i, &f, 4);
    }
}

/* The whole .npy in one new buffer; NULL after answering 500 (*answered). The
 * lock covers only the raw read; float16 -> float32 happens after it (HDF5's
 * own conversion is slow and would hold every other reader up). */
static char *read_npy(dk_request *req, const target *t, enum MHD_Result *answered)
{
    char *buf = malloc(t->total);
    *answered = MHD_NO;
    if (!buf) return NULL;
    memcpy(buf, t->prefix, t->prefix_len);
    char *data = buf + t->prefix_len;
    size_t raw_bytes = t->a_numel * dk_store_dtype_size(t->a->dtype);
    bool widen = t->as_f4 && t->a->dtype == DK_STORE_F16;
    dk_err err = {0};
    dk_h5_lock();
    dk_status st =
        widen ? dk_store_read_raw(t->s->store, t->index, t->a->kind, data + raw_bytes, raw_bytes,
                                  &err)
        : t->as_f4
            ? dk_store_read(t->s->store, t->index, t->a->kind, (float *)data, t->a_numel, &err)
            : dk_store_read_raw(t->s->store, t->index, t->a->kind, data, raw_bytes, &err);
    dk_h5_unlock();
    if (st) {
        free(buf);
        *answered = dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading the array failed: %s",
                               err.msg);
        return NULL;
    }
    if (widen) widen_in_place(data, t->a_numel);
    return buf;
}

/* Content, not location: the stored checksum, the conversion, dtype and shape. */
static void cache_key(const target *t, char *key, size_t cap)
{
    int n = snprintf(key, cap, "%s %s", t->etag, dk_npy_dtype_name(t->h.dtype));
    for (int d = 0; d < t->h.rank && n > 0 && (size_t)n < cap; d++)
        n += snprintf(key + n, cap - (size_t)n, " %zu", t->h.shape[d]);
}

enum MHD_Result dk_handle_target(dk_request *req, const dk_route_params *p)
{
    target t = {0};
    enum MHD_Result answered;
    if (!resolve(req, p, &t, &answered)) return answered;
    struct MHD_Response *r;
    if (dk_etag_matches(dk_request_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), t.etag)) {
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r) add_headers(r, &t, p);
        return dk_respond(req, MHD_HTTP_NOT_MODIFIED, r, 0);
    }
    size_t from = 0, to = t.total - 1;
    const char *if_range = dk_request_header(req, MHD_HTTP_HEADER_IF_RANGE);
    int range =
        if_range && strcmp(if_range, t.etag) != 0
            ? 0
            : parse_range(dk_request_header(req, MHD_HTTP_HEADER_RANGE), t.total, &from, &to);
    char content_range[96];
    if (range < 0) {
        snprintf(content_range, sizeof content_range, "bytes */%zu", t.total);
        return dk_problem_header(req, MHD_HTTP_RANGE_NOT_SATISFIABLE, MHD_HTTP_HEADER_CONTENT_RANGE,
                                 content_range, "the range starts beyond the array's size");
    }
    size_t len = to - from + 1;
    if (req->head) {
        r = MHD_create_response_from_callback(len, 4096, never_read, NULL, NULL);
    } else {
        const char *npy;
        size_t npy_len;
        char key[DK_NPY_CACHE_KEY];
        cache_key(&t, key, sizeof key);
        dk_npy_body *body = dk_npy_cache_get(key, &npy, &npy_len);
        if (!body) {
            char *buf = read_npy(req, &t, &answered);
            if (!buf) return answered;
            if (!(body = dk_npy_cache_put(key, buf, t.total))) return MHD_NO;
            npy = buf, npy_len = t.total;
        }
        assert(npy_len == t.total);
        r = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)(npy + from),
                                                                   dk_npy_body_release, body);
        if (!r)
            dk_npy_body_release(body);
        else
            dk_metrics_array_served(req->server->metrics);
    }
    if (!r) return MHD_NO;
    add_headers(r, &t, p);
    if (range > 0) {
        snprintf(content_range, sizeof content_range, "bytes %zu-%zu/%zu", from, to, t.total);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    }
    return dk_respond(req, range > 0 ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r, len);
}
