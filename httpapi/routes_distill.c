/* routes_distill.c: POST /v1/distill?spacing=Z,Y,X (one uploaded volume,
 * .npy float32/int16/uint16, z y x, voxel size in mm) queued as a distill job
 * (202 + Location: /v1/jobs/{id}; 429 with Retry-After when the queue is
 * full), and GET /v1/jobs/{id}/targets/{kind} (the job's targets as .npy).
 *
 * The job is the precompute a site would run on its own scan: the volume is
 * written as a one-volume dataset with a profile at its own spacing, so the
 * child `dualkd teacher precompute` (jobs.h) serves it as it is and brings the
 * teacher's targets to exactly its grid. The teacher's forward never runs in
 * the server's process; results are read from the job's one-sample store. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/dataset.h"
#include "datasets/profile.h"
#include "distill/half.h"
#include "httpapi/router.h"
#include "httpapi/server_internal.h"
#include "httpapi/upload.h"

#define RETRY_AFTER "30"
/* Voxels of one uploaded volume: an OAI DESS volume (160 x 384 x 384) is 23.6 M;
 * the child's teacher forward needs a few GiB per 10 M voxels. */
#define MAX_VOXELS ((size_t)1 << 26)

/* The upload as a float32 volume (ints widened); false after answering 400. */
static bool to_volume(dk_request *req, const dk_npy_array *a, const double spacing[3], dk_volume *v,
                      enum MHD_Result *answered)
{
    int dims[3] = {(int)a->shape[0], (int)a->shape[1], (int)a->shape[2]};
    if (dk_volume_alloc(v, "upload", dims, false, NULL)) {
        *answered = MHD_NO;
        return false;
    }
    memcpy(v->spacing, spacing, sizeof v->spacing);
    snprintf(v->source, sizeof v->source, "POST /v1/distill");
    for (size_t k = 0; k < a->numel; k++) {
        float x = a->dtype == DK_NPY_F4   ? ((const float *)a->data)[k]
                  : a->dtype == DK_NPY_I2 ? ((const int16_t *)a->data)[k]
                                          : ((const uint16_t *)a->data)[k];
        if (!isfinite(x)) {
            *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                                   "the volume holds a NaN or infinity at flat index %zu; send "
                                   "finite intensities",
                                   k);
            dk_volume_release(v);
            return false;
        }
        v->image[k] = x;
    }
    return true;
}

/* The teacher's classes from its model card (the dataset's root attribute). */
static dk_status teacher_classes(const dk_server *s, dk_classes *c, dk_err *err)
{
    json_t *card = json_loads(s->teacher_card, 0, NULL);
    json_t *names = json_object_get(card, "classes");
    memset(c, 0, sizeof *c);
    size_t n = json_array_size(names);
    for (size_t i = 0; i < n && i < DK_MAX_CLASSES; i++)
        snprintf(c->names[i], sizeof c->names[i], "%s",
                 json_string_value(json_array_get(names, i)));
    c->count = (int)(n < DK_MAX_CLASSES ? n : DK_MAX_CLASSES);
    json_decref(card);
    return c->count >= 2 ? DK_OK : dk_err_set(err, DK_EFORMAT, "the model card names no classes");
}

/* input.h5 and profile.json of the job in dir. */
static dk_status write_job_files(const dk_server *s, const char *dir, const char *profile,
                                 const dk_volume *v, dk_err *err)
{
    dk_classes classes;
    dk_status st = teacher_classes(s, &classes, err);
    if (st) return st;
    if (mkdir(dir, 0755) != 0)
        return dk_err_set(err, DK_EIO, "cannot create '%s': %s", dir, strerror(errno));
    char path[4400];
    snprintf(path, sizeof path, "%s/input.h5", dir);
    dk_err e = {0}; /* the pointer-returning open reports here */
    dk_h5_lock();
    dk_dataset_writer *w = dk_dataset_writer_open(path, &classes, &e);
    if (!w)
        st = dk_err_forward(err, &e);
    else if ((st = dk_dataset_writer_add(w, v, err)))
        dk_dataset_writer_abort(w);
    else
        st = dk_dataset_writer_commit(w, err);
    dk_h5_unlock();
    if (st) return st;
    dk_profile p = {.slice_thickness = v->spacing[0], .contrast = "dess"};
    snprintf(p.name, sizeof p.name, "%s", profile);
    memcpy(p.spacing, v->spacing, sizeof p.spacing);
    char *json = dk_profile_to_json(&p);
    if (!json) return dk_err_set(err, DK_ENOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/profile.json", dir);
    st = dk_jobs_write_file(path, json, err);
    free(json);
    return st;
}

/* 202 with Location, as GET /v1/jobs/{id} answers (routes_jobs.c). */
static enum MHD_Result accepted(dk_request *req, const dk_job_info *job)
{
    char location[64];
    snprintf(location, sizeof location, "/v1/jobs/%s", job->id);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", job->id, "kind", job->kind,
                          "site", job->site, "state", dk_job_state_name(job->state), "created",
                          job->created, "location", location);
    return dk_respond_json_with(req, MHD_HTTP_ACCEPTED, o, JSON_INDENT(2), "application/json",
                                MHD_HTTP_HEADER_LOCATION, location);
}

