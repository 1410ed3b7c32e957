/*
 * The conv-net task's gradient, checked in layers:
 *  1. A slow, obvious reference of every layer (below, in double precision, from the
 *     definitions: convolution with SAME padding and bias, batch norm with batch statistics
 *     and a shift, ReLU, 2x2 max-pooling with a lone last row/column at odd sides, a fully
 *     connected layer, softmax cross-entropy) is checked against central finite differences
 *     in double, per element, on tiny shapes.
 *  2. Every float kernel of src/tasks/conv_kernels.c is held to its reference on tiny
 *     shapes that reach every code path (channel counts that are not multiples of 16, two
 *     channel blocks, kernels larger than the image, odd sides, rows cut into tiles, the
 *     generic kernel sizes), to float rounding.
 *  3. The reference network (the layers composed, with theta's documented layout) is
 *     checked against finite differences per element, in double.
 *  4. The library task's float loss and gradient are held to the reference network on the
 *     same minibatch, to float rounding, for several shapes.
 *  5. The library's float loss itself is differentiated numerically, per element and
 *     along random directions of the whole vector, on a small network (where a finite
 *     difference is sharp: see test_paper_net for why the paper's network is checked
 *     against the reference instead).
 * The finite-difference checks are shown to fail on wrong gradients (a flipped sign, a
 * doubled element).
 */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv_testutil.h"
#include "tasks/conv.h"
#include "util/util.h"

#define EPS CONV_BN_EPS

/* ------------------------------------------------ reference layers, double */

/* z[n,f,y,x] = b[f] + sum_{c,ky,kx} K[f,c,ky,kx] x[n,c,y+ky-p,x+kx-p] (0 outside), NCHW.
 * b may be NULL (no bias). */
static void ref_conv(int B, int C, int F, int k, int h, int w, const double *x, const double *K,
                     const double *b, double *z)
{
    const int p = (k - 1) / 2;
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    double s = b ? b[f] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int iy = y + ky - p, ix = xx + kx - p;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                s += K[((f * C + c) * k + ky) * k + kx] * x[((n * C + c) * h + iy) * w + ix];
                            }
                    z[((n * F + f) * h + y) * w + xx] = s;
                }
}

/* Given dz: dx (may be NULL), dK, db (may be NULL) += their gradients; each z term
 * K x sends dz K to x and dz x to K (scattered, the other way round from the kernel). */
static void ref_conv_back(int B, int C, int F, int k, int h, int w, const double *x,
                          const double *K, const double *dz, double *dx, double *dK, double *db)
{
    const int p = (k - 1) / 2;
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    const double g = dz[((n * F + f) * h + y) * w + xx];
                    if (db) db[f] += g;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int iy = y + ky - p, ix = xx + kx - p;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                const size_t xi = ((size_t)(n * C + c) * h + iy) * w + ix;
                                const size_t ki = ((size_t)(f * C + c) * k + ky) * k + kx;
                                dK[ki] += g * x[xi];
                                if (dx) dx[xi] += g * K[ki];
                            }
                }
}

/* Batch norm with a shift on z [B][F][m]: per channel f over its B m values,
 * y = (z - mean) / sqrt(var + eps) + beta, var biased. */
static void ref_bn(int B, int F, int m, const double *z, const double *beta, double *y)
{
    for (int f = 0; f < F; f++) {
        double mean = 0, var = 0;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) mean += z[((size_t)n * F + f) * m + i];
        mean /= (double)B * m;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) {
                const double d = z[((size_t)n * F + f) * m + i] - mean;
                var += d * d;
            }
        var /= (double)B * m;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) {
                const size_t q = ((size_t)n * F + f) * m + i;
                y[q] = (z[q] - mean) / sqrt(var + EPS) + beta[f];
            }
    }
}

/* Given dy: dz += inv (dy - mean(dy) - xh mean(dy xh)), dbeta += sum dy (the textbook
 * batch-norm backward, checked here by finite differences). */
static void ref_bn_back(int B, int F, int m, const double *z, const double *dy, double *dz,
                        double *dbeta)
{
    const double M = (double)B * m;
    for (int f = 0; f < F; f++) {
        double mean = 0, var = 0, s1 = 0, s2 = 0;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) mean += z[((size_t)n * F + f) * m + i];
        mean /= M;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) {
                const double d = z[((size_t)n * F + f) * m + i] - mean;
                var += d * d;
            }
        var /= M;
        const double inv = 1 / sqrt(var + EPS);
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) {
                const size_t q = ((size_t)n * F + f) * m + i;
                s1 += dy[q];
                s2 += dy[q] * (z[q] - mean) * inv;
            }
        dbeta[f] += s1;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < m; i++) {
                const size_t q = ((size_t)n * F + f) * m + i;
                dz[q] += inv * (dy[q] - s1 / M - (z[q] - mean) * inv * s2 / M);
            }
    }
}

static void ref_relu(size_t n, const double *y, double *a)
{
    for (size_t i = 0; i < n; i++) a[i] = y[i] > 0 ? y[i] : 0;
}

static void ref_relu_back(size_t n, const double *y, const double *da, double *dy)
{
    for (size_t i = 0; i < n; i++) dy[i] += y[i] > 0 ? da[i] : 0;
}

/* 2x2 max-pooling of a [B][F][h][w] into [B][F][ceil(h/2)][ceil(w/2)]: window (i, j) is
 * rows 2i, 2i+1 and columns 2j, 2j+1 of those inside; the first maximum in row-major
 * order wins. at (may be NULL) receives the index in a of each window's maximum. */
static void ref_pool(int B, int F, int h, int w, const double *a, double *o, size_t *at)
{
    const int ph = (h + 1) / 2, pw = (w + 1) / 2;
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++)
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < pw; j++) {
                    size_t best = 0;
                    double m = -INFINITY;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            const int y = 2 * i + dy, x = 2 * j + dx;
                            if (y >= h || x >= w) continue;
                            const size_t q = ((size_t)(n * F + f) * h + y) * w + x;
                            if (a[q] > m) m = a[q], best = q;
                        }
                    const size_t o_i = ((size_t)(n * F + f) * ph + i) * pw + j;
                    o[o_i] = m;
                    if (at) at[o_i] = best;
                }
}

static void ref_pool_back(int B, int F, int h, int w, const double *a, const double *dout,
                          double *da)
{
    const size_t n_out = (size_t)B * F * ((h + 1) / 2) * ((w + 1) / 2);
    double *o = malloc(n_out * sizeof *o);
    size_t *at = malloc(n_out * sizeof *at);
    assert_true(o && at);
    ref_pool(B, F, h, w, a, o, at);
    for (size_t q = 0; q < n_out; q++) da[at[q]] += dout[q];
    free(o);
    free(at);
}

/* y (B, O) = x (B, I) W^T + b, W (O, I); b may be NULL. */
static void ref_linear(int B, int I, int O, const double *x, const double *W, const double *b,
                       double *y)
{
    for (int n = 0; n < B; n++)
        for (int o = 0; o < O; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < I; i++) s += W[o * I + i] * x[n * I + i];
            y[n * O + o] = s;
        }
}

static void ref_linear_back(int B, int I, int O, const double *x, const double *W,
                            const double *dy, double *dx, double *dW, double *db)
{
    for (int n = 0; n < B; n++)
        for (int o = 0; o < O; o++) {
            const double g = dy[n * O + o];
            if (db) db[o] += g;
            for (int i = 0; i < I; i++) {
                dW[o * I + i] += g * x[n * I + i];
                if (dx) dx[n * I + i] += g * W[o * I + i];
            }
        }
}

