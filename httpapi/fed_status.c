/* fed_status.c: a federation's status and history as JSON (fed_round.h,
 * dk_fed_status_json), the body of GET /v1/federation/{name}. File paths stay
 * inside the server; checkpoints are named by round and SHA-256. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/fed_round_internal.h"

static json_t *real_or_null(double x)
{
    return isnan(x) ? json_null() : json_real(x);
}

static json_t *update_json(const dk_fed_update_row *u)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:o, s:o, s:I}", "site", u->site, "labelled",
                          (json_int_t)u->labelled, "bytes", (json_int_t)u->bytes, "norm",
                          real_or_null(u->norm), "val_dice", real_or_null(u->val_dice),
                          "received_at", (json_int_t)u->received_at);
    if (o && !u->accepted) json_object_set_new(o, "reason", json_string(u->reason));
    if (o && u->accepted) json_object_set_new(o, "delta_sha256", json_string(u->delta_sha256));
    return o;
}

/* reported / refused / missing / traffic of one round. */
static dk_status round_sites(dk_fed_coord *c, const char *fed, const dk_fed_round_row *r,
                             char (*members)[DK_FED_NAME_MAX + 1], int n_members,
                             const dk_fed_traffic_row *traffic, int n_traffic, json_t *o,
                             dk_err *err)
{
    dk_fed_update_row *u = NULL;
    int n = 0;
    dk_status st = c->store->ops->list_updates(c->store, fed, r->index, false, &u, &n, err);
    if (st) return st;
    json_t *reported = json_array(), *refused = json_array(), *missing = json_array(),
           *bytes = json_array();
    double dice_sum = 0;
    int dice_n = 0;
    for (int i = 0; i < n; i++) {
        json_array_append_new(u[i].accepted ? reported : refused, update_json(&u[i]));
        if (u[i].accepted && !isnan(u[i].val_dice)) dice_sum += u[i].val_dice, dice_n++;
    }
    for (int m = 0; m < n_members; m++) {
        bool found = false;
        for (int i = 0; i < n && !found; i++)
            found = u[i].accepted && strcmp(u[i].site, members[m]) == 0;
        if (!found) json_array_append_new(missing, json_string(members[m]));
    }
    for (int t = 0; t < n_traffic; t++)
        if (traffic[t].round == r->index)
            json_array_append_new(bytes,
                                  json_pack("{s:s, s:I, s:I}", "site", traffic[t].site, "bytes_up",
                                            (json_int_t)traffic[t].bytes_up, "bytes_down",
                                            (json_int_t)traffic[t].bytes_down));
    json_object_set_new(o, "reported", reported);
    json_object_set_new(o, "refused", refused);
    json_object_set_new(o, "missing", missing);
    json_object_set_new(o, "traffic", bytes);
    /* the sites' own validation Dice, unweighted: what they reported, not a measurement */
    json_object_set_new(o, "mean_val_dice", dice_n ? json_real(dice_sum / dice_n) : json_null());
    free(u);
    return DK_OK;
}

static json_t *round_json(const dk_fed_round_row *r, const dk_fed_info *info)
{
    json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:s}", "round", r->index, "state",
                          dk_fed_round_state_name(r->state), "opened_at", (json_int_t)r->opened_at,
                          "deadline_at", (json_int_t)(r->opened_at + info->deadline_seconds),
                          "base_sha256", r->base_sha256);
    json_object_set_new(o, "closed_at",
                        r->closed_at < 0 ? json_null() : json_integer(r->closed_at));
    json_object_set_new(o, "result_sha256",
                        r->result_sha256[0] ? json_string(r->result_sha256) : json_null());
    return o;
}

static dk_status history(dk_fed_coord *c, const dk_fed_info *info, json_t *root, dk_err *err)
{
    const dk_fed_store_ops *ops = c->store->ops;
    char(*members)[DK_FED_NAME_MAX + 1] = NULL;
    dk_fed_round_row *rounds = NULL;
    dk_fed_traffic_row *traffic = NULL;
    int n_members = 0, n_rounds = 0, n_traffic = 0;
    dk_status st = ops->list_members(c->store, info->name, &members, &n_members, err);
    if (st == DK_OK) st = ops->list_rounds(c->store, info->name, &rounds, &n_rounds, err);
    if (st == DK_OK) st = ops->list_traffic(c->store, info->name, &traffic, &n_traffic, err);
    json_t *sites = json_array(), *list = json_array();
    for (int m = 0; st == DK_OK && m < n_members; m++)
        json_array_append_new(sites, json_string(members[m]));
    for (int i = 0; st == DK_OK && i < n_rounds; i++) {
        json_t *o = round_json(&rounds[i], info);
        st = round_sites(c, info->name, &rounds[i], members, n_members, traffic, n_traffic, o, err);
        json_array_append_new(list, o);
    }
    json_object_set_new(root, "members", sites);
    json_object_set_new(root, "current_round", json_integer(n_rounds ? n_rounds - 1 : 0));
    json_object_set_new(root, "rounds_history", list);
    free(members);
    free(rounds);
    free(traffic);
    return st;
}

dk_status dk_fed_status_json(dk_fed_coord *c, const char *fed, int64_t now, json_t **out,
                             dk_fed_verdict *v, dk_err *err)
{
    *out = NULL;
    *v = (dk_fed_verdict){.kind = DK_FED_ACCEPTED, .round = -1};
    pthread_mutex_lock(&c->lock);
    dk_fed_info info = {0};
    dk_status st = DK_OK;
    if (!dk_fed_name_valid(fed)) {
        v->kind = DK_FED_BAD_REQUEST;
        snprintf(v->reason, sizeof v->reason, "federation name '%.80s' is not valid",
                 fed ? fed : "");
    } else if ((st = c->store->ops->get_federation(c->store, fed, &info, err)) == DK_ENOTFOUND) {
        st = DK_OK;
        v->kind = DK_FED_NOT_FOUND;
        snprintf(v->reason, sizeof v->reason, "federation '%s' does not exist", fed);
    }
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED) st = dk_fed_tick_locked(c, fed, now, err);
    dk_fed_info_release(&info);
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED)
        st = c->store->ops->get_federation(c->store, fed, &info, err);
    json_t *root = NULL;
    if (st == DK_OK && v->kind == DK_FED_ACCEPTED) {
        json_t *arch = json_loads(info.architecture_json, JSON_DECODE_ANY, NULL);
        root = json_pack("{s:s, s:s, s:i, s:i, s:I, s:o, s:I}", "federation", info.name, "state",
                         info.state == DK_FED_FINISHED ? "finished" : "active", "rounds",
                         info.rounds, "quorum", info.quorum, "deadline_seconds",
                         (json_int_t)info.deadline_seconds, "architecture",
                         arch ? arch : json_null(), "created_at", (json_int_t)info.created_at);
        st = root ? history(c, &info, root, err) : dk_err_set(err, DK_ENOMEM, "out of memory");
    }
    dk_fed_info_release(&info);
    pthread_mutex_unlock(&c->lock);
    if (st == DK_OK)
        *out = root;
    else
        json_decref(root);
    return st;
}
