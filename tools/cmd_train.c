/* l2l train: meta-trains a learned optimizer on a task family and saves the best
 * (validated) weights as safetensors, with the options that made it as metadata. */
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

#include "commands.h"
#include "family.h"

static const opt_choice preprocs[] = {{"none", L2L_PREPROC_NONE}, {"logsign", L2L_PREPROC_LOGSIGN}, {NULL, 0}};
static const opt_choice selections[] = {{"mean", L2L_SELECTION_MEAN}, {"final", L2L_SELECTION_FINAL}, {NULL, 0}};
static const opt_choice objectives[] = {{"sum", L2L_OBJECTIVE_SUM}, {"log", L2L_OBJECTIVE_LOG}, {NULL, 0}};

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

/* After every epoch: a line of the log, and a progress bar on a terminal. */
static int train_progress(const l2l_train_progress *p, void *vctx)
{
    train_ctx *c = vctx;
    c->last = *p;
    if (c->log) {
        fprintf(c->log, "%d,%.9g,%.9g,%.9g,%.9g,%d,%.3f\n", p->epoch, p->train_loss, p->grad_norm,
                p->valid_loss, p->best_valid, p->best_epoch, p->seconds);
        if (fflush(c->log) != 0) c->log_status = L2L_STATUS_IO;
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

static void put(l2l_kv *kv, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(l2l_kv *kv, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(kv->key, sizeof kv->key, "%s", key);
    vsnprintf(kv->value, sizeof kv->value, fmt, ap);
    va_end(ap);
}

/* The checkpoint's metadata: every option that has a key, at its resolved value, then
 * how the run went. The architecture's keys are l2l_checkpoint_save's own. */
static int train_metadata(const opt_group *groups, const l2l_task *task, const train_ctx *tc,
                          l2l_status st, l2l_kv *meta, int max)
{
    int n = opts_metadata(groups, meta, max - 6);
    const l2l_train_progress *p = &tc->last;
    put(&meta[n++], "task_name", "%s", task->name);
    put(&meta[n++], "epochs_run", "%d", p->epoch);
    put(&meta[n++], "best_epoch", "%d", p->best_epoch);
    put(&meta[n++], "best_valid", "%.9g", p->best_valid);
    put(&meta[n++], "rng_state", "%016llx%016llx%016llx%016llx", (unsigned long long)p->rng.s[0],
        (unsigned long long)p->rng.s[1], (unsigned long long)p->rng.s[2], (unsigned long long)p->rng.s[3]);
    put(&meta[n++], "completed", "%s", st ? "error" : interrupted ? "interrupted" : "yes");
    return n;
}

static const opt_command train_cmd = {
    "train",
    "usage: l2l train --out FILE.safetensors [options]\n"
    "Meta-trains a coordinatewise LSTM optimizer on a task family and saves the best\n"
    "(validated) weights as safetensors.\n",
    NULL, 0};

tool_result cmd_train(int argc, char **argv)
{
    family f;
    family_init(&f);
    l2l_train_config cfg; /* the library's meta-training defaults are the tool's */
    l2l_train_config_default(&cfg);
    l2l_lstm_config lc = family_lstm_config(&f); /* its defaults resolved below */
    const char *out = NULL, *log = NULL, *init = NULL;
    opt_desc lstm_opts[] = {
        {"lstm-layers", OPT_INT, &lc.layers, 0, L2L_MAX_LAYERS, .arg = "L",
         .help = "LSTM layers (2); 0 = a linear map"},
        {"lstm-hidden", OPT_INT, &lc.hidden, 1, 1024, .arg = "H", .help = "LSTM units per layer (20)"},
        {"preproc", OPT_CHOICE, &lc.preproc, .choices = preprocs,
         .help = "input preprocessing (quadratic: none; mnist: logsign)"},
        {"p", OPT_FLOAT, &lc.p, 1e-3, 79, .arg = "P",
         .help = "preprocessing constant (10; --preset deepmind: 5)"},
        {"scale", OPT_FLOAT, &lc.scale, -1e6, 1e6, .arg = "S",
         .help = "output scale (quadratic: 1; mnist: 0.1;\n--preset deepmind: 0.01)"},
        {NULL},
    };
    opt_desc meta_opts[] = {
        {"epochs", OPT_INT, &cfg.epochs, 1, 1e8, .arg = "E", .help = "fresh optimizees (1000)", .key = "epochs"},
        {"unroll", OPT_INT, &cfg.unroll, 1, 1e5, .arg = "T", .help = "steps per truncated unroll (20)",
         .key = "unroll"},
        {"lr", OPT_FLOAT, &cfg.lr, 1e-12, 1e6, .arg = "X", .help = "meta-Adam learning rate (1e-3)",
         .key = "meta_lr"},
        {"clip", OPT_FLOAT, &cfg.clip, 0, 1e12, .arg = "C",
         .help = "clip the meta-gradient's norm to C (default 0: off)", .key = "clip"},
        {"eval-every", OPT_INT, &cfg.eval_every, 0, 1e8, .arg = "K",
         .help = "validate every K epochs (50; 0 = never, keep the last phi)", .key = "eval_every"},
        {"valid", OPT_INT, &cfg.n_valid, 1, 1e5, .arg = "V", .help = "validation problems (20)",
         .key = "n_valid"},
        {"select", OPT_CHOICE, &cfg.selection, .choices = selections,
         .help = "keep the phi with the best mean loss over the steps (the\n"
                 "meta-objective, default) or the best final loss",
         .key = "select"},
        {"objective", OPT_CHOICE, &cfg.objective, .choices = objectives,
         .help = "meta-loss sum_t f(theta_t) (the paper, default) or sum_t log f", .key = "objective"},
        {"estimator", OPT_CUSTOM, &cfg, .parse = parse_estimator, .format = format_estimator,
         .arg = "E",
         .expect = "tbptt, es:PAIRS:SIGMA or pes:PAIRS:SIGMA (1..100000 pairs, sigma > 0) or "
                   "imitate:TEACHER:LR (a teacher sgd, nag, rmsprop, adam or nag-floor, lr > 0), "
                   "e.g. es:8:0.01 or imitate:nag-floor:1",
         .help = "the meta-gradient: tbptt (default, the paper) backpropagates\n"
                 "through truncated unrolls; es:PAIRS:SIGMA makes one update per\n"
                 "epoch from evolution strategies over the whole run (PAIRS pairs\n"
                 "at phi +- SIGMA e); pes:PAIRS:SIGMA one per unroll from\n"
                 "persistent evolution strategies (PAIRS pairs of particles carried\n"
                 "across the unrolls); imitate:TEACHER:LR trains the optimizer to\n"
                 "make the updates of TEACHER (sgd|nag|rmsprop|adam|nag-floor) at\n"
                 "learning rate LR from the same gradients (a warm start: continue\n"
                 "with another 'l2l train --init')",
         .key = "estimator"},
        {"init", OPT_PATH, &init, .arg = "FILE", .expect = "a checkpoint",
         .help = "start from FILE's optimizer instead of a fresh one", .key = "init"},
        {"out", OPT_PATH, &out, .arg = "FILE", .expect = "a file name", .help = "the checkpoint (required)"},
        {"log", OPT_PATH, &log, .arg = "FILE", .expect = "a file name",
         .help = "a CSV line per epoch (default: OUT with -log.csv)"},
        {NULL},
    };
    opt_group groups[] = {{"task", f.opts}, {NULL, f.train_opts}, {"optimizer", lstm_opts},
                          {"meta-training", meta_opts}, {NULL, f.run_opts}, {NULL, NULL}};
    tool_result r = opts_parse(&train_cmd, groups, argc, argv, NULL, NULL);
    if (r != TOOL_OK) return r;
    tool_threads(f.threads);
    cfg.steps = f.steps, cfg.seed = f.seed;
    if (!out) return tool_usage("train", "--out FILE.safetensors is required");
    if (cfg.steps % cfg.unroll)
        return tool_usage("train", "--steps (%d) must be a multiple of --unroll (%d)", cfg.steps, cfg.unroll);
    static const char *const arch[] = {"p", "scale", "preproc", "lstm-layers", "lstm-hidden"};
    for (int i = 0; i < 5 && init; i++)
        if (opts_given(lstm_opts, arch[i]))
            return tool_usage("train", "--init FILE takes the optimizer's architecture, preprocessing, "
                                       "scale and weights from FILE; drop --p, --scale, --preproc and --lstm-*");
    if ((r = family_check(&f, "train")) != TOOL_OK) return r;
    const l2l_lstm_config def = family_lstm_config(&f); /* for the task and preset given */
    if (!opts_given(lstm_opts, "preproc")) lc.preproc = def.preproc;
    if (!opts_given(lstm_opts, "p")) lc.p = def.p;
    if (!opts_given(lstm_opts, "scale")) lc.scale = def.scale;

    l2l_error err = {0};
    problem_set ps;
    l2l_lstm net = {0};
    l2l_status st = family_problems(&f, "train", 1, &ps, &err);
    if (!st) st = init ? l2l_checkpoint_load(init, &net, NULL, NULL, &err) : l2l_lstm_create(&net, &lc, &err);
    if (st) {
        problem_set_free(&ps);
        return tool_fail("train", &err);
    }
    if (init) lc = net.cfg; /* the starting point's architecture */
    else {
        l2l_rng rng;
        l2l_rng_seed(&rng, cfg.seed, L2L_STREAM_INIT);
        l2l_lstm_init(&net, &rng);
    }

    char logpath[4096];
    if (log) snprintf(logpath, sizeof logpath, "%s", log);
    else {
        snprintf(logpath, sizeof logpath, "%s", out);
        char *dot = strstr(logpath, ".safetensors");
        if (dot) *dot = 0;
        strncat(logpath, "-log.csv", sizeof logpath - strlen(logpath) - 1);
    }
    train_ctx tc = {.epochs = cfg.epochs, .tty = isatty(2)};
    tc.log = fopen(logpath, "w");
    if (!tc.log) {
        fprintf(stderr, "l2l train: error: cannot create the log '%s': %s\n", logpath, strerror(errno));
        l2l_lstm_free(&net), problem_set_free(&ps);
        return TOOL_FAILED;
    }
    fprintf(tc.log, "epoch,train_loss,grad_norm,valid_loss,best_valid,best_epoch,seconds\n");
    fprintf(stderr, "l2l train: %s, %zu coordinates, LSTM %dx%d (%zu weights), %d epochs x %d steps (unroll %d)\n",
            ps.task.name, ps.task.n, lc.layers, lc.hidden, net.n_params, cfg.epochs, cfg.steps, cfg.unroll);
    signal(SIGINT, on_sigint);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = l2l_meta_train(&net, &ps.task, &cfg, train_progress, &tc, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if (fclose(tc.log) != 0 || tc.log_status)
        fprintf(stderr, "l2l train: warning: the log '%s' could not be written completely\n", logpath);
    if (tc.tty) fputc('\n', stderr);
    if (st) fprintf(stderr, "l2l train: error: %s\n", err.msg);

    /* Save whatever is best so far, even after an error or an interrupt. */
    l2l_kv meta[L2L_MAX_META - 9]; /* room beside the checkpoint's 9 architecture keys */
    int nm = train_metadata(groups, &ps.task, &tc, st, meta, L2L_MAX_META - 9);
    l2l_error serr = {0};
    l2l_status sst = l2l_checkpoint_save(out, &net, meta, nm, &serr);
    if (sst) fprintf(stderr, "l2l train: error: %s\n", serr.msg);
    else fprintf(stderr, "l2l train: saved %s (%.1f s of meta-training)\n", out, secs);
    l2l_lstm_free(&net), problem_set_free(&ps);
    return st || sst || interrupted ? TOOL_FAILED : TOOL_OK;
}
