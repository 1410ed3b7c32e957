/* Evolution-strategies meta-gradient (Metz et al. 2019, "Understanding and correcting
 * pathologies in the training of learned optimizers"): over a whole run of `steps`
 * steps, backpropagation gives a meta-gradient that is no guide to the meta-loss
 * (docs/RESULTS.md, bench/metagrad_check.c), because the meta-loss is chaotic in phi.
 * Antithetic ES estimates the gradient of its Gaussian smoothing instead,
 *   g = 1/(2 sigma K) sum_k (L(phi + sigma e_k) - L(phi - sigma e_k)) e_k,  e_k ~ N(0, I),
 * from 2K runs of the learned optimizer on the same problems with the same minibatches,
 * forward only: no truncation, and the optimizee's gradients change with phi as they
 * do in use. One meta-update per epoch.
 *
 * With a meta-batch of B optimizees, L is the meta-loss of the batch's mean loss
 * f_t = 1/B sum_i f_i(theta_t), and each of the 2KB particles (optimizee i at phi +-
 * sigma e_k, perturb.c) is a unit of work of its own: its process sends its loss curve,
 * and every process forms L from the curves and g from the e_k it draws again. */
#include <math.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

void l2l_es_rollout(l2l_es *es, const l2l_lstm *net, int i, const float *theta0, l2l_rng rng,
                    double *curve)
{
    l2l_task *task = &es->mb.child[i];
    l2l_lstm_state *state = &es->state[i];
    const size_t n = task->n;
    const int steps = es->steps;
    memcpy(es->theta, theta0, n * sizeof(float));
    l2l_lstm_state_zero(state);
    for (int t = 0; t <= steps; t++) {
        const double f = task->loss_grad(task->ctx, es->theta, es->grad, &rng);
        if (!isfinite(f)) { /* diverged: +Inf from here on */
            for (int s = t > 0 ? t : 1; s <= steps; s++) curve[s - 1] = INFINITY;
            return;
        }
        if (t > 0) curve[t - 1] = f;
        if (t == steps) break;
        l2l_lstm_step(net, state, es->grad, es->update);
        for (size_t k = 0; k < n; k++) es->theta[k] += es->update[k];
    }
}

/* ------------------------------------------------ the estimator's table */

static void es_free(void *self)
{
    l2l_es *es = self;
    l2l_perturb_free(&es->pt);
    l2l_share_free(&es->curves);
    for (int i = 0; es->state && i < es->mb.B; i++) l2l_lstm_state_free(&es->state[i]);
    l2l_free(es->state);
    l2l_free(es->theta0), l2l_free(es->theta), l2l_free(es->grad), l2l_free(es->update);
    memset(es, 0, sizeof *es);
}

/* Whole runs, forward only: no unroll caches (T x N) and no state carried over. */
static l2l_status es_create(void *self, const l2l_lstm *net, const l2l_meta_batch *mb,
                            const l2l_train_config *cfg, l2l_error *err)
{
    l2l_es *es = self;
    es->mb = *mb;
    es->steps = cfg->steps;
    l2l_status st;
    if ((st = l2l_perturb_create(&es->pt, net, cfg, err)) ||
        (st = l2l_share_create(&es->curves, mb->comm, mb->B * 2 * es->pt.pairs,
                               (size_t)cfg->steps * sizeof(double), err)))
        return st;
    size_t n = 0;
    for (int i = 0; i < mb->B; i++) n = mb->child[i].n > n ? mb->child[i].n : n;
    if (!(es->state = l2l_alloc((size_t)mb->B * sizeof *es->state)))
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %d LSTM states", mb->B);
    memset(es->state, 0, (size_t)mb->B * sizeof *es->state);
    for (int i = 0; i < mb->B; i++)
        if ((st = l2l_lstm_state_create(&es->state[i], net, mb->child[i].n, mb->child[i].group, err))) return st;
    es->theta0 = l2l_alloc(n * sizeof(float));
    es->theta = l2l_alloc(n * sizeof(float));
    es->grad = l2l_alloc(n * sizeof(float));
    es->update = l2l_alloc(n * sizeof(float));
    if (!es->theta0 || !es->theta || !es->grad || !es->update)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate ES buffers for %zu coordinates", n);
    return L2L_STATUS_OK;
}

static int es_updates(const l2l_train_config *cfg) { return 1; }

static void es_begin(void *self, uint64_t epoch_seed) { ((l2l_es *)self)->epoch_seed = epoch_seed; }

/* This process's particles, optimizee by optimizee (each drawn once, with its
 * minibatch stream: the rest of its own stream), then the exchange of their curves and
 * the estimate. The loss reported is the mean over the perturbed runs (a run of phi
 * itself would cost 1/(2K) more). */
static l2l_status es_gradient(void *self, const l2l_lstm *net, int k, float *dphi, double *loss_sum,
                              l2l_error *err)
{
    l2l_es *es = self;
    l2l_perturb *pt = &es->pt;
    const int B = es->mb.B, K = pt->pairs;
    const size_t P = net->n_params;
    l2l_perturb_next(pt);
    for (int i = 0; i < B; i++) {
        const int u0 = l2l_particle(K, i, 0, 0), u1 = l2l_particle(K, i + 1, 0, 0);
        if (u1 <= es->curves.lo || u0 >= es->curves.hi) continue; /* none of its particles here */
        l2l_task *task = &es->mb.child[i];
        l2l_rng rng;
        l2l_meta_child_rng(es->epoch_seed, i, &rng);
        task->sample(task->ctx, &rng, es->theta0);
        for (int j = 0; j < K; j++)
            for (int s = 0; s < 2; s++) {
                const int u = l2l_particle(K, i, j, s);
                if (u < es->curves.lo || u >= es->curves.hi) continue;
                if (s == 0 || u == es->curves.lo) l2l_perturb_draw(pt, j);
                l2l_perturb_set(pt, net, s ? -1 : 1);
                l2l_es_rollout(es, &pt->pert, i, es->theta0, rng, l2l_share_at(&es->curves, u));
            }
    }
    l2l_status st = l2l_share_exchange(&es->curves, NULL, err);
    if (st) return st;
    int used = 0;
    double sum_f = 0;
    for (int j = 0; j < K; j++) {
        double L[2], F[2];
        l2l_perturb_pair(pt, &es->curves, B, es->steps, j, L, F);
        if (!isfinite(L[0]) || !isfinite(L[1])) continue; /* a diverged run says nothing */
        l2l_perturb_draw(pt, j);
        const float c = (float)((L[0] - L[1]) / (2.0 * pt->sigma));
        for (size_t i = 0; i < P; i++) dphi[i] += c * pt->e[i];
        sum_f += F[0] / es->steps + F[1] / es->steps;
        used++;
    }
    if (used == 0)
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "all %d pairs of runs at phi +- sigma e (sigma %g) "
                             "diverged, so there is no estimate of the meta-gradient (try a smaller "
                             "sigma)", K, (double)pt->sigma);
    for (size_t i = 0; i < P; i++) dphi[i] /= (float)used;
    *loss_sum += sum_f / (2 * used) * es->steps;
    return L2L_STATUS_OK;
}

static l2l_rng *es_stream(void *self) { return &((l2l_es *)self)->pt.noise; }

const l2l_estimator_ops l2l_estimator_es = {
    .name = "evolution strategies", .size = sizeof(l2l_es),
    .create = es_create, .updates_per_epoch = es_updates, .begin_epoch = es_begin,
    .gradient = es_gradient, .stream = es_stream, .free = es_free};
