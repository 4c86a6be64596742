/* tokens.c: the token file as JSON (jansson), token digests and randomness
 * through OpenSSL libcrypto, and the constant-time lookup. */
#define _GNU_SOURCE
#include "httpapi/tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const scope_names[] = {"targets", "evaluate", "distill", "federation",
                                          "federation-admin"};
#define SCOPE_COUNT 5

bool dk_name_is_safe(const char *name)
{
    size_t n = strnlen(name, 64);
    if (n == 0 || n > 63 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

dk_status dk_scopes_parse(const char *csv, unsigned *out, dk_err *err)
{
    *out = 0;
    const char *p = csv;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int i = 0; i < SCOPE_COUNT; i++)
            if (strlen(scope_names[i]) == n && strncmp(p, scope_names[i], n) == 0) found = i;
        if (found < 0)
            return dk_err_set(err, DK_EFORMAT,
                              "unknown scope '%.*s' (scopes: targets, evaluate, distill, "
                              "federation, federation-admin)",
                              (int)(n > 40 ? 40 : n), p);
        *out |= 1u << found;
        p += n;
        if (*p == ',') p++;
    }
    if (!*out)
        return dk_err_set(
            err, DK_EFORMAT,
            "no scope given (scopes: targets, evaluate, distill, federation, federation-admin)");
    return DK_OK;
}

void dk_scopes_format(unsigned scopes, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < SCOPE_COUNT; i++)
        if (scopes & (1u << i))
            n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? "," : "",
                                  scope_names[i]);
}

bool dk_token_grants(const dk_token_entry *e, const char *profile)
{
    if (e->profile_count == 0) return true;
    for (int i = 0; i < e->profile_count; i++)
        if (strcmp(e->profiles[i], profile) == 0) return true;
    return false;
}

dk_status dk_token_sha256(const void *data, size_t n, unsigned char digest[32], dk_err *err)
{
    unsigned len = 0;
    if (EVP_Digest(data, n, digest, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return dk_err_set(err, DK_EIO, "OpenSSL could not compute a SHA-256");
    return DK_OK;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++)
        out[2 * i] = digits[b[i] >> 4], out[2 * i + 1] = digits[b[i] & 15];
    out[2 * n] = '\0';
}

static bool unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n) return false;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return false;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return true;
}

dk_status dk_token_generate(char out[DK_TOKEN_CHARS], dk_err *err)
{
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return dk_err_set(err, DK_EIO, "the OS gave no randomness for a token (RAND_bytes failed)");
    memcpy(out, "dk_", 3);
    hex(bytes, sizeof bytes, out + 3);
    OPENSSL_cleanse(bytes, sizeof bytes);
    return DK_OK;
}

const dk_token_entry *dk_tokens_find(const dk_tokens *t, const char *presented)
{
    unsigned char d[32];
    if (dk_token_sha256(presented, strlen(presented), d, NULL)) return NULL;
    const dk_token_entry *hit = NULL;
    /* every entry is compared, so timing says nothing about which digest matched how far */
    for (int i = 0; i < t->count; i++)
        if (CRYPTO_memcmp(d, t->entries[i].digest, sizeof d) == 0) hit = &t->entries[i];
    return hit;
}

static dk_status add_profiles(dk_token_entry *e, const char *csv, dk_err *err)
{
    e->profile_count = 0;
    for (const char *p = csv ? csv : ""; *p;) {
        size_t n = strcspn(p, ",");
        if (e->profile_count == DK_TOKEN_MAX_PROFILES)
            return dk_err_set(err, DK_ELIMIT, "more than %d profiles for one token",
                              DK_TOKEN_MAX_PROFILES);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), p);
        if (n > 63 || !dk_name_is_safe(name))
            return dk_err_set(err, DK_EFORMAT, "profile name '%s' is not [A-Za-z0-9._-]{1,63}",
                              name);
        strcpy(e->profiles[e->profile_count++], name);
        p += n;
        if (*p == ',') p++;
    }
    return DK_OK;
}

