/* winograd_fused.c: the fused Winograd path for thin convolutions (winograd_fused.h).
 *
 * A block (tile plane i, tile rows j0 .. j0 + nrows) first transforms every input
 * channel along d, once per h row of the block, into rows split by parity:
 * with the padded row p[m] = x[m - 1], even[k] = p[2k] and odd[k] = p[2k + 1], so
 * that tile k's four w values p[2k .. 2k + 3] are even[k], odd[k], even[k + 1],
 * odd[k + 1]: plain vector loads at k0 and k0 + 1, no shuffles, in the chunk loop.
 * Layout of that scratch: td[c][ad][r][parity][E], r the block's h row (h = 2 j0 - 1
 * + r), E floats per half row, zero past the data so whole chunks can be read.
 *
 * The chunk loop (per tile row, chunk of lanes along w, ad) is ISA-specific and
 * lives in winograd_fused_body.inc, included once per instruction set below. */
#include "distill/winograd_fused.h"

#include <string.h>

#include "distill/hot_loop.h"
#include "distill/workspace.h"

#define POINTS    64
#define MAX_LANES 16
/* Floats of d-transformed rows per block, about (a block is at least one tile row):
 * 256 KB, so they stay in L2 beside the chunk's vectors. */
#define TD_FLOATS ((size_t)1 << 18)

/* h rows a block of `rows` tile rows reads. */
static size_t block_h_rows(int rows)
{
    return 2 * (size_t)rows + 2;
}

static size_t td_floats(const dk_wino_fused *f)
{
    return (size_t)f->cin * 4 * block_h_rows(f->rows) * 2 * f->even;
}

/* Chunk vectors: v [16][cin], m [16][cout], acc [8][cout], each MAX_LANES floats,
 * and one output row pair of a chunk. */
static size_t vector_floats(const dk_wino_fused *f)
{
    return (size_t)MAX_LANES * (16 * (size_t)f->cin + 24 * (size_t)f->cout) + 2 * MAX_LANES;
}

void dk_wino_fused_plan(dk_wino_fused *f, int cin, int cout, const int dims[3], dk_simd isa)
{
    f->cin = cin;
    f->cout = cout;
    for (int a = 0; a < 3; a++) {
        f->dims[a] = dims[a];
        f->tiles[a] = (dims[a] + 1) / 2;
    }
    f->isa = isa;
    /* Chunks of up to MAX_LANES tiles read even[k0 .. k0 + lanes]: one past the last
     * chunk, then whole vectors. */
    size_t chunks = ((size_t)f->tiles[2] + MAX_LANES - 1) / MAX_LANES;
    f->even = dk_line_floats(chunks * MAX_LANES + 1);
    size_t per_h_row = (size_t)cin * 4 * 2 * f->even;
    size_t h_rows = TD_FLOATS / per_h_row;
    size_t rows = h_rows > 2 ? (h_rows - 2) / 2 : 1;
    if (rows < 1) rows = 1;
    if (rows > (size_t)f->tiles[1]) rows = (size_t)f->tiles[1];
    f->rows = (int)rows;
    f->per_thread = dk_line_floats(td_floats(f)) + dk_line_floats(vector_floats(f)) +
                    dk_line_floats((size_t)dims[2]);
}

/* ---- along d, on whole rows (vectorised for every ISA alike: no products) ---- */

#define INNER static inline __attribute__((always_inline))

/* B^T along d at stride 2: o_q[k] = (B^T a)_q at x index 2k + first, n values. */
INNER void bt_stride2(const float *restrict a0, const float *restrict a1, const float *restrict a2,
                      const float *restrict a3, float *restrict o0, float *restrict o1,
                      float *restrict o2, float *restrict o3, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        o0[k] = a0[2 * k] - a2[2 * k];
        o1[k] = a1[2 * k] + a2[2 * k];
        o2[k] = a2[2 * k] - a1[2 * k];
        o3[k] = a1[2 * k] - a3[2 * k];
    }
}

/* One h row: the four d rows a[0..3] (rows of zeros outside the volume) transformed
 * along d into out[ad] (parity halves of E floats each, the odd half E floats after
 * the even): even[k] = x[2k - 1] for 1 <= k <= w / 2, odd[k] = x[2k] for
 * 0 <= k <= (w - 1) / 2. The other places (even[0] and the tails) are zeros from
 * dk_wino_fused_clear and never written. */