/* Mean cross-entropy of logits z (B, K); dz (may be NULL) = its gradient. */
static double ref_xent(int B, int K, const double *z, const uint8_t *labels, double *dz)
{
    double total = 0;
    for (int n = 0; n < B; n++) {
        double m = z[n * K];
        for (int j = 1; j < K; j++) m = fmax(m, z[n * K + j]);
        double s = 0;
        for (int j = 0; j < K; j++) s += exp(z[n * K + j] - m);
        const double lse = m + log(s);
        total += lse - z[n * K + labels[n]];
        if (dz)
            for (int j = 0; j < K; j++) dz[n * K + j] = (exp(z[n * K + j] - lse) - (j == labels[n])) / B;
    }
    return total / B;
}

/* --------------------------------------------------------- the FD checker */

typedef double (*scalar_fn)(void *ctx);

typedef struct {
    size_t worst;
    double excess, g, fd; /* the element furthest beyond its tolerance */
} fd_result;

/*
 * Central differences of f (which reads v through its context) with respect to every
 * element of v, against g: |g_i - fd_i| <= atol + rtol |fd_i|. v is restored. Returns 1 if
 * every element passes; res says where it was worst.
 */
static int fd_elements(scalar_fn f, void *ctx, double *v, size_t n, const double *g, double h,
                       double atol, double rtol, fd_result *res)
{
    int pass = 1;
    res->excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        const double save = v[i];
        v[i] = save + h;
        const double fp = f(ctx);
        v[i] = save - h;
        const double fm = f(ctx);
        v[i] = save;
        const double fd = (fp - fm) / (2 * h);
        const double excess = fabs(g[i] - fd) - (atol + rtol * fabs(fd));
        if (excess > res->excess) *res = (fd_result){i, excess, g[i], fd};
        if (excess > 0) pass = 0;
    }
    return pass;
}

static void expect_fd(const char *what, scalar_fn f, void *ctx, double *v, size_t n,
                      const double *g, double h, double atol, double rtol)
{
    fd_result r;
    if (!fd_elements(f, ctx, v, n, g, h, atol, rtol, &r))
        fail_msg("%s: element %zu: analytic %.12g, finite difference %.12g", what, r.worst, r.g, r.fd);
    printf("    %-40s %3zu elements, worst excess %.2e\n", what, n, r.excess);
}

/* ----------------------------------------------- 1. reference layers by FD */

static void fill_normal(double *v, size_t n, double scale, double offset, l2l_rng *rng)
{
    for (size_t i = 0; i < n; i++) v[i] = offset + scale * l2l_rng_normal(rng);
}

/* One layer under test: forward() fills out from the inputs; probe = sum out * R. */
typedef struct layer_ctx {
    void (*forward)(struct layer_ctx *);
    int B, C, F, k, h, w;
    double *x, *K, *b, *out, *R;
    size_t n_out;
    const uint8_t *labels;
} layer_ctx;

static double probe(void *p)
{
    layer_ctx *c = p;
    c->forward(c);
    if (!c->R) return c->out[0];
    double s = 0;
    for (size_t i = 0; i < c->n_out; i++) s += c->out[i] * c->R[i];
    return s;
}

static void fw_conv(layer_ctx *c) { ref_conv(c->B, c->C, c->F, c->k, c->h, c->w, c->x, c->K, c->b, c->out); }
static void fw_bn(layer_ctx *c) { ref_bn(c->B, c->F, c->h * c->w, c->x, c->b, c->out); }
static void fw_relu(layer_ctx *c) { ref_relu(c->n_out, c->x, c->out); }
static void fw_pool(layer_ctx *c) { ref_pool(c->B, c->F, c->h, c->w, c->x, c->out, NULL); }
static void fw_linear(layer_ctx *c) { ref_linear(c->B, c->C, c->F, c->x, c->K, c->b, c->out); }
static void fw_xent(layer_ctx *c) { c->out[0] = ref_xent(c->B, c->F, c->x, c->labels, NULL); }

static void test_reference_layers_fd(void **state)
{
    (void)state;
    l2l_rng rng;
    l2l_rng_seed(&rng, 11, 0);
    const double h = 1e-5, atol = 1e-8, rtol = 1e-6;
    /* convolution, with bias: an ordinary shape, and a kernel larger than the image */
    const int conv_shapes[2][6] = {{2, 3, 2, 3, 4, 5}, {1, 2, 3, 5, 3, 2}}; /* B C F k h w */
    for (int s = 0; s < 2; s++) {
        const int *d = conv_shapes[s];
        layer_ctx c = {.forward = fw_conv, .B = d[0], .C = d[1], .F = d[2], .k = d[3], .h = d[4], .w = d[5]};
        const size_t nx = (size_t)c.B * c.C * c.h * c.w, nk = (size_t)c.F * c.C * c.k * c.k;
        c.n_out = (size_t)c.B * c.F * c.h * c.w;
        double *x = calloc(nx, 8), *K = calloc(nk, 8), *b = calloc(c.F, 8), *out = calloc(c.n_out, 8);
        double *R = calloc(c.n_out, 8), *dx = calloc(nx, 8), *dK = calloc(nk, 8), *db = calloc(c.F, 8);
        fill_normal(x, nx, 1, 0, &rng), fill_normal(K, nk, 1, 0, &rng), fill_normal(b, c.F, 1, 0, &rng);
        fill_normal(R, c.n_out, 1, 0, &rng);
        c.x = x, c.K = K, c.b = b, c.out = out, c.R = R;
        ref_conv_back(c.B, c.C, c.F, c.k, c.h, c.w, x, K, R, dx, dK, db);
        printf("  convolution %dx%dx%dx%d, %d maps, k %d:\n", c.B, c.C, c.h, c.w, c.F, c.k);
        expect_fd("d/dx", probe, &c, x, nx, dx, h, atol, rtol);
        expect_fd("d/dkernel", probe, &c, K, nk, dK, h, atol, rtol);
        expect_fd("d/dbias", probe, &c, b, (size_t)c.F, db, h, atol, rtol);
        if (s == 0) { /* the checker fails on wrong gradients */
            fd_result r;
            for (size_t i = 0; i < nk; i++) dK[i] = -dK[i];
            if (fd_elements(probe, &c, K, nk, dK, h, atol, rtol, &r)) fail_msg("FD passed a flipped sign");
            for (size_t i = 0; i < nk; i++) dK[i] = -dK[i];
            dK[3] *= 2;
            if (fd_elements(probe, &c, K, nk, dK, h, atol, rtol, &r)) fail_msg("FD passed a doubled element");
        }
        free(x), free(K), free(b), free(out), free(R), free(dx), free(dK), free(db);
    }
    { /* batch norm with a shift: a mean far from 0 */
        layer_ctx c = {.forward = fw_bn, .B = 3, .F = 2, .h = 1, .w = 5};
        const size_t n = (size_t)c.B * c.F * c.w;
        c.n_out = n;
        double *z = calloc(n, 8), *beta = calloc(2, 8), *out = calloc(n, 8), *R = calloc(n, 8);
        double *dz = calloc(n, 8), *dbeta = calloc(2, 8);
        fill_normal(z, n, 3, 1, &rng), fill_normal(beta, 2, 1, 0, &rng), fill_normal(R, n, 1, 0, &rng);
        c.x = z, c.b = beta, c.out = out, c.R = R;
        ref_bn_back(c.B, c.F, c.w, z, R, dz, dbeta);
        printf("  batch norm, 3 x 2 channels x 5:\n");
        expect_fd("d/dz", probe, &c, z, n, dz, h, atol, rtol);
        expect_fd("d/dshift", probe, &c, beta, 2, dbeta, h, atol, rtol);
        free(z), free(beta), free(out), free(R), free(dz), free(dbeta);
    }
    { /* ReLU, away from the kink */
        layer_ctx c = {.forward = fw_relu};
        const size_t n = 24;
        c.n_out = n;
        double *y = calloc(n, 8), *out = calloc(n, 8), *R = calloc(n, 8), *dy = calloc(n, 8);
        for (size_t i = 0; i < n; i++) {
            y[i] = (0.1 + l2l_rng_uniform(&rng)) * (i % 2 ? 1 : -1);
            R[i] = l2l_rng_normal(&rng);
        }
        c.x = y, c.out = out, c.R = R;
        ref_relu_back(n, y, R, dy);
        printf("  ReLU:\n");
        expect_fd("d/dy", probe, &c, y, n, dy, h, atol, rtol);
        free(y), free(out), free(R), free(dy);
    }
    { /* max-pooling of 5 x 3: windows of 2x2, 2x1, 1x2 and 1x1 */
        layer_ctx c = {.forward = fw_pool, .B = 2, .F = 2, .h = 5, .w = 3};
        const size_t n = (size_t)c.B * c.F * c.h * c.w;
        c.n_out = (size_t)c.B * c.F * 3 * 2;
        double *a = calloc(n, 8), *out = calloc(c.n_out, 8), *R = calloc(c.n_out, 8), *da = calloc(n, 8);
        fill_normal(a, n, 1, 0, &rng), fill_normal(R, c.n_out, 1, 0, &rng);
        c.x = a, c.out = out, c.R = R;
        ref_pool_back(c.B, c.F, c.h, c.w, a, R, da);
        printf("  max-pooling 5 x 3:\n");
        expect_fd("d/da", probe, &c, a, n, da, h, atol, rtol);
        free(a), free(out), free(R), free(da);
    }
    { /* fully connected */
        layer_ctx c = {.forward = fw_linear, .B = 3, .C = 4, .F = 2};
        c.n_out = 6;
        double *x = calloc(12, 8), *W = calloc(8, 8), *b = calloc(2, 8), *out = calloc(6, 8);
        double *R = calloc(6, 8), *dx = calloc(12, 8), *dW = calloc(8, 8), *db = calloc(2, 8);
        fill_normal(x, 12, 1, 0, &rng), fill_normal(W, 8, 1, 0, &rng), fill_normal(b, 2, 1, 0, &rng);
        fill_normal(R, 6, 1, 0, &rng);
        c.x = x, c.K = W, c.b = b, c.out = out, c.R = R;
        ref_linear_back(3, 4, 2, x, W, R, dx, dW, db);
        printf("  fully connected 4 -> 2:\n");
        expect_fd("d/dx", probe, &c, x, 12, dx, h, atol, rtol);
        expect_fd("d/dW", probe, &c, W, 8, dW, h, atol, rtol);
        expect_fd("d/db", probe, &c, b, 2, db, h, atol, rtol);
        free(x), free(W), free(b), free(out), free(R), free(dx), free(dW), free(db);
    }
    { /* softmax cross-entropy */
        const uint8_t labels[3] = {2, 0, 3};
        layer_ctx c = {.forward = fw_xent, .B = 3, .F = 4};
        double z[12], out[1], dz[12];
        fill_normal(z, 12, 2, 0, &rng);
        c.x = z, c.out = out, c.labels = labels;
        ref_xent(3, 4, z, labels, dz);
        printf("  softmax cross-entropy:\n");
        expect_fd("d/dz", probe, &c, z, 12, dz, h, atol, rtol);
    }
}

