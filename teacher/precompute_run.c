/* precompute_run.c: `dualkd teacher precompute` over a dataset: every volume's
 * targets (precompute.h) into a target store, resumable (precompute_run.h). */
#include "teacher/precompute_run.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/dataset.h"
#include "distill/clock.h"
#include "teacher/content_hash.h"
#include "teacher/store.h"

/* The store's view of t; feature kinds ("features/<layer>") are written into kinds. */
static void store_sample_of(const dk_store_manifest *m, const dk_targets *t, dk_store_sample *s,
                            char kinds[][32])
{
    memset(s, 0, sizeof *s);
    s->info = t->info;
    const int *g = t->info.grid.dims;
    int n = 0;
    s->arrays[n++] = (dk_store_array){"input", DK_STORE_F32, 3, {g[0], g[1], g[2]}, t->input.image};
    if (t->input.label)
        s->arrays[n++] =
            (dk_store_array){"label", DK_STORE_U8, 3, {g[0], g[1], g[2]}, t->input.label};
    s->arrays[n++] = (dk_store_array){
        "response", DK_STORE_F16, 4, {m->classes.count, g[0], g[1], g[2]}, t->response};
    s->arrays[n++] =
        (dk_store_array){"uncertainty", DK_STORE_F16, 3, {g[0], g[1], g[2]}, t->uncertainty};
    for (int k = 0; k < m->feature_count; k++) {
        const int *f = t->info.feature_grid[k].dims;
        snprintf(kinds[k], 32, "features/%s", m->features[k].layer);
        s->arrays[n++] = (dk_store_array){
            kinds[k], DK_STORE_F16, 4, {m->features[k].channels, f[0], f[1], f[2]}, t->features[k]};
    }
    s->array_count = n;
}

static dk_status check_classes(const dk_store_manifest *m, const dk_classes *data, const char *path,
                               dk_err *err)
{
    bool same = data->count == m->classes.count;
    for (int c = 0; same && c < data->count; c++)
        same = !strcmp(data->names[c], m->classes.names[c]);
    if (same) return DK_OK;
    return dk_err_set(err, DK_EMISMATCH,
                      "'%s' has %d classes (1: '%s') but the teacher was trained on %d (1: '%s')",
                      path, data->count, data->names[data->count > 1], m->classes.count,
                      m->classes.names[1]);
}

static dk_status make_out_dir(const char *dir, dk_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return S_ISDIR(sb.st_mode)
                   ? DK_OK
                   : dk_err_set(err, DK_EINVAL, "--out '%s' is not a directory", dir);
    if (mkdir(dir, 0755) != 0)
        return dk_err_set(err, DK_EIO, "cannot create the store directory '%s': %s", dir,
                          strerror(errno));
    return DK_OK;
}

/* A computed sample on its way into the store. It is written on a helper thread
 * while the main thread runs the next volume's passes (writing and fsync-ing a
 * sample took 0.02-0.03 s of a volume with one core idle). libhdf5 is not
 * thread-safe, so HDF5 runs on one thread at a time: the main thread reads the next
 * volume before it starts the helper and touches HDF5 again only after joining it. */
typedef struct store_job {
    dk_store_writer *w;
    const dk_store_manifest *m;
    dk_targets t;
    dk_status st;
    dk_err err;
    pthread_t thread;
    bool running, threaded;
    dk_precompute_progress p; /* reported once the sample is durable */
    double started, stored;   /* its read began; it was durable */
} store_job;

static void *store_main(void *arg)
{
    store_job *j = arg;
    dk_store_sample s;
    char kinds[DK_STORE_MAX_FEATURES][32];
    store_sample_of(j->m, &j->t, &s, kinds);
    j->st = dk_store_writer_add(j->w, &s, &j->err);
    j->stored = dk_clock_seconds();
    dk_targets_release(&j->t);
    return NULL;
}

/* Hands targets t (now the job's) to the helper; on this thread if none starts. */
static void store_start(store_job *j, dk_targets *t, dk_precompute_progress p, double started)
{
    j->t = *t, j->p = p, j->started = started;
    memset(t, 0, sizeof *t);
    j->running = true;
    j->threaded = pthread_create(&j->thread, NULL, store_main, j) == 0;
    if (!j->threaded) store_main(j);
}

/* Waits for the job's sample to be stored, then counts and reports it. */
static dk_status store_join(store_job *j, const dk_precompute_options *o, dk_precompute_result *res,
                            dk_err *err)
{
    if (!j->running) return DK_OK;
    if (j->threaded) pthread_join(j->thread, NULL);
    j->running = false;
    if (j->st) return dk_err_forward(err, &j->err);
    j->p.seconds = j->stored - j->started;
    res->computed++;
    if (o->progress) o->progress(&j->p, o->ctx);
    return DK_OK;
}

/* The progress of the samples an interrupted run finished, from *next up to (not
 * including) `upto`, in order. */
static void report_kept(const dk_precompute_options *o, const bool *kept, int *next, int upto,
                        dk_dataset *ds, int total)
{
    for (; *next < upto; ++*next)
        if (kept[*next] && o->progress) {
            dk_precompute_progress p = {.done = *next + 1,
                                        .total = total,
                                        .id = dk_dataset_volume_id(ds, *next),
                                        .resumed = true};
            o->progress(&p, o->ctx);
        }
}

