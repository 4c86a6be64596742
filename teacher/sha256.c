/* sha256.c: SHA-256 through OpenSSL's EVP interface (sha256.h). The low-level
 * SHA256_Init family is deprecated in OpenSSL 3, so every hash holds an
 * EVP_MD_CTX, and every OpenSSL failure becomes a dk_err. */
#include "teacher/sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

dk_status dk_sha256_init(dk_sha256 *s, dk_err *err)
{
    *s = (dk_sha256){0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return dk_err_set(err, DK_ENOMEM, "no memory for a SHA-256 context");
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return dk_err_set(err, DK_EIO, "OpenSSL cannot start a SHA-256 hash");
    }
    s->ctx = ctx;
    return DK_OK;
}

void dk_sha256_update(dk_sha256 *s, const void *data, size_t n)
{
    if (!s->ctx || s->failed || n == 0) return;
    if (EVP_DigestUpdate(s->ctx, data, n) != 1) s->failed = true;
}

dk_status dk_sha256_final(dk_sha256 *s, uint8_t digest[32], dk_err *err)
{
    unsigned len = 0;
    bool ok = s->ctx && !s->failed && EVP_DigestFinal_ex(s->ctx, digest, &len) == 1 && len == 32;
    dk_sha256_abort(s);
    return ok ? DK_OK : dk_err_set(err, DK_EIO, "OpenSSL failed to compute a SHA-256 digest");
}

static void to_hex(const uint8_t digest[32], char hex[DK_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

dk_status dk_sha256_final_hex(dk_sha256 *s, char hex[DK_SHA256_HEX], dk_err *err)
{
    uint8_t d[32];
    dk_status st = dk_sha256_final(s, d, err);
    if (st == DK_OK) to_hex(d, hex);
    return st;
}

void dk_sha256_abort(dk_sha256 *s)
{
    EVP_MD_CTX_free(s->ctx);
    *s = (dk_sha256){0};
}

dk_status dk_sha256_hex(const void *data, size_t n, char hex[DK_SHA256_HEX], dk_err *err)
{
    dk_sha256 s;
    dk_status st = dk_sha256_init(&s, err);
    if (st != DK_OK) return st;
    dk_sha256_update(&s, data, n);
    return dk_sha256_final_hex(&s, hex, err);
}

dk_status dk_sha256_file(const char *path, char hex[DK_SHA256_HEX], dk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dk_err_set(err, errno == ENOENT ? DK_ENOTFOUND : DK_EIO, "cannot read '%s': %s",
                          path, strerror(errno));
    dk_sha256 s;
    dk_status st = dk_sha256_init(&s, err);
    uint8_t buf[1 << 16];
    size_t got;
    while (st == DK_OK && (got = fread(buf, 1, sizeof buf, f)) > 0)
        dk_sha256_update(&s, buf, got);
    if (st == DK_OK && ferror(f)) {
        dk_sha256_abort(&s);
        st = dk_err_set(err, DK_EIO, "error reading '%s'", path);
    }
    fclose(f);
    if (st == DK_OK) st = dk_sha256_final_hex(&s, hex, err);
    return st;
}
