/* shipped.h: the default teacher that ships inside the dualkd binary
 * (models/teacher-default.h5, made by scripts/train-default-teacher and described in
 * models/teacher-default.md), so `dualkd demo` and a new user need not spend minutes
 * training one. The bytes are embedded at build time (shipped.c, .incbin); their
 * SHA-256 is the one recorded in models/teacher-default.sha256. */
#ifndef DK_TEACHER_SHIPPED_H
#define DK_TEACHER_SHIPPED_H

#include <stddef.h>

#include "distill/err.h"

/* The embedded checkpoint's bytes; borrowed, valid for the life of the process. */
const unsigned char *dk_shipped_teacher_bytes(size_t *size);

/* The recorded SHA-256 (64 lowercase hex digits); static storage. */
const char *dk_shipped_teacher_sha256(void);

/* Write the checkpoint to path (a temporary name beside it, fsync, rename), after
 * checking that the embedded bytes and the bytes read back from the temporary file
 * have the recorded SHA-256 (DK_EFORMAT otherwise: a corrupt build or file system). */
dk_status dk_shipped_teacher_write(const char *path, dk_err *err);

#endif
