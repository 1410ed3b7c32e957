/* l2l: the command-line tool, a thin layer over libl2l.
 *
 *   l2l train    meta-train a learned optimizer, save it as safetensors
 *   l2l eval     run one optimizer on fresh test problems, write its loss curve
 *   l2l tune     pick a baseline's learning rate on validation problems
 *   l2l compare  tune the baselines, evaluate all optimizers, write CSVs and a figure
 *   l2l info     describe a checkpoint
 *   l2l bench    measure throughput and memory
 *
 * Only main() turns a status into an exit code: 0 success, 1 runtime failure,
 * 2 bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "l2l.h"
#include "atomic.h"
#include "plot.h"
#include "bench.h"
#include "plotcmd.h"

#define EXIT_USAGE 2

/* ------------------------------------------------------------- options */

typedef struct {
    const char *task, *preset, *data, *activation, *preproc, *out, *csv, *log, *optimizer;
    const char *weighting, *select, *objective, *init;
    int dim, batch, hidden, layers, steps, runs, unroll, epochs, eval_every, n_valid, tune_runs;
    int lstm_layers, lstm_hidden, threads, quick, meta_batch, pool;
    double lr, clip, p, scale, lr_half_life, rollback, average, rescale, out_init;
    int imitate_kind, imitate_epochs; /* --imitate OPT:LR:EPOCHS[:WEIGHT] */
    double imitate_lr, imitate_weight;
    int es_pairs; /* --es PAIRS:SIGMA */
    double es_sigma;
    int n_mix, mix_hidden[16], mix_layers[16]; /* --mix: network shapes of the meta-batch */
    int n_base, base[L2L_OPT_LSTM]; /* --baselines: hand-written optimizers compare tunes */
    uint64_t seed;
    int has_batch, has_lr, has_p, has_scale, has_preproc, has_steps, has_pool, has_out_init;
} opts;

enum {
    O_TASK = 1000, O_PRESET, O_DATA, O_DIM, O_BATCH, O_HIDDEN, O_LAYERS, O_ACTIVATION, O_STEPS,
    O_RUNS, O_UNROLL, O_EPOCHS, O_EVAL_EVERY, O_VALID, O_TUNE_RUNS, O_LR, O_CLIP, O_P, O_SCALE,
    O_PREPROC, O_LSTM_LAYERS, O_LSTM_HIDDEN, O_SEED, O_OUT, O_CSV, O_LOG, O_OPTIMIZER, O_THREADS,
    O_QUICK, O_WEIGHTING, O_SELECT, O_OBJECTIVE, O_META_BATCH, O_LR_HALF_LIFE, O_POOL, O_ROLLBACK,
    O_MIX, O_INIT, O_AVERAGE, O_RESCALE, O_OUT_INIT, O_IMITATE, O_ES, O_BASELINES, O_HELP
};

static const struct option all_options[] = {
    {"task", required_argument, 0, O_TASK},
    {"preset", required_argument, 0, O_PRESET},
    {"data", required_argument, 0, O_DATA},
    {"dim", required_argument, 0, O_DIM},
    {"batch", required_argument, 0, O_BATCH},
    {"hidden", required_argument, 0, O_HIDDEN},
    {"layers", required_argument, 0, O_LAYERS},
    {"activation", required_argument, 0, O_ACTIVATION},
    {"steps", required_argument, 0, O_STEPS},
    {"runs", required_argument, 0, O_RUNS},
    {"unroll", required_argument, 0, O_UNROLL},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"eval-every", required_argument, 0, O_EVAL_EVERY},
    {"valid", required_argument, 0, O_VALID},
    {"tune-runs", required_argument, 0, O_TUNE_RUNS},
    {"lr", required_argument, 0, O_LR},
    {"clip", required_argument, 0, O_CLIP},
    {"p", required_argument, 0, O_P},
    {"scale", required_argument, 0, O_SCALE},
    {"preproc", required_argument, 0, O_PREPROC},
    {"lstm-layers", required_argument, 0, O_LSTM_LAYERS},
    {"lstm-hidden", required_argument, 0, O_LSTM_HIDDEN},
    {"seed", required_argument, 0, O_SEED},
    {"out", required_argument, 0, O_OUT},
    {"csv", required_argument, 0, O_CSV},
    {"log", required_argument, 0, O_LOG},
    {"optimizer", required_argument, 0, O_OPTIMIZER},
    {"threads", required_argument, 0, O_THREADS},
    {"quick", no_argument, 0, O_QUICK},
    {"weighting", required_argument, 0, O_WEIGHTING},
    {"select", required_argument, 0, O_SELECT},
    {"objective", required_argument, 0, O_OBJECTIVE},
    {"meta-batch", required_argument, 0, O_META_BATCH},
    {"lr-half-life", required_argument, 0, O_LR_HALF_LIFE},
    {"pool", required_argument, 0, O_POOL},
    {"rollback", required_argument, 0, O_ROLLBACK},
    {"mix", required_argument, 0, O_MIX},
    {"init", required_argument, 0, O_INIT},
    {"average", required_argument, 0, O_AVERAGE},
    {"rescale", required_argument, 0, O_RESCALE},
    {"out-init", required_argument, 0, O_OUT_INIT},
    {"imitate", required_argument, 0, O_IMITATE},
    {"es", required_argument, 0, O_ES},
    {"baselines", required_argument, 0, O_BASELINES},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0},
};

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "l2l %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'l2l %s --help'.\n", cmd);
    return EXIT_USAGE;
}

static int fail(const char *cmd, const l2l_error *err)
{
    fprintf(stderr, "l2l %s: error: %s\n", cmd, err->msg);
    return 1;
}

static int parse_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return usage_error(cmd, "--%s expects an integer in %d..%d, got '%s'", flag, lo, hi, s);
    *out = (int)v;
    return 0;
}

static int parse_double(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return usage_error(cmd, "--%s expects a number in [%g, %g], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

static int parse_choice(const char *cmd, const char *flag, const char *s, const char *const *choices,
                        const char **out)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(s, choices[i]) == 0) {
            *out = choices[i];
            return 0;
        }
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    return usage_error(cmd, "--%s expects one of %s, got '%s'", flag, list, s);
}

static const char *const tasks[] = {"quadratic", "mnist", 0};
static const char *const presets[] = {"paper", "deepmind", 0};
static const char *const activations[] = {"sigmoid", "relu", "tanh", 0};
static const char *const preprocs[] = {"none", "logsign", 0};
static const char *const weightings[] = {"uniform", "linear", "last", 0};
static const char *const selections[] = {"mean", "final", 0};
static const char *const objectives[] = {"sum", "log", "log-each", 0};

/* --mix 20x1,40x1,20x2: network shapes HIDDENxLAYERS (xLAYERS optional, default 1). */
static int parse_mix(const char *cmd, const char *s, opts *o)
{
    o->n_mix = 0;
    const char *q = s;
    for (;;) {
        char *end;
        long h = strtol(q, &end, 10), l = 1;
        if (end == q || h < 1 || h > 4096) break;
        q = end;
        if (*q == 'x') {
            l = strtol(q + 1, &end, 10);
            if (end == q + 1 || l < 1 || l > 8) break;
            q = end;
        }
        if (o->n_mix == 16) return usage_error(cmd, "--mix takes at most 16 shapes, got '%s'", s);
        o->mix_hidden[o->n_mix] = (int)h, o->mix_layers[o->n_mix] = (int)l, o->n_mix++;
        if (*q == 0) return 0;
        if (*q++ != ',') break;
    }
    return usage_error(cmd, "--mix expects shapes HIDDEN[xLAYERS] separated by commas "
                            "(hidden 1..4096, layers 1..8), e.g. 20x1,40x1,20x2; got '%s'", s);
}