/* ------------------------------------- 2. float kernels against the reference */

/* A value exactly representable in float, ~ N(0, scale²) + offset. */
static double fnormal(l2l_rng *rng, double scale, double offset)
{
    return (double)(float)(offset + scale * l2l_rng_normal(rng));
}

/* NCHW doubles -> planes with a border of q (floats), as conv.h lays block inputs out. */
static float *to_planes(const double *x, int B, int C, int h, int w, int q)
{
    const int hp = h + 2 * q, wp = w + 2 * q;
    float *p = l2l_alloc((size_t)B * C * hp * wp * sizeof *p);
    assert_non_null(p);
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    p[(((size_t)n * C + c) * hp + y + q) * wp + xx + q] = (float)x[((n * C + c) * h + y) * w + xx];
    return p;
}

/* Element (n, c, y, x) of a pixels tensor [B][h][w][Cp]. */
static size_t px(int n, int c, int y, int x, int h, int w, int Cp)
{
    return (((size_t)n * h + y) * w + x) * Cp + c;
}

static void check_conv_kernels(int B, int C, int F, int k, int h, int w, l2l_rng *rng)
{
    conv_geom g;
    conv_geom_init(&g, B, C, F, k, h, w);
    const size_t nx = (size_t)B * C * h * w, nk = (size_t)F * C * k * k, nz = (size_t)B * F * h * w;
    double *x = calloc(nx, 8), *K = calloc(nk, 8), *z = calloc(nz, 8), *zabs = calloc(nz, 8);
    double *xa = calloc(nx, 8), *Ka = calloc(nk, 8), *dz = calloc(nz, 8), *dza = calloc(nz, 8);
    double *dx = calloc(nx, 8), *dK = calloc(nk, 8), *dxa = calloc(nx, 8), *dKa = calloc(nk, 8);
    float *kf = calloc(nk, sizeof *kf), *dkf = calloc(nk, sizeof *dkf);
    assert_true(x && K && z && zabs && xa && Ka && dz && dza && dx && dK && dxa && dKa && kf && dkf);
    for (size_t i = 0; i < nx; i++) x[i] = fnormal(rng, 1, 0), xa[i] = fabs(x[i]);
    for (size_t i = 0; i < nk; i++) K[i] = fnormal(rng, 1, 0), Ka[i] = fabs(K[i]), kf[i] = (float)K[i];
    for (size_t i = 0; i < nz; i++) dz[i] = fnormal(rng, 1, 0), dza[i] = fabs(dz[i]);
    ref_conv(B, C, F, k, h, w, x, K, NULL, z);
    ref_conv(B, C, F, k, h, w, xa, Ka, NULL, zabs); /* the sums of |terms|: the error scale */
    ref_conv_back(B, C, F, k, h, w, x, K, dz, dx, dK, NULL);
    ref_conv_back(B, C, F, k, h, w, xa, Ka, dza, dxa, dKa, NULL);

    float *xp = to_planes(x, B, C, h, w, g.p);
    float *wpack = l2l_alloc(conv_wpack_floats(&g) * 4), *wtpack = l2l_alloc(conv_wtpack_floats(&g) * 4);
    const int threads = max_threads();
    float *dwpack = l2l_alloc(conv_wpack_floats(&g) * 4);
    float *scratch = l2l_alloc((size_t)threads * conv_scratch_floats(&g) * 4);
    float *zf = l2l_alloc((size_t)B * h * w * g.Fp * 4), *dzf = l2l_alloc((size_t)B * h * w * g.Fp * 4);
    float *dxf = l2l_alloc((size_t)B * h * w * g.Cp * 4);
    assert_true(wpack && wtpack && dwpack && scratch && zf && dzf && dxf);
    conv_pack(&g, kf, wpack, wtpack);
    conv_forward(&g, xp, wpack, zf);
    /* Float sums of at most C k² products: each value within 2e-6 of its sum of |terms|
     * (float's unit roundoff 6e-8 times the terms' count, 400 here at most, is 2.4e-5 in
     * the worst case; rounding errors of random sign stay near its square root). */
    const double tol = 2e-6;
    for (int n = 0; n < B; n++)
        for (int f = 0; f < g.Fp; f++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    const double found = zf[px(n, f, y, xx, h, w, g.Fp)];
                    if (f >= F) {
                        if (found != 0) fail_msg("padding channel %d of z is %g, expected 0", f, found);
                        continue;
                    }
                    const size_t q = ((size_t)(n * F + f) * h + y) * w + xx;
                    EXPECT_CLOSE(found, z[q], tol * zabs[q] + 1e-30, 0, "conv z[%d,%d,%d,%d] (C %d F %d k %d %dx%d)",
                                 n, f, y, xx, C, F, k, h, w);
                }
    /* backward: dx starts at a known value (the kernel adds), padding channels stay 0 */
    for (int n = 0; n < B; n++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int f = 0; f < g.Fp; f++) {
                    dzf[px(n, f, y, xx, h, w, g.Fp)] = f < F ? (float)dz[((n * F + f) * h + y) * w + xx] : 0.0f;
                    if (f < g.Cp) dxf[px(n, f, y, xx, h, w, g.Cp)] = f < C ? 0.5f : 0.0f;
                }
    /* On one thread first: the threads' result below must be the same bytes */
    float *dw1 = l2l_alloc(conv_wpack_floats(&g) * 4), *dx1 = l2l_alloc((size_t)B * h * w * g.Cp * 4);
    float *z1 = l2l_alloc((size_t)B * h * w * g.Fp * 4);
    assert_true(dw1 && dx1 && z1);
    memcpy(dx1, dxf, (size_t)B * h * w * g.Cp * 4);
    conv_backward(&g, xp, wtpack, dzf, dw1, dx1, scratch, 1);
    conv_backward(&g, xp, wtpack, dzf, dwpack, dxf, scratch, threads);
    assert_memory_equal(dw1, dwpack, conv_wpack_floats(&g) * 4);
    assert_memory_equal(dx1, dxf, (size_t)B * h * w * g.Cp * 4);
#ifdef _OPENMP
    omp_set_num_threads(1);
    conv_forward(&g, xp, wpack, z1);
    omp_set_num_threads(threads);
    assert_memory_equal(z1, zf, (size_t)B * h * w * g.Fp * 4);
#endif
    l2l_free(dw1), l2l_free(dx1), l2l_free(z1);
    conv_unpack_grad(&g, dwpack, dkf);
    for (size_t i = 0; i < nk; i++)
        EXPECT_CLOSE(dkf[i], dK[i], tol * dKa[i] + 1e-30, 0, "conv dK[%zu] (C %d F %d k %d %dx%d)", i, C, F, k, h, w);
    for (int n = 0; n < B; n++)
        for (int c = 0; c < g.Cp; c++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    const double found = dxf[px(n, c, y, xx, h, w, g.Cp)];
                    if (c >= C) {
                        if (found != 0) fail_msg("padding channel %d of dx is %g, expected 0", c, found);
                        continue;
                    }
                    const size_t q = ((size_t)(n * C + c) * h + y) * w + xx;
                    EXPECT_CLOSE(found - 0.5, dx[q], tol * dxa[q] + 6e-8, 0, "conv dx[%d,%d,%d,%d] (C %d F %d k %d)",
                                 n, c, y, xx, C, F, k);
                }
    printf("    conv kernels: B %d, C %d, F %d (Fp %d), k %d, %d x %d: forward, dK, dx agree, the same "
           "bytes on 1 and %d threads\n", B, C, F, g.Fp, k, h, w, threads);
    free(x), free(K), free(z), free(zabs), free(xa), free(Ka), free(dz), free(dza), free(dx), free(dK);
    free(dxa), free(dKa), free(kf), free(dkf);
    l2l_free(xp), l2l_free(wpack), l2l_free(wtpack), l2l_free(dwpack), l2l_free(scratch);
    l2l_free(zf), l2l_free(dzf), l2l_free(dxf);
}

