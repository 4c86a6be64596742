/* router.h: the route table (method, path shape, scope) and dispatch: path
 * safety checks, authentication, 404/405, then the handler. Route indexes
 * label the metrics. */
#ifndef DK_HTTPAPI_ROUTER_H
#define DK_HTTPAPI_ROUTER_H

#include "httpapi/request.h"

enum {
    DK_ROUTE_UNMATCHED,
    DK_ROUTE_HEALTHZ,
    DK_ROUTE_READYZ,
    DK_ROUTE_METRICS,
    DK_ROUTE_TEACHER,
    DK_ROUTE_PROFILES,
    DK_ROUTE_TARGETS,
    DK_ROUTE_TARGET,
    DK_ROUTE_JOB,
    DK_ROUTE_FED,
    DK_ROUTE_FED_ONE,
    DK_ROUTE_FED_STATUS,
    DK_ROUTE_FED_JOIN,
    DK_ROUTE_FED_GLOBAL,
    DK_ROUTE_FED_UPDATES,
    DK_ROUTE_DISTILL,
    DK_ROUTE_EVALUATE,
    DK_ROUTE_JOB_TARGET,
    DK_ROUTE_COUNT
};

/* "/v1/targets/{sample}/{kind}", ... (static storage). */
const char *dk_route_name(int route);

/* Path parameters of a matched route (borrowed from the request's path copy). */
typedef struct dk_route_params {
    char sample[128]; /* or the job id, or the federation */
    char kind[96];    /* "response", "features/bottleneck", ...; or the round */
} dk_route_params;

/* True for the paths whose POST body is an uploaded array (bounded by
 * --max-upload instead of --max-body). */
bool dk_route_takes_upload(const char *path);

/* Answer req (method, decoded path). */
enum MHD_Result dk_route(dk_request *req, const char *method, const char *path);

/* A decoder for MHD_OPTION_UNESCAPE_CALLBACK: %XX decoding in which an encoded
 * NUL or control byte becomes DEL (0x7f), so the router refuses it instead of
 * the string ending early. */
size_t dk_route_unescape(void *cls, struct MHD_Connection *c, char *s);

/* Handlers (routes_*.c). */
enum MHD_Result dk_handle_healthz(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_readyz(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_metrics(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_teacher(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_profiles(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_targets(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_target(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_profiles_post(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_job(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_distill(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_evaluate(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_job_target(dk_request *req, const dk_route_params *p);
/* routes_federation.c */
enum MHD_Result dk_handle_fed_create(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_fed_status(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_fed_join(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_fed_global(dk_request *req, const dk_route_params *p);
enum MHD_Result dk_handle_fed_update(dk_request *req, const dk_route_params *p);
/* The request body bound for url: --fed-max-update for an update from a token
 * with the federation scope, else --max-body. */
unsigned long dk_fed_body_limit(const dk_server *s, struct MHD_Connection *conn, const char *url);

#endif
