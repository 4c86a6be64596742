/* store_write.c: the crash-safe, resumable target-store writer (store.h).
 *
 * Why a directory of small files rather than one growing HDF5 file: HDF5 1.10
 * has no journal, so a process killed inside H5Fflush can leave a file whose
 * metadata no longer opens, losing every sample in it. Here each finished
 * sample is its own file, written to a temporary name, fsync'ed and renamed
 * (distill/h5file.h), so the partial store is always "every sample finished so
 * far" plus at most one stray temporary. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/h5attr.h"
#include "distill/h5file.h"
#include "teacher/store_internal.h"

#define SAMPLE_PREFIX "sample-"
#define MANIFEST_FILE "manifest.h5"

struct dk_store_writer {
    char *path;    /* the final store */
    char *partial; /* "<path>.partial" */
    dk_store_manifest manifest;
    char (*done)[64]; /* ids of finished samples */
    int done_count, done_cap;
    int resumed;
};

void dk_store_partial_path(const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.partial", path);
}

static char *join(const char *dir, const char *a, const char *b)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s%s", dir, a, b) < 0 ? NULL : p;
}

static bool is_ours(const char *name)
{
    return !strcmp(name, MANIFEST_FILE) || !strncmp(name, SAMPLE_PREFIX, strlen(SAMPLE_PREFIX)) ||
           strstr(name, ".h5.tmp-");
}

/* Remove our files from the partial directory, then the directory itself; a
 * file we did not write stops us rather than being deleted. */
static dk_status remove_partial(const char *dir, dk_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return DK_OK;
        return dk_err_set(err, DK_EIO, "cannot open '%s': %s", dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !is_ours(e->d_name)) continue;
        char *p = join(dir, e->d_name, "");
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    if (rmdir(dir) != 0)
        return dk_err_set(err, DK_EIO, "cannot remove '%s': %s (files not written by dualkd?)", dir,
                          strerror(errno));
    return DK_OK;
}

static dk_status mark_done(dk_store_writer *w, const char *id, dk_err *err)
{
    if (w->done_count == w->done_cap) {
        int cap = w->done_cap ? 2 * w->done_cap : 64;
        void *grown = realloc(w->done, (size_t)cap * sizeof *w->done);
        if (!grown) return dk_err_set(err, DK_ENOMEM, "no memory for %d sample ids", cap);
        w->done = grown, w->done_cap = cap;
    }
    snprintf(w->done[w->done_count++], 64, "%s", id);
    return DK_OK;
}

bool dk_store_writer_has(const dk_store_writer *w, const char *id)
{
    for (int i = 0; i < w->done_count; i++)
        if (!strcmp(w->done[i], id)) return true;
    return false;
}

int dk_store_writer_resumed(const dk_store_writer *w)
{
    return w->resumed;
}

static dk_status write_manifest_file(dk_store_writer *w, dk_err *err)
{
    char *p = join(w->partial, MANIFEST_FILE, "");
    if (!p) return dk_err_set(err, DK_ENOMEM, "out of memory");
    dk_h5_writer h;
    dk_status st = dk_h5_create(p, &h, err);
    free(p);
    if (st) return st;
    if ((st = dk_store_manifest_write(h.file, &w->manifest, err))) {
        dk_h5_abort(&h);
        return st;
    }
    return dk_h5_commit(&h, err);
}

/* A finished sample file is kept only if it reads back whole and its checksums hold. */
static bool sample_file_good(dk_store_writer *w, const char *file, const char *id)
{
    dk_err err = {0};
    hid_t f;
    if (dk_h5_open_read(file, &f, &err)) return false;
    dk_store_sample_info info;
    bool good = !dk_store_sample_read_info(f, &w->manifest, id, &info, &err) &&
                !dk_store_sample_check_sums(f, &info, &err);
    dk_h5_close_file(f);
    return good;
}

static dk_status scan_partial(dk_store_writer *w, dk_err *err)
{
    DIR *d = opendir(w->partial);
    if (!d) return dk_err_set(err, DK_EIO, "cannot open '%s': %s", w->partial, strerror(errno));
    struct dirent *e;
    dk_status st = DK_OK;
    size_t plen = strlen(SAMPLE_PREFIX);
    while (!st && (e = readdir(d))) {
        const char *name = e->d_name;
        char *p = join(w->partial, name, "");
        if (!p)
            st = dk_err_set(err, DK_ENOMEM, "out of memory");
        else if (strstr(name, ".h5.tmp-"))
            unlink(p); /* a write that a kill interrupted */
        else if (!strncmp(name, SAMPLE_PREFIX, plen) && strlen(name) > plen + 3 &&
                 !strcmp(name + strlen(name) - 3, ".h5")) {
            char id[64];
            snprintf(id, sizeof id, "%.*s", (int)(strlen(name) - plen - 3), name + plen);
            if (sample_file_good(w, p, id))
                st = mark_done(w, id, err);
            else
                unlink(p); /* damaged: redo it */
        }
        free(p);
    }
    closedir(d);
    w->resumed = w->done_count;
    return st;
}

