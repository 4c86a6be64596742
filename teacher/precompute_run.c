/* precompute_run.c: `dualkd teacher precompute` over a dataset: every volume's
 * targets (precompute.h) into a target store, resumable (precompute_run.h). */
#include "teacher/precompute_run.h"

#include <errno.h>
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

/* Compute and durably store volume i (skipped when an interrupted run finished it). */
static dk_status one_sample(dk_precomputer *pc, const dk_precompute_options *o, dk_dataset *ds,
                            dk_store_writer *w, int i, dk_precompute_result *res, dk_err *err)
{
    dk_status st;
    const char *id = dk_dataset_volume_id(ds, i);
    dk_precompute_progress p = {.done = i + 1, .total = res->samples, .id = id, .resumed = true};
    if (!dk_store_writer_has(w, id)) {
        double t0 = dk_clock_seconds();
        dk_volume v;
        dk_targets t;
        if ((st = dk_dataset_read(ds, i, &v, err))) return st;
        st = dk_precompute_volume(pc, &v, i, &t, err);
        dk_volume_release(&v);
        if (st) return st;
        dk_store_sample s;
        char kinds[DK_STORE_MAX_FEATURES][32];
        store_sample_of(dk_precomputer_manifest(pc), &t, &s, kinds);
        st = dk_store_writer_add(w, &s, err);
        dk_targets_release(&t);
        if (st) return st;
        p.resumed = false, p.seconds = dk_clock_seconds() - t0;
        res->computed++, res->seconds += p.seconds;
    }
    if (o->progress) o->progress(&p, o->ctx);
    return DK_OK;
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
    st = DK_OK;
    for (int i = 0; !st && i < res->samples; i++)
        st = one_sample(pc, o, ds, w, i, res, err);
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
