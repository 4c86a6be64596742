/* target_source.h: where a student's transfer samples come from. The trainer
 * sees only this interface: a manifest (classes, temperature, student
 * architecture, feature layers), a catalogue of samples (dk_store_sample_info:
 * grids and array shapes), and reads of one array of one sample as float32.
 * A target store FILE implements it now (dk_target_source_open_store); the HTTP
 * pull from `dualkd serve` (student/pull.c, GET /v1/targets...) implements the
 * same three calls over the network, so the trainer does not change. */
#ifndef DK_TARGET_SOURCE_H
#define DK_TARGET_SOURCE_H

#include "teacher/store.h"

typedef struct dk_target_source dk_target_source;

struct dk_target_source {
    char where[4200];                   /* for messages: "store 'x.h5'", a URL, ... */
    const dk_store_manifest *manifest;  /* borrowed from impl, valid until close */
    int count;                          /* samples in the catalogue */
    /* Sample i's catalogue entry (borrowed, valid until close). */
    const dk_store_sample_info *(*sample)(dk_target_source *s, int i);
    /* Array `kind` of sample i as float32 into out (count = its element count). */
    dk_status (*read)(dk_target_source *s, int i, const char *kind, float *out, size_t count,
                      dk_err *err);
    void (*close)(dk_target_source *s);
    void *impl;
};

/* A finished target store file (validated on open, teacher/store.h). Close with
 * dk_target_source_close. On failure src is left closed. */
dk_status dk_target_source_open_store(const char *path, dk_target_source *src, dk_err *err);

/* Both sources as one: a's samples, then b's (a site's own targets beside the
 * repository's: `--site-targets`). Their manifests must agree on what the student
 * learns from (teacher, architectures, profile, classes, temperature, feature
 * targets); the data, seeds and number of passes may differ. out borrows a and b
 * (close out, then them); its manifest is a's. DK_EMISMATCH names the field. */
dk_status dk_target_source_union(dk_target_source *a, dk_target_source *b, dk_target_source *out,
                                 dk_err *err);

/* Close any source (safe on a closed, zeroed one). */
void dk_target_source_close(dk_target_source *src);

#endif
