/* err.h: the error object every fallible dualkd function fills in.
 *
 * The rule, for every fallible function in every folder:
 *   - it returns a dk_status (DK_OK is 0) and takes a `dk_err *err` that MAY be NULL;
 *     a caller that only needs the status passes NULL;
 *   - it returns the status it has (the one it set, or the one its callee returned,
 *     kept in a local: `if ((st = f(..., err))) return st;`), never `err->code`:
 *     err may be NULL, and reading it back would crash or turn a failure into DK_OK;
 *   - a function that returns a pointer returns NULL on failure and sets err; a caller
 *     that must pass the status on gives it a dk_err of its own (dk_err_forward);
 *   - the message names the file, field or value and what was expected; context is
 *     added on the way up with dk_err_prefix, which writes the ": " itself.
 * Library code never prints and never exits; cli/ decides what to show.
 * Why: one contract means a caller never has to read a callee to know whether NULL is
 * allowed or whether the returned status can be trusted. */
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

/* Prefix the message with context: fmt "'%s'" turns "bad magic" into "'a.h5': bad magic".
 * Writes the ": " itself (so fmt never ends in one) and sets err->code to code; a long
 * message loses its tail, not the prefix (itself cut at 199 bytes). Returns code, also
 * when err is NULL: `return dk_err_prefix(err, st, "volume '%s'", id);`. */
dk_status dk_err_prefix(dk_err *err, dk_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copy a failure a pointer-returning call wrote into a local dk_err on to the caller's
 * err (to may be NULL); returns from->code. */
dk_status dk_err_forward(dk_err *to, const dk_err *from);

/* Reset err to DK_OK with an empty message. */
void dk_err_clear(dk_err *err);

/* A short name for a status ("invalid argument", "I/O error", ...). Static storage. */
const char *dk_status_name(dk_status code);

#endif
