/* One configuration of the benchmark, measured in this process (l2l-bench --one KIND).
 *
 * Kinds:
 *   sgemm  C = A B with 2048^3 floats through cblas_sgemm: the machine's matrix rate.
 *   train  one meta-training step: l2l_unroll_run (forward over T = 20 steps, BPTT
 *          with per-tile recompute) plus the meta-Adam update, on a synthetic task
 *          whose loss and gradient cost O(N) (its share of the time is reported).
 *   infer  l2l_lstm_step: applying a trained optimizer, no caches.
 *   mnist  seconds per MNIST meta-training epoch through l2l_meta_train (784-20-10
 *          sigmoid MLP, batch 128, 15,910 coordinates, 100 steps, unroll 20).
 * The LSTM is always the paper's: 2 layers of 20 units, log/sign preprocessing (D = 2).
 * Times are medians over the timed runs, after an untimed warm-up (none for the largest
 * training unrolls, whose one run is long enough). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "bench.h"
#include "lstm/lstm.h"
#include "optim/adam.h"

double bench_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void set_threads(int threads, int blas_threads)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(blas_threads);
}

/* A diagonal quadratic f = (1/N) sum_i a_i (theta_i - y_i)^2 / 2 whose optimizer-side
 * gradient is a_i (theta_i - y_i) (grad_scale 1/N): O(N) work, so the LSTM dominates.
 * It keeps the time it spends, to report the task's share. */
typedef struct {
    size_t n;
    float *a, *y;
    double seconds;
} synth;

static void synth_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    synth *s = ctx;
    for (size_t i = 0; i < s->n; i++) theta0[i] = (float)l2l_rng_normal(rng);
}

static double synth_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)rng;
    synth *s = ctx;
    const double t0 = bench_wall_seconds();
    double f = 0;
    for (size_t i = 0; i < s->n; i++) {
        float r = theta[i] - s->y[i];
        grad[i] = s->a[i] * r;
        f += (double)(grad[i] * r);
    }
    s->seconds += bench_wall_seconds() - t0;
    return 0.5 * f / (double)s->n;
}

/* Wraps a task's loss_grad to time it. */
typedef struct {
    l2l_task inner;
    double seconds;
} timed_task;

static double timed_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    timed_task *tt = ctx;
    const double t0 = bench_wall_seconds();
    double f = tt->inner.loss_grad(tt->inner.ctx, theta, grad, rng);
    tt->seconds += bench_wall_seconds() - t0;
    return f;
}

static void timed_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    timed_task *tt = ctx;
    tt->inner.sample(tt->inner.ctx, rng, theta0);
}

static l2l_status make_lstm(l2l_lstm *net, l2l_error *err)
{
    l2l_lstm_config cfg = {.layers = BENCH_L, .hidden = BENCH_H, .preproc = L2L_PREPROC_LOGSIGN, .p = 10.0f, .scale = 0.1f};
    l2l_status st = l2l_lstm_create(net, &cfg, err);
    if (st) return st;
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, L2L_STREAM_INIT);
    l2l_lstm_init(net, &rng);
    return L2L_STATUS_OK;
}

/* Repeats per configuration: at most `repeat`, fewer when one run is long, so that a
 * configuration costs about `budget` coordinate-steps; at least one. */
static int runs_for(int repeat, double work, double budget)
{
    int r = (int)(budget / work);
    return r < 1 ? 1 : r < repeat ? r : repeat;
}

static l2l_status measure_sgemm(int size, int repeat, bench_result *r, l2l_error *err)
{
    const size_t n = (size_t)size;
    float *a = malloc(n * n * sizeof(float)), *b = malloc(n * n * sizeof(float)),
          *c = malloc(n * n * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate three %dx%d matrices", size, size);
    }
    for (size_t i = 0; i < n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double t[64];
    const int runs = repeat < 64 ? repeat : 64;
    double wall = 0, cpu = 0;
    for (int k = -1; k < runs; k++) { /* k = -1: warm-up */
        const double t0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b,
                    size, 0.0f, c, size);
        if (k >= 0) t[k] = bench_wall_seconds() - t0, wall += t[k], cpu += bench_cpu_seconds() - c0;
    }
    r->cpu_util = cpu / wall;
    free(a), free(b), free(c);
    r->seconds = bench_median(t, runs);
    r->rate = 2.0 * n * n * n / r->seconds;
    r->runs = runs;
    return L2L_STATUS_OK;
}

