/* server_internal.h: the server's state, shared by server.c and the route
 * handlers. Everything here is either immutable after start or guarded by
 * its own lock (stores: dk_h5_lock; auth, metrics: internal mutexes). */
#ifndef DK_HTTPAPI_SERVER_INTERNAL_H
#define DK_HTTPAPI_SERVER_INTERNAL_H

#include <stdatomic.h>

#include "httpapi/auth.h"
#include "httpapi/fed_service.h"
#include "httpapi/jobs.h"
#include "httpapi/metrics.h"
#include "httpapi/ratelimit.h"
#include "httpapi/server.h"
#include "httpapi/stores.h"

struct dk_server {
    struct MHD_Daemon *daemon;
    int port;
    char version[64];
    char *teacher_card; /* JSON text of the model card without per-profile parts (owned) */
    dk_auth *auth;
    dk_stores *stores;
    dk_jobs *jobs; /* NULL when the server was started without data_path/binary */
    dk_metrics *metrics;
    dk_ratelimit *ratelimit; /* per token on /v1 */
    unsigned long max_body;
    dk_fed_service *fed; /* NULL without --federation */
    unsigned long fed_max_update;
    atomic_int in_flight; /* requests begun and not yet completed */
};

/* The model card of the checkpoint at path (its teacher card, checksum and
 * version), as JSON text without the per-profile part. Caller frees with
 * free(). Call under dk_h5_lock. (routes_teacher.c) */
char *dk_teacher_card_load(const char *path, const char *version, dk_err *err);

#endif
