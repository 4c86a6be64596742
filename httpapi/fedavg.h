/* fedavg.h: checking a site's update against the global student, and federated
 * averaging of the accepted ones (docs/federation.md, "Aggregation" and
 * "Refusals").
 *
 * An update is the weight delta of the global student: one tensor per student
 * parameter, float32 or float16 on the wire, with the global's exact names and
 * shapes. Anything else is refused with a message that names the tensor:
 * a name the student does not have (the site's feature adapter never leaves
 * the site), a missing or duplicated name, a shape or byte-size mismatch, a NaN
 * or an infinity, or a norm out of bounds (dk_fedavg_check_norm).
 *
 * Aggregation: next = global + sum_i(n_i * delta_i) / sum_i(n_i), n_i the
 * labelled volumes behind update i (never unlabelled ones), accumulated in
 * double per element and rounded to float32 once. The result depends on the
 * order updates are added in (by the last bit), so callers add them in a fixed
 * order (fed_round: by site name). */
#ifndef DK_FEDAVG_H
#define DK_FEDAVG_H

#include <stddef.h>
#include <stdint.h>

#include "httpapi/fed_model.h"

/* Absolute bound: a delta larger than this many times max(1, |global|) is no
 * training step. Relative bound: once DK_FEDAVG_MEDIAN_MIN updates are
 * accepted in a round, a delta above DK_FEDAVG_MEDIAN_FACTOR x their median norm. */
#define DK_FEDAVG_ABS_FACTOR    10.0
#define DK_FEDAVG_MEDIAN_FACTOR 10.0
#define DK_FEDAVG_MEDIAN_MIN    3
/* A site may not claim more labelled volumes than this (bounds its weight). */
#define DK_FEDAVG_MAX_LABELLED 1000000

typedef enum dk_fed_dtype { DK_FED_FLOAT32, DK_FED_FLOAT16 } dk_fed_dtype;

/* One tensor of an update as received (borrowed; the caller parsed the body). */
typedef struct dk_fed_wire_tensor {
    const char *name;
    dk_fed_dtype dtype;
    int rank; /* 1..8 */
    int64_t dims[8];
    const void *data; /* little-endian values, nbytes of them */
    size_t nbytes;
} dk_fed_wire_tensor;

/* Check tensors against global and convert them into *delta (float32, global's
 * order and architecture) with its L2 norm. Refusals return DK_EMISMATCH (names,
 * shapes, sizes) or DK_EINVAL (NaN/Inf) with the reason in err; DK_ENOMEM is the
 * server's problem, not the site's. Caller frees *delta with dk_fed_model_release
 * (it is empty on failure). */
dk_status dk_fedavg_validate(const dk_fed_model *global, const dk_fed_wire_tensor *tensors,
                             int count, dk_fed_model *delta, double *norm, dk_err *err);

/* The L2 norm of all of m's values, accumulated in double. */
double dk_fedavg_norm(const dk_fed_model *m);

/* The norm rule: DK_EINVAL (saying which bound) when norm exceeds
 * DK_FEDAVG_ABS_FACTOR * max(1, global_norm), or when n_accepted >=
 * DK_FEDAVG_MEDIAN_MIN and norm exceeds DK_FEDAVG_MEDIAN_FACTOR times the median
 * of accepted_norms[0..n_accepted). */
dk_status dk_fedavg_check_norm(double norm, double global_norm, const double *accepted_norms,
                               int n_accepted, dk_err *err);

/* A running weighted sum of deltas. */
typedef struct dk_fedavg_acc {
    double *sum; /* owned; one per scalar of the model */
    size_t numel;
    double weight; /* sum of labelled counts added */
    int added;
} dk_fedavg_acc;

/* Start a sum shaped like global. Caller frees with dk_fedavg_acc_release. */
dk_status dk_fedavg_acc_init(dk_fedavg_acc *acc, const dk_fed_model *global, dk_err *err);
/* Add labelled * delta; delta must have global's names and shapes (DK_EMISMATCH). */
dk_status dk_fedavg_acc_add(dk_fedavg_acc *acc, const dk_fed_model *global,
                            const dk_fed_model *delta, int64_t labelled, dk_err *err);
/* global += sum / weight, in place (unchanged when nothing was added). */
void dk_fedavg_acc_apply(const dk_fedavg_acc *acc, dk_fed_model *global);
void dk_fedavg_acc_release(dk_fedavg_acc *acc);

#endif
