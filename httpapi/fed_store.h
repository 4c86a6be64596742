/* fed_store.h: the federation coordinator's durable state, behind one small
 * interface so that a PostgreSQL implementation can replace the embedded SQLite
 * one (fed_store_sqlite.c) when several coordinators share a federation.
 *
 * What is kept (docs/federation.md, "State model"):
 *   federations  name, rounds, quorum, deadline, student architecture JSON, state
 *   rounds       per federation and index: open -> aggregating -> closed, opened_at,
 *                closed_at, the base checkpoint the round's deltas apply to and,
 *                once closed, the resulting checkpoint (path + SHA-256 of each)
 *   memberships  which sites joined which federation
 *   updates      every submitted update, accepted or refused (with the reason);
 *                an accepted one references its stored delta file by path + SHA-256
 *   accounting   bytes up and down per site per round
 *
 * The interface is a table of operations (dk_fed_store_ops); an implementation
 * embeds a dk_fed_store as its first member. Each operation is one transaction:
 * when it returns DK_OK the change is durable (SQLite: WAL with synchronous=FULL),
 * and when it fails nothing of it happened. Operations are semantic (close a
 * round, record an update), not SQL, so every backend enforces the same rules:
 * at most one accepted update per (federation, round, site); updates are accepted
 * only into an open round; a round closes only from 'aggregating'.
 *
 * Time is always the caller's ("now", seconds since the epoch): the store reads
 * no clock, so tests drive deadlines. Names are validated by the caller
 * (dk_fed_name_valid); the store binds them as parameters, never into SQL text.
 * A store handle may be used from several threads (calls are serialised). */
#ifndef DK_FED_STORE_H
#define DK_FED_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/err.h"

#define DK_FED_NAME_MAX   64  /* federation and site names: 1..64 of [A-Za-z0-9._-] */
#define DK_FED_PATH_MAX   512 /* checkpoint and delta paths */
#define DK_FED_SHA_HEX    65  /* SHA-256 as 64 lowercase hex digits + NUL */
#define DK_FED_REASON_MAX 320 /* a refusal reason (problem+json detail) */

/* The newest schema this build knows; opening a newer store is refused. */
#define DK_FED_SCHEMA_VERSION 1

typedef enum dk_fed_state { DK_FED_ACTIVE, DK_FED_FINISHED } dk_fed_state;
typedef enum dk_fed_round_state {
    DK_ROUND_OPEN,        /* accepting updates */
    DK_ROUND_AGGREGATING, /* the accepted set is frozen; the next global is being made */
    DK_ROUND_CLOSED,      /* result_* hold the durable next global checkpoint */
} dk_fed_round_state;

typedef struct dk_fed_info {
    char name[DK_FED_NAME_MAX + 1];
    int rounds;               /* how many rounds the federation runs, >= 1 */
    int quorum;               /* accepted updates that close a round early, >= 1 */
    int64_t deadline_seconds; /* a round closes this long after it opened, >= 1 */
    char *architecture_json;  /* the student's; owned, freed by dk_fed_info_release */
    dk_fed_state state;
    int64_t created_at;
} dk_fed_info;

void dk_fed_info_release(dk_fed_info *info);

typedef struct dk_fed_round_row {
    int index; /* 0, 1, ... rounds-1 */
    dk_fed_round_state state;
    int64_t opened_at;
    int64_t closed_at; /* -1 until closed */
    char base_path[DK_FED_PATH_MAX];
    char base_sha256[DK_FED_SHA_HEX];
    char result_path[DK_FED_PATH_MAX]; /* "" until closed */
    char result_sha256[DK_FED_SHA_HEX];
} dk_fed_round_row;

typedef struct dk_fed_update_row {
    int64_t id; /* assigned by the store */
    int round;
    char site[DK_FED_NAME_MAX + 1];
    int64_t labelled; /* labelled volumes behind the update: the FedAvg weight */
    int64_t bytes;    /* size of the upload as received */
    double norm;      /* L2 norm of the delta; NAN when it could not be computed */
    double val_dice;  /* the site's validation Dice, NAN when not reported */
    bool accepted;
    char reason[DK_FED_REASON_MAX];   /* why it was refused; "" when accepted */
    char delta_path[DK_FED_PATH_MAX]; /* the stored delta; "" when refused */
    char delta_sha256[DK_FED_SHA_HEX];
    int64_t received_at;
} dk_fed_update_row;

typedef struct dk_fed_traffic_row {
    int round;
    char site[DK_FED_NAME_MAX + 1];
    int64_t bytes_up, bytes_down;
} dk_fed_traffic_row;

typedef struct dk_fed_round_ref {
    char federation[DK_FED_NAME_MAX + 1];
    int round;
} dk_fed_round_ref;

/* Why record_update / begin_aggregation / close_round did not change anything
 * although the store works: the caller turns these into refusals. */
