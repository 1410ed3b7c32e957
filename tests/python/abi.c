/* Prints sizeof and offsetof of the structs that the Python binding mirrors with ctypes
 * (python/l2l/_lib.py), one "NAME VALUE" a line; tests/python/test_abi.py compares. */
#include <stddef.h>
#include <stdio.h>

#include "l2l.h"

#define SIZE(T) printf("%s %zu\n", #T, sizeof(T))
#define OFF(T, F) printf("%s.%s %zu\n", #T, #F, offsetof(T, F))

int main(void)
{
    SIZE(l2l_error), OFF(l2l_error, msg);
    SIZE(l2l_rng);
    SIZE(l2l_task), OFF(l2l_task, grad_scale), OFF(l2l_task, ctx), OFF(l2l_task, sample),
        OFF(l2l_task, loss_grad), OFF(l2l_task, destroy), OFF(l2l_task, name), OFF(l2l_task, n_groups),
        OFF(l2l_task, group), OFF(l2l_task, group_names);
    SIZE(l2l_lstm_config), OFF(l2l_lstm_config, preproc), OFF(l2l_lstm_config, p),
        OFF(l2l_lstm_config, scale), OFF(l2l_lstm_config, groups), OFF(l2l_lstm_config, group_names);
    SIZE(l2l_lstm_view), OFF(l2l_lstm_view, w_out), OFF(l2l_lstm_view, b_out);
    SIZE(l2l_lstm), OFF(l2l_lstm, n_in), OFF(l2l_lstm, n_params), OFF(l2l_lstm, phi), OFF(l2l_lstm, w);
    SIZE(l2l_opt_spec), OFF(l2l_opt_spec, lr), OFF(l2l_opt_spec, net);
    SIZE(l2l_optimizer), OFF(l2l_optimizer, n), OFF(l2l_optimizer, state);
    SIZE(l2l_train_config), OFF(l2l_train_config, steps), OFF(l2l_train_config, unroll),
        OFF(l2l_train_config, lr), OFF(l2l_train_config, clip), OFF(l2l_train_config, eval_every),
        OFF(l2l_train_config, n_valid), OFF(l2l_train_config, seed), OFF(l2l_train_config, objective),
        OFF(l2l_train_config, selection), OFF(l2l_train_config, estimator), OFF(l2l_train_config, es),
        OFF(l2l_train_config, teacher), OFF(l2l_train_config, comm);
    SIZE(l2l_train_progress), OFF(l2l_train_progress, train_loss), OFF(l2l_train_progress, grad_norm),
        OFF(l2l_train_progress, valid_loss), OFF(l2l_train_progress, best_valid),
        OFF(l2l_train_progress, best_epoch), OFF(l2l_train_progress, seconds), OFF(l2l_train_progress, rng);
    SIZE(l2l_kv), OFF(l2l_kv, value);
    return 0;
}
