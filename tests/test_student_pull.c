/* test_student_pull.c: the pull of a profile's targets (student/pull.h) end to end
 * over real sockets: from the real server on an ephemeral loopback port (a pull,
 * then a second that downloads nothing and reads the same arrays as the store);
 * `dualkd student train --server` twice through the CLI; a spawned `dualkd serve`
 * killed with SIGKILL in the middle of an array (the pull gives a clear error, a
 * pull killed at the same moment leaves a .part that the next pull, from a
 * restarted server, resumes with Range, ending with the server's exact bytes);
 * and a Python server in front of the real one answering garbage (wrong content
 * type, truncated or cut bodies, a .npy of another shape, a catalogue whose
 * shape disagrees with the manifest, silence, 503): each a clear error naming
 * the URL and what was wrong, and never a cache the trainer would accept. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serverutil.h"
#include "student/pull.h"
#include "teacher/store.h"
#include "testutil.h"

static dk_test_env env;

static void setup(void)
{
    dk_test_dir_setup();
    dk_test_env_setup(&env, true);
    dk_err err = {0};
    cr_assert_eq(dk_fetch_global_init(&err), DK_OK);
}

static void teardown(void)
{
    dk_fetch_global_cleanup();
    dk_test_env_teardown(&env);
    dk_test_dir_teardown();
}

TestSuite(pull, .init = setup, .fini = teardown, .timeout = 600);

static dk_pull_options options(int port, const char *cache, char *url, size_t cap)
{
    snprintf(url, cap, "http://127.0.0.1:%d", port);
    dk_pull_options o = {.server = url, .profile = DK_TEST_PROFILE_A, .cache_dir = cache,
                         .fetch = dk_fetch_options_default()};
    o.fetch.token = env.all;
    o.fetch.retries = 1;
    o.fetch.backoff_s = 0.05;
    return o;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*len + 1);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

/* Every cached array equals the body the server at port sends for it. */
static void expect_server_bytes(const char *cache, int port)
{
    char dir[4096], pattern[4200];
    snprintf(dir, sizeof dir, "%s/%s", cache, DK_TEST_PROFILE_A);
    dk_target_source src;
    dk_err err = {0};
    cr_assert_eq(dk_target_source_open_pulled(cache, DK_TEST_PROFILE_A, &src, &err), DK_OK, "%s",
                 err.msg);
    dk_test_env at = env;
    at.port = port;
    int checked = 0;
    for (int i = 0; i < src.count; i++) {
        const dk_store_sample_info *s = src.sample(&src, i);
        for (int k = 0; k < s->array_count; k++) {
            char file[64], path[4400], url[256];
            snprintf(file, sizeof file, "%s", s->arrays[k].kind);
            for (char *c = file; *c; c++)
                if (*c == '/') *c = '-';
            snprintf(path, sizeof path, "%s/arrays/%s/%s.npy", dir, s->id, file);
            snprintf(url, sizeof url, "/v1/targets/%s/%s?profile=%s", s->id, s->arrays[k].kind,
                     DK_TEST_PROFILE_A);
            dk_http_reply r = dk_http(&at, "GET", url, env.all, NULL);
            size_t len;
            char *cached = read_all(path, &len);
            cr_assert_eq(r.status, 200);
            cr_assert(len == r.len && !memcmp(cached, r.body, len), "%s differs from %s", path,
                      url);
            free(cached);
            dk_http_free(&r);
            checked++;
        }
    }
    cr_assert_gt(checked, 0);
    snprintf(pattern, sizeof pattern, "%s/arrays/*/*.part", dir);
    glob_t g;
    cr_expect_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH, "a .part is left behind");
    globfree(&g);
    dk_target_source_close(&src);
}

Test(pull, pulls_then_hits_the_cache_and_reads_as_the_store)
{
    char *cache = dk_test_path("cache"), url[64];
    dk_pull_options o = options(env.port, cache, url, sizeof url);
    dk_pull_result r;
    dk_err err = {0};
    cr_assert_eq(dk_pull(&o, &r, &err), DK_OK, "%s", err.msg);
    cr_expect_eq(r.samples, 4, "%d samples", r.samples); /* 3 train + 1 validation */
    cr_expect_eq(r.arrays, 4 * 4, "%d arrays", r.arrays); /* input, response, uncertainty, features/bottleneck */
    cr_expect_eq(r.downloaded, r.arrays);
    cr_expect_eq(r.cached, 0);
    cr_expect_gt(r.bytes, 0);
    expect_server_bytes(cache, env.port);

    dk_pull_result again;
    cr_assert_eq(dk_pull(&o, &again, &err), DK_OK, "%s", err.msg);
    cr_expect_eq(again.downloaded, 0);
    cr_expect_eq(again.cached, r.arrays);
    cr_expect_eq(again.bytes, 0);

    /* the pulled source reads exactly what the store file holds */
    char store_path[4200];
    snprintf(store_path, sizeof store_path, "%s/%s.h5", env.store_dir, DK_TEST_PROFILE_A);
    dk_target_source pulled, store;
    cr_assert_eq(dk_target_source_open_pulled(cache, DK_TEST_PROFILE_A, &pulled, &err), DK_OK,
                 "%s", err.msg);
    cr_assert_eq(dk_target_source_open_store(store_path, &store, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(pulled.count, store.count);
    const dk_store_manifest *pm = pulled.manifest, *sm = store.manifest;
    cr_expect_str_eq(pm->teacher_sha256, sm->teacher_sha256);
    cr_expect_eq(pm->temperature, sm->temperature);
    cr_expect_eq(pm->classes.count, sm->classes.count);
    cr_expect(!memcmp(pm->student_multiple, sm->student_multiple, sizeof pm->student_multiple));
    cr_expect_eq(pm->feature_count, sm->feature_count);
    cr_expect_eq(pm->features[0].channels, sm->features[0].channels);
    cr_expect_eq(pm->features[0].student_tap, sm->features[0].student_tap);
    for (int i = 0; i < pulled.count; i++) {
        const dk_store_sample_info *s = pulled.sample(&pulled, i);
        for (int k = 0; k < s->array_count; k++) {
            size_t n = dk_store_array_numel(&s->arrays[k]);
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            cr_assert_eq(pulled.read(&pulled, i, s->arrays[k].kind, a, n, &err), DK_OK, "%s",
                         err.msg);
            cr_assert_eq(store.read(&store, i, s->arrays[k].kind, b, n, &err), DK_OK, "%s",
                         err.msg);
            cr_expect(!memcmp(a, b, n * sizeof *a), "sample %d '%s'", i, s->arrays[k].kind);
            free(a), free(b);
        }
    }
    dk_target_source_close(&pulled);
    dk_target_source_close(&store);
    free(cache);
}
