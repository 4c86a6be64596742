/* winograd_fused.h: the fused path of Winograd for thin convolutions (few channels),
 * where the blocked path of winograd.c spends most of its time moving transformed
 * inputs and products through L2.
 *
 * The blocked path writes a block's 64 x cin x tiles transformed inputs, then runs 64
 * GEMMs into 64 x cout x tiles products, then reads them back: 8 floats per input
 * value and 8 per output value go to L2 and return, whatever the channel count. With
 * 8 or 16 channels the GEMMs are short (K = cin) and that traffic costs more than the
 * multiplications. The fused path keeps them in registers and L1: one chunk of
 * tiles (one vector, a tile per lane) at a time, per transform plane ad of the 4
 * along d:
 *   transform the chunk's inputs along h and w (from rows transformed along d once
 *   per block of tile rows),
 *   multiply by the weights (fused multiply-add, register-blocked),
 *   transform the products along w and h and add them into the chunk's outputs
 *   (A^T along d is a running sum over ad),
 * then the outputs, plus bias, are interleaved into the output rows.
 * Unless whole chunks fill a tile row, a chunk's lanes run on across the block's
 * tile rows (laid out one after another, tiles[2] + 1 slots each), so a narrow
 * layer fills its vectors: 20 tiles a row used 20 of 32 lanes in chunks that
 * stayed within a row.
 *
 * Two tile sizes in h and w (along d it is always F(2, 3)):
 *   tile 2, F(2 x 2 x 2, 3 x 3 x 3): winograd.h's transforms, 64 points, 8 products
 *     per output and channel pair;
 *   tile 4, F(2 x 4 x 4, 3 x 3 x 3): F(4, 3) along h and w (interpolation points
 *     0, 1, -1, 2, -2), 4 x 6 x 6 = 144 points, 4.5 products per output:
 *       input  p (6 values)  -> B^T p : 4 p0 - 5 p2 + p4, (p3 + p4) - 4 (p1 + p2),
 *                                      (p4 - p3) + 4 (p1 - p2), (p4 - p2) + 2 (p3 - p1),
 *                                      (p4 - p2) - 2 (p3 - p1), 4 p1 - 5 p3 + p5
 *       kernel g (3 values)  -> G g   : g0 / 4, -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6,
 *                                      (g0 + 2 g1 + 4 g2) / 24, (g0 - 2 g1 + 4 g2) / 24, g2
 *       product m (6 values) -> A^T m : (m0 + (m1 + m2)) + (m3 + m4), (m1 - m2) + 2 (m3 - m4),
 *                                      (m1 + m2) + 4 (m3 + m4), ((m1 - m2) + 8 (m3 - m4)) + m5
 *     fewer products and fewer transformed values per output, but larger transforms,
 *     36 x cin vectors of transformed inputs per chunk (past L1 from cin = 32 on) and a
 *     four-way interleave of the outputs. winograd.c picks it where it measured faster.
 *
 * Numerics: the weights are transformed in double and rounded once; inputs along d,
 * h, w; a product is the fused multiply-add chain over the input channels in order;
 * outputs along w, h, d; each with the operations above in that order. Every lane
 * (tile) does the same operations, so the AVX-512 and AVX2 variants give the same
 * bits. Tile 2 differs from the blocked path's result by rounding only; tile 4's
 * constants round more (and 1/6 is not a float: no result of it is exact on
 * integers). tests/test_winograd.c bounds each against a float64 direct convolution.
 * Machines with neither AVX-512F nor AVX2 with FMA use the blocked path.
 *
 * Ownership: nothing here allocates; scratch comes from the caller. */
#ifndef DK_WINOGRAD_FUSED_H
#define DK_WINOGRAD_FUSED_H

#include <stdbool.h>
#include <stddef.h>

/* Transform points per tile: 4 along d, tile + 2 along h and along w. */
#define DK_WINO_FUSED_POINTS(tile) (4 * ((tile) + 2) * ((tile) + 2))

/* The vector instruction set a fused forward runs on. */
typedef enum dk_simd {
    DK_SIMD_NONE = 0,   /* no fused path on this CPU */
    DK_SIMD_AVX2 = 1,   /* 8 lanes, AVX2 with FMA */
    DK_SIMD_AVX512 = 2, /* 16 lanes, AVX-512F */
} dk_simd;

/* The widest of the two this CPU runs, or DK_SIMD_NONE. */
dk_simd dk_simd_best(void);

/* Whether this CPU runs `isa` (DK_SIMD_NONE: false). */
bool dk_simd_supported(dk_simd isa);

/* The plan of a fused forward: shapes, tile rows per block, scratch per thread. */
typedef struct dk_wino_fused {
    int cin, cout;
    int dims[3];
    int tile;     /* outputs per tile along h and w: 2 or 4 (2 along d) */
    int tiles[3]; /* (dims[0] + 1) / 2, then (dims + tile - 1) / tile */
    int rows;     /* tile rows (along h) per block */
    int slots;    /* P: tile slots per tile row, tiles[2] + 1 or more */
    bool per_row; /* chunks stay within tile rows (whole chunks fill a row) */
    /* Where a block's d-transformed rows are, in floats (winograd_fused.c): */
    size_t phase;      /* from a row's phase q (w = tile k + q - 1) to q + 1 */
    size_t hp;         /* from h row q of a tile row (q < tile) to q + 1 */
    size_t seg;        /* from tile row rt's rows to tile row rt + 1's */
    size_t plane;      /* from transform plane ad to ad + 1 (4 per input channel) */
    size_t per_thread; /* scratch floats per thread */
    dk_simd isa;
} dk_wino_fused;

/* Plans a fused forward of cin -> cout channels over dims on `isa` with tiles of
 * `tile` (2 or 4) outputs along h and w. */
void dk_wino_fused_plan(dk_wino_fused *f, int cin, int cout, const int dims[3], dk_simd isa,
                        int tile);

/* Where the transformed weight of point xi = (ad * (tile + 2) + ah) * (tile + 2) + aw,
 * output channel co, input channel ci goes in the fused products' layout
 * (DK_WINO_FUSED_POINTS(tile) * cout * cin floats): per point, full
 * groups of 8 output channels as [cin][8], then the remaining output channels as
 * [cin] each. winograd.c writes the weights there directly for the fused path. */
static inline size_t dk_wino_fused_weight_at(int cin, int cout, int xi, int co, int ci)
{
    size_t point = (size_t)xi * cout * cin, group = (size_t)(co / 8) * 8;
    if ((int)group + 8 <= cout) return point + group * cin + (size_t)ci * 8 + (size_t)(co % 8);
    return point + (size_t)co * cin + (size_t)ci;
}

/* Zeros a thread's scratch (f->per_thread floats): once per forward, before its
 * first block. */
void dk_wino_fused_clear(const dk_wino_fused *f, float *scratch);

/* One block: tile plane i, tile rows j0 .. j0 + nrows (nrows <= f->rows) of one
 * sample x (cin, dims) into y (cout, dims), overwriting those outputs, plus bias
 * (may be NULL). u is the transformed weights at dk_wino_fused_weight_at;
 * scratch holds f->per_thread floats, 64-byte aligned, cleared by
 * dk_wino_fused_clear for this plan and since then used only by blocks of it.
 * f->isa must be supported. */
void dk_wino_fused_block(const dk_wino_fused *f, const float *u, const float *x, const float *bias,
                         int i, int j0, int nrows, float *y, float *scratch);

#endif
