/* winograd_fused.c: the fused Winograd path for thin convolutions (winograd_fused.h).
 *
 * A block (tile plane i, tile rows j0 .. j0 + nrows) first transforms every input
 * channel along d, once per h row of the block, into rows split by phase mod T (the
 * tile, 2 or 4): with the padded row p[m] = x[m - 1], phase q holds p[T k + q] at
 * k, so that tile k's T + 2 w values p[T k .. T k + T + 1] are phases 0 .. T - 1 at
 * k and phases 0, 1 at k + 1: plain vector loads at slot s and s + 1, no shuffles,
 * in the chunk loop.
 *
 * Tile row rt reads the block's h rows r = T rt .. T rt + T + 1 (h = T j0 - 1 + r):
 * rows 0 .. T - 1 of tile row rt's segment and rows 0, 1 of rt + 1's. Row r is at
 * seg * (r / T) + hp * (r % T) in its plane ad (plane floats per ad, 4 per
 * channel), its phase q at q * `phase`, tile k's value at k. Two layouts
 * (dk_wino_fused_plan):
 *   per row, when whole chunks fill a tile row: segments of T rows [row][phase][P],
 *     P = tiles[2] + 1 rounded up to a cache line (phase = P, hp = T P, seg =
 *     T T P), the rows of a chunk's channel together, and chunks start at k = 0,
 *     LANES, ...;
 *   run on: arrays [row][phase][S] with tile row rt's segment at P * rt, P =
 *     tiles[2] + 1 (phase = S, hp = T S, seg = P). Lane = slot P * rt + k then
 *     reads every row at a fixed offset from the chunk's first slot, whichever tile
 *     row it is in, so chunks run on across tile rows; slot tiles[2] only holds the
 *     last tile's phases 0 and 1 at k + 1.
 * Places never written (phase 0 at k = 0, past the data, the padding) stay zero from
 * dk_wino_fused_clear.
 *
 * The chunk loop (per chunk of tile slots, per ad) is specific to the instruction
 * set and the tile and lives in winograd_fused_body.inc, included once per pair
 * below. */
#include "distill/winograd_fused.h"

#include <string.h>

#include "distill/hot_loop.h"
#include "distill/workspace.h"

#define MAX_LANES 16
/* Floats of d-transformed rows per block, about (a block is at least one tile row):
 * 1 MiB, so they stay in L2 beside the chunk's vectors. */
#define TD_FLOATS ((size_t)1 << 18)

/* h rows a block of `rows` tile rows of tile T reads. */
static size_t block_h_rows(int rows, int T)
{
    return (size_t)T * rows + 2;
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
    const size_t P = (size_t)f->slots, T = (size_t)f->tile;
    if (f->per_row) {
        f->phase = P;
        f->hp = T * P;
        f->seg = T * T * P;
        /* not odd_lines: slower here (16 -> 8 at 160², one thread: 79 against 75 ms) */
        f->plane = ((size_t)rows + 1) * T * T * P;
        return;
    }
    /* chunks of up to MAX_LANES slots from slot 0 read P + 1 slots past the last
     * chunk's start */
    size_t chunked = ((size_t)rows * P + MAX_LANES - 1) / MAX_LANES * MAX_LANES;
    f->phase = odd_lines(chunked + P + 1);
    f->hp = T * f->phase;
    f->seg = P;
    f->plane = T * T * f->phase;
}

/* Chunk vectors, each MAX_LANES floats: with X = (T + 2)^2 points per plane,
 * v [cin][X], m [X][cout], acc [2 T T][cout]. */
static size_t vector_floats(const dk_wino_fused *f)
{
    size_t T = (size_t)f->tile, X = (T + 2) * (T + 2);
    return (size_t)MAX_LANES * (X * (size_t)f->cin + (X + 2 * T * T) * (size_t)f->cout);
}

