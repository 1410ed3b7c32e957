/*
 * The conv-net task's layer kernels (conv.h): direct convolution vectorized over 16 output
 * channels, batch norm with a shift fused with ReLU and 2x2 max-pooling, and batch norm +
 * ReLU for the fully connected layer. Each backward is derived next to it;
 * tests/test_conv_grad.c checks every kernel against a slow double-precision reference
 * that is itself checked by finite differences.
 *
 * Why direct and not im2col + sgemm. With 16 output channels every product of the
 * im2col formulation is 16 rows by (pixels) columns: the im2col matrix is written once and
 * then packed again by the BLAS, and each of its values is used for only 16
 * multiply-adds. Measured on the paper's network (docs/PERFORMANCE.md), those two copies
 * cost as much as the multiplications. Here each input value is broadcast from the padded
 * image straight into the multiply-adds of 16 channels at once, and a tile of up to 16
 * output pixels keeps its 16 accumulators (one vector of 16 channels each) in registers
 * over all C k² taps: one vector load of the kernel per tap feeds up to 16 fused
 * multiply-adds, and nothing is copied.
 *
 * The vectors are GCC's generic vectors of 16 floats: one AVX-512 register where the
 * machine has them (-march=native), two AVX2 or four SSE registers elsewhere, with the same
 * code. Every sum is taken in one fixed order, so a build gives the same bytes on every
 * run (builds for other instruction sets may round differently: fused multiply-adds).
 *
 * Threads. The convolutions share out whole images (the forward, the input gradient) or
 * whole (input channel, 16 output channels) slices of the weight gradient, each summed over
 * the images in order by one thread: every value is computed the same way whichever thread
 * computes it, so the bytes do not depend on the number of threads.
 */
#include <math.h>
#include <string.h>

#include "tasks/conv.h"
#include "util/util.h"

typedef float v16 __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef double v16d __attribute__((vector_size(128)));
/* For loads and stores: any float (int) address, alignment 4, allowed to alias floats (ints). */
typedef float v16m __attribute__((vector_size(64), aligned(4), may_alias));
typedef int v16im __attribute__((vector_size(64), aligned(4), may_alias));

/* Helpers as macros: a function returning a vector of 64 bytes would change the calling
 * convention between builds with and without AVX-512 (GCC warns, -Wpsabi). */
#define vload(p) ((v16) * (const v16m *)(p))
#define vstore(p, v) (*(v16m *)(p) = (v))
#define vloadi(p) ((v16i) * (const v16im *)(p))
#define vstorei(p, v) (*(v16im *)(p) = (v))
/* mask ? a : b, lane by lane (mask lanes all ones or all zeros, as comparisons give) */
#define vselect(mask, a, b) ((v16)((((v16i)(a)) & (mask)) | (((v16i)(b)) & ~(mask))))

static size_t round_up(int n) { return ((size_t)n + CONV_V - 1) / CONV_V * CONV_V; }

void conv_geom_init(conv_geom *g, int B, int C, int F, int k, int h, int w)
{
    g->B = B, g->C = C, g->F = F, g->k = k, g->h = h, g->w = w;
    g->p = (k - 1) / 2;
    g->hp = h + 2 * g->p, g->wp = w + 2 * g->p;
    g->ph = (h + 1) / 2, g->pw = (w + 1) / 2;
    g->Cp = (int)round_up(C), g->Fp = (int)round_up(F);
}

size_t conv_wpack_floats(const conv_geom *g) { return (size_t)g->k * g->k * g->C * g->Fp; }
size_t conv_wtpack_floats(const conv_geom *g) { return (size_t)g->k * g->k * g->F * g->Cp; }
size_t conv_scratch_floats(const conv_geom *g) { return (size_t)g->F * g->hp * g->wp; }

void conv_pack(const conv_geom *g, const float *kern, float *wpack, float *wtpack)
{
    const int k = g->k, C = g->C, F = g->F;
    memset(wpack, 0, conv_wpack_floats(g) * sizeof *wpack);
    if (wtpack) memset(wtpack, 0, conv_wtpack_floats(g) * sizeof *wtpack);
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float v = kern[(((size_t)f * C + c) * k + ky) * k + kx];
                    wpack[(((size_t)ky * k + kx) * C + c) * g->Fp + f] = v;
                    if (wtpack)
                        wtpack[(((size_t)(k - 1 - ky) * k + (k - 1 - kx)) * F + f) * g->Cp + c] = v;
                }
}

