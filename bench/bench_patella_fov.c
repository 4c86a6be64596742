/* bench_patella_fov.c: how much of the synthetic patella and its cartilage the fixed
 * field of view (DK_KNEE_ROI_*) holds, per built-in profile: the fraction of scans
 * with any patellar cartilage voxel, their mean count, and the share of the patella's
 * and its cartilage's volume inside the box (from a render on a 0.7 mm grid reaching
 * far above and in front of it). Usage: bench_patella_fov [--n K] (default 24). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/profile.h"
#include "datasets/synth_knee.h"

/* A 0.7 mm grid from 100 mm above to 50 mm below the box's centre, 90 mm in front of
 * it to 40 mm behind, 60 mm wide: it holds every patella the generator draws. */
static dk_grid wide_grid(void)
{
    const double lo[3] = {-30, -100, -90}, hi[3] = {30, 50, 40};
    dk_grid g;
    for (int a = 0; a < 3; a++) {
        g.spacing[a] = 0.7;
        g.dims[a] = (int)((hi[a] - lo[a]) / 0.7);
        g.origin[a] = lo[a];
    }
    return g;
}

/* Voxels of label inside the box and in all; reach: how far (mm) the label extends above
 * the box's top (y) and in front of its front (x), the maximum so far. */
static void count_in_box(const dk_volume *v, uint8_t label, double *inside, double *all,
                         double reach[2])
{
    const double half[3] = {DK_KNEE_ROI_Z / 2, DK_KNEE_ROI_Y / 2, DK_KNEE_ROI_X / 2};
    for (int k = 0; k < v->dims[0]; k++)
        for (int j = 0; j < v->dims[1]; j++)
            for (int i = 0; i < v->dims[2]; i++) {
                if (v->label[((size_t)k * v->dims[1] + j) * v->dims[2] + i] != label) continue;
                double p[3] = {v->origin[0] + k * v->spacing[0], v->origin[1] + j * v->spacing[1],
                               v->origin[2] + i * v->spacing[2]};
                int in = 1;
                for (int a = 0; a < 3; a++)
                    in &= p[a] > -half[a] && p[a] < half[a];
                *inside += in;
                *all += 1;
                for (int a = 1; a < 3; a++)
                    if (-half[a] - p[a] > reach[a - 1]) reach[a - 1] = -half[a] - p[a];
            }
}

static int run_profile(const char *name, int n)
{
    dk_err err = {0};
    dk_profile p;
    if (dk_profile_builtin(name, &p, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    dk_grid wide = wide_grid();
    int with_cartilage = 0;
    double cart_voxels = 0, pat_in = 0, pat_all = 0, cart_in = 0, cart_all = 0;
    double sum_reach[2] = {0, 0}, max_reach[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        dk_knee_subject s;
        dk_knee_subject_draw_mix(1, (uint64_t)i, p.oa_grades, &s);
        s.classes = DK_KNEE_CLASSES_ANATOMY;
        dk_volume v, w;
        if (dk_knee_synth(&s, &p, NULL, true, "fov", &v, &err) ||
            dk_knee_render(&s, "dess", &wide, "wide", &w, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        size_t count = 0;
        for (size_t k = 0; k < dk_volume_voxels(&v); k++)
            count += v.label[k] == DK_KNEE_PATELLAR_CARTILAGE;
        with_cartilage += count > 0;
        cart_voxels += (double)count;
        double reach[2] = {-1e9, -1e9}, ignored[2] = {-1e9, -1e9};
        count_in_box(&w, DK_KNEE_PATELLA, &pat_in, &pat_all, reach);
        count_in_box(&w, DK_KNEE_PATELLAR_CARTILAGE, &cart_in, &cart_all, ignored);
        for (int a = 0; a < 2; a++) {
            sum_reach[a] += reach[a];
            if (reach[a] > max_reach[a]) max_reach[a] = reach[a];
        }
        dk_volume_release(&v);
        dk_volume_release(&w);
    }
    printf("%-16s scans with patellar cartilage %2d/%d, mean %.0f voxels; in the box: %.0f %% "
           "of the patella, %.0f %% of its cartilage\n",
           name, with_cartilage, n, cart_voxels / n, 100 * pat_in / pat_all,
           100 * cart_in / cart_all);
    printf("%-16s the patella reaches above the box by %.1f mm (mean; max %.1f), in front of "
           "it by %.1f (max %.1f)\n",
           "", sum_reach[0] / n, max_reach[0], sum_reach[1] / n, max_reach[1]);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 2 && strcmp(argv[1], "--n") == 0 ? atoi(argv[2]) : 24;
    if (n < 1) n = 1;
    printf("patella in the fixed field of view (%.1f x %.1f x %.1f mm), %d subjects per "
           "profile (seed 1, the profile's grade mix)\n",
           DK_KNEE_ROI_Z, DK_KNEE_ROI_Y, DK_KNEE_ROI_X, n);
    const char *profiles[] = {"repository", "clinical-3.3mm", "clinical-4.5mm"};
    for (int i = 0; i < 3; i++)
        if (run_profile(profiles[i], n)) return 1;
    return 0;
}
