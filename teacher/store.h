/* store.h: the target store (docs/store.md): one HDF5 file per site profile
 * holding, per repository sample, the input as the site would acquire it, the
 * teacher's response targets, uncertainty and feature targets, under a manifest
 * (teacher hash, temperature, passes, classes, grids, student tap shapes) with
 * a SHA-256 per stored array.
 *
 * Writing is crash-safe and resumable: finished samples live in
 * "<path>.partial/" (manifest.h5 and one sample-<id>.h5 each, every file
 * written to a temporary name, fsync'ed and renamed), so a kill at any moment
 * leaves <path> as it was plus every sample finished so far. Finishing copies
 * the samples, in catalogue order, into one file that replaces <path>
 * atomically, then removes the partial directory.
 *
 * Reading (dk_store_open) validates the manifest and the catalogue once; arrays
 * are then read by sample index and kind ("input", "label", "response",
 * "uncertainty", "features/<layer>"), as float32 or as the stored bytes (for a
 * server that streams float16 .npy without converting). HDF5 is not thread-safe
 * here: callers serialise all calls on stores. */
#ifndef DK_STORE_H
#define DK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/resample.h"
#include "datasets/volume.h"
#include "distill/err.h"

#define DK_STORE_FORMAT         "dualkd-target-store"
#define DK_STORE_FORMAT_VERSION 1
#define DK_STORE_MAX_FEATURES   4
#define DK_STORE_MAX_ARRAYS     8
#define DK_STORE_JSON_MAX       4096

/* One feature target: the teacher's tap resampled to the grid the student's tap
 * of the same name has at the profile. */
typedef struct dk_store_feature {
    char layer[16];       /* "bottleneck", "dec1", ... */
    int channels;         /* the teacher's channels: the stored array's first dim */
    int student_channels; /* the student's channels at that tap (its adapter maps them) */
    int teacher_tap;      /* tap indices (distill/unet.h) */
    int student_tap;
    double spacing[3]; /* student tap voxel size at the profile, mm z y x */
} dk_store_feature;

typedef struct dk_store_manifest {
    char teacher_sha256[65]; /* of the teacher's contents (teacher/content_hash.h) */
    char teacher_architecture[DK_STORE_JSON_MAX]; /* JSON (distill/unet.h) */
    char student_architecture[DK_STORE_JSON_MAX]; /* JSON */
    char profile_json[DK_STORE_JSON_MAX];         /* datasets/profile.h, as JSON */
    char profile[64];                             /* its name */
    char data_sha256[65];                         /* of the repository's volumes */
    dk_classes classes;
    double teacher_spacing[3]; /* the teacher's training grid, mm z y x */
    double profile_spacing[3]; /* the profile's grid */
    int student_multiple[3];   /* student input dims are padded up to multiples of these */
    double temperature;        /* response targets are softmax(logits / temperature) */
    int passes;                /* noisy teacher passes averaged */
    double input_noise;        /* sd of the Gaussian added to the z-scored input */
    uint64_t seed;             /* per-sample seeds derive from (seed, sample id) */
    int feature_count;
    dk_store_feature features[DK_STORE_MAX_FEATURES];
    /* ISO 8601 UTC, written only when set (precompute leaves it empty so that a
     * store's bytes depend on its inputs alone); never compared. */
    char created[32];
} dk_store_manifest;

/* The name of the first field (other than created) in which a and b differ, or
 * NULL when they agree. Static storage. */
const char *dk_store_manifest_diff(const dk_store_manifest *a, const dk_store_manifest *b);

/* How an array is stored. */
typedef enum dk_store_dtype { DK_STORE_F32, DK_STORE_F16, DK_STORE_U8 } dk_store_dtype;
size_t dk_store_dtype_size(dk_store_dtype t);
/* NumPy dtype string: "<f4", "<f2", "|u1". */
const char *dk_store_dtype_npy(dk_store_dtype t);

/* What the catalogue says about one array. dims of rank 3 are z y x; rank 4 is
 * channels first. */
typedef struct dk_store_array_info {
    char kind[32]; /* "input", "label", "response", "uncertainty", "features/<layer>" */
    dk_store_dtype dtype;
    int rank;
    int dims[4];
    char sha256[65]; /* of the stored element bytes, little-endian, C order */
} dk_store_array_info;

