/* resample.c: voxel grids and separable resampling between them (resample.h).
 *
 * Every resampler is three 1D operators ("taps", sparse rows of weights) built from
 * the physical positions of voxel centres and boxes, applied one axis at a time.
 * Label majority reuses the area operators as weights of a per-voxel class histogram. */
#include "datasets/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dk_grid dk_grid_of_volume(const dk_volume *v)
{
    dk_grid g;
    for (int a = 0; a < 3; a++) {
        g.dims[a] = v->dims[a];
        g.spacing[a] = v->spacing[a];
        g.origin[a] = v->origin[a];
    }
    return g;
}

dk_grid dk_grid_respaced(const dk_grid *src, const double spacing[3])
{
    dk_grid g;
    for (int a = 0; a < 3; a++) {
        double extent = src->dims[a] * src->spacing[a];
        double low = src->origin[a] - 0.5 * src->spacing[a];
        long n = lround(extent / spacing[a]);
        g.dims[a] = n < 1 ? 1 : (int)n;
        g.spacing[a] = spacing[a];
        /* centre the new extent on the old one */
        double new_low = low + 0.5 * (extent - g.dims[a] * spacing[a]);
        g.origin[a] = new_low + 0.5 * spacing[a];
    }
    return g;
}

size_t dk_grid_voxels(const dk_grid *g)
{
    return (size_t)g->dims[0] * g->dims[1] * g->dims[2];
}

static dk_status check_grid(const dk_grid *g, const char *which, dk_err *err)
{
    for (int a = 0; a < 3; a++) {
        if (g->dims[a] < 1 || !(g->spacing[a] > 0) || !isfinite(g->spacing[a]) ||
            !isfinite(g->origin[a]))
            return dk_err_set(err, DK_EINVAL,
                              "resample: %s grid axis %d: dims %d, spacing %g, origin %g "
                              "(expected dims >= 1, finite spacing > 0)",
                              which, a, g->dims[a], g->spacing[a], g->origin[a]);
    }
    return DK_OK;
}

/* ---- 1D operators ---- */

dk_status dk_taps_alloc(dk_taps *t, int n_src, int n_dst, size_t n_taps, dk_err *err)
{
    memset(t, 0, sizeof *t);
    t->n_src = n_src;
    t->n_dst = n_dst;
    t->start = calloc((size_t)n_dst + 1, sizeof *t->start);
    t->index = malloc((n_taps ? n_taps : 1) * sizeof *t->index);
    t->weight = malloc((n_taps ? n_taps : 1) * sizeof *t->weight);
    if (!t->start || !t->index || !t->weight) {
        dk_taps_release(t);
        return dk_err_set(err, DK_ENOMEM, "resample: no memory for %zu taps", n_taps);
    }
    return DK_OK;
}

void dk_taps_release(dk_taps *t)
{
    free(t->start);
    free(t->index);
    free(t->weight);
    memset(t, 0, sizeof *t);
}

static void mark_identity(dk_taps *t)
{
    t->identity = t->n_src == t->n_dst;
    for (int k = 0; k < t->n_dst && t->identity; k++)
        t->identity = t->start[k + 1] - t->start[k] == 1 && t->index[t->start[k]] == k &&
                      t->weight[t->start[k]] == 1.0f;
}

dk_status dk_taps_linear(int n_src, double origin_src, double spacing_src, int n_dst,
                         double origin_dst, double spacing_dst, dk_taps *out, dk_err *err)
{
    dk_status st = dk_taps_alloc(out, n_src, n_dst, 2 * (size_t)n_dst, err);
    if (st) return st;
    int p = 0;
    for (int k = 0; k < n_dst; k++) {
        double t = (origin_dst + k * spacing_dst - origin_src) / spacing_src;
        if (t < 0) t = 0;
        if (t > n_src - 1) t = n_src - 1;
        int i0 = (int)floor(t);
        double f = t - i0;
        /* snap near-integer positions so same-grid resampling is exactly the identity */
        if (f < 1e-9) f = 0;
        if (f > 1 - 1e-9) i0++, f = 0;
        out->index[p] = i0;
        out->weight[p++] = (float)(1 - f);
        if (f > 0) {
            out->index[p] = i0 + 1;
            out->weight[p++] = (float)f;
        }
        out->start[k + 1] = p;
    }
    mark_identity(out);
    return DK_OK;
}

