/* blas.c: OpenBLAS thread count and the AVX-512 kernel re-exec. */
#include "distill/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static bool cpu_has_avx512(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

static bool is_avx512_family(const char *core)
{
    static const char *families[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; core && i < sizeof families / sizeof families[0]; i++)
        if (strcasecmp(core, families[i]) == 0) return true;
    return false;
}

const char *dk_blas_wanted_coretype(void)
{
    const char *setting = getenv("DUALKD_BLAS_CORETYPE");
    const char *core = openblas_get_corename();
    if (setting && strcasecmp(setting, "inherit") == 0) return NULL;
    if (setting && *setting && strcasecmp(setting, "auto") != 0)
        return core && strcasecmp(core, setting) == 0 ? NULL : setting;
    if (!cpu_has_avx512() || is_avx512_family(core)) return NULL;
    return "SKYLAKEX";
}

void dk_blas_reexec_for_fast_kernels(char **argv)
{
    if (getenv("DUALKD_BLAS_REEXEC")) return;
    const char *wanted = dk_blas_wanted_coretype();
    if (!wanted) return;
    setenv("OPENBLAS_CORETYPE", wanted, 1);
    setenv("DUALKD_BLAS_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* execv failed: carry on with the kernels we have. */
}

void dk_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

int dk_blas_threads(void) { return openblas_get_num_threads(); }

const char *dk_blas_corename(void)
{
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}
