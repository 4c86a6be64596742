/* serverutil.h: helpers for the server tests (tests/test_server*.c): a real
 * fixture (phantom repository, a tiny teacher trained here, target stores for
 * two profiles precomputed by the real code, a token file), the server started
 * in-process on an ephemeral loopback port, and an HTTP client over libcurl. */
#ifndef DK_SERVERUTIL_H
#define DK_SERVERUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "httpapi/server.h"
#include "httpapi/tokens.h"

#define DK_TEST_PROFILE_A "clinical-3.3mm"
#define DK_TEST_PROFILE_B "clinical-4.5mm"

typedef struct dk_test_env {
    char *data, *teacher, *store_dir, *tokens; /* paths under dk_test_dir (owned) */
    char all[DK_TOKEN_CHARS];                  /* site "hospital-a": targets, every profile */
    char only_a[DK_TOKEN_CHARS];               /* site "hospital-b": targets, profile A only */
    char evaluate[DK_TOKEN_CHARS];             /* site "hospital-c": evaluate only */
    char revoked[DK_TOKEN_CHARS];              /* site "hospital-d": targets, revoked */
    char distill[DK_TOKEN_CHARS]; /* site "hospital-f": targets and distill, every profile */
    dk_server *server;
    int port;
} dk_test_env;

/* Build the fixture in dk_test_dir (call from a suite's .init after
 * dk_test_dir_setup) and, with start, start the server in this process and
 * wait until /readyz is 200. */
void dk_test_env_setup(dk_test_env *env, bool start);
/* Start the server over env's fixture with c's limits (paths and listen are
 * filled in here), replacing env->server; waits until /readyz is 200. */
void dk_test_env_start(dk_test_env *env, dk_server_config c);
/* Stop the server and free the paths. */
void dk_test_env_teardown(dk_test_env *env);

typedef struct dk_http_reply {
    long status;
    char *body; /* NUL-terminated (owned) */
    size_t len;
    char headers[16384]; /* raw response headers */
} dk_http_reply;

/* method path (e.g. "/v1/teacher?x=1", sent as is) with a bearer token (NULL:
 * none) and extra header lines (NULL-terminated list, may be NULL). Fails the
 * test when the transfer fails. Free with dk_http_free. */
dk_http_reply dk_http(const dk_test_env *env, const char *method, const char *path,
                      const char *token, const char *const *headers);
/* The same with a request body (NUL-terminated text). */
dk_http_reply dk_http_body(const dk_test_env *env, const char *method, const char *path,
                           const char *token, const char *const *headers, const char *body);
/* The same with a binary body of len bytes. */
dk_http_reply dk_http_bytes(const dk_test_env *env, const char *method, const char *path,
                            const char *token, const char *const *headers, const void *body,
                            size_t len);
void dk_http_free(dk_http_reply *r);
/* A response header's value (case-insensitive name) into buf, or NULL. */
const char *dk_http_header(const dk_http_reply *r, const char *name, char *buf, size_t cap);

#endif
