/* Truncated backpropagation through time, the paper's estimator: every epoch a fresh
 * optimizee runs for `steps` steps in unrolls of T = `unroll`; each unroll gives one
 * meta-update, the gradient of sum_{t in the unroll} f(theta_t) (or log f) with second
 * derivatives dropped (src/lstm/unroll.c). theta and the LSTM state carry on into the
 * next unroll without gradient. The truncated run itself is shared with imitation
 * (imitate.c), which changes only the unroll's loss. */
#include <stdio.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

l2l_status l2l_truncated_create(l2l_truncated *s, const l2l_lstm *net, l2l_task *task,
                                const l2l_unroll_config *ucfg, l2l_error *err)
{
    l2l_status st;
    s->task = task;
    if ((st = l2l_unroll_create(&s->unroll, net, task->n, ucfg, err)) ||
        (st = l2l_lstm_state_create(&s->state, net, task->n, err)))
        return st;
    s->theta = l2l_alloc(task->n * sizeof(float));
    s->losses = l2l_alloc((size_t)(ucfg->T + 1) * sizeof(double));
    if (!s->theta || !s->losses)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate an optimizee of %zu coordinates",
                             task->n);
    return L2L_STATUS_OK;
}

int l2l_truncated_updates(const l2l_train_config *cfg) { return cfg->steps / cfg->unroll; }

void l2l_truncated_begin(l2l_truncated *s, l2l_rng *train_rng)
{
    s->task->sample(s->task->ctx, train_rng, s->theta);
    l2l_lstm_state_zero(&s->state);
}

l2l_status l2l_truncated_gradient(l2l_truncated *s, const l2l_lstm *net, int k,
                                  l2l_rng *train_rng, float *dphi, double *loss_sum,
                                  l2l_error *err)
{
    const int T = s->unroll.cfg.T;
    l2l_status st = l2l_unroll_run(&s->unroll, net, s->task, s->theta, &s->state, s->weights,
                                   train_rng, dphi, s->losses, err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return l2l_error_set(err, st, "unroll %d (steps %d..%d): %s", k + 1, k * T, (k + 1) * T, msg);
    }
    for (int t = 1; t <= T; t++) *loss_sum += s->losses[t];
    return L2L_STATUS_OK;
}

void l2l_truncated_free(l2l_truncated *s)
{
    l2l_unroll_free(&s->unroll);
    l2l_lstm_state_free(&s->state);
    l2l_free(s->theta);
    l2l_free(s->losses);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------ the estimator's table */

static l2l_status tbptt_create(void *self, const l2l_lstm *net, l2l_task *task,
                               const l2l_train_config *cfg, l2l_error *err)
{
    const l2l_unroll_config ucfg = {.T = cfg->unroll, .objective = cfg->objective};
    return l2l_truncated_create(self, net, task, &ucfg, err);
}

static void tbptt_begin(void *self, l2l_rng *train_rng) { l2l_truncated_begin(self, train_rng); }

static l2l_status tbptt_gradient(void *self, const l2l_lstm *net, int k, l2l_rng *train_rng,
                                 float *dphi, double *loss_sum, l2l_error *err)
{
    return l2l_truncated_gradient(self, net, k, train_rng, dphi, loss_sum, err);
}

static void tbptt_free(void *self) { l2l_truncated_free(self); }

const l2l_estimator_ops l2l_estimator_tbptt = {
    .name = "truncated backpropagation", .size = sizeof(l2l_truncated),
    .create = tbptt_create, .updates_per_epoch = l2l_truncated_updates, .begin_epoch = tbptt_begin,
    .gradient = tbptt_gradient, .free = tbptt_free};
