/* l2l train: meta-trains a learned optimizer on a task family and saves the best
 * (validated) weights as safetensors, with the options that made it as metadata.
 *
 * Nothing is lost on a fault: every few epochs (and minutes) the whole training state
 * goes atomically to OUT's stem + ".state.safetensors" with the command line that made
 * it, and 'l2l train --resume STATE' continues to the same bytes. The log is written to
 * LOG.part, whose length each state records, and becomes LOG at the end. --out is
 * replaced only by a finished run's result: a failed or diverged run's best phi goes to
 * the stem + ".failed.safetensors".
 *
 * Under mpirun every process runs this command and meta-training shares its work among
 * them (tools/comm.h, docs/DISTRIBUTED.md); process 0 alone writes the log, the states
 * and the checkpoints, and reports. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "commands.h"
#include "family.h"
#include "io/atomic.h"
#include "paths.h"

static const opt_choice preprocs[] = {{"none", L2L_PREPROC_NONE}, {"logsign", L2L_PREPROC_LOGSIGN},
                                     {"logsign-rms", L2L_PREPROC_LOGSIGN_RMS}, {NULL, 0}};
static const opt_choice selections[] = {{"mean", L2L_SELECTION_MEAN}, {"final", L2L_SELECTION_FINAL}, {NULL, 0}};
static const opt_choice objectives[] = {{"sum", L2L_OBJECTIVE_SUM}, {"log", L2L_OBJECTIVE_LOG}, {NULL, 0}};
enum { RECIPE_PAPER = 0, RECIPE_L2L };
static const opt_choice recipes[] = {{"paper", RECIPE_PAPER}, {"l2l", RECIPE_L2L}, {NULL, 0}};

/* The warm start: before meta-training proper, `epochs` epochs of imitating a
 * hand-written teacher, with their own unroll length and meta learning rate. */
typedef struct {
    int epochs; /* 0 = none */
    l2l_opt_spec teacher;
    int unroll;
    float lr;
} warm_start;

/* --warm-start none | TEACHER:LR:EPOCHS */
static int parse_warm_start(const char *s, void *dest)
{
    warm_start *w = dest;
    if (strcmp(s, "none") == 0) {
        w->epochs = 0;
        return 0;
    }
    char name[16], *end;
    const char *colon = strchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof name) return -1;
    memcpy(name, s, (size_t)(colon - s));
    name[colon - s] = 0;
    const int kind = l2l_opt_kind_parse(name);
    const float lr = (float)strtod(colon + 1, &end);
    if (kind < 0 || end == colon + 1 || *end != ':' || !isfinite(lr) || !(lr > 0))
        return -1;
    const char *q = end + 1;
    const long epochs = strtol(q, &end, 10);
    if (end == q || *end || epochs < 1 || epochs > 100000000) return -1;
    w->epochs = (int)epochs;
    w->teacher = (l2l_opt_spec){(l2l_opt_kind)kind, lr, NULL};
    return 0;
}

static void format_warm_start(const void *dest, char *buf, size_t n)
{
    const warm_start *w = dest;
    if (!w->epochs) snprintf(buf, n, "none");
    else snprintf(buf, n, "%s:%g:%d", l2l_opt_kind_name(w->teacher.kind), (double)w->teacher.lr, w->epochs);
}

/* --estimator tbptt | es:PAIRS:SIGMA | pes:PAIRS:SIGMA | imitate:TEACHER:LR, into an
 * l2l_train_config. */
static int parse_estimator(const char *s, void *dest)
{
    l2l_train_config *c = dest;
    char *end;
    if (strcmp(s, "tbptt") == 0) {
        c->estimator = L2L_ESTIMATOR_TBPTT;
        return 0;
    }
    const int pes = strncmp(s, "pes:", 4) == 0;
    if (pes || strncmp(s, "es:", 3) == 0) {
        const char *q = s + 3 + pes;
        long pairs = strtol(q, &end, 10);
        if (end == q || *end != ':' || pairs < 1 || pairs > 100000) return -1;
        q = end + 1;
        errno = 0;
        float sigma = (float)strtod(q, &end); /* checked as the float it will be */
        if (end == q || *end || errno == EINVAL || !isfinite(sigma) || !(sigma > 0)) return -1;
        c->estimator = pes ? L2L_ESTIMATOR_PES : L2L_ESTIMATOR_ES;
        c->es.pairs = (int)pairs, c->es.sigma = sigma;
        return 0;
    }
    if (strncmp(s, "imitate:", 8) == 0) {
        char name[16];
        const char *q = s + 8, *colon = strchr(q, ':');
        if (!colon || (size_t)(colon - q) >= sizeof name) return -1;
        memcpy(name, q, (size_t)(colon - q));
        name[colon - q] = 0;
        const int kind = l2l_opt_kind_parse(name);
        float lr = (float)strtod(colon + 1, &end);
        if (kind < 0 || end == colon + 1 || *end || !isfinite(lr) || !(lr > 0)) return -1;
        c->estimator = L2L_ESTIMATOR_IMITATE;
        c->teacher = (l2l_opt_spec){(l2l_opt_kind)kind, lr, NULL};
        return 0;
    }
    return -1;
}

