/* test_server.c: the HTTP API through a real socket: a real fixture (tiny
 * teacher, stores for two profiles precomputed by the real code), the server
 * on an ephemeral loopback port, libcurl as the client. Every route, the
 * model card against the checkpoint, arrays byte-equal to the store, ETags and
 * 304, ranges (206, 416, a resumed download), authentication (401 with
 * WWW-Authenticate, 403 by scope and by profile grant), 404, 405 with Allow,
 * path-traversal attempts, and the metrics counting what was served. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/npy.h"
#include "httpapi/stores.h"
#include "serverutil.h"
#include "teacher/sha256.h"
#include "teacher/store.h"
#include "testutil.h"

static dk_test_env env;

static void setup(void)
{
    dk_test_dir_setup();
    dk_test_env_setup(&env, true);
}

static void teardown(void)
{
    dk_test_env_teardown(&env);
    dk_test_dir_teardown();
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 300);

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
    return size * n;
}

static json_t *json_of(const dk_http_reply *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    cr_assert_not_null(j, "not JSON (%s): %s", je.text, r->body);
    return j;
}

/* GET path with token; assert the status and, for errors, a problem+json naming words. */
static void expect(const char *method, const char *path, const char *token, long status,
                   const char *words)
{
    dk_http_reply r = dk_http(&env, method, path, token, NULL);
    cr_assert_eq(r.status, status, "%s %s: %ld, want %ld: %s", method, path, r.status, status,
                 r.body);
    if (status >= 400) {
        char ct[128];
        cr_assert_str_eq(dk_http_header(&r, "Content-Type", ct, sizeof ct),
                         "application/problem+json");
        json_t *j = json_of(&r);
        cr_assert_eq(json_integer_value(json_object_get(j, "status")), status);
        const char *detail = json_string_value(json_object_get(j, "detail"));
        cr_assert(detail && (!words || strstr(detail, words)), "'%s' not in detail: %s",
                  words ? words : "", r.body);
        json_decref(j);
    }
    dk_http_free(&r);
}

Test(server, health_ready_and_metrics_need_no_token)
{
    dk_http_reply r = dk_http(&env, "GET", "/healthz", NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "\"alive\""), "%s", r.body);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/readyz", NULL, NULL);
    cr_assert_eq(r.status, 200);
    json_t *j = json_of(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "stores")), 2);
    json_decref(j);
    dk_http_free(&r);
    expect("GET", "/v1/targets/vol-00/response?profile=" DK_TEST_PROFILE_A, env.all, 200, NULL);
    expect("GET", "/nothing", NULL, 404, "no resource");
    const char *want[] = {
        "dualkd_http_requests_total{route=\"/healthz\",status=\"200\"} 1\n",
        "dualkd_http_requests_total{route=\"/v1/targets/{sample}/{kind}\",status=\"200\"} 1\n",
        "dualkd_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n",
        "dualkd_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1\n",
        "dualkd_arrays_served_total 1\n",
        "dualkd_stores{state=\"ready\"} 2\n",
        "dualkd_http_requests_in_flight 1\n", /* this request */
    };
    /* A request is recorded when MHD has handed its last byte to the socket, which
     * can be just after the client has it: ask again until the counts settle. */
    size_t i = 0;
    for (int attempt = 0; attempt < 200; attempt++) {
        r = dk_http(&env, "GET", "/metrics", NULL, NULL);
        for (i = 0; i < sizeof want / sizeof want[0] && strstr(r.body, want[i]); i++) {
        }
        if (i == sizeof want / sizeof want[0] || attempt == 199) break;
        dk_http_free(&r);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    cr_assert(i == sizeof want / sizeof want[0], "no '%s' in:\n%s", want[i], r.body);
    cr_assert_eq(r.status, 200);
    char ct[128];
    cr_assert(
        strstr(dk_http_header(&r, "Content-Type", ct, sizeof ct), "text/plain; version=0.0.4"));
    cr_assert(strstr(r.body, "dualkd_http_response_bytes_total "), "%s", r.body);
    dk_http_free(&r);
}

