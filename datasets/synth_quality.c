/* synth_quality.c: the planning and image quality of one synthetic scan
 * (synth_quality.h): its field of view, wrap-around and motion ghosts. Periodic
 * motion during a 2D Fourier acquisition (breathing, pulsation, tremor) modulates the
 * phase-encode lines; its image is the object plus faint shifted copies of itself
 * along the phase-encode axis, spaced by the ratio of the motion period to the time
 * between phase-encode steps, wrapping at the field of view's edges. */
#include "datasets/synth_quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth_anatomy.h"
#include "datasets/synth_knee.h"

static void ghost_line(float *line, size_t stride, int n, const float *copy, float a, int step)
{
    for (int i = 0; i < n; i++) {
        int p1 = (i + step) % n, m1 = ((i - step) % n + n) % n;
        int p2 = (i + 2 * step) % n, m2 = ((i - 2 * step) % n + n) % n;
        float v = copy[i] + a * (copy[p1] + copy[m1]) - 0.5f * a * (copy[p2] + copy[m2]);
        line[(size_t)i * stride] = fabsf(v);
    }
}

dk_status dk_knee_ghosts(float *image, const int dims[3], int axis, double amplitude, int step,
                         dk_err *err)
{
    if (axis != 1 && axis != 2)
        return dk_err_set(err, DK_EINVAL, "ghosts: phase-encode axis %d (expected 1 or 2)", axis);
    int n = dims[axis];
    if (step < 1 || step >= n)
        return dk_err_set(err, DK_EINVAL, "ghosts: step %d (expected 1..%d)", step, n - 1);
    if (!(amplitude > 0)) return DK_OK;
    float *copy = malloc(sizeof *copy * (size_t)n);
    if (!copy) return dk_err_set(err, DK_ENOMEM, "ghosts: no memory for a line of %d", n);
    size_t stride = axis == 2 ? 1 : (size_t)dims[2];
    int other = axis == 2 ? dims[1] : dims[2];
    for (int z = 0; z < dims[0]; z++)
        for (int o = 0; o < other; o++) {
            float *line = image + (size_t)z * dims[1] * dims[2] +
                          (axis == 2 ? (size_t)o * dims[2] : (size_t)o);
            for (int i = 0; i < n; i++)
                copy[i] = line[(size_t)i * stride];
            ghost_line(line, stride, n, copy, (float)amplitude, step);
        }
    free(copy);
    return DK_OK;
}

/* ---- the field of view a technologist planned, and wrap-around ---- */

static double draw_in(uint64_t *st, const double range[2])
{
    double u = knee_rng_uniform(st, 0, 1);
    return range[1] > 0 ? range[0] + u * (range[1] - range[0]) : 1;
}

void dk_knee_scan_draw(const dk_knee_subject *s, const dk_profile *profile, dk_knee_scan *out)
{
    /* a stream of its own: the subject's anatomy and quality draws stay as they were */
    uint64_t st = s->seed ^ 0x5BE0CD19137E2179ULL;
    double inplane = draw_in(&st, profile->fov_scale); /* square in-plane, as planned */
    double coverage = draw_in(&st, profile->slice_coverage);
    double u = knee_rng_uniform(&st, 0, 1);
    double width = knee_rng_uniform(&st, profile->wrap_mm[0], profile->wrap_mm[1]);
    out->fov_scale[0] = coverage;
    out->fov_scale[1] = out->fov_scale[2] = inplane;
    out->wrap_mm = u < profile->wrap_probability ? width : 0;
    out->phase_axis = s->phase_axis == 1 ? 1 : 2;
}

void dk_knee_fold(const float *src, const int src_dims[3], int axis, int strip, float *dst)
{
    int n = src_dims[axis] - 2 * strip; /* the field of view along axis */
    int ny = axis == 1 ? n : src_dims[1], nx = axis == 2 ? n : src_dims[2];
    for (int z = 0; z < src_dims[0]; z++)
        for (int y = 0; y < ny; y++)
            for (int x = 0; x < nx; x++) {
                int i = axis == 1 ? y : x; /* position along axis in the field of view */
                int sy = axis == 1 ? y + strip : y, sx = axis == 2 ? x + strip : x;
                size_t row = (size_t)z * src_dims[1], at = (row + sy) * src_dims[2] + sx;
                size_t step = axis == 1 ? (size_t)src_dims[2] : 1;
                float v = src[at];
                if (i < strip) v += src[at + (size_t)n * step]; /* from beyond the far edge */
                if (i >= n - strip) v += src[at - (size_t)n * step]; /* beyond the near one */
                dst[((size_t)z * ny + y) * nx + x] = v;
            }
}