dk_status dk_tokens_add(dk_tokens *t, const char *token, const char *site, unsigned scopes,
                        const char *profiles_csv, dk_err *err)
{
    if (!dk_name_is_safe(site))
        return dk_err_set(err, DK_EFORMAT, "site name '%.64s' is not [A-Za-z0-9._-]{1,63}", site);
    if (!scopes || scopes >= (1u << SCOPE_COUNT))
        return dk_err_set(err, DK_EINVAL, "a token needs at least one known scope");
    if (t->count >= DK_TOKENS_MAX)
        return dk_err_set(err, DK_ELIMIT, "the token file already holds %d tokens", DK_TOKENS_MAX);
    dk_token_entry e = {.scopes = scopes};
    dk_status st = add_profiles(&e, profiles_csv, err);
    if (!st) st = dk_token_sha256(token, strlen(token), e.digest, err);
    if (st) return st;
    snprintf(e.site, sizeof e.site, "%s", site);
    char digest_hex[65];
    hex(e.digest, 32, digest_hex);
    snprintf(e.id, sizeof e.id, "%.12s", digest_hex);
    time_t now = time(NULL);
    strftime(e.created, sizeof e.created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    dk_token_entry *grown = realloc(t->entries, (size_t)(t->count + 1) * sizeof *grown);
    if (!grown) return dk_err_set(err, DK_ENOMEM, "out of memory adding a token");
    t->entries = grown;
    t->entries[t->count++] = e;
    return DK_OK;
}

dk_status dk_tokens_revoke(dk_tokens *t, const char *id_or_site, int *revoked, dk_err *err)
{
    *revoked = 0;
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->entries[i].id, id_or_site) == 0 ||
            strcmp(t->entries[i].site, id_or_site) == 0) {
            if (!t->entries[i].revoked) (*revoked)++;
            t->entries[i].revoked = true;
        }
    if (*revoked == 0)
        return dk_err_set(err, DK_ENOTFOUND, "no unrevoked token has id or site '%.64s'",
                          id_or_site);
    return DK_OK;
}

void dk_tokens_free(dk_tokens *t)
{
    if (!t) return;
    free(t->entries);
    t->entries = NULL;
    t->count = 0;
}

/* ---- the file ---- */

static dk_status entry_from_json(json_t *o, const char *path, int i, dk_token_entry *e, dk_err *err)
{
    const char *id = NULL, *site = NULL, *digest = NULL, *created = "";
    json_t *scopes = NULL, *profiles = NULL;
    int revoked = 0;
    json_error_t je;
    if (json_unpack_ex(o, &je, JSON_STRICT, "{s:s, s:s, s:s, s:o, s?o, s?s, s?b}", "id", &id,
                       "site", &site, "sha256", &digest, "scopes", &scopes, "profiles", &profiles,
                       "created", &created, "revoked", &revoked))
        return dk_err_set(err, DK_EFORMAT, "'%s': token %d: %s", path, i, je.text);
    memset(e, 0, sizeof *e);
    if (!dk_name_is_safe(site) || !unhex(digest, e->digest, 32) || strlen(id) >= sizeof e->id)
        return dk_err_set(err, DK_EFORMAT, "'%s': token %d: bad site, id or sha256", path, i);
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->site, sizeof e->site, "%s", site);
    snprintf(e->created, sizeof e->created, "%s", created);
    e->revoked = revoked;
    size_t k;
    json_t *v;
    if (!json_is_array(scopes))
        return dk_err_set(err, DK_EFORMAT, "'%s': token %d: scopes is not a list", path, i);
    json_array_foreach(scopes, k, v)
    {
        unsigned bits;
        if (!json_is_string(v) || dk_scopes_parse(json_string_value(v), &bits, err))
            return dk_err_set(err, DK_EFORMAT, "'%s': token %d: bad scope", path, i);
        e->scopes |= bits;
    }
    if (profiles) {
        if (!json_is_array(profiles) || json_array_size(profiles) > DK_TOKEN_MAX_PROFILES)
            return dk_err_set(err, DK_EFORMAT, "'%s': token %d: bad profiles", path, i);
        json_array_foreach(profiles, k, v)
        {
            if (!json_is_string(v) || !dk_name_is_safe(json_string_value(v)))
                return dk_err_set(err, DK_EFORMAT, "'%s': token %d: bad profile name", path, i);
            snprintf(e->profiles[e->profile_count++], 64, "%s", json_string_value(v));
        }
    }
    return DK_OK;
}

