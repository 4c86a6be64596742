/* npy_cache.h: the .npy bodies of recently served arrays, shared by every
 * request for the same array. Stores are immutable once verified, so a body
 * is keyed by its content (the array's stored SHA-256, "-f4" when widened,
 * and the dtype and shape of its header) and never goes stale. Without it
 * each download re-read the array out of HDF5 (fletcher32 checksums, a copy,
 * a fresh zeroed buffer): about four times the work of sending it
 * (bench/serve_vs_nginx.sh, perf).
 *
 * Process-wide: bodies are content-addressed, so servers in one process may
 * share them. Bounded to DK_NPY_CACHE_BYTES; the least recently used body
 * goes first, and stays alive until the last response sending it is done. */
#ifndef DK_HTTPAPI_NPY_CACHE_H
#define DK_HTTPAPI_NPY_CACHE_H

#include <stddef.h>

#define DK_NPY_CACHE_BYTES (256u << 20)
#define DK_NPY_CACHE_KEY   192

typedef struct dk_npy_body dk_npy_body;

/* The cached body for key with a reference taken (release with
 * dk_npy_body_release), or NULL. *data and *len describe the whole .npy. */
dk_npy_body *dk_npy_cache_get(const char *key, const char **data, size_t *len);
/* Hand a malloc'ed .npy of len bytes to the cache under key (a body larger
 * than a quarter of the cache is not kept). Returns a body holding one
 * reference for the caller, or NULL when out of memory (data is then freed). */
dk_npy_body *dk_npy_cache_put(const char *key, char *data, size_t len);
/* Drop one reference (a MHD free callback); frees the body after the last. */
void dk_npy_body_release(void *body);

#endif
