/* train.h: training the teacher on the repository (`dualkd teacher train`).
 *
 * The training config (train_config.c) is JSON: every field has a default (the
 * compiled-in default equals teacher/default_teacher.json; docs/teacher.md lists
 * them), a config file overrides the fields it names, and an unknown key or a bad
 * value is an error naming the field ("optimizer.lr").
 *
 * The run (train.c) samples foreground-biased, augmented patches (patches.h) from
 * the z-score-normalised "train"/"labelled" volumes, takes Dice + CE steps with a
 * poly learning rate, validates per-class Dice on the "validation" volumes every
 * epoch (sliding window of patch-shaped tiles), keeps the best checkpoint at
 * out_path, and saves "<out>.last.h5" (optimiser state, step, epoch, RNG state) at
 * every epoch end and every checkpoint_every steps so that --resume continues the
 * same run bit for bit. One JSON line per epoch goes to "<out>.runlog.jsonl". */
#ifndef DK_TEACHER_TRAIN_H
#define DK_TEACHER_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets/volume.h"
#include "distill/optim.h"
#include "distill/unet.h"
#include "teacher/patches.h"

typedef struct dk_teacher_config {
    dk_unet_config network; /* in_channels 1; classes are set from the dataset */
    int patch[3];           /* z y x voxels; divisible by the pooling products */
    int batch;              /* patches per step */
    long steps;             /* total optimisation steps */
    long steps_per_epoch;   /* validation + checkpoint after each epoch */
    long checkpoint_every;  /* also save <out>.last.h5 every K steps (0: epoch ends only) */
    dk_optim_config optim;
    float poly_power; /* lr = lr0 * (1 - step/steps)^power */
    float dice_weight, ce_weight;
    bool dice_include_background;
    float foreground_fraction; /* share of patches centred on a foreground voxel */
    dk_augment_config augment;
    float validation_overlap;   /* tile overlap in [0, 0.9) for the sliding window */
    int validation_max_volumes; /* 0 = all validation volumes */
} dk_teacher_config;

/* The default config (equal to teacher/default_teacher.json). */
dk_teacher_config dk_teacher_config_default(void);

/* Parse JSON text over the defaults; validates every value. The message names
 * the field ("teacher config: unknown field 'augment.flipp'"). */
dk_status dk_teacher_config_from_json(const char *text, dk_teacher_config *c, dk_err *err);

/* Check a config (also done by _from_json). */
dk_status dk_teacher_config_validate(const dk_teacher_config *c, dk_err *err);

/* The same reading and checking for a trainer that shares these fields (the
 * student): JSON text over the values already in c; messages start with name. */
dk_status dk_train_config_parse(const char *text, const char *name, dk_teacher_config *c,
                                dk_err *err);
dk_status dk_train_config_validate(const dk_teacher_config *c, const char *name, dk_err *err);

/* The full config as JSON text (every field). Caller frees with free(). */
char *dk_teacher_config_to_json(const dk_teacher_config *c);

/* What the progress callback sees, at most once per step. */
typedef struct dk_teacher_progress {
    long step, steps;  /* steps done, total */
    int epoch, epochs; /* 1-based current epoch */
    float loss;        /* mean loss of the current epoch so far */
    float lr;
    double steps_per_s; /* since this process started training */
    double eta_s;
} dk_teacher_progress;

/* One finished epoch: also one line of the run log. */
typedef struct dk_teacher_epoch {
    int epoch;
    long step;
    float train_loss;
    int classes;
    float dice[DK_MAX_CLASSES]; /* per class on the validation volumes (hard Dice) */
    float mean_dice;            /* over the foreground classes: the selection metric */
    bool best;
    double seconds; /* wall time of the epoch including validation */
} dk_teacher_epoch;

typedef struct dk_teacher_callbacks {
    void (*progress)(const dk_teacher_progress *p, void *ctx);
    void (*epoch)(const dk_teacher_epoch *e, const dk_classes *classes, void *ctx);
    void *ctx;
} dk_teacher_callbacks;

typedef struct dk_teacher_run {
    const char *data_path; /* the repository dataset (HDF5) */
    const char *out_path;  /* best checkpoint; <out>.last.h5 and <out>.runlog.jsonl beside it */
    dk_teacher_config config;
    uint64_t seed;
    bool seed_given; /* on resume, a seed that differs from the run's is an error */
    bool resume;     /* continue from <out>.last.h5 */
    dk_teacher_callbacks callbacks;
} dk_teacher_run;

/* Train (or resume) as described above. */
dk_status dk_teacher_train(const dk_teacher_run *run, dk_err *err);

/* "<out>.last.h5" and "<out>.runlog.jsonl" for out (written into buf). */
void dk_teacher_last_path(const char *out, char *buf, size_t cap);
void dk_teacher_runlog_path(const char *out, char *buf, size_t cap);

/* Per-volume z-score normalisation, the rule the teacher card records: subtract the
 * mean and divide by the standard deviation of all voxels (std < 1e-6 -> 1). */
void dk_teacher_normalise(float *image, size_t n);

/* Hard Dice per class of pred against truth (n voxels): 2|P&G| / (|P| + |G|),
 * 1 when a class is absent from both. */
void dk_teacher_dice(const uint8_t *pred, const uint8_t *truth, size_t n, int classes, float *dice);

#endif
