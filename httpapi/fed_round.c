/* fed_round.c: the coordinator's requests (fed_round.h): create, join, fetch,
 * submit, tick. Aggregation and recovery are in fed_aggregate.c, the status
 * JSON in fed_status.c. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpapi/fed_round_internal.h"

/* ---- paths and directories ----------------------------------------------------------- */

static dk_status format_path(char *buf, dk_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static dk_status format_path(char *buf, dk_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, DK_FED_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= DK_FED_PATH_MAX)
        return dk_err_set(err, DK_ELIMIT, "a federation file path is longer than %d bytes",
                          DK_FED_PATH_MAX - 1);
    return DK_OK;
}

dk_status dk_fed_global_path(const dk_fed_coord *c, const char *fed, int round, char *buf,
                             dk_err *err)
{
    return format_path(buf, err, "%s/%s/global-%04d.h5", c->dir, fed, round);
}

dk_status dk_fed_round_dir(const dk_fed_coord *c, const char *fed, int round, char *buf,
                           dk_err *err)
{
    return format_path(buf, err, "%s/%s/round-%04d", c->dir, fed, round);
}

dk_status dk_fed_mkdir_durable(const char *path, dk_err *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return dk_err_set(err, DK_EIO, "cannot create directory '%s': %s", path, strerror(errno));
    char parent[DK_FED_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    int fd = open(parent, O_RDONLY | O_DIRECTORY);
    /* some file systems cannot fsync a directory (EINVAL); the entry exists regardless */
    dk_status st = DK_OK;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        st = dk_err_set(err, DK_EIO, "cannot sync directory '%s': %s", parent, strerror(errno));
    if (fd >= 0) close(fd);
    return st;
}

/* ---- verdicts ---------------------------------------------------------------------------- */

static dk_status refuse(dk_fed_verdict *v, dk_fed_verdict_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static dk_status refuse(dk_fed_verdict *v, dk_fed_verdict_kind kind, const char *fmt, ...)
{
    v->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    return DK_OK;
}

static void verdict_init(dk_fed_verdict *v)
{
    *v = (dk_fed_verdict){.kind = DK_FED_ACCEPTED, .round = -1};
}

/* Client mistakes found by a library call become the verdict; server failures stay errors. */
static bool is_client_error(dk_status st)
{
    return st == DK_EINVAL || st == DK_EFORMAT || st == DK_EMISMATCH || st == DK_ENOTFOUND ||
           st == DK_ELIMIT;
}

/* ---- coordinator ---------------------------------------------------------------------------- */

dk_status dk_fed_coord_open(const char *dir, dk_fed_store *store, int64_t now, dk_fed_coord **out,
                            dk_err *err)
{
    *out = NULL;
    if (strlen(dir) >= DK_FED_PATH_MAX - 2 * DK_FED_NAME_MAX - 32)
        return dk_err_set(err, DK_ELIMIT, "federation directory '%.80s...' is too long", dir);
    dk_status st = dk_fed_mkdir_durable(dir, err);
    if (st) return st;
    dk_fed_coord *c = calloc(1, sizeof *c);
    if (!c) return dk_err_set(err, DK_ENOMEM, "out of memory");
    c->store = store;
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_lock(&c->lock);
    st = dk_fed_recover_locked(c, now, err);
    pthread_mutex_unlock(&c->lock);
    if (st != DK_OK) {
        dk_fed_coord_close(c);
        return st;
    }
    *out = c;
    return DK_OK;
}

void dk_fed_coord_close(dk_fed_coord *c)
{
    if (!c) return;
    dk_fed_model_release(&c->cached);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- create, join, fetch ------------------------------------------------------------------ */

/* Always DK_OK; a bad request sets the verdict. */
static dk_status check_create(const dk_fed_create_req *r, dk_fed_verdict *v)
{
    if (!dk_fed_name_valid(r->name))
        return refuse(v, DK_FED_BAD_REQUEST,
                      "federation name '%.80s' must be 1..%d characters of "
                      "A-Z a-z 0-9 . _ -",
                      r->name ? r->name : "", DK_FED_NAME_MAX);
    if (r->rounds < 1 || r->rounds > DK_FED_MAX_ROUNDS)
        return refuse(v, DK_FED_BAD_REQUEST, "rounds = %d, expected 1..%d", r->rounds,
                      DK_FED_MAX_ROUNDS);
    if (r->quorum < 1 || r->quorum > DK_FED_MAX_QUORUM)
        return refuse(v, DK_FED_BAD_REQUEST, "quorum = %d, expected 1..%d", r->quorum,
                      DK_FED_MAX_QUORUM);
    if (r->deadline_seconds < 1 || r->deadline_seconds > DK_FED_MAX_DEADLINE)
        return refuse(v, DK_FED_BAD_REQUEST, "deadline_seconds = %lld, expected 1..%lld",
                      (long long)r->deadline_seconds, DK_FED_MAX_DEADLINE);
    if (!r->initial_checkpoint)
        return refuse(v, DK_FED_BAD_REQUEST, "an initial student checkpoint is required");
    return DK_OK;
}

/* Copy the initial student in as global-0000 and insert the federation. */
static dk_status create_locked(dk_fed_coord *c, const dk_fed_create_req *r, int64_t now,
                               dk_fed_verdict *v, dk_err *err)
{
    dk_fed_info info;
    dk_status st = c->store->ops->get_federation(c->store, r->name, &info, err);
    dk_fed_info_release(&info);
    if (st == DK_OK) return refuse(v, DK_FED_CONFLICT, "federation '%s' already exists", r->name);
    if (st != DK_ENOTFOUND) return st;
    dk_fed_model initial;
    dk_err why = {0};
    st = dk_fed_model_load(r->initial_checkpoint, &initial, &why);
    if (is_client_error(st))
        return refuse(v, DK_FED_BAD_REQUEST, "initial checkpoint: %s", why.msg);
    if (st) return dk_err_set(err, st, "%s", why.msg);
    char dir[DK_FED_PATH_MAX], path[DK_FED_PATH_MAX], sha[DK_FED_SHA_HEX];
    st = format_path(dir, err, "%s/%s", c->dir, r->name);
    if (st == DK_OK) st = dk_fed_mkdir_durable(dir, err);
    if (st == DK_OK) st = dk_fed_global_path(c, r->name, 0, path, err);
    if (st == DK_OK) st = dk_fed_model_save(&initial, path, "{\"kind\":\"initial\"}", sha, err);
    dk_fed_info row = {.rounds = r->rounds,
                       .quorum = r->quorum,
                       .deadline_seconds = r->deadline_seconds,
                       .architecture_json = initial.architecture_json};
    snprintf(row.name, sizeof row.name, "%s", r->name);
    dk_fed_conflict conflict = DK_FED_NO_CONFLICT;
    if (st == DK_OK)
        st = c->store->ops->create_federation(c->store, &row, path, sha, now, &conflict, err);
    dk_fed_model_release(&initial);
    if (st == DK_OK && conflict)
        return refuse(v, DK_FED_CONFLICT, "federation '%s' already exists", r->name);
    return st;
}

dk_status dk_fed_create(dk_fed_coord *c, const dk_fed_create_req *req, int64_t now,
                        dk_fed_verdict *v, dk_err *err)
{
    verdict_init(v);
    check_create(req, v);
    if (v->kind != DK_FED_ACCEPTED) return DK_OK;
    pthread_mutex_lock(&c->lock);
    dk_status st = create_locked(c, req, now, v, err);
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* The federation's row when site (NULL: anyone) may act on it; else a verdict. */
static dk_status check_access(dk_fed_coord *c, const char *fed, const char *site, dk_fed_info *info,
                              dk_fed_verdict *v, dk_err *err)
{
    *info = (dk_fed_info){0};
    if (!dk_fed_name_valid(fed))
        return refuse(v, DK_FED_BAD_REQUEST, "federation name '%.80s' is not valid",
                      fed ? fed : "");
    if (site && !dk_fed_name_valid(site))
        return refuse(v, DK_FED_BAD_REQUEST,
                      "site name '%.80s' must be 1..%d characters of "
                      "A-Z a-z 0-9 . _ -",
                      site, DK_FED_NAME_MAX);
    dk_status st = c->store->ops->get_federation(c->store, fed, info, err);
    if (st == DK_ENOTFOUND)
        return refuse(v, DK_FED_NOT_FOUND, "federation '%s' does not exist", fed);
    bool member = true;
    if (st == DK_OK && site) st = c->store->ops->is_member(c->store, fed, site, &member, err);
    if (st == DK_OK && !member)
        refuse(v, DK_FED_FORBIDDEN, "site '%s' has not joined federation '%s'", site, fed);
    return st;
}

dk_status dk_fed_join(dk_fed_coord *c, const char *fed, const char *site, int64_t now,
                      dk_fed_verdict *v, dk_err *err)
{
    verdict_init(v);
    pthread_mutex_lock(&c->lock);
    dk_fed_info info;
    dk_status st = check_access(c, fed, NULL, &info, v, err);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED && !dk_fed_name_valid(site))
        refuse(v, DK_FED_BAD_REQUEST,
               "site name '%.80s' must be 1..%d characters of "
               "A-Z a-z 0-9 . _ -",
               site ? site : "", DK_FED_NAME_MAX);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED)
        st = c->store->ops->join(c->store, fed, site, now, err);
    dk_fed_info_release(&info);
    pthread_mutex_unlock(&c->lock);
    return st;
}

dk_status dk_fed_fetch_global(dk_fed_coord *c, const char *fed, const char *site, int64_t now,
                              char *path, char *sha256, int *round, dk_fed_verdict *v, dk_err *err)
{
    verdict_init(v);
    pthread_mutex_lock(&c->lock);
    dk_fed_info info;
    dk_fed_round_row row;
    dk_status st = check_access(c, fed, site, &info, v, err);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED) st = dk_fed_tick_locked(c, fed, now, err);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED)
        st = c->store->ops->current_round(c->store, fed, &row, err);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED) {
        bool done = row.state == DK_ROUND_CLOSED; /* only after the last round */
        snprintf(path, DK_FED_PATH_MAX, "%s", done ? row.result_path : row.base_path);
        snprintf(sha256, DK_FED_SHA_HEX, "%s", done ? row.result_sha256 : row.base_sha256);
        *round = row.index;
        v->round = row.index;
    }
    dk_fed_info_release(&info);
    pthread_mutex_unlock(&c->lock);
    return st;
}

