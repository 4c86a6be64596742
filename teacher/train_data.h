/* train_data.h: the labelled data of a training run, shared by the teacher and
 * the student trainers: the "train"/"labelled" volumes of a dataset, z-scored
 * (dk_teacher_normalise) and indexed for patch sampling (patches.h), the
 * "validation" volumes z-scored, and validation of a network on them (per-class
 * hard Dice by a sliding window, datasets/segment.h). */
#ifndef DK_TRAIN_DATA_H
#define DK_TRAIN_DATA_H

#include "datasets/segment.h"
#include "datasets/volume.h"
#include "distill/unet.h"
#include "teacher/patches.h"

typedef struct dk_train_data {
    dk_classes classes;
    dk_patch_source *train; /* owned */
    int train_count;
    dk_volume *val; /* owned */
    int val_count;
    double spacing[3]; /* median spacing of the training volumes */
} dk_train_data;

/* Read path's training and validation volumes (both need labels; at most max_val
 * validation volumes, 0 = all). Errors name the file and volume. Release d with
 * dk_train_data_release (also after a failure). */
dk_status dk_train_data_load(const char *path, int max_val, dk_train_data *d, dk_err *err);
void dk_train_data_release(dk_train_data *d);

/* Mean per-class hard Dice of net over the validation volumes into dice[classes];
 * the mean over the foreground classes into *mean_fg. */
dk_status dk_train_data_validate(const dk_train_data *d, dk_unet *net,
                                 const dk_segment_options *o, float *dice, float *mean_fg,
                                 dk_err *err);

#endif
