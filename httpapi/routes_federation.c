/* routes_federation.c: the /v1/federation routes (docs/federation.md, "HTTP
 * routes"): create a federation (scope federation-admin), join it, download
 * the global student (the HDF5 checkpoint as stored, ETag = its SHA-256; or with
 * ?dtype=f2 its float16 deflated .npz, fed_global16.h, ETag
 * "f2-deflate-<that SHA-256>"), submit an update (a stored or deflated .npz of
 * weight deltas, float16 or float32,
 * with ?labelled=N[&val_dice=D]), and status/history as JSON.
 *
 * The calling site is the token's site, never a name from the body or query.
 * Creating takes its settings as JSON (the initial student is the server's
 * --fed-student) or, with the initial student uploaded as the body
 * (application/x-hdf5), from the query.
 * Every coordinator call holds the process-wide HDF5 lock (fed_service.h).
 * The coordinator's verdicts become problem+json answers; a failure of the
 * server itself (I/O, store) is a 500 that says what failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/npz.h"
#include "httpapi/fed_global16.h"
#include "httpapi/fed_service.h"
#include "httpapi/router.h"
#include "httpapi/server_internal.h"

#define UPDATE_SUFFIX "/updates"

/* Only a caller whose token has the federation scope (federation-admin to create
 * with an uploaded student) may send a body that large:
 * bodies are buffered before the route runs, and a stranger must not make the
 * server hold --fed-max-update bytes per connection. */
unsigned long dk_fed_body_limit(const dk_server *s, struct MHD_Connection *conn, const char *url)
{
    size_t n = strlen(url), k = strlen(UPDATE_SUFFIX);
    bool update = strncmp(url, "/v1/federation/", 15) == 0 && n > k &&
                  strcmp(url + n - k, UPDATE_SUFFIX) == 0;
    bool create = strcmp(url, "/v1/federation") == 0;
    if (!s->fed || s->fed_max_update <= s->max_body || !(update || create)) return s->max_body;
    dk_token_entry who;
    char detail[256];
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned need = update ? DK_SCOPE_FEDERATION : DK_SCOPE_FEDERATION_ADMIN;
    unsigned code = dk_auth_check(s->auth, auth, need, &who, detail, sizeof detail);
    return code == 200 ? s->fed_max_update : s->max_body;
}

/* The coordinator, or an answer that this server runs none. */
static dk_fed_coord *coord_of(dk_request *req, enum MHD_Result *answered)
{
    if (req->server->fed) return dk_fed_service_coord(req->server->fed);
    *answered = dk_problem(req, MHD_HTTP_NOT_FOUND,
                           "this server runs no federation coordinator (start `dualkd serve` "
                           "with --federation DIR)");
    return NULL;
}

static enum MHD_Result refusal(dk_request *req, const dk_fed_verdict *v, unsigned bad_request)
{
    unsigned status = v->kind == DK_FED_FORBIDDEN   ? MHD_HTTP_FORBIDDEN
                      : v->kind == DK_FED_NOT_FOUND ? MHD_HTTP_NOT_FOUND
                      : v->kind == DK_FED_CONFLICT  ? MHD_HTTP_CONFLICT
                                                    : bad_request;
    return dk_problem(req, status, "%s", v->reason);
}

static enum MHD_Result failed(dk_request *req, const char *what, const dk_err *e)
{
    return dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "the coordinator failed to %s: %s", what,
                      e->msg);
}

/* ---- status ---------------------------------------------------------------------------- */

static enum MHD_Result answer_status(dk_request *req, dk_fed_coord *c, const char *fed,
                                     unsigned status, const char *location)
{
    json_t *body = NULL;
    dk_fed_verdict v;
    dk_err e = {0};
    dk_h5_lock();
    dk_status st = dk_fed_status_json(c, fed, dk_fed_now(), &body, &v, &e);
    dk_h5_unlock();
    if (st) return failed(req, "report the status", &e);
    if (v.kind != DK_FED_ACCEPTED) return refusal(req, &v, MHD_HTTP_BAD_REQUEST);
    if (!location) return dk_respond_json(req, status, body, NULL);
    char *text = json_dumps(body, JSON_INDENT(2) | JSON_REAL_PRECISION(7));
    json_decref(body);
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    return dk_respond(req, status, r, strlen(text));
}

enum MHD_Result dk_handle_fed_status(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered = MHD_NO;
    dk_fed_coord *c = coord_of(req, &answered);
    return c ? answer_status(req, c, p->sample, MHD_HTTP_OK, NULL) : answered;
}

/* ---- create ---------------------------------------------------------------------------- */