dk_status dk_tokens_load(const char *path, bool missing_ok, dk_tokens *out, dk_err *err)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT && missing_ok) return DK_OK;
        return dk_err_set(err, errno == ENOENT ? DK_ENOTFOUND : DK_EIO, "token file '%s': %s", path,
                          strerror(errno));
    }
    if (sb.st_size > (off_t)DK_TOKENS_FILE_MAX)
        return dk_err_set(err, DK_ELIMIT, "token file '%s' is larger than %u bytes", path,
                          DK_TOKENS_FILE_MAX);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return dk_err_set(err, DK_EFORMAT, "token file '%s': line %d: %s", path, je.line, je.text);
    const char *format = NULL;
    int version = 0;
    json_t *list = NULL;
    dk_status st = DK_OK;
    if (json_unpack_ex(root, &je, JSON_STRICT, "{s:s, s:i, s:o}", "format", &format, "version",
                       &version, "tokens", &list) ||
        strcmp(format, DK_TOKENS_FORMAT) != 0 || version != 1 || !json_is_array(list) ||
        json_array_size(list) > DK_TOKENS_MAX) {
        st =
            dk_err_set(err, DK_EFORMAT,
                       "token file '%s' is not a version 1 dualkd-tokens file (%s)", path, je.text);
    } else if (json_array_size(list)) {
        out->entries = calloc(json_array_size(list), sizeof *out->entries);
        if (!out->entries) st = dk_err_set(err, DK_ENOMEM, "out of memory reading '%s'", path);
        for (size_t i = 0; !st && i < json_array_size(list); i++, out->count++)
            st = entry_from_json(json_array_get(list, i), path, (int)i, &out->entries[i], err);
    }
    json_decref(root);
    if (st) dk_tokens_free(out);
    return st;
}

static json_t *entry_to_json(const dk_token_entry *e)
{
    char digest[65];
    hex(e->digest, 32, digest);
    json_t *scopes = json_array();
    for (int i = 0; i < SCOPE_COUNT; i++)
        if (e->scopes & (1u << i)) json_array_append_new(scopes, json_string(scope_names[i]));
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:b}", "id", e->id, "site", e->site, "sha256",
                          digest, "scopes", scopes, "created", e->created, "revoked", e->revoked);
    if (o && e->profile_count) {
        json_t *profiles = json_array();
        for (int i = 0; i < e->profile_count; i++)
            json_array_append_new(profiles, json_string(e->profiles[i]));
        json_object_set_new(o, "profiles", profiles);
    }
    return o;
}

dk_status dk_tokens_save(const char *path, const dk_tokens *t, dk_err *err)
{
    json_t *list = json_array();
    for (int i = 0; i < t->count; i++)
        json_array_append_new(list, entry_to_json(&t->entries[i]));
    json_t *root =
        json_pack("{s:s, s:i, s:o}", "format", DK_TOKENS_FORMAT, "version", 1, "tokens", list);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) return dk_err_set(err, DK_ENOMEM, "out of memory writing '%s'", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    dk_status st = DK_OK;
    if (fd < 0) {
        st = dk_err_set(err, DK_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    } else {
        size_t n = strlen(text);
        bool ok = fchmod(fd, 0600) == 0 && write(fd, text, n) == (ssize_t)n &&
                  write(fd, "\n", 1) == 1 && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) {
            st = dk_err_set(err, DK_EIO, "cannot write '%s': %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(text);
    return st;
}
