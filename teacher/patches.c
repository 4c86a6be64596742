/* patches.c: foreground-biased patch sampling and augmentation for teacher
 * training (patches.h). The config and the training loop live in train_config.c
 * and train.c. */
#include "teacher/patches.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dk_status dk_patch_source_init(dk_patch_source *s, dk_volume *v, int classes, dk_err *err)
{
    memset(s, 0, sizeof *s);
    if (!v->label) return dk_err_set(err, DK_EINVAL, "volume '%s' has no label map", v->id);
    if (classes < 2 || classes > DK_MAX_CLASSES)
        return dk_err_set(err, DK_EINVAL, "volume '%s': %d classes, expected 2..%d", v->id, classes,
                          DK_MAX_CLASSES);
    size_t n = dk_volume_voxels(v);
    if (n > UINT32_MAX)
        return dk_err_set(err, DK_ELIMIT, "volume '%s': %zu voxels exceed the patch index", v->id,
                          n);
    long counts[DK_MAX_CLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        if (v->label[i] >= classes)
            return dk_err_set(err, DK_EINVAL, "volume '%s': label %d at voxel %zu >= %d classes",
                              v->id, v->label[i], i, classes);
        counts[v->label[i]]++;
    }
    /* class 0 (background) gets no index: only foreground centres are drawn from it */
    s->class_start[0] = s->class_start[1] = 0;
    for (int c = 1; c < classes; c++)
        s->class_start[c + 1] = s->class_start[c] + counts[c];
    for (int c = classes + 1; c <= DK_MAX_CLASSES; c++)
        s->class_start[c] = s->class_start[classes];
    long total = s->class_start[classes];
    s->class_voxels = malloc((size_t)(total ? total : 1) * sizeof *s->class_voxels);
    if (!s->class_voxels)
        return dk_err_set(err, DK_ENOMEM, "volume '%s': no memory for the foreground index", v->id);
    long fill[DK_MAX_CLASSES];
    memcpy(fill, s->class_start, sizeof fill);
    for (size_t i = 0; i < n; i++)
        if (v->label[i]) s->class_voxels[fill[v->label[i]]++] = (uint32_t)i;
    memcpy(s->dims, v->dims, sizeof s->dims);
    memcpy(s->spacing, v->spacing, sizeof s->spacing);
    s->image = v->image;
    s->label = v->label;
    s->classes = classes;
    v->image = NULL;
    v->label = NULL;
    return DK_OK;
}

void dk_patch_source_release(dk_patch_source *s)
{
    free(s->image);
    free(s->label);
    free(s->class_voxels);
    memset(s, 0, sizeof *s);
}

/* Keep a patch centred at c inside [0, dim) when it fits; centre it when it does not. */
static int clamp_centre(int c, int dim, int p)
{
    if (dim < p) return dim / 2;
    int lo = p / 2, hi = dim - p + p / 2;
    return c < lo ? lo : c > hi ? hi : c;
}

static void draw_foreground_centre(const dk_patch_source *s, dk_rng *rng, int centre[3])
{
    int present[DK_MAX_CLASSES], count = 0;
    for (int c = 1; c < s->classes; c++)
        if (s->class_start[c + 1] > s->class_start[c]) present[count++] = c;
    int c = present[dk_rng_below(rng, (uint64_t)count)];
    long k = s->class_start[c] +
             (long)dk_rng_below(rng, (uint64_t)(s->class_start[c + 1] - s->class_start[c]));
    uint32_t i = s->class_voxels[k];
    const uint32_t plane = (uint32_t)s->dims[1] * (uint32_t)s->dims[2];
    centre[0] = (int)(i / plane);
    centre[1] = (int)(i % plane / (uint32_t)s->dims[2]);
    centre[2] = (int)(i % (uint32_t)s->dims[2]);
}

static float uniform_pm(dk_rng *rng, float r)
{
    return (float)((2 * dk_rng_uniform(rng) - 1) * r);
}