Test(server, model_card_names_the_checkpoint_and_granted_profiles)
{
    dk_http_reply r = dk_http(&env, "GET", "/v1/teacher", env.all, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *card = json_of(&r);
    char sha[DK_SHA256_HEX];
    cr_assert_eq(dk_sha256_file(env.teacher, sha, NULL), DK_OK);
    cr_assert_str_eq(json_string_value(json_object_get(card, "checkpoint_sha256")), sha);
    cr_assert_str_eq(json_string_value(json_object_get(card, "version")), "test");
    json_t *classes = json_object_get(card, "classes");
    cr_assert_eq(json_array_size(classes), 3);
    cr_assert_str_eq(json_string_value(json_array_get(classes, 1)), "ball");
    cr_assert_eq(json_array_size(json_object_get(card, "training_spacing")), 3);
    cr_assert(json_is_object(json_object_get(card, "architecture")));
    json_t *targets = json_object_get(card, "targets");
    cr_assert_eq(json_array_size(targets), 2, "%s", r.body);
    json_t *t0 = json_array_get(targets, 0);
    cr_assert_str_eq(json_string_value(json_object_get(t0, "profile")), DK_TEST_PROFILE_A);
    cr_assert_float_eq(json_real_value(json_object_get(t0, "temperature")), 2.0, 0);
    json_t *layer = json_array_get(json_object_get(t0, "feature_layers"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(layer, "layer")), "bottleneck");
    json_decref(card);
    dk_http_free(&r);
    /* a token granted one profile sees one, in the card and in /v1/profiles */
    r = dk_http(&env, "GET", "/v1/teacher", env.only_a, NULL);
    card = json_of(&r);
    cr_assert_eq(json_array_size(json_object_get(card, "targets")), 1);
    json_decref(card);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/v1/profiles", env.only_a, NULL);
    cr_assert_eq(r.status, 200);
    json_t *j = json_of(&r), *list = json_object_get(j, "profiles");
    cr_assert_eq(json_array_size(list), 1, "%s", r.body);
    json_t *p = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(p, "name")), DK_TEST_PROFILE_A);
    cr_assert_eq(json_integer_value(json_object_get(p, "samples")), 4);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "profile"), "contrast")),
                     "pd-fs");
    json_decref(j);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/v1/profiles", env.all, NULL);
    j = json_of(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "profiles")), 2);
    json_decref(j);
    dk_http_free(&r);
}

Test(server, catalogue_pages_with_etags)
{
    const char *base = "/v1/targets?profile=" DK_TEST_PROFILE_A;
    dk_http_reply r = dk_http(&env, "GET", base, env.all, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char etag[128], h[160];
    cr_assert_not_null(dk_http_header(&r, "ETag", etag, sizeof etag));
    json_t *j = json_of(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 4);
    json_t *samples = json_object_get(j, "samples");
    cr_assert_eq(json_array_size(samples), 4);
    json_t *s0 = json_array_get(samples, 0);
    cr_assert_str_eq(json_string_value(json_object_get(s0, "id")), "vol-00");
    json_t *a0 = json_array_get(json_object_get(s0, "arrays"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(a0, "kind")), "input");
    cr_assert_eq(strlen(json_string_value(json_object_get(a0, "sha256"))), 64);
    cr_assert(json_is_null(json_object_get(j, "next")) || !json_object_get(j, "next"));
    json_decref(j);
    dk_http_free(&r);
    snprintf(h, sizeof h, "If-None-Match: %s", etag);
    const char *cond[] = {h, NULL};
    r = dk_http(&env, "GET", base, env.all, cond);
    cr_assert_eq(r.status, 304);
    cr_assert_eq(r.len, 0);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/v1/targets?profile=" DK_TEST_PROFILE_A "&per_page=3&page=2", env.all,
                NULL);
    cr_assert_eq(r.status, 200);
    char etag2[128];
    dk_http_header(&r, "ETag", etag2, sizeof etag2);
    cr_assert_str_neq(etag, etag2);
    j = json_of(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "samples")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "pages")), 2);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "samples"), 0), "id")),
        "vol-03");
    json_decref(j);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/v1/targets?profile=" DK_TEST_PROFILE_A "&per_page=3", env.all, NULL);
    j = json_of(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "next")),
                     "/v1/targets?profile=" DK_TEST_PROFILE_A "&page=2&per_page=3");
    json_decref(j);
    dk_http_free(&r);
    expect("GET", "/v1/targets?profile=" DK_TEST_PROFILE_A "&per_page=3&page=3", env.all, 404,
           "page 3");
    expect("GET", "/v1/targets?profile=" DK_TEST_PROFILE_A "&per_page=0", env.all, 400, "per_page");
    expect("GET", "/v1/targets?profile=" DK_TEST_PROFILE_A "&page=1x", env.all, 400, "page");
    expect("GET", "/v1/targets", env.all, 400, "'profile' is required");
    expect("GET", "/v1/targets?profile=site-z", env.all, 404, "no profile 'site-z'");
    expect("GET", "/v1/targets?profile=" DK_TEST_PROFILE_B, env.only_a, 403, "not granted profile");
}

