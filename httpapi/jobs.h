/* jobs.h: background teacher jobs: precompute for profiles registered over
 * HTTP (POST /v1/profiles) and distill of one uploaded volume (POST
 * /v1/distill): a bounded queue, one worker thread (one teacher forward at a
 * time), and a record per job on disk so a restart resumes what was queued or
 * running.
 *
 * A job runs `dualkd teacher precompute` as a child process (its own HDF5
 * library state, so the server's HDF5 lock is never held for minutes) with
 * --resume when a partial store is there, and reads its per-sample progress
 * lines from the child's stderr. When the child succeeds, on_finished adds the
 * store to the catalogue (opened and verified); only then is the job done.
 * Records live in "<store dir>/jobs/<id>.json" (+ "<id>.profile.json"), each
 * written to a temporary name, fsync'ed and renamed. One process at a time
 * runs the jobs of a store directory (a flock on "jobs/.runner.lock"): a
 * replica or a restarted server waits for it before running anything.
 *
 * A distill job's files live in "<store dir>/jobs/<id>.d/": input.h5 (the
 * uploaded volume as a one-volume dataset), profile.json (a profile at the
 * volume's own spacing, so precompute serves it as a site's scan) and, once
 * done, the one-sample store <profile>.h5. When the record table is full the
 * oldest finished distill job (record and directory) makes room. */
#ifndef DK_HTTPAPI_JOBS_H
#define DK_HTTPAPI_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/err.h"

#define DK_JOBS_MAX 256 /* jobs remembered, finished ones included */

typedef enum dk_job_state {
    DK_JOB_QUEUED,
    DK_JOB_RUNNING,
    DK_JOB_DONE,
    DK_JOB_FAILED
} dk_job_state;

/* "queued", "running", "done", "failed" (static storage). */
const char *dk_job_state_name(dk_job_state s);

typedef struct dk_job_info {
    char id[20];
    char kind[16]; /* "precompute" or "distill" */
    char profile[64];
    char site[64]; /* who registered it */
    dk_job_state state;
    int done, total;                             /* samples; total 0 until the child reports */
    double eta_seconds;                          /* < 0 until known */
    char error[512];                             /* why it failed */
    char created[32], started[32], finished[32]; /* ISO 8601 UTC, "" when not yet */
} dk_job_info;

typedef struct dk_jobs_config {
    const char *store_dir;      /* stores go here; records in store_dir/jobs/ */
    const char *binary;         /* the dualkd executable that runs `teacher precompute` */
    const char *teacher, *data; /* checkpoint and repository dataset */
    int queue_max;              /* queued jobs accepted at once */
    /* Called on the worker thread when a child finished the store of profile:
     * DK_OK makes the job done; otherwise it fails with err's message. */
    dk_status (*on_finished)(const char *profile, void *ctx, dk_err *err);
    void *ctx;
} dk_jobs_config;

typedef struct dk_jobs dk_jobs;

/* Load the records in store_dir/jobs (queued and running ones are queued
 * again) and start the worker. Caller frees with dk_jobs_close. */
dk_jobs *dk_jobs_open(const dk_jobs_config *c, dk_err *err);
/* Stop the worker: a running child is stopped (its partial store stays) and
 * its job is recorded as queued again, for the next start. */
void dk_jobs_close(dk_jobs *j);

/* Queue a precompute of the profile (its validated JSON). DK_EMISMATCH when a
 * job for the profile is queued or running (*out is that job); DK_ELIMIT when
 * the queue or the record table is full. */
dk_status dk_jobs_submit(dk_jobs *j, const char *profile, const char *profile_json,
                         const char *site, dk_job_info *out, dk_err *err);
/* A new job id (16 hex digits) into out. */
void dk_jobs_new_id(char out[20]);
/* "<store dir>/jobs/<id>.d" into buf: where a distill job's files go. */
void dk_jobs_dir_of(const dk_jobs *j, const char *id, char *buf, size_t cap);
/* Queue a distill job whose directory (dk_jobs_dir_of) holds input.h5 and
 * profile.json for a profile called profile. DK_ELIMIT when the queue is full
 * (the caller removes the directory). */
dk_status dk_jobs_submit_distill(dk_jobs *j, const char *id, const char *profile, const char *site,
                                 dk_job_info *out, dk_err *err);
/* Write text to path atomically (a temporary name, fsync, rename). */
dk_status dk_jobs_write_file(const char *path, const char *text, dk_err *err);
/* Remove a job directory and what it holds (one level of files, plus the
 * store's partial directory). */
void dk_jobs_remove_dir(const char *dir);

/* The job with this id into *out; false when there is none. */
bool dk_jobs_get(dk_jobs *j, const char *id, dk_job_info *out);
void dk_jobs_counts(dk_jobs *j, int *queued, int *running);
/* True when no job can be queued now (the queue holds queue_max). */
bool dk_jobs_queue_full(dk_jobs *j);

#endif
