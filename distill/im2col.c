/* im2col.c: the data-movement kernels of the conv engine (see im2col.h): column
 * tile gather (im2col), its adjoint scatter (col2im), the folded-kw combine and
 * its weight-gradient counterpart, and weight packing. No GEMM, no threads here. */
#include "distill/im2col.h"

#include <string.h>

#include "distill/hot_loop.h"

DK_HOT_LOOP static void add_into(float *restrict y, const float *restrict z, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += z[i];
}

DK_HOT_LOOP static void copy_plus(float *restrict y, const float *restrict z, float b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = z[i] + b;
}

DK_HOT_LOOP static void add_scalar(float *restrict y, float b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += b;
}

DK_HOT_LOOP static void copy_strided(float *restrict dst, const float *restrict src, int stride,
                                     size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i * (size_t)stride];
}

DK_HOT_LOOP static void copy_to_strided(float *restrict dst, const float *restrict src, float b,
                                        int stride, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i * (size_t)stride] = src[i] + b;
}

/* dst[2i] = a[i] + b, dst[2i + 1] = c[i] + b: two taps of a 2-wide kernel at stride 2. */
DK_HOT_LOOP static void zip_plus(float *restrict dst, const float *restrict a,
                                 const float *restrict c, float b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = a[i] + b;
        dst[2 * i + 1] = c[i] + b;
    }
}

DK_HOT_LOOP static void add_strided(float *restrict dst, const float *restrict src, int stride,
                                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i * (size_t)stride] += src[i];
}

void dk_conv_shape_init(dk_conv_shape *s, const dk_conv3d_geom *g, int cin, int cout,
                        const int in[3], const int out[3], int fold_axes)
{
    *s = (dk_conv_shape){.g = *g, .cin = cin, .cout = cout};
    memcpy(s->in, in, sizeof s->in);
    memcpy(s->out, out, sizeof s->out);
    s->in_spatial = (size_t)in[0] * in[1] * in[2];
    s->out_spatial = (size_t)out[0] * out[1] * out[2];
    s->taps = g->kernel[0] * g->kernel[1] * g->kernel[2];
    bool unit = s->taps == 1;
    for (int a = 0; a < 3; a++)
        unit = unit && g->stride[a] == 1 && g->pad[a] == 0;
    /* Folded axes must have stride 1 (every input column is then used by every
     * tap); folding h only pays when w is folded too. */
    if (fold_axes > 0 && (g->stride[2] != 1 || g->kernel[2] == 1)) fold_axes = 0;
    if (fold_axes > 1 && (g->stride[1] != 1 || g->kernel[1] == 1)) fold_axes = 1;
    s->fold_axes = unit ? 0 : fold_axes;
    s->mode = unit ? DK_COL_DIRECT : s->fold_axes ? DK_COL_FOLDED : DK_COL_FULL;
    s->fold_taps = s->fold_axes == 2   ? g->kernel[1] * g->kernel[2]
                   : s->fold_axes == 1 ? g->kernel[2]
                                       : 1;
    s->col_k = cin * s->taps / s->fold_taps;
    s->col_n = cout * s->fold_taps;
    s->unit_len = s->fold_axes == 2 ? in[1] * in[2] : s->fold_axes == 1 ? in[2] : 1;
    s->units = s->fold_axes == 2   ? (size_t)out[0]
               : s->fold_axes == 1 ? (size_t)out[0] * out[1]
                                   : s->out_spatial;
}

size_t dk_conv_tile_rows(const dk_conv_shape *s, size_t u0, size_t u1)
{
    return (u1 - u0) * (size_t)s->unit_len;
}

/* The half-open range of output positions o in [o0, o0 + n) whose input position
 * o * stride + off lies in [0, len). */
static void valid_range(int o0, int n, int stride, int off, int len, int *lo, int *hi)
{
    int a = 0, b = n;
    while (a < b && (o0 + a) * stride + off < 0)
        a++;
    while (b > a && (o0 + b - 1) * stride + off >= len)
        b--;
    *lo = a;
    *hi = b;
}

