/* bench_synth.c: speed of the synthetic knee generator (seconds per volume, one
 * core) and the per-class voxel fractions it produces, at the repository and at
 * the clinical profiles. Usage: bench_synth [--n K] (default 6 subjects each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/profile.h"
#include "datasets/synth_knee.h"
#include "distill/clock.h"

static int run_profile(const char *name, int n)
{
    dk_err err = {0};
    dk_profile p;
    if (dk_profile_builtin(name, &p, &err)) {
        fprintf(stderr, "bench_synth: %s\n", err.msg);
        return 1;
    }
    dk_classes classes;
    dk_knee_classes(&classes);
    double counts[DK_MAX_CLASSES] = {0}, total = 0, seconds = 0, cpu = 0;
    int lo[3] = {1 << 30, 1 << 30, 1 << 30}, hi[3] = {0}; /* clinical scans vary */
    for (int i = 0; i < n; i++) {
        dk_knee_subject s;
        dk_knee_subject_draw_mix(1, (uint64_t)i, p.oa_grades, &s);
        dk_volume v;
        double t0 = dk_clock_seconds();
        clock_t c0 = clock();
        if (dk_knee_synth(&s, &p, NULL, true, "bench", &v, &err)) {
            fprintf(stderr, "bench_synth: %s\n", err.msg);
            return 1;
        }
        seconds += dk_clock_seconds() - t0;
        cpu += (double)(clock() - c0) / CLOCKS_PER_SEC;
        for (int a = 0; a < 3; a++) {
            lo[a] = v.dims[a] < lo[a] ? v.dims[a] : lo[a];
            hi[a] = v.dims[a] > hi[a] ? v.dims[a] : hi[a];
        }
        size_t vox = dk_volume_voxels(&v);
        for (size_t k = 0; k < vox; k++) counts[v.label[k]]++;
        total += (double)vox;
        dk_volume_release(&v);
    }
    printf("%-16s %3d-%-3d x %3d-%-3d x %3d-%-3d (mean %.0fk voxels)  %.3f s/volume (CPU %.3f s)  ",
           name, lo[0], hi[0], lo[1], hi[1], lo[2], hi[2], total / n / 1000, seconds / n, cpu / n);
    for (int c = 0; c < classes.count; c++) printf(" %s=%.4f", classes.names[c], counts[c] / total);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 2 && strcmp(argv[1], "--n") == 0 ? atoi(argv[2]) : 6;
    if (n < 1) n = 1;
    printf("synthetic knee generator: %d subjects per profile (the profile's grade mix), one\n"
           "core, wall and CPU time per volume\n",
           n);
    const char *profiles[] = {"repository", "clinical-3.3mm", "clinical-4.5mm"};
    for (int i = 0; i < 3; i++)
        if (run_profile(profiles[i], n)) return 1;
    return 0;
}
