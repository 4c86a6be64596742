/* precompute_run.h: the whole `dualkd teacher precompute` command: every volume of
 * a dataset, in order, through a precomputer (precompute.h) into a target store
 * (store.h), resuming an interrupted run's store when asked. */
#ifndef DK_PRECOMPUTE_RUN_H
#define DK_PRECOMPUTE_RUN_H

#include "distill/err.h"
#include "teacher/precompute.h"

typedef struct dk_precompute_result {
    char store_path[4096];
    int samples;    /* in the dataset */
    int resumed;    /* kept from an interrupted run */
    int computed;   /* by this run */
    double seconds; /* wall time from reading this run's first sample to storing its last
                       (a sample is stored while the next is computed) */
} dk_precompute_result;

/* The whole command: every volume of the dataset, in order, into the store. A
 * sample is written on a helper thread while the next one is computed; progress is
 * reported in sample order, each once its sample is durable. */
dk_status dk_precompute_run(const dk_precompute_options *o, dk_precompute_result *res, dk_err *err);

#endif
