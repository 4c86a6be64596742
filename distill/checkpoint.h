/* checkpoint.h: saving and restoring a network's parameters, its optimiser
 * state and a record of the training run, as one HDF5 file (docs/formats.md,
 * "Checkpoint").
 *
 * The architecture is a JSON text chosen by the caller (the network's config);
 * loading compares it semantically (key order and spacing do not matter) with
 * the architecture the caller expects and names the first field that differs.
 * Parameters are matched by name; a missing, extra or differently shaped one is
 * an error that names it and both shapes. Values round-trip bit-exactly, and
 * every tensor carries a Fletcher-32 checksum so a corrupted file fails to load
 * instead of loading garbage. Saving is atomic (temporary file, fsync, rename). */
#ifndef DK_CHECKPOINT_H
#define DK_CHECKPOINT_H

#include "distill/err.h"
#include "distill/optim.h"
#include "distill/param.h"

#define DK_CHECKPOINT_FORMAT_VERSION 1

/* Write path. architecture_json must be valid JSON (any value; usually an
 * object). opt (nullable) saves kind, hyper-parameters, step and the moments of
 * every parameter in opt->params, which must all be in params. run_record_json
 * (nullable) is stored as given after checking it is valid JSON. Parameter names
 * must be unique, non-empty and free of '/'. */
dk_status dk_checkpoint_save(const char *path, const char *architecture_json,
                             const dk_params *params, const dk_optimizer *opt,
                             const char *run_record_json, dk_err *err);

/* The architecture JSON text as saved. Caller frees *json_out with free(). */
dk_status dk_checkpoint_read_architecture(const char *path, char **json_out, dk_err *err);

/* The run record JSON text as saved, or *json_out = NULL (and DK_OK) when the
 * checkpoint has none. Caller frees *json_out with free(). */
dk_status dk_checkpoint_read_run_record(const char *path, char **json_out, dk_err *err);

/* True (and DK_OK) in *has_opt when the checkpoint holds optimiser state. */
dk_status dk_checkpoint_has_optimizer(const char *path, bool *has_opt, dk_err *err);

/* Load parameter values into params (the tensors are already allocated with
 * the model's shapes). When expected_architecture_json is non-NULL it must
 * equal the saved architecture (DK_EMISMATCH naming the first differing field).
 * When opt is non-NULL (initialised with dk_optim_init over the same params) the
 * checkpoint must hold optimiser state of the same kind: its moments, step and
 * hyper-parameters replace opt's. Everything is checked and read before anything
 * is written: on failure params and opt are unchanged. */
dk_status dk_checkpoint_load(const char *path, const char *expected_architecture_json,
                             const dk_params *params, dk_optimizer *opt, dk_err *err);

#endif
