/* request.h: one HTTP request as the handlers see it, and the ways to answer
 * it (respond.c: JSON, text, any MHD response; problem.c: RFC 7807 errors).
 * Every answer goes through dk_respond, which records status and body bytes
 * for the metrics. */
#ifndef DK_HTTPAPI_REQUEST_H
#define DK_HTTPAPI_REQUEST_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "httpapi/tokens.h"

typedef struct dk_server dk_server;

typedef struct dk_request {
    dk_server *server;
    struct MHD_Connection *conn;
    const char *path; /* decoded path, borrowed from MHD for the request */
    bool head;        /* HEAD: headers only */
    struct timespec start;
    int route;          /* router.h index, for the metrics */
    unsigned status;    /* the status answered */
    uint64_t bytes;     /* body bytes answered */
    uint64_t body_in;   /* bytes of request body received */
    uint64_t body_max;  /* bytes of request body accepted on this route */
    char *body;         /* the body, NUL-terminated (owned; NULL when none) */
    dk_token_entry who; /* the caller once authenticated */
} dk_request;

/* A query argument (decoded), or NULL. Borrowed for the request. */
const char *dk_request_arg(const dk_request *req, const char *name);
/* A request header, or NULL. Borrowed for the request. */
const char *dk_request_header(const dk_request *req, const char *name);

/* Queue r (destroyed here) with status; body_bytes is what it will send. */
enum MHD_Result dk_respond(dk_request *req, unsigned status, struct MHD_Response *r,
                           uint64_t body_bytes);
/* body is stolen (decref'ed here); etag may be NULL. Content-Type application/json. */
enum MHD_Result dk_respond_json(dk_request *req, unsigned status, json_t *body, const char *etag);
/* The general form: body (stolen) dumped with these jansson flags, sent as content_type
 * with one extra header (header NULL: none). */
enum MHD_Result dk_respond_json_with(dk_request *req, unsigned status, json_t *body, size_t flags,
                                     const char *content_type, const char *header,
                                     const char *value);
/* text is copied. */
enum MHD_Result dk_respond_text(dk_request *req, unsigned status, const char *content_type,
                                const char *text);
/* application/problem+json with title from the status and this detail. */
enum MHD_Result dk_problem(dk_request *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with one extra header (header NULL: none). */
enum MHD_Result dk_problem_header(dk_request *req, unsigned status, const char *header,
                                  const char *value, const char *detail);
/* 405 with Allow: allow. */
enum MHD_Result dk_problem_method(dk_request *req, const char *method, const char *allow);
/* 401 with WWW-Authenticate: Bearer. */
enum MHD_Result dk_problem_unauthorized(dk_request *req, const char *detail);

/* True when an If-None-Match header value matches etag (or is "*"). */
bool dk_etag_matches(const char *if_none_match, const char *etag);

#endif
