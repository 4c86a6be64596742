/* splits.h: deterministic few-shot splits: which volumes of a dataset a site may
 * train on with labels, which only without, and which it holds out for validation.
 *
 * A split is a seeded permutation of the n volumes: the first `validation` of the
 * permutation are validation, the next `train` train, then `labelled`, then
 * `unlabelled`. Same n, plan and seed -> the same roles, on every machine. */
#ifndef DK_SPLITS_H
#define DK_SPLITS_H

#include <stdint.h>

#include "distill/err.h"

typedef enum dk_split_role {
    DK_SPLIT_TRAIN,      /* a repository volume used for training (labelled) */
    DK_SPLIT_LABELLED,   /* a site's few labelled training volumes */
    DK_SPLIT_UNLABELLED, /* a site's volumes without labels (their labels are dropped) */
    DK_SPLIT_VALIDATION, /* held out, labelled */
} dk_split_role;

typedef struct dk_split_plan {
    int train, labelled, unlabelled, validation; /* counts, each >= 0 */
} dk_split_plan;

/* The split name stored in a dataset for a role: "train", "labelled", "unlabelled",
 * "validation". Static storage. */
const char *dk_split_role_name(dk_split_role role);

/* The default validation count for n labelled volumes: 20 %, rounded, at least 1
 * when n >= 2, and always leaving at least one for training. */
int dk_split_default_validation(int n);

/* Fill roles[0..n) for plan. DK_EINVAL (naming the counts) when a count is negative or
 * they do not add up to n. */
dk_status dk_split_assign(int n, const dk_split_plan *plan, uint64_t seed, dk_split_role *roles,
                          dk_err *err);

#endif