dk_status dk_taps_area(int n_src, double origin_src, double spacing_src, int n_dst,
                       double origin_dst, double spacing_dst, dk_taps *out, dk_err *err)
{
    size_t per_row = (size_t)ceil(spacing_dst / spacing_src) + 2;
    dk_status st = dk_taps_alloc(out, n_src, n_dst, per_row * n_dst, err);
    if (st) return st;
    double src_low = origin_src - 0.5 * spacing_src;
    int p = 0;
    for (int k = 0; k < n_dst; k++) {
        double lo = origin_dst + (k - 0.5) * spacing_dst, hi = lo + spacing_dst;
        int first = (int)floor((lo - src_low) / spacing_src);
        int last = (int)ceil((hi - src_low) / spacing_src) - 1;
        if (first < 0) first = 0;
        if (last > n_src - 1) last = n_src - 1;
        double total = 0;
        int row = p;
        for (int i = first; i <= last; i++) {
            double a = src_low + i * spacing_src, b = a + spacing_src;
            double overlap = fmin(hi, b) - fmax(lo, a);
            if (overlap <= 1e-9 * spacing_src) continue; /* rounding slivers at shared edges */
            out->index[p] = i;
            out->weight[p++] = (float)overlap;
            total += overlap;
        }
        if (total > 0) {
            for (int q = row; q < p; q++)
                out->weight[q] = (float)(out->weight[q] / total);
        } else { /* dst box entirely outside src: nearest src voxel */
            double t = round((origin_dst + k * spacing_dst - origin_src) / spacing_src);
            out->index[p] = t < 0 ? 0 : t > n_src - 1 ? n_src - 1 : (int)t;
            out->weight[p++] = 1.0f;
        }
        out->start[k + 1] = p;
    }
    mark_identity(out);
    return DK_OK;
}

dk_status dk_taps_compose(const dk_taps *outer, const dk_taps *inner, dk_taps *out, dk_err *err)
{
    if (outer->n_src != inner->n_dst)
        return dk_err_set(err, DK_EMISMATCH, "resample: composing taps %d->%d after %d->%d",
                          outer->n_src, outer->n_dst, inner->n_src, inner->n_dst);
    /* each composed row spans at most the union of its inner rows: bound the size first */
    size_t bound = 0;
    int n = inner->n_src;
    for (int k = 0; k < outer->n_dst; k++) {
        int lo = n, hi = -1;
        for (int p = outer->start[k]; p < outer->start[k + 1]; p++) {
            int m = outer->index[p];
            for (int q = inner->start[m]; q < inner->start[m + 1]; q++) {
                if (inner->index[q] < lo) lo = inner->index[q];
                if (inner->index[q] > hi) hi = inner->index[q];
            }
        }
        bound += hi >= lo ? (size_t)(hi - lo + 1) : 0;
    }
    double *dense = calloc((size_t)n, sizeof *dense);
    dk_status st = dense ? dk_taps_alloc(out, n, outer->n_dst, bound, err)
                         : dk_err_set(err, DK_ENOMEM, "resample: no memory to compose taps");
    if (st) {
        free(dense);
        return st;
    }
    int p_out = 0;
    for (int k = 0; k < outer->n_dst; k++) {
        int lo = n, hi = -1;
        for (int p = outer->start[k]; p < outer->start[k + 1]; p++) {
            int m = outer->index[p];
            for (int q = inner->start[m]; q < inner->start[m + 1]; q++) {
                int i = inner->index[q];
                dense[i] += (double)outer->weight[p] * inner->weight[q];
                if (i < lo) lo = i;
                if (i > hi) hi = i;
            }
        }
        for (int i = lo; i <= hi; i++) {
            if (dense[i] != 0) {
                out->index[p_out] = i;
                out->weight[p_out++] = (float)dense[i];
            }
            dense[i] = 0;
        }
        out->start[k + 1] = p_out;
    }
    free(dense);
    mark_identity(out);
    return DK_OK;
}