void conv_unpack_grad(const conv_geom *g, const float *dwpack, float *dkern)
{
    const int k = g->k, C = g->C;
    for (int f = 0; f < g->F; f++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    dkern[(((size_t)f * C + c) * k + ky) * k + kx] +=
                        dwpack[(((size_t)ky * k + kx) * C + c) * g->Fp + f];
}

/*
 * One tile: RB output pixels in a row, 16 output channels. in: the padded plane of input
 * channel 0 at the tile's first pixel (channel c at in + c cs), so that output pixel r's
 * tap (ky, kx) reads in[ky wp + kx + r]; wv: the 16 channels' kernels, tap after tap
 * ([ky][kx][c], Op floats apart); out: the tile's first pixel (pixel r at out + r Op).
 * add = 0 stores the sums, 1 adds them to what out holds. One function per RB, so that the
 * RB accumulators live in registers.
 */
#define CONV_TILE(RB)                                                                         \
    static void tile##RB(const float *in, size_t cs, int wp, int C, int k, const float *wv, \
                         size_t Op, float *out, int add)                                     \
    {                                                                                         \
        v16 acc[RB];                                                                          \
        for (int r = 0; r < RB; r++) acc[r] = add ? vload(out + r * Op) : (v16){0};           \
        for (int ky = 0; ky < k; ky++)                                                        \
            for (int kx = 0; kx < k; kx++) {                                                  \
                const float *wr = wv + (size_t)(ky * k + kx) * C * Op;                        \
                const float *ir = in + (size_t)ky * wp + kx;                                  \
                for (int c = 0; c < C; c++, wr += Op, ir += cs) {                             \
                    const v16 wvec = vload(wr);                                               \
                    for (int r = 0; r < RB; r++) acc[r] += wvec * ir[r];                      \
                }                                                                             \
            }                                                                                 \
        for (int r = 0; r < RB; r++) vstore(out + r * Op, acc[r]);                            \
    }
CONV_TILE(1)
CONV_TILE(2)
CONV_TILE(3)
CONV_TILE(4)
CONV_TILE(5)
CONV_TILE(6)
CONV_TILE(7)
CONV_TILE(8)
CONV_TILE(9)
CONV_TILE(10)
CONV_TILE(11)
CONV_TILE(12)
CONV_TILE(13)
CONV_TILE(14)
CONV_TILE(15)
CONV_TILE(16)
#undef CONV_TILE

typedef void (*tile_fn)(const float *, size_t, int, int, int, const float *, size_t, float *, int);
static const tile_fn tiles[17] = {NULL,   tile1,  tile2,  tile3,  tile4,  tile5,
                                  tile6,  tile7,  tile8,  tile9,  tile10, tile11,
                                  tile12, tile13, tile14, tile15, tile16};

/*
 * One output image: out (pixels, Op) = (or +=) the SAME convolution of the Cin padded
 * planes at in (border (k-1)/2, hp x wp each) with the packed kernel wv ([k][k][Cin][Op]).
 * A row of w pixels is cut into ceil(w/16) tiles of nearly equal width (28 = 14 + 14).
 */
static void conv_image(const float *in, int Cin, int h, int w, int hp, int wp, int k,
                       const float *wv, int Op, float *out, int add)
{
    const size_t plane = (size_t)hp * wp;
    const int n_tiles = (w + CONV_V - 1) / CONV_V, base = w / n_tiles, wider = w % n_tiles;
    for (int y = 0; y < h; y++)
        for (int t = 0, x0 = 0; t < n_tiles; t++) {
            const int rb = base + (t < wider);
            for (int ob = 0; ob < Op; ob += CONV_V)
                tiles[rb](in + (size_t)y * wp + x0, plane, wp, Cin, k, wv + ob, (size_t)Op,
                          out + ((size_t)y * w + x0) * Op + ob, add);
            x0 += rb;
        }
}

void conv_forward(const conv_geom *g, const float *x, const float *wpack, float *z)
{
    const size_t image_in = (size_t)g->C * g->hp * g->wp, image_out = (size_t)g->h * g->w * g->Fp;
    const int threads = max_threads();
#pragma omp parallel for schedule(static) num_threads(threads) if (g->B > 1)
    for (int n = 0; n < g->B; n++)
        conv_image(x + n * image_in, g->C, g->h, g->w, g->hp, g->wp, g->k, wpack, g->Fp,
                   z + n * image_out, 0);
}

