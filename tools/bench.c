/* l2l bench: throughput, FLOP rate and peak memory of meta-training and inference.
 *
 * Every measurement runs in a fresh child process (`l2l bench --one KIND ...`, this
 * program re-executing itself), so that its peak resident memory (getrusage's
 * ru_maxrss) belongs to that configuration alone and no allocator or thread-pool state
 * carries over between sizes. The parent collects one result line per child and prints
 * the table (and optionally a CSV and a plot).
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
 *
 * Useful FLOPs per coordinate-step (flops_per_coordinate_step below), counting the
 * multiply-adds of the matrix products as 2 FLOPs and nothing for the elementwise gate
 * arithmetic and activations (so the rates below are conservative), and NOT counting
 * the forward that the backward pass recomputes (that is overhead, not useful work).
 * Layer l has in_l inputs (D for l = 0, H above) and 4H gates:
 *   forward   gates = W_ih x + W_hh h          2 * 4H * (in_l + H)
 *             output w_out . h_top             2 * H
 *   backward  dW_ih += da x^T, dW_hh += da h^T 2 * 4H * (in_l + H)
 *             dh_prev = W_hh^T da              2 * 4H * H
 *             dx = W_ih^T da (l > 0 only)      2 * 4H * in_l
 *             dw_out, dh_top                   2 * H + 2 * H
 * For H = 20, D = 2: forward 3,520 + 6,400 + 40 = 9,960; backward 6,720 + 12,800 + 80
 * = 19,600; training 29,560 FLOPs per coordinate-step, inference 9,960. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "atomic.h"
#include "bench.h"
#include "l2l.h"
#include "plot.h"

#define EXIT_USAGE 2
#define MAX_LIST 32
#define MAX_RESULTS 256

enum { BENCH_H = 20, BENCH_L = 2, BENCH_T = 20 };

static double now_seconds(void)
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

/* CPU seconds of all this process's threads, user + system. */
static double cpu_seconds(void)
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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* See the header comment. */
static double flops_per_coordinate_step(int L, int H, int D, int training)
{
    double fwd = 0, bwd = 0;
    for (int l = 0; l < L; l++) {
        const int in = l == 0 ? D : H;
        fwd += 2.0 * 4 * H * (in + H);
        bwd += 2.0 * 4 * H * (in + H) + 2.0 * 4 * H * H + (l > 0 ? 2.0 * 4 * H * in : 0);
    }
    const int top = L > 0 ? H : D;
    fwd += 2.0 * top;
    bwd += 4.0 * top;
    return training ? fwd + bwd : fwd;
}

static void set_threads(int threads, int blas_threads)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(blas_threads);
}

/* ------------------------------------------------------------ child: one result */

/* What a child reports, one line:
 * "RESULT kind n threads seconds rate task_frac peak_mb runs cpu_util". */
typedef struct {
    char kind[16];
    double n;
    int threads;
    double seconds;   /* median seconds per unit (an unroll, a step, an epoch, an sgemm) */
    double rate;      /* coordinate-steps per second (sgemm: FLOP/s) */
    double task_frac; /* share of the time spent in the optimizee's loss and gradient */
    double peak_mb;
    int runs;
    double cpu_util;  /* CPU seconds / wall seconds over the timed runs (ideal: threads) */
} result;

static void print_result(const result *r)
{
    printf("RESULT %s %.0f %d %.9g %.9g %.6f %.1f %d %.3f\n", r->kind, r->n, r->threads, r->seconds,
           r->rate, r->task_frac, r->peak_mb, r->runs, r->cpu_util);
    fflush(stdout);
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
    const double t0 = now_seconds();
    double f = 0;
    for (size_t i = 0; i < s->n; i++) {
        float r = theta[i] - s->y[i];
        grad[i] = s->a[i] * r;
        f += (double)(grad[i] * r);
    }
    s->seconds += now_seconds() - t0;
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
    const double t0 = now_seconds();
    double f = tt->inner.loss_grad(tt->inner.ctx, theta, grad, rng);
    tt->seconds += now_seconds() - t0;
    return f;
}

