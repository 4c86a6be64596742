/* fed_round.h: the federation coordinator that the /v1/federation routes call:
 * create a federation, join it, fetch the global student, submit an update,
 * close rounds (on quorum, or when the caller's "now" passes the deadline, so a
 * site that never reports does not stall anyone), recover after a crash, and
 * report status and history as JSON. docs/federation.md has the state model and
 * the crash-safety argument.
 *
 * Files live under one directory per coordinator:
 *   <dir>/<federation>/global-NNNN.h5             the base of round NNNN (0000: the initial
 * student) <dir>/<federation>/round-NNNN/<site>.delta.h5 an accepted update of round NNNN each
 * written atomically and referenced from the store by path + SHA-256. A file without a committed
 * row is garbage from a crash: it is ignored and overwritten.
 *
 * Client mistakes are not errors: a refused request returns DK_OK with a verdict
 * (its kind picks the HTTP status, its reason is the problem+json detail); a
 * refused update is recorded with its reason. A non-OK status means the server
 * failed (I/O, store, memory) and the route answers 500.
 *
 * Coordinator calls read and write HDF5, which Debian builds without thread
 * safety: the server calls them under its process-wide HDF5 lock.
 *
 * One coordinator process per directory: calls are serialised by a mutex, and
 * the store's rules (fed_store.h) make a second process harmless to the state
 * but not to the delta files, which it could overwrite. */
#ifndef DK_FED_ROUND_H
#define DK_FED_ROUND_H

#include <jansson.h>
#include <stdint.h>

#include "httpapi/fed_store.h"
#include "httpapi/fedavg.h"

/* Bounds on what a creator may ask for. */
#define DK_FED_MAX_ROUNDS   10000
#define DK_FED_MAX_QUORUM   10000
#define DK_FED_MAX_DEADLINE (30LL * 24 * 3600)

typedef enum dk_fed_verdict_kind {
    DK_FED_ACCEPTED,    /* 200/201 */
    DK_FED_BAD_REQUEST, /* 400/422: malformed, wrong shapes, NaN, norm, bad numbers */
    DK_FED_FORBIDDEN,   /* 403: the site is not a member */
    DK_FED_NOT_FOUND,   /* 404: no such federation or round */
    DK_FED_CONFLICT,    /* 409: exists, duplicate, late or early round, federation finished */
} dk_fed_verdict_kind;

typedef struct dk_fed_verdict {
    dk_fed_verdict_kind kind;
    char reason[DK_FED_REASON_MAX]; /* "" when accepted */
    int round;                      /* submit: the round that was open (-1 if none) */
    bool round_closed;              /* submit: this update completed the quorum */
} dk_fed_verdict;

typedef struct dk_fed_coord dk_fed_coord;

/* A coordinator over store (borrowed; close it after the coordinator) keeping
 * its files under dir (created if missing). Re-aggregates every round a crash
 * left 'aggregating', closing it at now, and removes the temporary files a
 * crash left behind. Caller frees with dk_fed_coord_close. */
dk_status dk_fed_coord_open(const char *dir, dk_fed_store *store, int64_t now, dk_fed_coord **out,
                            dk_err *err);
void dk_fed_coord_close(dk_fed_coord *c);

typedef struct dk_fed_create_req {
    const char *name;
    int rounds, quorum;
    int64_t deadline_seconds;
    const char *initial_checkpoint; /* the student every site starts from (copied in) */
} dk_fed_create_req;

dk_status dk_fed_create(dk_fed_coord *c, const dk_fed_create_req *req, int64_t now,
                        dk_fed_verdict *v, dk_err *err);

/* Idempotent. */
dk_status dk_fed_join(dk_fed_coord *c, const char *fed, const char *site, int64_t now,
                      dk_fed_verdict *v, dk_err *err);

/* The checkpoint a member site should train from: the base of the open round,
 * or the final result once the federation finished. path has DK_FED_PATH_MAX
 * bytes, sha256 DK_FED_SHA_HEX; *round is that round (or the last when finished).
 * The route reports what it sent with dk_fed_note_download (DK_EINVAL if the
 * site is not a member). */
dk_status dk_fed_fetch_global(dk_fed_coord *c, const char *fed, const char *site, int64_t now,
                              char *path, char *sha256, int *round, dk_fed_verdict *v, dk_err *err);
dk_status dk_fed_note_download(dk_fed_coord *c, const char *fed, const char *site, int round,
                               int64_t bytes, dk_err *err);

typedef struct dk_fed_submission {
    const char *federation, *site;
    int round;        /* the round the site trained in */
    int64_t labelled; /* labelled volumes behind the update: its FedAvg weight */
    double val_dice;  /* the site's validation Dice, NAN when not reported */
    int64_t bytes;    /* size of the request body, for accounting */
    const dk_fed_wire_tensor *tensors;
    int count;
} dk_fed_submission;

/* Judge an update and, when accepted, store its delta durably before recording
 * it; a round reaching its quorum is aggregated and closed before returning. */
dk_status dk_fed_submit(dk_fed_coord *c, const dk_fed_submission *s, int64_t now, dk_fed_verdict *v,
                        dk_err *err);

/* Close the open round of fed if now has passed its deadline (with whatever
 * arrived; with nothing, the global carries over unchanged) or its quorum is
 * in, and retry a close that failed. Routes call it on every federation
 * request; a server may also call it on a timer. */
dk_status dk_fed_tick(dk_fed_coord *c, const char *fed, int64_t now, dk_err *err);

/* Status and history of fed (after a tick at now): settings, members, and per
 * round its state, times, checkpoint hashes, who reported (labelled count, norm,
 * validation Dice), who was refused and why, who is missing, bytes up and down
 * per site. Caller frees *out with json_decref. */
dk_status dk_fed_status_json(dk_fed_coord *c, const char *fed, int64_t now, json_t **out,
                             dk_fed_verdict *v, dk_err *err);

#endif
