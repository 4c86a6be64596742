/* fed_store_sqlite.c: the SQLite implementation of fed_store.h, the embedded
 * default. One connection per handle, serialised by a mutex because an
 * operation is several statements inside one transaction.
 *
 * Durability: WAL with synchronous=FULL, so a transaction that returned is in
 * the fsynced WAL; NORMAL would be safe against a process crash but could lose
 * the last acknowledged updates on power loss, which is what we promise not to do.
 * Writers take BEGIN IMMEDIATE so a second coordinator process on the same file
 * waits (busy timeout) instead of failing in the middle of a transaction. */
#include "httpapi/fed_store.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sq_store {
    dk_fed_store base; /* first: a dk_fed_store * is a sq_store * */
    sqlite3 *db;
    pthread_mutex_t lock;
    char path[DK_FED_PATH_MAX];
} sq_store;

/* Migration i takes the schema from version i to i + 1. Never edit a released one. */
static const char *const migrations[DK_FED_SCHEMA_VERSION] = {
    "CREATE TABLE federations ("
    " name TEXT PRIMARY KEY,"
    " rounds INTEGER NOT NULL CHECK (rounds >= 1),"
    " quorum INTEGER NOT NULL CHECK (quorum >= 1),"
    " deadline_seconds INTEGER NOT NULL CHECK (deadline_seconds >= 1),"
    " architecture TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('active', 'finished')),"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE rounds ("
    " federation TEXT NOT NULL REFERENCES federations(name),"
    " idx INTEGER NOT NULL CHECK (idx >= 0),"
    " state TEXT NOT NULL CHECK (state IN ('open', 'aggregating', 'closed')),"
    " opened_at INTEGER NOT NULL, closed_at INTEGER,"
    " base_path TEXT NOT NULL, base_sha256 TEXT NOT NULL,"
    " result_path TEXT, result_sha256 TEXT,"
    " PRIMARY KEY (federation, idx));"
    "CREATE TABLE memberships ("
    " federation TEXT NOT NULL REFERENCES federations(name),"
    " site TEXT NOT NULL, joined_at INTEGER NOT NULL,"
    " PRIMARY KEY (federation, site));"
    "CREATE TABLE updates ("
    " id INTEGER PRIMARY KEY,"
    " federation TEXT NOT NULL, round INTEGER NOT NULL, site TEXT NOT NULL,"
    " labelled INTEGER NOT NULL, bytes INTEGER NOT NULL, norm REAL, val_dice REAL,"
    " accepted INTEGER NOT NULL CHECK (accepted IN (0, 1)), reason TEXT NOT NULL,"
    " delta_path TEXT, delta_sha256 TEXT, received_at INTEGER NOT NULL,"
    " FOREIGN KEY (federation, site) REFERENCES memberships(federation, site));"
    /* the rule "no update counted twice", enforced by the database itself */
    "CREATE UNIQUE INDEX updates_one_accepted ON updates(federation, round, site)"
    " WHERE accepted = 1;"
    "CREATE TABLE accounting ("
    " federation TEXT NOT NULL, round INTEGER NOT NULL, site TEXT NOT NULL,"
    " bytes_up INTEGER NOT NULL DEFAULT 0, bytes_down INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (federation, round, site),"
    " FOREIGN KEY (federation, site) REFERENCES memberships(federation, site));",
};

static const char *const round_states[] = {"open", "aggregating", "closed"};

/* ---- statement helpers ------------------------------------------------------------ */

static dk_status sql_fail(sq_store *s, dk_err *err, const char *what)
{
    int rc = sqlite3_errcode(s->db);
    dk_status code = rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? DK_EFORMAT : DK_EIO;
    return dk_err_set(err, code, "federation store '%s': %s: %s", s->path, what,
                      sqlite3_errmsg(s->db));
}

static dk_status exec(sq_store *s, const char *sql, dk_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return DK_OK;
    dk_status st = dk_err_set(err, DK_EIO, "federation store '%s': %.40s...: %s", s->path, sql,
                              msg ? msg : "failed");
    sqlite3_free(msg);
    return st;
}

/* Prepare sql and bind the arguments described by types: 't' text (NULL binds
 * NULL), 'i' int64, 'd' double (NaN binds NULL). */
static dk_status prepare(sq_store *s, sqlite3_stmt **stmt, dk_err *err, const char *sql,
                         const char *types, ...)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL) != SQLITE_OK) return sql_fail(s, err, sql);
    va_list ap;
    va_start(ap, types);
    int rc = SQLITE_OK;
    for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
        if (types[i] == 't') {
            const char *text = va_arg(ap, const char *);
            rc = text ? sqlite3_bind_text(*stmt, i + 1, text, -1, SQLITE_TRANSIENT)
                      : sqlite3_bind_null(*stmt, i + 1);
        } else if (types[i] == 'i') {
            rc = sqlite3_bind_int64(*stmt, i + 1, va_arg(ap, int64_t));
        } else {
            double v = va_arg(ap, double);
            rc = isnan(v) ? sqlite3_bind_null(*stmt, i + 1) : sqlite3_bind_double(*stmt, i + 1, v);
        }
    }
    va_end(ap);
    if (rc == SQLITE_OK) return DK_OK;
    dk_status st = sql_fail(s, err, "binding a parameter");
    sqlite3_finalize(*stmt);
    *stmt = NULL;
    return st;
}