/* Batch norm + ReLU + pooling, forward and backward, against bn -> relu -> pool. */
static void check_bn_pool(int B, int F, int h, int w, int out_pad, l2l_rng *rng)
{
    conv_geom g;
    conv_geom_init(&g, B, 1, F, 1, h, w);
    const int ph = g.ph, pw = g.pw, Fp = g.Fp;
    const size_t nz = (size_t)B * F * h * w, no = (size_t)B * F * ph * pw;
    double *z = calloc(nz, 8), *beta = calloc(F, 8), *y = calloc(nz, 8), *a = calloc(nz, 8);
    double *o = calloc(no, 8), *dout = calloc(no, 8), *da = calloc(nz, 8), *dy = calloc(nz, 8);
    double *dz = calloc(nz, 8), *dbeta = calloc(F, 8);
    float *betaf = calloc(F, 4), *dbetaf = calloc(F, 4);
    assert_true(z && beta && y && a && o && dout && da && dy && dz && dbeta && betaf && dbetaf);
    for (int f = 0; f < F; f++) beta[f] = fnormal(rng, 0.5, 0), betaf[f] = (float)beta[f];
    for (size_t i = 0; i < nz; i++) z[i] = fnormal(rng, 2, 0.5);
    for (size_t i = 0; i < no; i++) dout[i] = fnormal(rng, 1, 0);
    ref_bn(B, F, h * w, z, beta, y);
    ref_relu(nz, y, a);
    ref_pool(B, F, h, w, a, o, NULL);
    ref_pool_back(B, F, h, w, a, dout, da);
    ref_relu_back(nz, y, da, dy);
    ref_bn_back(B, F, h * w, z, dy, dz, dbeta);

    float *zf = l2l_alloc((size_t)B * h * w * Fp * 4), *zmax = l2l_alloc((size_t)B * ph * pw * Fp * 4);
    int32_t *arg = l2l_alloc((size_t)B * ph * pw * Fp * sizeof *arg);
    float *mean = l2l_alloc(Fp * 4), *inv = l2l_alloc(Fp * 4);
    const int oh = ph + 2 * out_pad, ow = pw + 2 * out_pad;
    float *out = l2l_alloc((size_t)B * F * oh * ow * 4), *doutf = l2l_alloc((size_t)B * ph * pw * Fp * 4);
    float *dzf = l2l_alloc((size_t)B * h * w * Fp * 4);
    assert_true(zf && zmax && arg && mean && inv && out && doutf && dzf);
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++) {
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++)
                    zf[px(n, f, yy, xx, h, w, Fp)] = (float)z[((n * F + f) * h + yy) * w + xx];
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < pw; j++)
                    doutf[px(n, f, i, j, ph, pw, Fp)] = (float)dout[((n * F + f) * ph + i) * pw + j];
        }
    conv_bn_pool_forward(&g, zf, betaf, zmax, arg, mean, inv, out, out_pad);
    /* Outputs of size ~1 from float statistics: within 1e-5 (a few float roundings of the
     * mean, the variance and the product, amplified by inv_sigma ~ 0.5 here). */
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    const float found = out[(((size_t)n * F + f) * oh + i) * ow + j];
                    const int ii = i - out_pad, jj = j - out_pad;
                    if (ii < 0 || jj < 0 || ii >= ph || jj >= pw) {
                        if (found != 0) fail_msg("border of out at (%d,%d,%d,%d) is %g", n, f, i, j, found);
                        continue;
                    }
                    EXPECT_CLOSE(found, o[((n * F + f) * ph + ii) * pw + jj], 1e-5, 1e-5,
                                 "bn-pool out[%d,%d,%d,%d] (F %d, %dx%d)", n, f, ii, jj, F, h, w);
                }
    for (size_t i = 0; i < (size_t)B * h * w * Fp; i++) dzf[i] = NAN; /* written, not added to */
    conv_bn_pool_backward(&g, zf, zmax, arg, mean, inv, doutf, dzf, dbetaf);
    double dz_scale = 0;
    for (size_t i = 0; i < nz; i++) dz_scale = fmax(dz_scale, fabs(dz[i]));
    for (int n = 0; n < B; n++)
        for (int f = 0; f < Fp; f++)
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++) {
                    const float found = dzf[px(n, f, yy, xx, h, w, Fp)];
                    if (f >= F) {
                        if (found != 0) fail_msg("padding channel %d of dz is %g", f, found);
                        continue;
                    }
                    EXPECT_CLOSE(found, dz[((n * F + f) * h + yy) * w + xx], 2e-6 * dz_scale, 1e-5,
                                 "bn-pool dz[%d,%d,%d,%d] (F %d, %dx%d)", n, f, yy, xx, F, h, w);
                }
    for (int f = 0; f < F; f++) EXPECT_CLOSE(dbetaf[f], dbeta[f], 1e-5, 1e-5, "bn-pool dshift[%d]", f);
    printf("    bn-relu-pool: B %d, F %d, %d x %d, border %d: forward, dz, dshift agree\n", B, F, h, w, out_pad);
    free(z), free(beta), free(y), free(a), free(o), free(dout), free(da), free(dy), free(dz), free(dbeta);
    free(betaf), free(dbetaf);
    l2l_free(zf), l2l_free(zmax), l2l_free(arg), l2l_free(mean), l2l_free(inv), l2l_free(out);
    l2l_free(doutf), l2l_free(dzf);
}

