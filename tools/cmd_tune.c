/* l2l tune: picks a hand-written optimizer's learning rate on validation problems. */
#include <math.h>
#include <stdio.h>

#include "commands.h"
#include "family.h"

static const opt_command tune_cmd = {
    "tune",
    "usage: l2l tune --optimizer sgd|nag|rmsprop|adam|nag-floor [options]\n"
    "Tries learning rates 1e-5, 3.16e-5, ..., 10, 31.6 (half-decade steps) on --tune-runs\n"
    "validation problems and prints the one with the lowest mean loss at the last step.\n",
    "With --task mnist the networks train on the training split's digits.\n", 0};

tool_result cmd_tune(int argc, char **argv)
{
    family f;
    family_init(&f);
    int kind = -1, runs = 20;
    opt_desc own[] = {
        {"optimizer", OPT_CHOICE, &kind, .choices = family_baselines, .help = "the baseline (required)"},
        {"tune-runs", OPT_INT, &runs, 1, 1e5, .arg = "R", .help = "validation problems (20)"},
        {NULL},
    };
    tool_result r = family_parse(&f, &tune_cmd, "tuning", own, argc, argv);
    if (r != TOOL_OK) return r;
    if (kind < 0) return tool_usage("tune", "--optimizer must be one of sgd, nag, rmsprop, adam, nag-floor");
    l2l_error err = {0};
    problem_set ps;
    const l2l_eval_config vc = {runs, f.steps, f.seed, L2L_STREAM_VALID};
    float lr;
    double best;
    l2l_status st = family_problems(&f, "train", 0, &ps, &err);
    if (!st) st = l2l_tune(&ps.task, (l2l_opt_kind)kind, &vc, &lr, &best, &err);
    problem_set_free(&ps);
    if (st) return tool_fail("tune", &err);
    const char *name = l2l_opt_kind_name((l2l_opt_kind)kind);
    if (!isfinite(best)) return tool_diverged("tune", "%s diverged at every learning rate of the grid", name);
    char text[32];
    opts_format_float(lr, text, sizeof text);
    printf("%s\n", text);
    fprintf(stderr, "l2l tune: %s: lr %s, mean loss %.6g at step %d on %d validation problems\n", name,
            text, best, vc.steps, vc.runs);
    return TOOL_OK;
}
