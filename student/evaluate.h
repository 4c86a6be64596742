/* evaluate.h: `dualkd eval` without the printing: per-class Dice, HD95 and ASSD
 * (datasets/metrics.h, in mm on each volume's own grid) of a model's predictions or
 * of given label maps against a dataset's labels, per volume, plus the optional
 * clean-up (largest component per class) and NIfTI export of the predictions.
 *
 * A model is any checkpoint of this project (a student, or a teacher: the
 * zero-shot row); its input is z-scored per volume (dk_teacher_normalise) and it
 * runs by a Gaussian-weighted sliding window (datasets/segment.h) whose tile is
 * the run record's training patch ("config.patch"), fitted to each volume.
 * With resample (a zero-shot teacher on a site of another resolution) each volume
 * is resampled to the model's training spacing first (dk_resample_image), segmented
 * there, and its class probabilities resampled back to the volume's own grid before
 * the arg-max, so the metrics are always on the site's grid.
 * Given labels are a dataset file (volumes matched by id, same dims) or a
 * directory of "<id>.nii.gz" / "<id>.nii" label maps on the volume's grid. */
#ifndef DK_STUDENT_EVALUATE_H
#define DK_STUDENT_EVALUATE_H

#include <jansson.h>
#include <stdbool.h>

#include "datasets/metrics.h"
#include "datasets/volume.h"

typedef struct dk_eval_volume {
    char id[64];
    int dims[3];
    double spacing[3];
    dk_class_metrics classes[DK_MAX_CLASSES]; /* [0] is the background */
    double seconds;                           /* inference (0 for given labels) + metrics */
} dk_eval_volume;

typedef struct dk_eval_options {
    const char *data_path;  /* the dataset with the ground truth */
    const char *model_path; /* a checkpoint, or NULL when pred_path is given */
    const char *pred_path;  /* labels .h5 or a NIfTI directory, or NULL */
    const char *split;      /* volumes of this split; "all" = every labelled volume */
    bool largest_component;
    const char *export_dir; /* write "<id>.nii.gz" predictions here (created), or NULL */
    int tile[3];            /* 0,0,0: the run record's patch */
    float overlap;          /* sliding window, default 0.5 */
    float gaussian_sigma;   /* default 0.125 */
    bool resample;          /* segment on the model's training grid (its teacher card's
                             * training_spacing) and bring the probabilities back */
    void (*progress)(const dk_eval_volume *v, int done, int total, void *ctx);
    void *ctx;
} dk_eval_options;

/* data_path, model_path and pred_path still to set; split "validation". */
dk_eval_options dk_eval_options_default(void);

typedef struct dk_eval_result {
    dk_classes classes;
    int count;
    dk_eval_volume *volumes; /* owned: dk_eval_result_release */
    int tile[3];             /* the model's tile before fitting (0 for given labels) */
    double model_spacing[3]; /* the training spacing used by resample (else 0) */
} dk_eval_result;

/* Evaluate every volume of the split that has a label. r is filled afresh. */
dk_status dk_eval_run(const dk_eval_options *o, dk_eval_result *r, dk_err *err);
void dk_eval_result_release(dk_eval_result *r);

/* {"data", "model"|"pred", "split", "largest_component", "classes": [...],
 *  "volumes": [{"id", "dims", "spacing", "metrics": {class: dk_metrics_json}}],
 *  "summary": {class: {"dice"|"hd95"|"assd": {"mean", "sd", "n"}}}} over the
 * foreground classes; non-finite values are null and left out of the summary
 * (n says how many volumes it used). New reference; NULL without memory. */
json_t *dk_eval_result_json(const dk_eval_result *r, const dk_eval_options *o);

#endif