/*
 * The weight gradient of one image and one input channel, for a kernel side K known at
 * compile time: dw[tap][16 channels] += sum over the pixels (y, x) of
 * plane[y + ky][x + kx] dz[y][x][16 channels], tap = (ky, kx), taps ts floats apart. The
 * K² accumulators stay in registers over the image (25 for K = 5): each pixel's dz vector
 * is loaded once and meets K² broadcast input values.
 */
#define CONV_DW(K)                                                                            \
    static void dw##K(const float *plane, int wp, int h, int w, const float *dz, size_t Fp,  \
                      float *dw, size_t ts)                                                   \
    {                                                                                         \
        v16 acc[K * K];                                                                       \
        for (int t = 0; t < K * K; t++) acc[t] = vload(dw + t * ts);                          \
        for (int y = 0; y < h; y++) {                                                         \
            const float *prow = plane + (size_t)y * wp, *drow = dz + (size_t)y * w * Fp;      \
            for (int x = 0; x < w; x++) {                                                     \
                const v16 d = vload(drow + x * Fp);                                           \
                const float *q = prow + x;                                                    \
                for (int ky = 0; ky < K; ky++)                                                \
                    for (int kx = 0; kx < K; kx++) acc[ky * K + kx] += d * q[ky * wp + kx];   \
            }                                                                                 \
        }                                                                                     \
        for (int t = 0; t < K * K; t++) vstore(dw + t * ts, acc[t]);                          \
    }
CONV_DW(1)
CONV_DW(3)
CONV_DW(5)
#undef CONV_DW

/* The same for any k, one tap at a time (slower: one chain of additions per tap). */
static void dw_any(int k, const float *plane, int wp, int h, int w, const float *dz, size_t Fp,
                   float *dw, size_t ts)
{
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
            v16 acc = vload(dw + (size_t)(ky * k + kx) * ts);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    acc += vload(dz + ((size_t)y * w + x) * Fp) * plane[(size_t)(y + ky) * wp + x + kx];
            vstore(dw + (size_t)(ky * k + kx) * ts, acc);
        }
}

/*
 * Backward of z = conv(x, w) (the forward above), given dz. With p = (k-1)/2 and x zero
 * outside the image,
 *   z[f,n,y,x] = sum_{c,ky,kx} w[f,c,ky,kx] x[c,n,y+ky-p,x+kx-p], so
 *   dL/dw[f,c,ky,kx] = sum_{n,y,x} dz[f,n,y,x] x[c,n,y+ky-p,x+kx-p]
 * (a sum over every pixel of every image: dw##K, the padded plane supplying the zeros), and
 *   dL/dx[c,n,Y,X] = sum_{f,ky,kx} w[f,c,ky,kx] dz[f,n,Y-ky+p,X-kx+p]   (dz = 0 outside),
 * which with ky' = k-1-ky (so that Y - ky + p = Y + ky' - p, as k - 1 = 2p) is the same SAME
 * convolution as the forward, of dz (F input channels) with the flipped, transposed kernel
 * wt[c,f,ky',kx'] = w[f,c,k-1-ky',k-1-kx'] (C output channels): wtpack, computed by
 * conv_image on dz copied into zero-bordered planes, one image at a time (scratch).
 */