static void check_bn_relu(int B, int U, l2l_rng *rng)
{
    const size_t n = (size_t)B * U;
    double *z = calloc(n, 8), *beta = calloc(U, 8), *y = calloc(n, 8), *a = calloc(n, 8);
    double *da = calloc(n, 8), *dy = calloc(n, 8), *dz = calloc(n, 8), *dbeta = calloc(U, 8);
    float *zf = calloc(n, 4), *betaf = calloc(U, 4), *af = calloc(n, 4), *daf = calloc(n, 4);
    float *dzf = calloc(n, 4), *dbetaf = calloc(U, 4), *mean = calloc(U, 4), *inv = calloc(U, 4);
    assert_true(z && beta && y && a && da && dy && dz && dbeta && zf && betaf && af && daf && dzf && dbetaf);
    for (size_t i = 0; i < n; i++) z[i] = fnormal(rng, 2, 1), zf[i] = (float)z[i];
    for (size_t i = 0; i < n; i++) da[i] = fnormal(rng, 1, 0), daf[i] = (float)da[i];
    for (int u = 0; u < U; u++) beta[u] = fnormal(rng, 0.5, 0), betaf[u] = (float)beta[u];
    ref_bn(B, U, 1, z, beta, y); /* [B][U][1]: per unit over the B rows */
    ref_relu(n, y, a);
    ref_relu_back(n, y, da, dy);
    ref_bn_back(B, U, 1, z, dy, dz, dbeta);
    bn_relu_forward(B, U, zf, betaf, mean, inv, af);
    bn_relu_backward(B, U, zf, mean, inv, af, daf, dzf, dbetaf);
    for (size_t i = 0; i < n; i++) {
        EXPECT_CLOSE(af[i], a[i], 1e-5, 1e-5, "bn-relu a[%zu]", i);
        EXPECT_CLOSE(dzf[i], dz[i], 1e-5, 1e-5, "bn-relu dz[%zu]", i);
    }
    for (int u = 0; u < U; u++) EXPECT_CLOSE(dbetaf[u], dbeta[u], 1e-5, 1e-5, "bn-relu dshift[%d]", u);
    printf("    bn-relu: B %d, U %d: forward, dz, dshift agree\n", B, U);
    free(z), free(beta), free(y), free(a), free(da), free(dy), free(dz), free(dbeta);
    free(zf), free(betaf), free(af), free(daf), free(dzf), free(dbetaf), free(mean), free(inv);
}

static void test_kernels_match_reference(void **state)
{
    (void)state;
    l2l_rng rng;
    l2l_rng_seed(&rng, 12, 0);
    /* B C F k h w: padding channels (F 5), two channel blocks, the second partial (F 17),
     * a kernel taller than the image, rows cut into two tiles (w 20), a generic kernel
     * size (k 7) and k 1 and 3, several input channels (C 4: CIFAR-like is 3) */
    check_conv_kernels(2, 3, 5, 3, 5, 4, &rng);
    check_conv_kernels(1, 2, 17, 5, 3, 7, &rng);
    check_conv_kernels(2, 1, 16, 5, 9, 20, &rng);
    check_conv_kernels(1, 4, 3, 7, 6, 6, &rng);
    check_conv_kernels(2, 2, 2, 1, 3, 3, &rng);
    check_conv_kernels(1, 16, 16, 5, 7, 7, &rng);
    check_bn_pool(2, 5, 5, 3, 1, &rng);
    check_bn_pool(3, 16, 4, 4, 2, &rng);
    check_bn_pool(1, 17, 7, 9, 0, &rng);
    check_bn_relu(5, 3, &rng);
    check_bn_relu(1, 2, &rng); /* one row: variance 0, output the shift */
}

/* ------------------------------------------------------ the reference network */

#define REF_MAX_B 64

typedef struct {
    int L, C0, H, W, F, k, U, K, B;
    const l2l_dataset *data;
    size_t idx[REF_MAX_B];
    int h[L2L_CONV_MAX_LAYERS + 1], w[L2L_CONV_MAX_LAYERS + 1], S;
    size_t kern[L2L_CONV_MAX_LAYERS], bias[L2L_CONV_MAX_LAYERS], shift[L2L_CONV_MAX_LAYERS];
    size_t wf, bf, sf, wo, bo, n;
    size_t n_pattern;
} ref_net;

/* theta's layout as src/tasks/conv.c documents it, written out independently. */
static ref_net ref_of(const l2l_conv_config *cfg, const l2l_dataset *ds)
{
    ref_net r;
    memset(&r, 0, sizeof r);
    r.L = cfg->conv_layers, r.F = cfg->channels, r.k = cfg->kernel, r.U = cfg->fc;
    r.B = cfg->batch, r.C0 = ds->channels, r.H = ds->rows, r.W = ds->cols, r.K = ds->n_classes;
    r.data = ds;
    assert_true(r.B <= REF_MAX_B);
    r.h[0] = r.H, r.w[0] = r.W;
    for (int l = 0; l < r.L; l++) r.h[l + 1] = (r.h[l] + 1) / 2, r.w[l + 1] = (r.w[l] + 1) / 2;
    r.S = r.F * r.h[r.L] * r.w[r.L];
    size_t off = 0;
    for (int l = 0; l < r.L; l++) r.kern[l] = off, off += (size_t)r.F * (l ? r.F : r.C0) * r.k * r.k;
    for (int l = 0; l < r.L; l++) r.bias[l] = off, off += r.F, r.shift[l] = off, off += r.F;
    r.wf = off, off += (size_t)r.U * r.S;
    r.bf = off, off += r.U;
    r.sf = off, off += r.U;
    r.wo = off, off += (size_t)r.K * r.U;
    r.bo = off, off += r.K;
    r.n = off;
    for (int l = 0; l < r.L; l++)
        r.n_pattern += (size_t)r.B * r.F * (r.h[l] * r.w[l] + r.h[l + 1] * r.w[l + 1]);
    r.n_pattern += (size_t)r.B * r.U;
    return r;
}

/* The minibatch the task draws from this rng state: B calls of l2l_rng_below(n). */
static void ref_draw(ref_net *r, const l2l_rng *rng)
{
    l2l_rng copy = *rng;
    for (int i = 0; i < r->B; i++) r->idx[i] = (size_t)l2l_rng_below(&copy, r->data->n);
}

/*
 * The network from the layers above, on the minibatch r->idx, with every bias in place:
 * the mean cross-entropy and (if grad) its gradient in theta's layout. pattern (if not
 * NULL, n_pattern bytes) receives which side of every ReLU kink each value is on and which
 * value each pooling window took, so that a finite difference that crosses a kink can be
 * told apart.
 */
