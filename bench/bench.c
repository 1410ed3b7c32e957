/* l2l-bench: throughput, FLOP rate and peak memory of meta-training and inference.
 *
 * Every measurement runs in a fresh child process (`l2l-bench --one KIND ...`, this
 * program re-executing itself through /proc/self/exe), so that its peak resident memory
 * (getrusage's ru_maxrss) belongs to that configuration alone and no allocator or
 * thread-pool state carries over between sizes. An exec, not a bare fork: the child
 * starts as any run of the program does, with its own heap and its own OpenMP and
 * OpenBLAS thread pools, not copies of the parent's (Linux carries ru_maxrss across an
 * exec, so the parent's few MB at the fork are included). The parent, which holds only
 * the result table, collects one result line per child and prints the table (and
 * optionally a CSV and a plot).
 *
 * What each kind measures: bench/measure.c. The LSTM is the paper's, 2 x 20, D = 2.
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
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "io/atomic.h"
#include "plot/plot.h"

#define EXIT_USAGE 2
#define MAX_LIST 32
#define MAX_RESULTS 256

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

/* A child's report to the parent (fields: bench.h), parsed by run_child. */
static void print_result(const bench_result *r)
{
    printf("RESULT %s %.0f %d %.9g %.9g %.6f %.1f %d %.3f\n", r->kind, r->n, r->threads, r->seconds,
           r->rate, r->task_frac, r->peak_mb, r->runs, r->cpu_util);
    fflush(stdout);
}

typedef struct {
    int repeat, quick, no_mnist, blas_threads, sgemm_size, conv;
    int n_threads, threads[MAX_LIST];
    int n_train, n_infer;
    double train_n[MAX_LIST], infer_n[MAX_LIST];
    const char *csv, *plot, *data;
    const char *one_kind; /* --one: this process is a child */
    double one_n;
} bench_opts;

static const char bench_help[] =
    "usage: l2l-bench [options]\n\n"
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
    "  --quick           a smoke run of a few seconds (small N, 2 repeats, no MNIST)\n"
    "  --conv            instead: one training step of the paper's conv net (batch 128 of the\n"
    "                    digits in --data) and its convolutions' FLOP rate beside the sgemm of\n"
    "                    the same BLAS, in this process, on the first of --threads; ends with a\n"
    "                    JSON line (bench/bench_conv.py puts PyTorch's step beside it)\n"
    "  --one KIND        one configuration (sgemm, train, infer, mnist) in this process, with\n"
    "                    --n N coordinates and the first of --threads: prints its RESULT line\n"
    "                    (kind n threads seconds rate task_frac peak_mb runs cpu)\n\n"
    "Columns: seconds per unit (an unroll of T steps, an inference step, an epoch, an sgemm);\n"
    "useful GFLOP/s and its share of the sgemm rate at the same thread count; the task's\n"
    "share of the time; peak resident memory of the process; cpu = CPU seconds per wall\n"
    "second over the timed runs (below the thread count: the cores were shared).\n";

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "l2l-bench: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(l2l-bench --help lists the options)\n");
    return EXIT_USAGE;
}

/* A comma-separated list of whole numbers in [lo, hi] ("1e3,1e4" is allowed). */
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

/* Runs `l2l-bench --one KIND ...` (this program, through /proc/self/exe) and parses its
 * RESULT line. */
