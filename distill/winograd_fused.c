/* winograd_fused.c: the fused Winograd path for thin convolutions (winograd_fused.h).
 *
 * A block (tile plane i, tile rows j0 .. j0 + nrows) first transforms every input
 * channel along d, once per h row of the block, into rows split by parity:
 * with the padded row p[m] = x[m - 1], even[k] = p[2k] and odd[k] = p[2k + 1], so
 * that tile k's four w values p[2k .. 2k + 3] are even[k], odd[k], even[k + 1],
 * odd[k + 1]: plain vector loads at slot s and s + 1, no shuffles, in the chunk loop.
 *
 * Tile row rt reads the block's h rows r = 2 rt .. 2 rt + 3 (h = 2 j0 - 1 + r): the
 * even and the odd row of tile row rt's segment, and those of rt + 1's. Row r is
 * at seg * (r / 2) + hp * (r % 2) in its plane ad (plane floats per ad, 4 per
 * channel), its odd half `odd` after the even, tile k's even[k] and odd[k] at k.
 * Two layouts (dk_wino_fused_plan):
 *   per row, when whole chunks fill a tile row: segments of 4 rows [hp][parity][P],
 *     P = tiles[2] + 1 rounded up to a cache line (odd = P, hp = 2 P, seg = 4 P),
 *     the rows of a chunk's channel together, and chunks start at k = 0, LANES, ...;
 *   run on: arrays [hp][parity][S] with tile row rt's segment at P * rt, P =
 *     tiles[2] + 1 (odd = S, hp = 2 S, seg = P). Lane = slot P * rt + k then reads
 *     every row at a fixed offset from the chunk's first slot, whichever tile row
 *     it is in, so chunks run on across tile rows; slot tiles[2] is only the last
 *     tile's even[k + 1] and is not stored.
 * Places never written (even[0], odd[tiles[2]], the padding) stay zero from
 * dk_wino_fused_clear.
 *
 * The chunk loop (per chunk of tile slots, per ad) is ISA-specific and
 * lives in winograd_fused_body.inc, included once per instruction set below. */
#include "distill/winograd_fused.h"

#include <string.h>

#include "distill/hot_loop.h"
#include "distill/workspace.h"

#define POINTS    64
#define MAX_LANES 16
/* Floats of d-transformed rows per block, about (a block is at least one tile row):
 * 1 MiB, so they stay in L2 beside the chunk's vectors. */
#define TD_FLOATS ((size_t)1 << 18)

/* h rows a block of `rows` tile rows reads. */
static size_t block_h_rows(int rows)
{
    return 2 * (size_t)rows + 2;
}

static size_t td_floats(const dk_wino_fused *f)
{
    return (size_t)f->cin * 4 * f->plane;
}

/* n floats rounded up to an odd number of cache lines: the row arrays a chunk
 * reads, strides of this apart (and channels 16 apart), then fall in different L1
 * sets. With a stride of 4 KiB they all fell in a few sets and evicted each other
 * (measured: 32 -> 16 at 80², 8 % slower). */
static size_t odd_lines(size_t n)
{
    size_t line = dk_line_floats(1), s = dk_line_floats(n);
    return s / line % 2 ? s : s + line;
}

/* The strides of blocks of `rows` tile rows (see the top of this file). */
static void set_strides(dk_wino_fused *f, int rows)
{
    const size_t P = (size_t)f->slots;
    if (f->per_row) {
        f->odd = P;
        f->hp = 2 * P;
        f->seg = 4 * P;
        /* not odd_lines: slower here (16 -> 8 at 160², one thread: 79 against 75 ms) */
        f->plane = ((size_t)rows + 1) * 4 * P;
        return;
    }
    /* chunks of up to MAX_LANES slots from slot 0 read P + 1 slots past the last
     * chunk's start */
    size_t chunked = ((size_t)rows * P + MAX_LANES - 1) / MAX_LANES * MAX_LANES;
    f->odd = odd_lines(chunked + P + 1);
    f->hp = 2 * f->odd;
    f->seg = P;
    f->plane = 4 * f->odd;
}

/* Chunk vectors: v [cin][16], m [16][cout], acc [8][cout], each MAX_LANES floats. */
static size_t vector_floats(const dk_wino_fused *f)
{
    return (size_t)MAX_LANES * (16 * (size_t)f->cin + 24 * (size_t)f->cout);
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
    /* Chunks within tile rows lose no lane then, and keep a channel's rows in one
     * place (measured faster: 16 -> 8 at 160 wide, 80 tiles a row) */
    int lanes = isa == DK_SIMD_AVX2 ? 8 : MAX_LANES;
    f->per_row = f->tiles[2] % lanes == 0;
    f->slots = f->per_row ? (int)dk_line_floats((size_t)f->tiles[2] + 1) : f->tiles[2] + 1;
    int rows = 1;
    while (rows < f->tiles[1]) {
        set_strides(f, rows + 1);
        if (td_floats(f) > TD_FLOATS) break;
        rows++;
    }
    /* as many blocks, evened out (20 rows as 7, 7, 6, not 9, 9, 2) */
    int blocks = (f->tiles[1] + rows - 1) / rows;
    f->rows = rows = (f->tiles[1] + blocks - 1) / blocks;
    set_strides(f, rows);
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
 * along d into out[ad] (the odd half `odd` floats after the even): even[k] = x[2k - 1]
 * for 1 <= k <= w / 2, odd[k] = x[2k] for 0 <= k <= (w - 1) / 2. The other places
 * (even[0] and past the data) are zeros from dk_wino_fused_clear, never written. */
DK_HOT_LOOP static void d_row(const float *const a[4], int w, size_t odd, float *const out[4])
{
    size_t ne = (size_t)w / 2, no = ((size_t)w - 1) / 2 + 1;
    bt_stride2(a[0] + 1, a[1] + 1, a[2] + 1, a[3] + 1, out[0] + 1, out[1] + 1, out[2] + 1,
               out[3] + 1, ne);
    bt_stride2(a[0], a[1], a[2], a[3], out[0] + odd, out[1] + odd, out[2] + odd, out[3] + odd, no);
}

/* Channel xc's h rows of the block along d into tdc (its 4 planes). */
static void d_channel(const dk_wino_fused *f, const float *xc, int i, int j0, int nrows,
                      const float *zero, float *tdc)
{
    const int d = f->dims[0], h = f->dims[1], w = f->dims[2];
    const size_t plane = (size_t)h * w, nh = block_h_rows(nrows);
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
            out[ad] = tdc + (size_t)ad * f->plane + r / 2 * f->seg + r % 2 * f->hp;
        d_row(a, w, f->odd, out);
    }
}

