/* fed_site.c: the federated site's loop (fed_site.h): start or resume, one
 * local round, waiting for the next, and the final model. The requests are
 * fed_client.c, the arrays fed_local.c, the training train.c's session. */
#define _GNU_SOURCE
#include "student/fed_site.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "distill/clock.h"
#include "distill/rng.h"
#include "student/fed_local.h"
#include "teacher/runlog.h"

typedef struct site {
    dk_fed_site_options *o;
    dk_fed_status status;
    dk_student_session *s;
    dk_fed_site_state state;
    char state_path[4200], log_path[4200], tmp_path[4200];
    json_t *history; /* the run log's lines */
    char *architecture; /* the federation's network, as the session was built with it */
    char etag[128];  /* of the last global downloaded */
    void *kept;      /* its body: a 304 for a new round (a round closed with no update) reuses it */
    size_t kept_len;
    size_t max_global;
    dk_rng jitter;
    dk_fed_site_summary sum;
} site;

dk_fed_site_options dk_fed_site_options_default(void)
{
    return (dk_fed_site_options){.client = {.fetch = dk_fetch_options_default()},
                                 .local_steps = 40, .poll_min_s = 0.5, .poll_max_s = 5,
                                 .wait_grace_s = 120};
}

void dk_fed_site_state_path(const char *out, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.fedsite.h5", out);
}

static void note(const site *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const site *x, const char *fmt, ...)
{
    if (!x->o->on_note) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    x->o->on_note(line, x->o->ctx);
}

/* ---- start or resume ---- */

/* The run log's round lines before next_round (what a resumed site keeps). */
static json_t *read_history(const char *path, int next_round)
{
    json_t *h = json_array();
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *kind = json_string_value(json_object_get(j, "kind"));
        json_int_t r = json_integer_value(json_object_get(j, "round"));
        if (kind && !strcmp(kind, "round") && r < next_round)
            json_array_append(h, j);
        json_decref(j);
    }
    free(line);
    if (f) fclose(f);
    return h;
}

/* A state file of this federation restores the adapter and the rounds done;
 * anything else starts the site afresh. */
static dk_status restore(site *x, dk_err *err)
{
    const char *fed = x->o->client.federation;
    dk_fed_site_state saved = {0};
    dk_err why = {0};
    dk_status st = dk_fed_state_read(x->state_path, &saved, &why);
    bool same = !st && !strcmp(saved.federation, fed) && saved.created_at == x->status.created_at;
    x->state = (dk_fed_site_state){.created_at = x->status.created_at};
    snprintf(x->state.federation, sizeof x->state.federation, "%s", fed);
    if (same) {
        x->state.next_round = saved.next_round;
        x->history = read_history(x->log_path, saved.next_round);
        note(x, "resuming: rounds before %d were acknowledged (%s)", saved.next_round,
             x->state_path);
        if (dk_fed_state_load_adapter(x->state_path, dk_student_session_adapter(x->s), &why))
            note(x, "the adapter kept there does not fit this run (%s): a new one", why.msg);
        return DK_OK;
    }
    if (st != DK_ENOTFOUND)
        note(x, "starting afresh: %s", st ? why.msg : "the state is of another federation");
    x->history = json_array();
    return dk_runlog_rewrite(x->log_path, x->history, err);
}

static dk_status start(site *x, dk_err *err)
{
    dk_fed_client *c = &x->o->client;
    dk_status st = dk_fed_client_join(c, err);
    if (!st) st = dk_fed_client_status(c, &x->status, err);
    if (st) return st;
    /* the status is re-read while waiting: the run keeps its own copy */
    if (!(x->architecture = strdup(x->status.architecture)))
        return dk_err_set(err, DK_ENOMEM, "no memory for the architecture");
    x->o->run.architecture_json = x->architecture;
    if ((st = dk_student_session_open(&x->o->run, &x->s, err))) return st;
    const dk_params *unet = dk_student_session_unet(x->s);
    x->max_global = dk_params_numel(unet) * sizeof(float) + ((size_t)unet->count << 12) +
                    ((size_t)1 << 20);
    note(x, "'%s' joined federation '%s' at %s: %d rounds, quorum %d, %d member%s; %zu "
         "parameters", c->site, c->federation, c->server, x->status.rounds, x->status.quorum, x->status.members,
         x->status.members == 1 ? "" : "s", dk_params_numel(unet));
    return restore(x, err);
}

/* ---- one round ---- */

/* The float32 checkpoint: written to a temporary beside --out and read from there. */
static dk_status load_checkpoint_bytes(site *x, const dk_fed_global *g, dk_err *err)
{
    FILE *f = fopen(x->tmp_path, "wb");
    bool ok = f && fwrite(g->body, 1, g->len, f) == g->len;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) return dk_err_set(err, DK_EIO, "cannot write '%s': %s", x->tmp_path, strerror(errno));
    dk_status st = dk_checkpoint_load(x->tmp_path, NULL, dk_student_session_unet(x->s), NULL, err);
    unlink(x->tmp_path);
    return st ? dk_err_prefix(err, st, "the global checkpoint from %s", x->o->client.server) : st;
}