/* ---- applying operators along one axis ---- */

/* Axis with inner stride > 1: whole rows of `inner` floats are blended (vectorises). */
static void pass_strided(const float *in, int outer, int inner, const dk_taps *t, float *out)
{
    for (int o = 0; o < outer; o++) {
        const float *src = in + (size_t)o * t->n_src * inner;
        for (int k = 0; k < t->n_dst; k++) {
            float *dst = out + ((size_t)o * t->n_dst + k) * inner;
            memset(dst, 0, (size_t)inner * sizeof *dst);
            for (int p = t->start[k]; p < t->start[k + 1]; p++) {
                const float *row = src + (size_t)t->index[p] * inner;
                float w = t->weight[p];
                for (int x = 0; x < inner; x++)
                    dst[x] += w * row[x];
            }
        }
    }
}

/* The contiguous (x) axis: a dot product per output. */
static void pass_contiguous(const float *in, size_t rows, const dk_taps *t, float *out)
{
    for (size_t r = 0; r < rows; r++) {
        const float *src = in + r * t->n_src;
        float *dst = out + r * t->n_dst;
        for (int k = 0; k < t->n_dst; k++) {
            float acc = 0;
            for (int p = t->start[k]; p < t->start[k + 1]; p++)
                acc += t->weight[p] * src[t->index[p]];
            dst[k] = acc;
        }
    }
}

static void apply_axis(const float *in, const int dims[3], int axis, const dk_taps *t, float *out)
{
    if (t->identity) {
        memcpy(out, in, (size_t)dims[0] * dims[1] * dims[2] * sizeof *out);
    } else if (axis == 2) {
        pass_contiguous(in, (size_t)dims[0] * dims[1], t, out);
    } else if (axis == 1) {
        pass_strided(in, dims[0], dims[2], t, out);
    } else {
        pass_strided(in, 1, dims[1] * dims[2], t, out);
    }
}

/* Multiply-adds of applying the operators in this order; the contiguous axis's
 * dot products count double (they do not vectorise). */
static double order_cost(const dk_taps taps[3], const int src_dims[3], const int order[3])
{
    double d[3] = {src_dims[0], src_dims[1], src_dims[2]}, cost = 0;
    for (int s = 0; s < 3; s++) {
        int a = order[s];
        if (!taps[a].identity)
            cost += (a == 2 ? 2.0 : 1.0) * taps[a].start[taps[a].n_dst] * d[0] * d[1] * d[2] / d[a];
        d[a] = taps[a].n_dst;
    }
    return cost;
}

/* The cheapest of the six axis orders (usually: shrink the data first, run the axis
 * with the widest kernel last). */
static void pass_order(const dk_taps taps[3], const int src_dims[3], int order[3])
{
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    double best = INFINITY;
    for (int o = 0; o < 6; o++) {
        double cost = order_cost(taps, src_dims, orders[o]);
        if (cost < best) {
            best = cost;
            memcpy(order, orders[o], sizeof orders[o]);
        }
    }
}

/* Whole-volume passes through two scratch volumes, in the cheapest axis order. */
static dk_status separable_volumes(const int src_dims[3], const float *in, const dk_taps taps[3],
                                   const int order[3], float *out, int channels, dk_err *err)
{
    /* sizes after the first and second passes bound the scratch */
    int d[3] = {src_dims[0], src_dims[1], src_dims[2]};
    size_t scratch = 0;
    for (int s = 0; s < 2; s++) {
        d[order[s]] = taps[order[s]].n_dst;
        size_t n = (size_t)d[0] * d[1] * d[2];
        if (n > scratch) scratch = n;
    }
    float *buf = malloc(2 * scratch * sizeof *buf);
    if (!buf) return dk_err_set(err, DK_ENOMEM, "resample: no memory for %zu floats", 2 * scratch);
    size_t n_in = (size_t)src_dims[0] * src_dims[1] * src_dims[2];
    size_t n_out = (size_t)taps[0].n_dst * taps[1].n_dst * taps[2].n_dst;
    for (int c = 0; c < channels; c++) {
        const float *cur = in + c * n_in;
        int dims[3] = {src_dims[0], src_dims[1], src_dims[2]};
        for (int s = 0; s < 3; s++) {
            int axis = order[s];
            float *dst = s == 2 ? out + c * n_out : buf + (s % 2) * scratch;
            apply_axis(cur, dims, axis, &taps[axis], dst);
            dims[axis] = taps[axis].n_dst;
            cur = dst;
        }
    }
    free(buf);
    return DK_OK;
}

