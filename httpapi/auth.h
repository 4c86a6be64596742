/* auth.h: who is calling: the Bearer token of a request checked against the
 * token file, which is re-read whenever it changes on disk (so `dualkd token
 * revoke` takes effect without a restart, on every replica that shares it). */
#ifndef DK_HTTPAPI_AUTH_H
#define DK_HTTPAPI_AUTH_H

#include <stddef.h>

#include "distill/err.h"
#include "httpapi/tokens.h"

typedef struct dk_auth dk_auth;

/* Load the token file (it must exist and parse). Caller frees with dk_auth_close. */
dk_auth *dk_auth_open(const char *tokens_path, dk_err *err);
void dk_auth_close(dk_auth *a);

/* Check an Authorization header value (NULL when absent). On success (200) the
 * caller's entry is copied into who. Otherwise 401 (missing, malformed, unknown
 * or revoked token) or 403 (the token lacks need_scope; 0 = any token), with a
 * detail a person can act on in detail. */
unsigned dk_auth_check(dk_auth *a, const char *authorization, unsigned need_scope,
                       dk_token_entry *who, char *detail, size_t cap);

#endif
