/* fed_model.h: a federated student as a set of named float32 tensors read from
 * and written to a dualkd checkpoint (distill/checkpoint.h), and the SHA-256 by
 * which the federation store references every file it depends on.
 *
 * The coordinator never builds the network: it needs only the names, shapes
 * and values of the parameters, whatever the architecture (its JSON travels
 * with the model unchanged). Global checkpoints and stored update deltas are
 * both dk_fed_models; a delta has the same names and shapes as the global. */
#ifndef DK_FED_MODEL_H
#define DK_FED_MODEL_H

#include "distill/err.h"
#include "distill/param.h"

typedef struct dk_fed_model {
    dk_param *params; /* owned array of count; values only, grads empty */
    int count;
    dk_params list;          /* borrowed pointers into params, in file order */
    char *architecture_json; /* owned */
} dk_fed_model;

/* Read every parameter of the checkpoint at path (any architecture) into m.
 * Fails (m left empty) on a missing or corrupted file or a tensor that is not
 * 5-D float32. Caller frees with dk_fed_model_release. */
dk_status dk_fed_model_load(const char *path, dk_fed_model *m, dk_err *err);

/* An all-zero model with like's names, shapes and architecture. Caller frees
 * with dk_fed_model_release. */
dk_status dk_fed_model_zeros_like(const dk_fed_model *like, dk_fed_model *m, dk_err *err);

/* Save m atomically (temporary, fsync, rename, directory fsync) as a checkpoint
 * with run_record_json (nullable), then hash the file as written into
 * sha256_hex (65 bytes). */
dk_status dk_fed_model_save(const dk_fed_model *m, const char *path, const char *run_record_json,
                            char sha256_hex[65], dk_err *err);

/* Safe on a zeroed or released model. */
void dk_fed_model_release(dk_fed_model *m);

/* Total scalar values over all tensors. */
size_t dk_fed_model_numel(const dk_fed_model *m);

#endif
