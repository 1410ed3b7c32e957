/* l2l compare: tunes the hand-written baselines, evaluates them and one or more learned
 * optimizers on the same fresh test problems, and writes the curves, a summary table and
 * a figure. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "family.h"
#include "io/atomic.h"
#include "paths.h"
#include "plot/plot.h"
#include "stats.h"

/* One optimizer's results: its name, spec (the tuned lr) and loss (runs, steps+1). */
typedef struct {
    char name[64];
    l2l_opt_spec spec;
    double *loss;
} curve;

/* --also A.safetensors,B.safetensors: more learned optimizers. */
enum { MAX_ALSO = 16, MAX_CURVES = 1 + MAX_ALSO + 2 * L2L_OPT_KIND_LSTM };

typedef struct {
    int n;
    char path[MAX_ALSO][1024];
} also_list;

static int parse_also(const char *s, void *dest)
{
    also_list *a = dest;
    a->n = 0;
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= sizeof a->path[0] || a->n == MAX_ALSO) return -1;
        memcpy(a->path[a->n], p, len);
        a->path[a->n++][len] = 0;
        if (!end) return 0;
        p = end + 1;
    }
}

/* A curve's name for a checkpoint: its file name without the directory and .safetensors. */
static void checkpoint_name(const char *path, char *name, size_t n)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t len = strlen(base);
    if (len > 12 && strcmp(base + len - 12, ".safetensors") == 0) len -= 12;
    snprintf(name, n, "%.*s", (int)len, base);
}

/* --baselines nag,adam:0.01: hand-written optimizers in the order given, each tuned, or
 * at the learning rate after its colon; no two alike. */
enum { MAX_BASELINES = 2 * L2L_OPT_KIND_LSTM };

typedef struct {
    int n;
    l2l_opt_kind kind[MAX_BASELINES];
    float lr[MAX_BASELINES]; /* 0: tuned */
} baselines;

static int parse_baselines(const char *s, void *dest)
{
    baselines *b = dest;
    b->n = 0;
    if (strcmp(s, "none") == 0) return 0;
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[48];
        int kind = -1;
        double lr = 0;
        if (len < sizeof name) {
            memcpy(name, p, len);
            name[len] = 0;
            char *colon = strchr(name, ':'), *rest = NULL;
            if (colon) {
                *colon = 0;
                lr = strtod(colon + 1, &rest);
            }
            kind = l2l_opt_kind_parse(name);
            if (colon && (rest == colon + 1 || *rest || !((float)lr > 0) || !isfinite((float)lr)))
                kind = -1; /* the learning rate must be a positive float */
        }
        for (int i = 0; i < b->n && kind >= 0; i++)
            if (b->kind[i] == (l2l_opt_kind)kind && b->lr[i] == (float)lr) kind = -1;
        if (kind < 0 || b->n == MAX_BASELINES) return -1;
        b->kind[b->n] = (l2l_opt_kind)kind;
        b->lr[b->n++] = (float)lr;
        if (!end) return 0;
        p = end + 1;
    }
}

static l2l_status write_figure(const char *dir, const curve *c, int nc, int runs, int steps,
                               const char *title, l2l_error *err)
{
    l2l_series series[MAX_CURVES];
    double *x = malloc(sizeof(double) * (steps + 1)), *ys = malloc(sizeof(double) * nc * (steps + 1));
    if (!x || !ys) {
        free(x), free(ys);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "out of memory");
    }
    for (int t = 0; t <= steps; t++) x[t] = t;
    for (int i = 0; i < nc; i++) {
        for (int t = 0; t <= steps; t++) {
            double s;
            stats_at(c[i].loss, runs, steps, t, &ys[(size_t)i * (steps + 1) + t], &s);
        }
        series[i] = (l2l_series){c[i].name, steps + 1, x, ys + (size_t)i * (steps + 1), NULL};
    }
    char path[4096];
    l2l_status st = L2L_STATUS_OK;
    static const char *const exts[] = {"png", "svg"};
    for (int k = 0; k < 2 && !st; k++) {
        snprintf(path, sizeof path, "%s/loss.%s", dir, exts[k]);
        st = l2l_plot_lines(path, title, "step", "loss (mean over test problems)", 1, series, nc, err);
    }
    free(x), free(ys);
    return st;
}