/* z last, one source plane at a time: reduce the plane in-plane, then add it into
 * every output plane whose z taps use it. Scratch is a few planes, not volumes, so
 * big inputs cost no page faults and stay in cache. */
static dk_status separable_planes(const int src_dims[3], const float *in, const dk_taps taps[3],
                                  const int order[3], float *out, int channels, dk_err *err)
{
    const dk_taps *tz = &taps[0];
    int ny = src_dims[1], nx = src_dims[2], my = taps[1].n_dst, mx = taps[2].n_dst;
    size_t mid = (size_t)(order[0] == 1 ? my * nx : ny * mx), reduced = (size_t)my * mx;
    int n_taps = tz->start[tz->n_dst];
    /* z taps transposed: for source plane i, the (output plane, weight) pairs using it */
    int *by_src = calloc((size_t)tz->n_src + 1, sizeof *by_src);
    int *dst_plane = malloc(((size_t)n_taps + 1) * sizeof *dst_plane);
    float *dst_weight = malloc(((size_t)n_taps + 1) * sizeof *dst_weight);
    float *buf = malloc((mid + reduced) * sizeof *buf);
    dk_status st = DK_OK;
    if (!by_src || !dst_plane || !dst_weight || !buf)
        st = dk_err_set(err, DK_ENOMEM, "resample: no memory for plane scratch");
    for (int p = 0; !st && p < n_taps; p++)
        by_src[tz->index[p] + 1]++;
    for (int i = 0; !st && i < tz->n_src; i++)
        by_src[i + 1] += by_src[i];
    for (int k = 0; !st && k < tz->n_dst; k++)
        for (int p = tz->start[k]; p < tz->start[k + 1]; p++) {
            int slot = by_src[tz->index[p]]++;
            dst_plane[slot] = k;
            dst_weight[slot] = tz->weight[p];
        }
    for (int i = tz->n_src; !st && i > 0; i--)
        by_src[i] = by_src[i - 1]; /* undo the fill */
    if (!st) by_src[0] = 0;
    size_t n_in = (size_t)src_dims[0] * ny * nx, n_out = (size_t)tz->n_dst * reduced;
    if (!st) memset(out, 0, (size_t)channels * n_out * sizeof *out);
    for (int c = 0; c < channels && !st; c++)
        for (int i = 0; i < tz->n_src; i++) {
            int dims[3] = {1, ny, nx};
            apply_axis(in + c * n_in + (size_t)i * ny * nx, dims, order[0], &taps[order[0]], buf);
            dims[order[0]] = taps[order[0]].n_dst;
            apply_axis(buf, dims, order[1], &taps[order[1]], buf + mid);
            for (int q = by_src[i]; q < by_src[i + 1]; q++) {
                float *plane = out + c * n_out + (size_t)dst_plane[q] * reduced, w = dst_weight[q];
                for (size_t v = 0; v < reduced; v++)
                    plane[v] += w * buf[mid + v];
            }
        }
    free(by_src);
    free(dst_plane);
    free(dst_weight);
    free(buf);
    return st;
}

dk_status dk_resample_separable(const int src_dims[3], const float *in, const dk_taps taps[3],
                                float *out, int channels, dk_err *err)
{
    for (int a = 0; a < 3; a++)
        if (taps[a].n_src != src_dims[a])
            return dk_err_set(err, DK_EMISMATCH,
                              "resample: axis %d operator takes %d voxels, the input has %d", a,
                              taps[a].n_src, src_dims[a]);
    if (channels < 1) return dk_err_set(err, DK_EINVAL, "resample: channels %d < 1", channels);
    int order[3];
    pass_order(taps, src_dims, order);
    if (order[2] == 0 && !taps[0].identity)
        return separable_planes(src_dims, in, taps, order, out, channels, err);
    return separable_volumes(src_dims, in, taps, order, out, channels, err);
}

