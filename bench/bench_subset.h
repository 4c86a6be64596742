/* bench_subset.h: the first volumes of a dataset as a dataset of their own, for the
 * benchmarks that time a few volumes of a larger repository (bench_inference,
 * bench_precompute). Header-only: each bench is one program built from one .c file. */
#ifndef DK_BENCH_SUBSET_H
#define DK_BENCH_SUBSET_H

#include "datasets/dataset.h"

/* The first `volumes` volumes of src written to dst; returns how many, -1 on error. */
static int bench_subset(const char *src, const char *dst, int volumes, dk_err *err)
{
    dk_dataset *ds = dk_dataset_open(src, err);
    if (!ds) return -1;
    dk_dataset_writer *w = dk_dataset_writer_open(dst, dk_dataset_classes(ds), err);
    int count = dk_dataset_count(ds) < volumes ? dk_dataset_count(ds) : volumes;
    for (int i = 0; w && i < count; i++) {
        dk_volume v;
        if (dk_dataset_read(ds, i, &v, err)) { /* nothing to release */
            dk_dataset_writer_abort(w);
            w = NULL;
            break;
        }
        if (dk_dataset_writer_add(w, &v, err)) {
            dk_dataset_writer_abort(w);
            w = NULL;
        }
        dk_volume_release(&v);
    }
    dk_dataset_close(ds);
    if (!w || dk_dataset_writer_commit(w, err)) return -1;
    return count;
}

#endif