/* Settings from a JSON body into r (strings borrowed from *json); false after answering. */
static bool settings_from_json(dk_request *req, dk_fed_create_req *r, json_t **json,
                               enum MHD_Result *answered)
{
    json_error_t jerr;
    json_int_t deadline = 0;
    *json = req->body ? json_loadb(req->body, req->body_in, 0, &jerr) : NULL;
    if (*json && json_unpack_ex(*json, &jerr, JSON_STRICT, "{s:s, s:i, s:i, s:I}", "name", &r->name,
                                "rounds", &r->rounds, "quorum", &r->quorum, "deadline_seconds",
                                &deadline) == 0) {
        r->deadline_seconds = deadline;
        return true;
    }
    *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                           "the body must be {\"name\": str, \"rounds\": int, \"quorum\": int, "
                           "\"deadline_seconds\": int} and nothing else: %s",
                           req->body ? jerr.text : "no body");
    return false;
}

static bool int_arg(dk_request *req, const char *name, long long lo, long long hi, long long *out,
                    bool *present);

/* Settings from the query (the body is the initial student); false after answering. */
static bool settings_from_query(dk_request *req, dk_fed_create_req *r, enum MHD_Result *answered)
{
    long long rounds = 0, quorum = 0, deadline = 0;
    bool a, b, d;
    r->name = dk_request_arg(req, "name");
    if (r->name && int_arg(req, "rounds", 1, DK_FED_MAX_ROUNDS, &rounds, &a) && a &&
        int_arg(req, "quorum", 1, DK_FED_MAX_QUORUM, &quorum, &b) && b &&
        int_arg(req, "deadline_seconds", 1, DK_FED_MAX_DEADLINE, &deadline, &d) && d) {
        r->rounds = (int)rounds, r->quorum = (int)quorum, r->deadline_seconds = deadline;
        return true;
    }
    *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                           "with a checkpoint body, the query needs name, rounds (1..%d), quorum "
                           "(1..%d) and deadline_seconds (1..%lld)",
                           DK_FED_MAX_ROUNDS, DK_FED_MAX_QUORUM, DK_FED_MAX_DEADLINE);
    return false;
}

/* The uploaded checkpoint into a new file in the coordinator's directory (which
 * dk_fed_create copies in and checks); path has cap bytes. false after answering. */
static bool write_upload(dk_request *req, char *path, size_t cap, enum MHD_Result *answered)
{
    snprintf(path, cap, "%s/.upload-XXXXXX", dk_fed_service_dir(req->server->fed));
    int fd = req->body_in ? mkstemp(path) : -1;
    size_t done = 0;
    while (fd >= 0 && done < req->body_in) {
        ssize_t n = write(fd, req->body + done, req->body_in - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (fd >= 0) close(fd);
    if (fd >= 0 && done == req->body_in) return true;
    if (fd >= 0) unlink(path);
    *answered = req->body_in ? dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                          "cannot store the uploaded student: %s", strerror(errno))
                             : dk_problem(req, MHD_HTTP_BAD_REQUEST,
                                          "the body must be the initial student checkpoint");
    return false;
}

static enum MHD_Result create(dk_request *req, dk_fed_coord *c, const dk_fed_create_req *r)
{
    char fed[DK_FED_NAME_MAX + 1], location[128];
    snprintf(fed, sizeof fed, "%s", r->name ? r->name : "");
    dk_fed_verdict v;
    dk_err e = {0};
    dk_h5_lock();
    dk_status st = dk_fed_create(c, r, dk_fed_now(), &v, &e);
    dk_h5_unlock();
    if (st) return failed(req, "create the federation", &e);
    if (v.kind != DK_FED_ACCEPTED) return refusal(req, &v, MHD_HTTP_BAD_REQUEST);
    snprintf(location, sizeof location, "/v1/federation/%s", fed);
    return answer_status(req, c, fed, MHD_HTTP_CREATED, location);
}

/* JSON settings with the server's --fed-student, or the query's settings with
 * the initial student as an application/x-hdf5 body. */
enum MHD_Result dk_handle_fed_create(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered = MHD_NO;
    dk_fed_coord *c = coord_of(req, &answered);
    if (!c) return answered;
    const char *type = dk_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    dk_fed_create_req r = {.initial_checkpoint = dk_fed_service_initial(req->server->fed)};
    if (type && strncmp(type, "application/x-hdf5", 18) == 0) {
        char path[DK_FED_PATH_MAX + 32];
        if (!settings_from_query(req, &r, &answered) ||
            !write_upload(req, path, sizeof path, &answered))
            return answered;
        r.initial_checkpoint = path;
        answered = create(req, c, &r);
        unlink(path);
        return answered;
    }
    if (!type || strncmp(type, "application/json", 16) != 0)
        return dk_problem(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "send {name, rounds, quorum, deadline_seconds} as application/json, or "
                          "the initial student as application/x-hdf5 (got '%.60s')",
                          type ? type : "none");
    if (!r.initial_checkpoint)
        return dk_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "this server has no initial student (start it with --fed-student "
                          "CHECKPOINT.h5, or upload one as application/x-hdf5)");
    json_t *json = NULL;
    answered = settings_from_json(req, &r, &json, &answered) ? create(req, c, &r) : answered;
    json_decref(json);
    return answered;
}

