/* fed_client.h: a site's requests to the federation coordinator of `dualkd serve`
 * (docs/federation.md, "Over HTTP"): join, status, the global student (float16
 * .npz or float32 checkpoint) and sending an update. Over fetch.h's libcurl
 * machinery: transport failures, 429 and 5xx are retried with back-off and
 * jitter; every other refusal becomes an error naming the URL and the server's
 * detail, except the 409s a site must read as outcomes (dk_fed_client_send). */
#ifndef DK_FED_CLIENT_H
#define DK_FED_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "student/fetch.h"

typedef struct dk_fed_client {
    const char *server;     /* "http://host:port" (a trailing '/' is ignored) */
    const char *federation; /* its name */
    dk_fetch_options fetch; /* token, retries, timeouts */
    uint64_t bytes_down;    /* global downloads (200 bodies) so far */
    uint64_t bytes_up;      /* update bodies sent so far */
    char site[128];         /* the token's site, as the join answered */
} dk_fed_client;

/* What GET /v1/federation/{name} says. */
typedef struct dk_fed_status {
    bool finished;
    int rounds, quorum, members;
    int current_round; /* the open round (the last one once finished) */
    int reported;      /* accepted updates in the current round */
    int64_t deadline_seconds, created_at;
    char *architecture; /* the student's network JSON; caller frees with dk_fed_status_release */
} dk_fed_status;

/* POST .../join (idempotent); notes the site's name in c->site. */
dk_status dk_fed_client_join(dk_fed_client *c, dk_err *err);
/* GET .../{name}; s is released before being filled. */
dk_status dk_fed_client_status(dk_fed_client *c, dk_fed_status *s, dk_err *err);
void dk_fed_status_release(dk_fed_status *s);

/* A downloaded global. */
typedef struct dk_fed_global {
    int round;          /* its Dualkd-Round */
    char etag[128];     /* quotes kept */
    bool not_modified;  /* 304 to if_none_match: body NULL */
    void *body;         /* caller frees with free() */
    size_t len;
} dk_fed_global;

/* GET .../global?dtype=f2 (half = true: the float16 .npz) or the float32
 * checkpoint, at most max bytes, with If-None-Match (may be NULL). */
dk_status dk_fed_client_global(dk_fed_client *c, bool half, const char *if_none_match,
                               size_t max, dk_fed_global *g, dk_err *err);

typedef enum dk_fed_sent {
    DK_FED_SENT_ACCEPTED,  /* 202 */
    DK_FED_SENT_DUPLICATE, /* 409 "an update counts once": an earlier copy was recorded */
    DK_FED_SENT_TOO_LATE,  /* 409 otherwise: the round closed (or the federation finished) */
} dk_fed_sent;

/* POST .../rounds/{round}/updates?labelled=N&val_dice=D (val_dice < 0: not sent)
 * with the .npz body. *detail (200 bytes) gets the server's words for a 409. Any
 * other refusal (400, 403, 413, 422) is an error. */
dk_status dk_fed_client_send(dk_fed_client *c, int round, const void *npz, size_t len,
                             long labelled, double val_dice, dk_fed_sent *sent, char *detail,
                             dk_err *err);

#endif
