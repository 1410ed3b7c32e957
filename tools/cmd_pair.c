/* l2l pair: pairs the optimizers of several comparisons' finals.csv files on their common
 * test problems. A comparison writes every test problem's starting and final loss; two
 * comparisons with the same task flags, seed and runs drew the same problems, so their
 * optimizers can be paired afterwards without evaluating any of them again. The starting
 * losses (the same bytes for every optimizer on one problem) check that the problems are
 * the same; the paired differences are compare's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "io/atomic.h"
#include "plot/csv.h"
#include "stats.h"

enum { MAX_FILES = 8, MAX_ROWS = MAX_FILES * CSV_MAX_SERIES };

/* One optimizer of one file: its name as printed and its final losses (runs, a curve of
 * 0 steps for stats.h). */
typedef struct {
    char name[160];
    const double *final;
} row;

static const opt_command pair_cmd = {
    "pair",
    "usage: l2l pair DIR/finals.csv [DIR2/finals.csv ...] [options]\n"
    "Pairs the optimizers of one or more comparisons ('l2l compare' writes DIR/finals.csv)\n"
    "on their test problems: the final loss of each, mean +- standard error, and its\n"
    "paired difference to the reference optimizer (the first, or --against). Comparisons\n"
    "with the same task flags, --seed and --runs test on the same problems; each problem's\n"
    "starting loss, which every optimizer shares, is checked to be the same in every file.\n",
    "A name found in more than one file is shown as DIR/NAME. Example, a new optimizer\n"
    "against baselines tuned and tested earlier:\n"
    "  l2l compare --task conv --seed 7 --baselines none --optimizer new.safetensors --out new\n"
    "  l2l pair old/finals.csv new/finals.csv --against new/lstm\n",
    MAX_FILES};

/* "DIR" of "DIR/finals.csv"; the path itself when it has no directory. */
static void dir_of(const char *path, char *buf, size_t n)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, n, "%.*s", slash ? (int)(slash - path) : (int)strlen(path), path);
}

/* The final losses of file (one curve per optimizer, x the run), checked: every optimizer
 * has runs 0, 1, ... in order, as many as the first file's. */
static l2l_status check_runs(const csv_plot *p, int *runs, l2l_error *err)
{
    for (int i = 0; i < p->n_curves; i++) {
        const curve_buf *c = &p->curve[i];
        for (int r = 0; r < c->n; r++)
            if (c->x[r] != r)
                return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: optimizer '%s' has run %g where run %d "
                                     "was expected (rows of one optimizer, runs 0, 1, ... in order)",
                                     p->path, c->name, c->x[r], r);
        if (*runs < 0) *runs = c->n;
        if (c->n != *runs)
            return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: optimizer '%s' has %d runs, expected %d as "
                                 "in the first file's", p->path, c->name, c->n, *runs);
    }
    return L2L_STATUS_OK;
}

/* s at the end of buf (size bytes), as much of it as fits. */
static void append(char *buf, size_t size, const char *s)
{
    const size_t len = strlen(buf), k = strlen(s) < size - 1 - len ? strlen(s) : size - 1 - len;
    memcpy(buf + len, s, k);
    buf[len + k] = 0;
}

/* Whether the header names a column. */
static int has_column(const csv_plot *p, const char *name)
{
    for (int i = 0; i < p->n_cols; i++)
        if (strcmp(p->header[i], name) == 0) return 1;
    return 0;
}

static void print_table(const row *rows, int n, int ref, int runs)
{
    int w = 9;
    for (int i = 0; i < n; i++)
        if ((int)strlen(rows[i].name) > w) w = (int)strlen(rows[i].name);
    printf("%-*s %12s %12s %12s   minus %s (paired)\n", w, "optimizer", "final mean", "std", "std err",
           rows[ref].name);
    for (int i = 0; i < n; i++) {
        const stats_final f = stats_final_of(rows[i].final, rows[ref].final, runs, 0);
        char diff[64] = "";
        if (i != ref) snprintf(diff, sizeof diff, "%+.4g +- %.2g", f.diff, f.diff_sem);
        printf("%-*s %12.5g %12.5g %12.5g   %s\n", w, rows[i].name, f.mean, f.std, f.sem, diff);
    }
    printf("(final loss, mean over %d test problems)\n", runs);
}

static l2l_status write_summary(const char *path, const row *rows, int n, int ref, int runs, l2l_error *err)
{
    l2l_atomic af;
    l2l_status st = l2l_atomic_open(&af, path, err);
    if (st) return st;
    fprintf(af.f, "optimizer,final_mean,final_std,final_sem,runs,minus_ref_mean,minus_ref_sem\n");
    for (int i = 0; i < n; i++) {
        const stats_final f = stats_final_of(rows[i].final, rows[ref].final, runs, 0);
        fprintf(af.f, "%s,%.9g,%.9g,%.9g,%d,%.9g,%.9g\n", rows[i].name, f.mean, f.std, f.sem, runs, f.diff,
                f.diff_sem);
    }
    return l2l_atomic_commit(&af, err);
}

