/* stores.h: the target stores a server serves: every finished <name>.h5 in
 * the store directory, opened at start and verified (every checksum) in a
 * background thread; a store is served only once verified. Also the one
 * process-wide HDF5 lock: every HDF5 call in the server happens under it. */
#ifndef DK_HTTPAPI_STORES_H
#define DK_HTTPAPI_STORES_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/err.h"
#include "teacher/store.h"

/* Serialise HDF5: Debian's libhdf5 is built without its thread-safety option. */
void dk_h5_lock(void);
void dk_h5_unlock(void);

typedef enum dk_store_state { DK_STORE_VERIFYING, DK_STORE_READY, DK_STORE_FAILED } dk_store_state;

typedef struct dk_served_store {
    char profile[64];
    char path[4096];
    dk_store *store;         /* open for reads (under dk_h5_lock) */
    char catalogue_etag[80]; /* over the manifest and every array checksum */
} dk_served_store;

typedef struct dk_stores dk_stores;

/* Open every store in dir (sub-directories, *.partial and temporaries are
 * skipped). DK_ENOTFOUND when dir does not exist; a store that fails to open
 * makes the set not ready with its reason (it is not served). Caller frees
 * with dk_stores_close. */
dk_stores *dk_stores_open(const char *dir, dk_err *err);
/* Open and verify the finished store DIR/<profile>.h5 (made by a job) and
 * serve it. DK_OK also when it is served already. Call from one thread at a
 * time; readers may run meanwhile. */
dk_status dk_stores_add(dk_stores *s, const char *profile, dk_err *err);
/* Verify every store in a background thread (stops early on dk_stores_close). */
dk_status dk_stores_start_verify(dk_stores *s, dk_err *err);
void dk_stores_close(dk_stores *s);

/* The ready store of this profile, or NULL (and its state, when it exists,
 * in *state). Borrowed, valid until close. */
const dk_served_store *dk_stores_find(dk_stores *s, const char *profile, dk_store_state *state);
/* Ready stores, in name order: i from 0 while this returns non-NULL. */
const dk_served_store *dk_stores_ready_at(dk_stores *s, int i);
/* True when every store is verified; otherwise the reason into reason. */
bool dk_stores_ready(dk_stores *s, char *reason, size_t cap);
/* Counts for the metrics. */
void dk_stores_counts(dk_stores *s, int *ready, int *verifying, int *failed);

#endif