void conv_backward(const conv_geom *g, const float *x, const float *wtpack, const float *dz,
                   float *dwpack, float *dx, float *scratch, int n_scratch)
{
    const int h = g->h, w = g->w, k = g->k, p = g->p, wp = g->wp, blocks = g->Fp / CONV_V;
    const size_t plane = (size_t)g->hp * wp, image_in = (size_t)g->C * plane;
    const size_t image_dz = (size_t)h * w * g->Fp, ts = (size_t)g->C * g->Fp;
    const size_t per_thread = conv_scratch_floats(g);
    const int slices = g->C * blocks, max = max_threads();
    const int threads = n_scratch < max ? n_scratch : max;
#pragma omp parallel num_threads(threads) if (g->B > 1)
    {
        /* dW: slice (c, fb) summed over the images in order, by one thread */
#pragma omp for schedule(static) nowait
        for (int s = 0; s < slices; s++) {
            const int c = s / blocks, fb = s % blocks * CONV_V;
            float *dw = dwpack + (size_t)c * g->Fp + fb;
            for (int n = 0; n < g->B; n++) {
                const float *pl = x + n * image_in + (size_t)c * plane, *dzn = dz + n * image_dz + fb;
                switch (k) {
                case 1: dw1(pl, wp, h, w, dzn, (size_t)g->Fp, dw, ts); break;
                case 3: dw3(pl, wp, h, w, dzn, (size_t)g->Fp, dw, ts); break;
                case 5: dw5(pl, wp, h, w, dzn, (size_t)g->Fp, dw, ts); break;
                default: dw_any(k, pl, wp, h, w, dzn, (size_t)g->Fp, dw, ts); break;
                }
            }
        }
        if (dx) { /* dx: image by image, through this thread's zero-bordered planes */
            float *sc = scratch + (size_t)thread_id() * per_thread;
            memset(sc, 0, per_thread * sizeof *sc); /* the borders */
#pragma omp for schedule(static)
            for (int n = 0; n < g->B; n++) {
                const float *dzn = dz + n * image_dz;
                for (int f = 0; f < g->F; f++)
                    for (int y = 0; y < h; y++)
                        for (int xx = 0; xx < w; xx++)
                            sc[f * plane + (size_t)(y + p) * wp + xx + p] =
                                dzn[((size_t)y * w + xx) * g->Fp + f];
                conv_image(sc, g->F, h, w, g->hp, wp, k, wtpack, g->Cp,
                           dx + (size_t)n * h * w * g->Cp, 1);
            }
        }
    }
}

/* Per channel of z (pixels, Fp; npix pixels in rows of w): the mean and
 * 1/sqrt(var + eps) (biased variance), accumulated around a pivot (the first pixel) so
 * that a large mean does not cancel the variance away: in float along a row, in double
 * across rows. */
static void channel_moments(const float *z, size_t npix, int w, int Fp, float *mean,
                            float *inv_sigma)
{
    for (int ob = 0; ob < Fp; ob += CONV_V) {
        const v16 pivot = vload(z + ob);
        v16d s = {0}, s2 = {0};
        for (size_t r = 0; r < npix; r += (size_t)w) {
            v16 a = {0}, a2 = {0};
            for (size_t i = r; i < r + (size_t)w; i++) {
                const v16 d = vload(z + i * Fp + ob) - pivot;
                a += d;
                a2 += d * d;
            }
            s += __builtin_convertvector(a, v16d);
            s2 += __builtin_convertvector(a2, v16d);
        }
        for (int l = 0; l < CONV_V; l++) {
            const double mu = s[l] / (double)npix;
            double var = s2[l] / (double)npix - mu * mu;
            if (var < 0.0) var = 0.0;
            mean[ob + l] = (float)(pivot[l] + mu);
            inv_sigma[ob + l] = (float)(1.0 / sqrt(var + CONV_BN_EPS));
        }
    }
}

/* The maximum of one pooling window of 16 channels (p00: its top-left pixel; right,
 * below: whether the window has its second column and row) and its position in *a. */
static inline void window_max(const float *p00, size_t row, size_t Fp, int right, int below,
                              v16 *m_out, v16i *a_out)
{
    const v16i one = (v16i){0} + 1, two = one + one, three = two + one;
    v16 m = vload(p00);
    v16i a = {0}, gt;
    if (right) {
        const v16 v = vload(p00 + Fp);
        gt = v > m, m = vselect(gt, v, m), a = (gt & one) | (a & ~gt);
    }
    if (below) {
        const v16 v = vload(p00 + row);
        gt = v > m, m = vselect(gt, v, m), a = (gt & two) | (a & ~gt);
        if (right) {
            const v16 v3 = vload(p00 + row + Fp);
            gt = v3 > m, m = vselect(gt, v3, m), a = (gt & three) | (a & ~gt);
        }
    }
    *m_out = m, *a_out = a;
}

/* Pooled outputs are collected a row segment at a time (16 channels each) and written to
 * the channel planes from there, one plane row after another. */
#define POOL_CHUNK 64

