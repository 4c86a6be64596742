/* ratelimit.c: token buckets keyed by caller id in a small fixed table. */
#include "httpapi/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1024

typedef struct bucket {
    char id[16];
    double tokens, updated;
} bucket;

struct dk_ratelimit {
    double rate, burst;
    pthread_mutex_t lock;
    bucket slots[SLOTS];
};

dk_ratelimit *dk_ratelimit_new(double rate, double burst)
{
    dk_ratelimit *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->rate = rate;
    r->burst = burst < 1 ? 1 : burst;
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void dk_ratelimit_free(dk_ratelimit *r)
{
    if (!r) return;
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The caller's bucket, or the least recently used one recycled for it. */
static bucket *find(dk_ratelimit *r, const char *id, double now)
{
    bucket *oldest = &r->slots[0];
    for (int i = 0; i < SLOTS; i++) {
        bucket *b = &r->slots[i];
        if (strcmp(b->id, id) == 0) return b;
        if (!b->id[0] || b->updated < oldest->updated) oldest = b;
        if (!b->id[0]) break;
    }
    snprintf(oldest->id, sizeof oldest->id, "%s", id);
    oldest->tokens = r->burst, oldest->updated = now;
    return oldest;
}

bool dk_ratelimit_take(dk_ratelimit *r, const char *id, double now, double *retry_after)
{
    if (r->rate <= 0) return true;
    pthread_mutex_lock(&r->lock);
    bucket *b = find(r, id, now);
    b->tokens += (now - b->updated) * r->rate;
    if (b->tokens > r->burst) b->tokens = r->burst;
    b->updated = now;
    bool ok = b->tokens >= 1;
    if (ok)
        b->tokens -= 1;
    else
        *retry_after = (1 - b->tokens) / r->rate;
    pthread_mutex_unlock(&r->lock);
    return ok;
}
