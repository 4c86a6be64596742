/* auth.c: Bearer tokens against the token file, re-read when the file's
 * identity, size or modification time changes. */
#define _GNU_SOURCE
#include "httpapi/auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dk_auth {
    char path[4096];
    pthread_mutex_t lock; /* guards tokens and the file signature */
    dk_tokens tokens;
    struct stat seen; /* the file as last loaded */
    char reload_error[512];
};

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

dk_auth *dk_auth_open(const char *tokens_path, dk_err *err)
{
    dk_auth *a = calloc(1, sizeof *a);
    if (!a) {
        dk_err_set(err, DK_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(a->path, sizeof a->path, "%s", tokens_path);
    pthread_mutex_init(&a->lock, NULL);
    dk_status st = DK_OK;
    if (stat(tokens_path, &a->seen) != 0)
        st = dk_err_set(err, DK_ENOTFOUND,
                        "token file '%s' does not exist; make one with `dualkd token add`",
                        tokens_path);
    else
        st = dk_tokens_load(tokens_path, false, &a->tokens, err);
    if (st) {
        dk_auth_close(a);
        return NULL;
    }
    return a;
}

void dk_auth_close(dk_auth *a)
{
    if (!a) return;
    dk_tokens_free(&a->tokens);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* Re-read the file if it changed. A file that stops parsing keeps the last
 * good tokens (an operator's typo must not lock every site out or let anyone in). */
static void refresh(dk_auth *a)
{
    struct stat now;
    if (stat(a->path, &now) != 0 || same_file(&now, &a->seen)) return;
    dk_tokens fresh;
    dk_err err = {0};
    if (dk_tokens_load(a->path, false, &fresh, &err) == DK_OK) {
        dk_tokens_free(&a->tokens);
        a->tokens = fresh;
        a->seen = now;
        a->reload_error[0] = '\0';
    } else {
        snprintf(a->reload_error, sizeof a->reload_error, "%s", err.msg);
    }
}

unsigned dk_auth_check(dk_auth *a, const char *authorization, unsigned need_scope,
                       dk_token_entry *who, char *detail, size_t cap)
{
    if (!authorization) {
        snprintf(detail, cap,
                 "this resource needs an 'Authorization: Bearer <token>' header; "
                 "get a token from the server's operator (dualkd token add)");
        return 401;
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0) {
        snprintf(detail, cap, "the Authorization header must be 'Bearer <token>'");
        return 401;
    }
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    pthread_mutex_lock(&a->lock);
    refresh(a);
    const dk_token_entry *e = dk_tokens_find(&a->tokens, token);
    if (e) *who = *e;
    pthread_mutex_unlock(&a->lock);
    if (!e) {
        snprintf(detail, cap, "the bearer token is not known to this server");
        return 401;
    }
    if (who->revoked) {
        snprintf(detail, cap, "the bearer token '%s' of site '%s' has been revoked", who->id,
                 who->site);
        return 401;
    }
    if (need_scope && !(who->scopes & need_scope)) {
        char have[64], need[64];
        dk_scopes_format(who->scopes, have, sizeof have);
        dk_scopes_format(need_scope, need, sizeof need);
        snprintf(detail, cap, "the token of site '%s' has scopes '%s'; this resource needs '%s'",
                 who->site, have, need);
        return 403;
    }
    return 200;
}