static dk_status load_global(site *x, const dk_fed_global *g, bool half, dk_err *err)
{
    if (!half) return load_checkpoint_bytes(x, g, err);
    dk_status st = dk_fed_local_load_global(g->body, g->len, dk_student_session_unet(x->s), err);
    return st ? dk_err_prefix(err, st, "GET %s/v1/federation/%s/global?dtype=f2",
                              x->o->client.server, x->o->client.federation)
              : st;
}

static json_t *round_json(const site *x, const dk_fed_round_report *r)
{
    static const char *outcome[] = {"accepted", "duplicate", "late"};
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:I, "
                     "s:s, s:s, s:f}",
                     "kind", "round", "federation", x->o->client.federation, "site",
                     x->o->client.site, "round", r->round, "rounds", r->rounds, "val_dice",
                     (double)r->val_dice, "local_steps", (json_int_t)r->steps, "loss",
                     (double)r->stats.loss, "sup", (double)r->stats.sup, "response",
                     (double)r->stats.response, "feature", (double)r->stats.feature,
                     "train_seconds", r->stats.seconds, "bytes_down", (json_int_t)r->bytes_down,
                     "bytes_up", (json_int_t)r->bytes_up, "update_dtype", r->half ? "f2" : "f4",
                     "outcome", outcome[r->sent], "seconds", r->seconds);
}

static dk_status send_update(site *x, dk_fed_round_report *r, const dk_fed_snapshot *base,
                             dk_err *err)
{
    void *npz = NULL;
    size_t len = 0;
    const dk_params *unet = dk_student_session_unet(x->s);
    dk_status st = dk_fed_local_delta(unet, base, r->half,
                                      x->o->stored_update ? DK_NPZ_STORE : DK_NPZ_DEFLATE, &npz,
                                      &len, err);
    if (!st)
        st = dk_fed_client_send(&x->o->client, r->round, npz, len,
                                dk_student_session_labelled(x->s), r->val_dice, &r->sent,
                                r->detail, err);
    r->bytes_up = st ? 0 : len;
    free(npz);
    return st;
}

/* received: the global's bytes that came down (0 when the kept one was reused). */
static dk_status local_round(site *x, const dk_fed_global *g, size_t received, double t0,
                             dk_err *err)
{
    const dk_fed_site_options *o = x->o;
    dk_fed_round_report r = {.round = g->round, .rounds = x->status.rounds,
                             .steps = o->local_steps, .bytes_down = received,
                             .half = !o->float32_update};
    dk_fed_snapshot base = {0};
    dk_status st = load_global(x, g, !o->float32_global, err);
    if (!st) st = dk_fed_snapshot_take(dk_student_session_unet(x->s), &base, err);
    if (!st) st = dk_student_session_validate(x->s, &r.val_dice, err);
    if (!st)
        st = dk_student_session_train(x->s, (long)r.round * o->local_steps, o->local_steps,
                                      (long)r.rounds * o->local_steps, &r.stats, err);
    if (!st) st = send_update(x, &r, &base, err);
    dk_fed_snapshot_release(&base);
    if (st) return st;
    r.seconds = dk_clock_seconds() - t0;
    x->state.next_round = r.round + 1;
    json_t *line = round_json(x, &r);
    if (!line || json_array_append_new(x->history, line))
        return dk_err_set(err, DK_ENOMEM, "no memory for the run log");
    st = dk_fed_state_save(x->state_path, dk_student_session_architecture(x->s),
                           dk_student_session_adapter(x->s), &x->state, err);
    if (!st) st = dk_runlog_rewrite(x->log_path, x->history, err);
    x->sum.rounds_trained++;
    if (!st && o->on_round) o->on_round(&r, o->ctx);
    return st;
}

/* ---- waiting ---- */

static void pause_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* Poll the status until round `round` is open or the federation finished; a
 * round stays open at most its deadline, so the wait has a bound. */
static dk_status wait_for(site *x, int round, dk_err *err)
{
    const dk_fed_site_options *o = x->o;
    double t0 = dk_clock_seconds(), pause = o->poll_min_s;
    double bound = (double)x->status.deadline_seconds + o->wait_grace_s;
    for (;;) {
        dk_status st = dk_fed_client_status(&x->o->client, &x->status, err);
        if (st) return st;
        if (x->status.finished || x->status.current_round >= round) return DK_OK;
        double waited = dk_clock_seconds() - t0;
        dk_fed_wait_report w = {round, x->status.rounds, x->status.reported, x->status.quorum,
                                waited, bound};
        if (o->on_wait) o->on_wait(&w, o->ctx);
        if (waited > bound)
            return dk_err_set(err, DK_EIO, "round %d of federation '%s' at %s has not opened "
                              "after %.0f s (its deadline is %lld s; is the coordinator ticking?)",
                              round, o->client.federation, o->client.server, waited,
                              (long long)x->status.deadline_seconds);
        pause_s(pause * (0.75 + 0.5 * dk_rng_uniform(&x->jitter)));
        pause = fmin(pause * 1.5, o->poll_max_s);
    }
}