static double ref_loss_grad(const ref_net *r, const double *theta, double *grad, uint8_t *pattern)
{
    const int L = r->L, B = r->B, F = r->F, k = r->k;
    double *x[L2L_CONV_MAX_LAYERS + 1], *z[L2L_CONV_MAX_LAYERS], *y[L2L_CONV_MAX_LAYERS];
    double *a[L2L_CONV_MAX_LAYERS];
    size_t sz[L2L_CONV_MAX_LAYERS + 1];
    for (int l = 0; l <= L; l++) {
        sz[l] = (size_t)B * (l ? F : r->C0) * r->h[l] * r->w[l];
        x[l] = calloc(sz[l], 8);
        assert_non_null(x[l]);
    }
    for (int l = 0; l < L; l++) {
        const size_t n = (size_t)B * F * r->h[l] * r->w[l];
        z[l] = calloc(n, 8), y[l] = calloc(n, 8), a[l] = calloc(n, 8);
        assert_true(z[l] && y[l] && a[l]);
    }
    const int U = r->U, K = r->K, S = r->S;
    double *zf = calloc((size_t)B * U, 8), *yf = calloc((size_t)B * U, 8), *af = calloc((size_t)B * U, 8);
    double *zo = calloc((size_t)B * K, 8), *dzo = calloc((size_t)B * K, 8);
    uint8_t labels[REF_MAX_B];
    assert_true(zf && yf && af && zo && dzo);
    const size_t image = (size_t)r->C0 * r->H * r->W;
    for (int n = 0; n < B; n++) {
        for (size_t j = 0; j < image; j++) x[0][n * image + j] = r->data->images[r->idx[n] * image + j] / 255.0;
        labels[n] = r->data->labels[r->idx[n]];
    }
    size_t np = 0;
    for (int l = 0; l < L; l++) {
        const int C = l ? F : r->C0, h = r->h[l], w = r->w[l];
        const size_t n = (size_t)B * F * h * w;
        ref_conv(B, C, F, k, h, w, x[l], theta + r->kern[l], theta + r->bias[l], z[l]);
        ref_bn(B, F, h * w, z[l], theta + r->shift[l], y[l]);
        ref_relu(n, y[l], a[l]);
        const size_t n_out = (size_t)B * F * r->h[l + 1] * r->w[l + 1];
        size_t *at = malloc(n_out * sizeof *at);
        assert_non_null(at);
        ref_pool(B, F, h, w, a[l], x[l + 1], at);
        if (pattern) {
            for (size_t i = 0; i < n; i++) pattern[np++] = y[l][i] > 0;
            for (size_t i = 0; i < n_out; i++) pattern[np++] = (uint8_t)(at[i] % 251);
        }
        free(at);
    }
    ref_linear(B, S, U, x[L], theta + r->wf, theta + r->bf, zf);
    ref_bn(B, U, 1, zf, theta + r->sf, yf);
    ref_relu((size_t)B * U, yf, af);
    if (pattern)
        for (int i = 0; i < B * U; i++) pattern[np++] = yf[i] > 0;
    ref_linear(B, U, K, af, theta + r->wo, theta + r->bo, zo);
    const double loss = ref_xent(B, K, zo, labels, grad ? dzo : NULL);
    if (grad) {
        memset(grad, 0, r->n * sizeof *grad);
        double *daf = calloc((size_t)B * U, 8), *dyf = calloc((size_t)B * U, 8);
        double *dzf = calloc((size_t)B * U, 8), *dx = calloc(sz[L], 8);
        assert_true(daf && dyf && dzf && dx);
        ref_linear_back(B, U, K, af, theta + r->wo, dzo, daf, grad + r->wo, grad + r->bo);
        ref_relu_back((size_t)B * U, yf, daf, dyf);
        ref_bn_back(B, U, 1, zf, dyf, dzf, grad + r->sf);
        ref_linear_back(B, S, U, x[L], theta + r->wf, dzf, dx, grad + r->wf, grad + r->bf);
        for (int l = L - 1; l >= 0; l--) {
            const int C = l ? F : r->C0, h = r->h[l], w = r->w[l];
            const size_t n = (size_t)B * F * h * w;
            double *da = calloc(n, 8), *dy = calloc(n, 8), *dz = calloc(n, 8);
            double *dxl = l ? calloc(sz[l], 8) : NULL;
            assert_true(da && dy && dz && (dxl || !l));
            ref_pool_back(B, F, h, w, a[l], dx, da);
            ref_relu_back(n, y[l], da, dy);
            ref_bn_back(B, F, h * w, z[l], dy, dz, grad + r->shift[l]);
            ref_conv_back(B, C, F, k, h, w, x[l], theta + r->kern[l], dz, dxl, grad + r->kern[l],
                          grad + r->bias[l]);
            free(dx), free(da), free(dy), free(dz);
            dx = dxl;
        }
        free(daf), free(dyf), free(dzf);
    }
    for (int l = 0; l <= L; l++) free(x[l]);
    for (int l = 0; l < L; l++) free(z[l]), free(y[l]), free(a[l]);
    free(zf), free(yf), free(af), free(zo), free(dzo);
    return loss;
}

/* theta ~ N(0, scale²), rounded to a multiple of 2^-16 (exact in float, and after adding
 * multiples of the FD steps below). */
static void draw_theta(double *theta, size_t n, double scale, uint64_t seed)
{
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 3);
    for (size_t i = 0; i < n; i++) theta[i] = round(scale * l2l_rng_normal(&rng) * 65536) / 65536;
}

/* ------------------------------------------- 3. the reference network by FD */

typedef struct {
    const ref_net *r;
    double *theta;
    uint8_t *pattern; /* if not NULL: each evaluation's pattern */
} net_ctx;

static double net_probe(void *p)
{
    net_ctx *c = p;
    return ref_loss_grad(c->r, c->theta, NULL, c->pattern);
}

/*
 * Per element, in double, with the kink test: an element whose central difference
 * changes the ReLU or pooling pattern is skipped (and counted; most must be checked).
 */
static void test_reference_net_fd(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 30, 2, 6, 5, 3, 21);
    l2l_conv_config cfg = conv_cfg(2, 3, 3, 4, 4);
    ref_net r = ref_of(&cfg, &ds);
    l2l_rng rng;
    l2l_rng_seed(&rng, 5, 1);
    ref_draw(&r, &rng);
    double *theta = calloc(r.n, 8), *g = calloc(r.n, 8);
    uint8_t *base = calloc(r.n_pattern, 1), *pat = calloc(r.n_pattern, 1);
    assert_true(theta && g && base && pat);
    draw_theta(theta, r.n, 0.5, 31);
    ref_loss_grad(&r, theta, g, base);
    net_ctx c = {&r, theta, pat};
    const double h = 1e-6;
    size_t skipped = 0, checked = 0;
    double worst = -INFINITY;
    for (size_t i = 0; i < r.n; i++) {
        const double save = theta[i];
        theta[i] = save + h;
        const double fp = net_probe(&c);
        int same = memcmp(pat, base, r.n_pattern) == 0;
        theta[i] = save - h;
        const double fm = net_probe(&c);
        same = same && memcmp(pat, base, r.n_pattern) == 0;
        theta[i] = save;
        if (!same) {
            skipped++;
            continue;
        }
        checked++;
        const double fd = (fp - fm) / (2 * h), excess = fabs(g[i] - fd) - (1e-8 + 1e-6 * fabs(fd));
        if (excess > worst) worst = excess;
        if (excess > 0) fail_msg("reference network: theta[%zu]: analytic %.12g, FD %.12g", i, g[i], fd);
    }
    printf("    reference network, N = %zu: %zu checked, %zu skipped at kinks, worst excess %.2e\n", r.n,
           checked, skipped, worst);
    assert_true(skipped <= r.n / 20);
    /* the biases before batch norm: gradient 0 */
    for (int l = 0; l < r.L; l++)
        for (int f = 0; f < r.F; f++) EXPECT_CLOSE(g[r.bias[l] + f], 0, 1e-12, 0, "conv%d bias %d", l + 1, f);
    for (int u = 0; u < r.U; u++) EXPECT_CLOSE(g[r.bf + u], 0, 1e-12, 0, "fc bias %d", u);
    free(theta), free(g), free(base), free(pat);
    l2l_dataset_free(&ds);
}