static void timed_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    timed_task *tt = ctx;
    tt->inner.sample(tt->inner.ctx, rng, theta0);
}

static l2l_status make_lstm(l2l_lstm *net, l2l_error *err)
{
    l2l_lstm_config cfg = {BENCH_L, BENCH_H, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f};
    l2l_status st = l2l_lstm_create(net, &cfg, err);
    if (st) return st;
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, L2L_STREAM_INIT);
    l2l_lstm_init(net, &rng);
    return L2L_OK;
}

/* Repeats per configuration: at most `repeat`, fewer when one run is long, so that a
 * configuration costs about `budget` coordinate-steps; at least one. */
static int runs_for(int repeat, double work, double budget)
{
    int r = (int)(budget / work);
    return r < 1 ? 1 : r < repeat ? r : repeat;
}

static int child_sgemm(int threads, int size, int repeat, result *r, l2l_error *err)
{
    const size_t n = (size_t)size;
    float *a = malloc(n * n * sizeof(float)), *b = malloc(n * n * sizeof(float)),
          *c = malloc(n * n * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate three %dx%d matrices", size, size);
        return 1;
    }
    for (size_t i = 0; i < n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double t[64];
    const int runs = repeat < 64 ? repeat : 64;
    double wall = 0, cpu = 0;
    for (int k = -1; k < runs; k++) { /* k = -1: warm-up */
        const double t0 = now_seconds(), c0 = cpu_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b,
                    size, 0.0f, c, size);
        if (k >= 0) t[k] = now_seconds() - t0, wall += t[k], cpu += cpu_seconds() - c0;
    }
    r->cpu_util = cpu / wall;
    free(a), free(b), free(c);
    r->seconds = median(t, runs);
    r->rate = 2.0 * n * n * n / r->seconds;
    r->runs = runs;
    (void)threads;
    return 0;
}

static int child_train(size_t N, int repeat, result *r, l2l_error *err)
{
    l2l_lstm net;
    if (make_lstm(&net, err)) return 1;
    synth s = {N, malloc(N * sizeof(float)), malloc(N * sizeof(float)), 0};
    float *theta = malloc(N * sizeof(float)), *theta0 = malloc(N * sizeof(float));
    float *dphi = calloc(net.n_params, sizeof(float)), *m = calloc(net.n_params, sizeof(float));
    float *v = calloc(net.n_params, sizeof(float));
    l2l_unroll *u = NULL;
    l2l_lstm_state state = {0};
    int rc = 1;
    if (!s.a || !s.y || !theta || !theta0 || !dphi || !m || !v) {
        l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate the benchmark's buffers for N = %zu", N);
        goto done;
    }
    if (l2l_unroll_create(&u, &net, N, BENCH_T, err)) goto done;
    if (l2l_lstm_state_create(&state, &net, N, err)) goto done;
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
        const double t0 = now_seconds(), c0 = cpu_seconds();
        if (l2l_unroll_run(u, &net, &task, theta, &state, NULL, &rng, dphi, NULL, err)) goto done;
        l2l_adam_update(net.n_params, net.phi, dphi, m, v, k + 2, 1e-3f, 0.9f, 0.999f, 1e-8f);
        if (k >= 0) {
            t[k] = now_seconds() - t0, task_t[k] = s.seconds / t[k];
            wall += t[k], cpu += cpu_seconds() - c0;
        }
    }
    r->cpu_util = cpu / wall;
    r->runs = runs < 64 ? runs : 64;
    r->seconds = median(t, r->runs);
    r->task_frac = median(task_t, r->runs);
    r->rate = (double)N * BENCH_T / r->seconds;
    rc = 0;
done:
    l2l_unroll_free(u);
    l2l_lstm_state_free(&state);
    free(s.a), free(s.y), free(theta), free(theta0), free(dphi), free(m), free(v);
    l2l_lstm_free(&net);
    return rc;
}

