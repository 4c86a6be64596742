/* stores.c: the store directory as the server sees it: which stores exist,
 * which are verified and served, and the process-wide HDF5 lock. */
#define _GNU_SOURCE
#include "httpapi/stores.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "httpapi/tokens.h"
#include "teacher/sha256.h"

#define MAX_STORES 256

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;
void dk_h5_lock(void)
{
    pthread_mutex_lock(&h5_lock);
}
void dk_h5_unlock(void)
{
    pthread_mutex_unlock(&h5_lock);
}

typedef struct entry {
    dk_served_store served;
    _Atomic dk_store_state state;
    char error[600]; /* why it failed; written before state becomes FAILED */
} entry;

struct dk_stores {
    char dir[4096];
    atomic_int count; /* entries below it are published: readers need no lock */
    entry entries[MAX_STORES];
    pthread_t verifier;
    bool verifier_started;
    atomic_bool stopping;
};

/* An ETag over everything the catalogue shows: manifest identity, ids, checksums. */
static void catalogue_etag(const dk_store *s, char out[80])
{
    const dk_store_manifest *m = dk_store_manifest_of(s);
    dk_sha256 h;
    out[0] = '\0'; /* no ETag if OpenSSL cannot hash (out of memory) */
    if (dk_sha256_init(&h, NULL)) return;
    dk_sha256_update(&h, m->profile, strlen(m->profile) + 1);
    dk_sha256_update(&h, m->teacher_sha256, strlen(m->teacher_sha256) + 1);
    dk_sha256_update(&h, m->created, strlen(m->created) + 1);
    for (int i = 0; i < dk_store_count(s); i++) {
        const dk_store_sample_info *si = dk_store_sample_at(s, i);
        dk_sha256_update(&h, si->id, strlen(si->id) + 1);
        for (int a = 0; a < si->array_count; a++)
            dk_sha256_update(&h, si->arrays[a].sha256, 64);
    }
    uint8_t d[32];
    if (dk_sha256_final(&h, d, NULL)) return;
    int n = snprintf(out, 80, "\"");
    for (int i = 0; i < 16; i++)
        n += snprintf(out + n, 80 - (size_t)n, "%02x", d[i]);
    snprintf(out + n, 80 - (size_t)n, "\"");
}

static bool is_store_name(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".h5") == 0 && !strstr(name, ".tmp-") && name[0] != '.';
}

