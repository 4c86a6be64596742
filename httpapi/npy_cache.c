/* npy_cache.c: a small LRU of shared, reference-counted .npy bodies (npy_cache.h). */
#include "httpapi/npy_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 32

struct dk_npy_body {
    atomic_int refs;
    char key[DK_NPY_CACHE_KEY];
    char *data;
    size_t len;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    dk_npy_body *body;
    uint64_t used; /* tick of the last hit */
} slots[SLOTS];
static size_t cached_bytes;
static uint64_t tick;

void dk_npy_body_release(void *p)
{
    dk_npy_body *b = p;
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
        free(b->data);
        free(b);
    }
}

dk_npy_body *dk_npy_cache_get(const char *key, const char **data, size_t *len)
{
    dk_npy_body *found = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS && !found; i++)
        if (slots[i].body && strcmp(slots[i].body->key, key) == 0) {
            found = slots[i].body;
            atomic_fetch_add(&found->refs, 1);
            slots[i].used = ++tick;
        }
    pthread_mutex_unlock(&lock);
    if (found) *data = found->data, *len = found->len;
    return found;
}

/* Evict least recently used bodies until `need` more bytes fit and a slot is
 * free; returns that slot. Called with the lock held. */
static int make_room(size_t need)
{
    for (;;) {
        int free_slot = -1, oldest = -1;
        for (int i = 0; i < SLOTS; i++) {
            if (!slots[i].body) {
                free_slot = i;
                continue;
            }
            if (oldest < 0 || slots[i].used < slots[oldest].used) oldest = i;
        }
        if (free_slot >= 0 && cached_bytes + need <= DK_NPY_CACHE_BYTES) return free_slot;
        cached_bytes -= slots[oldest].body->len;
        dk_npy_body_release(slots[oldest].body);
        slots[oldest].body = NULL;
    }
}

dk_npy_body *dk_npy_cache_put(const char *key, char *data, size_t len)
{
    dk_npy_body *b = calloc(1, sizeof *b);
    if (!b) {
        free(data);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    strncpy(b->key, key, sizeof b->key - 1);
    b->data = data, b->len = len;
    if (len > DK_NPY_CACHE_BYTES / 4) return b;
    pthread_mutex_lock(&lock);
    bool present = false; /* two first requests raced: keep the one already cached */
    for (int i = 0; i < SLOTS && !present; i++)
        present = slots[i].body && strcmp(slots[i].body->key, key) == 0;
    if (!present) {
        int slot = make_room(len);
        atomic_fetch_add(&b->refs, 1);
        slots[slot].body = b, slots[slot].used = ++tick;
        cached_bytes += len;
    }
    pthread_mutex_unlock(&lock);
    return b;
}
