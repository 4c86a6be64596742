/* server.h: `dualkd serve` as a library: the HTTP API (docs/api.md) over one
 * teacher checkpoint, a directory of target stores and a token file.
 *
 * Thread model (docs/api.md, "Threads"): libmicrohttpd with its own pool of
 * `threads` epoll threads (default 2, one per core), each multiplexing many
 * connections; HDF5 reads are serialised under one process-wide mutex (Debian's
 * HDF5 is not thread-safe) and copy what a request needs into its response
 * buffer, which is then sent without the lock and without a second copy. */
#ifndef DK_SERVER_H
#define DK_SERVER_H

#include "distill/err.h"

typedef struct dk_server_config {
    const char *teacher_path; /* checkpoint with a teacher card (dualkd teacher train) */
    const char *store_dir;    /* holds <profile>.h5 target stores */
    const char *tokens_path;  /* token file (httpapi/tokens.h); re-read when it changes */
    const char *listen;       /* "127.0.0.1:8080"; port 0 picks a free one */
    int threads;              /* polling threads; 0 = 2 */
    const char *version;      /* reported in the model card; NULL = "unknown" */
    /* Background jobs: binary runs them (POST /v1/distill answers 503 without it);
     * POST /v1/profiles also needs data_path. */
    const char *data_path; /* the repository dataset precompute reads */
    const char *binary;    /* the dualkd executable (runs `teacher precompute`) */
    int job_queue;         /* queued jobs at most [8] */
    /* Limits; 0 takes the default in brackets. */
    unsigned long max_body;   /* request body bytes [1 MiB]; more is 413 */
    unsigned long max_upload; /* body bytes of POST /v1/distill and /v1/evaluate [256 MiB] */
    unsigned max_connections; /* open connections [256]; more are refused at accept */
    unsigned timeout;         /* seconds a connection may sit idle [60] */
    double rate, burst; /* requests/s per token on /v1 and its burst [20, 40]; < 0: no limit */
    /* Federation (docs/federation.md): the coordinator's directory, or NULL for none. */
    const char *federation_dir;
    const char *fed_student;      /* initial student for POST /v1/federation (NULL: 503) */
    double fed_tick_seconds;      /* how often deadlines are checked [1] */
    unsigned long fed_max_update; /* update body bytes [256 MiB] */
} dk_server_config;

#define DK_SERVER_MAX_BODY        (1ul << 20)
#define DK_SERVER_MAX_UPLOAD      (256ul << 20)
#define DK_SERVER_MAX_CONNECTIONS 256
#define DK_SERVER_TIMEOUT         60
#define DK_SERVER_RATE            20.0
#define DK_SERVER_BURST           40.0
#define DK_SERVER_FED_MAX_UPDATE  (256ul << 20)

typedef struct dk_server dk_server;

/* Load the teacher card, the token file and the stores (verified in the
 * background: /readyz says when), and start listening. Caller stops with
 * dk_server_stop. NULL on failure. */
dk_server *dk_server_start(const dk_server_config *c, dk_err *err);

/* The TCP port listened on (the chosen one when the config asked for 0). */
int dk_server_port(const dk_server *s);

/* Stop accepting connections, let requests in flight finish (waiting at most
 * grace_seconds), stop the threads and free s. */
void dk_server_stop(dk_server *s, double grace_seconds);

#endif