void conv_bn_pool_forward(const conv_geom *g, const float *z, const float *beta, float *zmax,
                          int32_t *arg, float *mean, float *inv_sigma, float *out, int out_pad)
{
    const int h = g->h, w = g->w, ph = g->ph, pw = g->pw, Fp = g->Fp, F = g->F;
    const size_t oh = (size_t)ph + 2 * out_pad, ow = (size_t)pw + 2 * out_pad, row = (size_t)w * Fp;
    const v16i four = (v16i){0} + 4;
    float shift[CONV_MAX_CHANNELS] = {0}; /* beta with zero padding channels */
    memcpy(shift, beta, (size_t)F * sizeof *shift);
    channel_moments(z, (size_t)g->B * h * w, w, Fp, mean, inv_sigma);
    v16 obuf[POOL_CHUNK];
    for (int ob = 0; ob < Fp; ob += CONV_V) {
        const v16 mu = vload(mean + ob), inv = vload(inv_sigma + ob), b = vload(shift + ob);
        const int lanes = F - ob < CONV_V ? F - ob : CONV_V;
        for (int n = 0; n < g->B; n++)
            for (int i = 0; i < ph; i++) {
                const float *r0 = z + ((size_t)n * h + 2 * i) * row + ob;
                const int below = 2 * i + 1 < h;
                for (int j0 = 0; j0 < pw; j0 += POOL_CHUNK) {
                    const int jn = pw - j0 < POOL_CHUNK ? pw - j0 : POOL_CHUNK;
                    const size_t q0 = (((size_t)n * ph + i) * pw + j0) * Fp + ob;
                    for (int j = 0; j < jn; j++) {
                        v16 m;
                        v16i a;
                        window_max(r0 + (size_t)2 * (j0 + j) * Fp, row, (size_t)Fp, 2 * (j0 + j) + 1 < w,
                                   below, &m, &a);
                        const v16 y = (m - mu) * inv + b;
                        const v16i live = y > (v16){0};
                        obuf[j] = vselect(live, y, (v16){0});
                        a |= live & four;
                        vstore(zmax + q0 + (size_t)j * Fp, m);
                        vstorei(arg + q0 + (size_t)j * Fp, a);
                    }
                    for (int l = 0; l < lanes; l++) {
                        float *dst = out + (((size_t)n * F + ob + l) * oh + i + out_pad) * ow + out_pad + j0;
                        for (int j = 0; j < jn; j++) dst[j] = obuf[j][l];
                    }
                }
            }
    }
}

/*
 * Backward of the block above, given dout = dL/dout. With xh = (z - mean) inv_sigma,
 * y = xh + beta, a = relu(y), out = maxpool(a), M = B h w per channel:
 *   ReLU:  dq = dout [out > 0]                          (arg's bit 2, kept by the forward)
 *   pool:  dL/dy = dq at each window's arg position, 0 at the others (the maximum alone
 *          moves the output; of equal values, the first, as the forward chose)
 *   shift: dL/dbeta = sum dL/dy = sum of dq
 *   norm:  dL/dz_m = inv (dy_m - (1/M) sum_q dy_q - xh_m (1/M) sum_q dy_q xh_q),
 * the batch-norm backward: from xh_q = (z_q - mean) inv, d mean/dz_m = 1/M and
 * d inv/dz_m = -(1/2) inv³ d var/dz_m = -inv³ (z_m - mean)/M, so that
 * d xh_q/dz_m = inv (delta_qm - 1/M) - inv xh_q xh_m / M; summed against dy_q.
 * Both sums run over the window maxima only (dy is 0 elsewhere): s1 = sum dq,
 * s2 = sum dq xh(zmax). Then for every z of the channel
 *   dz = -inv s1/M - inv² s2/M (z - mean),  plus inv dq at the arg positions,
 * written window by window (the windows tile the image, so every z is visited once).
 * dz is written, not added to: it is an intermediate that this kernel alone produces
 * (the largest one, 6.4 MB for the paper's first layer), so zeroing it first and adding
 * would only double its memory traffic.
 */
