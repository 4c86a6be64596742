/* synth_quality.c: motion ghosting of a synthetic scan (synth_quality.h). Periodic
 * motion during a 2D Fourier acquisition (breathing, pulsation, tremor) modulates the
 * phase-encode lines; its image is the object plus faint shifted copies of itself
 * along the phase-encode axis, spaced by the ratio of the motion period to the time
 * between phase-encode steps, wrapping at the field of view's edges. */
#include "datasets/synth_quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