/* c's learning rate as it reads back, or `none` for a learned optimizer (it has none). */
static void lr_text(const curve *c, const char *none, char *buf, size_t size)
{
    snprintf(buf, size, "%s", none);
    if (c->spec.kind != L2L_OPT_KIND_LSTM) opts_format_float(c->spec.lr, buf, size);
}

/* DIR/curves.csv, DIR/summary.csv, DIR/finals.csv and the figure DIR/loss.{png,svg};
 * c[0] is the learned optimizer that the paired differences are taken against.
 * finals.csv holds every test problem's starting and final loss, so that two comparisons
 * with the same task flags, seed and runs (the same test problems, which the starting
 * losses check) can be paired afterwards (l2l pair). */
static l2l_status write_compare(const char *dir, const curve *c, int nc, int runs, int steps,
                                const char *title, l2l_error *err)
{
    char path[4096];
    l2l_atomic af;
    snprintf(path, sizeof path, "%s/curves.csv", dir);
    l2l_status st = l2l_atomic_open(&af, path, err);
    if (st) return st;
    fprintf(af.f, "optimizer,step,mean,std\n");
    for (int i = 0; i < nc; i++) stats_write_curve(af.f, c[i].name, c[i].loss, runs, steps);
    if ((st = l2l_atomic_commit(&af, err))) return st;

    snprintf(path, sizeof path, "%s/summary.csv", dir);
    if ((st = l2l_atomic_open(&af, path, err))) return st;
    fprintf(af.f, "optimizer,lr,final_mean,final_std,final_sem,runs,minus_lstm_mean,minus_lstm_sem\n");
    for (int i = 0; i < nc; i++) {
        const stats_final f = stats_final_of(c[i].loss, c[0].loss, runs, steps);
        char lr[32];
        lr_text(&c[i], "", lr, sizeof lr);
        fprintf(af.f, "%s,%s,", c[i].name, lr);
        fprintf(af.f, "%.9g,%.9g,%.9g,%d,%.9g,%.9g\n", f.mean, f.std, f.sem, runs, f.diff, f.diff_sem);
    }
    if ((st = l2l_atomic_commit(&af, err))) return st;

    snprintf(path, sizeof path, "%s/finals.csv", dir);
    if ((st = l2l_atomic_open(&af, path, err))) return st;
    fprintf(af.f, "optimizer,run,initial,final\n");
    for (int i = 0; i < nc; i++) stats_write_finals(af.f, c[i].name, c[i].loss, runs, steps);
    if ((st = l2l_atomic_commit(&af, err))) return st;
    return write_figure(dir, c, nc, runs, steps, title, err);
}

static void print_table(const curve *c, int nc, int runs, int steps, const char *task_name, double secs)
{
    int w = 9, wl = 9; /* the names' and the learning rates' columns */
    char lr[32];
    for (int i = 0; i < nc; i++) {
        lr_text(&c[i], "-", lr, sizeof lr);
        if ((int)strlen(c[i].name) > w) w = (int)strlen(c[i].name);
        if ((int)strlen(lr) > wl) wl = (int)strlen(lr);
    }
    printf("%-*s %-*s %12s %12s %12s   minus %s (paired)\n", w, "optimizer", wl, "lr", "final mean",
           "std", "std err", c[0].name);
    for (int i = 0; i < nc; i++) {
        const stats_final f = stats_final_of(c[i].loss, c[0].loss, runs, steps);
        char diff[64] = "";
        lr_text(&c[i], "-", lr, sizeof lr);
        if (i > 0) snprintf(diff, sizeof diff, "%+.4g +- %.2g", f.diff, f.diff_sem);
        printf("%-*s %-*s %12.5g %12.5g %12.5g   %s\n", w, c[i].name, wl, lr, f.mean, f.std, f.sem,
               diff);
    }
    printf("(loss at step %d, mean over %d test problems; %s; %.1f s)\n", steps, runs, task_name, secs);
}

