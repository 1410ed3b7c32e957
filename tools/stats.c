/* Summaries of loss curves (see stats.h). */
#include <math.h>

#include "stats.h"

static double at(const double *loss, int steps, int r, int t) { return loss[(size_t)r * (steps + 1) + t]; }

void stats_at(const double *loss, int runs, int steps, int t, double *mean, double *std)
{
    double s = 0, s2 = 0;
    for (int r = 0; r < runs; r++) s += at(loss, steps, r, t);
    *mean = s / runs;
    for (int r = 0; r < runs; r++) {
        double d = at(loss, steps, r, t) - *mean;
        s2 += d * d;
    }
    *std = runs > 1 ? sqrt(s2 / (runs - 1)) : 0;
    if (!isfinite(*mean)) *std = NAN;
}

void stats_paired(const double *a, const double *b, int runs, int steps, int t, double *mean,
                  double *sem)
{
    double s = 0, s2 = 0;
    for (int r = 0; r < runs; r++) s += at(a, steps, r, t) - at(b, steps, r, t);
    *mean = s / runs;
    for (int r = 0; r < runs; r++) {
        double d = at(a, steps, r, t) - at(b, steps, r, t) - *mean;
        s2 += d * d;
    }
    *sem = runs > 1 ? sqrt(s2 / (runs - 1) / runs) : 0;
    if (!isfinite(*mean)) *sem = NAN;
}

stats_final stats_final_of(const double *loss, const double *ref, int runs, int steps)
{
    stats_final f;
    stats_at(loss, runs, steps, steps, &f.mean, &f.std);
    stats_paired(loss, ref, runs, steps, steps, &f.diff, &f.diff_sem);
    f.sem = f.std / sqrt(runs);
    return f;
}

void stats_write_curve(FILE *f, const char *name, const double *loss, int runs, int steps)
{
    for (int t = 0; t <= steps; t++) {
        double m, s;
        stats_at(loss, runs, steps, t, &m, &s);
        if (name) fprintf(f, "%s,", name);
        fprintf(f, "%d,%.9g,%.9g\n", t, m, s);
    }
}

void stats_write_finals(FILE *f, const char *name, const double *loss, int runs, int steps)
{
    for (int r = 0; r < runs; r++)
        fprintf(f, "%s,%d,%.9g,%.9g\n", name, r, at(loss, steps, r, 0), at(loss, steps, r, steps));
}

int stats_diverged(const double *loss, int runs, int steps)
{
    int n = 0;
    for (int r = 0; r < runs; r++) {
        const double limit = L2L_DIVERGENCE_FACTOR * fabs(at(loss, steps, r, 0));
        int bad = 0;
        for (int t = 0; t <= steps && !bad; t++) bad = !isfinite(at(loss, steps, r, t)) || at(loss, steps, r, t) > limit;
        n += bad;
    }
    return n;
}
