/* blas.h: how dualkd uses OpenBLAS: thread count and kernel choice.
 *
 * Debian's OpenBLAS 0.3.21 picks its AVX2 (Haswell) kernels on AVX-512 CPUs;
 * its SkylakeX SGEMM is about twice as fast there. The core type can only be
 * chosen before the library initialises, so programs call
 * dk_blas_reexec_for_fast_kernels() first thing in main(). */
#ifndef DK_BLAS_H
#define DK_BLAS_H

#include <stdbool.h>

/* The kernel choice is dualkd's own setting, DUALKD_BLAS_CORETYPE:
 *   unset or "auto": on a CPU with AVX-512 (F, BW, DQ, VL) use the SkylakeX
 *     kernels even when OpenBLAS (or an inherited OPENBLAS_CORETYPE) picked an
 *     AVX2 family; elsewhere leave OpenBLAS's choice alone;
 *   "inherit": leave OPENBLAS_CORETYPE and OpenBLAS's choice alone;
 *   any other value: passed on as OPENBLAS_CORETYPE (e.g. "Haswell"). */

/* The OPENBLAS_CORETYPE this process should run with, or NULL when the kernels
 * OpenBLAS is already using are the ones wanted. Static storage or environment. */
const char *dk_blas_wanted_coretype(void);

/* If dk_blas_wanted_coretype() is not NULL, set OPENBLAS_CORETYPE to it and execv
 * /proc/self/exe with the same argv (once: a guard variable stops loops).
 * Returns only when no re-exec was needed or it failed (then the slow path runs). */
void dk_blas_reexec_for_fast_kernels(char **argv);

/* Set the number of OpenBLAS threads (n >= 1). Server and BLAS threads share the
 * cores, so callers decide this deliberately. */
void dk_blas_set_threads(int n);
int dk_blas_threads(void);

/* The kernel family OpenBLAS uses ("Haswell", "SkylakeX", ...). Static storage. */
const char *dk_blas_corename(void);

#endif