/* --baselines nag,adam: distinct hand-written optimizers, in the order given. */
static int parse_baselines(const char *cmd, const char *s, opts *o)
{
    o->n_base = 0;
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[16];
        int kind = -1;
        if (len < sizeof name) {
            memcpy(name, p, len);
            name[len] = 0;
            kind = l2l_opt_parse(name);
        }
        for (int i = 0; i < o->n_base && kind >= 0; i++)
            if (o->base[i] == kind) kind = -1;
        if (kind < 0 || o->n_base == L2L_OPT_LSTM)
            return usage_error(cmd, "--baselines expects distinct names from sgd, nag, rmsprop, adam, "
                                    "nag-floor separated by commas, e.g. nag,adam; got '%s'", s);
        o->base[o->n_base++] = kind;
        if (!end) return 0;
        p = end + 1;
    }
}

/* --imitate nag:1:10[:W]: the teacher, its learning rate, the warm-start epochs and the
 * weight the imitation keeps afterwards. */
static int parse_imitate(const char *cmd, const char *s, opts *o)
{
    char name[16], *end;
    const char *colon = strchr(s, ':');
    if (colon && (size_t)(colon - s) < sizeof name) {
        memcpy(name, s, (size_t)(colon - s));
        name[colon - s] = 0;
        int kind = l2l_opt_parse(name);
        errno = 0;
        double lr = strtod(colon + 1, &end);
        if (kind >= 0 && !errno && end > colon + 1 && *end == ':' && isfinite(lr) && lr > 0) {
            long k = strtol(end + 1, &end, 10);
            double w = 0;
            if (*end == ':') {
                const char *ws = end + 1;
                w = strtod(ws, &end);
                if (end == ws || !isfinite(w) || w < 0) end = (char *)"x";
            }
            if (*end == 0 && k >= 0 && k <= 1000000 && (k > 0 || w > 0)) {
                o->imitate_kind = kind, o->imitate_lr = lr, o->imitate_epochs = (int)k;
                o->imitate_weight = w;
                return 0;
            }
        }
    }
    return usage_error(cmd, "--imitate expects TEACHER:LR:EPOCHS[:WEIGHT] with a teacher sgd, nag, "
                            "rmsprop, adam or nag-floor, a learning rate > 0, epochs >= 0 and a weight >= 0, "
                            "not both 0, e.g. nag:1:10 or nag:1:0:1000; got '%s'", s);
}

/* --es 8:0.01: antithetic pairs per meta-update and the perturbation's scale. */
static int parse_es(const char *cmd, const char *s, opts *o)
{
    char *end;
    long k = strtol(s, &end, 10);
    if (end != s && *end == ':' && k >= 1 && k <= 100000) {
        const char *ss = end + 1;
        errno = 0;
        double sigma = strtod(ss, &end);
        if (end != ss && *end == 0 && !errno && isfinite(sigma) && sigma > 0) {
            o->es_pairs = (int)k, o->es_sigma = sigma;
            return 0;
        }
    }
    return usage_error(cmd, "--es expects PAIRS:SIGMA with 1..100000 pairs and a sigma > 0, "
                            "e.g. 8:0.01; got '%s'", s);
}

static void opts_default(opts *o)
{
    memset(o, 0, sizeof *o);
    o->task = "quadratic";
    o->preset = "paper";
    o->data = "data/mnist";
    o->activation = "sigmoid";
    o->weighting = "uniform";
    o->select = "mean";
    o->objective = "sum";
    o->dim = 10;
    o->batch = 128;
    o->hidden = 20;
    o->layers = 1;
    o->runs = 100;
    o->tune_runs = 20;
    o->lstm_layers = 2;
    o->lstm_hidden = 20;
    o->meta_batch = 1;
    o->out_init = 1;
    o->n_base = 4; /* the paper's baselines */
    for (int k = 0; k < 4; k++) o->base[k] = L2L_OPT_SGD + k;
    l2l_train_config tc; /* the library's meta-training defaults are the tool's */
    l2l_train_config_default(&tc);
    o->steps = tc.steps;
    o->unroll = tc.unroll;
    o->epochs = tc.epochs;
    o->eval_every = tc.eval_every;
    o->n_valid = tc.n_valid;
    o->lr = tc.lr;
    o->seed = tc.seed;
}

/* Parses argv for one subcommand; `allowed` lists the option codes it accepts.
 * Returns 0, EXIT_USAGE, or -1 when --help was printed. */