void dk_wino_fused_plan(dk_wino_fused *f, int cin, int cout, const int dims[3], dk_simd isa,
                        int tile)
{
    f->cin = cin;
    f->cout = cout;
    f->tile = tile;
    for (int a = 0; a < 3; a++) {
        int t = a == 0 ? 2 : tile;
        f->dims[a] = dims[a];
        f->tiles[a] = (dims[a] + t - 1) / t;
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

/* One h row, tile 2: the four d rows a[0..3] (rows of zeros outside the volume)
 * transformed along d into out[ad] by parity: even[k] = x[2k - 1] for 1 <= k <= w / 2
 * at phase 0, odd[k] = x[2k] for 0 <= k <= (w - 1) / 2 at phase 1. */
DK_HOT_LOOP static void d_row2(const float *const a[4], int w, size_t phase, float *const out[4])
{
    size_t ne = (size_t)w / 2, no = ((size_t)w - 1) / 2 + 1;
    bt_stride2(a[0] + 1, a[1] + 1, a[2] + 1, a[3] + 1, out[0] + 1, out[1] + 1, out[2] + 1,
               out[3] + 1, ne);
    bt_stride2(a[0], a[1], a[2], a[3], out[0] + phase, out[1] + phase, out[2] + phase,
               out[3] + phase, no);
}

/* q = u + v (ADD) or u - v, by phase mod 4, for w values 0 .. 4 n - 1: value 4 k + j
 * into phase j + 1 at k (j < 3), or into phase 0 at k + 1 (j = 3; q0 points at k = 1). */
#define PHASES(name, OP)                                                                           \
    INNER void name(const float *restrict u, const float *restrict v, float *restrict q0,          \
                    float *restrict q1, float *restrict q2, float *restrict q3, size_t n)          \
    {                                                                                              \
        for (size_t k = 0; k < n; k++) {                                                           \
            q1[k] = u[4 * k] OP v[4 * k];                                                          \
            q2[k] = u[4 * k + 1] OP v[4 * k + 1];                                                  \
            q3[k] = u[4 * k + 2] OP v[4 * k + 2];                                                  \
            q0[k] = u[4 * k + 3] OP v[4 * k + 3];                                                  \
        }                                                                                          \
    }
PHASES(add_phases, +)
PHASES(sub_phases, -)
#undef PHASES

/* One h row, tile 4: as d_row2, x[m] into phase (m + 1) % 4 at (m + 1) / 4. */
DK_HOT_LOOP static void d_row4(const float *const a[4], int w, size_t phase, float *const out[4])
{
    const size_t n = (size_t)w / 4;
    float *q[4][4];
    for (int ad = 0; ad < 4; ad++)
        for (int j = 0; j < 4; j++)
            q[ad][j] = out[ad] + (size_t)j * phase + (j == 0);
    sub_phases(a[0], a[2], q[0][0], q[0][1], q[0][2], q[0][3], n);
    add_phases(a[1], a[2], q[1][0], q[1][1], q[1][2], q[1][3], n);
    sub_phases(a[2], a[1], q[2][0], q[2][1], q[2][2], q[2][3], n);
    sub_phases(a[1], a[3], q[3][0], q[3][1], q[3][2], q[3][3], n);
    for (size_t m = 4 * n; m < (size_t)w; m++) {
        size_t at = (m + 1) % 4 * phase + (m + 1) / 4;
        out[0][at] = a[0][m] - a[2][m];
        out[1][at] = a[1][m] + a[2][m];
        out[2][at] = a[2][m] - a[1][m];
        out[3][at] = a[1][m] - a[3][m];
    }
}

/* Channel xc's h rows of the block along d into tdc (its 4 planes). */
static void d_channel(const dk_wino_fused *f, const float *xc, int i, int j0, int nrows,
                      const float *zero, float *tdc)
{
    const int d = f->dims[0], h = f->dims[1], w = f->dims[2];
    const size_t T = (size_t)f->tile, plane = (size_t)h * w, nh = block_h_rows(nrows, f->tile);
    for (size_t r = 0; r < nh; r++) {
        const float *a[4];
        int hh = (int)T * j0 - 1 + (int)r;
        for (int k = 0; k < 4; k++) {
            int dd = 2 * i - 1 + k;
            bool inside = dd >= 0 && dd < d && hh >= 0 && hh < h;
            a[k] = inside ? xc + (size_t)dd * plane + (size_t)hh * w : zero;
        }
        float *out[4];
        for (int ad = 0; ad < 4; ad++)
            out[ad] = tdc + (size_t)ad * f->plane + r / T * f->seg + r % T * f->hp;
        if (T == 4)
            d_row4(a, w, f->phase, out);
        else
            d_row2(a, w, f->phase, out);
    }
}

/* ---- the chunk loop, once per instruction set ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DK_HAVE_FUSED 1

/* A segment of a chunk: lanes a .. a + count / T of one tile row, stored as `count`
 * interleaved values (v0[a], .., v(T-1)[a], v0[a + 1], ...) from p on, T = 2 or 4
 * (the tile: values per lane). Lanes and values past it are masked off, so nothing
 * outside the segment is written; the whole chunk (a == 0, all lanes) uses plain
 * stores (masked ones are slow on some AMD cores). */
/* Indices that interleave lanes a, a + 1, ... of two vectors into pairs (v0[a],
 * v1[a], v0[a + 1], ...): the first 8 pairs (lo) and the next 8 (hi). The
 * permutation uses 5 bits, so an index past the chunk wraps to a masked-off value. */
__attribute__((target("avx512f"))) static inline void pair_indices_avx512(int a, __m512i *lo,
                                                                          __m512i *hi)
{
    const __m512i shift = _mm512_set1_epi32(a);
    *lo = _mm512_add_epi32(
        _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), shift);
    *hi = _mm512_add_epi32(
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), shift);
}