static dk_status resume_partial(dk_store_writer *w, dk_err *err)
{
    char *p = join(w->partial, MANIFEST_FILE, "");
    if (!p) return dk_err_set(err, DK_ENOMEM, "out of memory");
    struct stat sb;
    if (stat(w->partial, &sb) != 0) {
        free(p);
        return dk_err_set(err, DK_ENOTFOUND,
                          "--resume: there is no partial store '%s' to continue from", w->partial);
    }
    hid_t f;
    dk_store_manifest old;
    dk_status st = dk_h5_open_read(p, &f, err);
    if (!st) {
        st = dk_store_manifest_read(f, &old, err);
        dk_h5_close_file(f);
    }
    if (st) dk_err_prefix(err, st, "--resume: '%s'", p);
    free(p);
    if (st) return st;
    const char *field = dk_store_manifest_diff(&old, &w->manifest);
    if (field)
        return dk_err_set(err, DK_EMISMATCH,
                          "--resume: the partial store '%s' was made with a different %s; run "
                          "without --resume to start again",
                          w->partial, field);
    memcpy(w->manifest.created, old.created, sizeof old.created); /* as first written */
    return scan_partial(w, err);
}

dk_store_writer *dk_store_writer_open(const char *path, const dk_store_manifest *m, bool resume,
                                      dk_err *err)
{
    dk_store_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path)) || asprintf(&w->partial, "%s.partial", path) < 0) {
        if (w) free(w->path);
        free(w);
        dk_err_set(err, DK_ENOMEM, "out of memory opening '%s'", path);
        return NULL;
    }
    w->manifest = *m;
    dk_status st;
    if (resume)
        st = resume_partial(w, err);
    else if (!(st = remove_partial(w->partial, err))) {
        if (mkdir(w->partial, 0755) != 0)
            st = dk_err_set(err, DK_EIO, "cannot create '%s': %s", w->partial, strerror(errno));
        else
            st = write_manifest_file(w, err);
    }
    if (st) {
        dk_store_writer_abort(w);
        return NULL;
    }
    return w;
}

dk_status dk_store_writer_add(dk_store_writer *w, const dk_store_sample *s, dk_err *err)
{
    if (!dk_volume_id_valid(s->info.id))
        return dk_err_set(err, DK_EINVAL, "sample id '%s' is not a valid volume id", s->info.id);
    char *p = join(w->partial, SAMPLE_PREFIX, s->info.id);
    char *file = NULL;
    if (!p || asprintf(&file, "%s.h5", p) < 0) {
        free(p);
        return dk_err_set(err, DK_ENOMEM, "out of memory");
    }
    free(p);
    dk_h5_writer h;
    dk_status st = dk_h5_create(file, &h, err);
    free(file);
    if (st) return st;
    if ((st = dk_store_sample_write(h.file, &w->manifest, s, err))) {
        dk_h5_abort(&h);
        return st;
    }
    if ((st = dk_h5_commit(&h, err))) return st;
    return mark_done(w, s->info.id, err);
}

static dk_status copy_sample(dk_store_writer *w, hid_t samples, const char *id, dk_err *err)
{
    char *file = NULL, src[96];
    if (asprintf(&file, "%s/%s%s.h5", w->partial, SAMPLE_PREFIX, id) < 0)
        return dk_err_set(err, DK_ENOMEM, "out of memory");
    hid_t f = H5I_INVALID_HID;
    dk_status st = dk_h5_open_read(file, &f, err);
    snprintf(src, sizeof src, "samples/%s", id);
    if (!st && H5Ocopy(f, src, samples, id, H5P_DEFAULT, H5P_DEFAULT) < 0)
        st = dk_h5_fail(err, DK_EIO, f, "cannot copy sample '%s' into the store", id);
    dk_h5_close_file(f);
    free(file);
    return st;
}

dk_status dk_store_writer_finish(dk_store_writer *w, const char *const *ids, int count, dk_err *err)
{
    dk_status st = DK_OK;
    for (int i = 0; !st && i < count; i++)
        if (!dk_store_writer_has(w, ids[i]))
            st = dk_err_set(err, DK_EINVAL, "sample '%s' was never written", ids[i]);
    dk_h5_writer h = {.file = H5I_INVALID_HID, .fd = -1};
    if (!st) st = dk_h5_create(w->path, &h, err);
    hid_t samples = H5I_INVALID_HID;
    if (!st) st = dk_store_manifest_write(h.file, &w->manifest, err);
    if (!st) st = dk_h5_attr_write_int(h.file, "sample_count", count, err);
    if (!st) st = dk_h5_group_create(h.file, "samples", &samples, err);
    for (int i = 0; !st && i < count; i++)
        st = copy_sample(w, samples, ids[i], err);
    if (samples >= 0) H5Gclose(samples);
    if (!st)
        st = dk_h5_commit(&h, err);
    else
        dk_h5_abort(&h);
    if (!st) st = remove_partial(w->partial, err);
    dk_store_writer_abort(w);
    return st;
}

void dk_store_writer_abort(dk_store_writer *w)
{
    if (!w) return;
    free(w->done);
    free(w->partial);
    free(w->path);
    free(w);
}
