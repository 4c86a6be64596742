/* err.h: the error object every fallible dualkd function fills in.
 *
 * Functions return a dk_status (DK_OK is 0) and write a human-readable
 * message naming the file, field or value into the caller's dk_err.
 * Library code never prints and never exits; cli/ decides what to show. */
#ifndef DK_ERR_H
#define DK_ERR_H

#include <stddef.h>

typedef enum dk_status {
    DK_OK = 0,
    DK_EINVAL,    /* a bad argument or value from the caller */
    DK_EIO,       /* the operating system refused a read, write, open */
    DK_ENOMEM,    /* an allocation failed */
    DK_EFORMAT,   /* a file or body is not what it claims to be */
    DK_EMISMATCH, /* two valid things do not fit together (shapes, architectures) */
    DK_ENOTFOUND, /* a named thing (file, volume, sample, route) does not exist */
    DK_ELIMIT,    /* a size or count exceeds a configured bound */
} dk_status;

typedef struct dk_err {
    dk_status code;
    char msg[512];
} dk_err;

/* Record code and a printf-style message in err (err may be NULL); returns code,
 * so callers write `return dk_err_set(err, DK_EINVAL, "...", ...);`. */
dk_status dk_err_set(dk_err *err, dk_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with more context ("reading 'a.h5': ..."); returns err->code. */
dk_status dk_err_prefix(dk_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset err to DK_OK with an empty message. */
void dk_err_clear(dk_err *err);

/* A short name for a status ("invalid argument", "I/O error", ...). Static storage. */
const char *dk_status_name(dk_status code);

#endif
