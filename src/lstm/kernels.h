/* What the learned optimizer's inference step (step.c) and its backpropagation through
 * an unroll (unroll.c) share: the tile layout, the vector type and its helpers, and the
 * one forward cell both of them run.
 *
 * Coordinatewise: every coordinate of theta runs the same small LSTM stack with its
 * own state, so coordinates are a batch. Layout is feature-major: a state is (H, N)
 * per layer with coordinates contiguous, and kernels work on tiles of TILE
 * coordinates, copied into small contiguous per-thread buffers (rows of TILE floats,
 * padded with zeros past N), so that coordinates fill SIMD lanes, every kernel runs on
 * whole vectors, and a tile's working set stays in cache while the weights (about
 * 21 kB for 2 x 20) stay in L1.
 *
 * Cell (PyTorch nn.LSTMCell, gates i, f, g, o):
 *   a = W_ih x + b_ih + W_hh h_prev + b_hh       (4H)
 *   i = s(a_i), f = s(a_f), g = tanh(a_g), o = s(a_o)
 *   c = f c_prev + i g,   h = o tanh(c)
 * Output: update = scale (w_out . h_top + b_out); theta += update.
 *
 * Kernels are register-blocked over VL-lane vectors of coordinates (GCC vector
 * extensions, which compile to AVX-512, AVX2 or SSE as the target allows). The helpers
 * here are static inline so that each file's hot loops compile as if they were its own.
 * l2l_cell_forward is the exception: the unroll's forward pass (through l2l_lstm_forward)
 * and the backward's recompute call the same out-of-line cell on the same padded tile
 * inputs, so they agree bit for bit; it is noipa so that no call site is specialised. */
#ifndef L2L_KERNELS_H
#define L2L_KERNELS_H

#include <string.h>

#include "lstm/fastmath.h"
#include "lstm/lstm.h"
#include "util/util.h"

/* Coordinates per tile (a multiple of VL), chosen by measurement (docs/PERFORMANCE.md). */
#ifndef L2L_TILE
#define L2L_TILE 64
#endif
#define TILE L2L_TILE
#define VL 16            /* lanes of one vector */
#define NV (TILE / VL)   /* vectors per tile row */
_Static_assert(TILE % VL == 0, "TILE must be a multiple of the vector length");

/* The vector helpers are static: GCC's note that a 64-byte vector return changes the
 * ABI without AVX-512 concerns only exported functions. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* 16 floats; alignment 4 so that loads and stores through it are valid anywhere
 * (the buffers are 64-byte aligned, so they are aligned accesses in practice). */
typedef float v16f __attribute__((vector_size(VL * sizeof(float)), aligned(4)));

static inline v16f vload(const float *p) { return *(const v16f *)p; }
static inline void vstore(float *p, v16f v) { *(v16f *)p = v; }
static inline v16f vsplat(float s) { return (v16f){0} + s; }
static inline float vsum(v16f v)
{
    float s[VL];
    memcpy(s, &v, sizeof s);
    for (int w = VL / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++) s[i] += s[i + w];
    return s[0];
}

/* Copies rows (rows, nt) of a feature-major (rows, ld) array into (rows, TILE), zero
 * past nt, and back. */
static inline void tile_gather(float *dst, const float *src, size_t ld, int rows, int nt)
{
    for (int r = 0; r < rows; r++) {
        memcpy(dst + (size_t)r * TILE, src + (size_t)r * ld, (size_t)nt * sizeof(float));
        if (nt < TILE) memset(dst + (size_t)r * TILE + nt, 0, (size_t)(TILE - nt) * sizeof(float));
    }
}

static inline void tile_scatter(float *dst, size_t ld, const float *src, int rows, int nt)
{
    for (int r = 0; r < rows; r++) memcpy(dst + (size_t)r * ld, src + (size_t)r * TILE, (size_t)nt * sizeof(float));
}

/* One layer l on one tile (step.c); every buffer is (rows, TILE). x (in), h_prev,
 * c_prev (H) in; h, c (H) out (h must not alias h_prev; c may alias c_prev); gates (4H),
 * when not NULL, receives the activated gates (the backward's cache). */
__attribute__((noipa)) void l2l_cell_forward(int H, int in, const l2l_lstm_view *w, int l,
                                             const float *x, const float *h_prev,
                                             const float *c_prev, float *gates, float *h, float *c);

/* One optimizer step over all N coordinates from the preprocessed inputs x (D, N):
 * s's h and c are updated in place and update (N) receives the step (step.c). */
void l2l_lstm_forward(const l2l_lstm *net, l2l_lstm_state *s, const float *x, float *update);

#endif