static enum MHD_Result queue_full(dk_request *req, const char *why)
{
    char detail[600];
    snprintf(detail, sizeof detail, "%s; the teacher runs one job at a time: retry later", why);
    return dk_problem_header(req, MHD_HTTP_TOO_MANY_REQUESTS, MHD_HTTP_HEADER_RETRY_AFTER,
                             RETRY_AFTER, detail);
}

enum MHD_Result dk_handle_distill(dk_request *req, const dk_route_params *params)
{
    dk_server *s = req->server;
    if (!s->jobs)
        return dk_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "this server runs no teacher jobs (started without its dualkd binary)");
    double spacing[3];
    const char *sp = dk_request_arg(req, "spacing");
    if (!sp || !dk_upload_parse_spacing(sp, spacing))
        return dk_problem(req, MHD_HTTP_BAD_REQUEST,
                          "the query parameter 'spacing' must be the voxel size in mm as Z,Y,X "
                          "(e.g. spacing=3.3,0.31,0.31; each in (0, 100]); got '%.60s'",
                          sp ? sp : "none");
    if (dk_jobs_queue_full(s->jobs)) return queue_full(req, "the teacher's job queue is full");
    static const dk_npy_dtype kinds[] = {DK_NPY_F4, DK_NPY_I2, DK_NPY_U2};
    dk_npy_array a;
    enum MHD_Result answered;
    if (!dk_upload_npy(req, "the volume", kinds, 3, &a, &answered)) return answered;
    if (a.numel > MAX_VOXELS) {
        dk_npy_array_free(&a);
        return dk_problem(req, MHD_HTTP_CONTENT_TOO_LARGE,
                          "the volume has %zu voxels; this server distills at most %zu at once",
                          a.numel, MAX_VOXELS);
    }
    dk_volume v;
    bool ok = to_volume(req, &a, spacing, &v, &answered);
    dk_npy_array_free(&a);
    if (!ok) return answered;
    char id[20], dir[4300], profile[64];
    dk_jobs_new_id(id);
    dk_jobs_dir_of(s->jobs, id, dir, sizeof dir);
    snprintf(profile, sizeof profile, "distill-%s", id);
    dk_err err = {0};
    dk_job_info job;
    dk_status st = write_job_files(s, dir, profile, &v, &err);
    dk_volume_release(&v);
    if (!st) st = dk_jobs_submit_distill(s->jobs, id, profile, req->who.site, &job, &err);
    if (st) dk_jobs_remove_dir(dir);
    if (st == DK_ELIMIT) return queue_full(req, err.msg);
    if (st) return dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
    return accepted(req, &job);
}

/* ---- the job's targets ---- */

/* The distill job of this id that the caller's site submitted; false after 404. */
static bool own_job(dk_request *req, const char *id, dk_job_info *job, enum MHD_Result *answered)
{
    if (req->server->jobs && dk_jobs_get(req->server->jobs, id, job) &&
        strcmp(job->kind, "distill") == 0 && strcmp(job->site, req->who.site) == 0)
        return true;
    *answered = dk_problem(req, MHD_HTTP_NOT_FOUND,
                           "no distill job '%.40s' of site '%s' (POST /v1/distill makes one)", id,
                           req->who.site);
    return false;
}