/* ---- join ------------------------------------------------------------------------------ */

enum MHD_Result dk_handle_fed_join(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered = MHD_NO;
    dk_fed_coord *c = coord_of(req, &answered);
    if (!c) return answered;
    dk_fed_verdict v;
    dk_err e = {0};
    dk_h5_lock();
    dk_status st = dk_fed_join(c, p->sample, req->who.site, dk_fed_now(), &v, &e);
    dk_h5_unlock();
    if (st) return failed(req, "record the membership", &e);
    if (v.kind != DK_FED_ACCEPTED) return refusal(req, &v, MHD_HTTP_BAD_REQUEST);
    return dk_respond_json(
        req, MHD_HTTP_OK,
        json_pack("{s:s, s:s, s:b}", "federation", p->sample, "site", req->who.site, "member", 1),
        NULL);
}

/* ---- the global student ------------------------------------------------------------------ */

/* ?dtype=f2 (the float16 .npz) or f4 / none (the float32 checkpoint); -1 when neither. */
static int global_dtype(dk_request *req)
{
    const char *d = dk_request_arg(req, "dtype");
    return !d || !strcmp(d, "f4") ? 4 : !strcmp(d, "f2") ? 2 : -1;
}

enum MHD_Result dk_handle_fed_global(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered = MHD_NO;
    dk_fed_coord *c = coord_of(req, &answered);
    if (!c) return answered;
    int dtype = global_dtype(req);
    if (dtype < 0)
        return dk_problem(req, MHD_HTTP_BAD_REQUEST,
                          "dtype '%.20s': ask for f2 (float16 .npz) or f4 (the float32 "
                          "checkpoint, the default)", dk_request_arg(req, "dtype"));
    char path[DK_FED_PATH_MAX], sha[DK_FED_SHA_HEX], etag[DK_FED_SHA_HEX + 16], round_text[16];
    char h5_path[DK_FED_PATH_MAX];
    int round = -1;
    dk_fed_verdict v;
    dk_err e = {0};
    dk_h5_lock();
    dk_status st = dk_fed_fetch_global(c, p->sample, req->who.site, dk_fed_now(), h5_path, sha,
                                       &round, &v, &e);
    if (!st && v.kind == DK_FED_ACCEPTED && dtype == 2)
        st = dk_fed_global16(h5_path, path, sizeof path, &e);
    else
        snprintf(path, sizeof path, "%s", h5_path);
    dk_h5_unlock();
    if (st) return failed(req, "find the global student", &e);
    if (v.kind != DK_FED_ACCEPTED) return refusal(req, &v, MHD_HTTP_BAD_REQUEST);
    /* the .npz is a function of the checkpoint's values: its tag follows the checkpoint's;
     * "deflate" in it: the stored .npz of earlier versions was another representation */
    snprintf(etag, sizeof etag, dtype == 2 ? "\"f2-deflate-%s\"" : "\"%s\"", sha);
    snprintf(round_text, sizeof round_text, "%d", round);
    bool unchanged = dk_etag_matches(dk_request_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), etag);
    int fd = unchanged ? -1 : open(path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (!unchanged && (fd < 0 || fstat(fd, &info) != 0)) {
        if (fd >= 0) close(fd);
        return dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "the global student of round %d cannot be read", round);
    }
    uint64_t size = unchanged ? 0 : (uint64_t)info.st_size;
    struct MHD_Response *r = unchanged
                                 ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
                                 : MHD_create_response_from_fd(size, fd);
    if (!r) {
        if (fd >= 0) close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, "Dualkd-Round", round_text);
    if (!unchanged)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                dtype == 2 ? "application/zip" : "application/x-hdf5");
    if (!unchanged && !req->head) { /* accounted as handed to MHD: what a site was given */
        if (dk_fed_note_download(c, p->sample, req->who.site, round, (int64_t)size, &e) == DK_OK)
            dk_metrics_fed_bytes(req->server->metrics, req->who.site, 0, size);
    }
    return dk_respond(req, unchanged ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r, size);
}

/* ---- updates ----------------------------------------------------------------------------- */

/* A query integer in [lo, hi]; false when present and malformed or out of range. */
static bool int_arg(dk_request *req, const char *name, long long lo, long long hi, long long *out,
                    bool *present)
{
    const char *s = dk_request_arg(req, name);
    *present = s != NULL;
    if (!s) return true;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi || *s == ' ' || *s == '+') return false;
    *out = x;
    return true;
}

