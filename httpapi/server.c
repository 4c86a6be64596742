/* server.c: the daemon's life: load the teacher card, tokens and stores,
 * start libmicrohttpd (a pool of epoll threads), hand each request to the
 * router, record it in the metrics when it completes, and stop gracefully. */
#define _GNU_SOURCE
#include "httpapi/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpapi/router.h"
#include "httpapi/server_internal.h"

#define MAX_THREADS 64

static dk_status parse_listen(const char *listen, struct sockaddr_in *addr, dk_err *err)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    if (!colon || (size_t)(colon - listen) >= sizeof host || !colon[1] || *end || port < 0 ||
        port > 65535)
        return dk_err_set(err, DK_EINVAL, "--listen '%s' is not HOST:PORT (e.g. 127.0.0.1:8080)",
                          listen);
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
        return dk_err_set(err, DK_EINVAL, "--listen '%s': '%s' is not an IPv4 address", listen,
                          host);
    addr->sin_port = htons((uint16_t)port);
    return DK_OK;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* The body a request may send: uploads (--max-upload), a federation member's update
 * (--fed-max-update), anything else (--max-body). */
static unsigned long body_limit(const dk_server *s, struct MHD_Connection *conn, const char *url)
{
    return dk_route_takes_upload(url) ? s->max_upload : dk_fed_body_limit(s, conn, url);
}