/* ------------------------------------- 4. the library against the reference */

/*
 * On the same minibatch: the library's float loss within 1e-5 relative of the reference's
 * and every gradient element within 2e-5 of the largest |gradient| plus 1e-3 relative (the
 * float network rounds every sum and the batch statistics; batch norm divides by sigma,
 * which here is as small as 0.05 for the first layer's pre-activations). Also: the rng
 * advanced by exactly the B draws, and the biases' gradient is exactly 0.
 */
static void expect_task_matches_reference(const l2l_conv_config *cfg, const l2l_dataset *ds,
                                          uint64_t seed)
{
    l2l_task task;
    create_conv(&task, cfg, ds);
    ref_net r = ref_of(cfg, ds);
    assert_int_equal(task.n, r.n);
    double *theta = calloc(r.n, 8), *gref = calloc(r.n, 8);
    float *thetaf = calloc(r.n, 4), *gf = calloc(r.n, 4);
    assert_true(theta && gref && thetaf && gf);
    draw_theta(theta, r.n, 0.3, seed);
    for (size_t i = 0; i < r.n; i++) thetaf[i] = (float)theta[i];
    l2l_rng rng0;
    l2l_rng_seed(&rng0, seed, 2);
    ref_draw(&r, &rng0);
    const double lref = ref_loss_grad(&r, theta, gref, NULL);
    l2l_rng rng = rng0;
    const double loss = task.loss_grad(task.ctx, thetaf, gf, &rng);
    EXPECT_CLOSE(loss, lref, 0, 1e-5, "%s: loss", task.name);
    l2l_rng expect = rng0;
    for (int i = 0; i < r.B; i++) l2l_rng_below(&expect, ds->n);
    assert_memory_equal(&rng, &expect, sizeof rng);
    double gmax = 0, worst = 0;
    for (size_t i = 0; i < r.n; i++) gmax = fmax(gmax, fabs(gref[i]));
    for (size_t i = 0; i < r.n; i++) {
        EXPECT_CLOSE(gf[i], gref[i], 2e-5 * gmax, 1e-3, "%s: grad[%zu]", task.name, i);
        worst = fmax(worst, fabs(gf[i] - gref[i]) / (2e-5 * gmax + 1e-3 * fabs(gref[i])));
    }
    for (int l = 0; l < r.L; l++)
        for (int f = 0; f < r.F; f++)
            if (gf[r.bias[l] + f] != 0.0f) fail_msg("conv%d bias %d: gradient %g, expected 0", l + 1, f, gf[r.bias[l] + f]);
    printf("    %-36s N %6zu: loss %.6f (ref %.6f), worst gradient error %.2f of tolerance\n", task.name,
           r.n, loss, lref, worst);
    /* the loss alone is the same number */
    rng = rng0;
    assert_true(task.loss_grad(task.ctx, thetaf, NULL, &rng) == loss);
    free(theta), free(gref), free(thetaf), free(gf);
    l2l_task_free(&task);
}

static void test_task_matches_reference(void **state)
{
    (void)state;
    l2l_dataset a, b, c;
    make_images(&a, 30, 2, 6, 5, 3, 21);
    l2l_conv_config cfg = conv_cfg(2, 3, 3, 4, 4);
    expect_task_matches_reference(&cfg, &a, 41);
    make_images(&b, 40, 1, 12, 12, 10, 22); /* the paper's blocks on 12x12 digits */
    cfg = conv_cfg(3, 16, 5, 32, 8);
    expect_task_matches_reference(&cfg, &b, 42);
    make_images(&c, 20, 3, 8, 7, 4, 23); /* CIFAR-like channels, two channel blocks */
    cfg = conv_cfg(2, 17, 3, 5, 6);
    expect_task_matches_reference(&cfg, &c, 43);
    cfg = conv_cfg(1, 4, 7, 3, 5); /* one layer, a 7x7 kernel, larger than the image */
    expect_task_matches_reference(&cfg, &c, 44);
    l2l_dataset_free(&a), l2l_dataset_free(&b), l2l_dataset_free(&c);
}

/* ----------------------------------------- 5. the library's float loss by FD */

typedef struct {
    l2l_task *task;
    l2l_rng rng; /* before the minibatch draw; copied for every call */
    float *theta, *grad;
    const ref_net *ref; /* for the kink pattern, or NULL */
    uint8_t *pattern;
} float_ctx;

/* The library's loss at theta + t d (theta + t d exact in float). */
static double float_loss(float_ctx *c, const double *theta, const double *d, double t)
{
    for (size_t i = 0; i < c->task->n; i++) {
        const double v = theta[i] + t * d[i];
        c->theta[i] = (float)v;
        if ((double)c->theta[i] != v) fail_msg("theta[%zu] + t d not exact in float", i);
    }
    l2l_rng rng = c->rng;
    return c->task->loss_grad(c->task->ctx, c->theta, NULL, &rng);
}

/* The 4-point stencil (8 (f(t) - f(-t)) - (f(2t) - f(-2t))) / 12t along d; *same = 0 if
 * the reference's kink pattern changes at any of its points. */
static double stencil(float_ctx *c, const double *theta, const double *d, double t,
                      const uint8_t *base, int *same)
{
    double f[4];
    const double at[4] = {t, -t, 2 * t, -2 * t};
    double *work = NULL;
    if (c->ref) work = malloc(c->task->n * sizeof *work);
    for (int s = 0; s < 4; s++) {
        f[s] = float_loss(c, theta, d, at[s]);
        if (!c->ref) continue;
        for (size_t i = 0; i < c->task->n; i++) work[i] = theta[i] + at[s] * d[i];
        ref_loss_grad(c->ref, work, NULL, c->pattern);
        if (base && memcmp(c->pattern, base, c->ref->n_pattern) != 0) *same = 0;
    }
    free(work);
    return (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * t);
}

/* Every element of g against the stencil of the float loss; elements whose stencil
 * crosses a kink (by the reference's pattern) are skipped. Returns 1 if all pass. */
static int float_fd_elements(float_ctx *c, const double *theta, const double *g, double h,
                             double atol, double rtol, const uint8_t *base, size_t *skipped,
                             double *worst, size_t *where)
{
    const size_t n = c->task->n;
    double *d = calloc(n, sizeof *d);
    assert_non_null(d);
    int pass = 1;
    *skipped = 0, *worst = -INFINITY, *where = 0;
    for (size_t i = 0; i < n; i++) {
        memset(d, 0, n * sizeof *d);
        d[i] = 1;
        int same = 1;
        const double fd = stencil(c, theta, d, h, base, &same);
        if (!same) {
            (*skipped)++;
            continue;
        }
        const double excess = fabs(g[i] - fd) - (atol + rtol * fabs(fd));
        if (excess > *worst) *worst = excess, *where = i;
        if (excess > 0) pass = 0;
    }
    free(d);
    return pass;
}

/*
 * Per element on a small network: the library's float gradient against the 4-point
 * stencil of its own float loss, at h = 2^-9 on theta ~ N(0, 0.5²). The loss is rounded to
 * about 1e-7; the stencil turns an error e in f into at most 1.5 e / h = 7.7e-5 (atol),
 * and its truncation error h^4 f^(5) / 30 is far smaller. A larger h crosses more kinks
 * (batch norm makes this tiny network's pre-activations move fast): at 2^-7 a fifth of
 * the elements would be skipped. The check is shown to fail on a flipped sign and on one
 * doubled element.
 */
