/* l2l eval: runs one optimizer, learned or hand-written, on fresh test problems and
 * writes its mean loss curve as CSV. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "family.h"
#include "io/atomic.h"
#include "paths.h"
#include "stats.h"

static const opt_command eval_cmd = {
    "eval",
    "usage: l2l eval --optimizer FILE|sgd|nag|rmsprop|adam|nag-floor [--lr X] [options]\n"
    "Runs an optimizer on R freshly sampled test problems (a seed stream disjoint from\n"
    "training and validation) and writes step,mean,std (steps 0..S) as CSV.\n",
    "With --task mnist the networks train on the test split's digits.\n", 0};

tool_result cmd_eval(int argc, char **argv)
{
    family f;
    family_init(&f);
    l2l_opt_spec spec = {0};
    const char *optimizer = NULL, *csv = NULL;
    int runs = 100;
    opt_desc own[] = {
        {"optimizer", OPT_PATH, &optimizer, .arg = "FILE|NAME", .expect = "a checkpoint or a name",
         .help = "a checkpoint, or sgd|nag|rmsprop|adam|nag-floor (required)"},
        {"lr", OPT_FLOAT, &spec.lr, 1e-12, 1e6, .arg = "X",
         .help = "learning rate of a baseline (required for one)"},
        {"runs", OPT_INT, &runs, 1, 1e6, .arg = "R", .help = "test problems (100)"},
        {"csv", OPT_PATH, &csv, .arg = "OUT", .expect = "a file name", .help = "the curve (default: stdout)"},
        {NULL},
    };
    tool_result r = family_parse(&f, &eval_cmd, "evaluation", own, argc, argv);
    if (r != TOOL_OK) return r;
    if (!optimizer) return tool_usage("eval", "--optimizer FILE|sgd|nag|rmsprop|adam|nag-floor is required");
    if (csv && (r = path_check_output("eval", "csv", csv)) != TOOL_OK) return r;
    l2l_error err = {0};
    l2l_lstm net = {0};
    if (family_optimizer(optimizer, &spec, &net, NULL, NULL, &err)) return tool_fail("eval", &err);
    if (spec.kind != L2L_OPT_KIND_LSTM && !opts_given(own, "lr"))
        return tool_usage("eval", "--lr is required for a baseline (find one with 'l2l tune')");
    problem_set ps;
    const l2l_eval_config ec = {runs, f.steps, f.seed, L2L_STREAM_TEST};
    double *loss = malloc(sizeof(double) * ec.runs * (ec.steps + 1));
    l2l_status st = family_problems(&f, "t10k", 0, &ps, &err);
    if (!st) st = loss ? l2l_evaluate(&ps.task, &spec, &ec, loss, &err)
                       : l2l_error_set(&err, L2L_STATUS_NOMEM, "out of memory");
    const int diverged = st ? 0 : stats_diverged(loss, ec.runs, ec.steps);
    if (diverged) {
        free(loss);
        l2l_lstm_free(&net), problem_set_free(&ps);
        return tool_diverged("eval", "%d of %d runs diverged (the loss became non-finite or grew a million-fold)%s; nothing was "
                             "written", diverged, ec.runs, spec.kind == L2L_OPT_KIND_LSTM ? ""
                             : " at this learning rate (find one with 'l2l tune')");
    }
    l2l_atomic af = {.f = stdout};
    if (!st && csv) st = l2l_atomic_open(&af, csv, &err);
    if (!st) {
        fprintf(af.f, "step,mean,std\n");
        stats_write_curve(af.f, NULL, loss, ec.runs, ec.steps);
        if (csv) st = l2l_atomic_commit(&af, &err);
    }
    free(loss);
    l2l_lstm_free(&net), problem_set_free(&ps);
    return st ? tool_fail("eval", &err) : TOOL_OK;
}