static int parse_opts(const char *cmd, int argc, char **argv, const int *allowed, const char *help,
                      opts *o, int *first_arg)
{
    opts_default(o);
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, "+h", all_options, &idx);
        if (c == -1) break;
        if (c == 'h') c = O_HELP;
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (optopt && optopt >= O_TASK)
                return usage_error(cmd, "option '%s' needs a value", bad);
            return usage_error(cmd, "unknown option '%s'", bad);
        }
        int ok = c == O_HELP;
        for (int i = 0; allowed[i] && !ok; i++) ok = allowed[i] == c;
        if (!ok) return usage_error(cmd, "option '--%s' does not apply to 'l2l %s'", all_options[idx].name, cmd);
        const char *a = optarg, *f = idx >= 0 ? all_options[idx].name : "";
        int r = 0;
        double d = 0;
        switch (c) {
        case O_HELP: fputs(help, stdout); return -1;
        case O_TASK: r = parse_choice(cmd, f, a, tasks, &o->task); break;
        case O_PRESET: r = parse_choice(cmd, f, a, presets, &o->preset); break;
        case O_ACTIVATION: r = parse_choice(cmd, f, a, activations, &o->activation); break;
        case O_PREPROC: r = parse_choice(cmd, f, a, preprocs, &o->preproc), o->has_preproc = 1; break;
        case O_WEIGHTING: r = parse_choice(cmd, f, a, weightings, &o->weighting); break;
        case O_SELECT: r = parse_choice(cmd, f, a, selections, &o->select); break;
        case O_OBJECTIVE: r = parse_choice(cmd, f, a, objectives, &o->objective); break;
        case O_DATA: o->data = a; break;
        case O_OUT: o->out = a; break;
        case O_CSV: o->csv = a; break;
        case O_LOG: o->log = a; break;
        case O_OPTIMIZER: o->optimizer = a; break;
        case O_DIM: r = parse_int(cmd, f, a, 1, 4096, &o->dim); break;
        case O_BATCH: r = parse_int(cmd, f, a, 1, 1 << 20, &o->batch), o->has_batch = 1; break;
        case O_HIDDEN: r = parse_int(cmd, f, a, 1, 4096, &o->hidden); break;
        case O_LAYERS: r = parse_int(cmd, f, a, 1, 8, &o->layers); break;
        case O_STEPS: r = parse_int(cmd, f, a, 1, 1000000, &o->steps), o->has_steps = 1; break;
        case O_RUNS: r = parse_int(cmd, f, a, 1, 1000000, &o->runs); break;
        case O_UNROLL: r = parse_int(cmd, f, a, 1, 100000, &o->unroll); break;
        case O_EPOCHS: r = parse_int(cmd, f, a, 1, 100000000, &o->epochs); break;
        case O_EVAL_EVERY: r = parse_int(cmd, f, a, 0, 100000000, &o->eval_every); break;
        case O_VALID: r = parse_int(cmd, f, a, 1, 100000, &o->n_valid); break;
        case O_TUNE_RUNS: r = parse_int(cmd, f, a, 1, 100000, &o->tune_runs); break;
        case O_LSTM_LAYERS: r = parse_int(cmd, f, a, 0, L2L_MAX_LAYERS, &o->lstm_layers); break;
        case O_LSTM_HIDDEN: r = parse_int(cmd, f, a, 1, 1024, &o->lstm_hidden); break;
        case O_THREADS: r = parse_int(cmd, f, a, 1, 1024, &o->threads); break;
        case O_META_BATCH: r = parse_int(cmd, f, a, 1, 1024, &o->meta_batch); break;
        case O_POOL: r = parse_int(cmd, f, a, 0, 1 << 30, &o->pool), o->has_pool = 1; break;
        case O_ROLLBACK:
            r = parse_double(cmd, f, a, 0, 1e6, &o->rollback);
            if (!r && o->rollback != 0 && o->rollback <= 1)
                r = usage_error(cmd, "--rollback expects 0 (off) or a factor > 1, got '%s'", a);
            break;
        case O_MIX: r = parse_mix(cmd, a, o); break;
        case O_IMITATE: r = parse_imitate(cmd, a, o); break;
        case O_BASELINES: r = parse_baselines(cmd, a, o); break;
        case O_ES: r = parse_es(cmd, a, o); break;
        case O_INIT: o->init = a; break;
        case O_RESCALE: r = parse_double(cmd, f, a, 0, 20, &o->rescale); break;
        case O_OUT_INIT: r = parse_double(cmd, f, a, 0, 1e3, &o->out_init), o->has_out_init = 1; break;
        case O_AVERAGE:
            r = parse_double(cmd, f, a, 0, 1, &o->average);
            if (!r && o->average >= 1) r = usage_error(cmd, "--average expects a decay in [0, 1), got '%s'", a);
            break;
        case O_QUICK: o->quick = 1; break;
        case O_LR: r = parse_double(cmd, f, a, 1e-12, 1e6, &o->lr), o->has_lr = 1; break;
        case O_CLIP: r = parse_double(cmd, f, a, 0, 1e12, &o->clip); break;
        case O_LR_HALF_LIFE: r = parse_double(cmd, f, a, 0, 1e9, &o->lr_half_life); break;
        case O_P: r = parse_double(cmd, f, a, 1e-3, 79, &o->p), o->has_p = 1; break;
        case O_SCALE: r = parse_double(cmd, f, a, -1e6, 1e6, &o->scale), o->has_scale = 1; break;
        case O_SEED:
            r = parse_double(cmd, f, a, 0, 9007199254740992.0, &d);
            if (!r && d != floor(d)) r = usage_error(cmd, "--seed expects a non-negative integer, got '%s'", a);
            o->seed = (uint64_t)d;
            break;
        }
        if (r) return r;
    }
    *first_arg = optind;
#ifdef _OPENMP
    if (o->threads) omp_set_num_threads(o->threads);
#endif
    /* The threads are l2l's own (OpenMP). BLAS runs on one: the MLP's products are small
     * (128 x 784 x 20), and OpenBLAS's threaded sgemm rounds differently with its thread
     * count, which would make MNIST results depend on --threads. */
    openblas_set_num_threads(1);
    return 0;
}

/* -------------------------------------------------------------- tasks */

static int is_deepmind(const opts *o) { return strcmp(o->preset, "deepmind") == 0; }

/* Another MLP of the options' shape on an already loaded data set. */
static l2l_status make_task_on(const opts *o, const l2l_dataset *ds, l2l_task *task, l2l_error *err)
{
    l2l_activation act = strcmp(o->activation, "relu") == 0   ? L2L_ACTIVATION_RELU
                         : strcmp(o->activation, "tanh") == 0 ? L2L_ACTIVATION_TANH
                                                              : L2L_ACTIVATION_SIGMOID;
    l2l_mlp_config mc = {o->layers, o->hidden, act, o->has_batch ? o->batch : 128, 0.01f, o->pool};
    return l2l_task_mlp_create(task, &mc, ds, err);
}

/* MNIST networks train, by default, on as many digits as the test split holds (a
 * pool drawn afresh for every network): 100 steps of 128 see a 2,000-digit pool six
 * times over but 8,000 digits not twice, so without this, meta-training and tuning on
 * the training split would prepare for a different network family from the one the
 * test split measures. */
static l2l_status default_pool(const opts *o, const char *split, const l2l_dataset *ds, int *pool,
                               l2l_error *err)
{
    if (strcmp(split, "t10k") == 0) {
        *pool = ds->n > (size_t)INT_MAX ? 0 : (int)ds->n;
        return L2L_OK;
    }
    l2l_dataset test;
    l2l_status st = l2l_mnist_load(&test, o->data, "t10k", err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return l2l_error_set(err, st, "the default --pool is the test split's size, which cannot be "
                             "read (%s); give --pool K (0 = the whole split)", msg);
    }
    *pool = test.n < ds->n ? (int)test.n : 0;
    l2l_dataset_free(&test);
    return L2L_OK;
}

/* The task named by the options (an MNIST task resolves o->pool). split selects MNIST's
 * "train" or "t10k" digits; training says whether the quadratic batch default is the
 * meta-training one. */
static l2l_status make_task(opts *o, const char *split, int training, l2l_task *task,
                            l2l_dataset *ds, l2l_error *err)
{
    memset(ds, 0, sizeof *ds);
    if (strcmp(o->task, "quadratic") == 0) {
        /* Paper: one function per run when evaluating; batches of 128 in meta-training.
         * Authors' code: the batch-mean loss of 128 functions is the optimizee. */
        int batch = o->has_batch ? o->batch : (training || is_deepmind(o)) ? 128 : 1;
        l2l_quadratic_config qc = {o->dim, batch, is_deepmind(o)};
        return l2l_task_quadratic_create(task, &qc, err);
    }
    l2l_status st = l2l_mnist_load(ds, o->data, split, err);
    if (st) return st;
    if (!o->has_pool) { /* resolved once: later tasks of the same command share it */
        if ((st = default_pool(o, split, ds, &o->pool, err))) {
            l2l_dataset_free(ds);
            return st;
        }
        o->has_pool = 1;
    }
    st = make_task_on(o, ds, task, err);
    if (st) l2l_dataset_free(ds);
    return st;
}

/* Paper: quadratics without preprocessing, scale 1 (authors' value; the paper gives
 * none); MNIST log/sign with p = 10 and scale 0.1. Authors' code: p = 5, scale 0.01. */