static inline size_t dk_store_array_numel(const dk_store_array_info *a)
{
    size_t n = 1;
    for (int i = 0; i < a->rank; i++)
        n *= (size_t)a->dims[i];
    return n;
}

typedef struct dk_store_sample_info {
    char id[64];
    char split[16];
    int index;    /* position in the repository dataset */
    dk_grid grid; /* the profile grid of input/label/response/uncertainty */
    dk_grid feature_grid[DK_STORE_MAX_FEATURES]; /* grid of each feature target */
    uint64_t noise_seed;                         /* teacher-pass noise */
    uint64_t acquire_seed;                       /* simulated acquisition noise and bias */
    int array_count;
    dk_store_array_info arrays[DK_STORE_MAX_ARRAYS];
} dk_store_sample_info;

/* ---- writing ---- */

/* One array handed to the writer; data is float32 for F32 and F16 (store.c rounds
 * F16 to binary16 itself with dk_half_from_float), uint8 for U8. Borrowed for the
 * call. */
typedef struct dk_store_array {
    const char *kind;
    dk_store_dtype dtype;
    int rank;
    int dims[4];
    const void *data;
} dk_store_array;

typedef struct dk_store_sample {
    dk_store_sample_info info; /* id, split, index, grids, seeds; arrays[] ignored */
    int array_count;
    dk_store_array arrays[DK_STORE_MAX_ARRAYS];
} dk_store_sample;

typedef struct dk_store_writer dk_store_writer;

/* Start (or, with resume, continue) writing the store at path under manifest m.
 * Without resume any old "<path>.partial/" is removed. With resume it must exist
 * and hold a manifest equal to m apart from created (DK_EMISMATCH naming the
 * field); its finished samples are checked and any damaged one is dropped (to be
 * redone). Caller ends w with dk_store_writer_finish or _abort. NULL on failure. */
dk_store_writer *dk_store_writer_open(const char *path, const dk_store_manifest *m, bool resume,
                                      dk_err *err);
/* True when sample id was finished (by this or an interrupted run). */
bool dk_store_writer_has(const dk_store_writer *w, const char *id);
/* Samples finished by an interrupted run that this one keeps. */
int dk_store_writer_resumed(const dk_store_writer *w);
/* Write one sample durably (it survives a kill once this returns DK_OK). */
dk_status dk_store_writer_add(dk_store_writer *w, const dk_store_sample *s, dk_err *err);
/* Assemble the samples ids[0..count) (all finished) in that order into path,
 * atomically, and remove the partial directory. Frees w in every case. */
dk_status dk_store_writer_finish(dk_store_writer *w, const char *const *ids, int count,
                                 dk_err *err);
/* Stop without finishing: the partial directory stays for --resume. Frees w. */
void dk_store_writer_abort(dk_store_writer *w);

/* "<path>.partial" into buf. */
void dk_store_partial_path(const char *path, char *buf, size_t cap);

/* ---- reading ---- */

typedef struct dk_store dk_store;

/* Open and validate a finished store (format, manifest, catalogue shapes; not
 * the checksums: see dk_store_verify). Caller closes with dk_store_close. */
dk_store *dk_store_open(const char *path, dk_err *err);
void dk_store_close(dk_store *s);

/* Borrowed, valid until close. */
const dk_store_manifest *dk_store_manifest_of(const dk_store *s);
int dk_store_count(const dk_store *s);
const dk_store_sample_info *dk_store_sample_at(const dk_store *s, int i);
/* Index of sample id, or -1. */
int dk_store_find(const dk_store *s, const char *id);
/* The array of sample i of this kind, or NULL when the sample has none. */
const dk_store_array_info *dk_store_array_of(const dk_store *s, int i, const char *kind);

/* Read an array as float32 (count must equal its element count). */
dk_status dk_store_read(dk_store *s, int i, const char *kind, float *out, size_t count,
                        dk_err *err);
/* Read the stored element bytes (little-endian; bytes must equal numel * dtype size). */
dk_status dk_store_read_raw(dk_store *s, int i, const char *kind, void *out, size_t bytes,
                            dk_err *err);

/* Check a store: manifest, catalogue shapes, and every array's checksum. On a
 * bad store the message names the first bad sample and array; *checked counts
 * the samples found good before it. */
dk_status dk_store_verify(const char *path, int *checked, dk_err *err);

#endif
