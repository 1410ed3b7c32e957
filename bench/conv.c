/*
 * l2l-bench --conv: one training step of the paper's conv net (forward + backward of the
 * conv task's loss_grad: minibatch draw, 3 x [conv 5x5 x 16, batch norm, ReLU, pool],
 * fc 32, batch norm, ReLU, logits, cross-entropy; batch 128 of 28x28 digits), with
 *   - the step's median wall and CPU time over the timed runs (after warm-up);
 *   - each convolution kernel on the step's shapes (forward, weight gradient, input
 *     gradient) timed alone, its useful FLOP rate (2 per multiply-add of the definition,
 *     zero padding not counted), and the convolution layers' rate together;
 *   - the same BLAS's sgemm at the shapes an im2col + sgemm convolution would multiply
 *     (forward (F, B h w, C k²), weight gradient (F, C k², B h w), input gradient
 *     (C, B h w, F k²)), and square (S x S), as the reference rates;
 *   - batch norm + ReLU + pooling, forward and backward, timed alone.
 * Prints a table and, last, one JSON line (bench/bench_conv.py reads it to put PyTorch's
 * step beside it). Threads: OpenMP's, --threads (the convolutions), with the BLAS on one
 * thread for the step's small fc products, as in l2l's tools (one pool); the reference
 * sgemm runs on --threads of the BLAS's.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench.h"
#include "tasks/conv.h"
#include "util/util.h"

enum { MAX_RUNS = 64 };

/* What one timed thing does, called `runs` times after two untimed warm-ups. */
typedef void (*timed_fn)(void *ctx);

static double time_median(timed_fn fn, void *ctx, int runs)
{
    double t[MAX_RUNS];
    for (int k = -2; k < runs; k++) {
        const double t0 = bench_wall_seconds();
        fn(ctx);
        if (k >= 0) t[k] = bench_wall_seconds() - t0;
    }
    return bench_median(t, runs);
}

typedef struct {
    const conv_geom *g;
    float *x, *wpack, *wtpack, *z, *dz, *dw, *dx, *scratch, *zmax, *mean, *inv, *out, *beta, *dbeta;
    int32_t *arg;
    int which; /* backward: 0 dW only, 1 dW and dX */
    int n_scratch;
} layer_bufs;

static void run_forward(void *p)
{
    layer_bufs *b = p;
    conv_forward(b->g, b->x, b->wpack, b->z);
}

static void run_backward(void *p)
{
    layer_bufs *b = p;
    conv_backward(b->g, b->x, b->wtpack, b->dz, b->dw, b->which ? b->dx : NULL, b->scratch, b->n_scratch);
}

static void run_bn_forward(void *p)
{
    layer_bufs *b = p;
    conv_bn_pool_forward(b->g, b->z, b->beta, b->zmax, b->arg, b->mean, b->inv, b->out, b->g->p);
}

static void run_bn_backward(void *p)
{
    layer_bufs *b = p;
    conv_bn_pool_backward(b->g, b->z, b->zmax, b->arg, b->mean, b->inv, b->dz, b->dx, b->dbeta);
}

typedef struct {
    int M, N, K, trans_b;
    float *a, *b, *c;
} gemm_job;

static void run_gemm(void *p)
{
    gemm_job *j = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, j->trans_b ? CblasTrans : CblasNoTrans, j->M, j->N, j->K,
                1.0f, j->a, j->K, j->b, j->trans_b ? j->K : j->N, 0.0f, j->c, j->N);
}

/* The BLAS's threads for the reference sgemm: --threads (the step's fc products run on one,
 * as in l2l's tools: one pool, OpenMP's). */
static int sgemm_threads = 1;

/* sgemm C (M, N) = A (M, K) B (K, N) (or B^T (N, K)^T): seconds, median of runs. */
static double time_sgemm(int M, int N, int K, int trans_b, int runs)
{
    gemm_job j = {M, N, K, trans_b, malloc((size_t)M * K * 4), malloc((size_t)K * N * 4), malloc((size_t)M * N * 4)};
    if (!j.a || !j.b || !j.c) {
        free(j.a), free(j.b), free(j.c);
        return NAN;
    }
    for (size_t i = 0; i < (size_t)M * K; i++) j.a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) j.b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(sgemm_threads);
    const double s = time_median(run_gemm, &j, runs);
    openblas_set_num_threads(1);
    free(j.a), free(j.b), free(j.c);
    return s;
}

static void fill(float *v, size_t n, l2l_rng *rng, double scale)
{
    for (size_t i = 0; i < n; i++) v[i] = (float)(scale * l2l_rng_normal(rng));
}

typedef struct {
    l2l_task *task;
    const float *theta;
    float *grad;
    l2l_rng rng;
} step_ctx;

static void run_step(void *p)
{
    step_ctx *s = p;
    s->task->loss_grad(s->task->ctx, s->theta, s->grad, &s->rng);
}