static l2l_lstm_config lstm_config(const opts *o)
{
    int mnist = strcmp(o->task, "mnist") == 0;
    l2l_lstm_config c;
    c.layers = o->lstm_layers;
    c.hidden = o->lstm_hidden;
    c.preproc = mnist ? L2L_PREPROC_LOGSIGN : L2L_PREPROC_NONE;
    if (o->has_preproc) c.preproc = strcmp(o->preproc, "logsign") == 0 ? L2L_PREPROC_LOGSIGN : L2L_PREPROC_NONE;
    c.p = is_deepmind(o) ? 5.0f : 10.0f;
    c.scale = !mnist ? 1.0f : is_deepmind(o) ? 0.01f : 0.1f;
    if (o->has_p) c.p = (float)o->p;
    if (o->has_scale) c.scale = (float)o->scale;
    return c;
}

/* ---------------------------------------------------------------- train */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig, interrupted = 1; }

typedef struct {
    FILE *log;
    int epochs, tty;
    l2l_status log_status;
    l2l_train_progress last;
} train_ctx;

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0) s = 0;
    if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static int train_progress(const l2l_train_progress *p, void *vctx)
{
    train_ctx *c = vctx;
    c->last = *p;
    if (c->log) {
        fprintf(c->log, "%d,%.9g,%.9g,%.9g,%.9g,%d,%.3f,%d\n", p->epoch, p->train_loss, p->grad_norm,
                p->valid_loss, p->best_valid, p->best_epoch, p->seconds, p->rollbacks);
        if (fflush(c->log) != 0) c->log_status = L2L_ERR_IO;
    }
    if (c->tty) {
        char eta[32];
        fmt_duration(eta, sizeof eta, p->seconds / p->epoch * (c->epochs - p->epoch));
        int width = 24, fill = (int)((double)width * p->epoch / c->epochs);
        fprintf(stderr, "\r[%.*s%*s] epoch %d/%d  train %.4g  best valid %.4g (epoch %d)  ETA %s  ",
                fill, "========================", width - fill, "", p->epoch, c->epochs, p->train_loss,
                p->best_valid, p->best_epoch, eta);
        if (p->epoch == c->epochs) fputc('\n', stderr);
    }
    return interrupted || c->log_status;
}

static const char train_help[] =
    "usage: l2l train --out FILE.safetensors [options]\n"
    "Meta-trains a coordinatewise LSTM optimizer on a task family and saves the best\n"
    "(validated) weights as safetensors.\n\n"
    "task:\n"
    "  --task quadratic|mnist   problem family (default quadratic)\n"
    "  --preset paper|deepmind  paper's settings, or the authors' code's (default paper)\n"
    "  --dim N                  quadratic dimension (10)\n"
    "  --batch B                functions per quadratic sample / MNIST minibatch (128)\n"
    "  --hidden N --layers L --activation sigmoid|relu|tanh   MNIST network (20, 1, sigmoid)\n"
    "  --data DIR               IDX files for mnist (data/mnist)\n"
    "  --pool K                 mnist: every network trains on its own K digits drawn from\n"
    "                           the split (default: as many as the test split holds;\n"
    "                           0 = the whole split)\n"
    "  --mix 20x1,40x1,20x2     mnist: the meta-batch's networks cycle through these shapes\n"
    "                           (HIDDEN[xLAYERS]); the meta-batch is at least one of each\n"
    "optimizer:\n"
    "  --lstm-layers L --lstm-hidden H   LSTM stack (2 x 20); 0 layers = linear map\n"
    "  --preproc none|logsign --p P --scale S   input preprocessing and output scale\n"
    "                           (quadratic: none, scale 1; mnist: logsign p 10, scale 0.1;\n"
    "                            --preset deepmind: p 5, scale 0.01)\n"
    "meta-training:\n"
    "  --epochs E (1000)  --steps S (100)  --unroll T (20)  --lr X (1e-3)  --clip C (off)\n"
    "  --eval-every K (50)  --valid V (20)   validate every K epochs on V fixed problems\n"
    "  --select mean|final      keep the phi with the best mean loss over the steps (the\n"
    "                           meta-objective, default) or the best final loss\n"
    "  --weighting uniform|linear|last   meta-loss weights w_t = 1 (paper), proportional to\n"
    "                           t, or 5 on the last fifth of the steps and 0 before (mean 1)\n"
    "  --objective sum|log|log-each   meta-loss sum_t w_t f(theta_t) (paper), sum_t w_t log f,\n"
    "                           or with a meta-batch the mean of each network's log f_i\n"
    "  --meta-batch B (1)       optimizees per meta-update (MNIST: B networks side by side)\n"
    "  --lr-half-life E         halve the meta learning rate every E epochs (default: constant)\n"
    "  --rollback F             when validation is worse than F x the best so far, go back to\n"
    "                           the best phi and restart meta-Adam (default 0: off)\n"
    "  --init FILE              start from FILE's optimizer instead of a fresh one\n"
    "  --imitate T:LR:K         warm start: for the first K epochs train the optimizer to make\n"
    "                           the updates of teacher T (sgd|nag|rmsprop|adam|nag-floor) at\n"
    "                           learning rate LR from the same gradients, then the\n"
    "                           meta-objective (off);\n"
    "                           T:LR:K:W keeps W x the imitation term in the meta-loss after\n"
    "                           the K epochs (K may be 0)\n"
    "  --es K:SIGMA             one meta-update per epoch from evolution strategies over the\n"
    "                           whole run (K pairs at phi +- SIGMA e) instead of truncated\n"
    "                           backpropagation (default: off)\n"
    "  --out-init F             multiply the fresh optimizer's initial output weights by F\n"
    "                           (default 1: the authors' truncated normal, std 1/sqrt(H))\n"
    "  --average D              validate and keep the moving average of phi over meta-updates,\n"
    "                           a <- D a + (1 - D) phi (default 0: phi itself)\n"
    "  --rescale L              train on f(c . theta), c_i = e^U[-L,L] drawn per optimizee,\n"
    "                           so that no gradient scale is learned by heart (Lv et al.\n"
    "                           2017); validation stays unscaled (default 0: off)\n"
    "  --seed S (1)  --log FILE (default: OUT with -log.csv)  --threads N\n";