static l2l_status measure_train(size_t N, int repeat, bench_result *r, l2l_error *err)
{
    l2l_lstm net;
    l2l_status st = make_lstm(&net, err);
    if (st) return st;
    synth s = {N, malloc(N * sizeof(float)), malloc(N * sizeof(float)), 0};
    float *theta = malloc(N * sizeof(float)), *theta0 = malloc(N * sizeof(float));
    float *dphi = calloc(net.n_params, sizeof(float)), *m = calloc(net.n_params, sizeof(float));
    float *v = calloc(net.n_params, sizeof(float));
    const l2l_unroll_config ucfg = {.T = BENCH_T, .objective = L2L_OBJECTIVE_SUM};
    l2l_unroll u = {0};
    l2l_lstm_state state = {0};
    if (!s.a || !s.y || !theta || !theta0 || !dphi || !m || !v) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the benchmark's buffers for N = %zu", N);
        goto done;
    }
    if ((st = l2l_unroll_create(&u, &net, N, NULL, &ucfg, err))) goto done;
    if ((st = l2l_lstm_state_create(&state, &net, N, NULL, err))) goto done;
    l2l_rng rng;
    l2l_rng_seed(&rng, 7, L2L_STREAM_TRAIN);
    for (size_t i = 0; i < N; i++) {
        s.a[i] = (float)(0.5 + 1.5 * l2l_rng_uniform(&rng));
        s.y[i] = (float)l2l_rng_normal(&rng);
        theta0[i] = (float)l2l_rng_normal(&rng);
    }
    l2l_task task = {.n = N, .grad_scale = 1.0f / (float)N, .ctx = &s, .sample = synth_sample,
                     .loss_grad = synth_loss_grad};
    const int runs = runs_for(repeat, (double)N * BENCH_T, 4e7);
    const int warm = (double)N * BENCH_T <= 2e7;
    double t[64], task_t[64], wall = 0, cpu = 0;
    for (int k = -warm; k < runs && k < 64; k++) {
        memcpy(theta, theta0, N * sizeof(float));
        l2l_lstm_state_zero(&state);
        memset(dphi, 0, net.n_params * sizeof(float));
        s.seconds = 0;
        const double t0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        if ((st = l2l_unroll_run(&u, &net, &task, theta, &state, NULL, &rng, dphi, NULL, err))) goto done;
        l2l_adam_update(net.n_params, net.phi, dphi, m, v, k + 2, 1e-3f, 0.9f, 0.999f, 1e-8f);
        if (k >= 0) {
            t[k] = bench_wall_seconds() - t0, task_t[k] = s.seconds / t[k];
            wall += t[k], cpu += bench_cpu_seconds() - c0;
        }
    }
    r->cpu_util = cpu / wall;
    r->runs = runs < 64 ? runs : 64;
    r->seconds = bench_median(t, r->runs);
    r->task_frac = bench_median(task_t, r->runs);
    r->rate = (double)N * BENCH_T / r->seconds;
done:
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&state);
    free(s.a), free(s.y), free(theta), free(theta0), free(dphi), free(m), free(v);
    l2l_lstm_free(&net);
    return st;
}