static int child_infer(size_t N, int repeat, result *r, l2l_error *err)
{
    l2l_lstm net;
    if (make_lstm(&net, err)) return 1;
    float *grad = malloc(N * sizeof(float)), *update = malloc(N * sizeof(float));
    l2l_lstm_state state = {0};
    int rc = 1;
    if (!grad || !update) {
        l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate the benchmark's buffers for N = %zu", N);
        goto done;
    }
    if (l2l_lstm_state_create(&state, &net, N, err)) goto done;
    l2l_lstm_state_zero(&state);
    l2l_rng rng;
    l2l_rng_seed(&rng, 7, L2L_STREAM_TRAIN);
    for (size_t i = 0; i < N; i++) grad[i] = (float)(1e-3 * l2l_rng_normal(&rng));
    /* Several steps per timed run, so a run is long enough to time at small N. */
    const int per_run = N >= 200000 ? 1 : (int)(200000 / N) + 1;
    const int runs = runs_for(repeat, (double)N * per_run, 3e7);
    double t[64], wall = 0, cpu = 0;
    for (int k = -1; k < runs && k < 64; k++) {
        const double t0 = now_seconds(), c0 = cpu_seconds();
        for (int s = 0; s < per_run; s++) l2l_lstm_step(&net, &state, grad, update);
        if (k >= 0) {
            wall += now_seconds() - t0, cpu += cpu_seconds() - c0;
            t[k] = (now_seconds() - t0) / per_run;
        }
    }
    r->cpu_util = cpu / wall;
    r->runs = runs < 64 ? runs : 64;
    r->seconds = median(t, r->runs);
    r->rate = (double)N / r->seconds;
    rc = 0;
done:
    l2l_lstm_state_free(&state);
    free(grad), free(update);
    l2l_lstm_free(&net);
    return rc;
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

static int child_mnist(const char *data, int repeat, result *r, l2l_error *err)
{
    l2l_dataset ds;
    if (l2l_mnist_load(&ds, data, "train", err)) return 1;
    l2l_mlp_config mc = {1, 20, L2L_ACTIVATION_SIGMOID, 128, 0.01f, 0};
    timed_task tt = {0};
    if (l2l_task_mlp_create(&tt.inner, &mc, &ds, err)) {
        l2l_dataset_free(&ds);
        return 1;
    }
    l2l_task task = tt.inner;
    task.ctx = &tt;
    task.loss_grad = timed_loss_grad;
    task.sample = timed_sample;
    task.destroy = NULL;
    l2l_lstm net;
    int rc = 1;
    if (make_lstm(&net, err)) goto done_task;
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    tc.epochs = 1 + (repeat < 63 ? repeat : 63); /* the first is a warm-up */
    tc.eval_every = 0;
    epoch_times e = {0};
    const double t0 = now_seconds(), c0 = cpu_seconds();
    if (l2l_meta_train(&net, &task, &tc, on_epoch, &e, err)) goto done_net;
    const double total = now_seconds() - t0;
    r->cpu_util = (cpu_seconds() - c0) / total;
    r->runs = e.n - 1;
    r->seconds = median(e.t + 1, r->runs);
    r->rate = (double)task.n * tc.steps / r->seconds;
    r->task_frac = tt.seconds / total;
    r->n = (double)task.n;
    rc = 0;
done_net:
    l2l_lstm_free(&net);
done_task:
    l2l_task_free(&tt.inner);
    l2l_dataset_free(&ds);
    return rc;
}

/* ------------------------------------------------------------ parent: the table */

typedef struct {
    int repeat, quick, no_mnist, blas_threads, sgemm_size;
    int n_threads, threads[MAX_LIST];
    int n_train, n_infer;
    double train_n[MAX_LIST], infer_n[MAX_LIST];
    const char *csv, *plot, *data;
} bench_opts;

static const char bench_help[] =
    "usage: l2l bench [options]\n\n"
    "Measures meta-training and inference throughput of the learned optimizer (2 layers x 20\n"
    "units, log/sign inputs), seconds per MNIST meta-training epoch, peak memory, and each\n"
    "kernel's useful FLOP rate as a fraction of the machine's sgemm rate. Every configuration\n"
    "runs in a fresh process; times are medians of several runs.\n\n"
    "  --repeat R        timed runs per configuration (default 5; fewer for the largest N)\n"
    "  --threads LIST    thread counts, comma-separated (default 1,2)\n"
    "  --train-n LIST    coordinates for meta-training (default 1e3,1e4,1e5,1e6)\n"
    "  --infer-n LIST    coordinates for inference (default 1e3,1e4,1e5,1e6,1e7)\n"
    "  --data DIR        MNIST directory (default data/mnist; `make data` fetches it)\n"
    "  --no-mnist        skip the MNIST epoch\n"
    "  --blas-threads K  OpenBLAS threads in the MNIST task (default 1: its small sgemm\n"
    "                    runs between LSTM steps and a second pool only contends for cores)\n"
    "  --sgemm-size S    size of the square sgemm that sets the machine's rate (default 2048)\n"
    "  --csv FILE        also write every result as CSV\n"
    "  --plot FILE       also draw throughput against N (.png or .svg)\n"
    "  --quick           a smoke run of a few seconds (small N, 2 repeats, no MNIST)\n\n"
    "Columns: seconds per unit (an unroll of T steps, an inference step, an epoch, an sgemm);\n"
    "useful GFLOP/s and its share of the sgemm rate at the same thread count; the task's\n"
    "share of the time; peak resident memory of the process; cpu = CPU seconds per wall\n"
    "second over the timed runs (below the thread count: the cores were shared).\n";

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "l2l bench: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(l2l bench --help lists the options)\n");
    return EXIT_USAGE;
}