static enum MHD_Result too_large(dk_request *req, const char *url)
{
    req->path = url;
    return dk_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "the request body exceeds %llu bytes (%s)",
                      (unsigned long long)req->body_max,
                      dk_route_takes_upload(url) ? "the server's --max-upload"
                                                 : "the server's --max-body, or --fed-max-update "
                                                   "for a federation member's update");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    dk_server *s = cls;
    dk_request *req = *con_cls;
    if (!req) { /* first call: headers only */
        req = calloc(1, sizeof *req);
        if (!req) return MHD_NO;
        req->server = s, req->conn = conn;
        req->body_max = body_limit(s, conn, url);
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        atomic_fetch_add(&s->in_flight, 1);
        *con_cls = req;
        /* refuse an announced oversize body before reading any of it */
        const char *length =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull(length, NULL, 10) > req->body_max) return too_large(req, url);
        return MHD_YES;
    }
    if (req->status) { /* answered already (413): drop what still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) { /* keep the body (at most max_body bytes) for the route */
        if (req->body_in + *upload_size > req->body_max) return too_large(req, url);
        char *grown = realloc(req->body, req->body_in + *upload_size + 1);
        if (!grown) return MHD_NO;
        memcpy(grown + req->body_in, upload, *upload_size);
        req->body = grown;
        req->body_in += *upload_size;
        req->body[req->body_in] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    return dk_route(req, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    dk_server *s = cls;
    dk_request *req = *con_cls;
    if (!req) return;
    /* a body cut short by the client still counts what was queued */
    dk_metrics_record(s->metrics, req->route, req->status, seconds_since(&req->start), req->bytes);
    atomic_fetch_sub(&s->in_flight, 1);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

/* A job's store is complete: verify it and put it in the catalogue. */
static dk_status job_finished(const char *profile, void *ctx, dk_err *err)
{
    dk_server *s = ctx;
    return dk_stores_add(s->stores, profile, err);
}

static dk_status load(dk_server *s, const dk_server_config *c, dk_err *err)
{
    snprintf(s->version, sizeof s->version, "%s", c->version ? c->version : "unknown");
    dk_err e = {0}; /* the pointer-returning opens below report here (err may be NULL) */
    dk_h5_lock();
    s->teacher_card = dk_teacher_card_load(c->teacher_path, s->version, &e);
    dk_h5_unlock();
    if (!s->teacher_card) return dk_err_prefix(err, dk_err_forward(err, &e), "--teacher");
    if (!(s->auth = dk_auth_open(c->tokens_path, &e)))
        return dk_err_prefix(err, dk_err_forward(err, &e), "--tokens");
    if (!(s->metrics = dk_metrics_new())) return dk_err_set(err, DK_ENOMEM, "out of memory");
    if (!(s->stores = dk_stores_open(c->store_dir, &e)))
        return dk_err_prefix(err, dk_err_forward(err, &e), "--store");
    double rate = c->rate ? c->rate : DK_SERVER_RATE, burst = c->burst ? c->burst : DK_SERVER_BURST;
    if (!(s->ratelimit = dk_ratelimit_new(rate, burst)))
        return dk_err_set(err, DK_ENOMEM, "out of memory");
    s->max_body = c->max_body ? c->max_body : DK_SERVER_MAX_BODY;
    s->max_upload = c->max_upload ? c->max_upload : DK_SERVER_MAX_UPLOAD;
    s->can_precompute = c->data_path != NULL;
    if (c->binary) {
        dk_jobs_config jc = {.store_dir = c->store_dir,
                             .binary = c->binary,
                             .teacher = c->teacher_path,
                             .data = c->data_path ? c->data_path : "",
                             .queue_max = c->job_queue,
                             .on_finished = job_finished,
                             .ctx = s};
        if (!(s->jobs = dk_jobs_open(&jc, &e)))
            return dk_err_prefix(err, dk_err_forward(err, &e), "jobs");
    }
    if (c->federation_dir) {
        dk_fed_service_config fc = {c->federation_dir, c->fed_student, c->fed_tick_seconds};
        if (!(s->fed = dk_fed_service_open(&fc, &e)))
            return dk_err_prefix(err, dk_err_forward(err, &e), "--federation");
        s->fed_max_update = c->fed_max_update ? c->fed_max_update : DK_SERVER_FED_MAX_UPDATE;
    }
    return DK_OK;
}

static void free_server(dk_server *s)
{
    dk_jobs_close(s->jobs); /* before the stores its worker adds to */
    dk_fed_service_close(s->fed);
    dk_stores_close(s->stores);
    dk_metrics_free(s->metrics);
    dk_ratelimit_free(s->ratelimit);
    dk_auth_close(s->auth);
    free(s->teacher_card);
    free(s);
}

dk_server *dk_server_start(const dk_server_config *c, dk_err *err)
{
    struct sockaddr_in addr;
    int threads = c->threads ? c->threads : 2;
    if (threads < 1 || threads > MAX_THREADS) {
        dk_err_set(err, DK_EINVAL, "--threads %d is not in 1..%d", threads, MAX_THREADS);
        return NULL;
    }
    if (parse_listen(c->listen, &addr, err)) return NULL;
    dk_server *s = calloc(1, sizeof *s);
    if (!s) {
        dk_err_set(err, DK_ENOMEM, "out of memory");
        return NULL;
    }
    if (load(s, c, err) || dk_stores_start_verify(s->stores, err)) {
        free_server(s);
        return NULL;
    }
    s->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT,
        c->max_connections ? c->max_connections : DK_SERVER_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, c->timeout ? c->timeout : DK_SERVER_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK,
        dk_route_unescape, NULL, MHD_OPTION_END);
    if (!s->daemon) {
        dk_err_set(err, DK_EIO, "cannot listen on %s (in use, or not an address of this host?)",
                   c->listen);
        free_server(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : ntohs(addr.sin_port);
    return s;
}

int dk_server_port(const dk_server *s)
{
    return s->port;
}

void dk_server_stop(dk_server *s, double grace_seconds)
{
    if (!s) return;
    MHD_socket listener = MHD_quiesce_daemon(s->daemon); /* no new connections */
    if (listener != MHD_INVALID_SOCKET) close(listener);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&s->in_flight) > 0 && seconds_since(&t0) < grace_seconds)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    MHD_stop_daemon(s->daemon);
    free_server(s);
}