static int cmd_train(int argc, char **argv)
{
    static const int allowed[] = {O_TASK, O_PRESET, O_DATA, O_DIM, O_BATCH, O_HIDDEN, O_LAYERS,
                                  O_ACTIVATION, O_POOL, O_STEPS, O_UNROLL, O_EPOCHS, O_EVAL_EVERY, O_VALID,
                                  O_LR, O_CLIP, O_P, O_SCALE, O_PREPROC, O_LSTM_LAYERS,
                                  O_LSTM_HIDDEN, O_SEED, O_OUT, O_LOG, O_THREADS, O_WEIGHTING,
                                  O_SELECT, O_OBJECTIVE, O_META_BATCH, O_LR_HALF_LIFE,
                                  O_ROLLBACK, O_MIX, O_INIT, O_AVERAGE, O_RESCALE,
                                  O_OUT_INIT, O_IMITATE, O_ES, 0};
    opts o;
    int first, r = parse_opts("train", argc, argv, allowed, train_help, &o, &first);
    if (r) return r < 0 ? 0 : r;
    if (first < argc) return usage_error("train", "unexpected argument '%s'", argv[first]);
    if (!o.out) return usage_error("train", "--out FILE.safetensors is required");
    if (o.steps % o.unroll) return usage_error("train", "--steps (%d) must be a multiple of --unroll (%d)", o.steps, o.unroll);
    if (o.init && (o.has_p || o.has_scale || o.has_preproc || o.has_out_init || o.lstm_layers != 2 ||
                   o.lstm_hidden != 20))
        return usage_error("train", "--init FILE takes the optimizer's architecture, preprocessing, "
                                    "scale and weights from FILE; drop --p, --scale, --preproc, "
                                    "--out-init and --lstm-*");

    l2l_error err = {0};
    l2l_task task;
    l2l_dataset ds;
    if (o.n_mix && strcmp(o.task, "mnist") != 0) return usage_error("train", "--mix applies to --task mnist");
    if (o.n_mix && o.meta_batch < o.n_mix) o.meta_batch = o.n_mix; /* one network of each shape */
    opts shape = o; /* network k of the meta-batch has shape k mod n_mix */
    if (o.n_mix) shape.hidden = o.mix_hidden[0], shape.layers = o.mix_layers[0];
    if (make_task(&shape, "train", 1, &task, &ds, &err)) return fail("train", &err);
    if (o.meta_batch > 1) { /* more networks of the family on the same data */
        l2l_task kids[1024];
        l2l_dataset unused;
        int k = 1;
        kids[0] = task;
        for (; k < o.meta_batch; k++) { /* MLPs share the loaded digits */
            if (o.n_mix) shape.hidden = o.mix_hidden[k % o.n_mix], shape.layers = o.mix_layers[k % o.n_mix];
            if (ds.images ? make_task_on(&shape, &ds, &kids[k], &err)
                          : make_task(&shape, "train", 1, &kids[k], &unused, &err))
                break;
        }
        if (k < o.meta_batch || l2l_task_batch_create(&task, kids, k, &err)) {
            for (int i = 0; i < k; i++) l2l_task_free(&kids[i]);
            l2l_dataset_free(&ds);
            return fail("train", &err);
        }
    }
    l2l_lstm_config lc = lstm_config(&o);
    l2l_lstm net;
    if (o.init ? l2l_checkpoint_load(o.init, &net, NULL, NULL, &err) : l2l_lstm_create(&net, &lc, &err)) {
        l2l_task_free(&task), l2l_dataset_free(&ds);
        return fail("train", &err);
    }
    if (o.init) lc = net.cfg; /* the starting point's architecture */
    else {
        l2l_rng rng;
        l2l_rng_seed(&rng, o.seed, L2L_STREAM_INIT);
        l2l_lstm_init(&net, &rng);
        const size_t n_out = (size_t)(lc.layers > 0 ? lc.hidden : net.n_in);
        for (size_t i = 0; i < n_out; i++) net.w.w_out[i] *= (float)o.out_init;
    }

    char logpath[4096];
    if (o.log) snprintf(logpath, sizeof logpath, "%s", o.log);
    else {
        snprintf(logpath, sizeof logpath, "%s", o.out);
        char *dot = strstr(logpath, ".safetensors");
        if (dot) *dot = 0;
        strncat(logpath, "-log.csv", sizeof logpath - strlen(logpath) - 1);
    }
    train_ctx tc = {.epochs = o.epochs, .tty = isatty(2)};
    tc.log = fopen(logpath, "w");
    if (!tc.log) {
        fprintf(stderr, "l2l train: error: cannot create the log '%s': %s\n", logpath, strerror(errno));
        l2l_lstm_free(&net), l2l_task_free(&task), l2l_dataset_free(&ds);
        return 1;
    }
    fprintf(tc.log, "epoch,train_loss,grad_norm,valid_loss,best_valid,best_epoch,seconds,rollbacks\n");

    l2l_train_config tcfg;
    l2l_train_config_default(&tcfg);
    tcfg.epochs = o.epochs;
    tcfg.steps = o.steps;
    tcfg.unroll = o.unroll;
    tcfg.lr = (float)o.lr;
    tcfg.clip = (float)o.clip;
    tcfg.lr_half_life = (float)o.lr_half_life;
    tcfg.eval_every = o.eval_every;
    tcfg.n_valid = o.n_valid;
    tcfg.seed = o.seed;
    tcfg.weighting = strcmp(o.weighting, "linear") == 0 ? L2L_WEIGHT_LINEAR
                   : strcmp(o.weighting, "last") == 0   ? L2L_WEIGHT_LAST
                                                        : L2L_WEIGHT_UNIFORM;
    tcfg.selection = strcmp(o.select, "final") == 0 ? L2L_SELECT_FINAL : L2L_SELECT_MEAN;
    tcfg.objective = strcmp(o.objective, "log") == 0        ? L2L_OBJECTIVE_LOG
                     : strcmp(o.objective, "log-each") == 0 ? L2L_OBJECTIVE_LOG_EACH
                                                            : L2L_OBJECTIVE_SUM;
    tcfg.rollback = (float)o.rollback;
    tcfg.average = (float)o.average;
    tcfg.rescale = (float)o.rescale;
    tcfg.imitate_epochs = o.imitate_epochs;
    tcfg.teacher = (l2l_opt_kind)o.imitate_kind;
    tcfg.teacher_lr = (float)o.imitate_lr;
    tcfg.imitate_weight = (float)o.imitate_weight;
    tcfg.es_pairs = o.es_pairs;
    tcfg.es_sigma = (float)o.es_sigma;
    fprintf(stderr, "l2l train: %s, %zu coordinates, LSTM %dx%d (%zu weights), %d epochs x %d steps (unroll %d)\n",
            task.name, task.n, lc.layers, lc.hidden, net.n_params, o.epochs, o.steps, o.unroll);
    signal(SIGINT, on_sigint);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    l2l_status st = l2l_meta_train(&net, &task, &tcfg, train_progress, &tc, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if (fclose(tc.log) != 0 || tc.log_status)
        fprintf(stderr, "l2l train: warning: the log '%s' could not be written completely\n", logpath);
    if (tc.tty) fputc('\n', stderr);
    if (st) fprintf(stderr, "l2l train: error: %s\n", err.msg);

    /* Save whatever is best so far, even after an error or an interrupt. */
    l2l_kv meta[40]; /* with the checkpoint's own keys, within L2L_MAX_META */
    int nm = 0;
#define META(K, ...) (snprintf(meta[nm].key, sizeof meta[nm].key, "%s", K), \
                      snprintf(meta[nm].value, sizeof meta[nm].value, __VA_ARGS__), nm++)
    META("task", "%s", o.task);
    META("task_name", "%s", task.name);
    META("preset", "%s", o.preset);
    META("seed", "%llu", (unsigned long long)o.seed);
    META("epochs", "%d", o.epochs);
    META("steps", "%d", o.steps);
    META("unroll", "%d", o.unroll);
    META("meta_lr", "%g", o.lr);
    META("clip", "%.9g", o.clip);
    META("lr_half_life", "%g", o.lr_half_life);
    META("eval_every", "%d", o.eval_every);
    META("n_valid", "%d", o.n_valid);
    META("weighting", "%s", o.weighting);
    META("select", "%s", o.select);
    META("objective", "%s", o.objective);
    META("epochs_run", "%d", tc.last.epoch);
    META("best_epoch", "%d", tc.last.best_epoch);
    META("best_valid", "%.9g", tc.last.best_valid);
    META("rng_state", "%016llx%016llx%016llx%016llx", (unsigned long long)tc.last.rng.s[0],
         (unsigned long long)tc.last.rng.s[1], (unsigned long long)tc.last.rng.s[2],
         (unsigned long long)tc.last.rng.s[3]);
    META("completed", "%s", st ? "error" : interrupted ? "interrupted" : "yes");
    if (strcmp(o.task, "mnist") == 0) META("mlp", "%dx%d %s batch %d", o.layers, o.hidden, o.activation, o.batch);
    META("meta_batch", "%d", o.meta_batch);
    META("pool", "%d", shape.pool);
    META("rollback", "%g", o.rollback);
    META("rollbacks", "%d", tc.last.rollbacks);
    META("average", "%g", o.average);
    META("rescale", "%g", o.rescale);
    META("out_init", "%g", o.out_init);
    if (o.es_pairs) META("es", "%d:%g", o.es_pairs, o.es_sigma);
    if (o.imitate_epochs || o.imitate_weight)
        META("imitate", "%s:%g:%d:%g", l2l_opt_name((l2l_opt_kind)o.imitate_kind), o.imitate_lr,
             o.imitate_epochs, o.imitate_weight);
    if (o.init) META("init", "%s", o.init);
    if (o.n_mix) {
        char mix[200] = "";
        for (int i = 0; i < o.n_mix; i++)
            snprintf(mix + strlen(mix), sizeof mix - strlen(mix), "%s%dx%d", i ? "," : "",
                     o.mix_hidden[i], o.mix_layers[i]);
        META("mix", "%s", mix);
    }
#undef META
    l2l_error serr = {0};
    l2l_status sst = l2l_checkpoint_save(o.out, &net, meta, nm, &serr);
    if (sst) fprintf(stderr, "l2l train: error: %s\n", serr.msg);
    else fprintf(stderr, "l2l train: saved %s (%.1f s of meta-training)\n", o.out, secs);
    l2l_lstm_free(&net), l2l_task_free(&task), l2l_dataset_free(&ds);
    return st || sst || interrupted ? 1 : 0;
}

