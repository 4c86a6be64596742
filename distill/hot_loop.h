/* hot_loop.h: DK_HOT_LOOP, the attribute of the few loops that move or combine most
 * of the bytes in the numerical core.
 *
 * The library is built for baseline x86-64 at -O2, which vectorises almost nothing
 * and knows no AVX. A DK_HOT_LOOP function is compiled three times (AVX-512, AVX2,
 * baseline) with the vectoriser on, and the loader picks the clone for the CPU at
 * hand. FMA contraction stays off, so every clone rounds like the baseline build:
 * results do not depend on which clone ran. Other compilers (clang builds the fuzz
 * harnesses) get plain functions. */
#ifndef DK_HOT_LOOP_H
#define DK_HOT_LOOP_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DK_HOT_LOOP                                                                                \
    __attribute__((target_clones("avx512f", "avx2", "default"),                                    \
                   optimize("tree-vectorize", "fp-contract=off")))
#else
#define DK_HOT_LOOP
#endif

#endif