/* The first sample from i on that this run computes, or `samples`. */
static int next_to_compute(const bool *kept, int i, int samples)
{
    while (i < samples && kept[i])
        i++;
    return i;
}

/* Every sample not kept from an interrupted run: read, computed, and stored while
 * the next one is computed; progress in sample order once each is durable. */
static dk_status compute_all(dk_precomputer *pc, const dk_precompute_options *o, dk_dataset *ds,
                             dk_store_writer *w, const bool *kept, dk_precompute_result *res,
                             dk_err *err)
{
    const int n = res->samples;
    store_job job = {.w = w, .m = dk_precomputer_manifest(pc)};
    dk_volume v = {0};
    int reported = 0, i = next_to_compute(kept, 0, n);
    report_kept(o, kept, &reported, i, ds, n);
    double t0 = dk_clock_seconds(), started = t0;
    dk_status st = i < n ? dk_dataset_read(ds, i, &v, err) : DK_OK;
    dk_err je;
    while (!st && i < n) {
        dk_targets t;
        st = dk_precompute_volume(pc, &v, i, &t, err);
        dk_volume_release(&v);
        dk_status sj = store_join(&job, o, res, &je); /* the previous sample */
        if (sj && !st) st = dk_err_forward(err, &je);
        if (st) {
            dk_targets_release(&t); /* zeroed already when the volume failed */
            break;
        }
        report_kept(o, kept, &reported, i, ds, n);
        reported = i + 1;
        int next = next_to_compute(kept, i + 1, n);
        double next_started = dk_clock_seconds();
        if (next < n && (st = dk_dataset_read(ds, next, &v, err))) {
            dk_targets_release(&t);
            break;
        }
        dk_precompute_progress p = {
            .done = i + 1, .total = n, .id = dk_dataset_volume_id(ds, i), .resumed = false};
        store_start(&job, &t, p, started);
        started = next_started;
        i = next;
    }
    dk_status sj = store_join(&job, o, res, &je);
    if (sj && !st) st = dk_err_forward(err, &je);
    if (!st) report_kept(o, kept, &reported, n, ds, n);
    res->seconds = dk_clock_seconds() - t0;
    return st;
}

static dk_status run_all(dk_precomputer *pc, const dk_precompute_options *o, dk_dataset *ds,
                         dk_precompute_result *res, dk_err *err)
{
    dk_status st;
    dk_err e;
    dk_store_writer *w =
        dk_store_writer_open(res->store_path, dk_precomputer_manifest(pc), o->resume, &e);
    if (!w) return dk_err_forward(err, &e);
    res->resumed = dk_store_writer_resumed(w);
    bool *kept = malloc(sizeof *kept * (size_t)res->samples);
    if (!kept) {
        dk_store_writer_abort(w);
        return dk_err_set(err, DK_ENOMEM, "out of memory");
    }
    for (int i = 0; i < res->samples; i++)
        kept[i] = dk_store_writer_has(w, dk_dataset_volume_id(ds, i));
    st = compute_all(pc, o, ds, w, kept, res, err);
    free(kept);
    if (st) {
        dk_store_writer_abort(w); /* the partial store stays for --resume */
        return st;
    }
    const char **ids = malloc(sizeof *ids * (size_t)res->samples);
    if (!ids) {
        dk_store_writer_abort(w);
        return dk_err_set(err, DK_ENOMEM, "out of memory");
    }
    for (int i = 0; i < res->samples; i++)
        ids[i] = dk_dataset_volume_id(ds, i);
    st = dk_store_writer_finish(w, ids, res->samples, err);
    free(ids);
    return st;
}

dk_status dk_precompute_run(const dk_precompute_options *o, dk_precompute_result *res, dk_err *err)
{
    dk_status st;
    memset(res, 0, sizeof *res);
    dk_err e;
    dk_precomputer *pc = dk_precomputer_create(o, &e);
    if (!pc) return dk_err_forward(err, &e);
    dk_dataset *ds = dk_dataset_open(o->data_path, &e);
    st = ds ? DK_OK : dk_err_forward(err, &e);
    const dk_store_manifest *m = dk_precomputer_manifest(pc);
    if (!st) st = check_classes(m, dk_dataset_classes(ds), o->data_path, err);
    if (!st && (res->samples = dk_dataset_count(ds)) == 0)
        st = dk_err_set(err, DK_EINVAL, "'%s' holds no volumes", o->data_path);
    char data_sha256[sizeof m->data_sha256];
    if (!st) st = dk_content_hash_dataset(ds, data_sha256, err);
    if (!st) dk_precomputer_set_data_sha256(pc, data_sha256);
    if (!st) st = make_out_dir(o->out_dir, err);
    if (!st && snprintf(res->store_path, sizeof res->store_path, "%s/%s.h5", o->out_dir,
                        m->profile) >= (int)sizeof res->store_path)
        st = dk_err_set(err, DK_ELIMIT, "--out '%s' is too long", o->out_dir);
    if (!st) st = run_all(pc, o, ds, res, err);
    dk_dataset_close(ds);
    dk_precomputer_free(pc);
    return st;
}