/* The first n of 16 values (none for n <= 0, all for n >= 16). */
static inline __mmask16 first_of_16(int n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : n > 0 ? (1u << n) - 1 : 0);
}

typedef struct seg2_t_avx512 {
    __m512i lo, hi;   /* pair_indices_avx512 */
    __mmask16 m0, m1; /* values stored of each */
    bool whole;
} seg2_t_avx512;

__attribute__((target("avx512f"))) static inline seg2_t_avx512 seg2_plan_avx512(int a, int count)
{
    seg2_t_avx512 s = {
        .m0 = first_of_16(count), .m1 = first_of_16(count - 16), .whole = a == 0 && count == 32};
    pair_indices_avx512(a, &s.lo, &s.hi);
    return s;
}

__attribute__((target("avx512f"))) static inline void
seg2_store_avx512(float *p, __m512 v0, __m512 v1, const seg2_t_avx512 *s)
{
    __m512 lo = _mm512_permutex2var_ps(v0, s->lo, v1);
    if (s->whole) {
        _mm512_storeu_ps(p, lo);
        _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(v0, s->hi, v1));
        return;
    }
    _mm512_mask_storeu_ps(p, s->m0, lo);
    if (s->m1) _mm512_mask_storeu_ps(p + 16, s->m1, _mm512_permutex2var_ps(v0, s->hi, v1));
}

typedef struct seg4_t_avx512 {
    __m512i lo, hi;    /* pair_indices_avx512, of (v0, v1) and of (v2, v3) */
    __mmask16 mask[4]; /* values stored of each of the four interleaved vectors */
    bool whole;
} seg4_t_avx512;

__attribute__((target("avx512f"))) static inline seg4_t_avx512 seg4_plan_avx512(int a, int count)
{
    seg4_t_avx512 s = {.whole = a == 0 && count == 64};
    pair_indices_avx512(a, &s.lo, &s.hi);
    for (int q = 0; q < 4; q++)
        s.mask[q] = first_of_16(count - 16 * q);
    return s;
}

__attribute__((target("avx512f"))) static inline void
seg4_store_avx512(float *p, __m512 v0, __m512 v1, __m512 v2, __m512 v3, const seg4_t_avx512 *s)
{
    /* the pairs, then quadruples of lanes 0..3, 4..7, 8..11, 12..15 */
    const __m512i qlo = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23),
                  qhi = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30,
                                          31);
    __m512 a = _mm512_permutex2var_ps(v0, s->lo, v1), b = _mm512_permutex2var_ps(v2, s->lo, v3),
           c = _mm512_permutex2var_ps(v0, s->hi, v1), d = _mm512_permutex2var_ps(v2, s->hi, v3);
    __m512 o[4] = {_mm512_permutex2var_ps(a, qlo, b), _mm512_permutex2var_ps(a, qhi, b),
                   _mm512_permutex2var_ps(c, qlo, d), _mm512_permutex2var_ps(c, qhi, d)};
    for (int q = 0; q < 4; q++) {
        if (s->whole)
            _mm512_storeu_ps(p + 16 * q, o[q]);
        else if (s->mask[q])
            _mm512_mask_storeu_ps(p + 16 * q, s->mask[q], o[q]);
    }
}

#define LANES         16
#define TARGET        __attribute__((target("avx512f")))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VSET1(s)      _mm512_set1_ps(s)
#define TILE          2
#define SUFFIX        avx512_2
#define SEG(name)     seg2_##name##_avx512
#include "distill/winograd_fused_body.inc"
#undef TILE
#undef SUFFIX
#undef SEG
#define TILE      4
#define SUFFIX    avx512_4
#define SEG(name) seg4_##name##_avx512
#include "distill/winograd_fused_body.inc"
#undef TILE
#undef SUFFIX
#undef SEG
#undef LANES
#undef TARGET
#undef VFMA
#undef VSET1

/* The same segments, for 8 lanes. */
typedef struct seg2_t_avx2 {
    __m256i lo, hi; /* lane of values 0..7 and 8..15 (3 bits used: past the chunk wraps) */
    __m256i m0, m1; /* values stored of each (all bits set) */
    bool whole, two;
} seg2_t_avx2;