static const opt_command compare_cmd = {
    "compare",
    "usage: l2l compare --optimizer FILE --out DIR [options]\n"
    "Tunes the baselines (by default the paper's: SGD, NAG, RMSprop and Adam) on validation\n"
    "problems, evaluates them and the learned optimizers on the same R fresh test problems,\n"
    "and writes DIR/curves.csv (optimizer,step,mean,std), DIR/summary.csv\n"
    "(optimizer,lr,final_mean,final_std,...), DIR/finals.csv (optimizer,run,initial,final:\n"
    "every test problem's first and last loss; the same flags and seed give the same test\n"
    "problems, which 'l2l pair' pairs across comparisons) and DIR/loss.png (and .svg);\n"
    "prints the summary as a table.\n",
    "With --task mnist the baselines are tuned on networks of the training split's digits\n"
    "and every optimizer is tested on networks of the test split's.\n", 0};

/* Tunes c->spec.kind (unless learned, or its lr is given) on vtask, then evaluates it on
 * ttask. */
static l2l_status run_one(curve *c, l2l_task *vtask, l2l_task *ttask, const l2l_eval_config *vc,
                          const l2l_eval_config *ec, l2l_error *err)
{
    if (c->spec.kind != L2L_OPT_KIND_LSTM && c->spec.lr == 0) {
        double best;
        l2l_status st = l2l_tune(vtask, c->spec.kind, vc, &c->spec.lr, &best, err);
        if (st) return st;
        char lr[32];
        opts_format_float(c->spec.lr, lr, sizeof lr);
        fprintf(stderr, "l2l compare: tuned %-9s lr %-11s (validation loss %.4g)\n", c->name, lr, best);
    }
    c->loss = malloc(sizeof(double) * ec->runs * (ec->steps + 1));
    if (!c->loss) return l2l_error_set(err, L2L_STATUS_NOMEM, "out of memory");
    return l2l_evaluate(ttask, &c->spec, ec, c->loss, err);
}