typedef enum dk_fed_conflict {
    DK_FED_NO_CONFLICT,
    DK_FED_CONFLICT_EXISTS,   /* create: the name is taken; record: site already has an accepted
                                 update */
    DK_FED_CONFLICT_NOT_OPEN, /* record (accepted): the round is not open (late or early) */
    DK_FED_CONFLICT_STATE,    /* begin/close: the round is not in the state required */
} dk_fed_conflict;

typedef struct dk_fed_store dk_fed_store;

/* Lists returned through `T **rows, int *count` are one malloc'ed array the
 * caller frees with free() (NULL when count is 0). DK_ENOTFOUND (naming it) when
 * the federation or round does not exist. */
typedef struct dk_fed_store_ops {
    /* Insert the federation (state active) and its round 0, open at now, whose
     * base is the initial global checkpoint. */
    dk_status (*create_federation)(dk_fed_store *s, const dk_fed_info *info, const char *base_path,
                                   const char *base_sha256, int64_t now, dk_fed_conflict *conflict,
                                   dk_err *err);
    dk_status (*get_federation)(dk_fed_store *s, const char *name, dk_fed_info *out, dk_err *err);
    /* Idempotent: joining twice is one membership. */
    dk_status (*join)(dk_fed_store *s, const char *fed, const char *site, int64_t now, dk_err *err);
    dk_status (*is_member)(dk_fed_store *s, const char *fed, const char *site, bool *member,
                           dk_err *err);
    /* Sites in join order; each entry is DK_FED_NAME_MAX + 1 bytes. */
    dk_status (*list_members)(dk_fed_store *s, const char *fed, char (**sites)[DK_FED_NAME_MAX + 1],
                              int *count, dk_err *err);
    dk_status (*get_round)(dk_fed_store *s, const char *fed, int index, dk_fed_round_row *out,
                           dk_err *err);
    /* The highest-numbered round (the open one while the federation is active). */
    dk_status (*current_round)(dk_fed_store *s, const char *fed, dk_fed_round_row *out,
                               dk_err *err);
    dk_status (*list_rounds)(dk_fed_store *s, const char *fed, dk_fed_round_row **rows, int *count,
                             dk_err *err);
    /* Insert the update (row->id is ignored) and add row->bytes to the site's
     * bytes up for that round. An accepted row needs the round open and no
     * accepted row of the same site in it, else *conflict and nothing is written.
     * Refused rows are recorded whatever the round's state. */
    dk_status (*record_update)(dk_fed_store *s, const char *fed, const dk_fed_update_row *row,
                               dk_fed_conflict *conflict, dk_err *err);
    /* Updates of one round in the order they were received; accepted_only filters. */
    dk_status (*list_updates)(dk_fed_store *s, const char *fed, int round, bool accepted_only,
                              dk_fed_update_row **rows, int *count, dk_err *err);
    /* open -> aggregating (no conflict when already aggregating: recovery). */
    dk_status (*begin_aggregation)(dk_fed_store *s, const char *fed, int round, int64_t now,
                                   dk_fed_conflict *conflict, dk_err *err);
    /* aggregating -> closed with the durable result checkpoint; in the same
     * transaction round+1 opens at now with that checkpoint as its base, or,
     * after the last round, the federation becomes finished. */
    dk_status (*close_round)(dk_fed_store *s, const char *fed, int round, const char *result_path,
                             const char *result_sha256, int64_t now, dk_fed_conflict *conflict,
                             dk_err *err);
    /* Every round left 'aggregating' (by a crash), over all federations. */
    dk_status (*list_aggregating)(dk_fed_store *s, dk_fed_round_ref **refs, int *count,
                                  dk_err *err);
    /* Add bytes to the site's bytes down for that round. */
    dk_status (*add_download)(dk_fed_store *s, const char *fed, int round, const char *site,
                              int64_t bytes, dk_err *err);
    dk_status (*list_traffic)(dk_fed_store *s, const char *fed, dk_fed_traffic_row **rows,
                              int *count, dk_err *err);
    void (*close)(dk_fed_store *s);
} dk_fed_store_ops;

struct dk_fed_store {
    const dk_fed_store_ops *ops;
};

/* Open (creating if missing) the SQLite store at path: WAL, synchronous=FULL,
 * foreign keys on; the schema is migrated to DK_FED_SCHEMA_VERSION, and a store
 * written by a newer dualkd (higher version) is refused with DK_EFORMAT naming
 * both versions. Caller frees with dk_fed_store_close. */
dk_status dk_fed_store_open_sqlite(const char *path, dk_fed_store **out, dk_err *err);

/* Release the handle (NULL is fine). */
static inline void dk_fed_store_close(dk_fed_store *s)
{
    if (s) s->ops->close(s);
}

/* True when name is 1..DK_FED_NAME_MAX characters of [A-Za-z0-9._-], not "." or "..":
 * safe as a file name component and in messages. */
bool dk_fed_name_valid(const char *name);

const char *dk_fed_round_state_name(dk_fed_round_state state);

#endif