/* ------------------------------------------------------- eval / compare */

typedef struct {
    char name[64];
    l2l_opt_kind kind;
    float lr;
    double *loss; /* (runs, steps+1) */
} curve;

static void stats(const double *loss, int runs, int steps, int t, double *mean, double *std)
{
    double s = 0, s2 = 0;
    for (int r = 0; r < runs; r++) s += loss[(size_t)r * (steps + 1) + t];
    *mean = s / runs;
    for (int r = 0; r < runs; r++) {
        double d = loss[(size_t)r * (steps + 1) + t] - *mean;
        s2 += d * d;
    }
    *std = runs > 1 ? sqrt(s2 / (runs - 1)) : 0;
    if (!isfinite(*mean)) *std = NAN;
}

/* Paired difference a - b of the losses at step t over the same problems: mean and its
 * standard error (the problems' own spread cancels). */
static void paired(const double *a, const double *b, int runs, int steps, int t, double *mean, double *sem)
{
    double s = 0, s2 = 0;
    for (int r = 0; r < runs; r++) s += a[(size_t)r * (steps + 1) + t] - b[(size_t)r * (steps + 1) + t];
    *mean = s / runs;
    for (int r = 0; r < runs; r++) {
        double d = a[(size_t)r * (steps + 1) + t] - b[(size_t)r * (steps + 1) + t] - *mean;
        s2 += d * d;
    }
    *sem = runs > 1 ? sqrt(s2 / (runs - 1) / runs) : 0;
    if (!isfinite(*mean)) *sem = NAN;
}

/* The optimizer named by --optimizer: a baseline, or a checkpoint file. */
static l2l_status load_optimizer(const char *spec, l2l_opt_kind *kind, l2l_lstm *net,
                                 l2l_kv *meta, int *n_meta, l2l_error *err)
{
    int k = l2l_opt_parse(spec);
    if (k >= 0) {
        *kind = (l2l_opt_kind)k;
        return L2L_OK;
    }
    *kind = L2L_OPT_LSTM;
    return l2l_checkpoint_load(spec, net, meta, n_meta, err);
}

static const char *meta_get(const l2l_kv *meta, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(meta[i].key, key) == 0) return meta[i].value;
    return NULL;
}

static const char eval_help[] =
    "usage: l2l eval --optimizer FILE|sgd|nag|rmsprop|adam|nag-floor [--lr X] [options]\n"
    "Runs an optimizer on R freshly sampled test problems (a seed stream disjoint from\n"
    "training and validation) and writes step,mean,std (steps 0..S) as CSV.\n\n"
    "  --task quadratic|mnist --preset paper|deepmind --dim --batch --hidden --layers --pool\n"
    "  --activation --data DIR   the task, as for 'l2l train' (mnist uses the test split)\n"
    "  --lr X        learning rate of a baseline (required for one)\n"
    "  --steps S (100)  --runs R (100)  --seed S (1)  --csv OUT (default: stdout)  --threads N\n";

static int cmd_eval(int argc, char **argv)
{
    static const int allowed[] = {O_TASK, O_PRESET, O_DATA, O_DIM, O_BATCH, O_HIDDEN, O_LAYERS,
                                  O_ACTIVATION, O_POOL, O_STEPS, O_RUNS, O_LR, O_SEED, O_CSV, O_OPTIMIZER,
                                  O_THREADS, 0};
    opts o;
    int first, r = parse_opts("eval", argc, argv, allowed, eval_help, &o, &first);
    if (r) return r < 0 ? 0 : r;
    if (first < argc) return usage_error("eval", "unexpected argument '%s'", argv[first]);
    if (!o.optimizer) return usage_error("eval", "--optimizer FILE|sgd|nag|rmsprop|adam|nag-floor is required");
    l2l_error err = {0};
    l2l_opt_kind kind;
    l2l_lstm net = {0};
    if (load_optimizer(o.optimizer, &kind, &net, NULL, NULL, &err)) return fail("eval", &err);
    if (kind != L2L_OPT_LSTM && !o.has_lr)
        return usage_error("eval", "--lr is required for a baseline (find one with 'l2l tune')");
    l2l_task task;
    l2l_dataset ds;
    if (make_task(&o, "t10k", 0, &task, &ds, &err)) {
        l2l_lstm_free(&net);
        return fail("eval", &err);
    }
    double *loss = malloc(sizeof(double) * o.runs * (o.steps + 1));
    l2l_status st = loss ? l2l_evaluate(&task, kind, (float)o.lr, &net, o.runs, o.steps, o.seed,
                                        L2L_STREAM_TEST, loss, &err)
                         : l2l_error_set(&err, L2L_ERR_NOMEM, "out of memory");
    l2l_atomic af = {.f = stdout};
    if (!st && o.csv) st = l2l_atomic_open(&af, o.csv, &err);
    if (!st) {
        fprintf(af.f, "step,mean,std\n");
        for (int t = 0; t <= o.steps; t++) {
            double m, s;
            stats(loss, o.runs, o.steps, t, &m, &s);
            fprintf(af.f, "%d,%.9g,%.9g\n", t, m, s);
        }
        if (o.csv) st = l2l_atomic_commit(&af, &err);
    }
    free(loss);
    l2l_lstm_free(&net), l2l_task_free(&task), l2l_dataset_free(&ds);
    return st ? fail("eval", &err) : 0;
}