tool_result cmd_compare(int argc, char **argv)
{
    family f;
    family_init(&f);
    baselines base = {4, {L2L_OPT_KIND_SGD, L2L_OPT_KIND_NAG, L2L_OPT_KIND_RMSPROP, L2L_OPT_KIND_ADAM}, {0}};
    const char *optimizer = NULL, *out = NULL;
    static also_list also; /* 16 KiB: not on the stack */
    also.n = 0;
    int runs = 100, tune_runs = 20;
    opt_desc own[] = {
        {"optimizer", OPT_PATH, &optimizer, .arg = "FILE", .expect = "a checkpoint",
         .help = "the learned optimizer (required)"},
        {"also", OPT_CUSTOM, &also, .parse = parse_also, .arg = "LIST",
         .expect = "checkpoint paths separated by commas, at most 16",
         .help = "more learned optimizers (checkpoints separated by commas),\n"
                 "each named by its file name and paired against --optimizer's"},
        {"out", OPT_PATH, &out, .arg = "DIR", .expect = "a directory", .help = "where the results go (required)"},
        {"baselines", OPT_CUSTOM, &base, .parse = parse_baselines, .arg = "LIST",
         .expect = "distinct names from sgd, nag, rmsprop, adam, nag-floor, each maybe with :LR, separated by "
                   "commas, e.g. nag,nag:0.1,adam, or none",
         .help = "hand-written optimizers to tune and compare, from sgd, nag,\n"
                 "rmsprop, adam and nag-floor (default sgd,nag,rmsprop,adam;\n"
                 "none: only the learned optimizers); NAME:LR is NAME at that\n"
                 "learning rate, untuned"},
        {"runs", OPT_INT, &runs, 1, 1e6, .arg = "R", .help = "test problems (100)"},
        {"tune-runs", OPT_INT, &tune_runs, 1, 1e5, .arg = "V", .help = "validation problems per learning rate (20)"},
        {NULL},
    };
    tool_result r = family_parse(&f, &compare_cmd, "comparison", own, argc, argv);
    if (r != TOOL_OK) return r;
    if (!optimizer) return tool_usage("compare", "--optimizer FILE.safetensors is required");
    if (!out) return tool_usage("compare", "--out DIR is required");
    if ((r = path_check_dir("compare", "out", out)) != TOOL_OK) return r;
    l2l_error err = {0};
    const int nl = 1 + also.n; /* learned optimizers */
    l2l_lstm net[1 + MAX_ALSO];
    curve c[MAX_CURVES] = {{"lstm", {L2L_OPT_KIND_LSTM, 0, &net[0]}, NULL}};
    l2l_status st = L2L_STATUS_OK;
    int loaded = 0;
    for (; loaded < nl && !st; loaded++) {
        const char *path = loaded ? also.path[loaded - 1] : optimizer;
        l2l_kv meta[L2L_MAX_META];
        int nm = 0;
        if ((st = l2l_checkpoint_load(path, &net[loaded], meta, &nm, &err))) break;
        for (int i = 0; i < nm; i++)
            if (strcmp(meta[i].key, "task") == 0 && strcmp(meta[i].value, family_task_name(&f)) != 0)
                fprintf(stderr, "l2l compare: note: %s was trained on task '%s'; evaluating on '%s'\n",
                        path, meta[i].value, family_task_name(&f));
        if (loaded) {
            c[loaded].spec = (l2l_opt_spec){L2L_OPT_KIND_LSTM, 0, &net[loaded]};
            checkpoint_name(path, c[loaded].name, sizeof c[loaded].name);
        }
    }
    if (st) {
        for (int i = 0; i < loaded; i++) l2l_lstm_free(&net[i]);
        return tool_fail("compare", &err);
    }

    const l2l_eval_config vc = {tune_runs, f.steps, f.seed, L2L_STREAM_VALID};
    const l2l_eval_config ec = {runs, f.steps, f.seed, L2L_STREAM_TEST};
    const int nc = nl + base.n;
    for (int k = nl; k < nc; k++) {
        const float lr = base.lr[k - nl];
        char text[32] = "";
        c[k].spec = (l2l_opt_spec){base.kind[k - nl], lr, NULL};
        if (lr > 0) opts_format_float(lr, text, sizeof text);
        snprintf(c[k].name, sizeof c[k].name, "%s%s%s", l2l_opt_kind_name(base.kind[k - nl]), lr > 0 ? ":" : "", text);
    }
    problem_set valid = {0}, test = {0}; /* validation problems for tuning, test problems */
    st = family_problems(&f, "train", 0, &valid, &err);
    if (!st) st = family_problems(&f, "t10k", 0, &test, &err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < nc && !st; k++) st = run_one(&c[k], &valid.task, &test.task, &vc, &ec, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int k = 0; k < nc && !st; k++) { /* a curve with a diverged run has no mean to report */
        const int diverged = stats_diverged(c[k].loss, ec.runs, ec.steps);
        if (diverged) {
            for (int i = 0; i < nc; i++) free(c[i].loss);
            for (int i = 0; i < nl; i++) l2l_lstm_free(&net[i]);
            problem_set_free(&valid), problem_set_free(&test);
            return tool_diverged("compare", "%s diverged on %d of %d test problems; nothing was written",
                                 c[k].name, diverged, ec.runs);
        }
    }
    if (!st && mkdir(out, 0777) != 0 && errno != EEXIST)
        st = l2l_error_set(&err, L2L_STATUS_IO, "cannot create the directory '%s': %s", out, strerror(errno));
    if (!st) {
        char title[160];
        snprintf(title, sizeof title, "%s, %d test problems", test.task.name, ec.runs);
        st = write_compare(out, c, nc, ec.runs, ec.steps, title, &err);
    }
    if (!st) {
        print_table(c, nc, ec.runs, ec.steps, test.task.name,
                    (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
        fprintf(stderr, "l2l compare: wrote %s/curves.csv, summary.csv, finals.csv, loss.png, loss.svg\n", out);
    }
    for (int i = 0; i < nc; i++) free(c[i].loss);
    for (int i = 0; i < nl; i++) l2l_lstm_free(&net[i]);
    problem_set_free(&valid), problem_set_free(&test);
    return st ? tool_fail("compare", &err) : TOOL_OK;
}