/* The array as the store holds it (raw) or as float32. Caller frees. */
static void *stored(const char *profile, const char *sample, const char *kind, bool f4,
                    size_t *bytes, char sha[65])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.h5", env.store_dir, profile);
    dk_err err = {0};
    dk_h5_lock(); /* the server in this process reads HDF5 too */
    dk_store *s = dk_store_open(path, &err);
    cr_assert_not_null(s, "%s", err.msg);
    int i = dk_store_find(s, sample);
    const dk_store_array_info *a = dk_store_array_of(s, i, kind);
    cr_assert_not_null(a);
    size_t n = dk_store_array_numel(a);
    *bytes = f4 ? n * 4 : n * dk_store_dtype_size(a->dtype);
    void *buf = malloc(*bytes);
    dk_status st = f4 ? dk_store_read(s, i, kind, buf, n, &err)
                      : dk_store_read_raw(s, i, kind, buf, *bytes, &err);
    cr_assert_eq(st, DK_OK, "%s", err.msg);
    memcpy(sha, a->sha256, 65);
    dk_store_close(s);
    dk_h5_unlock();
    return buf;
}

static void expect_array(const char *sample, const char *kind, bool f4, dk_npy_dtype dtype,
                         int rank)
{
    char path[300], sha[65], etag[128], want_etag[128], ct[64];
    snprintf(path, sizeof path, "/v1/targets/%s/%s?profile=%s%s", sample, kind, DK_TEST_PROFILE_A,
             f4 ? "&dtype=f4" : "");
    dk_http_reply r = dk_http(&env, "GET", path, env.all, NULL);
    cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
    cr_assert_str_eq(dk_http_header(&r, "Content-Type", ct, sizeof ct), "application/x-npy");
    dk_npy_array a;
    dk_err err = {0};
    cr_assert_eq(dk_npy_decode(r.body, r.len, 0, &a, &err), DK_OK, "%s: %s", path, err.msg);
    cr_assert_eq(dk_npy_expect(&a, dtype, rank, path, &err), DK_OK, "%s", err.msg);
    size_t bytes;
    void *want = stored(DK_TEST_PROFILE_A, sample, kind, f4, &bytes, sha);
    cr_assert_eq(a.numel * dk_npy_dtype_size(a.dtype), bytes);
    cr_assert_eq(memcmp(a.data, want, bytes), 0, "%s: bytes differ from the store", path);
    snprintf(want_etag, sizeof want_etag, "\"%s%s\"", sha,
             f4 && dtype == DK_NPY_F4 && strcmp(kind, "input") ? "-f4" : "");
    cr_assert_str_eq(dk_http_header(&r, "ETag", etag, sizeof etag), want_etag);
    free(want);
    dk_npy_array_free(&a);
    dk_http_free(&r);
}