static const char tune_help[] =
    "usage: l2l tune --optimizer sgd|nag|rmsprop|adam|nag-floor [options]\n"
    "Tries learning rates 1e-5, 3.16e-5, ..., 10, 31.6 (half-decade steps) on --tune-runs\n"
    "validation problems and prints the one with the lowest mean loss at the last step.\n\n"
    "  --task --preset --dim --batch --hidden --layers --activation --data --pool   as for train\n"
    "  --steps S (100)  --tune-runs R (20)  --seed S (1)  --threads N\n";

static int cmd_tune(int argc, char **argv)
{
    static const int allowed[] = {O_TASK, O_PRESET, O_DATA, O_DIM, O_BATCH, O_HIDDEN, O_LAYERS,
                                  O_ACTIVATION, O_POOL, O_STEPS, O_TUNE_RUNS, O_SEED, O_OPTIMIZER, O_THREADS, 0};
    opts o;
    int first, r = parse_opts("tune", argc, argv, allowed, tune_help, &o, &first);
    if (r) return r < 0 ? 0 : r;
    if (first < argc) return usage_error("tune", "unexpected argument '%s'", argv[first]);
    int k = o.optimizer ? l2l_opt_parse(o.optimizer) : -1;
    if (k < 0) return usage_error("tune", "--optimizer must be one of sgd, nag, rmsprop, adam, nag-floor");
    l2l_error err = {0};
    l2l_task task;
    l2l_dataset ds;
    if (make_task(&o, "train", 0, &task, &ds, &err)) return fail("tune", &err);
    float lr;
    double best;
    l2l_status st = l2l_tune(&task, (l2l_opt_kind)k, o.tune_runs, o.steps, o.seed, &lr, &best, &err);
    l2l_task_free(&task), l2l_dataset_free(&ds);
    if (st) return fail("tune", &err);
    if (!isfinite(best)) {
        fprintf(stderr, "l2l tune: error: %s diverged at every learning rate of the grid\n", o.optimizer);
        return 1;
    }
    printf("%g\n", lr);
    fprintf(stderr, "l2l tune: %s: lr %g, mean loss %.6g at step %d on %d validation problems\n",
            o.optimizer, lr, best, o.steps, o.tune_runs);
    return 0;
}

