/* fed_round_internal.h: what fed_round.c, fed_aggregate.c and fed_status.c
 * share; not for other modules (they use fed_round.h). */
#ifndef DK_FED_ROUND_INTERNAL_H
#define DK_FED_ROUND_INTERNAL_H

#include <pthread.h>

#include "httpapi/fed_round.h"

/* Test builds define this to stop the process at named points (tests/test_fed_round.c
 * compiles the coordinator's sources itself); the library compiles it away. */
#ifndef DK_FED_CRASH_POINT
#define DK_FED_CRASH_POINT(name) ((void)0)
#endif

struct dk_fed_coord {
    dk_fed_store *store; /* borrowed */
    char dir[DK_FED_PATH_MAX];
    pthread_mutex_t lock;
    /* the last base model loaded, so a round's submissions do not reload it */
    char cached_sha256[DK_FED_SHA_HEX];
    dk_fed_model cached;
};

/* "<dir>/<fed>/global-NNNN.h5" and "<dir>/<fed>/round-NNNN" into buf (DK_FED_PATH_MAX). */
dk_status dk_fed_global_path(const dk_fed_coord *c, const char *fed, int round, char *buf,
                             dk_err *err);
dk_status dk_fed_round_dir(const dk_fed_coord *c, const char *fed, int round, char *buf,
                           dk_err *err);
/* mkdir (an existing one is fine) and fsync its parent so the entry is durable. */
dk_status dk_fed_mkdir_durable(const char *path, dk_err *err);

/* The model at path, checked against sha256 (DK_EFORMAT if the file changed);
 * borrowed from the coordinator's cache, valid until the next call. */
dk_status dk_fed_load_base(dk_fed_coord *c, const char *path, const char *sha256,
                           const dk_fed_model **model, dk_err *err);

/* Aggregate round `round` of fed (which is open or aggregating) and close it
 * at now: freeze it, average its accepted deltas into the next global, write
 * that durably, then commit the close. Idempotent; the recovery path. */
dk_status dk_fed_close_round(dk_fed_coord *c, const char *fed, int round, int64_t now, dk_err *err);

/* Remove the temporary files a crash left, then re-aggregate every round a
 * crash left 'aggregating'; lock held by the caller. */
dk_status dk_fed_recover_locked(dk_fed_coord *c, int64_t now, dk_err *err);

/* Close the open round when its deadline has passed; lock held by the caller. */
dk_status dk_fed_tick_locked(dk_fed_coord *c, const char *fed, int64_t now, dk_err *err);

#endif
