/* metrics.c: Dice, HD95, HD and ASSD in millimetres (metrics.h): surface voxels,
 * an exact anisotropic Euclidean distance transform restricted to the bounding box
 * of both surfaces (every surface voxel lies inside it, so the box changes nothing
 * but the cost), and the percentile and means over the pooled distances. */
#include "datasets/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct box {
    int lo[3], hi[3]; /* inclusive; lo > hi when empty */
} box;

static void box_add(box *b, int k, int j, int i)
{
    const int p[3] = {k, j, i};
    for (int a = 0; a < 3; a++) {
        if (p[a] < b->lo[a]) b->lo[a] = p[a];
        if (p[a] > b->hi[a]) b->hi[a] = p[a];
    }
}

static bool is_surface(const uint8_t *m, const int d[3], int k, int j, int i)
{
    if (k == 0 || j == 0 || i == 0 || k == d[0] - 1 || j == d[1] - 1 || i == d[2] - 1) return true;
    const size_t sy = (size_t)d[2], sz = (size_t)d[1] * d[2];
    const size_t at = (size_t)k * sz + (size_t)j * sy + (size_t)i;
    return !m[at - 1] || !m[at + 1] || !m[at - sy] || !m[at + sy] || !m[at - sz] || !m[at + sz];
}

/* Mark the surface of mask m in surf (0/1) and grow b over it; returns the count
 * of mask voxels in *voxels and of surface voxels as the result. */
static size_t surface_of(const uint8_t *m, const int d[3], uint8_t *surf, box *b,
                         long long *voxels)
{
    size_t count = 0, at = 0;
    long long inside = 0;
    for (int k = 0; k < d[0]; k++)
        for (int j = 0; j < d[1]; j++)
            for (int i = 0; i < d[2]; i++, at++) {
                surf[at] = 0;
                if (!m[at]) continue;
                inside++;
                if (!is_surface(m, d, k, j, i)) continue;
                surf[at] = 1;
                box_add(b, k, j, i);
                count++;
            }
    *voxels = inside;
    return count;
}

/* ---- the squared distance transform ---- */

typedef struct edt_scratch {
    int *v;
    double *z, *g;
} edt_scratch;

/* In place along one line of n values (stride apart): f(p) <- min_q w (p - q)^2 + f(q),
 * the lower envelope of parabolas (Felzenszwalb & Huttenlocher 2012); INFINITY
 * entries are no sites. */
static void edt_line(double *f, int n, size_t stride, double w, edt_scratch *s)
{
    int k = -1;
    for (int q = 0; q < n; q++) {
        double gq = s->g[q] = f[(size_t)q * stride];
        if (isinf(gq)) continue;
        if (k < 0) {
            k = 0;
            s->v[0] = q;
            s->z[0] = -INFINITY;
            s->z[1] = INFINITY;
            continue;
        }
        double sq;
        for (;;) {
            int p = s->v[k];
            sq = ((gq + w * q * q) - (s->g[p] + w * (double)p * p)) / (2.0 * w * (q - p));
            if (sq > s->z[k]) break;
            k--; /* z[0] is -inf, so k stays >= 0 */
        }
        k++;
        s->v[k] = q;
        s->z[k] = sq;
        s->z[k + 1] = INFINITY;
    }
    if (k < 0) return; /* no site on this line: all stay infinite */
    k = 0;
    for (int q = 0; q < n; q++) {
        while (s->z[k + 1] < q)
            k++;
        double dq = q - s->v[k];
        f[(size_t)q * stride] = w * dq * dq + s->g[s->v[k]];
    }
}

/* Squared mm distance to the nearest site for every voxel of the box (dims n),
 * f holding 0 at sites and INFINITY elsewhere. */
static void edt_box(double *f, const int n[3], const double spacing[3], edt_scratch *s)
{
    const size_t sx = 1, sy = (size_t)n[2], sz = (size_t)n[1] * n[2];
    for (int k = 0; k < n[0]; k++)
        for (int j = 0; j < n[1]; j++)
            edt_line(f + k * sz + j * sy, n[2], sx, spacing[2] * spacing[2], s);
    for (int k = 0; k < n[0]; k++)
        for (int i = 0; i < n[2]; i++)
            edt_line(f + k * sz + i, n[1], sy, spacing[1] * spacing[1], s);
    for (int j = 0; j < n[1]; j++)
        for (int i = 0; i < n[2]; i++)
            edt_line(f + j * sy + i, n[0], sz, spacing[0] * spacing[0], s);
}