static void format_estimator(const void *dest, char *buf, size_t n)
{
    const l2l_train_config *c = dest;
    switch (c->estimator) {
    case L2L_ESTIMATOR_TBPTT: snprintf(buf, n, "tbptt"); break;
    case L2L_ESTIMATOR_ES:
    case L2L_ESTIMATOR_PES:
        snprintf(buf, n, "%s:%d:%g", c->estimator == L2L_ESTIMATOR_PES ? "pes" : "es", c->es.pairs,
                 (double)c->es.sigma);
        break;
    case L2L_ESTIMATOR_IMITATE:
        snprintf(buf, n, "imitate:%s:%g", l2l_opt_kind_name(c->teacher.kind), (double)c->teacher.lr);
        break;
    }
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = 1, tool_comm_signalled(sig); }

enum { MAX_CURRICULUM = 8 };

/* --curriculum T1,T2,...: unroll lengths, at most MAX_CURRICULUM. */
typedef struct {
    int n;
    int unroll[MAX_CURRICULUM];
} curriculum;

static int parse_curriculum(const char *s, void *dest)
{
    curriculum *c = dest;
    const int n = opts_parse_ints(s, c->unroll, MAX_CURRICULUM, 1, 100000);
    if (n < 1) return -1;
    c->n = n;
    return 0;
}

static void format_curriculum(const void *dest, char *buf, size_t n)
{
    const curriculum *c = dest;
    opts_format_ints(c->unroll, c->n, buf, n);
}

/* The options, pointing into this struct (which is therefore never copied). */
typedef struct {
    family f;
    l2l_train_config cfg;
    l2l_lstm_config lc;
    int recipe;
    warm_start warm;
    curriculum curr;
    const char *out, *log, *init, *resume;
    int shared; /* one LSTM even for a task with parameter groups */
    int save_every;
    float save_minutes;
    opt_desc recipe_opts[5], lstm_opts[7], meta_opts[14], state_opts[4];
    opt_group groups[8];
} train_args;

/* The command line that defines a run, as the training state records it: at most
 * MAX_ARGS arguments of up to 255 bytes, as metadata pairs argv.0, argv.1, ... */
enum { MAX_ARGS = 40 };

/* A run is a sequence of stages (stage_config), each one l2l_meta_train_resume from
 * the best phi of the one before; the log, the progress and the states number epochs
 * across them all. */