void conv_bn_pool_backward(const conv_geom *g, const float *z, const float *zmax,
                           const int32_t *arg, const float *mean, const float *inv_sigma,
                           const float *dout, float *dz, float *dbeta)
{
    const int h = g->h, w = g->w, ph = g->ph, pw = g->pw, Fp = g->Fp;
    const size_t row = (size_t)w * Fp;
    const double M = (double)g->B * h * w;
    const v16i three = (v16i){0} + 3, four = (v16i){0} + 4;
    for (int ob = 0; ob < Fp; ob += CONV_V) {
        const v16 mu = vload(mean + ob), inv = vload(inv_sigma + ob);
        v16d s1 = {0}, s2 = {0};
        for (int n = 0; n < g->B; n++)
            for (int i = 0; i < ph; i++) {
                v16 a1 = {0}, a2 = {0};
                for (int j = 0; j < pw; j++) {
                    const size_t q = (((size_t)n * ph + i) * pw + j) * Fp + ob;
                    const v16i a = vloadi(arg + q);
                    const v16 dq = vselect((a & four) != (v16i){0}, vload(dout + q), (v16){0});
                    a1 += dq;
                    a2 += dq * ((vload(zmax + q) - mu) * inv);
                }
                s1 += __builtin_convertvector(a1, v16d);
                s2 += __builtin_convertvector(a2, v16d);
            }
        v16 c0, c1;
        for (int l = 0; l < CONV_V; l++) {
            c0[l] = (float)((double)inv[l] * s1[l] / M);
            c1[l] = (float)((double)inv[l] * inv[l] * s2[l] / M);
            if (ob + l < g->F) dbeta[ob + l] += (float)s1[l];
        }
        /* dz = base + (at the arg position) inv dq, base = -c0 - c1 (z - mean) */
#define DZ_AT(offset, position)                                                                   vstore(dz0 + (offset), vselect(pos == (v16i){0} + (position), gq, (v16){0}) - c0 -                                     c1 * (vload(z0 + (offset)) - mu))
        for (int n = 0; n < g->B; n++)
            for (int i = 0; i < ph; i++) {
                const int below = 2 * i + 1 < h;
                for (int j = 0; j < pw; j++) {
                    const size_t q = (((size_t)n * ph + i) * pw + j) * Fp + ob;
                    const size_t m = (((size_t)n * h + 2 * i) * w + 2 * j) * Fp + ob;
                    const float *z0 = z + m;
                    float *dz0 = dz + m;
                    const v16i a = vloadi(arg + q);
                    const v16 gq = vselect((a & four) != (v16i){0}, inv * vload(dout + q), (v16){0});
                    const v16i pos = a & three;
                    const int right = 2 * j + 1 < w;
                    DZ_AT(0, 0);
                    if (right) DZ_AT(Fp, 1);
                    if (below) DZ_AT(row, 2);
                    if (right && below) DZ_AT(row + Fp, 3);
                }
            }
#undef DZ_AT
    }
}

/* Per column u of z (B, U): the moments over the B rows, pivot first, in double. */
static void column_moments(int B, int U, const float *z, float *mean, float *inv_sigma)
{
    for (int u = 0; u < U; u++) {
        const double pivot = z[u];
        double s = 0.0, s2 = 0.0;
        for (int n = 0; n < B; n++) {
            const double d = (double)z[(size_t)n * U + u] - pivot;
            s += d;
            s2 += d * d;
        }
        const double mu = s / B;
        double var = s2 / B - mu * mu;
        if (var < 0.0) var = 0.0;
        mean[u] = (float)(pivot + mu);
        inv_sigma[u] = (float)(1.0 / sqrt(var + CONV_BN_EPS));
    }
}

void bn_relu_forward(int B, int U, const float *z, const float *beta, float *mean,
                     float *inv_sigma, float *a)
{
    column_moments(B, U, z, mean, inv_sigma);
    for (int n = 0; n < B; n++)
        for (int u = 0; u < U; u++) {
            const float y = (z[(size_t)n * U + u] - mean[u]) * inv_sigma[u] + beta[u];
            a[(size_t)n * U + u] = y > 0.0f ? y : 0.0f;
        }
}

/* Backward of a = relu((z - mean) inv + beta) per column, as conv_bn_pool_backward without
 * the pooling: dq = da [a > 0], dbeta += sum_n dq,
 * dz += inv (dq - mean_n dq - xh mean_n(dq xh)). */
void bn_relu_backward(int B, int U, const float *z, const float *mean, const float *inv_sigma,
                      const float *a, const float *da, float *dz, float *dbeta)
{
    for (int u = 0; u < U; u++) {
        const float mu = mean[u], inv = inv_sigma[u];
        double s1 = 0.0, s2 = 0.0;
        for (int n = 0; n < B; n++) {
            const size_t q = (size_t)n * U + u;
            if (!(a[q] > 0.0f)) continue;
            s1 += da[q];
            s2 += (double)da[q] * (double)((z[q] - mu) * inv);
        }
        dbeta[u] += (float)s1;
        const float c0 = (float)(s1 / B), c1 = (float)(s2 / B);
        for (int n = 0; n < B; n++) {
            const size_t q = (size_t)n * U + u;
            const float dq = a[q] > 0.0f ? da[q] : 0.0f;
            dz[q] += inv * (dq - c0 - (z[q] - mu) * inv * c1);
        }
    }
}