static l2l_status write_compare(const char *dir, const curve *c, int nc, int runs, int steps,
                                const char *title, l2l_error *err)
{
    char path[4096];
    l2l_atomic af;
    snprintf(path, sizeof path, "%s/curves.csv", dir);
    l2l_status st = l2l_atomic_open(&af, path, err);
    if (st) return st;
    fprintf(af.f, "optimizer,step,mean,std\n");
    for (int i = 0; i < nc; i++)
        for (int t = 0; t <= steps; t++) {
            double m, s;
            stats(c[i].loss, runs, steps, t, &m, &s);
            fprintf(af.f, "%s,%d,%.9g,%.9g\n", c[i].name, t, m, s);
        }
    if ((st = l2l_atomic_commit(&af, err))) return st;

    snprintf(path, sizeof path, "%s/summary.csv", dir);
    if ((st = l2l_atomic_open(&af, path, err))) return st;
    fprintf(af.f, "optimizer,lr,final_mean,final_std,final_sem,runs,minus_lstm_mean,minus_lstm_sem\n");
    for (int i = 0; i < nc; i++) {
        double m, s, dm, ds;
        stats(c[i].loss, runs, steps, steps, &m, &s);
        paired(c[i].loss, c[0].loss, runs, steps, steps, &dm, &ds);
        if (c[i].kind == L2L_OPT_LSTM) fprintf(af.f, "%s,,", c[i].name);
        else fprintf(af.f, "%s,%g,", c[i].name, c[i].lr);
        fprintf(af.f, "%.9g,%.9g,%.9g,%d,%.9g,%.9g\n", m, s, s / sqrt(runs), runs, dm, ds);
    }
    if ((st = l2l_atomic_commit(&af, err))) return st;

    l2l_series series[8];
    double *x = malloc(sizeof(double) * (steps + 1)), *ys = malloc(sizeof(double) * nc * (steps + 1));
    if (!x || !ys) {
        free(x), free(ys);
        return l2l_error_set(err, L2L_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t <= steps; t++) x[t] = t;
    for (int i = 0; i < nc; i++) {
        for (int t = 0; t <= steps; t++) {
            double s;
            stats(c[i].loss, runs, steps, t, &ys[(size_t)i * (steps + 1) + t], &s);
        }
        series[i] = (l2l_series){c[i].name, steps + 1, x, ys + (size_t)i * (steps + 1), NULL};
    }
    snprintf(path, sizeof path, "%s/loss.png", dir);
    st = l2l_plot_lines(path, title, "step", "loss (mean over test problems)", 1, series, nc, err);
    if (!st) {
        snprintf(path, sizeof path, "%s/loss.svg", dir);
        st = l2l_plot_lines(path, title, "step", "loss (mean over test problems)", 1, series, nc, err);
    }
    free(x), free(ys);
    return st;
}

static const char compare_help[] =
    "usage: l2l compare --optimizer FILE --out DIR [options]\n"
    "Tunes the baselines (by default the paper's: SGD, NAG, RMSprop and Adam) on validation\n"
    "problems, evaluates them and the learned optimizer on the same R fresh test problems,\n"
    "and writes DIR/curves.csv (optimizer,step,mean,std), DIR/summary.csv\n"
    "(optimizer,lr,final_mean,final_std,...) and DIR/loss.png (and .svg); prints the\n"
    "summary as a table.\n\n"
    "  --task --preset --dim --batch --hidden --layers --activation --data --pool   as for train\n"
    "  --steps S (100)  --runs R (100)  --tune-runs V (20)  --seed S (1)  --threads N\n"
    "  --baselines LIST   hand-written optimizers to tune and compare, from sgd, nag,\n"
    "                     rmsprop, adam and nag-floor (default sgd,nag,rmsprop,adam)\n";

static int cmd_compare(int argc, char **argv)
{
    static const int allowed[] = {O_TASK, O_PRESET, O_DATA, O_DIM, O_BATCH, O_HIDDEN, O_LAYERS,
                                  O_ACTIVATION, O_POOL, O_STEPS, O_RUNS, O_TUNE_RUNS, O_SEED, O_OUT,
                                  O_OPTIMIZER, O_THREADS, O_BASELINES, 0};
    opts o;
    int first, r = parse_opts("compare", argc, argv, allowed, compare_help, &o, &first);
    if (r) return r < 0 ? 0 : r;
    if (first < argc) return usage_error("compare", "unexpected argument '%s'", argv[first]);
    if (!o.optimizer) return usage_error("compare", "--optimizer FILE.safetensors is required");
    if (!o.out) return usage_error("compare", "--out DIR is required");
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "l2l compare: error: cannot create the directory '%s': %s\n", o.out, strerror(errno));
        return 1;
    }
    l2l_error err = {0};
    l2l_lstm net;
    l2l_kv meta[L2L_MAX_META];
    int nm = 0;
    if (l2l_checkpoint_load(o.optimizer, &net, meta, &nm, &err)) return fail("compare", &err);
    const char *ck_task = meta_get(meta, nm, "task");
    if (ck_task && strcmp(ck_task, o.task) != 0)
        fprintf(stderr, "l2l compare: note: %s was trained on task '%s'; evaluating on '%s'\n",
                o.optimizer, ck_task, o.task);

    l2l_task vtask, ttask;
    l2l_dataset vds, tds;
    if (make_task(&o, "train", 0, &vtask, &vds, &err)) {
        l2l_lstm_free(&net);
        return fail("compare", &err);
    }
    if (make_task(&o, "t10k", 0, &ttask, &tds, &err)) {
        l2l_lstm_free(&net), l2l_task_free(&vtask), l2l_dataset_free(&vds);
        return fail("compare", &err);
    }
    curve c[1 + L2L_OPT_LSTM];
    int nc = 0;
    l2l_status st = L2L_OK;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k <= o.n_base && !st; k++) {
        curve *cv = &c[nc++];
        memset(cv, 0, sizeof *cv);
        cv->kind = k == 0 ? L2L_OPT_LSTM : (l2l_opt_kind)o.base[k - 1];
        snprintf(cv->name, sizeof cv->name, "%s", k == 0 ? "lstm" : l2l_opt_name(cv->kind));
        if (cv->kind != L2L_OPT_LSTM) {
            double best;
            st = l2l_tune(&vtask, cv->kind, o.tune_runs, o.steps, o.seed, &cv->lr, &best, &err);
            if (st) break;
            fprintf(stderr, "l2l compare: tuned %-8s lr %-8g (validation loss %.4g)\n", cv->name, cv->lr, best);
        }
        cv->loss = malloc(sizeof(double) * o.runs * (o.steps + 1));
        if (!cv->loss) st = l2l_error_set(&err, L2L_ERR_NOMEM, "out of memory");
        else st = l2l_evaluate(&ttask, cv->kind, cv->lr, &net, o.runs, o.steps, o.seed, L2L_STREAM_TEST, cv->loss, &err);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!st) {
        char title[160];
        snprintf(title, sizeof title, "%s, %d test problems", ttask.name, o.runs);
        st = write_compare(o.out, c, nc, o.runs, o.steps, title, &err);
    }
    if (!st) {
        printf("%-9s %-9s %12s %12s %12s   %s\n", "optimizer", "lr", "final mean", "std", "std err",
               "minus lstm (paired)");
        for (int i = 0; i < nc; i++) {
            double m, s, dm, ds;
            stats(c[i].loss, o.runs, o.steps, o.steps, &m, &s);
            paired(c[i].loss, c[0].loss, o.runs, o.steps, o.steps, &dm, &ds);
            char lr[32] = "-", diff[64] = "";
            if (c[i].kind != L2L_OPT_LSTM) {
                snprintf(lr, sizeof lr, "%g", c[i].lr);
                snprintf(diff, sizeof diff, "%+.4g +- %.2g", dm, ds);
            }
            printf("%-9s %-9s %12.5g %12.5g %12.5g   %s\n", c[i].name, lr, m, s, s / sqrt(o.runs), diff);
        }
        printf("(loss at step %d, mean over %d test problems; %s; %.1f s)\n", o.steps, o.runs, ttask.name,
               (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
        fprintf(stderr, "l2l compare: wrote %s/curves.csv, summary.csv, loss.png, loss.svg\n", o.out);
    }
    for (int i = 0; i < nc; i++) free(c[i].loss);
    l2l_lstm_free(&net), l2l_task_free(&vtask), l2l_task_free(&ttask);
    l2l_dataset_free(&vds), l2l_dataset_free(&tds);
    return st ? fail("compare", &err) : 0;
}

/* ----------------------------------------------------------------- info */

static const char info_help[] =
    "usage: l2l info FILE.safetensors\n"
    "Prints a checkpoint's architecture, metadata and tensors.\n";

static int cmd_info(int argc, char **argv)
{
    static const int allowed[] = {0};
    opts o;
    int first, r = parse_opts("info", argc, argv, allowed, info_help, &o, &first);
    if (r) return r < 0 ? 0 : r;
    if (argc - first != 1) return usage_error("info", "expects exactly one checkpoint file");
    l2l_error err = {0};
    l2l_lstm net;
    l2l_kv meta[L2L_MAX_META];
    int nm = 0;
    if (l2l_checkpoint_load(argv[first], &net, meta, &nm, &err)) return fail("info", &err);
    const l2l_lstm_config *c = &net.cfg;
    printf("%s\n", argv[first]);
    printf("  optimizer: coordinatewise LSTM, %d layer%s x %d units, %d input%s (%s", c->layers,
           c->layers == 1 ? "" : "s", c->hidden, net.n_in, net.n_in == 1 ? "" : "s",
           c->preproc == L2L_PREPROC_LOGSIGN ? "log/sign" : "raw gradient");
    if (c->preproc == L2L_PREPROC_LOGSIGN) printf(", p = %g", c->p);
    printf("), output scale %g\n", c->scale);
    printf("  weights: %zu floats\n", net.n_params);
    printf("  metadata:\n");
    for (int i = 0; i < nm; i++) printf("    %-16s %s\n", meta[i].key, meta[i].value);
    printf("  tensors:\n");
    l2l_tensor_desc td[4 * L2L_MAX_LAYERS + 2];
    int nt = l2l_lstm_tensors(&net.cfg, td);
    for (int i = 0; i < nt; i++) {
        double s2 = 0;
        for (size_t j = 0; j < td[i].count; j++) s2 += (double)net.phi[td[i].offset + j] * net.phi[td[i].offset + j];
        char shape[48];
        if (td[i].ndim == 2) snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)td[i].shape[0], (long long)td[i].shape[1]);
        else snprintf(shape, sizeof shape, "(%lld)", (long long)td[i].shape[0]);
        printf("    %-18s %-10s norm %.4g\n", td[i].name, shape, sqrt(s2));
    }
    l2l_lstm_free(&net);
    return 0;
}

/* ----------------------------------------------------------------- main */

static const char main_help[] =
    "usage: l2l COMMAND [options]   (l2l COMMAND --help for each)\n\n"
    "Learned optimizers: 'Learning to learn by gradient descent by gradient descent'.\n\n"
    "  train     meta-train an LSTM optimizer on a task family; save it as safetensors\n"
    "  eval      run an optimizer on fresh test problems; write its mean loss curve (CSV)\n"
    "  tune      find a baseline's best learning rate on validation problems\n"
    "  compare   tuned SGD/NAG/RMSprop/Adam vs a learned optimizer: CSVs, table, figure\n"
    "  info      describe a checkpoint\n"
    "  plot      draw the curves of a CSV (curves.csv, a sweep) as a PNG or SVG figure\n"
    "  bench     throughput, FLOP rate and memory of meta-training and inference\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main_help, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(main_help, stdout);
        return 0;
    }
    struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train}, {"eval", cmd_eval},   {"tune", cmd_tune},
                {"plot", l2l_cmd_plot},
                {"compare", cmd_compare}, {"info", cmd_info}, {"bench", l2l_cmd_bench}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "l2l: unknown command '%s'\n", cmd);
    fputs(main_help, stderr);
    return EXIT_USAGE;
}