typedef struct {
    FILE *log;
    const char *logpart, *state;
    int stage, warm;       /* the stage running (0-based); stage 0 is a warm start */
    int offset;            /* the epochs before it */
    int stage_epochs;      /* its epochs */
    int prev_best;         /* the epoch of the best phi before it (0: the run's start) */
    double prev_seconds;   /* the seconds before it */
    int epochs, tty, save_every; /* epochs: of every stage */
    double save_seconds, last_save;
    int argc;
    char **argv;
    int state_warned, saved_epoch;
    int rank;      /* this process of an MPI job: process 0 alone writes the log and the files */
    char cwd[256]; /* where the run started, for a resume from elsewhere ("" if too long) */
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

static void put(l2l_kv *kv, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(l2l_kv *kv, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(kv->key, sizeof kv->key, "%s", key);
    vsnprintf(kv->value, sizeof kv->value, fmt, ap);
    va_end(ap);
}

/* The state after this epoch, with the command line and the log's length, so that a
 * resumed run finds its arguments and cuts the log back to this epoch. A failure is
 * reported once and training goes on: the run itself is still good. */
static void save_state(train_ctx *c, const l2l_train_progress *p)
{
    l2l_kv meta[MAX_ARGS + 5];
    int n = 0;
    for (int i = 0; i < c->argc; i++) put(&meta[n++], "argv", "%s", c->argv[i]);
    for (int i = 0; i < n; i++) snprintf(meta[i].key, sizeof meta[i].key, "argv.%d", i);
    long bytes = fflush(c->log) == 0 ? ftell(c->log) : -1;
    put(&meta[n++], "log_bytes", "%ld", bytes);
    put(&meta[n++], "stage", "%d", c->stage + 1);
    put(&meta[n++], "prev_best", "%d", c->prev_best);
    put(&meta[n++], "prev_seconds", "%.17g", c->prev_seconds);
    if (c->cwd[0]) put(&meta[n++], "cwd", "%s", c->cwd);
    l2l_error err = {0};
    if (bytes < 0) l2l_error_set(&err, L2L_STATUS_IO, "cannot write the log %s", c->logpart);
    if (bytes < 0 || l2l_train_state_save(c->state, p->state, meta, n, &err)) {
        if (!c->state_warned++)
            fprintf(stderr, "%sl2l train: warning: the training state was not saved (%s); training goes on\n",
                    c->tty ? "\n" : "", err.msg);
        return;
    }
    c->last_save = p->seconds;
    c->saved_epoch = c->offset + p->epoch;
}

/* After every epoch: a line of the log, the training state when it is due (or training
 * is being stopped), and a progress bar on a terminal. */
static int train_progress(const l2l_train_progress *p, void *vctx)
{
    train_ctx *c = vctx;
    c->last = *p;
    /* across the stages: after the first, best epoch 0 is the stage's start, the best
     * phi of the stages before */
    const int epoch = c->offset + p->epoch;
    const int best = p->best_epoch || c->stage == 0 ? c->offset + p->best_epoch : c->prev_best;
    c->last.epoch = epoch, c->last.best_epoch = best, c->last.seconds = c->prev_seconds + p->seconds;
    fprintf(c->log, "%d,%.9g,%.9g,%.9g,%.9g,%d,%.3f\n", epoch, p->train_loss, p->grad_norm,
            p->valid_loss, p->best_valid, best, c->last.seconds);
    if (fflush(c->log) != 0) c->log_status = L2L_STATUS_IO;
    const int due = (c->save_every > 0 && epoch % c->save_every == 0) ||
                    (c->save_seconds > 0 && p->seconds - c->last_save >= c->save_seconds);
    const int stop = tool_comm_any(interrupted); /* a signal to any process stops them all */
    if (c->rank == 0 && p->epoch < c->stage_epochs && (due || stop)) save_state(c, p);
    if (c->tty) {
        char eta[32];
        fmt_duration(eta, sizeof eta, p->seconds / p->epoch * (c->stage_epochs - p->epoch));
        int width = 24, fill = (int)((double)width * epoch / c->epochs);
        fprintf(stderr, "\r[%.*s%*s] epoch %d/%d  train %.4g  best valid %.4g (epoch %d)  %s %d ETA %s  ",
                fill, "========================", width - fill, "", epoch, c->epochs, p->train_loss,
                p->best_valid, best, c->warm && c->stage == 0 ? "warm start" : "stage", c->stage + 1, eta);
        if (epoch == c->epochs) fputc('\n', stderr);
    }
    return stop || c->log_status;
}

/* The checkpoint's metadata: every option that has a key, at its resolved value, then
 * how the run went. The architecture's keys are l2l_checkpoint_save's own. */
static int train_metadata(const opt_group *groups, const l2l_task *task, const train_ctx *tc,
                          const char *completed, l2l_kv *meta, int max)
{
    int n = opts_metadata(groups, meta, max - 6);
    const l2l_train_progress *p = &tc->last;
    put(&meta[n++], "task_name", "%s", task->name);
    put(&meta[n++], "epochs_run", "%d", p->epoch);
    put(&meta[n++], "best_epoch", "%d", p->best_epoch);
    put(&meta[n++], "best_valid", "%.9g", p->best_valid);
    put(&meta[n++], "rng_state", "%016llx%016llx%016llx%016llx", (unsigned long long)p->rng.s[0],
        (unsigned long long)p->rng.s[1], (unsigned long long)p->rng.s[2], (unsigned long long)p->rng.s[3]);
    put(&meta[n++], "completed", "%s", completed);
    return n;
}

static const opt_command train_cmd = {
    "train",
    "usage: l2l train --out FILE.safetensors [options]\n"
    "       l2l train --resume STATE [--threads N] [--save-every K] [--save-minutes M]\n"
    "Meta-trains a coordinatewise LSTM optimizer on a task family and saves the best\n"
    "(validated) weights as safetensors.\n",
    "Exit status: 0 done, 1 failed or interrupted (the training state is kept), 2 bad\n"
    "usage, 3 diverged (the best phi goes to STEM.failed.safetensors; --out is untouched).\n",
    0};

static void args_init(train_args *a)
{
    memset(a, 0, sizeof *a);
    family_init(&a->f);
    l2l_train_config_default(&a->cfg); /* the library's meta-training defaults are the tool's */
    a->lc = family_lstm_config(&a->f); /* its defaults resolved after parsing */
    a->save_every = 10;
    a->save_minutes = 5;
    a->warm = (warm_start){0, {L2L_OPT_KIND_NAG_FLOOR, 1, NULL}, 5, 3e-3f};
    l2l_train_config *cfg = &a->cfg;
    l2l_lstm_config *lc = &a->lc;
    const opt_desc recipe_opts[] = {
        {"recipe", OPT_CHOICE, &a->recipe, .choices = recipes,
         .help = "the defaults of every option below: l2l (the default for\n"
                 "mnist: an imitation warm start, then persistent evolution\n"
                 "strategies on the meta-objective; docs/METHOD.md) or paper\n"
                 "(the default for quadratic and --preset deepmind)",
         .key = "recipe"},
        {"warm-start", OPT_CUSTOM, &a->warm, .parse = parse_warm_start, .format = format_warm_start,
         .arg = "W", .expect = "none or TEACHER:LR:EPOCHS (a teacher sgd, nag, rmsprop, adam or "
                               "nag-floor, lr > 0, 1..100000000 epochs), e.g. nag-floor:1:80",
         .help = "before meta-training, EPOCHS epochs of imitating TEACHER at\n"
                 "learning rate LR (none; l2l: nag-floor:1:80); meta-training\n"
                 "goes on from the best of them, whose phi goes to\n"
                 "OUT's stem + .warm.safetensors",
         .key = "warm_start"},
        {"warm-unroll", OPT_INT, &a->warm.unroll, 1, 1e5, .arg = "T",
         .help = "the warm start's steps per unroll (5)", .key = "warm_unroll"},
        {"warm-lr", OPT_FLOAT, &a->warm.lr, 1e-12, 1e6, .arg = "X",
         .help = "the warm start's meta learning rate (3e-3)", .key = "warm_lr"},
        {NULL},
    };
    const opt_desc lstm_opts[] = {
        {"lstm-layers", OPT_INT, &lc->layers, 0, L2L_MAX_LAYERS, .arg = "L",
         .help = "LSTM layers (2); 0 = a linear map"},
        {"lstm-hidden", OPT_INT, &lc->hidden, 1, 1024, .arg = "H", .help = "LSTM units per layer (20)"},
        {"preproc", OPT_CHOICE, &lc->preproc, .choices = preprocs,
         .help = "input preprocessing (quadratic: none; mnist: logsign;\n"
                 "--recipe l2l: logsign-rms, which adds g / rms(g))"},
        {"p", OPT_FLOAT, &lc->p, 1e-3, 79, .arg = "P",
         .help = "preprocessing constant (10; --preset deepmind: 5; l2l: 12)"},
        {"scale", OPT_FLOAT, &lc->scale, -1e6, 1e6, .arg = "S",
         .help = "output scale, not 0 (quadratic: 1; mnist: 0.1;\n--preset deepmind: 0.01)"},
        {"shared", OPT_FLAG, &a->shared, 1,
         .help = "one LSTM for every parameter; without it a task with\n"
                 "parameter groups (conv: kernels, other) gets one LSTM\n"
                 "per group, as in the paper",
         .key = "shared"},
        {NULL},
    };
    const opt_desc meta_opts[] = {
        {"epochs", OPT_INT, &cfg->epochs, 1, 1e8, .arg = "E", .help = "fresh optimizees (paper: 1000; l2l: 20, after the warm start)", .key = "epochs"},
        {"unroll", OPT_INT, &cfg->unroll, 1, 1e5, .arg = "T", .help = "steps per truncated unroll (20)",
         .key = "unroll"},
        {"curriculum", OPT_CUSTOM, &a->curr, .parse = parse_curriculum, .format = format_curriculum,
         .arg = "T1,T2,...", .expect = "unroll lengths 1..100000 separated by commas, at most 8, e.g. 5,10,20",
         .help = "an unroll-length curriculum: the epochs in equal parts, part i\n"
                 "with unroll Ti, each from the best phi of the one before\n"
                 "(instead of --unroll)",
         .key = "curriculum"},
        {"lr", OPT_FLOAT, &cfg->lr, 1e-12, 1e6, .arg = "X", .help = "meta-Adam learning rate (1e-3)",
         .key = "meta_lr"},
        {"clip", OPT_FLOAT, &cfg->clip, 0, 1e12, .arg = "C",
         .help = "clip the meta-gradient's norm to C (default 0: off)", .key = "clip"},
        {"eval-every", OPT_INT, &cfg->eval_every, 0, 1e8, .arg = "K",
         .help = "validate every K epochs (paper: 50; l2l: 10; 0 = never, keep\nthe last phi)", .key = "eval_every"},
        {"valid", OPT_INT, &cfg->n_valid, 1, 1e5, .arg = "V", .help = "validation problems (paper: 20; l2l: 5)",
         .key = "n_valid"},
        {"select", OPT_CHOICE, &cfg->selection, .choices = selections,
         .help = "keep the phi with the best mean loss over the steps (the\n"
                 "meta-objective; paper) or the best final loss (l2l)",
         .key = "select"},
        {"objective", OPT_CHOICE, &cfg->objective, .choices = objectives,
         .help = "meta-loss sum_t f(theta_t) (paper) or sum_t log f (l2l)", .key = "objective"},
        {"estimator", OPT_CUSTOM, cfg, .parse = parse_estimator, .format = format_estimator,
         .arg = "E",
         .expect = "tbptt, es:PAIRS:SIGMA or pes:PAIRS:SIGMA (1..100000 pairs, sigma > 0) or "
                   "imitate:TEACHER:LR (a teacher sgd, nag, rmsprop, adam or nag-floor, lr > 0), "
                   "e.g. es:8:0.01 or imitate:nag-floor:1",
         .help = "the meta-gradient (paper: tbptt; l2l: pes:6:0.01): tbptt\n"
                 "backpropagates through truncated unrolls; es:PAIRS:SIGMA makes\n"
                 "one update per epoch from evolution strategies over the whole\n"
                 "run (PAIRS pairs at phi +- SIGMA e); pes:PAIRS:SIGMA one per\n"
                 "unroll from persistent evolution strategies (PAIRS pairs of\n"
                 "particles carried across the unrolls); imitate:TEACHER:LR trains\n"
                 "the optimizer to make the updates of TEACHER\n"
                 "(sgd|nag|rmsprop|adam|nag-floor) at learning rate LR from the\n"
                 "same gradients (see --warm-start)",
         .key = "estimator"},
        {"init", OPT_PATH, &a->init, .arg = "FILE", .expect = "a checkpoint",
         .help = "start from FILE's optimizer instead of a fresh one", .key = "init"},
        {"out", OPT_PATH, &a->out, .arg = "FILE", .expect = "a file name", .help = "the checkpoint (required)"},
        {"log", OPT_PATH, &a->log, .arg = "FILE", .expect = "a file name",
         .help = "a CSV line per epoch (default: OUT's stem with -log.csv)"},
        {NULL},
    };
    const opt_desc state_opts[] = {
        {"save-every", OPT_INT, &a->save_every, 0, 1e8, .arg = "K",
         .help = "save the training state every K epochs (10; 0 = by time only)"},
        {"save-minutes", OPT_FLOAT, &a->save_minutes, 0, 1e6, .arg = "M",
         .help = "and every M minutes (5; 0 = by epochs only)"},
        {"resume", OPT_PATH, &a->resume, .arg = "STATE", .expect = "a training state",
         .help = "continue the run that saved STATE (OUT's stem +\n"
                 ".state.safetensors), with its options"},
        {NULL},
    };
    OPT_TABLE_COPY(a->recipe_opts, recipe_opts);
    OPT_TABLE_COPY(a->lstm_opts, lstm_opts);
    OPT_TABLE_COPY(a->meta_opts, meta_opts);
    OPT_TABLE_COPY(a->state_opts, state_opts);
    const opt_group groups[] = {{"task", a->f.opts}, {NULL, a->f.train_opts}, {"recipe", a->recipe_opts},
                                {"optimizer", a->lstm_opts}, {"meta-training", a->meta_opts}, {NULL, a->f.run_opts},
                                {"training state", a->state_opts}, {NULL, NULL}};
    memcpy(a->groups, groups, sizeof groups);
}

/* The l2l recipe (docs/METHOD.md section 4): every value it sets that the command line
 * does not give. The recipe's default follows the task: l2l for MNIST networks, the
 * paper's for quadratics and for the authors' code's settings. */
static tool_result apply_recipe(train_args *a)
{
    if (!opts_given(a->recipe_opts, "recipe"))
        a->recipe = a->f.task == FAMILY_MNIST && !a->f.deepmind ? RECIPE_L2L : RECIPE_PAPER;
    if (a->recipe != RECIPE_L2L) return TOOL_OK;
    if (a->f.task != FAMILY_MNIST)
        return tool_usage("train", "--recipe l2l is made for --task mnist; give --recipe paper and the "
                                   "options you want for --task %s", family_task_name(&a->f));
    l2l_train_config *c = &a->cfg;
    const opt_desc *m = a->meta_opts;
    if (!opts_given(a->f.train_opts, "meta-batch")) a->f.meta_batch = 4;
    if (!opts_given(a->lstm_opts, "p")) a->lc.p = 12;
    if (!opts_given(a->lstm_opts, "preproc")) a->lc.preproc = L2L_PREPROC_LOGSIGN_RMS;
    if (!opts_given(m, "epochs")) c->epochs = 20;
    if (!opts_given(m, "eval-every")) c->eval_every = 10;
    if (!opts_given(m, "valid")) c->n_valid = 5;
    if (!opts_given(m, "select")) c->selection = L2L_SELECTION_FINAL;
    if (!opts_given(m, "objective")) c->objective = L2L_OBJECTIVE_LOG;
    if (!opts_given(m, "estimator")) parse_estimator("pes:6:0.01", c);
    if (!opts_given(a->recipe_opts, "warm-start")) parse_warm_start("nag-floor:1:80", &a->warm);
    return TOOL_OK;
}

/* Parses argv and checks what the tables cannot: everything that can be known before
 * any work starts, output paths included. */
static tool_result parse_args(train_args *a, int argc, char **argv)
{
    args_init(a);
    tool_result r = opts_parse(&train_cmd, a->groups, argc, argv, NULL, NULL);
    if (r != TOOL_OK) return r;
    if (a->resume) return TOOL_OK; /* the rest comes from the state, checked then */
    if (!a->out) return tool_usage("train", "--out FILE.safetensors is required");
    a->cfg.steps = a->f.steps, a->cfg.seed = a->f.seed;
    const l2l_lstm_config def = family_lstm_config(&a->f); /* for the task and preset given */
    if (!opts_given(a->lstm_opts, "preproc")) a->lc.preproc = def.preproc;
    if (!opts_given(a->lstm_opts, "p")) a->lc.p = def.p;
    if (!opts_given(a->lstm_opts, "scale")) a->lc.scale = def.scale;
    if ((r = apply_recipe(a)) != TOOL_OK) return r;
    if (a->cfg.steps % a->cfg.unroll)
        return tool_usage("train", "--steps (%d) must be a multiple of --unroll (%d)", a->cfg.steps, a->cfg.unroll);
    if (a->warm.epochs && a->cfg.steps % a->warm.unroll)
        return tool_usage("train", "--steps (%d) must be a multiple of --warm-unroll (%d)", a->cfg.steps,
                          a->warm.unroll);
    if (a->curr.n && opts_given(a->meta_opts, "unroll"))
        return tool_usage("train", "--curriculum gives the unroll lengths; drop --unroll");
    for (int i = 0; i < a->curr.n; i++)
        if (a->cfg.steps % a->curr.unroll[i])
            return tool_usage("train", "--steps (%d) must be a multiple of every --curriculum length (%d)",
                              a->cfg.steps, a->curr.unroll[i]);
    if (a->cfg.epochs < a->curr.n)
        return tool_usage("train", "--epochs (%d) must be at least the number of --curriculum lengths (%d)",
                          a->cfg.epochs, a->curr.n);
    if (a->lc.scale == 0) return tool_usage("train", "--scale must not be 0 (the optimizer would never move)");
    static const char *const arch[] = {"p", "scale", "preproc", "lstm-layers", "lstm-hidden", "shared"};
    for (int i = 0; i < 6 && a->init; i++)
        if (opts_given(a->lstm_opts, arch[i]))
            return tool_usage("train", "--init FILE takes the optimizer's architecture, preprocessing, "
                                       "scale and weights from FILE; drop --p, --scale, --preproc and --lstm-*");
    for (int i = 1; i < argc; i++)
        if (strlen(argv[i]) > 255 || argc - 1 > MAX_ARGS)
            return tool_usage("train", "the training state records the command line in at most %d arguments "
                                       "of 255 bytes; '%.40s...' does not fit", MAX_ARGS, argv[i]);
    if ((r = family_check(&a->f, "train")) != TOOL_OK) return r;
    if ((r = path_check_output("train", "out", a->out)) != TOOL_OK) return r;
    if (a->log && (r = path_check_output("train", "log", a->log)) != TOOL_OK) return r;
    if (a->log && path_same(a->log, a->out))
        return tool_usage("train", "--log and --out name the same file '%s'; the log would overwrite the "
                                   "checkpoint", a->out);
    return TOOL_OK;
}

/* The stages of the run: the warm start, if there is one, then meta-training, in as many
 * parts as --curriculum has unroll lengths (the last part takes the epochs that do not
 * divide evenly). */
static int n_stages(const train_args *a) { return (a->warm.epochs > 0) + (a->curr.n ? a->curr.n : 1); }

/* Stage k's configuration and the epochs of the stages before it. */
static l2l_train_config stage_config(const train_args *a, int k, int *offset)
{
    l2l_train_config c = a->cfg;
    const int warm = a->warm.epochs > 0;
    if (warm && k == 0) {
        c.estimator = L2L_ESTIMATOR_IMITATE, c.teacher = a->warm.teacher;
        c.unroll = a->warm.unroll, c.lr = a->warm.lr, c.epochs = a->warm.epochs;
        *offset = 0;
        return c;
    }
    const int part = k - warm, parts = a->curr.n ? a->curr.n : 1, share = a->cfg.epochs / parts;
    c.epochs = part == parts - 1 ? a->cfg.epochs - share * (parts - 1) : share;
    if (a->curr.n) c.unroll = a->curr.unroll[part];
    *offset = a->warm.epochs + share * part;
    return c;
}

/* --resume STATE: the state's command line, then this one's (which may change only
 * --threads and how often states are saved), parsed afresh into a. */
static tool_result parse_resumed(train_args *a, int argc, char **argv, const l2l_kv *meta, int nm,
                                 char **args, int *n_args)
{
    static const char *const changeable[] = {"resume", "threads", "save-every", "save-minutes"};
    for (const opt_group *g = a->groups; g->opts; g++)
        for (const opt_desc *d = g->opts; d->name; d++) {
            int ok = !d->set;
            for (int i = 0; i < 4 && !ok; i++) ok = strcmp(d->name, changeable[i]) == 0;
            if (!ok)
                return tool_usage("train", "--resume STATE continues a run with the options it was started "
                                           "with; --%s cannot be given with it", d->name);
        }
    int n = 0;
    args[n++] = "train";
    for (int i = 0; i < nm && n <= MAX_ARGS; i++) {
        char key[16];
        snprintf(key, sizeof key, "argv.%d", n - 1);
        for (int j = 0; j < nm; j++)
            if (strcmp(meta[j].key, key) == 0) args[n++] = (char *)meta[j].value;
    }
    if (n == 1) return tool_usage("train", "%s records no command line: not a state of 'l2l train'", a->resume);
    const char *state = a->resume;
    *n_args = n;
    for (int i = 1; i < argc && n < 2 * MAX_ARGS + 2; i++) {
        if (strcmp(argv[i], "--resume") == 0) i++;
        else if (strncmp(argv[i], "--resume=", 9) != 0) args[n++] = argv[i];
    }
    tool_result r = parse_args(a, n, args);
    a->resume = state;
    if (r == TOOL_USAGE) fprintf(stderr, "l2l train: (in the command line that %s records)\n", state);
    return r;
}

/* The log's rows up to the state's epoch: a resumed run cuts off what the killed one
 * wrote after its last state, then appends. */
static FILE *open_log(const char *part, long keep)
{
    if (keep < 0) return fopen(part, "w");
    FILE *f = fopen(part, "r+");
    if (f && (ftruncate(fileno(f), keep) != 0 || fseek(f, keep, SEEK_SET) != 0)) {
        fclose(f);
        return NULL;
    }
    return f;
}

tool_result cmd_train(int argc, char **argv)
{
    train_args a;
    tool_result r = parse_args(&a, argc, argv);
    if (r != TOOL_OK) return r;
    l2l_error err = {0};
    l2l_train_state from = {0};
    l2l_kv smeta[L2L_MAX_META];
    int nsm = 0;
    char *args[2 * MAX_ARGS + 2];
    int run_argc = argc - 1; /* the arguments that define the run, without --resume */
    char **run_argv = argv + 1;
    long log_bytes = -1;
    int stage = 0, prev_best = 0; /* from the state, when resuming */
    double prev_seconds = 0;
    if (a.resume) {
        if (l2l_train_state_load(a.resume, &from, smeta, &nsm, &err)) return tool_fail("train", &err);
        /* the recorded paths are relative to where the run started: go there first */
        for (int i = 0; i < nsm; i++) {
            if (strcmp(smeta[i].key, "log_bytes") == 0) log_bytes = strtol(smeta[i].value, NULL, 10);
            if (strcmp(smeta[i].key, "stage") == 0) stage = (int)strtol(smeta[i].value, NULL, 10);
            if (strcmp(smeta[i].key, "prev_best") == 0) prev_best = (int)strtol(smeta[i].value, NULL, 10);
            if (strcmp(smeta[i].key, "prev_seconds") == 0) prev_seconds = strtod(smeta[i].value, NULL);
            if (r == TOOL_OK && strcmp(smeta[i].key, "cwd") == 0 && chdir(smeta[i].value) != 0)
                r = tool_usage("train", "%s was saved by a run started in '%s', which cannot be entered: %s",
                               a.resume, smeta[i].value, strerror(errno));
        }
        int n_args = 0;
        if (r == TOOL_OK) r = parse_resumed(&a, argc, argv, smeta, nsm, args, &n_args);
        if (r == TOOL_OK && log_bytes < 0)
            r = tool_usage("train", "%s records no log length: not a state of 'l2l train'", a.resume);
        if (r == TOOL_OK && stage == 0 && n_stages(&a) == 1) stage = 1; /* a state from before stages */
        if (r == TOOL_OK && (stage < 1 || stage > n_stages(&a)))
            r = tool_usage("train", "%s records no stage of its run: not a state of 'l2l train'", a.resume);
        stage--;
        if (r != TOOL_OK) {
            l2l_train_state_free(&from);
            return r;
        }
        run_argc = n_args - 1, run_argv = args + 1;
    }
    tool_threads(a.f.threads);
    char logpath[4096], logpart[4200], statepath[4096], failedpath[4096], warmpath[4096];
    if (a.log) snprintf(logpath, sizeof logpath, "%s", a.log);
    if ((!a.log && !path_sibling(a.out, "-log.csv", logpath, sizeof logpath)) ||
        !path_sibling(a.out, ".state.safetensors", statepath, sizeof statepath) ||
        !path_sibling(a.out, ".failed.safetensors", failedpath, sizeof failedpath) ||
        !path_sibling(a.out, ".warm.safetensors", warmpath, sizeof warmpath)) {
        l2l_train_state_free(&from);
        return tool_usage("train", "--out '%.64s...' is too long", a.out);
    }
    snprintf(logpart, sizeof logpart, "%s.part", logpath);

    problem_set ps;
    l2l_lstm net = {0};
    l2l_status st = family_problems(&a.f, "train", 1, &ps, &err);
    if (!st && !a.shared && ps.task.n_groups > 1) { /* one LSTM per parameter group */
        a.lc.groups = ps.task.n_groups;
        memcpy(a.lc.group_names, ps.task.group_names, sizeof a.lc.group_names);
    }
    if (!st) st = a.resume ? l2l_lstm_create(&net, &from.arch, &err)
                  : a.init ? l2l_checkpoint_load(a.init, &net, NULL, NULL, &err)
                           : l2l_lstm_create(&net, &a.lc, &err);
    if (st) {
        l2l_train_state_free(&from), problem_set_free(&ps);
        return tool_fail("train", &err);
    }
    if (a.init || a.resume) a.lc = net.cfg; /* the starting point's architecture */
    else {
        l2l_rng rng;
        l2l_rng_seed(&rng, a.cfg.seed, L2L_STREAM_INIT);
        l2l_lstm_init(&net, &rng);
    }

    const int warm = a.warm.epochs > 0, n = n_stages(&a);
    train_ctx tc = {.logpart = logpart, .state = statepath, .warm = warm, .epochs = a.warm.epochs + a.cfg.epochs,
                    .prev_best = prev_best, .prev_seconds = prev_seconds, .tty = isatty(2) && tool_comm_rank() == 0,
                    .save_every = a.save_every, .save_seconds = 60.0 * a.save_minutes,
                    .last_save = from.seconds, .argc = run_argc, .argv = run_argv, .rank = tool_comm_rank()};
    if (!getcwd(tc.cwd, sizeof tc.cwd)) tc.cwd[0] = 0;
    tc.log = tc.rank ? fopen("/dev/null", "w") : open_log(logpart, log_bytes);
    if (!tc.log) {
        fprintf(stderr, "l2l train: error: cannot %s the log '%s': %s\n", a.resume ? "reopen" : "create",
                logpart, strerror(errno));
        l2l_train_state_free(&from), l2l_lstm_free(&net), problem_set_free(&ps);
        return TOOL_FAILED;
    }
    if (!a.resume) fprintf(tc.log, "epoch,train_loss,grad_norm,valid_loss,best_valid,best_epoch,seconds\n");
    if (tool_comm_join()) { /* another process of the job could not set up; it said why */
        fclose(tc.log);
        if (tc.rank == 0 && !a.resume) remove(logpart);
        l2l_train_state_free(&from), l2l_lstm_free(&net), problem_set_free(&ps);
        return TOOL_FAILED;
    }
    a.cfg.comm = tool_comm();
    char warm_desc[64] = "", unrolls[128];
    if (warm) format_warm_start(&a.warm, warm_desc, sizeof warm_desc);
    if (a.curr.n) format_curriculum(&a.curr, unrolls, sizeof unrolls);
    else snprintf(unrolls, sizeof unrolls, "%d", a.cfg.unroll);
    if (tc.rank == 0 && tool_comm_size() > 1)
        fprintf(stderr, "l2l train: %d processes share the work (MPI)\n", tool_comm_size());
    char groups[L2L_MAX_GROUPS * L2L_GROUP_NAME] = "";
    for (int g = 0, w = 0; g < net.cfg.groups && net.cfg.groups > 1; g++)
        w += snprintf(groups + w, sizeof groups - (size_t)w, "%s%s", g ? ", " : "", net.cfg.group_names[g]);
    if (tc.rank == 0)
        fprintf(stderr, "l2l train: %s, %zu coordinates, LSTM %dx%d%s%s (%zu weights), %s%s%s%d epochs x %d steps "
                "(unroll %s)%s\n", ps.task.name, ps.task.n, a.lc.layers, a.lc.hidden,
                net.cfg.groups > 1 ? " for each parameter group: " : "", groups, net.n_params,
                warm ? "a warm start imitating " : "", warm_desc, warm ? " epochs, then " : "", a.cfg.epochs,
                a.cfg.steps, unrolls, a.resume ? ", resumed" : "");
    tool_comm_state(statepath);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const l2l_train_state *resumed = a.resume ? &from : NULL;
    for (; stage < n; stage++) { /* each stage from the best phi of the one before */
        int offset;
        const l2l_train_config sc = stage_config(&a, stage, &offset);
        tc.stage = stage, tc.offset = offset, tc.stage_epochs = sc.epochs;
        st = l2l_meta_train_resume(&net, &ps.task, &sc, resumed, train_progress, &tc, &err);
        resumed = NULL;
        if (st || tc.last.epoch != offset + sc.epochs) break; /* failed or interrupted */
        tc.prev_best = tc.last.best_epoch, tc.prev_seconds = tc.last.seconds, tc.last_save = 0;
        if (warm && stage == 0) { /* the warm start's best phi, apart */
            l2l_kv wmeta[L2L_MAX_META - 9];
            int nw = train_metadata(a.groups, &ps.task, &tc, "warm start", wmeta, L2L_MAX_META - 9);
            if (tc.rank == 0) st = l2l_checkpoint_save(warmpath, &net, wmeta, nw, &err);
            if (tool_comm_any(st != L2L_STATUS_OK)) { /* every process stops if process 0 could not save */
                if (!st) st = l2l_error_set(&err, L2L_STATUS_IO, "process 0 could not save %s", warmpath);
                break;
            }
            if (tc.rank == 0)
                fprintf(stderr, "%sl2l train: the warm start's best phi (epoch %d, validation %.4g) is in %s\n",
                        tc.tty ? "\n" : "", tc.prev_best, tc.last.best_valid, warmpath);
        }
    }
    l2l_train_state_free(&from);
    if ((fclose(tc.log) != 0 || tc.log_status) && tc.rank == 0) {
        fprintf(stderr, "l2l train: error: the log '%s' could not be written completely\n", logpart);
        if (!st) st = L2L_STATUS_IO, snprintf(err.msg, sizeof err.msg, "the log could not be written");
    }
    if (tc.tty) fputc('\n', stderr);

    l2l_kv meta[L2L_MAX_META - 9]; /* room beside the checkpoint's 9 architecture keys */
    /* finished: every epoch ran (a signal during the last one changes nothing) */
    const int finished = !st && stage == n;
    const char *how = st == L2L_STATUS_NUMERIC ? "diverged" : st ? "error" : finished ? "yes" : "interrupted";
    int nm = train_metadata(a.groups, &ps.task, &tc, how, meta, L2L_MAX_META - 9);
    l2l_error serr = {0};
    if (tc.rank != 0) /* every process has the same outcome; process 0 writes and reports it */
        r = finished ? TOOL_OK : st == L2L_STATUS_NUMERIC ? TOOL_DIVERGED : TOOL_FAILED;
    else if (finished) { /* the checkpoint, the log, no state left */
        r = TOOL_OK;
        /* In this order, a kill leaves either the state (resume redoes the end) or the
         * finished checkpoint; between the last two steps, only LOG.part is left over. */
        if (l2l_checkpoint_save(a.out, &net, meta, nm, &serr)) r = tool_fail("train", &serr);
        else if (l2l_atomic_remove(statepath), (errno = path_replace(logpart, logpath)))
            fprintf(stderr, "l2l train: error: cannot rename the log %s to %s: %s\n", logpart, logpath,
                    strerror(errno)), r = TOOL_FAILED;
        else fprintf(stderr, "l2l train: saved %s (%.1f s of meta-training)\n", a.out, tc.last.seconds);
    } else if (!st) {
        fprintf(stderr, "l2l train: interrupted after epoch %d; %s is untouched. ", tc.last.epoch, a.out);
        if (tc.saved_epoch == tc.last.epoch) fprintf(stderr, "Continue with 'l2l train --resume %s'\n", statepath);
        else fprintf(stderr, "The training state could not be saved.\n");
        r = TOOL_FAILED;
    } else { /* failed: the best phi so far, apart, and the previous --out as it was */
        int kept = !l2l_checkpoint_save(failedpath, &net, meta, nm, &serr);
        fprintf(stderr, "l2l train: %s: %s\nl2l train: %s is untouched; %s%s; the log so far is %s\n",
                st == L2L_STATUS_NUMERIC ? "diverged" : "error", err.msg, a.out,
                kept ? "the best phi so far is in " : "the best phi could not be saved: ",
                kept ? failedpath : serr.msg, logpart);
        r = st == L2L_STATUS_NUMERIC ? TOOL_DIVERGED : TOOL_FAILED;
    }
    l2l_lstm_free(&net), problem_set_free(&ps);
    return r;
}
