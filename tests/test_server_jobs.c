/* test_server_jobs.c: registering a profile over HTTP: POST /v1/profiles
 * validates it (415, 400, 403, 409), queues a real precompute run as a child
 * process, GET /v1/jobs/{id} reports progress until the verified store is in
 * the catalogue and its targets are served; a failing precompute is reported
 * with its reason; jobs queued when the server stops run after a restart. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serverutil.h"
#include "testutil.h"

static dk_test_env env;

static dk_server_config jobs_config(void)
{
    return (dk_server_config){.rate = -1, .data_path = env.data, .binary = dk_test_bin()};
}

static void setup(void)
{
    dk_test_dir_setup();
    dk_test_env_setup(&env, false);
    dk_test_env_start(&env, jobs_config());
}

static void teardown(void)
{
    dk_test_env_teardown(&env);
    dk_test_dir_teardown();
}

TestSuite(server_jobs, .init = setup, .fini = teardown, .timeout = 300);

static const char *json_content[] = {"Content-Type: application/json", NULL};

static json_t *post_profile(const char *body, const char *token, long want_status)
{
    dk_http_reply r = dk_http_body(&env, "POST", "/v1/profiles", token, json_content, body);
    cr_assert_eq(r.status, want_status, "%ld: %s", r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert_not_null(j, "%s", r.body);
    if (want_status == 202) {
        char loc[128];
        cr_assert_not_null(dk_http_header(&r, "Location", loc, sizeof loc));
        cr_assert_str_eq(loc, json_string_value(json_object_get(j, "location")));
    }
    dk_http_free(&r);
    return j;
}

/* Poll the job until it is done or failed (or 200 s pass); returns its record. */
static json_t *wait_job(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int i = 0; i < 4000; i++) {
        dk_http_reply r = dk_http(&env, "GET", path, env.distill, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *j = json_loads(r.body, 0, NULL);
        dk_http_free(&r);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (!strcmp(state, "done") || !strcmp(state, "failed")) return j;
        json_decref(j);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    cr_assert_fail("job %s did not finish", id);
    return NULL;
}

static const char site_x[] =
    "{\"name\": \"site-x\", \"spacing\": [2.8, 0.5, 0.5], \"contrast\": \"t1\"}";

Test(server_jobs, a_registered_profile_is_precomputed_verified_and_served)
{
    json_t *job = post_profile(site_x, env.distill, 202);
    cr_assert_str_eq(json_string_value(json_object_get(job, "profile")), "site-x");
    char id[32];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    /* the same profile again: 409 whether the job is still running or done */
    dk_http_reply r = dk_http_body(&env, "POST", "/v1/profiles", env.distill, json_content, site_x);
    cr_assert_eq(r.status, 409, "%s", r.body);
    dk_http_free(&r);
    job = wait_job(id);
    cr_assert_str_eq(json_string_value(json_object_get(job, "state")), "done", "%s",
                     json_dumps(job, 0));
    json_t *samples = json_object_get(job, "samples");
    cr_assert_eq(json_integer_value(json_object_get(samples, "done")), 4);
    cr_assert_eq(json_integer_value(json_object_get(samples, "total")), 4);
    cr_assert_str_eq(json_string_value(json_object_get(job, "result")),
                     "/v1/targets?profile=site-x");
    json_decref(job);
    r = dk_http(&env, "GET", "/v1/profiles", env.distill, NULL);
    cr_assert(strstr(r.body, "\"name\": \"site-x\""), "%s", r.body);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/v1/targets/vol-02/response?profile=site-x", env.distill, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(memcmp(r.body, "\x93NUMPY", 6), 0);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/metrics", NULL, NULL);
    cr_assert(strstr(r.body, "dualkd_stores{state=\"ready\"} 3\n"), "%s", r.body);
    dk_http_free(&r);
    /* a token not granted the profile does not see the job */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    r = dk_http(&env, "GET", path, env.only_a, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    dk_http_free(&r);
}

Test(server_jobs, bad_registrations_are_refused_with_reasons)
{
    dk_http_reply r = dk_http_body(&env, "POST", "/v1/profiles", env.distill, NULL, site_x);
    cr_assert_eq(r.status, 415, "%s", r.body); /* curl's default form type */
    dk_http_free(&r);
    json_t *j = post_profile(
        "{\"name\": \"s\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"nosie\": 1}",
        env.distill, 400);
    cr_assert(strstr(json_string_value(json_object_get(j, "detail")), "unknown field 'nosie'"));
    json_decref(j);
    j = post_profile("{\"name\": \"../x\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\"}",
                     env.distill, 400);
    json_decref(j);
    j = post_profile("not json", env.distill, 400);
    json_decref(j);
    j = post_profile(site_x, env.all, 403); /* no distill scope */
    cr_assert(strstr(json_string_value(json_object_get(j, "detail")), "needs 'distill'"));
    json_decref(j);
    j = post_profile(
        "{\"name\": \"clinical-3.3mm\", \"spacing\": [3.3, 0.31, 0.31], \"contrast\": \"pd-fs\"}",
        env.distill, 409);
    json_decref(j);
    r = dk_http(&env, "GET", "/v1/jobs/0000000000000000", env.distill, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    dk_http_free(&r);
    /* a profile the teacher cannot serve: the job fails and says why */
    j = post_profile("{\"name\": \"thick\", \"spacing\": [11.2, 0.36, 0.36], \"contrast\": \"t1\"}",
                     env.distill, 202);
    char id[32];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    j = wait_job(id);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
    const char *error = json_string_value(json_object_get(j, "error"));
    cr_assert(error && strstr(error, "pooling product"), "%s", error ? error : "(none)");
    json_decref(j);
}

Test(server_jobs, queued_jobs_survive_a_restart)
{
    json_t *a = post_profile(site_x, env.distill, 202);
    json_t *b =
        post_profile("{\"name\": \"site-y\", \"spacing\": [2.1, 0.5, 0.5], \"contrast\": \"t1\"}",
                     env.distill, 202);
    char id_a[32], id_b[32];
    snprintf(id_a, sizeof id_a, "%s", json_string_value(json_object_get(a, "id")));
    snprintf(id_b, sizeof id_b, "%s", json_string_value(json_object_get(b, "id")));
    json_decref(a), json_decref(b);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id_b);
    dk_http_reply q = dk_http(&env, "GET", path, env.distill, NULL);
    cr_assert(strstr(q.body, "\"state\": \"queued\""), "%s", q.body); /* behind site-x */
    dk_http_free(&q);
    q = dk_http(&env, "GET", "/metrics", NULL, NULL);
    cr_assert(strstr(q.body, "dualkd_jobs{state=\"queued\"} 1\n"), "%s", q.body);
    dk_http_free(&q);
    dk_test_env_start(&env, jobs_config()); /* stops the server (and the running child) first */
    for (int k = 0; k < 2; k++) {
        json_t *j = wait_job(k ? id_b : id_a);
        cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "done", "%s",
                         json_dumps(j, 0));
        json_decref(j);
    }
    dk_http_reply r = dk_http(&env, "GET", "/v1/targets?profile=site-y", env.distill, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    dk_http_free(&r);
    r = dk_http(&env, "GET", "/v1/targets?profile=site-x", env.distill, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body); /* stopped by the restart, run again after it */
    dk_http_free(&r);
}