/* One kernel tap's column over output voxels [v0, v1) (FULL mode). */
static void gather_tap(const dk_conv_shape *s, const float *xc, int kd, int kh, int kw, size_t v0,
                       size_t v1, float *dst)
{
    const int *in = s->in, *out = s->out, *st = s->g.stride, *pad = s->g.pad;
    size_t v = v0;
    while (v < v1) {
        int wo = (int)(v % out[2]);
        size_t row = v / out[2];
        int ho = (int)(row % out[1]), dd = (int)(row / out[1]);
        int run = (int)((v1 - v) < (size_t)(out[2] - wo) ? v1 - v : (size_t)(out[2] - wo));
        int di = dd * st[0] + kd - pad[0], hi = ho * st[1] + kh - pad[1];
        if (di < 0 || di >= in[0] || hi < 0 || hi >= in[1]) {
            memset(dst, 0, sizeof(float) * run);
        } else {
            const float *src = xc + ((size_t)di * in[1] + hi) * in[2];
            int lo, hi_ = 0;
            valid_range(wo, run, st[2], kw - pad[2], in[2], &lo, &hi_);
            memset(dst, 0, sizeof(float) * lo);
            const float *first = src + (wo + lo) * st[2] + kw - pad[2];
            if (st[2] == 1)
                memcpy(dst + lo, first, sizeof(float) * (hi_ - lo));
            else
                copy_strided(dst + lo, first, st[2], hi_ - lo);
            memset(dst + hi_, 0, sizeof(float) * (run - hi_));
        }
        dst += run;
        v += run;
    }
}

/* One (ci, kd, kh) column of a w-folded tile: whole input rows, one per output row.
 * Output rows next to each other in a plane read input rows next to each other
 * (stride 1 along h), so each run of them is one copy. */
static void gather_rows(const dk_conv_shape *s, const float *xc, int kd, int kh, size_t u0,
                        size_t u1, float *dst)
{
    const int *in = s->in, *st = s->g.stride, *pad = s->g.pad;
    size_t u = u0;
    while (u < u1) {
        int ho = (int)(u % s->out[1]), dd = (int)(u / s->out[1]);
        int di = dd * st[0] + kd - pad[0], hi = ho * st[1] + kh - pad[1];
        if (di < 0 || di >= in[0] || hi < 0 || hi >= in[1]) {
            memset(dst, 0, sizeof(float) * in[2]);
            dst += in[2];
            u++;
            continue;
        }
        size_t run = 1;
        if (st[1] == 1)
            while (u + run < u1 && ho + (int)run < s->out[1] && hi + (int)run < in[1])
                run++;
        memcpy(dst, xc + ((size_t)di * in[1] + hi) * in[2], sizeof(float) * in[2] * run);
        dst += run * in[2];
        u += run;
    }
}

/* One (ci, kd) column of an hw-folded tile: whole input planes, one per output plane. */
static void gather_planes(const dk_conv_shape *s, const float *xc, int kd, size_t u0, size_t u1,
                          float *dst)
{
    size_t plane = (size_t)s->in[1] * s->in[2];
    for (size_t u = u0; u < u1; u++, dst += plane) {
        int di = (int)u * s->g.stride[0] + kd - s->g.pad[0];
        if (di < 0 || di >= s->in[0])
            memset(dst, 0, sizeof(float) * plane);
        else
            memcpy(dst, xc + (size_t)di * plane, sizeof(float) * plane);
    }
}

void dk_im2col_tile(const dk_conv_shape *s, const float *x, size_t u0, size_t u1, float *col)
{
    const int *k = s->g.kernel;
    size_t rows = dk_conv_tile_rows(s, u0, u1);
    float *dst = col;
    for (int c = 0; c < s->cin; c++) {
        const float *xc = x + (size_t)c * s->in_spatial;
        for (int kd = 0; kd < k[0]; kd++) {
            if (s->fold_axes == 2) {
                gather_planes(s, xc, kd, u0, u1, dst);
                dst += rows;
                continue;
            }
            for (int kh = 0; kh < k[1]; kh++) {
                if (s->fold_axes == 1) {
                    gather_rows(s, xc, kd, kh, u0, u1, dst);
                    dst += rows;
                    continue;
                }
                for (int kw = 0; kw < k[2]; kw++, dst += rows)
                    gather_tap(s, xc, kd, kh, kw, u0, u1, dst);
            }
        }
    }
}

