/* bench_metrics.c: seconds for per-class Dice, HD95 and ASSD (datasets/metrics.h) of
 * two 4-class label maps at the clinical size 16 x 288 x 352 (3.3 x 0.31 x 0.31 mm),
 * the cost `dualkd eval` and POST /v1/evaluate pay per volume. The maps are two
 * slightly different stacks of ellipsoidal shells, so every class has a large surface. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "datasets/metrics.h"

static void shells(uint8_t *m, const int d[3], double shift)
{
    for (int k = 0; k < d[0]; k++)
        for (int j = 0; j < d[1]; j++)
            for (int i = 0; i < d[2]; i++) {
                double z = (k - 8) / 8.0, y = (j - 144 - shift) / 120.0, x = (i - 176) / 150.0;
                double r = sqrt(x * x + y * y + z * z);
                m[((size_t)k * d[1] + j) * d[2] + i] = r < 0.4 ? 1 : r < 0.6 ? 2 : r < 0.8 ? 3 : 0;
            }
}

int main(void)
{
    int d[3] = {16, 288, 352};
    const double s[3] = {3.3, 0.31, 0.31};
    size_t V = (size_t)d[0] * d[1] * d[2];
    uint8_t *p = malloc(V), *g = malloc(V);
    if (!p || !g) return 1;
    shells(g, d, 0);
    shells(p, d, 3);
    dk_class_metrics m[4];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (dk_metrics_labels(p, g, d, s, 4, m, NULL) != DK_OK) return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("metrics 16x288x352, 4 classes: %.3f s\n",
           (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9);
    for (int c = 0; c < 4; c++)
        printf("  class %d: dice %.4f hd95 %.3f mm assd %.3f mm\n", c, m[c].dice, m[c].hd95,
               m[c].assd);
    free(p);
    free(g);
    return 0;
}
