/* sha256.h: SHA-256 (FIPS 180-4) of byte strings and files, for the target
 * store's content hashes and per-array checksums, computed by OpenSSL's
 * libcrypto (EVP), not by hand. Hex digests are 64 lowercase characters plus
 * a NUL. */
#ifndef DK_SHA256_H
#define DK_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distill/err.h"

#define DK_SHA256_HEX 65 /* 64 hex digits + NUL */

/* A running hash. Begin with dk_sha256_init; end with dk_sha256_final (or
 * dk_sha256_abort on an error path), which release the OpenSSL context. */
typedef struct dk_sha256 {
    void *ctx;   /* EVP_MD_CTX, owned */
    bool failed; /* an update failed: final reports it */
} dk_sha256;

dk_status dk_sha256_init(dk_sha256 *s, dk_err *err);
void dk_sha256_update(dk_sha256 *s, const void *data, size_t n);
/* Finish: 32 raw bytes into digest; releases s (also on failure). */
dk_status dk_sha256_final(dk_sha256 *s, uint8_t digest[32], dk_err *err);
/* Finish into a hex digest; releases s. */
dk_status dk_sha256_final_hex(dk_sha256 *s, char hex[DK_SHA256_HEX], dk_err *err);
/* Release s without a digest. Safe on a zeroed or released s. */
void dk_sha256_abort(dk_sha256 *s);

/* One-shot: the hex digest of n bytes into hex. */
dk_status dk_sha256_hex(const void *data, size_t n, char hex[DK_SHA256_HEX], dk_err *err);

/* The hex digest of a file's bytes; the message names the file. */
dk_status dk_sha256_file(const char *path, char hex[DK_SHA256_HEX], dk_err *err);

#endif
