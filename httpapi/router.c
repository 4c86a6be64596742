/* router.c: from method and decoded path to a handler: path safety first (no
 * control bytes, no "." or ".." segments, bounded length), then the route,
 * then authentication for /v1 (before 404, so unknown paths reveal nothing to
 * strangers), then the method (405 with Allow), then the token's scope. Path
 * parameters are never used as file names: handlers look them up in the
 * stores' catalogues. */
#include "httpapi/router.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "httpapi/server_internal.h"

#define MAX_PATH     2048
#define MAX_SEGMENTS 8

typedef enum MHD_Result (*handler_fn)(dk_request *req, const dk_route_params *p);

static const struct {
    const char *name;
    handler_fn handler, post;   /* GET/HEAD; POST (NULL: not allowed) */
    bool v1;                    /* needs a token */
    unsigned scope, post_scope; /* and this scope (0 = any valid token) */
} routes[DK_ROUTE_COUNT] = {
    [DK_ROUTE_UNMATCHED] = {"unmatched", NULL, NULL, false, 0, 0},
    [DK_ROUTE_HEALTHZ] = {"/healthz", dk_handle_healthz, NULL, false, 0, 0},
    [DK_ROUTE_READYZ] = {"/readyz", dk_handle_readyz, NULL, false, 0, 0},
    [DK_ROUTE_METRICS] = {"/metrics", dk_handle_metrics, NULL, false, 0, 0},
    [DK_ROUTE_TEACHER] = {"/v1/teacher", dk_handle_teacher, NULL, true, 0, 0},
    [DK_ROUTE_PROFILES] = {"/v1/profiles", dk_handle_profiles, dk_handle_profiles_post, true, 0,
                           DK_SCOPE_DISTILL},
    [DK_ROUTE_TARGETS] = {"/v1/targets", dk_handle_targets, NULL, true, DK_SCOPE_TARGETS, 0},
    [DK_ROUTE_TARGET] = {"/v1/targets/{sample}/{kind}", dk_handle_target, NULL, true,
                         DK_SCOPE_TARGETS, 0},
    [DK_ROUTE_JOB] = {"/v1/jobs/{id}", dk_handle_job, NULL, true, 0, 0},
    [DK_ROUTE_FED] = {"/v1/federation", NULL, dk_handle_fed_create, true, 0,
                      DK_SCOPE_FEDERATION_ADMIN},
    [DK_ROUTE_FED_ONE] = {"/v1/federation/{name}", dk_handle_fed_status, NULL, true,
                          DK_SCOPE_FEDERATION, 0},
    [DK_ROUTE_FED_STATUS] = {"/v1/federation/{name}/status", dk_handle_fed_status, NULL, true,
                             DK_SCOPE_FEDERATION, 0},
    [DK_ROUTE_FED_JOIN] = {"/v1/federation/{name}/join", NULL, dk_handle_fed_join, true, 0,
                           DK_SCOPE_FEDERATION},
    [DK_ROUTE_FED_GLOBAL] = {"/v1/federation/{name}/global", dk_handle_fed_global, NULL, true,
                             DK_SCOPE_FEDERATION, 0},
    [DK_ROUTE_FED_UPDATES] = {"/v1/federation/{name}/rounds/{round}/updates", NULL,
                              dk_handle_fed_update, true, 0, DK_SCOPE_FEDERATION},
    [DK_ROUTE_DISTILL] = {"/v1/distill", NULL, dk_handle_distill, true, 0, DK_SCOPE_DISTILL},
    [DK_ROUTE_EVALUATE] = {"/v1/evaluate", NULL, dk_handle_evaluate, true, 0, DK_SCOPE_EVALUATE},
    [DK_ROUTE_JOB_TARGET] = {"/v1/jobs/{id}/targets/{kind}", dk_handle_job_target, NULL, true, 0,
                             0},
};

bool dk_route_takes_upload(const char *path)
{
    return strcmp(path, "/v1/distill") == 0 || strcmp(path, "/v1/evaluate") == 0;
}