static int run_child(const char *kind, double n, int threads, const bench_opts *o, bench_result *r)
{
    char ns[32], ts[16], rs[16], bs[16], ss[16];
    snprintf(ns, sizeof ns, "%.0f", n);
    snprintf(ts, sizeof ts, "%d", threads);
    snprintf(rs, sizeof rs, "%d", o->repeat);
    snprintf(bs, sizeof bs, "%d", o->blas_threads);
    snprintf(ss, sizeof ss, "%d", o->sgemm_size);
    char *argv[] = {"l2l-bench", "--one", (char *)kind, "--n", ns, "--threads", ts, "--repeat", rs,
                    "--blas-threads", bs, "--sgemm-size", ss, "--data", (char *)o->data, NULL};
    int fd[2];
    if (pipe(fd)) {
        fprintf(stderr, "l2l-bench: error: cannot create a pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "l2l-bench: error: cannot fork: %s\n", strerror(errno));
        close(fd[0]), close(fd[1]);
        return 1;
    }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        close(fd[1]);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "l2l-bench: error: cannot re-execute this program through /proc/self/exe: %s\n",
                strerror(errno));
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

/* --one: measures one configuration in this process and prints its RESULT line. */
static int one(const bench_opts *o)
{
    const bench_job job = {o->one_kind, o->one_n, o->threads[0], o->repeat, o->blas_threads,
                           o->sgemm_size, o->data};
    bench_result r;
    l2l_error err = {0};
    if (bench_measure(&job, &r, &err)) {
        fprintf(stderr, "l2l-bench: %s N=%.0f threads=%d: %s\n", job.kind, job.n, job.threads, err.msg);
        return 1;
    }
    print_result(&r);
    return 0;
}

static double sgemm_rate(const bench_result *res, int n_res, int threads)
{
    for (int i = 0; i < n_res; i++)
        if (!strcmp(res[i].kind, "sgemm") && res[i].threads == threads) return res[i].rate;
    return NAN;
}

/* Useful GFLOP/s of a result (sgemm: its own rate). */
static double useful_gflops(const bench_result *r, double f_train, double f_infer)
{
    if (!strcmp(r->kind, "sgemm")) return r->rate / 1e9;
    return r->rate * (!strcmp(r->kind, "infer") ? f_infer : f_train) / 1e9;
}

static l2l_status write_csv(const char *path, const bench_result *res, int n_res, double f_train,
                            double f_infer, l2l_error *err)
{
    l2l_atomic a;
    l2l_status st = l2l_atomic_open(&a, path, err);
    if (st) return st;
    FILE *f = a.f;
    fprintf(f, "kind,n,threads,seconds,coordinate_steps_per_s,useful_gflops,sgemm_gflops,"
               "fraction_of_sgemm,task_fraction,peak_rss_mb,runs,cpu_per_wall\n");
    for (int i = 0; i < n_res; i++) {
        const bench_result *r = &res[i];
        const double gf = useful_gflops(r, f_train, f_infer);
        const double sg = sgemm_rate(res, n_res, r->threads) / 1e9;
        fprintf(f, "%s,%.0f,%d,%.6g,%.6g,%.4g,%.4g,%.4f,%.4f,%.1f,%d,%.3f\n", r->kind, r->n, r->threads,
                r->seconds, !strcmp(r->kind, "sgemm") ? NAN : r->rate, gf, sg, gf / sg, r->task_frac,
                r->peak_mb, r->runs, r->cpu_util);
    }
    return l2l_atomic_commit(&a, err);
}

static int draw_plot(const char *path, const bench_result *res, int n_res, const bench_opts *o)
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
        fprintf(stderr, "l2l-bench: error: cannot draw %s: %s\n", path, err.msg);
        return 1;
    }
    return 0;
}

/* Fills o from the command line; returns 0, or EXIT_USAGE after printing why, or -1
 * after --help. */