static int parse_list(const char *s, double *out, int *n, double lo, double hi)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        errno = 0;
        double v = strtod(tok, &end);
        if (errno || end == tok || *end || !(v >= lo && v <= hi) || v != floor(v) || *n >= MAX_LIST)
            return 1;
        out[(*n)++] = v;
    }
    return *n == 0;
}

static int parse_int_arg(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 1;
    *out = (int)v;
    return 0;
}

/* Runs `self bench --one KIND ...` and parses its RESULT line. */
static int run_child(const char *self, const char *kind, double n, int threads, const bench_opts *o,
                     result *r)
{
    char ns[32], ts[16], rs[16], bs[16], ss[16];
    snprintf(ns, sizeof ns, "%.0f", n);
    snprintf(ts, sizeof ts, "%d", threads);
    snprintf(rs, sizeof rs, "%d", o->repeat);
    snprintf(bs, sizeof bs, "%d", o->blas_threads);
    snprintf(ss, sizeof ss, "%d", o->sgemm_size);
    char *argv[] = {(char *)self, "bench", "--one", (char *)kind, "--n", ns, "--threads", ts,
                    "--repeat", rs, "--blas-threads", bs, "--sgemm-size", ss,
                    "--data", (char *)o->data, NULL};
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        close(fd[1]);
        execv(self, argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (!found && sscanf(line, "RESULT %15s %lf %d %lf %lf %lf %lf %d %lf", r->kind, &r->n, &r->threads,
                             &r->seconds, &r->rate, &r->task_frac, &r->peak_mb, &r->runs, &r->cpu_util) == 9)
            found = 1;
    if (f) fclose(f);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !found) return 1;
    return 0;
}

static int one(const char *kind, double n, int threads, const bench_opts *o)
{
    l2l_error err = {0};
    result r = {0};
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    r.n = n;
    r.threads = threads;
    int blas = strcmp(kind, "sgemm") == 0 ? threads : o->blas_threads;
    set_threads(threads, blas);
    int rc;
    if (!strcmp(kind, "sgemm")) rc = child_sgemm(threads, o->sgemm_size, o->repeat, &r, &err);
    else if (!strcmp(kind, "train")) rc = child_train((size_t)n, o->repeat, &r, &err);
    else if (!strcmp(kind, "infer")) rc = child_infer((size_t)n, o->repeat, &r, &err);
    else if (!strcmp(kind, "mnist")) rc = child_mnist(o->data, o->repeat, &r, &err);
    else return usage("unknown benchmark kind '%s' (sgemm, train, infer, mnist)", kind);
    if (rc) {
        fprintf(stderr, "l2l bench: %s N=%.0f threads=%d: %s\n", kind, n, threads, err.msg);
        return 1;
    }
    r.peak_mb = peak_rss_mb();
    print_result(&r);
    return 0;
}