/* ---- grid-to-grid entry points ---- */

typedef dk_status (*taps_fn)(int, double, double, int, double, double, dk_taps *, dk_err *);

static dk_status build_taps(const dk_grid *src, const dk_grid *dst, taps_fn make, dk_taps taps[3],
                            dk_err *err)
{
    dk_status st = check_grid(src, "source", err);
    if (!st) st = check_grid(dst, "destination", err);
    memset(taps, 0, 3 * sizeof *taps);
    for (int a = 0; a < 3 && !st; a++)
        st = make(src->dims[a], src->origin[a], src->spacing[a], dst->dims[a], dst->origin[a],
                  dst->spacing[a], &taps[a], err);
    if (st)
        for (int a = 0; a < 3; a++)
            dk_taps_release(&taps[a]);
    return st;
}

static dk_status resample_with(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                               int channels, taps_fn make, dk_err *err)
{
    dk_taps taps[3];
    dk_status st = build_taps(src, dst, make, taps, err);
    if (st) return st;
    st = dk_resample_separable(src->dims, in, taps, out, channels, err);
    for (int a = 0; a < 3; a++)
        dk_taps_release(&taps[a]);
    return st;
}

dk_status dk_resample_linear(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                             int channels, dk_err *err)
{
    return resample_with(src, in, dst, out, channels, dk_taps_linear, err);
}

dk_status dk_resample_area(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                           int channels, dk_err *err)
{
    return resample_with(src, in, dst, out, channels, dk_taps_area, err);
}

/* Per axis: box-overlap where dst is coarser (averaging the fine voxels a coarse one
 * covers), linear where it is as fine or finer (box-overlap would make steps). */
dk_status dk_resample_image(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                            int channels, dk_err *err)
{
    dk_taps taps[3] = {{0}};
    dk_status st = DK_OK;
    for (int a = 0; !st && a < 3; a++) {
        bool coarser = dst->spacing[a] > src->spacing[a] * (1 + 1e-9);
        st = (coarser ? dk_taps_area : dk_taps_linear)(src->dims[a], src->origin[a],
                                                       src->spacing[a], dst->dims[a],
                                                       dst->origin[a], dst->spacing[a], &taps[a],
                                                       err);
    }
    if (!st) st = dk_resample_separable(src->dims, in, taps, out, channels, err);
    for (int a = 0; a < 3; a++)
        dk_taps_release(&taps[a]);
    return st;
}

/* ---- labels ---- */

static dk_status check_labels(const dk_grid *src, const uint8_t *in, int n_classes, dk_err *err)
{
    size_t n = dk_grid_voxels(src);
    for (size_t v = 0; v < n; v++) {
        if (in[v] >= n_classes) {
            size_t plane = (size_t)src->dims[1] * src->dims[2];
            return dk_err_set(err, DK_EINVAL,
                              "resample: label %d at voxel (z %zu, y %zu, x %zu) is not below "
                              "the class count %d",
                              in[v], v / plane, v % plane / src->dims[2], v % src->dims[2],
                              n_classes);
        }
    }
    return DK_OK;
}

