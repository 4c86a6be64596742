/* serverutil.c: the server tests' fixture and HTTP client (serverutil.h). */
#define _GNU_SOURCE
#include "serverutil.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "teacher/precompute.h"
#include "teacher/precompute_run.h"
#include "teacher/train.h"
#include "testutil.h"

static void train_tiny_teacher(const char *data, const char *out)
{
    char config[512];
    snprintf(config, sizeof config, DK_TEST_TINY_TEACHER, 4, 2);
    dk_test_train_teacher(data, out, config, 5);
}

static void precompute(const dk_test_env *env, const char *profile)
{
    dk_err err = {0};
    dk_precompute_options o = dk_precompute_options_default();
    o.teacher_path = env->teacher, o.data_path = env->data, o.out_dir = env->store_dir;
    o.passes = 2;
    cr_assert_eq(dk_profile_builtin(profile, &o.profile, &err), DK_OK, "%s", err.msg);
    dk_precompute_result res;
    cr_assert_eq(dk_precompute_run(&o, &res, &err), DK_OK, "%s", err.msg);
}

static void add_token(dk_tokens *t, char *token, const char *site, unsigned scopes,
                      const char *profiles)
{
    dk_err err = {0};
    cr_assert_eq(dk_token_generate(token, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_tokens_add(t, token, site, scopes, profiles, &err), DK_OK, "%s", err.msg);
}

static void write_tokens(dk_test_env *env)
{
    dk_tokens t = {0};
    dk_err err = {0};
    add_token(&t, env->all, "hospital-a", DK_SCOPE_TARGETS, NULL);
    add_token(&t, env->only_a, "hospital-b", DK_SCOPE_TARGETS, DK_TEST_PROFILE_A);
    add_token(&t, env->evaluate, "hospital-c", DK_SCOPE_EVALUATE, NULL);
    add_token(&t, env->revoked, "hospital-d", DK_SCOPE_TARGETS, NULL);
    add_token(&t, env->distill, "hospital-f", DK_SCOPE_TARGETS | DK_SCOPE_DISTILL, NULL);
    int n = 0;
    cr_assert_eq(dk_tokens_revoke(&t, "hospital-d", &n, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_tokens_save(env->tokens, &t, &err), DK_OK, "%s", err.msg);
    dk_tokens_free(&t);
}

void dk_test_env_setup(dk_test_env *env, bool start)
{
    memset(env, 0, sizeof *env);
    env->data = dk_test_path("repo.h5");
    env->teacher = dk_test_path("teacher.h5");
    env->store_dir = dk_test_path("stores");
    env->tokens = dk_test_path("tokens.json");
    dk_test_write_phantoms(env->data, 3, 1, true);
    train_tiny_teacher(env->data, env->teacher);
    precompute(env, DK_TEST_PROFILE_A);
    precompute(env, DK_TEST_PROFILE_B);
    write_tokens(env);
    if (start) dk_test_env_start(env, (dk_server_config){.rate = -1});
}

void dk_test_env_start(dk_test_env *env, dk_server_config c)
{
    if (env->server) dk_server_stop(env->server, 5);
    c.teacher_path = env->teacher, c.store_dir = env->store_dir, c.tokens_path = env->tokens;
    c.listen = "127.0.0.1:0", c.version = "test";
    dk_err err = {0};
    env->server = dk_server_start(&c, &err);
    cr_assert_not_null(env->server, "%s", err.msg);
    env->port = dk_server_port(env->server);
    cr_assert(env->port > 0);
    for (int i = 0; i < 3000; i++) { /* stores are verified in the background */
        dk_http_reply r = dk_http(env, "GET", "/readyz", NULL, NULL);
        long status = r.status;
        dk_http_free(&r);
        if (status == 200) return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    cr_assert_fail("/readyz never became 200");
}

void dk_test_env_teardown(dk_test_env *env)
{
    if (env->server) dk_server_stop(env->server, 5);
    free(env->data), free(env->teacher), free(env->store_dir), free(env->tokens);
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    dk_http_reply *r = ctx;
    char *grown = realloc(r->body, r->len + size * n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, data, size * n);
    r->body = grown;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    dk_http_reply *r = ctx;
    size_t have = strlen(r->headers);
    if (have + size * n < sizeof r->headers) memcpy(r->headers + have, data, size * n);
    return size * n;
}

dk_http_reply dk_http(const dk_test_env *env, const char *method, const char *path,
                      const char *token, const char *const *headers)
{
    return dk_http_body(env, method, path, token, headers, NULL);
}

dk_http_reply dk_http_body(const dk_test_env *env, const char *method, const char *path,
                           const char *token, const char *const *headers, const char *body)
{
    return dk_http_bytes(env, method, path, token, headers, body, body ? strlen(body) : 0);
}

dk_http_reply dk_http_bytes(const dk_test_env *env, const char *method, const char *path,
                            const char *token, const char *const *headers, const void *body,
                            size_t len)
{
    dk_http_reply r;
    memset(&r, 0, sizeof r);
    r.body = calloc(1, 1);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[4096], auth[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", env->port, path);
    struct curl_slist *list = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        list = curl_slist_append(list, auth);
    }
    for (int i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* send "../" as written */
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return r;
}

void dk_http_free(dk_http_reply *r)
{
    free(r->body);
    r->body = NULL;
}

const char *dk_http_header(const dk_http_reply *r, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, cap, "%.*s", (int)(end - v), v);
            return buf;
        }
        line = *end ? end + 2 : end;
    }
    return NULL;
}
