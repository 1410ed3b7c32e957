/* Evolution-strategies meta-gradient (Metz et al. 2019, "Understanding and correcting
 * pathologies in the training of learned optimizers"): over a whole run of `steps`
 * steps, backpropagation gives a meta-gradient that is no guide to the meta-loss
 * (docs/RESULTS.md, examples/metagrad_check.c), because the meta-loss is chaotic in phi.
 * Antithetic ES estimates the gradient of its Gaussian smoothing instead,
 *   g = 1/(2 sigma K) sum_k (L(phi + sigma e_k) - L(phi - sigma e_k)) e_k,  e_k ~ N(0, I),
 * from 2K runs of the learned optimizer on the same problem with the same minibatches,
 * forward only: no truncation, and the optimizee's gradients change with phi as they
 * do in use. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* The meta-loss of one run from theta0: sum_{t=1..steps} w_t f(theta_t) (or w_t log f);
 * +Inf if it diverged. rng is the minibatch stream, copied so that every run sees the
 * same minibatches. mean_f (may be NULL) receives the mean of f over steps 1..steps. */
double l2l_es_rollout(const l2l_lstm *net, l2l_task *task, const float *theta0, l2l_rng rng,
                      const float *weights, int steps, int log_loss, l2l_es_buffers *b,
                      double *mean_f)
{
    const size_t n = task->n;
    memcpy(b->theta, theta0, n * sizeof(float));
    l2l_lstm_state_zero(&b->state);
    double L = 0, sum_f = 0;
    for (int t = 0; t <= steps; t++) {
        double f = task->loss_grad(task->ctx, b->theta, b->grad, &rng);
        if (!isfinite(f) || (log_loss && !(f > 0))) return INFINITY;
        if (t > 0) {
            L += (weights ? weights[t - 1] : 1.0) * (log_loss ? log(f) : f);
            sum_f += f;
        }
        if (t == steps) break;
        l2l_lstm_step(net, &b->state, b->grad, b->update);
        for (size_t i = 0; i < n; i++) b->theta[i] += b->update[i];
    }
    if (mean_f) *mean_f = sum_f / steps;
    return isfinite(L) ? L : INFINITY;
}

l2l_status l2l_es_buffers_create(l2l_es_buffers *b, const l2l_lstm *net, size_t n, l2l_error *err)
{
    memset(b, 0, sizeof *b);
    l2l_status st = l2l_lstm_create(&b->pert, &net->cfg, err);
    if (st) return st;
    if ((st = l2l_lstm_state_create(&b->state, net, n, err))) {
        l2l_lstm_free(&b->pert);
        return st;
    }
    b->theta = l2l_alloc(n * sizeof(float));
    b->grad = l2l_alloc(n * sizeof(float));
    b->update = l2l_alloc(n * sizeof(float));
    b->eps = l2l_alloc(net->n_params * sizeof(float));
    if (!b->theta || !b->grad || !b->update || !b->eps) {
        l2l_es_buffers_free(b);
        return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate ES buffers for %zu coordinates", n);
    }
    return L2L_OK;
}

void l2l_es_buffers_free(l2l_es_buffers *b)
{
    l2l_lstm_free(&b->pert);
    l2l_lstm_state_free(&b->state);
    l2l_free(b->theta), l2l_free(b->grad), l2l_free(b->update), l2l_free(b->eps);
    memset(b, 0, sizeof *b);
}

int l2l_es_gradient(const l2l_lstm *net, l2l_task *task, const float *theta0, l2l_rng rng,
                    const float *weights, int steps, int log_loss, int pairs, float sigma,
                    l2l_rng *noise, l2l_es_buffers *b, float *g, double *mean_f)
{
    const size_t P = net->n_params;
    memset(g, 0, P * sizeof(float));
    int used = 0;
    double sum_f = 0;
    for (int k = 0; k < pairs; k++) {
        for (size_t i = 0; i < P; i++) b->eps[i] = (float)l2l_rng_normal(noise);
        double L[2], f[2];
        for (int s = 0; s < 2; s++) {
            const float sg = s ? -sigma : sigma;
            for (size_t i = 0; i < P; i++) b->pert.phi[i] = net->phi[i] + sg * b->eps[i];
            L[s] = l2l_es_rollout(&b->pert, task, theta0, rng, weights, steps, log_loss, b, &f[s]);
        }
        if (!isfinite(L[0]) || !isfinite(L[1])) continue; /* a diverged run says nothing */
        const float c = (float)((L[0] - L[1]) / (2.0 * sigma));
        for (size_t i = 0; i < P; i++) g[i] += c * b->eps[i];
        sum_f += f[0] + f[1];
        used++;
    }
    for (size_t i = 0; i < P; i++) g[i] = used ? g[i] / used : 0.0f;
    if (mean_f) *mean_f = used ? sum_f / (2 * used) : INFINITY;
    return used;
}