Test(server, arrays_are_the_stored_bytes_as_npy)
{
    /* the second round is answered from the kept bodies (httpapi/npy_cache.h); one array
     * as float16 and float32 in turn must never get the other's body */
    for (int round = 0; round < 2; round++) {
        expect_array("vol-00", "response", false, DK_NPY_F2, 4);
        expect_array("vol-00", "response", true, DK_NPY_F4, 4);
        expect_array("vol-01", "response", true, DK_NPY_F4, 4);
        expect_array("vol-01", "response", false, DK_NPY_F2, 4);
        expect_array("vol-02", "uncertainty", false, DK_NPY_F2, 3);
        expect_array("vol-00", "input", false, DK_NPY_F4, 3);
        expect_array("vol-00", "input", true, DK_NPY_F4, 3);
        expect_array("vol-03", "label", false, DK_NPY_U1, 3);
        expect_array("vol-03", "features/bottleneck", false, DK_NPY_F2, 4);
    }
    expect("GET", "/v1/targets/vol-09/response?profile=" DK_TEST_PROFILE_A, env.all, 404,
           "no sample 'vol-09'");
    expect("GET", "/v1/targets/vol-00/features/dec7?profile=" DK_TEST_PROFILE_A, env.all, 404,
           "it has: input, label, response, uncertainty, features/bottleneck");
    expect("GET", "/v1/targets/vol-00/response?profile=" DK_TEST_PROFILE_A "&dtype=f8", env.all,
           400, "dtype 'f8'");
    expect("GET", "/v1/targets/vol-00/response", env.all, 400, "'profile' is required");
}

Test(server, conditional_get_head_and_ranges)
{
    const char *path = "/v1/targets/vol-01/response?profile=" DK_TEST_PROFILE_B;
    dk_http_reply full = dk_http(&env, "GET", path, env.all, NULL);
    cr_assert_eq(full.status, 200);
    char etag[128], h[200], v[128];
    dk_http_header(&full, "ETag", etag, sizeof etag);
    cr_assert_str_eq(dk_http_header(&full, "Accept-Ranges", v, sizeof v), "bytes");
    /* HEAD: the same headers, no body */
    dk_http_reply r = dk_http(&env, "HEAD", path, env.all, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 0);
    cr_assert_eq(strtoull(dk_http_header(&r, "Content-Length", v, sizeof v), NULL, 10), full.len);
    cr_assert_str_eq(dk_http_header(&r, "ETag", v, sizeof v), etag);
    dk_http_free(&r);
    /* If-None-Match: the ETag, in a list, or weak */
    const char *forms[] = {"If-None-Match: %s", "If-None-Match: \"x\", %s", "If-None-Match: W/%s"};
    for (int i = 0; i < 3; i++) {
        snprintf(h, sizeof h, forms[i], etag);
        const char *hs[] = {h, NULL};
        r = dk_http(&env, "GET", path, env.all, hs);
        cr_assert_eq(r.status, 304, "%s", h);
        cr_assert_eq(r.len, 0);
        dk_http_free(&r);
    }
    const char *other[] = {"If-None-Match: \"0123\"", NULL};
    r = dk_http(&env, "GET", path, env.all, other);
    cr_assert_eq(r.status, 200);
    dk_http_free(&r);
    /* a download broken after 100 bytes, resumed with Range */
    const char *first[] = {"Range: bytes=0-99", NULL};
    r = dk_http(&env, "GET", path, env.all, first);
    cr_assert_eq(r.status, 206);
    cr_assert_eq(r.len, 100);
    snprintf(h, sizeof h, "bytes 0-99/%zu", full.len);
    cr_assert_str_eq(dk_http_header(&r, "Content-Range", v, sizeof v), h);
    cr_assert_eq(memcmp(r.body, full.body, 100), 0);
    dk_http_free(&r);
    snprintf(h, sizeof h, "If-Range: %s", etag);
    const char *rest[] = {"Range: bytes=100-", h, NULL};
    r = dk_http(&env, "GET", path, env.all, rest);
    cr_assert_eq(r.status, 206);
    cr_assert_eq(r.len, full.len - 100);
    cr_assert_eq(memcmp(r.body, full.body + 100, r.len), 0);
    dk_http_free(&r);
    const char *tail[] = {"Range: bytes=-10", NULL};
    r = dk_http(&env, "GET", path, env.all, tail);
    cr_assert_eq(r.status, 206);
    cr_assert_eq(memcmp(r.body, full.body + full.len - 10, 10), 0);
    dk_http_free(&r);
    /* a stale If-Range gets the whole array */
    const char *stale[] = {"Range: bytes=100-", "If-Range: \"old\"", NULL};
    r = dk_http(&env, "GET", path, env.all, stale);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, full.len);
    dk_http_free(&r);
    snprintf(h, sizeof h, "Range: bytes=%zu-", full.len);
    const char *beyond[] = {h, NULL};
    r = dk_http(&env, "GET", path, env.all, beyond);
    cr_assert_eq(r.status, 416);
    snprintf(h, sizeof h, "bytes */%zu", full.len);
    cr_assert_str_eq(dk_http_header(&r, "Content-Range", v, sizeof v), h);
    dk_http_free(&r);
    dk_http_free(&full);
}