/* Step a statement that returns no rows, then finalize it. */
static dk_status run(sq_store *s, sqlite3_stmt *stmt, dk_err *err, const char *what)
{
    int rc = sqlite3_step(stmt);
    dk_status st = rc == SQLITE_DONE ? DK_OK : sql_fail(s, err, what);
    sqlite3_finalize(stmt);
    return st;
}

static void col_text(sqlite3_stmt *stmt, int col, char *buf, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(stmt, col);
    snprintf(buf, cap, "%s", text ? (const char *)text : "");
}

static double col_real(sqlite3_stmt *stmt, int col)
{
    return sqlite3_column_type(stmt, col) == SQLITE_NULL ? NAN : sqlite3_column_double(stmt, col);
}

static int round_state_parse(const char *text)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(text, round_states[i]) == 0) return i;
    return -1;
}

/* Grow *rows (elem bytes each) to hold *count + 1. */
static dk_status grow(void **rows, int *capacity, int count, size_t elem, dk_err *err)
{
    if (count < *capacity) return DK_OK;
    int cap = *capacity ? *capacity * 2 : 8;
    void *more = realloc(*rows, (size_t)cap * elem);
    if (!more)
        return dk_err_set(err, DK_ENOMEM, "federation store: out of memory for %d rows", cap);
    *rows = more;
    *capacity = cap;
    return DK_OK;
}

/* ---- transactions -------------------------------------------------------------------- */

static sq_store *lock(dk_fed_store *base)
{
    sq_store *s = (sq_store *)base;
    pthread_mutex_lock(&s->lock);
    return s;
}

static dk_status begin(sq_store *s, dk_err *err)
{
    return exec(s, "BEGIN IMMEDIATE", err);
}