static double sgemm_rate(const result *res, int n_res, int threads)
{
    for (int i = 0; i < n_res; i++)
        if (!strcmp(res[i].kind, "sgemm") && res[i].threads == threads) return res[i].rate;
    return NAN;
}

static l2l_status write_csv(const char *path, const result *res, int n_res, double f_train,
                            double f_infer, l2l_error *err)
{
    l2l_atomic a;
    l2l_status st = l2l_atomic_open(&a, path, err);
    if (st) return st;
    FILE *f = a.f;
    fprintf(f, "kind,n,threads,seconds,coordinate_steps_per_s,useful_gflops,sgemm_gflops,"
               "fraction_of_sgemm,task_fraction,peak_rss_mb,runs,cpu_per_wall\n");
    for (int i = 0; i < n_res; i++) {
        const result *r = &res[i];
        const int is_sgemm = !strcmp(r->kind, "sgemm");
        const double fl = !strcmp(r->kind, "infer") ? f_infer : f_train;
        const double gf = is_sgemm ? r->rate / 1e9 : r->rate * fl / 1e9;
        const double sg = sgemm_rate(res, n_res, r->threads) / 1e9;
        fprintf(f, "%s,%.0f,%d,%.6g,%.6g,%.4g,%.4g,%.4f,%.4f,%.1f,%d,%.3f\n", r->kind, r->n, r->threads,
                r->seconds, is_sgemm ? NAN : r->rate, gf, sg, gf / sg, r->task_frac, r->peak_mb, r->runs,
                r->cpu_util);
    }
    return l2l_atomic_commit(&a, err);
}

static int draw_plot(const char *path, const result *res, int n_res, const bench_opts *o)
{
    static double x[8][MAX_LIST], y[8][MAX_LIST];
    static char labels[8][48];
    l2l_series s[8];
    int ns = 0;
    const char *kinds[] = {"train", "infer"};
    for (int k = 0; k < 2; k++)
        for (int ti = 0; ti < o->n_threads && ns < 8; ti++) {
            int c = 0;
            for (int i = 0; i < n_res && c < MAX_LIST; i++)
                if (!strcmp(res[i].kind, kinds[k]) && res[i].threads == o->threads[ti]) {
                    x[ns][c] = log10(res[i].n);
                    y[ns][c] = res[i].rate / 1e6;
                    c++;
                }
            if (!c) continue;
            snprintf(labels[ns], sizeof labels[ns], "%s, %d thread%s",
                     k == 0 ? "meta-training" : "inference", o->threads[ti], o->threads[ti] == 1 ? "" : "s");
            s[ns] = (l2l_series){labels[ns], c, x[ns], y[ns], NULL};
            ns++;
        }
    if (!ns) return 0;
    l2l_error err = {0};
    if (l2l_plot_lines(path, "l2l throughput (LSTM 2x20, log/sign inputs)", "log10 N (coordinates)",
                       "million coordinate-steps per second", 1, s, ns, &err)) {
        fprintf(stderr, "l2l bench: error: cannot draw %s: %s\n", path, err.msg);
        return 1;
    }
    return 0;
}

