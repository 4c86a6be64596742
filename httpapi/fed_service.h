/* fed_service.h: the federation coordinator as `dualkd serve` runs it: the
 * SQLite store (<dir>/federation.db) and the coordinator over <dir>, opened
 * under the process-wide HDF5 lock (opening re-aggregates what a crash left),
 * a lock file that keeps a second process off the directory, and a ticker
 * thread that closes rounds whose deadline passed although no request came.
 *
 * Every coordinator call in the server (routes_federation.c, the ticker) takes
 * dk_h5_lock first, then the coordinator's own mutex: one order, no deadlock. */
#ifndef DK_HTTPAPI_FED_SERVICE_H
#define DK_HTTPAPI_FED_SERVICE_H

#include <stdint.h>

#include "httpapi/fed_round.h"

typedef struct dk_fed_service_config {
    const char *dir;             /* the coordinator's directory (created if missing) */
    const char *initial_student; /* checkpoint POST /v1/federation starts from; NULL: 503 */
    double tick_seconds;         /* how often the ticker looks at deadlines [1] */
} dk_fed_service_config;

typedef struct dk_fed_service dk_fed_service;

/* Open the store and the coordinator (DK_EIO naming the lock file when
 * another process holds the directory) and start the ticker. Caller frees
 * with dk_fed_service_close. NULL on failure. */
dk_fed_service *dk_fed_service_open(const dk_fed_service_config *c, dk_err *err);
void dk_fed_service_close(dk_fed_service *s);

/* Borrowed, valid until close. Call the coordinator under dk_h5_lock. */
dk_fed_coord *dk_fed_service_coord(dk_fed_service *s);
/* The coordinator's directory (borrowed). */
const char *dk_fed_service_dir(const dk_fed_service *s);
/* The configured initial student, or NULL. */
const char *dk_fed_service_initial(const dk_fed_service *s);

/* Tick every federation in the directory at now (what the ticker does). */
dk_status dk_fed_service_tick_all(dk_fed_service *s, int64_t now, dk_err *err);

/* Seconds since the epoch: the "now" the server gives the coordinator. */
int64_t dk_fed_now(void);

#endif