/* ---- the end ---- */

static dk_status finish(site *x, double t0, dk_err *err)
{
    dk_fed_global g;
    dk_status st = dk_fed_client_global(&x->o->client, false, NULL, x->max_global, &g, err);
    if (!st) st = load_checkpoint_bytes(x, &g, err);
    if (!st) st = dk_student_session_validate(x->s, &x->sum.final_dice, err);
    if (!st) st = dk_student_session_save(x->s, x->o->run.out_path, err);
    uint64_t down = g.len, up = 0;
    free(g.body);
    if (st) return st;
    size_t i;
    json_t *line;
    json_array_foreach(x->history, i, line) {
        down += (uint64_t)json_integer_value(json_object_get(line, "bytes_down"));
        up += (uint64_t)json_integer_value(json_object_get(line, "bytes_up"));
    }
    x->sum.rounds = x->status.rounds;
    x->sum.seconds = dk_clock_seconds() - t0;
    line = json_pack("{s:s, s:s, s:s, s:i, s:f, s:I, s:I, s:I, s:s}", "kind", "final",
                     "federation", x->o->client.federation, "site", x->o->client.site, "rounds",
                     x->status.rounds, "val_dice", (double)x->sum.final_dice, "bytes_down",
                     (json_int_t)down, "bytes_up", (json_int_t)up, "final_global_bytes",
                     (json_int_t)g.len, "out", x->o->run.out_path);
    if (!line || json_array_append_new(x->history, line))
        return dk_err_set(err, DK_ENOMEM, "no memory for the run log");
    return dk_runlog_rewrite(x->log_path, x->history, err);
}

/* ---- the loop ---- */

/* The global of the open round: downloaded, or the kept one when it is unchanged (304). */
static dk_status fetch_global(site *x, dk_fed_global *g, size_t *received, dk_err *err)
{
    const dk_fed_site_options *o = x->o;
    dk_status st = dk_fed_client_global(&x->o->client, !o->float32_global, x->etag,
                                        x->max_global, g, err);
    if (st) return st;
    if (g->not_modified) {
        g->body = malloc(x->kept_len ? x->kept_len : 1);
        if (!g->body) return dk_err_set(err, DK_ENOMEM, "no memory for the global");
        memcpy(g->body, x->kept, x->kept_len);
        g->len = x->kept_len;
        *received = 0;
        return DK_OK;
    }
    void *copy = malloc(g->len);
    if (!copy) return dk_err_set(err, DK_ENOMEM, "no memory for the global");
    memcpy(copy, g->body, g->len);
    free(x->kept);
    x->kept = copy, x->kept_len = g->len;
    snprintf(x->etag, sizeof x->etag, "%s", g->etag);
    *received = g->len;
    return DK_OK;
}

static dk_status rounds(site *x, dk_err *err)
{
    for (int stale = 0;;) {
        dk_status st = wait_for(x, x->state.next_round, err);
        if (st || x->status.finished) return st;
        dk_fed_global g;
        size_t received = 0;
        double t0 = dk_clock_seconds();
        if ((st = fetch_global(x, &g, &received, err))) return st;
        if (g.round >= x->state.next_round) {
            if (g.round > x->state.next_round)
                note(x, "round %d is open: rounds %d..%d went on without this site", g.round,
                     x->state.next_round, g.round - 1);
            stale = 0;
            st = local_round(x, &g, received, t0, err);
        } else if (++stale > 100) { /* the status and the global disagree, again and again */
            st = dk_err_set(err, DK_EFORMAT, "%s: the status says round %d is open, the global "
                            "answers Dualkd-Round %d", x->o->client.server,
                            x->status.current_round, g.round);
        } else {
            pause_s(x->o->poll_min_s); /* the round moved between status and download */
        }
        free(g.body);
        if (st) return st;
    }
}

dk_status dk_fed_site_run(dk_fed_site_options *o, dk_fed_site_summary *sum, dk_err *err)
{
    site x = {.o = o, .jitter = dk_rng_seed((uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^
                                            (uint64_t)(dk_clock_seconds() * 1e6))};
    dk_fed_site_state_path(o->run.out_path, x.state_path, sizeof x.state_path);
    dk_teacher_runlog_path(o->run.out_path, x.log_path, sizeof x.log_path);
    snprintf(x.tmp_path, sizeof x.tmp_path, "%s.global.tmp", o->run.out_path);
    double t0 = dk_clock_seconds();
    uint64_t down0 = o->client.bytes_down, up0 = o->client.bytes_up;
    dk_status st = start(&x, err);
    if (!st) st = rounds(&x, err);
    if (!st) st = finish(&x, t0, err);
    x.sum.bytes_down = o->client.bytes_down - down0;
    x.sum.bytes_up = o->client.bytes_up - up0;
    *sum = x.sum;
    dk_student_session_close(x.s);
    dk_fed_status_release(&x.status);
    json_decref(x.history);
    free(x.kept);
    o->run.architecture_json = NULL;
    free(x.architecture);
    return st;
}