/* Mark e failed with a message (through a va_list: the message may quote e's own fields). */
static void fail(entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(entry *e, const char *fmt, ...)
{
    char msg[sizeof e->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(e->error, msg, sizeof msg);
    e->state = DK_STORE_FAILED;
}

static void open_one(dk_stores *s, entry *e, const char *name)
{
    char path[sizeof e->served.path];
    if (snprintf(path, sizeof path, "%s/%s", s->dir, name) >= (int)sizeof path) {
        fail(e, "the path of '%s' is too long", name);
        return;
    }
    memcpy(e->served.path, path, sizeof path);
    snprintf(e->served.profile, sizeof e->served.profile, "%.*s", (int)strlen(name) - 3, name);
    dk_err err = {0};
    dk_h5_lock();
    e->served.store = dk_store_open(e->served.path, &err);
    dk_h5_unlock();
    if (!e->served.store) {
        fail(e, "%s", err.msg);
        return;
    }
    const char *profile = dk_store_manifest_of(e->served.store)->profile;
    e->state = DK_STORE_VERIFYING;
    if (!dk_name_is_safe(profile)) {
        fail(e, "'%s': profile name '%s' is not [A-Za-z0-9._-]{1,63}", e->served.path, profile);
        return;
    }
    snprintf(e->served.profile, sizeof e->served.profile, "%s", profile);
    for (int i = 0; i < s->count && &s->entries[i] != e; i++)
        if (strcmp(s->entries[i].served.profile, profile) == 0) {
            fail(e, "'%s' holds profile '%s' like '%s'", e->served.path, profile,
                 s->entries[i].served.path);
            return;
        }
    catalogue_etag(e->served.store, e->served.catalogue_etag);
}

dk_stores *dk_stores_open(const char *dir, dk_err *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        dk_err_set(err, DK_ENOTFOUND, "store directory '%s' cannot be read", dir);
        return NULL;
    }
    dk_stores *s = calloc(1, sizeof *s);
    if (!s) dk_err_set(err, DK_ENOMEM, "out of memory");
    if (s) snprintf(s->dir, sizeof s->dir, "%s", dir);
    for (int i = 0; i < n; i++) {
        char path[4400];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (s && is_store_name(names[i]->d_name) && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (s->count == MAX_STORES) {
                dk_err_set(err, DK_ELIMIT, "'%s' holds more than %d stores", dir, MAX_STORES);
                dk_stores_close(s);
                s = NULL;
            } else {
                open_one(s, &s->entries[s->count], names[i]->d_name);
                s->count++;
            }
        }
        free(names[i]);
    }
    free(names);
    return s;
}

static void *verify_all(void *arg)
{
    dk_stores *s = arg;
    for (int i = 0; i < s->count && !s->stopping; i++) {
        entry *e = &s->entries[i];
        if (e->state != DK_STORE_VERIFYING) continue;
        dk_err err = {0};
        int checked = 0;
        /* the whole verify holds the lock: HDF5 allows one caller at a time */
        dk_h5_lock();
        dk_status st = dk_store_verify(e->served.path, &checked, &err);
        dk_h5_unlock();
        if (st)
            fail(e, "%s", err.msg);
        else
            e->state = DK_STORE_READY;
    }
    return NULL;
}

dk_status dk_stores_add(dk_stores *s, const char *profile, dk_err *err)
{
    dk_store_state state;
    if (dk_stores_find(s, profile, &state)) return DK_OK;
    int n = s->count;
    if (n == MAX_STORES) return dk_err_set(err, DK_ELIMIT, "already %d stores", MAX_STORES);
    entry *e = &s->entries[n];
    memset(e, 0, sizeof *e);
    char name[80];
    snprintf(name, sizeof name, "%s.h5", profile);
    open_one(s, e, name);
    if (e->state == DK_STORE_VERIFYING) {
        int checked = 0;
        dk_err verr = {0};
        dk_h5_lock();
        dk_status st = dk_store_verify(e->served.path, &checked, &verr);
        dk_h5_unlock();
        if (st)
            fail(e, "%s", verr.msg);
        else
            e->state = DK_STORE_READY;
    }
    if (e->state != DK_STORE_READY) {
        dk_status st = dk_err_set(err, DK_EFORMAT, "%s", e->error);
        dk_h5_lock();
        dk_store_close(e->served.store);
        dk_h5_unlock();
        return st;
    }
    s->count = n + 1; /* publish */
    return DK_OK;
}

dk_status dk_stores_start_verify(dk_stores *s, dk_err *err)
{
    if (pthread_create(&s->verifier, NULL, verify_all, s) != 0)
        return dk_err_set(err, DK_EIO, "cannot start the store verifier thread");
    s->verifier_started = true;
    return DK_OK;
}

void dk_stores_close(dk_stores *s)
{
    if (!s) return;
    s->stopping = true;
    if (s->verifier_started) pthread_join(s->verifier, NULL);
    dk_h5_lock();
    for (int i = 0; i < s->count; i++)
        dk_store_close(s->entries[i].served.store);
    dk_h5_unlock();
    free(s);
}

const dk_served_store *dk_stores_find(dk_stores *s, const char *profile, dk_store_state *state)
{
    for (int i = 0; i < s->count; i++) {
        entry *e = &s->entries[i];
        if (strcmp(e->served.profile, profile) != 0) continue;
        dk_store_state st = e->state;
        if (state) *state = st;
        return st == DK_STORE_READY ? &e->served : NULL;
    }
    return NULL;
}

const dk_served_store *dk_stores_ready_at(dk_stores *s, int i)
{
    for (int k = 0; k < s->count; k++)
        if (s->entries[k].state == DK_STORE_READY && i-- == 0) return &s->entries[k].served;
    return NULL;
}

bool dk_stores_ready(dk_stores *s, char *reason, size_t cap)
{
    for (int i = 0; i < s->count; i++) {
        entry *e = &s->entries[i];
        dk_store_state st = e->state;
        if (st == DK_STORE_VERIFYING) {
            snprintf(reason, cap, "store '%s' is being verified", e->served.path);
            return false;
        }
        if (st == DK_STORE_FAILED) {
            snprintf(reason, cap, "store '%s' failed: %s", e->served.path, e->error);
            return false;
        }
    }
    return true;
}

void dk_stores_counts(dk_stores *s, int *ready, int *verifying, int *failed)
{
    *ready = *verifying = *failed = 0;
    for (int i = 0; i < s->count; i++) {
        dk_store_state st = s->entries[i].state;
        (*(st == DK_STORE_READY ? ready : st == DK_STORE_VERIFYING ? verifying : failed))++;
    }
}