/* Open the job's one-sample store; call under dk_h5_lock. NULL when it cannot. */
static dk_store *open_result(const dk_server *s, const dk_job_info *job, dk_err *err)
{
    char path[4400], dir[4300];
    dk_jobs_dir_of(s->jobs, job->id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s.h5", dir, job->profile);
    return dk_store_open(path, err);
}

json_t *dk_distill_arrays_json(dk_server *s, const dk_job_info *job)
{
    dk_h5_lock();
    dk_store *st = open_result(s, job, NULL);
    json_t *arrays = json_array();
    const dk_store_sample_info *si =
        st && dk_store_count(st) == 1 ? dk_store_sample_at(st, 0) : NULL;
    for (int k = 0; si && k < si->array_count; k++) {
        const dk_store_array_info *a = &si->arrays[k];
        json_t *shape = json_array();
        for (int d = 0; d < a->rank; d++)
            json_array_append_new(shape, json_integer(a->dims[d]));
        char location[160];
        snprintf(location, sizeof location, "/v1/jobs/%s/targets/%s", job->id, a->kind);
        json_array_append_new(arrays, json_pack("{s:s, s:s, s:o, s:s, s:s}", "kind", a->kind,
                                                "dtype", dk_store_dtype_npy(a->dtype), "shape",
                                                shape, "sha256", a->sha256, "location", location));
    }
    dk_store_close(st);
    dk_h5_unlock();
    return arrays;
}

/* The array kind of the job's sample as a whole .npy (float32 with dtype=f4);
 * NULL after answering. */
static char *read_npy(dk_request *req, const dk_job_info *job, const char *kind, bool as_f4,
                      size_t *total, char etag[80], enum MHD_Result *answered)
{
    dk_err err = {0};
    char *buf = NULL;
    dk_h5_lock();
    dk_store *st = open_result(req->server, job, &err);
    const dk_store_array_info *a = st ? dk_store_array_of(st, 0, kind) : NULL;
    if (a) {
        dk_npy_header h = {.dtype = as_f4                      ? DK_NPY_F4
                                    : a->dtype == DK_STORE_F16 ? DK_NPY_F2
                                    : a->dtype == DK_STORE_U8  ? DK_NPY_U1
                                                               : DK_NPY_F4,
                           .rank = a->rank};
        for (int d = 0; d < a->rank; d++)
            h.shape[d] = (size_t)a->dims[d];
        char prefix[DK_NPY_PREFIX_CAP];
        size_t len = 0;
        dk_status s = dk_npy_format_header(&h, prefix, sizeof prefix, &len, &err);
        if (!s && (buf = malloc(len + h.data_bytes))) {
            memcpy(buf, prefix, len);
            s = as_f4 ? dk_store_read(st, 0, kind, (float *)(buf + len), h.numel, &err)
                      : dk_store_read_raw(st, 0, kind, buf + len, h.data_bytes, &err);
            *total = len + h.data_bytes;
            snprintf(etag, 80, "\"%s%s\"", a->sha256, as_f4 ? "-f4" : "");
        }
        if (s || !buf) free(buf), buf = NULL;
        *answered = buf ? MHD_YES
                        : dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                     "reading '%s' of job %s failed: %s", kind, job->id,
                                     err.msg[0] ? err.msg : "out of memory");
    } else if (st) {
        *answered = dk_problem(req, MHD_HTTP_NOT_FOUND,
                               "job %s has no array '%.90s' (GET /v1/jobs/%s lists its arrays)",
                               job->id, kind, job->id);
    } else {
        *answered = dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
                               "the result of job %s cannot be opened: %s", job->id, err.msg);
    }
    dk_store_close(st);
    dk_h5_unlock();
    return buf;
}

enum MHD_Result dk_handle_job_target(dk_request *req, const dk_route_params *p)
{
    dk_job_info job;
    enum MHD_Result answered;
    if (!own_job(req, p->sample, &job, &answered)) return answered;
    if (job.state != DK_JOB_DONE)
        return dk_problem(req, MHD_HTTP_CONFLICT,
                          "job %s is %s%s%s: its targets exist once it is done (poll GET "
                          "/v1/jobs/%s)",
                          job.id, dk_job_state_name(job.state),
                          job.state == DK_JOB_FAILED ? ": " : "",
                          job.state == DK_JOB_FAILED ? job.error : "", job.id);
    const char *dtype = dk_request_arg(req, "dtype");
    if (dtype && strcmp(dtype, "f4") != 0)
        return dk_problem(
            req, MHD_HTTP_BAD_REQUEST,
            "dtype '%.20s' is not offered: omit it for the stored dtype, or ask for f4", dtype);
    size_t total = 0;
    char etag[80];
    char *buf = read_npy(req, &job, p->kind, dtype != NULL, &total, etag, &answered);
    if (!buf) return answered;
    struct MHD_Response *r = MHD_create_response_from_buffer(total, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-npy");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    dk_metrics_array_served(req->server->metrics);
    return dk_respond(req, MHD_HTTP_OK, r, total);
}
