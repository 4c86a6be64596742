/* train.h: the student trainer at a site (`dualkd student train`, docs/student.md):
 *
 *   L = L_sup + alpha(t) L_response + beta(t) L_feature          (kd_loss.h)
 *
 * L_sup on patches of the site's labelled volumes ("train"/"labelled" split of
 * its dataset, sampled and augmented as the teacher's: teacher/patches.h);
 * the distillation terms on patches of transfer samples from a target source
 * (target_source.h: a store file now, the server's HTTP API next), cut from the
 * sample's input padded as precompute padded it so that the feature targets line
 * up with the student's tap (patch origins on multiples of the pooling product).
 * alpha and beta follow the original's sigmoid ramp-up; the response term's
 * uncertainty mask keeps voxels whose teacher entropy is below a threshold that
 * ramps with alpha. The 1x1x1 adapter is trained with the student and stays in
 * the site's last checkpoint only: the best checkpoint (what a site shares) holds
 * the U-Net alone. The teacher is never loaded.
 *
 * The config is the teacher's training config (train.h: network, patch, batch =
 * labelled patches per step, steps, optimizer, loss, augment, validation, ...)
 * plus a "distill" section; without a "network" field the student takes the
 * architecture the store's feature targets were made for. Validation, best and
 * last checkpoints, --resume and the JSON-lines run log work as the teacher's. */
#ifndef DK_STUDENT_TRAIN_H
#define DK_STUDENT_TRAIN_H

#include "student/kd_loss.h"
#include "student/target_source.h"
#include "teacher/train.h"

typedef struct dk_student_config {
    dk_teacher_config base;
    bool network_given;  /* false: the store's student architecture */
    int transfer_batch;  /* transfer patches per step */
    dk_response_kind response;
    float alpha;         /* response weight after the ramp */
    long alpha_ramp_steps;
    bool uncertainty_mask;
    float mask_threshold_start, mask_threshold_end; /* nats; ramps with alpha */
    dk_feature_kind feature;
    float beta;
    long beta_ramp_steps;
    char feature_layer[16];
    float feature_temperature; /* for feature kind "kl" */
} dk_student_config;

dk_student_config dk_student_config_default(void);
/* JSON over the defaults; messages name the field ("student config: field
 * 'distill.response.kind': ..."). */
dk_status dk_student_config_from_json(const char *text, dk_student_config *c, dk_err *err);
dk_status dk_student_config_validate(const dk_student_config *c, dk_err *err);
/* Every field as JSON (network included only when given). Caller frees with free(). */
char *dk_student_config_to_json(const dk_student_config *c);

typedef struct dk_student_progress {
    long step, steps;
    int epoch, epochs;
    float loss, sup, response, feature; /* means over the epoch so far (unweighted terms) */
    float alpha, beta, lr;
    double steps_per_s, eta_s;
} dk_student_progress;

typedef struct dk_student_epoch {
    int epoch;
    long step;
    float loss, sup, response, feature; /* epoch means */
    int classes;
    float dice[DK_MAX_CLASSES];
    float mean_dice; /* foreground mean: the selection metric */
    bool best;
    double seconds;
} dk_student_epoch;

typedef struct dk_student_callbacks {
    void (*progress)(const dk_student_progress *p, void *ctx);
    void (*epoch)(const dk_student_epoch *e, const dk_classes *classes, void *ctx);
    void *ctx;
} dk_student_callbacks;

typedef struct dk_student_run {
    const char *data_path;    /* the site's dataset */
    dk_target_source *source; /* transfer samples; may be NULL with supervised_only */
    const char *out_path;     /* best checkpoint; <out>.last.h5, <out>.runlog.jsonl */
    dk_student_config config;
    bool supervised_only, no_response, no_feature;
    uint64_t seed;
    bool seed_given;
    bool resume;
    dk_student_callbacks callbacks;
    /* A federation's network (U-Net config JSON), overriding the config's and the
     * store's; NULL outside a federation. Sessions only. */
    const char *architecture_json;
} dk_student_run;

dk_status dk_student_train(const dk_student_run *run, dk_err *err);

/* Sessions: the trainer built once (data, network, adapter, batch) and driven by
 * a federated site (fed_site.h) round by round: load the global into
 * dk_student_session_unet, validate it, train some steps from it, read the
 * trained values back. No checkpoints or run log are written but by
 * dk_student_session_save. run (and everything it points to) must outlive the
 * session. Caller frees *out with dk_student_session_close. */
typedef struct dk_student_session dk_student_session;
dk_status dk_student_session_open(const dk_student_run *run, dk_student_session **out,
                                  dk_err *err);
void dk_student_session_close(dk_student_session *s);

/* The U-Net's parameters and the feature adapter's (an empty list without the
 * feature term); borrowed, valid until close. */
const dk_params *dk_student_session_unet(dk_student_session *s);
const dk_params *dk_student_session_adapter(dk_student_session *s);
/* The network's config JSON (borrowed); the number of labelled training volumes. */
const char *dk_student_session_architecture(const dk_student_session *s);
int dk_student_session_labelled(const dk_student_session *s);

/* The mean foreground Dice of the current weights on the site's validation volumes. */
dk_status dk_student_session_validate(dk_student_session *s, float *mean_dice, dk_err *err);

typedef struct dk_student_round_stats {
    float loss, sup, response, feature; /* means over the steps (unweighted terms) */
    double seconds;
} dk_student_round_stats;

/* steps optimiser steps from the current weights, numbered first_step + 1 ...:
 * learning rate (poly decay over total_steps) and distillation ramps follow that
 * global step count. The optimiser starts from zero state; the sampling stream
 * depends on the seed and first_step only (a repeated round repeats exactly). */
dk_status dk_student_session_train(dk_student_session *s, long first_step, long steps,
                                   long total_steps, dk_student_round_stats *out, dk_err *err);

/* The U-Net (no adapter, no optimiser) with the run record at path, atomically. */
dk_status dk_student_session_save(dk_student_session *s, const char *path, dk_err *err);

#endif
