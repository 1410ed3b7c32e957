/* Evolution-strategies meta-gradient (Metz et al. 2019, "Understanding and correcting
 * pathologies in the training of learned optimizers"): over a whole run of `steps`
 * steps, backpropagation gives a meta-gradient that is no guide to the meta-loss
 * (docs/RESULTS.md, bench/metagrad_check.c), because the meta-loss is chaotic in phi.
 * Antithetic ES estimates the gradient of its Gaussian smoothing instead,
 *   g = 1/(2 sigma K) sum_k (L(phi + sigma e_k) - L(phi - sigma e_k)) e_k,  e_k ~ N(0, I),
 * from 2K runs of the learned optimizer on the same problem with the same minibatches,
 * forward only: no truncation, and the optimizee's gradients change with phi as they
 * do in use. One meta-update per epoch. */
#include <math.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

double l2l_es_rollout(l2l_es *es, const l2l_lstm *net, const float *theta0, l2l_rng rng,
                      double *mean_f)
{
    l2l_task *task = es->task;
    const size_t n = task->n;
    const int steps = es->steps;
    memcpy(es->theta, theta0, n * sizeof(float));
    l2l_lstm_state_zero(&es->state);
    double L = 0, sum_f = 0;
    for (int t = 0; t <= steps; t++) {
        double f = task->loss_grad(task->ctx, es->theta, es->grad, &rng);
        if (!isfinite(f) || (es->pt.log_loss && !(f > 0))) return INFINITY;
        if (t > 0) {
            L += es->pt.log_loss ? log(f) : f;
            sum_f += f;
        }
        if (t == steps) break;
        l2l_lstm_step(net, &es->state, es->grad, es->update);
        for (size_t i = 0; i < n; i++) es->theta[i] += es->update[i];
    }
    if (mean_f) *mean_f = sum_f / steps;
    return isfinite(L) ? L : INFINITY;
}

int l2l_es_gradient(l2l_es *es, const l2l_lstm *net, const float *theta0, l2l_rng rng, float *g,
                    double *mean_f)
{
    const size_t P = net->n_params;
    l2l_perturb *pt = &es->pt;
    memset(g, 0, P * sizeof(float));
    int used = 0;
    double sum_f = 0;
    for (int k = 0; k < pt->pairs; k++) {
        l2l_perturb_draw(pt);
        double L[2], f[2];
        for (int s = 0; s < 2; s++) {
            l2l_perturb_set(pt, net, s ? -1 : 1);
            L[s] = l2l_es_rollout(es, &pt->pert, theta0, rng, &f[s]);
        }
        if (!isfinite(L[0]) || !isfinite(L[1])) continue; /* a diverged run says nothing */
        const float c = (float)((L[0] - L[1]) / (2.0 * pt->sigma));
        for (size_t i = 0; i < P; i++) g[i] += c * pt->e[i];
        sum_f += f[0] + f[1];
        used++;
    }
    for (size_t i = 0; i < P; i++) g[i] = used ? g[i] / used : 0.0f;
    if (mean_f) *mean_f = used ? sum_f / (2 * used) : INFINITY;
    return used;
}

/* ------------------------------------------------ the estimator's table */

/* Whole runs, forward only: no unroll caches (T x N) and no state carried over. */
static l2l_status es_create(void *self, const l2l_lstm *net, l2l_task *task,
                            const l2l_train_config *cfg, l2l_error *err)
{
    l2l_es *es = self;
    es->task = task;
    es->steps = cfg->steps;
    l2l_status st;
    if ((st = l2l_perturb_create(&es->pt, net, cfg, err)) ||
        (st = l2l_lstm_state_create(&es->state, net, task->n, err)))
        return st;
    const size_t n = task->n;
    es->theta0 = l2l_alloc(n * sizeof(float));
    es->theta = l2l_alloc(n * sizeof(float));
    es->grad = l2l_alloc(n * sizeof(float));
    es->update = l2l_alloc(n * sizeof(float));
    if (!es->theta0 || !es->theta || !es->grad || !es->update)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate ES buffers for %zu coordinates", n);
    return L2L_STATUS_OK;
}

static int es_updates(const l2l_train_config *cfg) { return 1; }

static void es_begin(void *self, l2l_rng *train_rng)
{
    l2l_es *es = self;
    es->task->sample(es->task->ctx, train_rng, es->theta0);
}

/* The whole run, its minibatches from a stream of its own seeded from the training
 * stream. The loss reported is the mean over the perturbed runs (a run of phi itself
 * would cost 1/(2K) more). */
static l2l_status es_gradient(void *self, const l2l_lstm *net, int k, l2l_rng *train_rng,
                              float *dphi, double *loss_sum, l2l_error *err)
{
    l2l_es *es = self;
    l2l_rng mb;
    l2l_rng_seed(&mb, l2l_rng_u64(train_rng), 0);
    double mean_f;
    if (l2l_es_gradient(es, net, es->theta0, mb, dphi, &mean_f) == 0)
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "all %d pairs of runs at phi +- sigma e (sigma %g) "
                             "diverged, so there is no estimate of the meta-gradient (try a smaller "
                             "sigma)", es->pt.pairs, (double)es->pt.sigma);
    *loss_sum += mean_f * es->steps;
    return L2L_STATUS_OK;
}

static void es_free(void *self)
{
    l2l_es *es = self;
    l2l_perturb_free(&es->pt);
    l2l_lstm_state_free(&es->state);
    l2l_free(es->theta0), l2l_free(es->theta), l2l_free(es->grad), l2l_free(es->update);
    memset(es, 0, sizeof *es);
}

static l2l_rng *es_stream(void *self) { return &((l2l_es *)self)->pt.noise; }

const l2l_estimator_ops l2l_estimator_es = {
    .name = "evolution strategies", .size = sizeof(l2l_es),
    .create = es_create, .updates_per_epoch = es_updates, .begin_epoch = es_begin,
    .gradient = es_gradient, .stream = es_stream, .free = es_free};
