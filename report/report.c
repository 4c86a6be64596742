/* report.c: dk_report_write (report.h): read results.json, stage every output file
 * under a temporary name, then rename them all into place. The pictures are
 * overlay.c and plot.c, the page html.c, the reading results.c. */
#define _GNU_SOURCE
#include "report/report.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/html.h"
#include "report/plot.h"
#include "report/results.h"

#define MAX_FILES (DK_RESULTS_MAX_SITES + 3)

typedef struct staging {
    const char *dir;
    int count;
    char final[MAX_FILES][DK_RESULTS_PATH + 128];
    char temp[MAX_FILES][DK_RESULTS_PATH + 160];
} staging;

/* The temporary path for out_dir/name, recorded so it is renamed or removed later. */
static const char *stage(staging *g, const char *name)
{
    snprintf(g->final[g->count], sizeof g->final[0], "%s/%s", g->dir, name);
    snprintf(g->temp[g->count], sizeof g->temp[0], "%s/.%s.tmp-%ld", g->dir, name, (long)getpid());
    return g->temp[g->count++];
}

static void discard(staging *g)
{
    for (int i = 0; i < g->count; i++)
        unlink(g->temp[i]);
}

static dk_status commit(staging *g, dk_err *err)
{
    for (int i = 0; i < g->count; i++)
        if (rename(g->temp[i], g->final[i]) != 0) {
            dk_status st = dk_err_set(err, DK_EIO, "renaming '%s' to '%s': %s", g->temp[i],
                                      g->final[i], strerror(errno));
            for (int k = i; k < g->count; k++)
                unlink(g->temp[k]);
            return st;
        }
    int fd = open(g->dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* the renames themselves; a failure here loses nothing written */
        close(fd);
    }
    return DK_OK;
}

/* dir, created when missing (*created says so, for removing it again on failure). */
static dk_status make_dir(const char *dir, bool *created, dk_err *err)
{
    struct stat sb;
    if ((*created = mkdir(dir, 0755) == 0)) return DK_OK;
    if (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return DK_OK;
    return dk_err_set(err, DK_EIO, "output directory '%s': %s", dir,
                      errno == EEXIST ? "exists and is not a directory" : strerror(errno));
}

/* A copy of results.json into the report unless it is already there. */
static dk_status copy_results(const char *from, staging *g, dk_err *err)
{
    char there[DK_RESULTS_PATH + 32];
    snprintf(there, sizeof there, "%s/results.json", g->dir);
    struct stat a, b;
    if (stat(from, &a) == 0 && stat(there, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return DK_OK;
    FILE *in = fopen(from, "rb");
    if (!in) return dk_err_set(err, DK_EIO, "'%s': %s", from, strerror(errno));
    const char *tmp = stage(g, "results.json");
    FILE *out = fopen(tmp, "wb");
    dk_status st = DK_OK;
    if (!out) st = dk_err_set(err, DK_EIO, "'%s': %s", tmp, strerror(errno));
    char buf[65536];
    size_t n;
    while (!st && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            st = dk_err_set(err, DK_EIO, "'%s': %s", tmp, strerror(errno));
    if (!st && (ferror(in) || fflush(out) != 0 || fsync(fileno(out)) != 0))
        st = dk_err_set(err, DK_EIO, "copying '%s' to '%s': %s", from, tmp, strerror(errno));
    if (out && fclose(out) != 0 && !st)
        st = dk_err_set(err, DK_EIO, "'%s': %s", tmp, strerror(errno));
    fclose(in);
    return st;
}

static dk_status write_all(const dk_results *r, const char *results_path, staging *g, dk_err *err)
{
    dk_html_pictures pictures = {0};
    dk_status st;
    for (int s = 0; s < r->site_count; s++) {
        char name[96];
        snprintf(name, sizeof name, "overlay-%s.png", r->sites[s].name);
        if ((st = dk_overlay_write(r, s, stage(g, name), &pictures.overlays[s], err)))
            return dk_err_prefix(err, st, "'%s'", results_path); /* its messages name fields */
    }
    if ((st = dk_plot_curves(r, stage(g, "curves.png"), &pictures.curves_width,
                             &pictures.curves_height, err)) ||
        (st = copy_results(results_path, g, err)))
        return st;
    return dk_html_write(r, &pictures, stage(g, "index.html"), err);
}

dk_status dk_report_write(const char *results_json_path, const char *out_dir, dk_err *err)
{
    dk_err read = {0};
    dk_results *r = dk_results_read(results_json_path, &read);
    if (!r) return dk_err_forward(err, &read);
    staging *g = calloc(1, sizeof *g);
    bool created = false;
    dk_status st = g ? make_dir(out_dir, &created, err) : dk_err_set(err, DK_ENOMEM, "no memory");
    if (!st) {
        g->dir = out_dir;
        st = write_all(r, results_json_path, g, err);
        if (st) {
            discard(g);
            if (created) rmdir(out_dir);
        } else {
            st = commit(g, err);
        }
    }
    free(g);
    dk_results_free(r);
    return st;
}
