/* The conv-net task's layer kernels (src/tasks/conv_kernels.c), internal to the library;
 * the task (src/tasks/conv.c) composes them and tests/test_conv_grad.c holds each to its
 * double-precision reference.
 *
 * Shape letters: B = images, C = input channels, F = output channels (feature maps),
 * k = kernel side (odd), p = (k-1)/2, h x w = image size (SAME convolution keeps it),
 * ph = ceil(h/2), pw = ceil(w/2) the pooled size, Cp and Fp = C and F rounded up to a
 * multiple of 16 (a vector of 16 floats, V below).
 *
 * Layouts. The convolutions are direct (no im2col), vectorized over 16 output channels:
 * an output pixel's 16 channels are one vector, and each input value is broadcast into
 * it. So the two sides of a convolution are stored differently:
 *   planes  [B][C][h + 2q][w + 2q]: an input, each channel a plane with a zero border of q
 *           (q = p for a convolution's input, so that no tap needs a bounds test);
 *   pixels  [B][h][w][Fp]: an output or a gradient, channel fastest, channels F..Fp-1 zero.
 * Block inputs are planes; z, the pooled maxima and every gradient are pixels. The
 * gradient of a block's input comes out as pixels (Cp channels), which is the layout the
 * block before reads its output gradient in.
 * Kernels in the layout the vectors want: wpack [k][k][C][Fp] (the forward's, and the
 * weight gradient's), wtpack [k][k][F][Cp] (the flipped, transposed kernel of the input
 * gradient); conv_pack makes both from PyTorch's (F, C, k, k).
 *
 * Every backward accumulates (+=) the true gradient dL/dx into its outputs, so callers
 * zero them once; conv_bn_pool_backward's dz is the one exception (see there).
 */
#ifndef L2L_TASKS_CONV_H
#define L2L_TASKS_CONV_H

#include <stddef.h>
#include <stdint.h>

/* Batch norm's epsilon: the authors' code's (Sonnet's BatchNorm default). */
#define CONV_BN_EPS 1e-3
/* Floats per vector: the channels one kernel call computes. */
#define CONV_V 16
/* The most channels a block may have (the task checks its config against it). */
#define CONV_MAX_CHANNELS 1024

/* One convolution block: B images of C x h x w -> F x h x w (SAME) -> pooled F x ph x pw. */
typedef struct {
    int B, C, F, k, h, w;
    int p, hp, wp; /* padding (k-1)/2 and the padded input size h + 2p, w + 2p */
    int ph, pw;    /* pooled size */
    int Cp, Fp;    /* C and F rounded up to a multiple of CONV_V */
} conv_geom;

void conv_geom_init(conv_geom *g, int B, int C, int F, int k, int h, int w);
/* Floats of wpack (k k C Fp), of wtpack (k k F Cp), and of conv_backward's scratch for
 * one thread. */
size_t conv_wpack_floats(const conv_geom *g);
size_t conv_wtpack_floats(const conv_geom *g);
size_t conv_scratch_floats(const conv_geom *g);

/* wpack[ky][kx][c][f] = kern[f][c][ky][kx] and, if wtpack is not NULL,
 * wtpack[ky][kx][f][c] = kern[f][c][k-1-ky][k-1-kx]; zero in the padding channels. */
void conv_pack(const conv_geom *g, const float *kern, float *wpack, float *wtpack);
/* dkern[f][c][ky][kx] += dwpack[ky][kx][c][f]: a weight gradient back in PyTorch's layout. */
void conv_unpack_grad(const conv_geom *g, const float *dwpack, float *dkern);

/* z (pixels, Fp) = sum over c, ky, kx of kern[f, c, ky, kx] x[c, n, y + ky - p, x + kx - p]
 * (x zero outside the image): a cross-correlation, PyTorch's conv2d; no bias (the task's
 * biases feed batch norm, which removes them; conv.c). x: planes with border p.
 * Overwrites z. */
void conv_forward(const conv_geom *g, const float *x, const float *wpack, float *z);

/* Given dz (pixels, Fp): dwpack += dL/dw in wpack's layout and, if dx is not NULL,
 * dx (pixels, Cp) += dL/dx. scratch: n_scratch x conv_scratch_floats floats, one slice per
 * thread; at most n_scratch threads (and at most OpenMP's current maximum) run. */
void conv_backward(const conv_geom *g, const float *x, const float *wtpack, const float *dz,
                   float *dwpack, float *dx, float *scratch, int n_scratch);

/*
 * Batch norm with batch statistics and a shift, ReLU and 2x2 max-pooling, fused:
 *   out[n, f, i, j] = max over the window (rows 2i..2i+1, columns 2j..2j+1, those inside
 *                     the image) of relu((z - mean_f) inv_sigma_f + beta_f)
 * with mean_f and the biased var_f over channel f's B h w values and
 * inv_sigma_f = 1/sqrt(var_f + eps). The normalisation is increasing (inv_sigma > 0) and
 * ReLU is monotone, so this equals relu(bn(the window's maximum of z)): the maximum of z is
 * found first (zmax, pixels, Fp) with its position (arg, pixels, Fp ints: bits 0-1 0..3
 * row-major in the window, the first of equal values; bit 2: the ReLU let it through,
 * out > 0), and only the pooled values are normalised. mean and inv_sigma: Fp floats. out: planes of F channels
 * with a zero border of out_pad (the next block's p, or 0 for the last block, whose output
 * is then the flattened (B, F ph pw) matrix).
 */
void conv_bn_pool_forward(const conv_geom *g, const float *z, const float *beta, float *zmax,
                          int32_t *arg, float *mean, float *inv_sigma, float *out, int out_pad);
/* Given dout (pooled pixels, Fp): dz (pixels, Fp) = dL/dz, dbeta (F) += dL/dbeta. The one
 * kernel that writes instead of adding: dz is an intermediate it alone produces. */
void conv_bn_pool_backward(const conv_geom *g, const float *z, const float *zmax,
                           const int32_t *arg, const float *mean, const float *inv_sigma,
                           const float *dout, float *dz, float *dbeta);

/* Batch norm with batch statistics and a shift, then ReLU, on z (B, U) row-major, per
 * unit (column) over the B rows: a (B, U) = relu((z - mean) inv_sigma + beta). */
void bn_relu_forward(int B, int U, const float *z, const float *beta, float *mean,
                     float *inv_sigma, float *a);
/* Given da (B, U): dz (B, U) += dL/dz, dbeta (U) += dL/dbeta. */
void bn_relu_backward(int B, int U, const float *z, const float *mean, const float *inv_sigma,
                      const float *a, const float *da, float *dz, float *dbeta);

#endif
