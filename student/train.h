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
} dk_student_run;

dk_status dk_student_train(const dk_student_run *run, dk_err *err);

#endif