static void test_task_float_fd(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 30, 2, 6, 5, 3, 21);
    l2l_conv_config cfg = conv_cfg(2, 3, 3, 4, 4);
    l2l_task task;
    create_conv(&task, &cfg, &ds);
    ref_net r = ref_of(&cfg, &ds);
    const size_t n = task.n;
    double *theta = calloc(n, 8), *g = calloc(n, 8), *bad = calloc(n, 8);
    float *thetaf = calloc(n, 4), *gf = calloc(n, 4), *scratch = calloc(n, 4);
    uint8_t *base = calloc(r.n_pattern, 1), *pat = calloc(r.n_pattern, 1);
    assert_true(theta && g && bad && thetaf && gf && scratch && base && pat);
    draw_theta(theta, n, 0.5, 51);
    for (size_t i = 0; i < n; i++) thetaf[i] = (float)theta[i];
    l2l_rng rng0;
    l2l_rng_seed(&rng0, 6, 1);
    ref_draw(&r, &rng0);
    l2l_rng rng = rng0;
    task.loss_grad(task.ctx, thetaf, gf, &rng);
    for (size_t i = 0; i < n; i++) g[i] = gf[i];
    ref_loss_grad(&r, theta, NULL, base);
    float_ctx c = {&task, rng0, scratch, NULL, &r, pat};
    const double h = 0x1p-9, atol = 1.5e-7 / h, rtol = 1e-3;
    size_t skipped, where, big = 0;
    double worst;
    if (!float_fd_elements(&c, theta, g, h, atol, rtol, base, &skipped, &worst, &where))
        fail_msg("library gradient: theta[%zu] = %.8g fails FD of the float loss (excess %.3g)", where,
                 g[where], worst);
    printf("    float loss by FD, N = %zu: worst excess %.2e, %zu skipped at kinks\n", n, worst, skipped);
    assert_true(skipped <= n / 10);
    /* the whole vector along random directions (entries on a grid of 1/256 in [-1, 1]);
     * a smaller step, since every coordinate moves: 2^-11, atol 1.5e-7 / h */
    const double hd = 0x1p-11;
    double *d = calloc(n, 8);
    assert_non_null(d);
    l2l_rng drng;
    l2l_rng_seed(&drng, 52, 7);
    int dirs = 0, tries = 0;
    double dworst = -INFINITY;
    for (; dirs < 8 && tries < 64; tries++) {
        double gd = 0;
        for (size_t i = 0; i < n; i++) {
            d[i] = ((double)l2l_rng_below(&drng, 513) - 256) / 256;
            gd += g[i] * d[i];
        }
        int same = 1;
        const double fd = stencil(&c, theta, d, hd, base, &same);
        if (!same) continue;
        dirs++;
        const double tol = 1.5e-7 / hd + rtol * fabs(fd), excess = fabs(gd - fd) - tol;
        dworst = fmax(dworst, excess);
        if (excess > 0) fail_msg("library gradient along direction %d: g.d %.8g, FD of the float loss %.8g", dirs, gd, fd);
        /* and the same check fails on the gradient with its sign flipped */
        if (fabs(fd) > 2 * tol && fabs(-gd - fd) <= tol) fail_msg("direction %d passed a flipped gradient", dirs);
    }
    printf("    float loss along %d random directions (%d tried): worst excess %.2e\n", dirs, tries, dworst);
    assert_int_equal(dirs, 8);
    free(d);
    for (size_t i = 0; i < n; i++) big = fabs(g[i]) > fabs(g[big]) ? i : big;
    for (size_t i = 0; i < n; i++) bad[i] = -g[i];
    if (float_fd_elements(&c, theta, bad, h, atol, rtol, base, &skipped, &worst, &where))
        fail_msg("the float FD check passed a gradient of the wrong sign");
    memcpy(bad, g, n * sizeof *bad);
    bad[big] *= 2;
    if (float_fd_elements(&c, theta, bad, h, atol, rtol, base, &skipped, &worst, &where))
        fail_msg("the float FD check passed a gradient with element %zu doubled", big);
    free(theta), free(g), free(bad), free(thetaf), free(gf), free(scratch), free(base), free(pat);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

/*
 * The paper's network on 28x28 digits (3 blocks of 16 5x5 kernels: rows of 28 cut into
 * two tiles, pooling 28 -> 14 -> 7 -> 4 with a lone last row and column; fc 32; 10
 * classes), a minibatch of 4, against the reference on the same minibatch, and the
 * tensor table against the reference's layout. A finite difference of the float loss
 * cannot check this network sharply: at its initialisation a step that changes conv1's
 * kernels by 1% flips enough of the 1.6 million pooling and ReLU decisions (of a minibatch
 * of 32) to move the secant 10% from the derivative, and a step small enough to flip none
 * changes the loss by less than its float rounding (measured while writing this test);
 * the small networks above are where finite differences are sharp.
 */
static void test_paper_net(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 50, 1, 28, 28, 10, 24);
    l2l_conv_config cfg;
    l2l_conv_config_default(&cfg);
    cfg.batch = 4;
    expect_task_matches_reference(&cfg, &ds, 45);
    ref_net r = ref_of(&cfg, &ds);
    l2l_conv_tensor t[L2L_CONV_MAX_TENSORS];
    int nt;
    size_t kernels;
    l2l_error err = {0};
    assert_int_equal(l2l_conv_tensors(&cfg, &ds, t, &nt, &kernels, &err), L2L_STATUS_OK);
    assert_int_equal(nt, 14);
    const size_t want[14] = {r.kern[0], r.kern[1], r.kern[2], r.bias[0], r.shift[0], r.bias[1], r.shift[1],
                             r.bias[2], r.shift[2], r.wf, r.bf, r.sf, r.wo, r.bo};
    for (int k = 0; k < nt; k++) {
        assert_int_equal(t[k].offset, want[k]);
        assert_int_equal(t[k].offset + t[k].count, k + 1 < nt ? want[k + 1] : r.n);
        assert_int_equal(t[k].is_kernel, k < 3);
    }
    assert_int_equal(kernels, r.bias[0]);
    l2l_dataset_free(&ds);
}

/* The paper's network on a minibatch of 128: the loss and the gradient are the same bytes
 * on 1 thread and on 3 (the task created with 3, then run on 3 and on 1). */
static void test_threads_same_bytes(void **state)
{
    (void)state;
#ifdef _OPENMP
    const int before = omp_get_max_threads();
    l2l_dataset ds;
    make_images(&ds, 300, 1, 28, 28, 10, 25);
    l2l_conv_config cfg;
    l2l_conv_config_default(&cfg);
    l2l_task task;
    l2l_error err = {0};
    omp_set_num_threads(3);
    assert_int_equal(l2l_task_conv_create(&task, &cfg, &ds, &err), L2L_STATUS_OK);
    float *theta = malloc(task.n * sizeof *theta), *g3 = malloc(task.n * sizeof *g3),
          *g1 = malloc(task.n * sizeof *g1);
    assert_true(theta && g3 && g1);
    l2l_rng rng, r3, r1;
    l2l_rng_seed(&rng, 5, 0);
    task.sample(task.ctx, &rng, theta);
    r3 = rng, r1 = rng;
    const double f3 = task.loss_grad(task.ctx, theta, g3, &r3);
    omp_set_num_threads(1);
    const double f1 = task.loss_grad(task.ctx, theta, g1, &r1);
    omp_set_num_threads(before);
    assert_true(isfinite(f1));
    assert_memory_equal(&f1, &f3, sizeof f1);
    assert_memory_equal(g1, g3, task.n * sizeof *g1);
    printf("    %s, batch %d: loss %.6f and %zu gradient values, the same bytes on 1 and 3 threads\n",
           task.name, cfg.batch, f1, task.n);
    free(theta), free(g3), free(g1);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_layers_fd),
        cmocka_unit_test(test_kernels_match_reference),
        cmocka_unit_test(test_reference_net_fd),
        cmocka_unit_test(test_task_matches_reference),
        cmocka_unit_test(test_task_float_fd),
        cmocka_unit_test(test_paper_net),
        cmocka_unit_test(test_threads_same_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