static dk_status labels_nearest(const dk_grid *src, const uint8_t *in, const dk_grid *dst,
                                uint8_t *out, dk_err *err)
{
    int *near[3] = {NULL, NULL, NULL};
    dk_status st = DK_OK;
    for (int a = 0; a < 3 && !st; a++) {
        near[a] = malloc((size_t)dst->dims[a] * sizeof *near[a]);
        if (!near[a]) {
            st = dk_err_set(err, DK_ENOMEM, "resample: no memory for label tables");
            break;
        }
        for (int k = 0; k < dst->dims[a]; k++) {
            double t = (dst->origin[a] + k * dst->spacing[a] - src->origin[a]) / src->spacing[a];
            /* floor(t + 0.5) puts exact half-way points on the higher voxel, as round() would */
            double r = floor(t + 0.5);
            near[a][k] = r < 0 ? 0 : r > src->dims[a] - 1 ? src->dims[a] - 1 : (int)r;
        }
    }
    if (!st) {
        size_t o = 0;
        for (int k = 0; k < dst->dims[0]; k++)
            for (int j = 0; j < dst->dims[1]; j++) {
                const uint8_t *row =
                    in + ((size_t)near[0][k] * src->dims[1] + near[1][j]) * src->dims[2];
                for (int i = 0; i < dst->dims[2]; i++)
                    out[o++] = row[near[2][i]];
            }
    }
    for (int a = 0; a < 3; a++)
        free(near[a]);
    return st;
}

/* One output row (fixed k, j): add every overlapping source voxel's weight to its
 * class in hist[i][class], then take the heaviest class per output voxel. Ties
 * (within float rounding) go to the lower class id. */
static void majority_row(const dk_grid *src, const uint8_t *in, const dk_taps taps[3], int k, int j,
                         float *hist, uint8_t *out)
{
    const dk_taps *tz = &taps[0], *ty = &taps[1], *tx = &taps[2];
    int nx = tx->n_dst;
    memset(hist, 0, (size_t)nx * DK_MAX_CLASSES * sizeof *hist);
    for (int p = tz->start[k]; p < tz->start[k + 1]; p++)
        for (int q = ty->start[j]; q < ty->start[j + 1]; q++) {
            float wzy = tz->weight[p] * ty->weight[q];
            const uint8_t *row =
                in + ((size_t)tz->index[p] * src->dims[1] + ty->index[q]) * src->dims[2];
            for (int i = 0; i < nx; i++) {
                float *h = hist + (size_t)i * DK_MAX_CLASSES;
                for (int r = tx->start[i]; r < tx->start[i + 1]; r++)
                    h[row[tx->index[r]]] += wzy * tx->weight[r];
            }
        }
    for (int i = 0; i < nx; i++) {
        const float *h = hist + (size_t)i * DK_MAX_CLASSES;
        int best = 0;
        for (int c = 1; c < DK_MAX_CLASSES; c++)
            if (h[c] > h[best] + 1e-5f) best = c;
        out[i] = (uint8_t)best;
    }
}

static dk_status labels_majority(const dk_grid *src, const uint8_t *in, const dk_grid *dst,
                                 uint8_t *out, dk_err *err)
{
    dk_taps taps[3];
    dk_status st = build_taps(src, dst, dk_taps_area, taps, err);
    if (st) return st;
    float *hist = malloc((size_t)dst->dims[2] * DK_MAX_CLASSES * sizeof *hist);
    if (!hist) st = dk_err_set(err, DK_ENOMEM, "resample: no memory for label majority");
    for (int k = 0; k < dst->dims[0] && !st; k++)
        for (int j = 0; j < dst->dims[1]; j++)
            majority_row(src, in, taps, k, j, hist,
                         out + ((size_t)k * dst->dims[1] + j) * dst->dims[2]);
    free(hist);
    for (int a = 0; a < 3; a++)
        dk_taps_release(&taps[a]);
    return st;
}

dk_status dk_resample_labels(const dk_grid *src, const uint8_t *in, const dk_grid *dst,
                             uint8_t *out, int n_classes, bool majority, dk_err *err)
{
    if (n_classes < 1 || n_classes > 256 || (majority && n_classes > DK_MAX_CLASSES))
        return dk_err_set(err, DK_EINVAL, "resample: class count %d (expected 1..%d)", n_classes,
                          majority ? DK_MAX_CLASSES : 256);
    dk_status st = check_grid(src, "source", err);
    if (!st) st = check_grid(dst, "destination", err);
    if (!st) st = check_labels(src, in, n_classes, err);
    if (st) return st;
    return majority ? labels_majority(src, in, dst, out, err)
                    : labels_nearest(src, in, dst, out, err);
}