static int parse_args(int argc, char **argv, bench_opts *o)
{
    enum { O_REPEAT = 256, O_THREADS, O_TRAIN_N, O_INFER_N, O_DATA, O_NO_MNIST, O_BLAS, O_SGEMM,
           O_CSV, O_PLOT, O_QUICK, O_ONE, O_N, O_CONV };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"repeat", required_argument, NULL, O_REPEAT},
        {"threads", required_argument, NULL, O_THREADS}, {"train-n", required_argument, NULL, O_TRAIN_N},
        {"infer-n", required_argument, NULL, O_INFER_N}, {"data", required_argument, NULL, O_DATA},
        {"no-mnist", no_argument, NULL, O_NO_MNIST}, {"blas-threads", required_argument, NULL, O_BLAS},
        {"sgemm-size", required_argument, NULL, O_SGEMM}, {"csv", required_argument, NULL, O_CSV},
        {"plot", required_argument, NULL, O_PLOT}, {"quick", no_argument, NULL, O_QUICK},
        {"one", required_argument, NULL, O_ONE}, {"n", required_argument, NULL, O_N},
        {"conv", no_argument, NULL, O_CONV}, {0, 0, 0, 0}};
    int has_repeat = 0, c, nn;
    double t[MAX_LIST];
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case 'h': fputs(bench_help, stdout); return -1;
        case O_QUICK: o->quick = 1; break;
        case O_CONV: o->conv = 1; break;
        case O_NO_MNIST: o->no_mnist = 1; break;
        case O_DATA: o->data = v; break;
        case O_CSV: o->csv = v; break;
        case O_PLOT: o->plot = v; break;
        case O_ONE:
            if (strcmp(v, "sgemm") && strcmp(v, "train") && strcmp(v, "infer") && strcmp(v, "mnist"))
                return usage("--one expects sgemm, train, infer or mnist, got '%s'", v);
            o->one_kind = v;
            break;
        case O_REPEAT:
            if (parse_int_arg(v, 1, 63, &o->repeat)) return usage("--repeat expects 1..63, got '%s'", v);
            has_repeat = 1;
            break;
        case O_THREADS:
            if (parse_list(v, t, &o->n_threads, 1, 1024))
                return usage("--threads expects a comma-separated list of counts 1..1024, got '%s'", v);
            for (int k = 0; k < o->n_threads; k++) o->threads[k] = (int)t[k];
            break;
        case O_TRAIN_N:
            if (parse_list(v, o->train_n, &o->n_train, 1, 1e9))
                return usage("--train-n expects a comma-separated list of counts 1..1e9 (e.g. 1e3,1e4), "
                             "got '%s'", v);
            break;
        case O_INFER_N:
            if (parse_list(v, o->infer_n, &o->n_infer, 1, 1e9))
                return usage("--infer-n expects a comma-separated list of counts 1..1e9 (e.g. 1e3,1e4), "
                             "got '%s'", v);
            break;
        case O_BLAS:
            if (parse_int_arg(v, 1, 1024, &o->blas_threads))
                return usage("--blas-threads expects 1..1024, got '%s'", v);
            break;
        case O_SGEMM:
            if (parse_int_arg(v, 16, 16384, &o->sgemm_size))
                return usage("--sgemm-size expects 16..16384, got '%s'", v);
            break;
        case O_N:
            if (parse_list(v, t, &nn, 1, 1e9) || nn != 1)
                return usage("--n expects one count 1..1e9, got '%s'", v);
            o->one_n = t[0];
            break;
        default: /* getopt_long has said what was wrong */
            fprintf(stderr, "(l2l-bench --help lists the options)\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) return usage("unexpected argument '%s'", argv[optind]);
    if (o->one_kind) return 0;
    if (o->quick) {
        if (!has_repeat) o->repeat = 2;
        o->no_mnist = 1;
        o->n_train = 2, o->train_n[0] = 1e3, o->train_n[1] = 1e4;
        o->n_infer = 2, o->infer_n[0] = 1e3, o->infer_n[1] = 1e5;
        o->sgemm_size = 1024;
    }
    if (o->plot) {
        const char *dot = strrchr(o->plot, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".svg")))
            return usage("--plot expects a file ending in .png or .svg, got '%s'", o->plot);
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = {.repeat = 5, .blas_threads = 1, .sgemm_size = 2048, .data = "data/mnist"};
    o.n_threads = 2, o.threads[0] = 1, o.threads[1] = 2;
    o.n_train = 4;
    for (int i = 0; i < 4; i++) o.train_n[i] = pow(10, 3 + i);
    o.n_infer = 5;
    for (int i = 0; i < 5; i++) o.infer_n[i] = pow(10, 3 + i);
    const int parsed = parse_args(argc, argv, &o);
    if (parsed) return parsed < 0 ? 0 : parsed;
    if (o.one_kind) return one(&o);
    if (o.conv) return bench_conv(o.data, o.threads[0], o.repeat, o.sgemm_size);
    if (!o.no_mnist) {
        char p1[4200], p2[4200];
        struct stat st;
        snprintf(p1, sizeof p1, "%s/train-images-idx3-ubyte", o.data);
        snprintf(p2, sizeof p2, "%s/train-images-idx3-ubyte.gz", o.data);
        if (stat(p1, &st) && stat(p2, &st)) {
            fprintf(stderr, "l2l-bench: error: no MNIST training images in '%s' (run `make data`, "
                            "pass --data DIR, or --no-mnist to skip the MNIST epoch)\n", o.data);
            return 1;
        }
    }

    const double f_train = flops_per_coordinate_step(BENCH_L, BENCH_H, 2, 1);
    const double f_infer = flops_per_coordinate_step(BENCH_L, BENCH_H, 2, 0);
    static bench_result res[MAX_RESULTS];
    int n_res = 0, failed = 0;
    printf("l2l-bench: LSTM %d x %d, log/sign inputs, unroll T = %d; useful FLOPs per coordinate-step: "
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
            bench_result *r = &res[n_res];
            if (run_child(jobs[j].kind, jobs[j].n, o.threads[ti], &o, r)) {
                fprintf(stderr, "l2l-bench: error: %s N=%.0f threads=%d failed (see above)\n",
                        jobs[j].kind, jobs[j].n, o.threads[ti]);
                failed = 1;
                continue;
            }
            n_res++;
            const int is_sgemm = !strcmp(r->kind, "sgemm");
            const double gf = useful_gflops(r, f_train, f_infer);
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
        fprintf(stderr, "l2l-bench: error: %s\n", err.msg);
        failed = 1;
    }
    if (o.plot && draw_plot(o.plot, res, n_res, &o)) failed = 1;
    return failed;
}
