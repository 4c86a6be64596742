/* bench_precompute.c: target precompute throughput (volumes/s) and store bytes
 * per volume for the clinical profiles.
 *
 *   bench_precompute TEACHER.h5 REPO.h5 [volumes] [passes] [threads]
 *
 * Copies the first `volumes` (default 2) volumes of REPO.h5 into a scratch
 * dataset, runs the full precompute (N = passes, default 8) for clinical-3.3mm
 * and clinical-4.5mm, and prints one line per profile. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_subset.h"
#include "datasets/dataset.h"
#include "distill/blas.h"
#include "teacher/precompute.h"
#include "teacher/precompute_run.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TEACHER.h5 REPO.h5 [volumes] [passes] [threads]\n", argv[0]);
        return 2;
    }
    /* The kernels `dualkd` runs with (without this, OpenBLAS may pick far slower ones). */
    dk_blas_reexec_for_fast_kernels(argv);
    int volumes = argc > 3 ? atoi(argv[3]) : 2, passes = argc > 4 ? atoi(argv[4]) : 8;
    dk_blas_set_threads(argc > 5 ? atoi(argv[5]) : 2);
    char dir[] = "/tmp/bench_precompute-XXXXXX", data[256], cmd[300];
    if (!mkdtemp(dir)) return 1;
    snprintf(data, sizeof data, "%s/repo.h5", dir);
    dk_err err = {0};
    int n = bench_subset(argv[2], data, volumes, &err);
    if (n < 1) {
        fprintf(stderr, "bench_precompute: %s\n", err.msg);
        return 1;
    }
    printf("teacher %s, %d volume(s) of %s, %d passes, OpenBLAS %s kernels, %d threads\n", argv[1],
           n, argv[2], passes, dk_blas_corename(), dk_blas_threads());
    const char *profiles[2] = {"clinical-3.3mm", "clinical-4.5mm"};
    for (int p = 0; p < 2; p++) {
        dk_precompute_options o = dk_precompute_options_default();
        o.teacher_path = argv[1], o.data_path = data, o.out_dir = dir, o.passes = passes;
        dk_precompute_result res;
        if (dk_profile_builtin(profiles[p], &o.profile, &err) ||
            dk_precompute_run(&o, &res, &err)) {
            fprintf(stderr, "bench_precompute: %s\n", err.msg);
            return 1;
        }
        struct stat sb;
        stat(res.store_path, &sb);
        printf("%-16s %7.4f volumes/s  (%.2f s/volume)  store %.2f MB/volume\n", profiles[p],
               res.computed / res.seconds, res.seconds / res.computed,
               (double)sb.st_size / res.samples / 1e6);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