/* Commit when st is DK_OK, else roll back; unlock; return the status. */
static dk_status finish(sq_store *s, dk_status st, dk_err *err)
{
    if (st == DK_OK) st = exec(s, "COMMIT", err);
    if (st != DK_OK && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", 0, 0, 0);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- federations ------------------------------------------------------------------------ */

static dk_status federation_exists(sq_store *s, const char *fed, bool *exists, dk_err *err)
{
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err, "SELECT 1 FROM federations WHERE name = ?", "t", fed);
    if (st) return st;
    int rc = sqlite3_step(stmt);
    *exists = rc == SQLITE_ROW;
    st = rc == SQLITE_ROW || rc == SQLITE_DONE ? DK_OK : sql_fail(s, err, "reading federations");
    sqlite3_finalize(stmt);
    return st;
}

static dk_status need_federation(sq_store *s, const char *fed, dk_err *err)
{
    bool exists = false;
    dk_status st = federation_exists(s, fed, &exists, err);
    if (st == DK_OK && !exists)
        st = dk_err_set(err, DK_ENOTFOUND, "federation '%s' does not exist", fed);
    return st;
}

static dk_status sq_create_federation(dk_fed_store *base, const dk_fed_info *f,
                                      const char *base_path, const char *base_sha256, int64_t now,
                                      dk_fed_conflict *conflict, dk_err *err)
{
    sq_store *s = lock(base);
    *conflict = DK_FED_NO_CONFLICT;
    bool exists = false;
    sqlite3_stmt *stmt;
    dk_status st = begin(s, err);
    if (st == DK_OK) st = federation_exists(s, f->name, &exists, err);
    if (st == DK_OK && exists) *conflict = DK_FED_CONFLICT_EXISTS;
    if (st == DK_OK && !exists &&
        (st = prepare(s, &stmt, err, "INSERT INTO federations VALUES (?, ?, ?, ?, ?, 'active', ?)",
                      "tiiiti", f->name, (int64_t)f->rounds, (int64_t)f->quorum,
                      f->deadline_seconds, f->architecture_json, now)) == DK_OK)
        st = run(s, stmt, err, "inserting the federation");
    if (st == DK_OK && !exists &&
        (st = prepare(s, &stmt, err,
                      "INSERT INTO rounds (federation, idx, state, opened_at, base_path,"
                      " base_sha256) VALUES (?, 0, 'open', ?, ?, ?)",
                      "titt", f->name, now, base_path, base_sha256)) == DK_OK)
        st = run(s, stmt, err, "inserting round 0");
    return finish(s, st, err);
}

static dk_status sq_get_federation(dk_fed_store *base, const char *fed, dk_fed_info *out,
                                   dk_err *err)
{
    sq_store *s = lock(base);
    *out = (dk_fed_info){0};
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "SELECT name, rounds, quorum, deadline_seconds, architecture, state,"
                           " created_at FROM federations WHERE name = ?",
                           "t", fed);
    if (st == DK_OK) {
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            col_text(stmt, 0, out->name, sizeof out->name);
            out->rounds = sqlite3_column_int(stmt, 1);
            out->quorum = sqlite3_column_int(stmt, 2);
            out->deadline_seconds = sqlite3_column_int64(stmt, 3);
            const unsigned char *arch = sqlite3_column_text(stmt, 4);
            out->architecture_json = strdup(arch ? (const char *)arch : "null");
            if (!out->architecture_json) st = dk_err_set(err, DK_ENOMEM, "out of memory");
            out->state = strcmp((const char *)sqlite3_column_text(stmt, 5), "finished") == 0
                             ? DK_FED_FINISHED
                             : DK_FED_ACTIVE;
            out->created_at = sqlite3_column_int64(stmt, 6);
        } else if (rc == SQLITE_DONE) {
            st = dk_err_set(err, DK_ENOTFOUND, "federation '%s' does not exist", fed);
        } else {
            st = sql_fail(s, err, "reading the federation");
        }
        sqlite3_finalize(stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- memberships ------------------------------------------------------------------------ */

static dk_status sq_join(dk_fed_store *base, const char *fed, const char *site, int64_t now,
                         dk_err *err)
{
    sq_store *s = lock(base);
    sqlite3_stmt *stmt;
    dk_status st = begin(s, err);
    if (st == DK_OK) st = need_federation(s, fed, err);
    if (st == DK_OK &&
        (st = prepare(s, &stmt, err,
                      "INSERT INTO memberships VALUES (?, ?, ?) ON CONFLICT DO NOTHING", "tti", fed,
                      site, now)) == DK_OK)
        st = run(s, stmt, err, "inserting the membership");
    return finish(s, st, err);
}

static dk_status sq_is_member(dk_fed_store *base, const char *fed, const char *site, bool *member,
                              dk_err *err)
{
    sq_store *s = lock(base);
    *member = false;
    sqlite3_stmt *stmt;
    dk_status st =
        prepare(s, &stmt, err, "SELECT 1 FROM memberships WHERE federation = ? AND site = ?", "tt",
                fed, site);
    if (st == DK_OK) {
        int rc = sqlite3_step(stmt);
        *member = rc == SQLITE_ROW;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = sql_fail(s, err, "reading memberships");
        sqlite3_finalize(stmt);
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

static dk_status sq_list_members(dk_fed_store *base, const char *fed,
                                 char (**sites)[DK_FED_NAME_MAX + 1], int *count, dk_err *err)
{
    sq_store *s = lock(base);
    *sites = NULL;
    *count = 0;
    int capacity = 0;
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "SELECT site FROM memberships WHERE federation = ?"
                           " ORDER BY joined_at, rowid",
                           "t", fed);
    int rc = SQLITE_DONE;
    while (st == DK_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        st = grow((void **)sites, &capacity, *count, sizeof **sites, err);
        if (st == DK_OK) col_text(stmt, 0, (*sites)[(*count)++], DK_FED_NAME_MAX + 1);
    }
    if (st == DK_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "listing members");
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- rounds -------------------------------------------------------------------------------- */

#define ROUND_COLUMNS                                                                              \
    "idx, state, opened_at, closed_at, base_path, base_sha256, result_path, result_sha256"

static dk_status read_round(sq_store *s, sqlite3_stmt *stmt, dk_fed_round_row *r, dk_err *err)
{
    *r = (dk_fed_round_row){.index = sqlite3_column_int(stmt, 0)};
    char state[16];
    col_text(stmt, 1, state, sizeof state);
    int parsed = round_state_parse(state);
    if (parsed < 0)
        return dk_err_set(err, DK_EFORMAT, "federation store '%s': round %d has state '%s'",
                          s->path, r->index, state);
    r->state = (dk_fed_round_state)parsed;
    r->opened_at = sqlite3_column_int64(stmt, 2);
    r->closed_at = sqlite3_column_type(stmt, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(stmt, 3);
    col_text(stmt, 4, r->base_path, sizeof r->base_path);
    col_text(stmt, 5, r->base_sha256, sizeof r->base_sha256);
    col_text(stmt, 6, r->result_path, sizeof r->result_path);
    col_text(stmt, 7, r->result_sha256, sizeof r->result_sha256);
    return DK_OK;
}

/* The one round selected by sql (federation bound as ?1, index as ?2 when has_index). */
static dk_status select_round(sq_store *s, const char *sql, const char *fed, int index,
                              bool has_index, dk_fed_round_row *out, dk_err *err)
{
    sqlite3_stmt *stmt;
    dk_status st = has_index ? prepare(s, &stmt, err, sql, "ti", fed, (int64_t)index)
                             : prepare(s, &stmt, err, sql, "t", fed);
    if (st) return st;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        st = read_round(s, stmt, out, err);
    else if (rc == SQLITE_DONE && has_index)
        st = dk_err_set(err, DK_ENOTFOUND, "federation '%s' has no round %d", fed, index);
    else if (rc == SQLITE_DONE)
        st = dk_err_set(err, DK_ENOTFOUND, "federation '%s' does not exist", fed);
    else
        st = sql_fail(s, err, "reading rounds");
    sqlite3_finalize(stmt);
    return st;
}

static dk_status sq_get_round(dk_fed_store *base, const char *fed, int index, dk_fed_round_row *out,
                              dk_err *err)
{
    sq_store *s = lock(base);
    dk_status st =
        select_round(s, "SELECT " ROUND_COLUMNS " FROM rounds WHERE federation = ? AND idx = ?",
                     fed, index, true, out, err);
    pthread_mutex_unlock(&s->lock);
    return st;
}

static dk_status sq_current_round(dk_fed_store *base, const char *fed, dk_fed_round_row *out,
                                  dk_err *err)
{
    sq_store *s = lock(base);
    dk_status st = select_round(s,
                                "SELECT " ROUND_COLUMNS " FROM rounds WHERE federation = ?"
                                " ORDER BY idx DESC LIMIT 1",
                                fed, 0, false, out, err);
    pthread_mutex_unlock(&s->lock);
    return st;
}

static dk_status sq_list_rounds(dk_fed_store *base, const char *fed, dk_fed_round_row **rows,
                                int *count, dk_err *err)
{
    sq_store *s = lock(base);
    *rows = NULL;
    *count = 0;
    int capacity = 0, rc = SQLITE_DONE;
    sqlite3_stmt *stmt;
    dk_status st =
        prepare(s, &stmt, err,
                "SELECT " ROUND_COLUMNS " FROM rounds WHERE federation = ? ORDER BY idx", "t", fed);
    while (st == DK_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        st = grow((void **)rows, &capacity, *count, sizeof **rows, err);
        if (st == DK_OK) st = read_round(s, stmt, &(*rows)[(*count)++], err);
    }
    if (st == DK_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "listing rounds");
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* The round's state, inside the caller's transaction. */
static dk_status round_state(sq_store *s, const char *fed, int round, dk_fed_round_state *state,
                             dk_err *err)
{
    dk_fed_round_row row;
    dk_status st =
        select_round(s, "SELECT " ROUND_COLUMNS " FROM rounds WHERE federation = ? AND idx = ?",
                     fed, round, true, &row, err);
    if (st == DK_OK) *state = row.state;
    return st;
}

static dk_status sq_begin_aggregation(dk_fed_store *base, const char *fed, int round, int64_t now,
                                      dk_fed_conflict *conflict, dk_err *err)
{
    sq_store *s = lock(base);
    *conflict = DK_FED_NO_CONFLICT;
    dk_fed_round_state state = DK_ROUND_OPEN;
    sqlite3_stmt *stmt;
    dk_status st = begin(s, err);
    if (st == DK_OK) st = round_state(s, fed, round, &state, err);
    if (st == DK_OK && state == DK_ROUND_CLOSED) *conflict = DK_FED_CONFLICT_STATE;
    if (st == DK_OK && state == DK_ROUND_OPEN &&
        (st = prepare(s, &stmt, err,
                      "UPDATE rounds SET state = 'aggregating' WHERE federation = ? AND idx = ?",
                      "ti", fed, (int64_t)round)) == DK_OK)
        st = run(s, stmt, err, "marking the round aggregating");
    return finish(s, st, err);
}

static dk_status open_next_round(sq_store *s, const char *fed, int round, const char *path,
                                 const char *sha, int64_t now, dk_err *err)
{
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "INSERT INTO rounds (federation, idx, state, opened_at, base_path,"
                           " base_sha256) SELECT name, ?, 'open', ?, ?, ? FROM federations"
                           " WHERE name = ? AND rounds > ?",
                           "iittti", (int64_t)round + 1, now, path, sha, fed, (int64_t)round + 1);
    if (st == DK_OK) st = run(s, stmt, err, "opening the next round");
    if (st == DK_OK &&
        (st = prepare(s, &stmt, err,
                      "UPDATE federations SET state = 'finished' WHERE name = ? AND rounds <= ?",
                      "ti", fed, (int64_t)round + 1)) == DK_OK)
        st = run(s, stmt, err, "finishing the federation");
    return st;
}

static dk_status sq_close_round(dk_fed_store *base, const char *fed, int round,
                                const char *result_path, const char *result_sha256, int64_t now,
                                dk_fed_conflict *conflict, dk_err *err)
{
    sq_store *s = lock(base);
    *conflict = DK_FED_NO_CONFLICT;
    dk_fed_round_state state = DK_ROUND_OPEN;
    sqlite3_stmt *stmt;
    dk_status st = begin(s, err);
    if (st == DK_OK) st = round_state(s, fed, round, &state, err);
    if (st == DK_OK && state != DK_ROUND_AGGREGATING) *conflict = DK_FED_CONFLICT_STATE;
    if (st == DK_OK && !*conflict &&
        (st = prepare(s, &stmt, err,
                      "UPDATE rounds SET state = 'closed', closed_at = ?, result_path = ?,"
                      " result_sha256 = ? WHERE federation = ? AND idx = ?",
                      "ittti", now, result_path, result_sha256, fed, (int64_t)round)) == DK_OK)
        st = run(s, stmt, err, "closing the round");
    if (st == DK_OK && !*conflict)
        st = open_next_round(s, fed, round, result_path, result_sha256, now, err);
    return finish(s, st, err);
}

static dk_status sq_list_aggregating(dk_fed_store *base, dk_fed_round_ref **refs, int *count,
                                     dk_err *err)
{
    sq_store *s = lock(base);
    *refs = NULL;
    *count = 0;
    int capacity = 0, rc = SQLITE_DONE;
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "SELECT federation, idx FROM rounds WHERE state = 'aggregating'"
                           " ORDER BY federation, idx",
                           "");
    while (st == DK_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        st = grow((void **)refs, &capacity, *count, sizeof **refs, err);
        if (st != DK_OK) break;
        dk_fed_round_ref *r = &(*refs)[(*count)++];
        col_text(stmt, 0, r->federation, sizeof r->federation);
        r->round = sqlite3_column_int(stmt, 1);
    }
    if (st == DK_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "listing aggregating rounds");
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- updates and traffic ---------------------------------------------------------------- */

static dk_status add_traffic(sq_store *s, const char *fed, int round, const char *site, int64_t up,
                             int64_t down, dk_err *err)
{
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "INSERT INTO accounting VALUES (?, ?, ?, ?, ?)"
                           " ON CONFLICT (federation, round, site) DO UPDATE SET"
                           " bytes_up = bytes_up + excluded.bytes_up,"
                           " bytes_down = bytes_down + excluded.bytes_down",
                           "titii", fed, (int64_t)round, site, up, down);
    return st ? st : run(s, stmt, err, "adding to the traffic account");
}

static dk_status accepted_exists(sq_store *s, const char *fed, int round, const char *site,
                                 bool *exists, dk_err *err)
{
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "SELECT 1 FROM updates WHERE federation = ? AND round = ? AND site = ?"
                           " AND accepted = 1",
                           "tit", fed, (int64_t)round, site);
    if (st) return st;
    int rc = sqlite3_step(stmt);
    *exists = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = sql_fail(s, err, "reading updates");
    sqlite3_finalize(stmt);
    return st;
}

static dk_status check_acceptable(sq_store *s, const char *fed, const dk_fed_update_row *u,
                                  dk_fed_conflict *conflict, dk_err *err)
{
    dk_fed_round_state state = DK_ROUND_OPEN;
    bool exists = false;
    dk_status st = round_state(s, fed, u->round, &state, err);
    if (st == DK_ENOTFOUND || (st == DK_OK && state != DK_ROUND_OPEN)) {
        *conflict = DK_FED_CONFLICT_NOT_OPEN;
        return DK_OK;
    }
    if (st == DK_OK) st = accepted_exists(s, fed, u->round, u->site, &exists, err);
    if (st == DK_OK && exists) *conflict = DK_FED_CONFLICT_EXISTS;
    return st;
}

static dk_status sq_record_update(dk_fed_store *base, const char *fed, const dk_fed_update_row *u,
                                  dk_fed_conflict *conflict, dk_err *err)
{
    sq_store *s = lock(base);
    *conflict = DK_FED_NO_CONFLICT;
    sqlite3_stmt *stmt;
    dk_status st = begin(s, err);
    if (st == DK_OK && u->accepted) st = check_acceptable(s, fed, u, conflict, err);
    if (st == DK_OK && !*conflict &&
        (st = prepare(s, &stmt, err,
                      "INSERT INTO updates (federation, round, site, labelled, bytes, norm,"
                      " val_dice, accepted, reason, delta_path, delta_sha256, received_at)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      "titiiddittti", fed, (int64_t)u->round, u->site, u->labelled, u->bytes,
                      u->norm, u->val_dice, (int64_t)u->accepted, u->reason,
                      u->accepted ? u->delta_path : NULL, u->accepted ? u->delta_sha256 : NULL,
                      u->received_at)) == DK_OK)
        st = run(s, stmt, err, "inserting the update");
    if (st == DK_OK && !*conflict) st = add_traffic(s, fed, u->round, u->site, u->bytes, 0, err);
    return finish(s, st, err);
}

static dk_status sq_list_updates(dk_fed_store *base, const char *fed, int round, bool accepted_only,
                                 dk_fed_update_row **rows, int *count, dk_err *err)
{
    sq_store *s = lock(base);
    *rows = NULL;
    *count = 0;
    int capacity = 0, rc = SQLITE_DONE;
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "SELECT id, round, site, labelled, bytes, norm, val_dice, accepted,"
                           " reason, delta_path, delta_sha256, received_at FROM updates"
                           " WHERE federation = ? AND round = ? AND accepted >= ? ORDER BY id",
                           "tii", fed, (int64_t)round, (int64_t)accepted_only);
    while (st == DK_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        st = grow((void **)rows, &capacity, *count, sizeof **rows, err);
        if (st != DK_OK) break;
        dk_fed_update_row *u = &(*rows)[(*count)++];
        *u = (dk_fed_update_row){.id = sqlite3_column_int64(stmt, 0),
                                 .round = sqlite3_column_int(stmt, 1),
                                 .labelled = sqlite3_column_int64(stmt, 3),
                                 .bytes = sqlite3_column_int64(stmt, 4),
                                 .norm = col_real(stmt, 5),
                                 .val_dice = col_real(stmt, 6),
                                 .accepted = sqlite3_column_int(stmt, 7) != 0,
                                 .received_at = sqlite3_column_int64(stmt, 11)};
        col_text(stmt, 2, u->site, sizeof u->site);
        col_text(stmt, 8, u->reason, sizeof u->reason);
        col_text(stmt, 9, u->delta_path, sizeof u->delta_path);
        col_text(stmt, 10, u->delta_sha256, sizeof u->delta_sha256);
    }
    if (st == DK_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "listing updates");
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&s->lock);
    return st;
}

static dk_status sq_add_download(dk_fed_store *base, const char *fed, int round, const char *site,
                                 int64_t bytes, dk_err *err)
{
    sq_store *s = lock(base);
    dk_status st = begin(s, err);
    if (st == DK_OK) st = add_traffic(s, fed, round, site, 0, bytes, err);
    return finish(s, st, err);
}

static dk_status sq_list_traffic(dk_fed_store *base, const char *fed, dk_fed_traffic_row **rows,
                                 int *count, dk_err *err)
{
    sq_store *s = lock(base);
    *rows = NULL;
    *count = 0;
    int capacity = 0, rc = SQLITE_DONE;
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err,
                           "SELECT round, site, bytes_up, bytes_down FROM accounting"
                           " WHERE federation = ? ORDER BY round, site",
                           "t", fed);
    while (st == DK_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        st = grow((void **)rows, &capacity, *count, sizeof **rows, err);
        if (st != DK_OK) break;
        dk_fed_traffic_row *t = &(*rows)[(*count)++];
        t->round = sqlite3_column_int(stmt, 0);
        col_text(stmt, 1, t->site, sizeof t->site);
        t->bytes_up = sqlite3_column_int64(stmt, 2);
        t->bytes_down = sqlite3_column_int64(stmt, 3);
    }
    if (st == DK_OK && rc != SQLITE_DONE) st = sql_fail(s, err, "listing traffic");
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- open, migrate, close ------------------------------------------------------------- */

static void sq_close(dk_fed_store *base)
{
    sq_store *s = (sq_store *)base;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const dk_fed_store_ops sqlite_ops = {
    .create_federation = sq_create_federation,
    .get_federation = sq_get_federation,
    .join = sq_join,
    .is_member = sq_is_member,
    .list_members = sq_list_members,
    .get_round = sq_get_round,
    .current_round = sq_current_round,
    .list_rounds = sq_list_rounds,
    .record_update = sq_record_update,
    .list_updates = sq_list_updates,
    .begin_aggregation = sq_begin_aggregation,
    .close_round = sq_close_round,
    .list_aggregating = sq_list_aggregating,
    .add_download = sq_add_download,
    .list_traffic = sq_list_traffic,
    .close = sq_close,
};

static dk_status schema_version(sq_store *s, int64_t *version, dk_err *err)
{
    dk_status st =
        exec(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", err);
    sqlite3_stmt *stmt;
    if (st == DK_OK) st = prepare(s, &stmt, err, "SELECT max(version) FROM schema_version", "");
    if (st) return st;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *version = sqlite3_column_int64(stmt, 0); /* NULL (empty table) reads as 0 */
    else
        st = sql_fail(s, err, "reading the schema version");
    sqlite3_finalize(stmt);
    return st;
}

/* Bring the schema to DK_FED_SCHEMA_VERSION in one transaction; refuse a newer one. */
static dk_status migrate(sq_store *s, dk_err *err)
{
    pthread_mutex_lock(&s->lock);
    int64_t version = 0;
    dk_status st = begin(s, err);
    if (st == DK_OK) st = schema_version(s, &version, err);
    if (st == DK_OK && (version < 0 || version > DK_FED_SCHEMA_VERSION))
        st = dk_err_set(err, DK_EFORMAT,
                        "federation store '%s' has schema version %lld; this dualkd knows "
                        "versions up to %d (upgrade dualkd)",
                        s->path, (long long)version, DK_FED_SCHEMA_VERSION);
    for (int64_t v = version; st == DK_OK && v < DK_FED_SCHEMA_VERSION; v++)
        st = exec(s, migrations[v], err);
    sqlite3_stmt *stmt;
    if (st == DK_OK && version < DK_FED_SCHEMA_VERSION &&
        (st = exec(s, "DELETE FROM schema_version", err)) == DK_OK &&
        (st = prepare(s, &stmt, err, "INSERT INTO schema_version VALUES (?)", "i",
                      (int64_t)DK_FED_SCHEMA_VERSION)) == DK_OK)
        st = run(s, stmt, err, "recording the schema version");
    return finish(s, st, err);
}

static dk_status configure(sq_store *s, dk_err *err)
{
    sqlite3_busy_timeout(s->db, 10000);
    sqlite3_stmt *stmt;
    dk_status st = prepare(s, &stmt, err, "PRAGMA journal_mode = WAL", "");
    if (st) return st;
    char mode[16] = "";
    if (sqlite3_step(stmt) == SQLITE_ROW) col_text(stmt, 0, mode, sizeof mode);
    sqlite3_finalize(stmt);
    if (strcmp(mode, "wal") != 0)
        return dk_err_set(err, DK_EIO, "federation store '%s': cannot use WAL (journal mode '%s')",
                          s->path, mode);
    st = exec(s, "PRAGMA synchronous = FULL", err);
    if (st == DK_OK) st = exec(s, "PRAGMA foreign_keys = ON", err);
    return st;
}

dk_status dk_fed_store_open_sqlite(const char *path, dk_fed_store **out, dk_err *err)
{
    *out = NULL;
    if (strlen(path) >= DK_FED_PATH_MAX)
        return dk_err_set(err, DK_EINVAL, "federation store path is longer than %d bytes",
                          DK_FED_PATH_MAX - 1);
    sq_store *s = calloc(1, sizeof *s);
    if (!s) return dk_err_set(err, DK_ENOMEM, "out of memory");
    s->base.ops = &sqlite_ops;
    snprintf(s->path, sizeof s->path, "%s", path);
    pthread_mutex_init(&s->lock, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    dk_status st = DK_OK;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK)
        st = dk_err_set(err, DK_EIO, "cannot open federation store '%s': %s", path,
                        s->db ? sqlite3_errmsg(s->db) : "out of memory");
    if (st == DK_OK) st = configure(s, err);
    if (st == DK_OK) st = migrate(s, err);
    if (st != DK_OK) {
        sq_close(&s->base);
        return st;
    }
    *out = &s->base;
    return DK_OK;
}