DK_HOT_LOOP static void d_row(const float *const a[4], int w, size_t E, float *const out[4])
{
    size_t ne = (size_t)w / 2, no = ((size_t)w - 1) / 2 + 1;
    bt_stride2(a[0] + 1, a[1] + 1, a[2] + 1, a[3] + 1, out[0] + 1, out[1] + 1, out[2] + 1,
               out[3] + 1, ne);
    bt_stride2(a[0], a[1], a[2], a[3], out[0] + E, out[1] + E, out[2] + E, out[3] + E, no);
}

/* Channel xc's h rows of the block along d into tdc ([ad][r][parity][E]). */
static void d_channel(const dk_wino_fused *f, const float *xc, int i, int j0, int nrows,
                      const float *zero, float *tdc)
{
    const int d = f->dims[0], h = f->dims[1], w = f->dims[2];
    const size_t E = f->even, plane = (size_t)h * w, nh = block_h_rows(nrows);
    const size_t ad_step = block_h_rows(f->rows) * 2 * E;
    for (size_t r = 0; r < nh; r++) {
        const float *a[4];
        int hh = 2 * j0 - 1 + (int)r;
        for (int k = 0; k < 4; k++) {
            int dd = 2 * i - 1 + k;
            bool inside = dd >= 0 && dd < d && hh >= 0 && hh < h;
            a[k] = inside ? xc + (size_t)dd * plane + (size_t)hh * w : zero;
        }
        float *out[4];
        for (int ad = 0; ad < 4; ad++)
            out[ad] = tdc + (size_t)ad * ad_step + r * 2 * E;
        d_row(a, w, E, out);
    }
}

/* ---- the chunk loop, once per instruction set ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DK_HAVE_FUSED 1

#define LANES         16
#define SUFFIX        avx512
#define TARGET        __attribute__((target("avx512f")))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VSET1(s)      _mm512_set1_ps(s)
#define ZIP_LO(e, o)                                                                               \
    _mm512_permutex2var_ps(                                                                        \
        (e), _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), (o))
#define ZIP_HI(e, o)                                                                               \
    _mm512_permutex2var_ps(                                                                        \
        (e), _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), (o))
#include "distill/winograd_fused_body.inc"
#undef LANES
#undef SUFFIX
#undef TARGET
#undef VFMA
#undef VSET1
#undef ZIP_LO
#undef ZIP_HI

#define LANES         8
#define SUFFIX        avx2
#define TARGET        __attribute__((target("avx2,fma")))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VSET1(s)      _mm256_set1_ps(s)
#define ZIP_LO(e, o)                                                                               \
    _mm256_permute2f128_ps(_mm256_unpacklo_ps((e), (o)), _mm256_unpackhi_ps((e), (o)), 0x20)
#define ZIP_HI(e, o)                                                                               \
    _mm256_permute2f128_ps(_mm256_unpacklo_ps((e), (o)), _mm256_unpackhi_ps((e), (o)), 0x31)
#include "distill/winograd_fused_body.inc"
#endif

dk_simd dk_simd_best(void)
{
    if (dk_simd_supported(DK_SIMD_AVX512)) return DK_SIMD_AVX512;
    if (dk_simd_supported(DK_SIMD_AVX2)) return DK_SIMD_AVX2;
    return DK_SIMD_NONE;
}

bool dk_simd_supported(dk_simd isa)
{
#ifdef DK_HAVE_FUSED
    __builtin_cpu_init();
    if (isa == DK_SIMD_AVX512) return __builtin_cpu_supports("avx512f");
    if (isa == DK_SIMD_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    (void)isa;
    return false;
}

void dk_wino_fused_clear(const dk_wino_fused *f, float *scratch)
{
    memset(scratch, 0, f->per_thread * sizeof *scratch);
}

void dk_wino_fused_block(const dk_wino_fused *f, const float *u, const float *x, const float *bias,
                         int i, int j0, int nrows, float *y, float *scratch)
{
    const size_t spatial = (size_t)f->dims[0] * f->dims[1] * f->dims[2];
    float *td = scratch, *vectors = td + dk_line_floats(td_floats(f));
    const float *zero = vectors + dk_line_floats(vector_floats(f));
    const size_t per_channel = 4 * block_h_rows(f->rows) * 2 * f->even;
    for (int c = 0; c < f->cin; c++)
        d_channel(f, x + (size_t)c * spatial, i, j0, nrows, zero, td + (size_t)c * per_channel);
#ifdef DK_HAVE_FUSED
    if (f->isa == DK_SIMD_AVX512)
        rows_avx512(f, u, td, bias, i, j0, nrows, y, vectors);
    else if (f->isa == DK_SIMD_AVX2)
        rows_avx2(f, u, td, bias, i, j0, nrows, y, vectors);
#else
    (void)u;
    (void)bias;
    (void)y;
#endif
}
