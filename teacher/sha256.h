/* sha256.h: SHA-256 (FIPS 180-4) of byte strings and files, for the target
 * store's teacher hash and per-array checksums. Streaming context; no
 * allocation; hex digests are 64 lowercase characters plus a NUL. */
#ifndef DK_SHA256_H
#define DK_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "distill/err.h"

#define DK_SHA256_HEX 65 /* 64 hex digits + NUL */

typedef struct dk_sha256 {
    uint32_t h[8];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* pending partial block */
    size_t fill;       /* bytes in block */
} dk_sha256;

void dk_sha256_init(dk_sha256 *s);
void dk_sha256_update(dk_sha256 *s, const void *data, size_t n);
/* Finish: 32 raw bytes into digest (s may not be updated afterwards). */
void dk_sha256_final(dk_sha256 *s, uint8_t digest[32]);

/* One-shot: the hex digest of n bytes into hex (DK_SHA256_HEX chars). */
void dk_sha256_hex(const void *data, size_t n, char hex[DK_SHA256_HEX]);

/* The hex digest of a file's bytes; the message names the file. */
dk_status dk_sha256_file(const char *path, char hex[DK_SHA256_HEX], dk_err *err);

#endif
