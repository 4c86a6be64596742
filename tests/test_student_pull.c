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
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
    dk_pull_options o = {.server = url,
                         .profile = DK_TEST_PROFILE_A,
                         .cache_dir = cache,
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
    cr_expect_eq(r.arrays, 4 * 4, "%d arrays",
                 r.arrays); /* input, response, uncertainty, features/bottleneck */
    cr_expect_eq(r.downloaded, r.arrays);
    cr_expect_eq(r.cached, 0);
    cr_expect_gt(r.bytes, 0);
    expect_server_bytes(cache, env.port);

    dk_pull_result again;
    cr_assert_eq(dk_pull(&o, &again, &err), DK_OK, "%s", err.msg);
    cr_expect_eq(again.downloaded, 0);
    cr_expect_eq(again.cached, r.arrays);
    cr_expect_eq(again.bytes, 0);
    cr_expect(r.pages == 1 && r.pages_cached == 0, "%d pages, %d cached", r.pages, r.pages_cached);
    cr_expect(again.pages == 1 && again.pages_cached == 1, "the catalogue page was not a 304");
    char lock_path[4300]; /* another pull holding the cache */
    snprintf(lock_path, sizeof lock_path, "%s/%s/.lock", cache, DK_TEST_PROFILE_A);
    int lock = open(lock_path, O_RDWR);
    cr_assert(lock >= 0 && flock(lock, LOCK_EX) == 0);
    cr_expect_eq(dk_pull(&o, &again, &err), DK_EIO);
    cr_expect(strstr(err.msg, "another pull is using the cache"), "%s", err.msg);
    close(lock);

    /* the pulled source reads exactly what the store file holds */
    char store_path[4200];
    snprintf(store_path, sizeof store_path, "%s/%s.h5", env.store_dir, DK_TEST_PROFILE_A);
    dk_target_source pulled, store;
    cr_assert_eq(dk_target_source_open_pulled(cache, DK_TEST_PROFILE_A, &pulled, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(dk_target_source_open_store(store_path, &store, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(pulled.count, store.count);
    const dk_store_manifest *pm = pulled.manifest, *sm = store.manifest;
    cr_expect_str_eq(pm->teacher_sha256, sm->teacher_sha256);
    cr_expect_str_eq(pm->student_architecture, sm->student_architecture);
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
    /* the pulled manifest is the store's in every field a union compares */
    dk_target_source both;
    cr_expect_eq(dk_target_source_union(&pulled, &store, &both, &err), DK_OK, "%s", err.msg);
    dk_target_source_close(&both);
    dk_target_source_close(&pulled);
    dk_target_source_close(&store);
    free(cache);
}

/* ---- spawned servers ---- */

typedef struct spawned {
    pid_t pid;
    int port;
    FILE *log; /* its stderr, kept open so that writes to it never raise SIGPIPE */
} spawned;

/* Start argv (a server printing "listening on http://127.0.0.1:PORT" to stderr). */
static spawned spawn(char *const argv[])
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    spawned s = {.pid = fork()};
    cr_assert_geq(s.pid, 0);
    if (s.pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]), close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    s.log = fdopen(fds[0], "r");
    char line[512];
    while (fgets(line, sizeof line, s.log)) {
        const char *at = strstr(line, "listening on http://127.0.0.1:");
        if (at && (s.port = atoi(at + strlen("listening on http://127.0.0.1:"))) > 0) break;
    }
    cr_assert_gt(s.port, 0, "%s did not say where it listens", argv[0]);
    dk_test_env at = env;
    at.port = s.port;
    for (int i = 0; i < 3000; i++) { /* `dualkd serve` verifies its stores first */
        dk_http_reply r = dk_http(&at, "GET", "/readyz", NULL, NULL);
        long status = r.status;
        dk_http_free(&r);
        if (status == 200 || strstr(argv[0], "python")) break;
        usleep(10000);
    }
    return s;
}

static spawned spawn_serve(void)
{
    char *argv[] = {(char *)dk_test_bin(),
                    "serve",
                    "--teacher",
                    env.teacher,
                    "--store",
                    env.store_dir,
                    "--tokens",
                    env.tokens,
                    "--listen",
                    "127.0.0.1:0",
                    "--rate",
                    "0",
                    "--threads",
                    "1",
                    NULL};
    return spawn(argv);
}

static void stop(spawned *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    fclose(s->log);
}

/* ---- a server killed in the middle of an array ---- */

typedef struct killer {
    pid_t server;
} killer;

/* In the pulling child: once an array is part-way in, kill the server and ourselves. */
static void kill_mid_array(const dk_pull_progress *p, void *ctx)
{
    killer *k = ctx;
    if (p->arrays_done >= 2 && p->array_bytes > 0 && p->array_bytes < p->array_total) {
        kill(k->server, SIGKILL);
        raise(SIGKILL);
    }
}

static int count_parts(const char *cache, off_t *size)
{
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/%s/arrays/*/*.part", cache, DK_TEST_PROFILE_A);
    glob_t g;
    int n = glob(pattern, 0, NULL, &g) ? 0 : (int)g.gl_pathc;
    struct stat sb;
    *size = n && !stat(g.gl_pathv[0], &sb) ? sb.st_size : 0;
    if (n) globfree(&g);
    return n;
}

Test(pull, resumes_after_the_server_is_killed_mid_download)
{
    char *cache = dk_test_path("cache-kill"), url[64];
    spawned first = spawn_serve();
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        killer k = {first.pid};
        dk_pull_options o = options(first.port, cache, url, sizeof url);
        o.progress = kill_mid_array, o.ctx = &k;
        dk_pull_result r;
        dk_pull(&o, &r, NULL);
        _exit(3); /* only if the kill never came */
    }
    int status;
    waitpid(child, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the pull was not killed");
    waitpid(first.pid, NULL, 0);
    off_t part_size;
    cr_assert_eq(count_parts(cache, &part_size), 1);
    cr_assert_gt(part_size, 0);

    /* the server is down: a clear error naming the URL, after the retries */
    dk_pull_options o = options(first.port, cache, url, sizeof url);
    dk_pull_result r;
    dk_err err = {0};
    cr_assert_eq(dk_pull(&o, &r, &err), DK_EIO);
    char want[128];
    snprintf(want, sizeof want, "GET http://127.0.0.1:%d/v1/teacher", first.port);
    cr_expect(strstr(err.msg, want) && strstr(err.msg, "after 2 attempts"), "%s", err.msg);
    cr_log_info("server down: %s", err.msg);
    fclose(first.log);

    spawned second = spawn_serve(); /* restarted: another port, the same stores */
    o = options(second.port, cache, url, sizeof url);
    cr_assert_eq(dk_pull(&o, &r, &err), DK_OK, "%s", err.msg);
    cr_expect_eq(r.resumed, 1);
    cr_expect_geq(r.cached, 2);
    cr_expect_eq(r.cached + r.downloaded, r.arrays);
    expect_server_bytes(cache, second.port);
    stop(&second);
    free(cache);
}

/* ---- a server answering garbage ---- */

typedef struct garbage_case {
    const char *mode;
    dk_status status;
    const char *says; /* in the message, beside the array's URL */
} garbage_case;

Test(pull, a_server_answering_garbage_gets_a_clear_error)
{
    static const garbage_case cases[] = {
        {"ctype", DK_EFORMAT, "Content-Type 'text/html', not application/x-npy"},
        {"truncated", DK_EFORMAT, "(truncated)"},
        {"cut", DK_EIO, "after 2 attempts"},
        {"npyshape", DK_EMISMATCH, "the .npy holds f4 of rank 4"},
        {"shape", DK_EMISMATCH, "array 'response' has shape"},
        {"slow", DK_EIO, "too slow"},
        {"status503", DK_EIO, "HTTP 503: overloaded, try later"},
    };
    char script[4200], upstream[64];
    snprintf(script, sizeof script, "%s/tests/garbage_server.py", dk_test_source());
    snprintf(upstream, sizeof upstream, "http://127.0.0.1:%d", env.port);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const garbage_case *g = &cases[c];
        char *argv[] = {(char *)dk_test_python(), script, upstream, (char *)g->mode, NULL};
        spawned bad = spawn(argv);
        char name[64], url[64];
        snprintf(name, sizeof name, "cache-%s", g->mode);
        char *cache = dk_test_path(name);
        dk_pull_options o = options(bad.port, cache, url, sizeof url);
        o.fetch.low_speed_s = 1;
        dk_pull_result r;
        dk_err err = {0};
        dk_status st = dk_pull(&o, &r, &err);
        cr_log_info("%s: %s", g->mode, err.msg);
        cr_expect_eq(st, g->status, "%s: %s (%s)", g->mode, err.msg, dk_status_name(st));
        cr_expect(strstr(err.msg, g->says), "%s: %s", g->mode, err.msg);
        if (strcmp(g->mode, "shape")) /* the others name the array's URL */
            cr_expect(strstr(err.msg, "/v1/targets/") && strstr(err.msg, url), "%s: %s", g->mode,
                      err.msg);
        dk_target_source src;
        cr_expect_neq(dk_target_source_open_pulled(cache, DK_TEST_PROFILE_A, &src, NULL), DK_OK,
                      "%s: the trainer would accept a short cache", g->mode);
        stop(&bad);
        free(cache);
    }
}

/* ---- the CLI ---- */

Test(pull, student_train_with_server_twice)
{
    char *site = dk_test_path("site.h5"), *cfg = dk_test_path("cfg.json");
    dk_test_write_phantoms(site, 2, 1, true);
    FILE *f = fopen(cfg, "w");
    fputs("{\"patch\": [2, 16, 16], \"batch\": 1, \"steps\": 2, \"steps_per_epoch\": 2,"
          " \"checkpoint_every\": 0, \"distill\": {\"transfer_batch\": 1}}",
          f);
    fclose(f);
    char cmd[8192], text[1 << 14];
    snprintf(cmd, sizeof cmd,
             "DUALKD_TOKEN='%s' '%s' student train --server http://127.0.0.1:%d/ --profile %s "
             "--data '%s' --out '%s/st.h5' --config '%s' --threads 1",
             env.all, dk_test_bin(), env.port, DK_TEST_PROFILE_A, site, dk_test_dir, cfg);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    cr_expect(strstr(text, "16 arrays: 16 downloaded (0 resumed), 0 from the cache"), "%s", text);
    cr_expect(strstr(text, "MB/s") && strstr(text, "best checkpoint"), "%s", text);
    cr_expect(!strstr(text, env.all), "the token is in the log: %s", text);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    cr_expect(strstr(text, "(catalogue: 1 page, 1 unchanged), 16 arrays: 0 downloaded (0 resumed), "
                           "16 from the cache") &&
                  strstr(text, "nothing new to download"),
              "%s", text);
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/st.h5.cache/%s/index.json", dk_test_dir, DK_TEST_PROFILE_A);
    cr_expect_eq(access(cache, R_OK), 0, "no cache index at %s", cache);
    /* a token the server does not know: the server's reason, not a crash */
    snprintf(cmd, sizeof cmd,
             "'%s' student train --server http://127.0.0.1:%d --token dk_nope --profile %s "
             "--data '%s' --out '%s/st2.h5' --config '%s'",
             dk_test_bin(), env.port, DK_TEST_PROFILE_A, site, dk_test_dir, cfg);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 1, "%s", text);
    cr_expect(strstr(text, "/v1/teacher: HTTP 401") && !strstr(text, "dk_nope"), "%s", text);
    free(site), free(cfg);
}