void dk_patch_draw(const dk_patch_source *sources, int count, const int patch[3],
                   float foreground_fraction, const dk_augment_config *aug, dk_rng *rng,
                   dk_patch_params *p)
{
    memset(p, 0, sizeof *p);
    p->volume = (int)dk_rng_below(rng, (uint64_t)count);
    const dk_patch_source *s = &sources[p->volume];
    /* the draw order is fixed: the run's reproducibility depends on it */
    bool want_fg = dk_rng_uniform(rng) < foreground_fraction;
    p->foreground = want_fg && s->class_start[s->classes] > 0;
    if (p->foreground) {
        draw_foreground_centre(s, rng, p->centre);
    } else {
        for (int a = 0; a < 3; a++) {
            int span = s->dims[a] - patch[a] + 1;
            p->centre[a] = span > 0 ? patch[a] / 2 + (int)dk_rng_below(rng, (uint64_t)span) : 0;
        }
    }
    for (int a = 0; a < 3; a++)
        p->centre[a] = clamp_centre(p->centre[a], s->dims[a], patch[a]);
    for (int a = 0; a < 3; a++)
        p->flip[a] = dk_rng_uniform(rng) < aug->flip[a];
    p->angle = uniform_pm(rng, aug->rotate_degrees) * (float)(M_PI / 180.0);
    p->scale = 1.0f + uniform_pm(rng, aug->intensity_scale);
    p->shift = uniform_pm(rng, aug->intensity_shift);
    dk_appearance_draw(&aug->appearance, s->classes, rng, &p->appearance);
}

/* Offset from the patch centre of output index o along an axis of length p. */
static int offset_of(int o, int p, bool flip)
{
    return (flip ? p - 1 - o : o) - p / 2;
}

/* Copy one output row with no rotation: integer positions, exact values. */
static void row_straight(const dk_patch_source *s, int z, int y, const int patch[3],
                         const dk_patch_params *p, float *image, uint8_t *label)
{
    const int W = s->dims[2];
    bool row_in = z >= 0 && z < s->dims[0] && y >= 0 && y < s->dims[1];
    size_t base = row_in ? ((size_t)z * s->dims[1] + (size_t)y) * (size_t)W : 0;
    for (int i = 0; i < patch[2]; i++) {
        int x = p->centre[2] + offset_of(i, patch[2], p->flip[2]);
        if (row_in && x >= 0 && x < W) {
            image[i] = s->image[base + (size_t)x] * p->scale + p->shift;
            label[i] = s->label[base + (size_t)x];
        } else {
            image[i] = p->shift;
            label[i] = 0;
        }
    }
}

static float pixel(const dk_patch_source *s, const float *plane, int y, int x)
{
    if (y < 0 || y >= s->dims[1] || x < 0 || x >= s->dims[2]) return 0.0f;
    return plane[(size_t)y * s->dims[2] + (size_t)x];
}

/* One output row under in-plane rotation: bilinear image, nearest label. */
static void row_rotated(const dk_patch_source *s, int z, double oy, const int patch[3],
                        const dk_patch_params *p, float *image, uint8_t *label)
{
    const double sy = s->spacing[1], sx = s->spacing[2];
    const double c = cos(p->angle), sn = sin(p->angle);
    bool z_in = z >= 0 && z < s->dims[0];
    const size_t plane_size = (size_t)s->dims[1] * s->dims[2];
    const float *plane = z_in ? s->image + (size_t)z * plane_size : NULL;
    const uint8_t *lplane = z_in ? s->label + (size_t)z * plane_size : NULL;
    for (int i = 0; i < patch[2]; i++) {
        double ox = offset_of(i, patch[2], p->flip[2]) * sx, my = oy * sy;
        double y = p->centre[1] + (c * my - sn * ox) / sy;
        double x = p->centre[2] + (sn * my + c * ox) / sx;
        float v = 0.0f;
        uint8_t l = 0;
        if (z_in) {
            int y0 = (int)floor(y), x0 = (int)floor(x);
            float fy = (float)(y - y0), fx = (float)(x - x0);
            v = (1 - fy) * ((1 - fx) * pixel(s, plane, y0, x0) + fx * pixel(s, plane, y0, x0 + 1)) +
                fy *
                    ((1 - fx) * pixel(s, plane, y0 + 1, x0) + fx * pixel(s, plane, y0 + 1, x0 + 1));
            int yn = (int)lround(y), xn = (int)lround(x);
            if (yn >= 0 && yn < s->dims[1] && xn >= 0 && xn < s->dims[2])
                l = lplane[(size_t)yn * s->dims[2] + (size_t)xn];
        }
        image[i] = v * p->scale + p->shift;
        label[i] = l;
    }
}

void dk_patch_extract(const dk_patch_source *s, const int patch[3], const dk_patch_params *p,
                      float *image, uint8_t *label)
{
    for (int k = 0; k < patch[0]; k++) {
        int z = p->centre[0] + offset_of(k, patch[0], p->flip[0]);
        for (int j = 0; j < patch[1]; j++) {
            int oy = offset_of(j, patch[1], p->flip[1]);
            size_t at = ((size_t)k * patch[1] + (size_t)j) * patch[2];
            if (p->angle == 0.0f)
                row_straight(s, z, p->centre[1] + oy, patch, p, image + at, label + at);
            else
                row_rotated(s, z, oy, patch, p, image + at, label + at);
        }
    }
}
