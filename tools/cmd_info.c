/* l2l info: describes a checkpoint (its architecture, metadata and tensors) or a
 * training state (where the run stands and the command line that resumes it). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const opt_command info_cmd = {
    "info",
    "usage: l2l info FILE.safetensors\n"
    "Prints a checkpoint's architecture, metadata and tensors, or where a training state\n"
    "(OUT.state.safetensors of 'l2l train') stands.\n",
    NULL, 1};

static void describe_state(const char *path, const l2l_train_state *s, const l2l_kv *meta, int nm)
{
    printf("%s\n  training state after epoch %d (%.1f s of meta-training)\n", path, s->epoch, s->seconds);
    printf("  optimizer: coordinatewise LSTM, %d layers x %d units, %zu weights\n", s->arch.layers,
           s->arch.hidden, s->n_params);
    printf("  best validation score %.6g (epoch %d); meta-Adam step %lld; estimator stream: %s\n",
           s->best_valid, s->best_epoch, (long long)s->adam_t, s->has_noise ? "yes" : "none");
    printf("  command line:");
    for (int i = 0; i < nm; i++)
        if (strncmp(meta[i].key, "argv.", 5) == 0) printf(" %s", meta[i].value);
    printf("\n  continue with: l2l train --resume %s\n", path);
}

tool_result cmd_info(int argc, char **argv)
{
    opt_desc none[] = {{NULL}};
    opt_group groups[] = {{NULL, none}, {NULL, NULL}};
    char *args[1];
    int n_args;
    tool_result r = opts_parse(&info_cmd, groups, argc, argv, args, &n_args);
    if (r != TOOL_OK) return r;
    if (n_args != 1) return tool_usage("info", "expects exactly one checkpoint file");
    l2l_error err = {0};
    l2l_lstm net;
    l2l_kv meta[L2L_MAX_META];
    int nm = 0;
    if (l2l_checkpoint_load(args[0], &net, meta, &nm, &err)) {
        l2l_error serr;
        l2l_train_state s;
        if (l2l_train_state_load(args[0], &s, meta, &nm, &serr)) return tool_fail("info", &err);
        describe_state(args[0], &s, meta, nm);
        l2l_train_state_free(&s);
        return TOOL_OK;
    }
    const l2l_lstm_config *c = &net.cfg;
    printf("%s\n", args[0]);
    printf("  optimizer: coordinatewise LSTM, %d layer%s x %d units, %d input%s (%s", c->layers,
           c->layers == 1 ? "" : "s", c->hidden, net.n_in, net.n_in == 1 ? "" : "s",
           c->preproc == L2L_PREPROC_LOGSIGN_RMS ? "log/sign, g / rms(g)"
           : c->preproc == L2L_PREPROC_LOGSIGN  ? "log/sign"
                                                : "raw gradient");
    if (c->preproc != L2L_PREPROC_NONE) printf(", p = %g", c->p);
    printf("), output scale %g\n", c->scale);
    if (c->groups > 1) {
        printf("  parameter groups: %d, one LSTM each:", c->groups);
        for (int g = 0; g < c->groups; g++) printf(" %s", c->group_names[g]);
        printf("\n");
    }
    printf("  weights: %zu floats\n", net.n_params);
    printf("  metadata:\n");
    for (int i = 0; i < nm; i++) printf("    %-16s %s\n", meta[i].key, meta[i].value);
    printf("  tensors:\n");
    l2l_tensor_desc td[L2L_MAX_TENSORS];
    int nt = l2l_lstm_tensors(&net.cfg, td);
    for (int i = 0; i < nt; i++) {
        double s2 = 0;
        for (size_t j = 0; j < td[i].count; j++) s2 += (double)net.phi[td[i].offset + j] * net.phi[td[i].offset + j];
        char shape[48];
        if (td[i].ndim == 2) snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)td[i].shape[0], (long long)td[i].shape[1]);
        else snprintf(shape, sizeof shape, "(%lld)", (long long)td[i].shape[0]);
        printf("    %-24s %-10s norm %.4g\n", td[i].name, shape, sqrt(s2));
    }
    l2l_lstm_free(&net);
    return TOOL_OK;
}
