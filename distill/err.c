/* err.c: filling in dk_err. No allocation: messages live inside the object. */
#include "distill/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

dk_status dk_err_set(dk_err *err, dk_status code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

dk_status dk_err_prefix(dk_err *err, dk_status code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    char prefix[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* The message keeps its head; a very long one loses its tail. The prefix (at most
     * 199 bytes) always fits in the 512-byte message. */
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", prefix);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof err->msg) return code;
    size_t keep = strnlen(old, sizeof err->msg - 1 - (size_t)n);
    memcpy(err->msg + n, old, keep);
    err->msg[(size_t)n + keep] = '\0';
    return code;
}

dk_status dk_err_forward(dk_err *to, const dk_err *from)
{
    if (to && to != from) *to = *from;
    return from->code;
}

void dk_err_clear(dk_err *err)
{
    if (!err) return;
    err->code = DK_OK;
    err->msg[0] = '\0';
}

const char *dk_status_name(dk_status code)
{
    switch (code) {
    case DK_OK: return "ok";
    case DK_EINVAL: return "invalid argument";
    case DK_EIO: return "I/O error";
    case DK_ENOMEM: return "out of memory";
    case DK_EFORMAT: return "bad format";
    case DK_EMISMATCH: return "mismatch";
    case DK_ENOTFOUND: return "not found";
    case DK_ELIMIT: return "limit exceeded";
    }
    return "unknown error";
}
