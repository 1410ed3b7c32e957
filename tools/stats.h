/* Summaries of loss curves for eval and compare. A curve set is loss (runs, steps+1):
 * f(theta_t) of run r at step t is loss[r * (steps + 1) + t]. */
#ifndef L2L_TOOLS_STATS_H
#define L2L_TOOLS_STATS_H

#include <stdio.h>

#include "l2l.h"

/* Mean and sample standard deviation over the runs at step t (std NaN when the mean is
 * not finite: a run diverged). */
void stats_at(const double *loss, int runs, int steps, int t, double *mean, double *std);
/* The paired difference a - b at step t over the same problems: its mean and standard
 * error (the problems' own spread cancels). */
void stats_paired(const double *a, const double *b, int runs, int steps, int t, double *mean,
                  double *sem);
/* A curve's loss at the last step, and its paired difference to a reference curve's
 * (loss - ref) over the same problems: what compare's and pair's tables report. */
typedef struct {
    double mean, std, sem;  /* over the runs; sem = std / sqrt(runs) */
    double diff, diff_sem;  /* the paired difference and its standard error */
} stats_final;
stats_final stats_final_of(const double *loss, const double *ref, int runs, int steps);
/* One CSV row "NAME,step,mean,std" per step (without "NAME," when name is NULL). */
void stats_write_curve(FILE *f, const char *name, const double *loss, int runs, int steps);
/* One CSV row "NAME,run,initial,final" per run: its loss at steps 0 and the last. */
void stats_write_finals(FILE *f, const char *name, const double *loss, int runs, int steps);

/* How many runs diverged: a loss that is not finite (l2l_evaluate's +Inf) or above
 * L2L_DIVERGENCE_FACTOR times the run's starting loss. Their mean would be no result. */
int stats_diverged(const double *loss, int runs, int steps);

#endif
