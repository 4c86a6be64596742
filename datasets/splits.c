/* splits.c: deterministic few-shot splits (splits.h): a seeded Fisher-Yates
 * permutation cut into consecutive runs, one per role. */
#include "datasets/splits.h"

#include <stdlib.h>

const char *dk_split_role_name(dk_split_role role)
{
    switch (role) {
    case DK_SPLIT_TRAIN: return "train";
    case DK_SPLIT_LABELLED: return "labelled";
    case DK_SPLIT_UNLABELLED: return "unlabelled";
    case DK_SPLIT_VALIDATION: return "validation";
    }
    return "";
}

int dk_split_default_validation(int n)
{
    if (n < 2) return 0;
    int v = (int)((n + 2) / 5); /* round(0.2 n) */
    if (v < 1) v = 1;
    return v > n - 1 ? n - 1 : v;
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

dk_status dk_split_assign(int n, const dk_split_plan *plan, uint64_t seed, dk_split_role *roles,
                          dk_err *err)
{
    const int counts[4] = {plan->validation, plan->train, plan->labelled, plan->unlabelled};
    const dk_split_role order[4] = {DK_SPLIT_VALIDATION, DK_SPLIT_TRAIN, DK_SPLIT_LABELLED,
                                    DK_SPLIT_UNLABELLED};
    long long total = 0;
    for (int r = 0; r < 4; r++) {
        if (counts[r] < 0)
            return dk_err_set(err, DK_EINVAL, "split: %s count %d (expected >= 0)",
                              dk_split_role_name(order[r]), counts[r]);
        total += counts[r];
    }
    if (n < 0 || total != n)
        return dk_err_set(err, DK_EINVAL,
                          "split: train %d + labelled %d + unlabelled %d + validation %d = %lld, "
                          "but there are %d volumes",
                          plan->train, plan->labelled, plan->unlabelled, plan->validation, total, n);
    int *perm = malloc(sizeof *perm * (size_t)(n > 0 ? n : 1));
    if (!perm) return dk_err_set(err, DK_ENOMEM, "split: no memory for %d volumes", n);
    for (int i = 0; i < n; i++) perm[i] = i;
    uint64_t st = seed ^ 0x5851F42D4C957F2DULL;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(splitmix(&st) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int pos = 0;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < counts[r]; c++) roles[perm[pos++]] = order[r];
    free(perm);
    return DK_OK;
}