/* ---- the chunk loop, once per instruction set ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DK_HAVE_FUSED 1

/* A segment of a chunk: lanes a .. a + count / 2 of one tile row, stored as `count`
 * interleaved values (even[a], odd[a], even[a + 1], ...) from p on. Lanes and
 * values past it are masked off, so nothing outside the segment is written; the
 * whole chunk (a == 0, all lanes) uses plain stores (masked ones are slow on some
 * AMD cores). */
typedef struct seg_avx512 {
    __m512i lo, hi;   /* permutation indices of values 0..15 and 16..31 */
    __mmask16 m0, m1; /* values stored of each */
    bool whole;
} seg_avx512;

__attribute__((target("avx512f"))) static inline seg_avx512 seg_plan_avx512(int a, int count)
{
    const __m512i shift = _mm512_set1_epi32(a);
    seg_avx512 s = {
        /* index v < 16: even[v], else odd[v - 16]; the permutation uses 5 bits, so an
         * index past the chunk wraps to a masked-off value */
        .lo = _mm512_add_epi32(
            _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), shift),
        .hi = _mm512_add_epi32(
            _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), shift),
        .m0 = (__mmask16)(count >= 16 ? 0xFFFFu : (1u << count) - 1),
        .m1 = (__mmask16)(count >= 32  ? 0xFFFFu
                          : count > 16 ? (1u << (count - 16)) - 1
                                       : 0),
        .whole = a == 0 && count == 32};
    return s;
}

__attribute__((target("avx512f"))) static inline void
seg_store_avx512(float *p, __m512 even, __m512 odd, const seg_avx512 *s)
{
    __m512 v0 = _mm512_permutex2var_ps(even, s->lo, odd);
    if (s->whole) {
        _mm512_storeu_ps(p, v0);
        _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(even, s->hi, odd));
        return;
    }
    _mm512_mask_storeu_ps(p, s->m0, v0);
    if (s->m1) _mm512_mask_storeu_ps(p + 16, s->m1, _mm512_permutex2var_ps(even, s->hi, odd));
}

#define LANES         16
#define SUFFIX        avx512
#define TARGET        __attribute__((target("avx512f")))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VSET1(s)      _mm512_set1_ps(s)
#include "distill/winograd_fused_body.inc"
#undef LANES
#undef SUFFIX
#undef TARGET
#undef VFMA
#undef VSET1

/* As seg_avx512, for 8 lanes. */
typedef struct seg_avx2 {
    __m256i lo, hi; /* lane of values 0..7 and 8..15 (3 bits used: past the chunk wraps) */
    __m256i m0, m1; /* values stored of each (all bits set) */
    bool whole, two;
} seg_avx2;

__attribute__((target("avx2,fma"))) static inline seg_avx2 seg_plan_avx2(int a, int count)
{
    const __m256i pairs = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), shift = _mm256_set1_epi32(a),
                  n = _mm256_set1_epi32(count);
    seg_avx2 s = {.lo = _mm256_add_epi32(pairs, shift),
                  .hi = _mm256_add_epi32(_mm256_add_epi32(pairs, _mm256_set1_epi32(4)), shift),
                  .m0 = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                  .m1 = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15)),
                  .whole = a == 0 && count == 16,
                  .two = count > 8};
    return s;
}

__attribute__((target("avx2,fma"))) static inline void seg_store_avx2(float *p, __m256 even,
                                                                      __m256 odd, const seg_avx2 *s)
{
    __m256 v0 = _mm256_blend_ps(_mm256_permutevar8x32_ps(even, s->lo),
                                _mm256_permutevar8x32_ps(odd, s->lo), 0xAA);
    __m256 v1 = _mm256_blend_ps(_mm256_permutevar8x32_ps(even, s->hi),
                                _mm256_permutevar8x32_ps(odd, s->hi), 0xAA);
    if (s->whole) {
        _mm256_storeu_ps(p, v0);
        _mm256_storeu_ps(p + 8, v1);
        return;
    }
    _mm256_maskstore_ps(p, s->m0, v0);
    if (s->two) _mm256_maskstore_ps(p + 8, s->m1, v1);
}

#define LANES         8
#define SUFFIX        avx2
#define TARGET        __attribute__((target("avx2,fma")))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VSET1(s)      _mm256_set1_ps(s)
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
    const size_t per_channel = 4 * f->plane;
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
