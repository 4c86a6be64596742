/* routes_health.c: GET /healthz (the process answers), GET /readyz (the
 * teacher is loaded and every store verified; 503 naming the first store that
 * is not), GET /metrics. None needs a token: they say nothing about targets. */
#include <stdlib.h>

#include "httpapi/router.h"
#include "httpapi/server_internal.h"

enum MHD_Result dk_handle_healthz(dk_request *req, const dk_route_params *p)
{
    return dk_respond_json(req, MHD_HTTP_OK, json_pack("{s:s}", "status", "alive"), NULL);
}

enum MHD_Result dk_handle_readyz(dk_request *req, const dk_route_params *p)
{
    char reason[1024];
    dk_stores *st = req->server->stores;
    if (!dk_stores_ready(st, reason, sizeof reason))
        return dk_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s", reason);
    int ready, verifying, failed;
    dk_stores_counts(st, &ready, &verifying, &failed);
    return dk_respond_json(req, MHD_HTTP_OK,
                           json_pack("{s:s, s:i}", "status", "ready", "stores", ready), NULL);
}

enum MHD_Result dk_handle_metrics(dk_request *req, const dk_route_params *p)
{
    dk_metrics_gauges g = {.in_flight = atomic_load(&req->server->in_flight)};
    dk_stores_counts(req->server->stores, &g.stores_ready, &g.stores_verifying, &g.stores_failed);
    if (req->server->jobs) dk_jobs_counts(req->server->jobs, &g.jobs_queued, &g.jobs_running);
    char *text = dk_metrics_render(req->server->metrics, &g);
    if (!text) return MHD_NO;
    enum MHD_Result r =
        dk_respond_text(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
    return r;
}
