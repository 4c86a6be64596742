/* ratelimit.h: per-token request rate, as a token bucket per caller id:
 * `rate` requests a second on average, bursts of up to `burst`. A bounded
 * table (the least recently seen caller is forgotten when it is full), one
 * mutex; taking a request is a few arithmetic operations. */
#ifndef DK_HTTPAPI_RATELIMIT_H
#define DK_HTTPAPI_RATELIMIT_H

#include <stdbool.h>

typedef struct dk_ratelimit dk_ratelimit;

/* rate <= 0: unlimited. Caller frees with dk_ratelimit_free; NULL when out of memory. */
dk_ratelimit *dk_ratelimit_new(double rate, double burst);
void dk_ratelimit_free(dk_ratelimit *r);

/* Take one request for caller id at time now (seconds, monotonic). False when
 * the bucket is empty; *retry_after is then the seconds until one is free. */
bool dk_ratelimit_take(dk_ratelimit *r, const char *id, double now, double *retry_after);

#endif
