/* winograd_fused.h: the fused path of Winograd F(2x2x2, 3x3x3) for thin convolutions
 * (few channels), where the blocked path of winograd.c spends most of its time moving
 * transformed inputs and products through L2.
 *
 * The blocked path writes a block's 64 x cin x tiles transformed inputs, then runs 64
 * GEMMs into 64 x cout x tiles products, then reads them back: 8 floats per input
 * value and 8 per output value go to L2 and return, whatever the channel count. With
 * 8 or 16 channels the GEMMs are short (K = cin) and that traffic costs more than the
 * multiplications. The fused path keeps them in registers and L1: one chunk of
 * tiles (one vector, a tile per lane) at a time, per transform plane ad of the 4
 * along d:
 *   transform the chunk's inputs along h and w (16 points x cin vectors, from rows
 *   transformed along d once per block of tile rows),
 *   multiply by the weights (16 x cout vectors, fused multiply-add, register-blocked),
 *   transform the products along w and h and add them into the chunk's 8 outputs
 *   per output channel (A^T along d is a running sum over ad),
 * then the outputs, plus bias, are interleaved into the output rows.
 * Unless whole chunks fill a tile row, a chunk's lanes run on across the block's
 * tile rows (laid out one after another, tiles[2] + 1 slots each), so a narrow
 * layer fills its vectors: 20 tiles a row used 20 of 32 lanes in chunks that
 * stayed within a row.
 *
 * Numerics: the inputs are transformed as on the blocked path (d, h, w, the same
 * operations in the same order); a product is the fused multiply-add chain over the
 * input channels in order; the outputs are transformed along w, h, then d. Every
 * lane (tile) does the same operations, so the AVX-512 and AVX2 variants give the
 * same bits; the result differs from the blocked path's by rounding only
 * (tests/test_winograd.c bounds both against a float64 direct convolution).
 * Machines with neither AVX-512F nor AVX2 with FMA use the blocked path.
 *
 * Ownership: nothing here allocates; scratch comes from the caller. */
#ifndef DK_WINOGRAD_FUSED_H
#define DK_WINOGRAD_FUSED_H

#include <stdbool.h>
#include <stddef.h>

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
    int tiles[3]; /* (dims + 1) / 2 */
    int rows;     /* tile rows (along h) per block */
    int slots;    /* P: tile slots per tile row, tiles[2] + 1 or more */
    bool per_row; /* chunks stay within tile rows (whole chunks fill a row) */
    /* Where a block's d-transformed rows are, in floats (winograd_fused.c): */
    size_t odd;        /* from a row's even half to its odd half */
    size_t hp;         /* from an even h row to the odd one after it */
    size_t seg;        /* from tile row rt's rows to tile row rt + 1's */
    size_t plane;      /* from transform plane ad to ad + 1 (4 per input channel) */
    size_t per_thread; /* scratch floats per thread */
    dk_simd isa;
} dk_wino_fused;

/* Plans a fused forward of cin -> cout channels over dims on `isa`. */
void dk_wino_fused_plan(dk_wino_fused *f, int cin, int cout, const int dims[3], dk_simd isa);

/* Where the transformed weight of point xi, output channel co, input channel ci
 * goes in the fused products' layout (64 * cout * cin floats): per point, full
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
