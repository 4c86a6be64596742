/* fed_aggregate.c: closing a round: freeze it, average its accepted deltas
 * into the next global checkpoint, make that durable, then commit the close;
 * and the recovery of rounds a crash left half-closed (docs/federation.md,
 * "Crash safety"). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpapi/fed_round_internal.h"
#include "teacher/sha256.h"

dk_status dk_fed_load_base(dk_fed_coord *c, const char *path, const char *sha256,
                           const dk_fed_model **model, dk_err *err)
{
    *model = NULL;
    if (c->cached.params && strcmp(c->cached_sha256, sha256) == 0) {
        *model = &c->cached;
        return DK_OK;
    }
    dk_fed_model_release(&c->cached);
    c->cached_sha256[0] = '\0';
    char actual[DK_FED_SHA_HEX];
    dk_status st = dk_sha256_file(path, actual, err);
    if (st == DK_OK && strcmp(actual, sha256) != 0)
        st = dk_err_set(err, DK_EFORMAT, "global checkpoint '%s' has SHA-256 %s, the store says %s",
                        path, actual, sha256);
    if (st == DK_OK) st = dk_fed_model_load(path, &c->cached, err);
    if (st != DK_OK) return st;
    snprintf(c->cached_sha256, sizeof c->cached_sha256, "%s", sha256);
    *model = &c->cached;
    return DK_OK;
}

static int by_site(const void *a, const void *b)
{
    return strcmp(((const dk_fed_update_row *)a)->site, ((const dk_fed_update_row *)b)->site);
}

/* Add one stored delta to the sum, after checking it is the file that was accepted. */
static dk_status add_stored_delta(dk_fedavg_acc *acc, const dk_fed_model *base,
                                  const dk_fed_update_row *u, dk_err *err)
{
    char actual[DK_FED_SHA_HEX];
    dk_fed_model delta;
    dk_status st = dk_sha256_file(u->delta_path, actual, err);
    if (st == DK_OK && strcmp(actual, u->delta_sha256) != 0)
        return dk_err_set(err, DK_EFORMAT,
                          "the delta of site '%s' ('%s') has SHA-256 %s, the "
                          "store says %s",
                          u->site, u->delta_path, actual, u->delta_sha256);
    if (st == DK_OK) st = dk_fed_model_load(u->delta_path, &delta, err);
    if (st != DK_OK) return st;
    st = dk_fedavg_acc_add(acc, base, &delta, u->labelled, err);
    dk_fed_model_release(&delta);
    return st;
}

/* The run record of an aggregated checkpoint: where it came from. Caller frees. */
static char *run_record(const char *fed, int round, const dk_fed_update_row *u, int n)
{
    json_t *sites = json_array();
    int64_t labelled = 0;
    for (int i = 0; i < n; i++) {
        json_array_append_new(sites, json_string(u[i].site));
        labelled += u[i].labelled;
    }
    json_t *rec = json_pack("{s:s, s:s, s:i, s:o, s:I}", "kind", "fedavg", "federation", fed,
                            "aggregated_round", round, "sites", sites, "labelled_total",
                            (json_int_t)labelled);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return text;
}

/* base + weighted mean of the round's accepted deltas, in a model the caller releases. */
static dk_status average(dk_fed_coord *c, const char *fed, const dk_fed_round_row *row,
                         dk_fed_model *next, char **record, dk_err *err)
{
    const dk_fed_model *base;
    dk_fed_update_row *updates = NULL;
    int n = 0;
    dk_fedavg_acc acc = {0};
    dk_status st = dk_fed_load_base(c, row->base_path, row->base_sha256, &base, err);
    if (st == DK_OK)
        st = c->store->ops->list_updates(c->store, fed, row->index, true, &updates, &n, err);
    /* a fixed order, so the average does not depend on arrival order by a bit */
    if (st == DK_OK && n > 1) qsort(updates, (size_t)n, sizeof *updates, by_site);
    if (st == DK_OK) st = dk_fedavg_acc_init(&acc, base, err);
    for (int i = 0; st == DK_OK && i < n; i++)
        st = add_stored_delta(&acc, base, &updates[i], err);
    if (st == DK_OK) st = dk_fed_model_zeros_like(base, next, err);
    if (st == DK_OK) {
        for (int p = 0; p < base->count; p++)
            dk_tensor_copy(&next->params[p].value, &base->params[p].value);
        dk_fedavg_acc_apply(&acc, next);
        *record = run_record(fed, row->index, updates, n);
        if (!*record) st = dk_err_set(err, DK_ENOMEM, "out of memory");
    }
    dk_fedavg_acc_release(&acc);
    free(updates);
    return st;
}

