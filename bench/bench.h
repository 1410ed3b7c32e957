/* The benchmark's two halves: bench/measure.c measures one configuration in the process
 * that calls it; bench/bench.c runs every configuration in a fresh child process and
 * prints the table. Not part of the library. */
#ifndef L2L_BENCH_H
#define L2L_BENCH_H

#include "l2l.h"

/* The paper's LSTM (L layers of H units, log/sign inputs) and unrolls of T steps. */
enum { BENCH_L = 2, BENCH_H = 20, BENCH_T = 20 };

/* One configuration: kind "sgemm", "train", "infer" or "mnist" (see measure.c). */
typedef struct {
    const char *kind;
    double n;          /* coordinates (train, infer) */
    int threads;       /* OpenMP threads (and OpenBLAS threads for sgemm) */
    int repeat;        /* timed runs, at most */
    int blas_threads;  /* OpenBLAS threads of the MNIST task */
    int sgemm_size;
    const char *data;  /* MNIST directory */
} bench_job;

/* What a child reports, one line:
 * "RESULT kind n threads seconds rate task_frac peak_mb runs cpu_util". */
typedef struct {
    char kind[16];
    double n;
    int threads;
    double seconds;   /* median seconds per unit (an unroll, a step, an epoch, an sgemm) */
    double rate;      /* coordinate-steps per second (sgemm: FLOP/s) */
    double task_frac; /* share of the time spent in the optimizee's loss and gradient */
    double peak_mb;   /* peak resident memory of the process */
    int runs;
    double cpu_util;  /* CPU seconds / wall seconds over the timed runs (ideal: threads) */
} bench_result;

/* Sets the thread counts, runs the job and fills r. An unknown kind is L2L_STATUS_ARG. */
l2l_status bench_measure(const bench_job *job, bench_result *r, l2l_error *err);

/* l2l-bench --conv (bench/conv.c): the conv net's training step on MNIST from data, its
 * convolutions' FLOP rate and the BLAS's sgemm beside it; prints a table and a JSON line.
 * Returns the exit status. */
int bench_conv(const char *data, int threads, int repeat, int sgemm_size);

/* Timing, for measure.c and conv.c: wall-clock seconds (monotonic), CPU seconds of all
 * this process's threads (user + system), and the median of v[0..n) (sorts v). */
double bench_wall_seconds(void);
double bench_cpu_seconds(void);
double bench_median(double *v, int n);

#endif