const char *dk_route_name(int route)
{
    return route >= 0 && route < DK_ROUTE_COUNT ? routes[route].name : "unmatched";
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t dk_route_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *out = s;
    for (const char *in = s; *in; in++) {
        int hi, lo;
        if (in[0] == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0) {
            unsigned char b = (unsigned char)(hi * 16 + lo);
            *out++ = b < 0x20 ? 0x7f : (char)b; /* "%00" must not end the string early */
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* Split path (copied into buf) at '/'; the number of segments, -1 when too many. */
static int split(const char *path, char *buf, char **seg)
{
    snprintf(buf, MAX_PATH, "%s", path + 1);
    int n = 0;
    for (char *p = buf;; p++) {
        if (n == MAX_SEGMENTS) return -1;
        seg[n++] = p;
        p = strchr(p, '/');
        if (!p) return n;
        *p = '\0';
    }
}

/* /v1/federation[/{name}[/status|/join|/global|/rounds/{round}/updates]] */
static int match_federation(char **seg, int n, dk_route_params *p)
{
    if (n == 2) return DK_ROUTE_FED;
    if (!*seg[2] || strlen(seg[2]) >= sizeof p->sample) return DK_ROUTE_UNMATCHED;
    snprintf(p->sample, sizeof p->sample, "%s", seg[2]);
    if (n == 3) return DK_ROUTE_FED_ONE;
    if (n == 4 && strcmp(seg[3], "status") == 0) return DK_ROUTE_FED_STATUS;
    if (n == 4 && strcmp(seg[3], "join") == 0) return DK_ROUTE_FED_JOIN;
    if (n == 4 && strcmp(seg[3], "global") == 0) return DK_ROUTE_FED_GLOBAL;
    if (n == 6 && strcmp(seg[3], "rounds") == 0 && strcmp(seg[5], "updates") == 0 && *seg[4] &&
        strlen(seg[4]) < sizeof p->kind) {
        snprintf(p->kind, sizeof p->kind, "%s", seg[4]);
        return DK_ROUTE_FED_UPDATES;
    }
    return DK_ROUTE_UNMATCHED;
}

static int match(char **seg, int n, dk_route_params *p)
{
    if (n == 1 && strcmp(seg[0], "healthz") == 0) return DK_ROUTE_HEALTHZ;
    if (n == 1 && strcmp(seg[0], "readyz") == 0) return DK_ROUTE_READYZ;
    if (n == 1 && strcmp(seg[0], "metrics") == 0) return DK_ROUTE_METRICS;
    if (n < 2 || strcmp(seg[0], "v1") != 0) return DK_ROUTE_UNMATCHED;
    if (n == 2 && strcmp(seg[1], "teacher") == 0) return DK_ROUTE_TEACHER;
    if (n == 2 && strcmp(seg[1], "profiles") == 0) return DK_ROUTE_PROFILES;
    if (n == 2 && strcmp(seg[1], "distill") == 0) return DK_ROUTE_DISTILL;
    if (n == 2 && strcmp(seg[1], "evaluate") == 0) return DK_ROUTE_EVALUATE;
    if (n >= 3 && strcmp(seg[1], "jobs") == 0 && *seg[2] && strlen(seg[2]) < sizeof p->sample) {
        snprintf(p->sample, sizeof p->sample, "%s", seg[2]);
        if (n == 3) return DK_ROUTE_JOB;
        bool feature = n == 6 && strcmp(seg[4], "features") == 0;
        if ((n != 5 && !feature) || strcmp(seg[3], "targets") != 0 || !*seg[n - 1] ||
            strlen(seg[n - 1]) + 10 > sizeof p->kind)
            return DK_ROUTE_UNMATCHED;
        snprintf(p->kind, sizeof p->kind, "%s%s", feature ? "features/" : "", seg[n - 1]);
        return DK_ROUTE_JOB_TARGET;
    }
    if (strcmp(seg[1], "federation") == 0) return match_federation(seg, n, p);
    if (strcmp(seg[1], "targets") != 0) return DK_ROUTE_UNMATCHED;
    if (n == 2) return DK_ROUTE_TARGETS;
    bool feature = n == 5 && strcmp(seg[3], "features") == 0;
    if ((n != 4 && !feature) || !*seg[2] || !*seg[n - 1] || strlen(seg[2]) >= sizeof p->sample ||
        strlen(seg[n - 1]) + 10 > sizeof p->kind)
        return DK_ROUTE_UNMATCHED;
    snprintf(p->sample, sizeof p->sample, "%s", seg[2]);
    snprintf(p->kind, sizeof p->kind, "%s%s", feature ? "features/" : "", seg[n - 1]);
    return DK_ROUTE_TARGET;
}

/* 400 for paths no route could mean; returns true when it answered. */
static bool refuse_unsafe(dk_request *req, const char *path, enum MHD_Result *result)
{
    size_t n = strnlen(path, MAX_PATH);
    const char *why = NULL;
    if (path[0] != '/')
        why = "the path must start with '/'";
    else if (n == MAX_PATH)
        why = "the path is longer than 2047 bytes";
    for (size_t i = 0; !why && i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            why = "the path holds a NUL or control character";
    for (const char *p = path; !why && (p = strstr(p, "/.")); p++)
        if (p[2] == '\0' || p[2] == '/' || (p[2] == '.' && (p[3] == '\0' || p[3] == '/')))
            why = "path segments '.' and '..' are not allowed";
    if (!why) return false;
    *result = dk_problem(req, MHD_HTTP_BAD_REQUEST, "%s", why);
    return true;
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 429 with Retry-After in whole seconds (at least 1). */
static enum MHD_Result too_many(dk_request *req, double retry)
{
    char after[32], detail[200];
    snprintf(after, sizeof after, "%.0f", retry < 1 ? 1 : retry + 0.999);
    snprintf(detail, sizeof detail,
             "the token of site '%s' is over its request rate; retry after %s s", req->who.site,
             after);
    return dk_problem_header(req, MHD_HTTP_TOO_MANY_REQUESTS, MHD_HTTP_HEADER_RETRY_AFTER, after,
                             detail);
}

enum MHD_Result dk_route(dk_request *req, const char *method, const char *path)
{
    enum MHD_Result result;
    req->path = path;
    req->route = DK_ROUTE_UNMATCHED;
    if (refuse_unsafe(req, path, &result)) return result;
    char buf[MAX_PATH], *seg[MAX_SEGMENTS];
    dk_route_params params;
    memset(&params, 0, sizeof params);
    int n = split(path, buf, seg);
    int id = n < 0 ? DK_ROUTE_UNMATCHED : match(seg, n, &params);
    bool v1 = id != DK_ROUTE_UNMATCHED ? routes[id].v1
                                       : strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0;
    req->route = id; /* a refusal below is counted under the route it was for */
    if (v1) {
        char detail[512];
        unsigned code = dk_auth_check(req->server->auth, dk_request_header(req, "Authorization"), 0,
                                      &req->who, detail, sizeof detail);
        if (code == 401) return dk_problem_unauthorized(req, detail);
        double retry;
        if (!dk_ratelimit_take(req->server->ratelimit, req->who.id, seconds_now(), &retry))
            return too_many(req, retry);
    }
    if (id == DK_ROUTE_UNMATCHED)
        return dk_problem(req, MHD_HTTP_NOT_FOUND,
                          "no resource at '%.200s' (see docs/api.md for the routes)", path);
    bool get = strcmp(method, "GET") == 0 && routes[id].handler,
         post = strcmp(method, "POST") == 0 && routes[id].post;
    req->head = strcmp(method, "HEAD") == 0 && routes[id].handler;
    if (!get && !req->head && !post)
        return dk_problem_method(req, method,
                                 !routes[id].handler ? "POST"
                                 : routes[id].post   ? "GET, HEAD, POST"
                                                     : "GET, HEAD");
    unsigned scope = post ? routes[id].post_scope : routes[id].scope;
    if (scope && !(req->who.scopes & scope)) {
        char have[64], need[64];
        dk_scopes_format(req->who.scopes, have, sizeof have);
        dk_scopes_format(scope, need, sizeof need);
        return dk_problem(req, MHD_HTTP_FORBIDDEN,
                          "the token of site '%s' has scopes '%s'; this resource needs '%s'",
                          req->who.site, have, need);
    }
    return (post ? routes[id].post : routes[id].handler)(req, &params);
}