dk_status dk_fed_note_download(dk_fed_coord *c, const char *fed, const char *site, int round,
                               int64_t bytes, dk_err *err)
{
    pthread_mutex_lock(&c->lock);
    bool member = false;
    dk_status st = dk_fed_name_valid(fed) && dk_fed_name_valid(site)
                       ? c->store->ops->is_member(c->store, fed, site, &member, err)
                       : DK_OK;
    if (st == DK_OK && !member)
        st = dk_err_set(err, DK_EINVAL, "site '%.80s' is not a member of federation '%.80s'",
                        site ? site : "", fed ? fed : "");
    if (st == DK_OK) st = c->store->ops->add_download(c->store, fed, round, site, bytes, err);
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* ---- ticking --------------------------------------------------------------------------------- */

dk_status dk_fed_tick_locked(dk_fed_coord *c, const char *fed, int64_t now, dk_err *err)
{
    dk_fed_info info;
    dk_fed_round_row row;
    dk_fed_update_row *accepted = NULL;
    int n = 0;
    dk_status st = c->store->ops->get_federation(c->store, fed, &info, err);
    if (st == DK_OK) st = c->store->ops->current_round(c->store, fed, &row, err);
    if (st == DK_OK && row.state == DK_ROUND_OPEN)
        st = c->store->ops->list_updates(c->store, fed, row.index, true, &accepted, &n, err);
    /* quorum too: a crash may have come between the last acceptance and the close;
     * and a close that failed (disk full) is retried rather than left hanging */
    bool due = st == DK_OK && row.state == DK_ROUND_OPEN &&
               (now >= row.opened_at + info.deadline_seconds || n >= info.quorum);
    if (st == DK_OK && (due || row.state == DK_ROUND_AGGREGATING))
        st = dk_fed_close_round(c, fed, row.index, now, err);
    free(accepted);
    dk_fed_info_release(&info);
    return st;
}

dk_status dk_fed_tick(dk_fed_coord *c, const char *fed, int64_t now, dk_err *err)
{
    pthread_mutex_lock(&c->lock);
    dk_status st = dk_fed_tick_locked(c, fed, now, err);
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* ---- submitting ----------------------------------------------------------------------------- */

/* The round-level refusals: finished, late, early, not open, numbers, duplicate. */
static dk_status judge_round(dk_fed_coord *c, const dk_fed_submission *s, const dk_fed_info *info,
                             const dk_fed_round_row *row, dk_fed_verdict *v, dk_err *err)
{
    if (info->state == DK_FED_FINISHED)
        return refuse(v, DK_FED_CONFLICT, "federation '%s' has finished its %d rounds",
                      s->federation, info->rounds);
    if (s->round != row->index)
        return refuse(v, DK_FED_CONFLICT, "the update is for round %d, which %s; round %d is open",
                      s->round, s->round < row->index ? "is closed" : "has not opened", row->index);
    if (row->state != DK_ROUND_OPEN)
        return refuse(v, DK_FED_CONFLICT, "round %d is %s", row->index,
                      dk_fed_round_state_name(row->state));
    if (s->labelled < 1 || s->labelled > DK_FEDAVG_MAX_LABELLED)
        return refuse(v, DK_FED_BAD_REQUEST, "labelled = %lld, expected 1..%d labelled volumes",
                      (long long)s->labelled, DK_FEDAVG_MAX_LABELLED);
    if (!isnan(s->val_dice) && !(s->val_dice >= 0 && s->val_dice <= 1))
        return refuse(v, DK_FED_BAD_REQUEST, "val_dice = %g, expected 0..1", s->val_dice);
    dk_fed_update_row *rows = NULL;
    int n = 0;
    dk_status st =
        c->store->ops->list_updates(c->store, s->federation, row->index, true, &rows, &n, err);
    for (int i = 0; st == DK_OK && i < n; i++)
        if (strcmp(rows[i].site, s->site) == 0)
            refuse(v, DK_FED_CONFLICT,
                   "site '%s' already has an accepted update in round %d; an update counts once",
                   s->site, row->index);
    free(rows);
    return st;
}

/* The content-level refusals: names, shapes, NaN/Inf, norm. *delta on acceptance. */
static dk_status judge_content(dk_fed_coord *c, const dk_fed_submission *s,
                               const dk_fed_round_row *row, dk_fed_model *delta, double *norm,
                               dk_fed_verdict *v, dk_err *err)
{
    const dk_fed_model *base;
    dk_status st = dk_fed_load_base(c, row->base_path, row->base_sha256, &base, err);
    if (st) return st;
    dk_err why = {0};
    st = dk_fedavg_validate(base, s->tensors, s->count, delta, norm, &why);
    if (is_client_error(st)) return refuse(v, DK_FED_BAD_REQUEST, "%s", why.msg);
    if (st) return dk_err_set(err, st, "%s", why.msg);
    dk_fed_update_row *rows = NULL;
    int n = 0;
    st = c->store->ops->list_updates(c->store, s->federation, row->index, true, &rows, &n, err);
    double *norms = st == DK_OK ? calloc((size_t)n + 1, sizeof *norms) : NULL;
    if (st == DK_OK && !norms) st = dk_err_set(err, DK_ENOMEM, "out of memory");
    for (int i = 0; st == DK_OK && i < n; i++)
        norms[i] = rows[i].norm;
    if (st == DK_OK) {
        dk_status rule = dk_fedavg_check_norm(*norm, dk_fedavg_norm(base), norms, n, &why);
        if (rule == DK_ENOMEM)
            st = dk_err_set(err, rule, "%s", why.msg);
        else if (rule)
            refuse(v, DK_FED_BAD_REQUEST, "%s", why.msg);
    }
    free(norms);
    free(rows);
    if (st != DK_OK || v->kind != DK_FED_ACCEPTED) dk_fed_model_release(delta);
    return st;
}

/* Store the delta durably, then record it: an acknowledged update is never lost. */
static dk_status accept_update(dk_fed_coord *c, const dk_fed_submission *s,
                               const dk_fed_model *delta, dk_fed_update_row *u, dk_fed_verdict *v,
                               dk_err *err)
{
    char dir[DK_FED_PATH_MAX], record[200];
    dk_status st = dk_fed_round_dir(c, s->federation, u->round, dir, err);
    if (st == DK_OK) st = dk_fed_mkdir_durable(dir, err);
    if (st == DK_OK) st = format_path(u->delta_path, err, "%s/%s.delta.h5", dir, s->site);
    snprintf(record, sizeof record, "{\"kind\":\"delta\",\"round\":%d,\"labelled\":%lld}", u->round,
             (long long)u->labelled);
    if (st == DK_OK) st = dk_fed_model_save(delta, u->delta_path, record, u->delta_sha256, err);
    if (st) return st;
    DK_FED_CRASH_POINT("submit:delta-written");
    dk_fed_conflict conflict;
    u->accepted = true;
    st = c->store->ops->record_update(c->store, s->federation, u, &conflict, err);
    if (st == DK_OK && conflict)
        return refuse(v, DK_FED_CONFLICT, "round %d no longer takes an update from site '%s'",
                      u->round, s->site);
    if (st == DK_OK) DK_FED_CRASH_POINT("submit:recorded");
    return st;
}

static dk_status submit_locked(dk_fed_coord *c, const dk_fed_submission *s, int64_t now,
                               dk_fed_verdict *v, dk_err *err)
{
    dk_fed_info info;
    dk_fed_round_row row;
    dk_fed_model delta = {0};
    dk_fed_update_row u = {.round = s->round,
                           .labelled = s->labelled,
                           .bytes = s->bytes,
                           .norm = NAN,
                           .val_dice = s->val_dice,
                           .received_at = now};
    dk_status st = check_access(c, s->federation, s->site, &info, v, err);
    if (st || v->kind != DK_FED_ACCEPTED) goto done;
    snprintf(u.site, sizeof u.site, "%s", s->site);
    st = dk_fed_tick_locked(c, s->federation, now, err);
    dk_fed_info_release(&info);
    if (st == DK_OK) st = c->store->ops->get_federation(c->store, s->federation, &info, err);
    if (st == DK_OK) st = c->store->ops->current_round(c->store, s->federation, &row, err);
    if (st == DK_OK) v->round = row.state == DK_ROUND_OPEN ? row.index : -1;
    if (st == DK_OK) st = judge_round(c, s, &info, &row, v, err);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED)
        st = judge_content(c, s, &row, &delta, &u.norm, v, err);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED) st = accept_update(c, s, &delta, &u, v, err);
    if (st == DK_OK && v->kind != DK_FED_ACCEPTED) {
        dk_fed_conflict ignored;
        snprintf(u.reason, sizeof u.reason, "%s", v->reason);
        u.accepted = false;
        u.delta_path[0] = u.delta_sha256[0] = '\0';
        st = c->store->ops->record_update(c->store, s->federation, &u, &ignored, err);
    } else if (st == DK_OK) {
        dk_fed_round_row after;
        st = dk_fed_tick_locked(c, s->federation, now, err); /* closes on quorum */
        if (st == DK_OK)
            st = c->store->ops->get_round(c->store, s->federation, row.index, &after, err);
        if (st == DK_OK) v->round_closed = after.state == DK_ROUND_CLOSED;
    }
done:
    dk_fed_model_release(&delta);
    dk_fed_info_release(&info);
    return st;
}

dk_status dk_fed_submit(dk_fed_coord *c, const dk_fed_submission *s, int64_t now, dk_fed_verdict *v,
                        dk_err *err)
{
    verdict_init(v);
    pthread_mutex_lock(&c->lock);
    dk_status st = submit_locked(c, s, now, v, err);
    pthread_mutex_unlock(&c->lock);
    return st;
}
