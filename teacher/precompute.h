/* precompute.h: the frozen teacher's targets for one site profile
 * (`dualkd teacher precompute`, docs/store.md).
 *
 * Per repository volume: the teacher runs on its own training grid (a volume at
 * another grid is resampled to it first), on the z-scored image padded by edge
 * replication to multiples of its pooling product, N times with small Gaussian
 * input noise; the mean of softmax(logits / T) and the mean of the taps are then
 * brought to the profile's grid (area averaging for probabilities; per axis area
 * when coarser, linear when finer, for features, onto the grid the student's tap
 * will have). The input served beside them is the volume as the site would
 * acquire it (datasets/acquire.h). Only the network's forward pass runs: the
 * teacher's parameters are never written after loading.
 *
 * Randomness (input noise, acquisition noise) comes from seeds derived from
 * (seed, sample id), so a resumed run produces the same bytes as an
 * uninterrupted one (with the same BLAS thread count). */
#ifndef DK_PRECOMPUTE_H
#define DK_PRECOMPUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets/profile.h"
#include "datasets/volume.h"
#include "distill/unet.h"
#include "teacher/store.h"

/* Memory for a batch of passes (activations and noisy inputs) when
 * pass_batch is 0, and for the passes side by side when pass_lanes is 0. */
#define DK_PRECOMPUTE_BATCH_BYTES ((size_t)1 << 30)
/* The most passes side by side (pass_lanes). */
#define DK_PRECOMPUTE_MAX_LANES 8

typedef struct dk_precompute_progress {
    int done, total; /* samples finished (including resumed ones), all samples */
    const char *id;  /* the sample just finished */
    bool resumed;    /* it was finished by an interrupted run */
    double seconds;  /* from reading this sample to storing it (0 when resumed) */
} dk_precompute_progress;

typedef struct dk_precompute_options {
    const char *teacher_path; /* teacher checkpoint (with its run record / teacher card) */
    const char *data_path;    /* repository dataset */
    const char *out_dir; /* the store is <out_dir>/<profile name>.h5 (dir created if missing) */
    dk_profile profile;
    const char *student_json; /* U-Net config JSON text; NULL: the profile's student field */
    double temperature;       /* default 2 */
    int passes;               /* default 8 */
    double input_noise;       /* default 0.1 (sd, in z-scored units) */
    int feature_count;        /* default 1: "bottleneck" */
    char feature_layers[DK_STORE_MAX_FEATURES][16];
    uint64_t seed;  /* default 1 */
    int pass_batch; /* passes per teacher forward, rounded down to a divisor of passes;
                       0: as many as fit DK_PRECOMPUTE_BATCH_BYTES. Default 1: batching
                       measured 4-6% more CPU (a batch's skips are concatenated by copy)
                       and 3x the memory at 64x160x160 (docs/numerics.md). The targets
                       do not depend on it (each pass computes the same). */
    int pass_lanes; /* with pass_batch 1: passes run side by side, each on one thread
                       with its own copy of the teacher, at most DK_PRECOMPUTE_MAX_LANES
                       and the passes; 0 (default): one per thread (dk_blas_threads())
                       while their activations fit DK_PRECOMPUTE_BATCH_BYTES; 1: one pass
                       at a time on all threads. Side by side, no pass waits for the
                       other threads at each layer (measured 1-3 % faster on 2 cores,
                       docs/numerics.md) for a copy of the teacher's activations per
                       lane. Each pass runs on one thread and the passes are added in
                       pass order, so the targets are those of --threads 1; those of
                       one pass at a time on all threads too where OpenBLAS's GEMM does
                       not depend on its thread count (its SkylakeX kernels, not its
                       Haswell or Zen ones). */
    bool resume;    /* continue from <store>.partial */
    void (*progress)(const dk_precompute_progress *p, void *ctx);
    void *ctx;
} dk_precompute_options;

/* Defaults as above; teacher/data/out/profile still to be set. */
dk_precompute_options dk_precompute_options_default(void);

/* Parse "bottleneck,dec1" into o's feature list; the message names a bad entry. */
dk_status dk_precompute_parse_layers(const char *list, dk_precompute_options *o, dk_err *err);

typedef struct dk_precomputer dk_precomputer;

/* Load the teacher and its card, resolve the student architecture (student_json,
 * else the profile's "student": "" or "teacher" = the teacher's architecture,
 * "reference" = dk_unet_config_default), check the pairing (1 input channel, the
 * teacher's class count, feature layers present in both) and build the manifest
 * (data_sha256 left empty). Caller frees with dk_precomputer_free. */
dk_precomputer *dk_precomputer_create(const dk_precompute_options *o, dk_err *err);
void dk_precomputer_free(dk_precomputer *pc);

/* Borrowed, valid until free. */
const dk_store_manifest *dk_precomputer_manifest(const dk_precomputer *pc);
/* The manifest's data_sha256 (64 hex digits), once the data is hashed. */
void dk_precomputer_set_data_sha256(dk_precomputer *pc, const char *hex);
const dk_unet *dk_precomputer_teacher(const dk_precomputer *pc);

/* One volume's targets in float32 (what the store holds before float16). */
typedef struct dk_targets {
    dk_store_sample_info info;              /* id, split, index, grids, seeds (arrays[] unused) */
    dk_volume input;                        /* at the profile grid; label when the source has one */
    float *response;                        /* classes x grid: mean of softmax(logits / T) */
    float *uncertainty;                     /* grid: entropy (nats) of the mean softmax(logits) */
    float *features[DK_STORE_MAX_FEATURES]; /* channels x info.feature_grid[k] */
} dk_targets;

/* Compute the targets of v (volume `index` of its dataset). out is filled afresh;
 * caller releases it with dk_targets_release. Fails (naming the volume) when the
 * student's pooling product along an axis exceeds the profile grid's size there. */
dk_status dk_precompute_volume(dk_precomputer *pc, const dk_volume *v, int index, dk_targets *out,
                               dk_err *err);
void dk_targets_release(dk_targets *t);

/* The per-sample seed for a purpose (1: teacher-pass noise, 2: acquisition). */
uint64_t dk_precompute_sample_seed(uint64_t seed, const char *id, int purpose);

#endif