int bench_conv(const char *data, int threads, int repeat, int sgemm_size)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(1);
    sgemm_threads = threads;
    const int runs = repeat < 3 ? 3 : repeat > MAX_RUNS ? MAX_RUNS : repeat;
    l2l_dataset ds;
    l2l_error err = {0};
    if (l2l_mnist_load(&ds, data, "train", &err)) {
        fprintf(stderr, "l2l-bench --conv: %s\n", err.msg);
        return 1;
    }
    l2l_conv_config cfg;
    l2l_conv_config_default(&cfg);
    l2l_task task;
    if (l2l_task_conv_create(&task, &cfg, &ds, &err)) {
        fprintf(stderr, "l2l-bench --conv: %s\n", err.msg);
        l2l_dataset_free(&ds);
        return 1;
    }
    float *theta = malloc(task.n * sizeof *theta), *grad = malloc(task.n * sizeof *grad);
    if (!theta || !grad) {
        fprintf(stderr, "l2l-bench --conv: out of memory\n");
        return 1;
    }
    step_ctx sc = {&task, theta, grad, {{0}}};
    l2l_rng_seed(&sc.rng, 1, L2L_STREAM_TEST);
    task.sample(task.ctx, &sc.rng, theta);
    for (int k = 0; k < 3; k++) run_step(&sc);
    double t[MAX_RUNS], c[MAX_RUNS];
    for (int k = 0; k < runs; k++) {
        const double t0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        run_step(&sc);
        t[k] = bench_wall_seconds() - t0, c[k] = bench_cpu_seconds() - c0;
    }
    const double step = bench_median(t, runs), step_cpu = bench_median(c, runs), step_min = t[0];
    const double q1 = t[runs / 4], q3 = t[(3 * runs) / 4];

    /* the convolution kernels alone, on the step's shapes */
    printf("l2l-bench --conv: %s, %zu coordinates, minibatch %d, %d OpenMP thread%s (BLAS: 1 in the step)\n",
           task.name, task.n, cfg.batch, threads, threads == 1 ? "" : "s");
    printf("%-8s %-14s %10s %10s %9s %28s %9s %8s\n", "layer", "kernel", "ms", "MFLOP", "GFLOP/s",
           "sgemm shape", "sgemm ms", "GFLOP/s");
    l2l_rng rng;
    l2l_rng_seed(&rng, 2, 0);
    double conv_flops = 0, conv_seconds = 0, sgemm_flops = 0, sgemm_seconds = 0, bn_seconds = 0;
    int h = ds.rows, w = ds.cols, C = ds.channels;
    for (int l = 0; l < cfg.conv_layers; l++) {
        conv_geom g;
        conv_geom_init(&g, cfg.batch, C, cfg.channels, cfg.kernel, h, w);
        const size_t pix = (size_t)g.B * h * w, pooled = (size_t)g.B * g.ph * g.pw * g.Fp;
        layer_bufs b = {.g = &g};
        b.x = l2l_alloc((size_t)g.B * C * g.hp * g.wp * 4), b.wpack = l2l_alloc(conv_wpack_floats(&g) * 4);
        b.wtpack = l2l_alloc(conv_wtpack_floats(&g) * 4), b.z = l2l_alloc(pix * g.Fp * 4);
        b.dz = l2l_alloc(pix * g.Fp * 4), b.dw = l2l_alloc(conv_wpack_floats(&g) * 4);
        b.dx = l2l_alloc(pix * (g.Cp > g.Fp ? g.Cp : g.Fp) * 4);
        b.n_scratch = max_threads();
        b.scratch = l2l_alloc((size_t)b.n_scratch * conv_scratch_floats(&g) * 4), b.zmax = l2l_alloc(pooled * 4);
        b.arg = l2l_alloc(pooled * sizeof(int32_t)), b.mean = l2l_alloc(g.Fp * 4), b.inv = l2l_alloc(g.Fp * 4);
        b.out = l2l_alloc((size_t)g.B * g.F * (g.ph + 2 * g.p) * (g.pw + 2 * g.p) * 4);
        b.beta = l2l_alloc(g.Fp * 4), b.dbeta = l2l_alloc(g.Fp * 4);
        float *kern = l2l_alloc((size_t)g.F * C * g.k * g.k * 4);
        if (!b.x || !b.wpack || !b.wtpack || !b.z || !b.dz || !b.dw || !b.dx || !b.scratch || !b.zmax ||
            !b.arg || !b.mean || !b.inv || !b.out || !b.beta || !b.dbeta || !kern) {
            fprintf(stderr, "l2l-bench --conv: out of memory\n");
            return 1;
        }
        for (int n = 0; n < g.B; n++)
            for (int ch = 0; ch < C; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        b.x[(((size_t)n * C + ch) * g.hp + y + g.p) * g.wp + x + g.p] = (float)l2l_rng_uniform(&rng);
        fill(kern, (size_t)g.F * C * g.k * g.k, &rng, 0.1);
        fill(b.dz, pix * g.Fp, &rng, 1e-3);
        conv_pack(&g, kern, b.wpack, b.wtpack);
        const double mac = (double)pix * g.F * C * g.k * g.k, flops = 2 * mac; /* one product */
        const char *names[3] = {"forward", "dW", "dW + dX"};
        for (int kind = 0; kind < 2; kind++) {
            b.which = l > 0;
            const double s = time_median(kind == 0 ? run_forward : run_backward, &b, runs);
            const double f = kind == 0 ? flops : flops * (l > 0 ? 2 : 1);
            conv_flops += f, conv_seconds += s;
            /* the im2col products of the same work: forward (F, P, C k²); backward the
             * weight gradient (F, C k², P) and, for l > 0, the input gradient (C, P, F k²) */
            const int P = (int)pix, K = C * g.k * g.k, Kf = g.F * g.k * g.k;
            double gs = kind == 0 ? time_sgemm(g.F, P, K, 0, runs) : time_sgemm(g.F, K, P, 1, runs);
            char shape[64];
            snprintf(shape, sizeof shape, "%dx%dx%d", g.F, kind == 0 ? P : K, kind == 0 ? K : P);
            if (kind == 1 && l > 0) {
                gs += time_sgemm(C, P, Kf, 0, runs);
                const size_t len = strlen(shape);
                snprintf(shape + len, sizeof shape - len, "+%dx%dx%d", C, P, Kf);
            }
            sgemm_flops += f, sgemm_seconds += gs;
            printf("conv%-4d %-14s %10.3f %10.1f %9.1f %28s %9.3f %8.1f\n", l + 1, names[kind == 0 ? 0 : l > 0 ? 2 : 1],
                   1e3 * s, f / 1e6, f / s / 1e9, shape, 1e3 * gs, f / gs / 1e9);
        }
        const double bf = time_median(run_bn_forward, &b, runs), bb = time_median(run_bn_backward, &b, runs);
        bn_seconds += bf + bb;
        printf("bn%-6d %-14s %10.3f\n", l + 1, "bn-relu-pool", 1e3 * bf);
        printf("bn%-6d %-14s %10.3f\n", l + 1, "its backward", 1e3 * bb);
        void *bufs[] = {b.x, b.wpack, b.wtpack, b.z, b.dz, b.dw, b.dx, b.scratch, b.zmax,
                        b.arg, b.mean, b.inv, b.out, b.beta, b.dbeta, kern};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) l2l_free(bufs[i]);
        h = g.ph, w = g.pw, C = g.F;
    }
    const double sq = time_sgemm(sgemm_size, sgemm_size, sgemm_size, 0, runs < 5 ? runs : 5);
    const double sq_rate = 2.0 * sgemm_size * (double)sgemm_size * sgemm_size / sq;
    printf("\nstep (loss_grad, minibatch drawn): median %.3f ms (quartiles %.3f, %.3f; fastest %.3f; "
           "CPU %.3f ms) over %d runs\n", 1e3 * step, 1e3 * q1, 1e3 * q3, 1e3 * step_min, 1e3 * step_cpu, runs);
    printf("convolutions: %.1f MFLOP in %.3f ms = %.1f GFLOP/s, %.0f%% of the step; batch norm, ReLU, "
           "pooling %.3f ms\n", conv_flops / 1e6, 1e3 * conv_seconds, conv_flops / conv_seconds / 1e9,
           100 * conv_seconds / step, 1e3 * bn_seconds);
    printf("sgemm of the same BLAS: %.1f GFLOP/s at the im2col shapes above (%.3f ms for the same "
           "FLOPs), %.1f GFLOP/s square %d; convolutions at %.0f%% and %.0f%% of those\n",
           sgemm_flops / sgemm_seconds / 1e9, 1e3 * sgemm_seconds, sq_rate / 1e9, sgemm_size,
           100 * (conv_flops / conv_seconds) / (sgemm_flops / sgemm_seconds),
           100 * (conv_flops / conv_seconds) / sq_rate);
    printf("{\"task\": \"conv-step\", \"impl\": \"l2l\", \"threads\": %d, \"batch\": %d, \"params\": %zu, "
           "\"seconds_median\": %.6g, \"seconds_q1\": %.6g, \"seconds_q3\": %.6g, \"seconds_min\": %.6g, "
           "\"cpu_seconds_median\": %.6g, \"conv_gflops\": %.4g, \"conv_seconds\": %.6g, "
           "\"sgemm_im2col_gflops\": %.4g, \"sgemm_square_gflops\": %.4g, \"sgemm_size\": %d, \"repeat\": %d}\n",
           threads, cfg.batch, task.n, step, q1, q3, step_min, step_cpu, conv_flops / conv_seconds / 1e9,
           conv_seconds, sgemm_flops / sgemm_seconds / 1e9, sq_rate / 1e9, sgemm_size, runs);
    free(theta), free(grad);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
    return 0;
}