Test(server, tokens_scopes_and_grants)
{
    const char *path = "/v1/targets?profile=" DK_TEST_PROFILE_A;
    dk_http_reply r = dk_http(&env, "GET", path, NULL, NULL);
    char v[200];
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(dk_http_header(&r, "WWW-Authenticate", v, sizeof v),
                     "Bearer realm=\"dualkd\"");
    cr_assert(strstr(r.body, "Authorization: Bearer"), "%s", r.body);
    dk_http_free(&r);
    expect("GET", path, "dk_0000000000000000000000000000000000000000000000000000000000000000", 401,
           "not known");
    expect("GET", path, env.revoked, 401, "has been revoked");
    const char *basic[] = {"Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", NULL};
    r = dk_http(&env, "GET", path, NULL, basic);
    cr_assert_eq(r.status, 401);
    dk_http_free(&r);
    expect("GET", path, env.evaluate, 403, "needs 'targets'");
    expect("GET", "/v1/teacher", env.evaluate, 200, NULL);
    expect("GET", "/v1/targets/vol-00/input?profile=" DK_TEST_PROFILE_B, env.only_a, 403,
           "not granted profile 'clinical-4.5mm'");
    expect("GET", "/v1/targets/vol-00/input?profile=" DK_TEST_PROFILE_A, env.only_a, 200, NULL);
    /* unknown /v1 paths: 401 before 404, so strangers learn nothing */
    expect("GET", "/v1/federation/knee/rounds", NULL, 401, NULL);
    expect("GET", "/v1/federation/knee/rounds", env.all, 404, "no resource");
    /* a federation route, but this token lacks the scope */
    expect("GET", "/v1/federation/knee", env.all, 403, "needs 'federation'");
    /* methods */
    r = dk_http(&env, "POST", "/v1/targets/vol-00/input?profile=" DK_TEST_PROFILE_A, env.all, NULL);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(dk_http_header(&r, "Allow", v, sizeof v), "GET, HEAD");
    dk_http_free(&r);
    expect("DELETE", "/healthz", NULL, 405, "DELETE is not allowed");
    /* revocation on disk takes effect on the next request, no restart */
    char cmd[8192], out[4096];
    snprintf(cmd, sizeof cmd, "%s token revoke --tokens %s hospital-a", dk_test_bin(), env.tokens);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    expect("GET", path, env.all, 401, "has been revoked");
    /* a token added by the CLI works at once */
    snprintf(cmd, sizeof cmd,
             "%s token add --site hospital-e --scope targets --profiles %s --tokens %s 2>/dev/null",
             dk_test_bin(), DK_TEST_PROFILE_B, env.tokens);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert_eq(strlen(out), 67, "%s", out);
    expect("GET", "/v1/targets?profile=" DK_TEST_PROFILE_B, out, 200, NULL);
    expect("GET", path, out, 403, "not granted");
}

