/* tokens.h: the token file (docs/api.md, "Tokens"): one entry per site token
 * with its scopes and profile grants, holding only the SHA-256 of the token.
 *
 * A token is "dk_" followed by 64 hex digits (256 bits from the OS through
 * OpenSSL's RAND_bytes); it is shown once when made and never stored. Looking
 * a presented token up hashes it and compares digests with CRYPTO_memcmp
 * against every entry, so the time taken does not depend on how much of a
 * digest matched. The file is written to a temporary name, fsync'ed and
 * renamed (mode 0600), so a reader never sees half a file. */
#ifndef DK_TOKENS_H
#define DK_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/err.h"

#define DK_TOKENS_FORMAT      "dualkd-tokens"
#define DK_TOKEN_CHARS        68 /* "dk_" + 64 hex digits + NUL */
#define DK_TOKEN_MAX_PROFILES 16
#define DK_TOKENS_MAX         4096
#define DK_TOKENS_FILE_MAX    (4u << 20)

/* Scopes, as bits; names "targets", "evaluate", "distill", "federation",
 * "federation-admin" (creates federations: POST /v1/federation). */
enum {
    DK_SCOPE_TARGETS = 1,
    DK_SCOPE_EVALUATE = 2,
    DK_SCOPE_DISTILL = 4,
    DK_SCOPE_FEDERATION = 8,
    DK_SCOPE_FEDERATION_ADMIN = 16,
};

typedef struct dk_token_entry {
    char id[16];   /* first 12 hex digits of the digest: names the token in list/revoke */
    char site[64]; /* [A-Za-z0-9._-], 1..63 characters */
    unsigned scopes;
    int profile_count; /* 0 = every profile */
    char profiles[DK_TOKEN_MAX_PROFILES][64];
    unsigned char digest[32]; /* SHA-256 of the token text */
    char created[32];         /* ISO 8601 UTC */
    bool revoked;
} dk_token_entry;

typedef struct dk_tokens {
    int count;
    dk_token_entry *entries; /* owned; free with dk_tokens_free */
} dk_tokens;

/* Read and validate a token file. A missing file is an empty set when
 * missing_ok, else DK_ENOTFOUND. Caller frees out with dk_tokens_free. */
dk_status dk_tokens_load(const char *path, bool missing_ok, dk_tokens *out, dk_err *err);
/* Write atomically (temporary file, fsync, rename; mode 0600). */
dk_status dk_tokens_save(const char *path, const dk_tokens *t, dk_err *err);
void dk_tokens_free(dk_tokens *t);

/* A new random token into out (DK_TOKEN_CHARS bytes). DK_EIO if the OS has no randomness. */
dk_status dk_token_generate(char out[DK_TOKEN_CHARS], dk_err *err);
/* SHA-256 of a byte string through OpenSSL's EVP interface. */
dk_status dk_token_sha256(const void *data, size_t n, unsigned char digest[32], dk_err *err);

/* Append an entry for token (its digest only). profiles_csv NULL or "" grants
 * every profile. Validates site, scopes and profile names. */
dk_status dk_tokens_add(dk_tokens *t, const char *token, const char *site, unsigned scopes,
                        const char *profiles_csv, dk_err *err);
/* Mark the entry with this id (or every entry of this site) revoked; DK_ENOTFOUND if none. */
dk_status dk_tokens_revoke(dk_tokens *t, const char *id_or_site, int *revoked, dk_err *err);

/* The entry whose digest matches the presented token (revoked ones included:
 * the caller says why it refuses), or NULL. Borrowed, valid while t is. */
const dk_token_entry *dk_tokens_find(const dk_tokens *t, const char *presented);

/* "targets,evaluate" <-> bits; DK_EFORMAT naming an unknown scope. */
dk_status dk_scopes_parse(const char *csv, unsigned *out, dk_err *err);
void dk_scopes_format(unsigned scopes, char *buf, size_t cap);
/* True when e may read profile. */
bool dk_token_grants(const dk_token_entry *e, const char *profile);
/* True for a usable site or profile name: [A-Za-z0-9._-], 1..63 chars, not "." or "..". */
bool dk_name_is_safe(const char *name);

#endif
