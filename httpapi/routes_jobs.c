/* routes_jobs.c: POST /v1/profiles (register a site profile: validate it,
 * queue its precompute, 202 with the job's Location) and GET /v1/jobs/{id}
 * (state, samples done of total, ETA, failure reason, where the result is). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/profile.h"
#include "httpapi/router.h"
#include "httpapi/server_internal.h"

static bool is_distill(const dk_job_info *job)
{
    return strcmp(job->kind, "distill") == 0;
}

static json_t *job_json(const dk_job_info *job)
{
    char location[64], result[128];
    snprintf(location, sizeof location, "/v1/jobs/%s", job->id);
    if (is_distill(job))
        snprintf(result, sizeof result, "/v1/jobs/%s/targets/response", job->id);
    else
        snprintf(result, sizeof result, "/v1/targets?profile=%s", job->profile);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:s, s:s?, s:s?}", "id", job->id, "kind",
                  job->kind, "profile", job->profile, "site", job->site, "state",
                  dk_job_state_name(job->state), "samples", "done", job->done, "total", job->total,
                  "created", job->created, "started", job->started[0] ? job->started : NULL,
                  "finished", job->finished[0] ? job->finished : NULL);
    if (!o) return NULL;
    json_object_set_new(o, "eta_seconds",
                        job->eta_seconds >= 0 ? json_real(job->eta_seconds) : json_null());
    json_object_set_new(o, "location", json_string(location));
    if (job->state == DK_JOB_FAILED) json_object_set_new(o, "error", json_string(job->error));
    if (job->state == DK_JOB_DONE) json_object_set_new(o, "result", json_string(result));
    return o;
}

static enum MHD_Result answer_job(dk_request *req, unsigned status, const dk_job_info *job)
{
    char location[64];
    snprintf(location, sizeof location, "/v1/jobs/%s", job->id);
    json_t *o = job_json(job);
    if (o && is_distill(job) && job->state == DK_JOB_DONE)
        json_object_set_new(o, "arrays", dk_distill_arrays_json(req->server, job));
    return dk_respond_json_with(req, status, o, JSON_INDENT(2) | JSON_REAL_PRECISION(4),
                                "application/json", MHD_HTTP_HEADER_LOCATION, location);
}

/* Validate the body as a profile; false after answering. */
static bool parse_profile(dk_request *req, dk_profile *p, enum MHD_Result *answered)
{
    const char *type = dk_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!type || strncmp(type, "application/json", 16) != 0) {
        *answered = dk_problem(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                               "send the profile as Content-Type: application/json (got '%.60s')",
                               type ? type : "none");
        return false;
    }
    dk_err err = {0};
    if (!req->body || strlen(req->body) != req->body_in) {
        *answered =
            dk_problem(req, MHD_HTTP_BAD_REQUEST,
                       "the body must be a profile as JSON (docs/profiles.md) without NUL bytes");
        return false;
    }
    if (dk_profile_from_json_text(req->body, "request body", p, &err)) {
        *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
        return false;
    }
    if (!dk_name_is_safe(p->name)) {
        *answered =
            dk_problem(req, MHD_HTTP_BAD_REQUEST,
                       "request body: field 'name': '%s' is not [A-Za-z0-9._-]{1,63}", p->name);
        return false;
    }
    return true;
}

enum MHD_Result dk_handle_profiles_post(dk_request *req, const dk_route_params *params)
{
    dk_server *s = req->server;
    dk_profile p;
    enum MHD_Result answered;
    if (!parse_profile(req, &p, &answered)) return answered;
    if (!dk_token_grants(&req->who, p.name))
        return dk_problem(req, MHD_HTTP_FORBIDDEN,
                          "the token of site '%s' is not granted profile '%s'", req->who.site,
                          p.name);
    if (!s->jobs || !s->can_precompute)
        return dk_problem(
            req, MHD_HTTP_SERVICE_UNAVAILABLE,
            "this server was started without --data, so it cannot precompute profiles");
    dk_store_state state = DK_STORE_READY;
    if (dk_stores_find(s->stores, p.name, &state) || state != DK_STORE_READY)
        return dk_problem(req, MHD_HTTP_CONFLICT, "profile '%s' exists already (GET /v1/profiles)",
                          p.name);
    char *json = dk_profile_to_json(&p);
    if (!json) return MHD_NO;
    dk_job_info job;
    dk_err err = {0};
    dk_status st = dk_jobs_submit(s->jobs, p.name, json, req->who.site, &job, &err);
    free(json);
    if (st == DK_EMISMATCH) {
        char location[64];
        snprintf(location, sizeof location, "/v1/jobs/%s", job.id);
        return dk_problem_header(req, MHD_HTTP_CONFLICT, MHD_HTTP_HEADER_LOCATION, location,
                                 err.msg);
    }
    if (st == DK_ELIMIT)
        return dk_problem_header(req, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER,
                                 "60", err.msg);
    if (st) return dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
    return answer_job(req, MHD_HTTP_ACCEPTED, &job);
}

enum MHD_Result dk_handle_job(dk_request *req, const dk_route_params *params)
{
    dk_job_info job;
    if (!req->server->jobs || !dk_jobs_get(req->server->jobs, params->sample, &job) ||
        (is_distill(&job) ? strcmp(job.site, req->who.site) != 0
                          : !dk_token_grants(&req->who, job.profile)))
        return dk_problem(req, MHD_HTTP_NOT_FOUND, "no job '%.40s' that this token may see",
                          params->sample);
    return answer_job(req, MHD_HTTP_OK, &job);
}