Test(server, traversal_and_malformed_paths_are_refused)
{
    const char *q = "?profile=" DK_TEST_PROFILE_A;
    const struct {
        const char *path;
        long status;
    } cases[] = {
        {"/v1/targets/../../etc/passwd/input", 400},
        {"/v1/targets/%2e%2e%2f%2e%2e%2fetc/input", 400},
        {"/v1/targets/%2E%2E/input", 400},
        {"/v1/targets/vol-00%00/input", 400},
        {"/v1/targets/vol-00/input%00.h5", 400},
        {"/v1/targets/vol-00%2finput/input", 404},
        {"/v1/targets/./vol-00/input", 400},
        {"/v1/targets/vol-00/features/..%2f..%2fresponse", 400},
        {"/v1/targets//input", 404},
        {"/v1/targets/vol-00/input/extra/more", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s%s", cases[i].path, q);
        expect("GET", path, env.all, cases[i].status, NULL);
    }
    expect("GET", "/v1/targets/vol-00/input?profile=../" DK_TEST_PROFILE_A, env.all, 404,
           "no profile");
    expect("GET", "/v1/targets/vol-00/input?profile=%2e%2e%2fstores%2f" DK_TEST_PROFILE_A, env.all,
           404, "no profile");
    expect("GET", "/v1/targets/vol-00/input?profile=" DK_TEST_PROFILE_A "%00", env.all, 404,
           "no profile");
    expect("GET", "/v1/targets/vol-00/input?profile=../x", env.only_a, 403, "not granted");
    char longpath[5000] = "/v1/targets/";
    memset(longpath + 12, 'a', 3000);
    longpath[3012] = '\0';
    dk_http_reply r = dk_http(&env, "GET", longpath, env.all, NULL);
    cr_assert(r.status >= 400 && r.status < 500, "%ld", r.status);
    dk_http_free(&r);
    expect("GET", "/healthz", NULL, 200, NULL); /* still alive */
}

Test(server, limits_body_size_and_token_rate)
{
    dk_test_env_start(&env, (dk_server_config){.max_body = 1000, .rate = 2, .burst = 3});
    /* an announced oversize body is refused before it is read */
    static char body[5000];
    memset(body, 'x', sizeof body - 1);
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", env.port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cr_assert_eq(status, 413);
    curl_easy_cleanup(c);
    /* a small body on a route without one is read and dropped: 405 for POST */
    expect("POST", "/healthz", NULL, 405, NULL);
    /* 3 at once, then 2 a second: the 4th at once is 429 with Retry-After */
    const char *path = "/v1/profiles";
    for (int i = 0; i < 3; i++)
        expect("GET", path, env.only_a, 200, NULL);
    dk_http_reply r = dk_http(&env, "GET", path, env.only_a, NULL);
    char v[64];
    cr_assert_eq(r.status, 429, "%s", r.body);
    cr_assert_str_eq(dk_http_header(&r, "Retry-After", v, sizeof v), "1");
    cr_assert(strstr(r.body, "over its request rate"), "%s", r.body);
    dk_http_free(&r);
    expect("GET", path, env.all, 200, NULL);    /* another token has its own bucket */
    expect("GET", "/healthz", NULL, 200, NULL); /* and health checks are not limited */
    nanosleep(&(struct timespec){0, 600 * 1000 * 1000}, NULL);
    expect("GET", path, env.only_a, 200, NULL);
}

/* Raw bytes no HTTP client would send, then 8 threads downloading at once;
 * the server (in this process, so ASan/UBSan watch it) must answer sanely. */
static const char hostile_py[] =
    "import hashlib, io, socket, sys, threading, requests\n"
    "import numpy as np\n"
    "port, token = int(sys.argv[1]), sys.argv[2]\n"
    "def raw(data, expect_close=True):\n"
    "    s = socket.create_connection(('127.0.0.1', port), timeout=10)\n"
    "    s.sendall(data)\n"
    "    try:\n"
    "        s.shutdown(socket.SHUT_WR)\n"
    "        out = b''\n"
    "        while True:\n"
    "            chunk = s.recv(65536)\n"
    "            if not chunk: break\n"
    "            out += chunk\n"
    "    except OSError: out = b''\n"
    "    s.close()\n"
    "    return out\n"
    "A = ('Authorization: Bearer %s\\r\\n' % token).encode()\n"
    "cases = [b'\\x00\\xff' * 1000, b'GET\\r\\n\\r\\n', b'GET / HTTP/9.9\\r\\n\\r\\n',\n"
    "         b'GET /v1/targets/%zz/%%%/input?profile=%ff HTTP/1.1\\r\\nHost: x\\r\\n' + A + "
    "b'\\r\\n',\n"
    "         b'GET /v1/targets?profile=clinical-3.3mm&page=99999999999999999999 "
    "HTTP/1.1\\r\\nHost: x\\r\\n' + A + b'\\r\\n',\n"
    "         b'GET /v1/targets/vol-00/response?profile=clinical-3.3mm HTTP/1.1\\r\\nHost: "
    "x\\r\\n' + A +\n"
    "         b'Range: bytes=99999999999999999999999-\\r\\nIf-None-Match: ,,,W/,\"\\r\\n\\r\\n',\n"
    "         b'GET /v1/targets/vol-00/response?profile=clinical-3.3mm HTTP/1.1\\r\\nHost: "
    "x\\r\\n' + A +\n"
    "         b'Range: bytes=-\\r\\n\\r\\n',\n"
    "         b'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nX: ' + b'a' * 100000 + b'\\r\\n\\r\\n',\n"
    "         b'POST /v1/profiles HTTP/1.1\\r\\nHost: x\\r\\n' + A + b'Content-Type: "
    "application/json\\r\\n'\n"
    "         b'Transfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\n',\n"
    "         b'GET /v1/teacher HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer ' + b'x' * 5000 + "
    "b'\\r\\n\\r\\n',\n"
    "         b'GET /v1/teacher HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer\\r\\n\\r\\n',\n"
    "         b'GET /v1/targets/vol-00/input HTTP/1.1\\r\\nHost: x\\r\\n' + A + b'Content-Length: "
    "-5\\r\\n\\r\\n']\n"
    "for c in cases:\n"
    "    out = raw(c)\n"
    "    assert out == b'' or out.startswith(b'HTTP/1.'), out[:100]\n"
    "    if out: assert int(out.split()[1]) >= 200, out[:100]\n"
    "base = 'http://127.0.0.1:%d' % port\n"
    "H = {'Authorization': 'Bearer ' + token}\n"
    "P = {'profile': 'clinical-3.3mm'}\n"
    "cat = requests.get(base + '/v1/targets', params=P, headers=H).json()\n"
    "want = {(s['id'], a['kind']): a['sha256'] for s in cat['samples'] for a in s['arrays']}\n"
    "errors = []\n"
    "def worker(k):\n"
    "    with requests.Session() as session:\n"
    "        for i, ((sid, kind), digest) in enumerate(sorted(want.items())):\n"
    "            if (i + k) % 2: continue\n"
    "            r = session.get(base + '/v1/targets/%s/%s' % (sid, kind), params=P, headers=H)\n"
    "            if r.status_code != 200:\n"
    "                errors.append((sid, kind, r.status_code))\n"
    "                continue\n"
    "            a = np.load(io.BytesIO(r.content))\n"
    "            if hashlib.sha256(a.tobytes()).hexdigest() != digest: errors.append((sid, kind, "
    "'sha'))\n"
    "threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]\n"
    "[t.start() for t in threads]\n"
    "[t.join() for t in threads]\n"
    "assert not errors, errors[:5]\n"
    "assert requests.get(base + '/healthz').status_code == 200\n"
    "print('hostile ok', len(want))\n";

Test(server, hostile_bytes_and_concurrent_downloads)
{
    char *script = dk_test_path("hostile.py"), cmd[8192], out[16384];
    FILE *f = fopen(script, "w");
    fputs(hostile_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %d %s", dk_test_python(), script, env.port, env.all);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "hostile ok 20"), "%s", out);
    free(script);
}
