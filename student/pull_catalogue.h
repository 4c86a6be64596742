/* pull_catalogue.h: what the server's JSON says, turned into what the trainer
 * reads (student/ only; pull.c and pull_source.c share it). The model card
 * (GET /v1/teacher) and the profile's entry (GET /v1/profiles) become a
 * dk_store_manifest; the catalogue's samples (GET /v1/targets) become
 * dk_store_sample_info entries, each array's dtype and shape checked against
 * the manifest (classes, grid, the feature tap's channels and padded grid), so
 * a server that lists wrong shapes is refused before a byte of data moves.
 * Every value is untrusted: names are checked as file names, counts bounded. */
#ifndef DK_PULL_CATALOGUE_H
#define DK_PULL_CATALOGUE_H

#include <jansson.h>

#include "teacher/store.h"

#define DK_PULL_MAX_SAMPLES 100000

/* The manifest from the model card (JSON text) and the profile's entry (JSON
 * object text). where ("http://host/v1/profiles") starts messages. */
dk_status dk_pull_manifest(const char *card, const char *entry, const char *where,
                           dk_store_manifest *m, dk_err *err);

/* One catalogue sample (a JSON object) into info: only the arrays the student
 * pulls (input, response, uncertainty, the manifest's features), all required. */
dk_status dk_pull_sample(const json_t *sample, const dk_store_manifest *m, const char *where,
                         dk_store_sample_info *info, dk_err *err);

/* Bytes of the whole .npy of a (header as dualkd serve and numpy write it). */
uint64_t dk_pull_npy_bytes(const dk_store_array_info *a);

/* "<kind>" as a file name: "features/bottleneck" -> "features-bottleneck". */
void dk_pull_kind_file(const char *kind, char *out, size_t cap);

#endif