/* The .npz arrays as wire tensors (borrowing z), or a 400/422 answered. */
static bool to_wire(dk_request *req, const dk_npz *z, dk_fed_wire_tensor *t,
                    enum MHD_Result *answered)
{
    for (int i = 0; i < z->count; i++) {
        const dk_npz_entry *e = &z->entries[i];
        const dk_npy_array *a = &e->array;
        if (a->dtype != DK_NPY_F2 && a->dtype != DK_NPY_F4) {
            *answered =
                dk_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT,
                           "update tensor '%.100s' is %s; send float16 (f2) or float32 (f4)",
                           e->name, dk_npy_dtype_name(a->dtype));
            return false;
        }
        t[i] =
            (dk_fed_wire_tensor){.name = e->name,
                                 .dtype = a->dtype == DK_NPY_F2 ? DK_FED_FLOAT16 : DK_FED_FLOAT32,
                                 .rank = a->rank,
                                 .data = a->data,
                                 .nbytes = a->numel * dk_npy_dtype_size(a->dtype)};
        for (int k = 0; k < a->rank; k++)
            t[i].dims[k] = (int64_t)a->shape[k];
    }
    return true;
}

static enum MHD_Result submit(dk_request *req, dk_fed_coord *c, dk_fed_submission *s)
{
    dk_npz z;
    dk_err e = {0};
    if (!req->body_in)
        return dk_problem(req, MHD_HTTP_BAD_REQUEST,
                          "the body must be the update as a .npz (np.savez or np.savez_compressed), "
                          "one array per student parameter");
    /* the update's arrays, deflated or not, are bounded as a stored body would be */
    size_t bound = req->server->fed_max_update ? req->server->fed_max_update : req->body_in;
    if (dk_npz_decode(req->body, req->body_in, bound, &z, &e) != DK_OK)
        return dk_problem(req, MHD_HTTP_BAD_REQUEST, "the body is not a usable update: %s", e.msg);
    dk_fed_wire_tensor *t = calloc(z.count ? z.count : 1, sizeof *t);
    enum MHD_Result answered = MHD_NO;
    if (!t || !to_wire(req, &z, t, &answered)) {
        free(t);
        dk_npz_free(&z);
        return t ? answered : MHD_NO;
    }
    s->tensors = t, s->count = z.count, s->bytes = (int64_t)req->body_in;
    dk_fed_verdict v;
    dk_h5_lock();
    dk_status st = dk_fed_submit(c, s, dk_fed_now(), &v, &e);
    dk_h5_unlock();
    free(t);
    dk_npz_free(&z);
    if (st) return failed(req, "store the update", &e);
    if (v.kind != DK_FED_FORBIDDEN && v.kind != DK_FED_NOT_FOUND) /* recorded, as the status */
        dk_metrics_fed_bytes(req->server->metrics, s->site, req->body_in, 0);
    if (v.kind != DK_FED_ACCEPTED) return refusal(req, &v, MHD_HTTP_UNPROCESSABLE_CONTENT);
    return dk_respond_json(req, MHD_HTTP_ACCEPTED,
                           json_pack("{s:s, s:s, s:i, s:b, s:b}", "federation", s->federation,
                                     "site", s->site, "round", v.round, "accepted", 1,
                                     "round_closed", v.round_closed),
                           NULL);
}

enum MHD_Result dk_handle_fed_update(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered = MHD_NO;
    dk_fed_coord *c = coord_of(req, &answered);
    if (!c) return answered;
    char *end;
    errno = 0;
    long round = strtol(p->kind, &end, 10);
    if (errno || end == p->kind || *end || round < 0 || round > DK_FED_MAX_ROUNDS)
        return dk_problem(req, MHD_HTTP_BAD_REQUEST, "round '%.20s' is not a round number",
                          p->kind);
    long long labelled = 0;
    bool present;
    if (!int_arg(req, "labelled", 0, 1LL << 40, &labelled, &present) || !present)
        return dk_problem(req, MHD_HTTP_BAD_REQUEST,
                          "the query parameter 'labelled' (the labelled volumes the update was "
                          "trained on, its FedAvg weight) is required as an integer");
    double dice = NAN;
    const char *d = dk_request_arg(req, "val_dice");
    if (d) {
        errno = 0;
        dice = strtod(d, &end);
        if (errno || end == d || *end || !isfinite(dice))
            return dk_problem(req, MHD_HTTP_BAD_REQUEST, "val_dice '%.20s' is not a number", d);
    }
    dk_fed_submission s = {.federation = p->sample,
                           .site = req->who.site,
                           .round = (int)round,
                           .labelled = labelled,
                           .val_dice = dice};
    return submit(req, c, &s);
}