int l2l_cmd_bench(int argc, char **argv)
{
    bench_opts o = {.repeat = 5, .blas_threads = 1, .sgemm_size = 2048, .data = "data/mnist"};
    o.n_threads = 2, o.threads[0] = 1, o.threads[1] = 2;
    o.n_train = 4;
    for (int i = 0; i < 4; i++) o.train_n[i] = pow(10, 3 + i);
    o.n_infer = 5;
    for (int i = 0; i < 5; i++) o.infer_n[i] = pow(10, 3 + i);
    const char *one_kind = NULL;
    double one_n = 0;
    int one_threads = 1, has_repeat = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDS_VALUE                                                    \
    do {                                                               \
        if (!v) return usage("option '%s' needs a value", a);          \
        i++;                                                           \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(bench_help, stdout);
            return 0;
        } else if (!strcmp(a, "--quick")) {
            o.quick = 1;
        } else if (!strcmp(a, "--no-mnist")) {
            o.no_mnist = 1;
        } else if (!strcmp(a, "--repeat")) {
            NEEDS_VALUE;
            if (parse_int_arg(v, 1, 63, &o.repeat)) return usage("--repeat expects 1..63, got '%s'", v);
            has_repeat = 1;
        } else if (!strcmp(a, "--threads")) {
            NEEDS_VALUE;
            double t[MAX_LIST];
            if (parse_list(v, t, &o.n_threads, 1, 1024))
                return usage("--threads expects a comma-separated list of counts 1..1024, got '%s'", v);
            for (int k = 0; k < o.n_threads; k++) o.threads[k] = (int)t[k];
            one_threads = o.threads[0];
        } else if (!strcmp(a, "--train-n") || !strcmp(a, "--infer-n")) {
            NEEDS_VALUE;
            int tr = !strcmp(a, "--train-n");
            if (parse_list(v, tr ? o.train_n : o.infer_n, tr ? &o.n_train : &o.n_infer, 1, 1e9))
                return usage("expected a comma-separated list of coordinate counts 1..1e9 (e.g. 1e3,1e4), got '%s'", v);
        } else if (!strcmp(a, "--blas-threads")) {
            NEEDS_VALUE;
            if (parse_int_arg(v, 1, 1024, &o.blas_threads)) return usage("--blas-threads expects 1..1024, got '%s'", v);
        } else if (!strcmp(a, "--sgemm-size")) {
            NEEDS_VALUE;
            if (parse_int_arg(v, 16, 16384, &o.sgemm_size)) return usage("--sgemm-size expects 16..16384, got '%s'", v);
        } else if (!strcmp(a, "--data")) {
            NEEDS_VALUE;
            o.data = v;
        } else if (!strcmp(a, "--csv")) {
            NEEDS_VALUE;
            o.csv = v;
        } else if (!strcmp(a, "--plot")) {
            NEEDS_VALUE;
            o.plot = v;
        } else if (!strcmp(a, "--one")) { /* internal: one configuration in this process */
            NEEDS_VALUE;
            one_kind = v;
        } else if (!strcmp(a, "--n")) {
            NEEDS_VALUE;
            double t[1];
            int nn;
            if (parse_list(v, t, &nn, 1, 1e9) || nn != 1) return usage("--n expects one count 1..1e9, got '%s'", v);
            one_n = t[0];
        } else {
            return usage("unknown option '%s'", a);
        }
#undef NEEDS_VALUE
    }
    if (one_kind) return one(one_kind, one_n, one_threads, &o);

    if (o.quick) {
        if (!has_repeat) o.repeat = 2;
        o.no_mnist = 1;
        o.n_train = 2, o.train_n[0] = 1e3, o.train_n[1] = 1e4;
        o.n_infer = 2, o.infer_n[0] = 1e3, o.infer_n[1] = 1e5;
        o.sgemm_size = 1024;
    }
    if (o.plot) {
        const char *dot = strrchr(o.plot, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".svg")))
            return usage("--plot expects a file ending in .png or .svg, got '%s'", o.plot);
    }
    if (!o.no_mnist) {
        char p1[4200], p2[4200];
        struct stat st;
        snprintf(p1, sizeof p1, "%s/train-images-idx3-ubyte", o.data);
        snprintf(p2, sizeof p2, "%s/train-images-idx3-ubyte.gz", o.data);
        if (stat(p1, &st) && stat(p2, &st)) {
            fprintf(stderr, "l2l bench: error: no MNIST training images in '%s' (run `make data`, "
                            "pass --data DIR, or --no-mnist to skip the MNIST epoch)\n", o.data);
            return 1;
        }
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        fprintf(stderr, "l2l bench: error: cannot find this program's path (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    self[len] = 0;

    const double f_train = flops_per_coordinate_step(BENCH_L, BENCH_H, 2, 1);
    const double f_infer = flops_per_coordinate_step(BENCH_L, BENCH_H, 2, 0);
    static result res[MAX_RESULTS];
    int n_res = 0, failed = 0;
    printf("l2l bench: LSTM %d x %d, log/sign inputs, unroll T = %d; useful FLOPs per coordinate-step: "
           "training %.0f, inference %.0f\n", BENCH_L, BENCH_H, BENCH_T, f_train, f_infer);
    printf("%-6s %10s %3s %12s %11s %9s %8s %7s %7s %8s %5s %4s\n", "kind", "N", "thr", "seconds",
           "Mcoord-st/s", "ns/coord", "GFLOP/s", "%sgemm", "task %", "peak MB", "cpu", "runs");
    typedef struct {
        const char *kind;
        double n;
    } job;
    job jobs[2 * MAX_LIST + 2];
    int n_jobs = 0;
    jobs[n_jobs++] = (job){"sgemm", o.sgemm_size};
    for (int i = 0; i < o.n_train; i++) jobs[n_jobs++] = (job){"train", o.train_n[i]};
    for (int i = 0; i < o.n_infer; i++) jobs[n_jobs++] = (job){"infer", o.infer_n[i]};
    if (!o.no_mnist) jobs[n_jobs++] = (job){"mnist", 15910};
    for (int j = 0; j < n_jobs; j++)
        for (int ti = 0; ti < o.n_threads && n_res < MAX_RESULTS; ti++) {
            result *r = &res[n_res];
            if (run_child(self, jobs[j].kind, jobs[j].n, o.threads[ti], &o, r)) {
                fprintf(stderr, "l2l bench: error: %s N=%.0f threads=%d failed (see above)\n",
                        jobs[j].kind, jobs[j].n, o.threads[ti]);
                failed = 1;
                continue;
            }
            n_res++;
            const int is_sgemm = !strcmp(r->kind, "sgemm");
            const double fl = !strcmp(r->kind, "infer") ? f_infer : f_train;
            const double gf = is_sgemm ? r->rate / 1e9 : r->rate * fl / 1e9;
            const double sg = sgemm_rate(res, n_res, r->threads) / 1e9;
            printf("%-6s %10.0f %3d %12.6g %11.4g %9.4g %8.2f %7.1f %7.1f %8.1f %5.2f %4d\n", r->kind, r->n,
                   r->threads, r->seconds, is_sgemm ? NAN : r->rate / 1e6, is_sgemm ? NAN : 1e9 / r->rate,
                   gf, 100 * gf / sg, is_sgemm ? NAN : 100 * r->task_frac, r->peak_mb, r->cpu_util, r->runs);
            fflush(stdout);
        }
    /* Scaling: the speed-up of the largest thread count over one thread, per configuration. */
    if (o.n_threads > 1) {
        printf("\nthread scaling (%d threads / 1 thread, coordinate-steps per second):\n",
               o.threads[o.n_threads - 1]);
        for (int i = 0; i < n_res; i++) {
            if (res[i].threads != 1) continue;
            for (int k = 0; k < n_res; k++)
                if (res[k].threads == o.threads[o.n_threads - 1] && !strcmp(res[k].kind, res[i].kind) &&
                    res[k].n == res[i].n)
                    printf("  %-6s N = %-10.0f %.2fx\n", res[i].kind, res[i].n, res[k].rate / res[i].rate);
        }
    }
    l2l_error err = {0};
    if (o.csv && write_csv(o.csv, res, n_res, f_train, f_infer, &err)) {
        fprintf(stderr, "l2l bench: error: %s\n", err.msg);
        failed = 1;
    }
    if (o.plot && draw_plot(o.plot, res, n_res, &o)) failed = 1;
    return failed;
}