/* Adjoint of gather_tap: dxc[input of v] += src[v - v0]; with assign, dxc[...] =
 * src[v - v0] + b instead. */
static void scatter_tap(const dk_conv_shape *s, const float *src, int kd, int kh, int kw, size_t v0,
                        size_t v1, bool assign, float b, float *dxc)
{
    const int *in = s->in, *out = s->out, *st = s->g.stride, *pad = s->g.pad;
    size_t v = v0;
    while (v < v1) {
        int wo = (int)(v % out[2]);
        size_t row = v / out[2];
        int ho = (int)(row % out[1]), dd = (int)(row / out[1]);
        int run = (int)((v1 - v) < (size_t)(out[2] - wo) ? v1 - v : (size_t)(out[2] - wo));
        int di = dd * st[0] + kd - pad[0], hi = ho * st[1] + kh - pad[1];
        if (di >= 0 && di < in[0] && hi >= 0 && hi < in[1]) {
            float *dst = dxc + ((size_t)di * in[1] + hi) * in[2];
            int lo, hi_ = 0;
            valid_range(wo, run, st[2], kw - pad[2], in[2], &lo, &hi_);
            float *first = dst + (wo + lo) * st[2] + kw - pad[2];
            if (assign)
                copy_to_strided(first, src + lo, b, st[2], hi_ - lo);
            else if (st[2] == 1)
                add_into(first, src + lo, hi_ - lo);
            else
                add_strided(first, src + lo, st[2], hi_ - lo);
        }
        src += run;
        v += run;
    }
}

/* Taps kw = 0 and 1 of a partitioning kernel 2 wide along w (the up-convs' case):
 * dxc's row at (dd * st + kd, ho * st + kh) gets src0 and src1 interleaved, plus b,
 * the values scatter_tap would assign one tap at a time. */
static void scatter_pair(const dk_conv_shape *s, const float *src0, const float *src1, int kd,
                         int kh, size_t v0, size_t v1, float b, float *dxc)
{
    const int *in = s->in, *out = s->out, *st = s->g.stride;
    for (size_t v = v0; v < v1;) {
        int wo = (int)(v % out[2]);
        size_t row = v / out[2];
        int ho = (int)(row % out[1]), dd = (int)(row / out[1]);
        size_t run = (v1 - v) < (size_t)(out[2] - wo) ? v1 - v : (size_t)(out[2] - wo);
        float *dst = dxc + ((size_t)(dd * st[0] + kd) * in[1] + ho * st[1] + kh) * in[2] + 2 * wo;
        zip_plus(dst, src0, src1, b, run);
        src0 += run, src1 += run, v += run;
    }
}

bool dk_col2im_tiles_partition(const dk_conv_shape *s)
{
    for (int a = 0; a < 3; a++)
        if (s->g.kernel[a] != s->g.stride[a] || s->g.pad[a] != 0 ||
            s->out[a] * s->g.stride[a] != s->in[a])
            return false;
    return true;
}

void dk_col2im_tile(const dk_conv_shape *s, const float *dcol, size_t u0, size_t u1, int c0, int c1,
                    const float *bias, float *dx)
{
    bool assign = dk_col2im_tiles_partition(s);
    const int *k = s->g.kernel;
    size_t rows = dk_conv_tile_rows(s, u0, u1);
    const float *src = dcol;
    for (int c = c0; c < c1; c++) {
        float *dxc = dx + (size_t)c * s->in_spatial, b = bias ? bias[c] : 0.0f;
        for (int kd = 0; kd < k[0]; kd++)
            for (int kh = 0; kh < k[1]; kh++) {
                if (assign && k[2] == 2) {
                    scatter_pair(s, src, src + rows, kd, kh, u0, u1, b, dxc);
                    src += 2 * rows;
                    continue;
                }
                for (int kw = 0; kw < k[2]; kw++, src += rows)
                    scatter_tap(s, src, kd, kh, kw, u0, u1, assign, b, dxc);
            }
    }
}

