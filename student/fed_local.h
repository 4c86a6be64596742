/* fed_local.h: the arrays of a site's federated round (docs/federation.md,
 * "The site's side"): the global student from its .npz into the U-Net's
 * parameters, the update (trained - the global as the site used it) as the .npz
 * a site sends, and the site's own state between rounds (the feature adapter,
 * never sent) in a small checkpoint beside --out. */
#ifndef DK_FED_LOCAL_H
#define DK_FED_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/npz.h"
#include "distill/param.h"

/* Set every parameter of unet from the .npz in buf[0..len) (untrusted): one
 * float16 or float32 array per parameter, named as the parameter, with its 5-D
 * shape; a missing, extra or mis-shaped array is refused naming it, and unet is
 * left unchanged. */
dk_status dk_fed_local_load_global(const void *buf, size_t len, const dk_params *unet,
                                   dk_err *err);

/* A copy of every parameter's values (the global the round starts from). Caller
 * frees with dk_fed_snapshot_release. */
typedef struct dk_fed_snapshot {
    float *values; /* the parameters' values concatenated in list order */
    size_t count;
} dk_fed_snapshot;
dk_status dk_fed_snapshot_take(const dk_params *unet, dk_fed_snapshot *s, dk_err *err);
void dk_fed_snapshot_release(dk_fed_snapshot *s);

/* The update: one array per parameter, unet - base, float16 (half) or float32,
 * as a .npz stored or deflated as how says. Caller frees *out with free(). */
dk_status dk_fed_local_delta(const dk_params *unet, const dk_fed_snapshot *base, bool half,
                             dk_npz_compression how, void **out, size_t *len, dk_err *err);

/* The site's state between rounds. */
typedef struct dk_fed_site_state {
    char federation[128];
    int64_t created_at; /* the federation's: a new federation of the same name is another */
    int next_round;     /* rounds before it were acknowledged by the server */
} dk_fed_site_state;

/* Write the adapter's parameters (may be an empty list) and state to path atomically. */
dk_status dk_fed_state_save(const char *path, const char *architecture_json,
                            const dk_params *adapter, const dk_fed_site_state *s, dk_err *err);
/* Read the state at path into *s. DK_ENOTFOUND when there is no file. */
dk_status dk_fed_state_read(const char *path, dk_fed_site_state *s, dk_err *err);
/* Read the adapter's values from the state at path (adapter unchanged on failure). */
dk_status dk_fed_state_load_adapter(const char *path, const dk_params *adapter, dk_err *err);

#endif