tool_result cmd_pair(int argc, char **argv)
{
    const char *against = NULL, *out = NULL;
    opt_desc own[] = {
        {"against", OPT_STRING, &against, .arg = "NAME",
         .help = "the reference optimizer, as the table names it (default: the\nfirst file's first)"},
        {"out", OPT_PATH, &out, .arg = "FILE", .expect = "a file name",
         .help = "also write the table as CSV (optimizer,final_mean,final_std,\n"
                 "final_sem,runs,minus_ref_mean,minus_ref_sem)"},
        {NULL},
    };
    opt_group groups[] = {{NULL, own}, {NULL, NULL}};
    char *args[MAX_FILES];
    int nf = 0;
    tool_result r = opts_parse(&pair_cmd, groups, argc, argv, args, &nf);
    if (r != TOOL_OK) return r;
    if (nf < 1) return tool_usage("pair", "expects one or more finals.csv files");

    static csv_plot finals[MAX_FILES], initials[MAX_FILES]; /* large: not on the stack */
    memset(finals, 0, sizeof finals), memset(initials, 0, sizeof initials);
    static row rows[MAX_ROWS];
    l2l_error err = {0};
    l2l_status st = L2L_STATUS_OK;
    int runs = -1, n = 0, checked = -1; /* checked: the first file with starting losses */
    for (int k = 0; k < nf && !st; k++) {
        st = csv_plot_read(&finals[k], args[k], "run", "final", "optimizer", NULL, &err);
        if (st == L2L_STATUS_FORMAT && finals[k].header &&
            !(has_column(&finals[k], "optimizer") && has_column(&finals[k], "run") &&
              has_column(&finals[k], "final")))
            st = l2l_error_set(&err, L2L_STATUS_FORMAT, "%s is not a finals.csv of l2l compare: it needs the "
                               "columns optimizer, run and final", args[k]);
        if (st || (st = check_runs(&finals[k], &runs, &err))) break;
        if (!has_column(&finals[k], "initial")) {
            fprintf(stderr, "l2l pair: note: %s has no 'initial' column (written before l2l compare "
                    "recorded starting losses); that its test problems are the others' is not checked\n",
                    args[k]);
            continue;
        }
        if ((st = csv_plot_read(&initials[k], args[k], "run", "initial", "optimizer", NULL, &err))) break;
        if (checked < 0) {
            checked = k;
            continue;
        }
        const double *a = initials[checked].curve[0].y, *b = initials[k].curve[0].y;
        for (int j = 0; j < runs && !st; j++)
            if (a[j] != b[j])
                st = l2l_error_set(&err, L2L_STATUS_ARG, "%s and %s were not run on the same test problems: "
                                   "run %d starts at %.9g in one and %.9g in the other (compare them with "
                                   "the same task flags, --seed and --runs)", args[checked], args[k], j,
                                   a[j], b[j]);
    }
    for (int k = 0; k < nf && !st; k++)
        for (int i = 0; i < finals[k].n_curves; i++) {
            const char *name = finals[k].curve[i].name;
            int elsewhere = 0;
            for (int j = 0; j < nf; j++) {
                if (j == k) continue;
                for (int q = 0; q < finals[j].n_curves; q++)
                    elsewhere |= strcmp(finals[j].curve[q].name, name) == 0;
            }
            char dir[128] = "";
            if (elsewhere) dir_of(args[k], dir, sizeof dir);
            snprintf(rows[n].name, sizeof rows[n].name, "%s%s%s", dir, elsewhere ? "/" : "", name);
            rows[n++].final = finals[k].curve[i].y;
        }
    int ref = 0;
    if (!st && against) {
        for (ref = 0; ref < n && strcmp(rows[ref].name, against) != 0; ref++) {}
        if (ref == n) {
            char names[sizeof err.msg] = "";
            for (int i = 0; i < n; i++) {
                if (i) append(names, sizeof names, ", ");
                append(names, sizeof names, rows[i].name);
            }
            st = l2l_error_set(&err, L2L_STATUS_ARG, "--against %s: no such optimizer; the files hold %s",
                               against, names);
        }
    }
    if (!st) print_table(rows, n, ref, runs);
    if (!st && out) st = write_summary(out, rows, n, ref, runs, &err);
    for (int k = 0; k < nf; k++) csv_plot_free(&finals[k]), csv_plot_free(&initials[k]);
    return st ? tool_fail("pair", &err) : TOOL_OK;
}