static l2l_status measure_infer(size_t N, int repeat, bench_result *r, l2l_error *err)
{
    l2l_lstm net;
    l2l_status st = make_lstm(&net, err);
    if (st) return st;
    float *grad = malloc(N * sizeof(float)), *update = malloc(N * sizeof(float));
    l2l_lstm_state state = {0};
    if (!grad || !update) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the benchmark's buffers for N = %zu", N);
        goto done;
    }
    if ((st = l2l_lstm_state_create(&state, &net, N, NULL, err))) goto done;
    l2l_lstm_state_zero(&state);
    l2l_rng rng;
    l2l_rng_seed(&rng, 7, L2L_STREAM_TRAIN);
    for (size_t i = 0; i < N; i++) grad[i] = (float)(1e-3 * l2l_rng_normal(&rng));
    /* Several steps per timed run, so a run is long enough to time at small N. */
    const int per_run = N >= 200000 ? 1 : (int)(200000 / N) + 1;
    const int runs = runs_for(repeat, (double)N * per_run, 3e7);
    double t[64], wall = 0, cpu = 0;
    for (int k = -1; k < runs && k < 64; k++) {
        const double t0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        for (int s = 0; s < per_run; s++) l2l_lstm_step(&net, &state, grad, update);
        if (k >= 0) {
            wall += bench_wall_seconds() - t0, cpu += bench_cpu_seconds() - c0;
            t[k] = (bench_wall_seconds() - t0) / per_run;
        }
    }
    r->cpu_util = cpu / wall;
    r->runs = runs < 64 ? runs : 64;
    r->seconds = bench_median(t, r->runs);
    r->rate = (double)N / r->seconds;
done:
    l2l_lstm_state_free(&state);
    free(grad), free(update);
    l2l_lstm_free(&net);
    return st;
}

typedef struct {
    double last, t[64];
    int n;
} epoch_times;

static int on_epoch(const l2l_train_progress *p, void *ctx)
{
    epoch_times *e = ctx;
    if (e->n < 64) e->t[e->n++] = p->seconds - e->last;
    e->last = p->seconds;
    return 0;
}

static l2l_status measure_mnist(const char *data, int repeat, bench_result *r, l2l_error *err)
{
    l2l_dataset ds;
    l2l_status st = l2l_mnist_load(&ds, data, "train", err);
    if (st) return st;
    l2l_mlp_config mc = {1, 20, L2L_ACTIVATION_SIGMOID, 128, 0.01f, 0};
    timed_task tt = {0};
    if ((st = l2l_task_mlp_create(&tt.inner, &mc, &ds, err))) {
        l2l_dataset_free(&ds);
        return st;
    }
    l2l_task task = tt.inner;
    task.ctx = &tt;
    task.loss_grad = timed_loss_grad;
    task.sample = timed_sample;
    task.destroy = NULL;
    l2l_lstm net;
    if ((st = make_lstm(&net, err))) goto done_task;
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    tc.epochs = 1 + (repeat < 63 ? repeat : 63); /* the first is a warm-up */
    tc.eval_every = 0;
    epoch_times e = {0};
    const double t0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
    if ((st = l2l_meta_train(&net, &task, &tc, on_epoch, &e, err))) goto done_net;
    const double total = bench_wall_seconds() - t0;
    r->cpu_util = (bench_cpu_seconds() - c0) / total;
    r->runs = e.n - 1;
    r->seconds = bench_median(e.t + 1, r->runs);
    r->rate = (double)task.n * tc.steps / r->seconds;
    r->task_frac = tt.seconds / total;
    r->n = (double)task.n;
done_net:
    l2l_lstm_free(&net);
done_task:
    l2l_task_free(&tt.inner);
    l2l_dataset_free(&ds);
    return st;
}

l2l_status bench_measure(const bench_job *job, bench_result *r, l2l_error *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->kind, sizeof r->kind, "%s", job->kind);
    r->n = job->n;
    r->threads = job->threads;
    const int is_sgemm = !strcmp(job->kind, "sgemm");
    set_threads(job->threads, is_sgemm ? job->threads : job->blas_threads);
    l2l_status st;
    if (is_sgemm) st = measure_sgemm(job->sgemm_size, job->repeat, r, err);
    else if (!strcmp(job->kind, "train")) st = measure_train((size_t)job->n, job->repeat, r, err);
    else if (!strcmp(job->kind, "infer")) st = measure_infer((size_t)job->n, job->repeat, r, err);
    else if (!strcmp(job->kind, "mnist")) st = measure_mnist(job->data, job->repeat, r, err);
    else
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown benchmark kind '%s' (sgemm, train, infer, mnist)",
                             job->kind);
    r->peak_mb = peak_rss_mb();
    return st;
}
