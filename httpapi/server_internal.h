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
#include "httpapi/request.h"
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
    unsigned long max_upload; /* for the upload routes (dk_route_takes_upload) */
    bool can_precompute;      /* started with data_path: POST /v1/profiles works */
    dk_fed_service *fed;      /* NULL without --federation */
    unsigned long fed_max_update;
    atomic_int in_flight; /* requests begun and not yet completed */
};

/* The model card of the checkpoint at path (its teacher card, checksum and
 * version), as JSON text without the per-profile part. Caller frees with
 * free(). Call under dk_h5_lock. (routes_teacher.c) */
char *dk_teacher_card_load(const char *path, const char *version, dk_err *err);

/* The ready store named by the query parameter 'profile' that the caller's
 * token is granted, or NULL after answering 400, 403, 404 or 503 (*answered).
 * Borrowed, valid until the server stops. (routes_targets.c) */
const dk_served_store *dk_profile_store(dk_request *req, enum MHD_Result *answered);

/* The arrays of a done distill job ({kind, dtype, shape, sha256, location}),
 * read from its store under dk_h5_lock. New reference. (routes_distill.c) */
json_t *dk_distill_arrays_json(dk_server *s, const dk_job_info *job);

#endif