/* Output rows of one unit, input rows of its column tile, folded kh taps. */
static void unit_rows(const dk_conv_shape *s, int *rows_out, int *rows_in, int *fkh, int *ph)
{
    bool hw = s->fold_axes == 2;
    *rows_out = hw ? s->out[1] : 1;
    *rows_in = hw ? s->in[1] : 1;
    *fkh = hw ? s->g.kernel[1] : 1;
    *ph = hw ? s->g.pad[1] : 0;
}

/* The U-Net's case in one pass (kw = 3, pad 1, w = 3 or more): y[j] = z0[j - 1] + b
 * + z1[j] + z2[j + 1], terms outside the row left out, added in the same order as
 * combine_row adds them, so the result is the same to the bit. */
DK_HOT_LOOP static void combine3(float *restrict y, const float *restrict z0,
                                 const float *restrict z1, const float *restrict z2, float b, int w)
{
    y[0] = (b + z1[0]) + z2[1];
    for (int j = 1; j < w - 1; j++)
        y[j] = ((z0[j - 1] + b) + z1[j]) + z2[j + 1];
    y[w - 1] = (z0[w - 2] + b) + z1[w - 1];
}

static bool combine3_fits(const dk_conv_shape *s)
{
    return s->fold_axes == 1 && s->g.kernel[2] == 3 && s->g.pad[2] == 1 && s->g.stride[2] == 1 &&
           s->in[2] == s->out[2] && s->out[2] >= 3;
}

/* One output row: b + the sum over folded taps (fh, kw) of z's shifted rows. */
static void combine_row(const dk_conv_shape *s, const float *z, size_t rows, int r, int rows_in,
                        int fkh, int ph, int co, float b, float *yrow)
{
    int kw_n = s->g.kernel[2], pw = s->g.pad[2], win = s->in[2], wout = s->out[2];
    bool first = true;
    for (int fh = 0; fh < fkh; fh++) {
        int ri = r + fh - ph;
        if (ri < 0 || ri >= rows_in) continue;
        for (int kw = 0; kw < kw_n; kw++) {
            /* y[wo] += z_tap[wo + kw - pw] where that index is inside the row */
            int lo, hi;
            valid_range(0, wout, 1, kw - pw, win, &lo, &hi);
            size_t n = (size_t)(fh * kw_n + kw) * s->cout + co;
            const float *zk = z + n * rows + (size_t)ri * win + (lo + kw - pw);
            if (first) {
                for (int j = 0; j < lo; j++)
                    yrow[j] = b;
                copy_plus(yrow + lo, zk, b, hi - lo);
                for (int j = hi; j < wout; j++)
                    yrow[j] = b;
                first = false;
            } else {
                add_into(yrow + lo, zk, hi - lo);
            }
        }
    }
    if (first)
        for (int j = 0; j < wout; j++)
            yrow[j] = b;
}

void dk_combine_folded(const dk_conv_shape *s, const float *z, size_t u0, size_t u1,
                       const float *bias, float *y)
{
    int rows_out, rows_in, fkh, ph;
    unit_rows(s, &rows_out, &rows_in, &fkh, &ph);
    size_t rows = dk_conv_tile_rows(s, u0, u1), wout = s->out[2];
    if (combine3_fits(s)) {
        for (int co = 0; co < s->cout; co++) {
            float b = bias ? bias[co] : 0.0f;
            const float *z0 = z + (size_t)co * rows, *z1 = z0 + (size_t)s->cout * rows,
                        *z2 = z1 + (size_t)s->cout * rows;
            for (size_t u = u0; u < u1; u++) {
                size_t at = (u - u0) * wout;
                combine3(y + co * s->out_spatial + u * wout, z0 + at, z1 + at, z2 + at, b,
                         (int)wout);
            }
        }
        return;
    }
    for (int co = 0; co < s->cout; co++) {
        float b = bias ? bias[co] : 0.0f;
        for (size_t u = u0; u < u1; u++)
            for (int r = 0; r < rows_out; r++) {
                float *yrow = y + co * s->out_spatial + (u * rows_out + r) * wout;
                const float *zu = z + (u - u0) * s->unit_len;
                combine_row(s, zu, rows, r, rows_in, fkh, ph, co, b, yrow);
            }
    }
}