dk_status dk_fed_close_round(dk_fed_coord *c, const char *fed, int round, int64_t now, dk_err *err)
{
    const dk_fed_store_ops *ops = c->store->ops;
    dk_fed_conflict conflict;
    dk_err inner = {0}; /* the cause, which the message below puts in context */
    dk_status st = ops->begin_aggregation(c->store, fed, round, now, &conflict, &inner);
    if (st == DK_OK && conflict) return DK_OK; /* closed already: nothing to do */
    if (st == DK_OK) DK_FED_CRASH_POINT("close:aggregating");
    dk_fed_round_row row;
    dk_fed_model next = {0};
    char *record = NULL, path[DK_FED_PATH_MAX], sha[DK_FED_SHA_HEX];
    if (st == DK_OK) st = ops->get_round(c->store, fed, round, &row, &inner);
    if (st == DK_OK) st = average(c, fed, &row, &next, &record, &inner);
    if (st == DK_OK) st = dk_fed_global_path(c, fed, round + 1, path, &inner);
    /* durable before the row that names it commits; a crash in between leaves a
     * file no row references, which the retry overwrites */
    if (st == DK_OK) st = dk_fed_model_save(&next, path, record, sha, &inner);
    if (st == DK_OK) DK_FED_CRASH_POINT("close:checkpoint-written");
    if (st == DK_OK) st = ops->close_round(c->store, fed, round, path, sha, now, &conflict, &inner);
    if (st == DK_OK && conflict)
        st = dk_err_set(&inner, DK_EIO, "the round left 'aggregating' while it was closed");
    dk_fed_model_release(&next);
    free(record);
    if (st != DK_OK)
        dk_err_set(err, st, "closing round %d of federation '%s': %s", round, fed, inner.msg);
    return st;
}

/* Unlink the "<file>.h5.tmp-XXXXXX" (and float16 globals' "<file>.npz.tmp-XXXXXX") a crash left in dir (and, when deep, in its
 * round-NNNN subdirectories). Only this coordinator writes here, so every
 * temporary at open time is garbage. */
static void remove_temporaries(const char *dir, bool deep)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[DK_FED_PATH_MAX];
    while (d && (e = readdir(d)) != NULL) {
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (strstr(e->d_name, ".h5.tmp-") || strstr(e->d_name, ".npz.tmp-"))
            unlink(path);
        else if (deep && strncmp(e->d_name, "round-", 6) == 0)
            remove_temporaries(path, false);
    }
    if (d) closedir(d);
}

static void remove_all_temporaries(const dk_fed_coord *c)
{
    DIR *d = opendir(c->dir);
    struct dirent *e;
    char path[DK_FED_PATH_MAX];
    while (d && (e = readdir(d)) != NULL)
        if (dk_fed_name_valid(e->d_name) &&
            snprintf(path, sizeof path, "%s/%s", c->dir, e->d_name) < (int)sizeof path)
            remove_temporaries(path, true);
    if (d) closedir(d);
}

dk_status dk_fed_recover_locked(dk_fed_coord *c, int64_t now, dk_err *err)
{
    remove_all_temporaries(c);
    dk_fed_round_ref *refs = NULL;
    int n = 0;
    dk_status st = c->store->ops->list_aggregating(c->store, &refs, &n, err);
    for (int i = 0; st == DK_OK && i < n; i++)
        st = dk_fed_close_round(c, refs[i].federation, refs[i].round, now, err);
    free(refs);
    return st;
}
