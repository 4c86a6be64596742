/* cmd_student_federate.c: `dualkd student train --federate NAME`: checks the
 * arguments, opens the target sources as the non-federated mode does, runs the
 * site (student/fed_site.c) and prints one line per round, a waiting line and
 * the summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/student_train.h"
#include "cli/util.h"
#include "student/fed_site.h"

int dk_student_federate_check(const options *o)
{
    const char *missing = !o->server ? "--server"
                          : !o->token ? "--token (or $DUALKD_TOKEN)"
                          : !o->data  ? "--data"
                          : !o->out   ? "--out"
                                      : NULL;
    if (missing) {
        fprintf(stderr, "dualkd student train: --federate needs %s\n", missing);
        return 2;
    }
    if (!o->supervised_only && !o->store && !o->profile) {
        fprintf(stderr, "dualkd student train: --federate with distillation needs --profile (the "
                        "targets are pulled from --server) or --store; or train --supervised-only\n");
        return 2;
    }
    return 0;
}

typedef struct display {
    bool tty, waiting;
    double last_wait;
} display;

static void end_wait_line(display *d)
{
    if (d->waiting && d->tty) fputc('\n', stderr);
    d->waiting = false;
}

static void on_note(const char *line, void *ctx)
{
    end_wait_line(ctx);
    fprintf(stderr, "federate: %s\n", line);
}

static const char *megabytes(uint64_t b, char *buf, size_t cap)
{
    snprintf(buf, cap, b >= 100000 ? "%.1f MB" : "%.1f kB", b >= 100000 ? b / 1e6 : b / 1e3);
    return buf;
}

static void on_round(const dk_fed_round_report *r, void *ctx)
{
    end_wait_line(ctx);
    char down[32], up[32];
    const char *after = r->sent == DK_FED_SENT_ACCEPTED ? ""
                        : r->sent == DK_FED_SENT_DUPLICATE
                            ? ", already recorded before a restart (409 counts once: taken as sent)"
                            : ", too late (409)";
    fprintf(stderr, "round %d of %d: global Dice %.3f (before local training; %s down); %ld local "
            "steps in %.1f s (loss %.3f: sup %.3f resp %.3f feat %.3f); sent %s (%s)%s",
            r->round, r->rounds, r->val_dice, megabytes(r->bytes_down, down, sizeof down),
            r->steps, r->stats.seconds, r->stats.loss, r->stats.sup, r->stats.response,
            r->stats.feature, megabytes(r->bytes_up, up, sizeof up),
            r->half ? "float16" : "float32", after);
    if (r->sent == DK_FED_SENT_TOO_LATE) fprintf(stderr, ": %s", r->detail);
    if (r->round + 1 < r->rounds)
        fprintf(stderr, "; waiting for round %d\n", r->round + 1);
    else
        fprintf(stderr, "; waiting for the federation to finish\n");
}

static void on_wait(const dk_fed_wait_report *w, void *ctx)
{
    display *d = ctx;
    if (!d->tty && w->waited_s - d->last_wait < 30 && d->waiting) return;
    d->last_wait = w->waited_s;
    d->waiting = true;
    char what[64];
    if (w->round < w->rounds) snprintf(what, sizeof what, "round %d", w->round);
    else snprintf(what, sizeof what, "the federation to finish");
    fprintf(stderr, "%swaiting for %s: %d of %d updates in the open round; %.0f s (gives up "
            "after %.0f s)%s", d->tty ? "\r" : "", what, w->reported, w->quorum, w->waited_s,
            w->bound_s, d->tty ? "\033[K" : "\n");
    fflush(stderr);
}

int dk_student_federate(const options *o, const dk_student_config *cfg)
{
    dk_err err = {0};
    dk_target_source src[3], *use;
    memset(src, 0, sizeof src);
    if (dk_fetch_global_init(&err)) return dk_cli_fail("student train", err.msg);
    if (dk_student_open_sources(o, src, &use)) {
        dk_fetch_global_cleanup();
        return 1;
    }
    display d = {.tty = isatty(STDERR_FILENO) == 1};
    dk_fed_site_options so = dk_fed_site_options_default();
    so.client.server = o->server, so.client.federation = o->federate;
    so.client.fetch.token = o->token;
    so.run = (dk_student_run){.data_path = o->data, .source = use, .out_path = o->out,
                              .config = *cfg, .supervised_only = o->supervised_only,
                              .no_response = o->no_response, .no_feature = o->no_feature,
                              .seed = o->seed, .seed_given = o->seed_given};
    so.local_steps = o->local_steps;
    so.float32_update = o->update_f4, so.float32_global = o->global_f4;
    so.stored_update = o->update_stored;
    so.on_note = on_note, so.on_round = on_round, so.on_wait = on_wait, so.ctx = &d;
    dk_fed_site_summary sum;
    dk_status st = dk_fed_site_run(&so, &sum, &err);
    end_wait_line(&d);
    for (int i = 2; i >= 0; i--)
        dk_target_source_close(&src[i]);
    dk_fetch_global_cleanup();
    if (st) return dk_cli_fail("student train --federate", err.msg);
    char down[32], up[32];
    fprintf(stderr, "federation '%s' finished (%d rounds; this process trained %d): final global "
            "Dice %.3f; %s down, %s up in total; %.1f s; model %s\n",
            o->federate, sum.rounds, sum.rounds_trained, sum.final_dice,
            megabytes(sum.bytes_down, down, sizeof down), megabytes(sum.bytes_up, up, sizeof up),
            sum.seconds, o->out);
    return 0;
}