void dk_expand_dy_folded(const dk_conv_shape *s, const float *dy, size_t u0, size_t u1, float *g)
{
    int rows_out, rows_in, fkh, ph;
    unit_rows(s, &rows_out, &rows_in, &fkh, &ph);
    int kw_n = s->g.kernel[2], pw = s->g.pad[2], win = s->in[2], wout = s->out[2];
    size_t rows = dk_conv_tile_rows(s, u0, u1);
    for (int fh = 0; fh < fkh; fh++)
        for (int kw = 0; kw < kw_n; kw++)
            for (int co = 0; co < s->cout; co++) {
                float *gcol = g + (size_t)((fh * kw_n + kw) * s->cout + co) * rows;
                for (size_t u = u0; u < u1; u++)
                    for (int ri = 0; ri < rows_in; ri++) {
                        /* g[ri][wi] = dy[ri - fh + ph][wi - kw + pw] where inside the unit */
                        float *grow = gcol + (u - u0) * s->unit_len + (size_t)ri * win;
                        int r = ri - fh + ph;
                        if (r < 0 || r >= rows_out) {
                            memset(grow, 0, sizeof(float) * win);
                            continue;
                        }
                        const float *dyrow = dy + co * s->out_spatial + (u * rows_out + r) * wout;
                        int lo, hi;
                        valid_range(0, win, 1, pw - kw, wout, &lo, &hi);
                        memset(grow, 0, sizeof(float) * lo);
                        memcpy(grow + lo, dyrow + lo + pw - kw, sizeof(float) * (hi - lo));
                        memset(grow + hi, 0, sizeof(float) * (win - hi));
                    }
            }
}

/* The GEMM operand's layout: row (ci, unfolded taps), column (folded taps, co).
 * Folded axes are the trailing ones, so the flat tap index is u * fold_taps + f. */
void dk_pack_weight(const dk_conv_shape *s, const float *w, bool flip_transpose, float *b)
{
    /* Mirroring every axis reverses the flat tap index; transposing swaps which
     * channel indexes the stored (outer, inner) block. Written in b's order. */
    int taps = s->taps, ft = s->fold_taps, ut = taps / ft;
    float *dst = b;
    for (int f = 0; f < ft; f++)
        for (int co = 0; co < s->cout; co++)
            for (int ci = 0; ci < s->cin; ci++) {
                size_t block =
                    flip_transpose ? (size_t)ci * s->cout + co : (size_t)co * s->cin + ci;
                const float *src = w + block * taps;
                for (int u = 0; u < ut; u++) {
                    int t = u * ft + f;
                    *dst++ = src[flip_transpose ? taps - 1 - t : t];
                }
            }
}

void dk_unpack_weight_grad(const dk_conv_shape *s, const float *acc, float *dw)
{
    int taps = s->taps, ft = s->fold_taps, ut = taps / ft;
    size_t kk = (size_t)s->col_k;
    float *dst = dw;
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int t = 0; t < taps; t++) {
                size_t col = (size_t)(t % ft) * s->cout + co;
                *dst++ += acc[col * kk + (size_t)ci * ut + t / ft];
            }
}

void dk_add_floats(float *y, const float *z, size_t n)
{
    add_into(y, z, n);
}

void dk_add_bias_tile(const float *bias, int channels, size_t spatial, size_t v0, size_t v1,
                      float *y)
{
    for (int co = 0; co < channels; co++)
        add_scalar(y + co * spatial + v0, bias[co], v1 - v0);
}

DK_HOT_LOOP static void sum_lanes(const float *restrict x, size_t blocks, float *restrict lanes)
{
    for (size_t b = 0; b < blocks; b++)
        for (int j = 0; j < 16; j++)
            lanes[j] += x[b * 16 + j];
}

double dk_sum_floats(const float *x, size_t n)
{
    /* float lanes over chunks of 4096 values keep rounding error small; the chunk
     * sums are added in double in a fixed order. */
    double total = 0;
    for (size_t start = 0; start < n; start += 4096) {
        size_t len = n - start < 4096 ? n - start : 4096;
        float lanes[16] = {0};
        sum_lanes(x + start, len / 16, lanes);
        double chunk = 0;
        for (int j = 0; j < 16; j++)
            chunk += lanes[j];
        for (size_t i = len / 16 * 16; i < len; i++)
            chunk += x[start + i];
        total += chunk;
    }
    return total;
}