__attribute__((target("avx2,fma"))) static inline seg2_t_avx2 seg2_plan_avx2(int a, int count)
{
    const __m256i pairs = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), shift = _mm256_set1_epi32(a),
                  n = _mm256_set1_epi32(count);
    seg2_t_avx2 s = {.lo = _mm256_add_epi32(pairs, shift),
                     .hi = _mm256_add_epi32(_mm256_add_epi32(pairs, _mm256_set1_epi32(4)), shift),
                     .m0 = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                     .m1 = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15)),
                     .whole = a == 0 && count == 16,
                     .two = count > 8};
    return s;
}

__attribute__((target("avx2,fma"))) static inline void
seg2_store_avx2(float *p, __m256 v0, __m256 v1, const seg2_t_avx2 *s)
{
    __m256 lo = _mm256_blend_ps(_mm256_permutevar8x32_ps(v0, s->lo),
                                _mm256_permutevar8x32_ps(v1, s->lo), 0xAA);
    __m256 hi = _mm256_blend_ps(_mm256_permutevar8x32_ps(v0, s->hi),
                                _mm256_permutevar8x32_ps(v1, s->hi), 0xAA);
    if (s->whole) {
        _mm256_storeu_ps(p, lo);
        _mm256_storeu_ps(p + 8, hi);
        return;
    }
    _mm256_maskstore_ps(p, s->m0, lo);
    if (s->two) _mm256_maskstore_ps(p + 8, s->m1, hi);
}

typedef struct seg4_t_avx2 {
    __m256i shift;   /* lane l takes lane l + a (3 bits used: past the chunk wraps) */
    __m256i mask[4]; /* values stored of each interleaved vector (all bits set) */
    int stores;      /* interleaved vectors with a value stored */
    bool whole;
} seg4_t_avx2;

__attribute__((target("avx2,fma"))) static inline seg4_t_avx2 seg4_plan_avx2(int a, int count)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    seg4_t_avx2 s = {.shift = _mm256_add_epi32(lanes, _mm256_set1_epi32(a)),
                     .stores = (count + 7) / 8,
                     .whole = a == 0 && count == 32};
    for (int q = 0; q < 4; q++)
        s.mask[q] = _mm256_cmpgt_epi32(_mm256_set1_epi32(count - 8 * q), lanes);
    return s;
}

__attribute__((target("avx2,fma"))) static inline void
seg4_store_avx2(float *p, __m256 v0, __m256 v1, __m256 v2, __m256 v3, const seg4_t_avx2 *s)
{
    if (!s->whole) {
        v0 = _mm256_permutevar8x32_ps(v0, s->shift);
        v1 = _mm256_permutevar8x32_ps(v1, s->shift);
        v2 = _mm256_permutevar8x32_ps(v2, s->shift);
        v3 = _mm256_permutevar8x32_ps(v3, s->shift);
    }
    /* (v0, v1) and (v2, v3) pairs, quadruples of lanes l | l + 4, then 128-bit halves */
    __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1),
           t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 o[4] = {_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u2, u3, 0x20),
                   _mm256_permute2f128_ps(u0, u1, 0x31), _mm256_permute2f128_ps(u2, u3, 0x31)};
    for (int q = 0; q < 4; q++) {
        if (s->whole)
            _mm256_storeu_ps(p + 8 * q, o[q]);
        else if (q < s->stores)
            _mm256_maskstore_ps(p + 8 * q, s->mask[q], o[q]);
    }
}

#define LANES         8
#define TARGET        __attribute__((target("avx2,fma")))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VSET1(s)      _mm256_set1_ps(s)
#define TILE          2
#define SUFFIX        avx2_2
#define SEG(name)     seg2_##name##_avx2
#include "distill/winograd_fused_body.inc"
#undef TILE
#undef SUFFIX
#undef SEG
#define TILE      4
#define SUFFIX    avx2_4
#define SEG(name) seg4_##name##_avx2
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
    bool four = f->tile == 4;
    if (f->isa == DK_SIMD_AVX512 && four)
        rows_avx512_4(f, u, td, bias, i, j0, nrows, y, vectors);
    else if (f->isa == DK_SIMD_AVX512)
        rows_avx512_2(f, u, td, bias, i, j0, nrows, y, vectors);
    else if (f->isa == DK_SIMD_AVX2 && four)
        rows_avx2_4(f, u, td, bias, i, j0, nrows, y, vectors);
    else if (f->isa == DK_SIMD_AVX2)
        rows_avx2_2(f, u, td, bias, i, j0, nrows, y, vectors);
#else
    (void)u;
    (void)bias;
    (void)y;
#endif
}