/* Distances (mm) from each surface voxel of `from` to the nearest of `to` (both
 * inside box b of dims n), appended to out; returns how many. */
static size_t directed(const uint8_t *from, const uint8_t *to, const int d[3], const box *b,
                       const int n[3], const double spacing[3], double *field, edt_scratch *s,
                       double *out)
{
    size_t at = 0, count = 0;
    for (int k = b->lo[0]; k <= b->hi[0]; k++)
        for (int j = b->lo[1]; j <= b->hi[1]; j++)
            for (int i = b->lo[2]; i <= b->hi[2]; i++, at++)
                field[at] = to[((size_t)k * d[1] + j) * d[2] + i] ? 0.0 : INFINITY;
    edt_box(field, n, spacing, s);
    at = 0;
    for (int k = b->lo[0]; k <= b->hi[0]; k++)
        for (int j = b->lo[1]; j <= b->hi[1]; j++)
            for (int i = b->lo[2]; i <= b->hi[2]; i++, at++)
                if (from[((size_t)k * d[1] + j) * d[2] + i]) out[count++] = sqrt(field[at]);
    return count;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default: linear interpolation at rank q/100 * (n - 1). Sorts x. */
static double percentile(double *x, size_t n, double q)
{
    qsort(x, n, sizeof *x, cmp_double);
    double rank = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
    return x[lo] + (x[hi] - x[lo]) * (rank - (double)lo);
}

static void set_empty(dk_class_metrics *out)
{
    bool p = out->pred_voxels == 0, g = out->truth_voxels == 0;
    out->empty = p && g ? DK_METRICS_BOTH_EMPTY
                 : p    ? DK_METRICS_PRED_EMPTY
                 : g    ? DK_METRICS_TRUTH_EMPTY
                        : DK_METRICS_NONE_EMPTY;
    if (out->empty == DK_METRICS_NONE_EMPTY) return;
    double v = out->empty == DK_METRICS_BOTH_EMPTY ? NAN : INFINITY;
    out->dice = out->empty == DK_METRICS_BOTH_EMPTY ? 1.0 : 0.0;
    out->hd95 = out->hd = out->assd = v;
}

static void distances(const double *dist, size_t np, size_t ng, double *sorted,
                      dk_class_metrics *out)
{
    double sp = 0, sg = 0, mx = 0;
    for (size_t i = 0; i < np + ng; i++) {
        if (i < np) sp += dist[i];
        else sg += dist[i];
        mx = fmax(mx, dist[i]);
        sorted[i] = dist[i];
    }
    out->assd = 0.5 * (sp / (double)np + sg / (double)ng);
    out->hd = mx;
    out->hd95 = percentile(sorted, np + ng, 95.0);
}

static dk_status check_grid(const int d[3], const double spacing[3], dk_err *err)
{
    for (int a = 0; a < 3; a++) {
        if (d[a] < 1)
            return dk_err_set(err, DK_EINVAL, "metrics: dimension %d is %d (expected >= 1)", a,
                              d[a]);
        if (!(spacing[a] > 0) || !isfinite(spacing[a]))
            return dk_err_set(err, DK_EINVAL, "metrics: spacing[%d] is %g (expected > 0 mm)", a,
                              spacing[a]);
    }
    return DK_OK;
}

dk_status dk_metrics_binary(const uint8_t *pred, const uint8_t *truth, const int d[3],
                            const double spacing[3], dk_class_metrics *out, dk_err *err)
{
    memset(out, 0, sizeof *out);
    dk_status st = check_grid(d, spacing, err);
    if (st) return st;
    const size_t V = (size_t)d[0] * d[1] * d[2];
    long long inter = 0;
    uint8_t *sp = malloc(V), *sg = malloc(V);
    if (!sp || !sg) {
        free(sp);
        free(sg);
        return dk_err_set(err, DK_ENOMEM, "metrics: no memory for the surfaces of %zu voxels", V);
    }
    box b = {{d[0], d[1], d[2]}, {-1, -1, -1}};
    size_t np = surface_of(pred, d, sp, &b, &out->pred_voxels);
    size_t ng = surface_of(truth, d, sg, &b, &out->truth_voxels);
    for (size_t i = 0; i < V; i++)
        inter += pred[i] && truth[i];
    long long sum = out->pred_voxels + out->truth_voxels;
    out->dice = sum ? 2.0 * (double)inter / (double)sum : 1.0;
    set_empty(out);
    if (out->empty != DK_METRICS_NONE_EMPTY) {
        free(sp);
        free(sg);
        return DK_OK;
    }
    int n[3], longest = 0;
    for (int a = 0; a < 3; a++) {
        n[a] = b.hi[a] - b.lo[a] + 1;
        if (n[a] > longest) longest = n[a];
    }
    size_t bv = (size_t)n[0] * n[1] * n[2];
    double *field = malloc(bv * sizeof *field), *dist = malloc((np + ng) * 2 * sizeof *dist);
    edt_scratch s = {malloc((size_t)longest * sizeof(int)),
                     malloc(((size_t)longest + 1) * sizeof(double)),
                     malloc((size_t)longest * sizeof(double))};
    if (field && dist && s.v && s.z && s.g) {
        directed(sp, sg, d, &b, n, spacing, field, &s, dist);
        directed(sg, sp, d, &b, n, spacing, field, &s, dist + np);
        distances(dist, np, ng, dist + np + ng, out);
    } else {
        st = dk_err_set(err, DK_ENOMEM, "metrics: no memory for a distance map of %zu voxels", bv);
    }
    free(field);
    free(dist);
    free(s.v);
    free(s.z);
    free(s.g);
    free(sp);
    free(sg);
    return st;
}

dk_status dk_metrics_labels(const uint8_t *pred, const uint8_t *truth, const int d[3],
                            const double spacing[3], int classes, dk_class_metrics *out,
                            dk_err *err)
{
    if (classes < 1 || classes > DK_MAX_CLASSES)
        return dk_err_set(err, DK_EINVAL, "metrics: %d classes (expected 1..%d)", classes,
                          DK_MAX_CLASSES);
    dk_status st = check_grid(d, spacing, err);
    if (st) return st;
    const size_t V = (size_t)d[0] * d[1] * d[2];
    uint8_t *p = malloc(V), *g = malloc(V);
    if (!p || !g) st = dk_err_set(err, DK_ENOMEM, "metrics: no memory for %zu-voxel masks", V);
    for (int c = 0; st == DK_OK && c < classes; c++) {
        for (size_t i = 0; i < V; i++) {
            p[i] = pred[i] == c;
            g[i] = truth[i] == c;
        }
        st = dk_metrics_binary(p, g, d, spacing, &out[c], err);
    }
    free(p);
    free(g);
    return st;
}

void dk_metrics_mean_sd(const double *x, int n, double *mean, double *sd, int *used)
{
    double sum = 0, sq = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            sum += x[i];
            k++;
        }
    *used = k;
    *mean = k ? sum / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) sq += (x[i] - *mean) * (x[i] - *mean);
    *sd = k == 0 ? NAN : k < 2 ? 0.0 : sqrt(sq / (k - 1));
}

json_t *dk_metrics_json_number(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

json_t *dk_metrics_json(const dk_class_metrics *m)
{
    static const char *const empty[] = {NULL, "prediction", "truth", "both"};
    json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:I, s:I}", "dice", dk_metrics_json_number(m->dice),
                          "hd95", dk_metrics_json_number(m->hd95), "hd",
                          dk_metrics_json_number(m->hd), "assd", dk_metrics_json_number(m->assd),
                          "pred_voxels", (json_int_t)m->pred_voxels, "truth_voxels",
                          (json_int_t)m->truth_voxels);
    if (o && json_object_set_new(o, "empty",
                                 empty[m->empty] ? json_string(empty[m->empty]) : json_null())) {
        json_decref(o);
        return NULL;
    }
    return o;
}
