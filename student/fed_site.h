/* fed_site.h: a site taking part in a federation (`dualkd student train
 * --federate NAME`, docs/student.md and docs/federation.md, "The site's side").
 *
 * It joins; then, round by round, downloads the global student (float16 by
 * default), measures its validation Dice on the site's "validation" volumes,
 * trains local_steps steps from it with the site's own loss (train.h's
 * session), and sends the delta (trained - the global as downloaded) with its
 * labelled count; then waits for the next round. At the end it downloads the
 * final float32 global and writes it to the run's out_path as a student
 * checkpoint. Across rounds:
 *   - the feature adapter stays at the site: <out>.fedsite.h5 (never sent);
 *   - the optimiser state starts from zero every round (its moments belong to
 *     weights the round replaced);
 *   - the learning rate and the distillation ramps follow the global step
 *     round * local_steps + i, over rounds * local_steps: one schedule for the
 *     whole federation, a function of the round alone.
 * Killed and restarted with the same arguments, it continues: the state file
 * names the rounds the server acknowledged, a round is repeated exactly, and an
 * update the server had recorded is answered 409 "counts once": read as sent.
 * <out>.runlog.jsonl holds one JSON line per round and a final line. */
#ifndef DK_FED_SITE_H
#define DK_FED_SITE_H

#include "student/fed_client.h"
#include "student/train.h"

typedef struct dk_fed_round_report {
    int round, rounds;
    float val_dice;   /* the global's, before local training */
    long steps;
    dk_student_round_stats stats;
    uint64_t bytes_down, bytes_up; /* of this round: the global, the update */
    bool half;                     /* the update's dtype: float16 (else float32) */
    dk_fed_sent sent;
    char detail[200]; /* the server's words when not accepted */
    double seconds;   /* download to acknowledgement */
} dk_fed_round_report;

typedef struct dk_fed_wait_report {
    int round;      /* waiting for this round to open (round == rounds: for the end) */
    int rounds;
    int reported, quorum;
    double waited_s, bound_s;
} dk_fed_wait_report;

typedef struct dk_fed_site_summary {
    int rounds_trained;  /* by this process */
    int rounds;
    float final_dice;    /* the final global's validation Dice */
    uint64_t bytes_down, bytes_up; /* model traffic of this process */
    double seconds;
} dk_fed_site_summary;

typedef struct dk_fed_site_options {
    dk_fed_client client;      /* server, federation, fetch options */
    dk_student_run run;        /* data, source, config, terms, seed, out_path */
    long local_steps;          /* per round */
    bool float32_global;       /* download the float32 checkpoint each round (default float16) */
    bool float32_update;       /* send float32 deltas (default float16) */
    bool stored_update;        /* send the .npz uncompressed (default deflated) */
    double poll_min_s, poll_max_s; /* waiting: first and longest pause between status polls */
    double wait_grace_s;       /* a round may stay open deadline_seconds + this long */
    void (*on_note)(const char *line, void *ctx);                 /* joined, resumed, ... */
    void (*on_round)(const dk_fed_round_report *r, void *ctx);
    void (*on_wait)(const dk_fed_wait_report *w, void *ctx);      /* after every poll */
    void *ctx;
} dk_fed_site_options;

dk_fed_site_options dk_fed_site_options_default(void);

/* Run the site until the federation finishes (needs dk_fetch_global_init). */
dk_status dk_fed_site_run(dk_fed_site_options *o, dk_fed_site_summary *sum, dk_err *err);

/* "<out>.fedsite.h5" into buf. */
void dk_fed_site_state_path(const char *out, char *buf, size_t cap);

#endif
