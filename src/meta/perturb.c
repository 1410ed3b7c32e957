/* Antithetic perturbations of phi, shared by the two evolution-strategies estimators
 * (es.c over the whole run, pes.c over truncations): the pairs and their scale sigma,
 * the noise stream, the perturbed optimizer phi +- sigma e, and a pair's meta-losses
 * from its particles' loss curves.
 *
 * The noise stream gives one number per meta-update, and pair k's e_k ~ N(0, I) comes
 * from a stream of its own seeded with that number and k: a process draws the e_k of
 * the pairs it runs, without the P normals of every pair before, and every process
 * draws them all again to combine the estimate (P = 5,301 normals take about 0.2 ms
 * here, an MNIST run of 100 steps about 0.3 s). The noise stream's state stays one
 * number per update, whatever the number of processes. */
#include <math.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

l2l_status l2l_perturb_create(l2l_perturb *p, const l2l_lstm *net, const l2l_train_config *cfg,
                              l2l_error *err)
{
    if (cfg->es.pairs < 1 || !(cfg->es.sigma > 0) || !isfinite(cfg->es.sigma))
        return l2l_error_set(err, L2L_STATUS_ARG, "evolution strategies need pairs >= 1 and a positive, "
                             "finite sigma (got %d pairs, sigma %g)", cfg->es.pairs, (double)cfg->es.sigma);
    p->pairs = cfg->es.pairs;
    p->sigma = cfg->es.sigma;
    p->log_loss = cfg->objective == L2L_OBJECTIVE_LOG;
    l2l_rng_seed(&p->noise, cfg->seed, L2L_STREAM_ES);
    l2l_status st = l2l_lstm_create(&p->pert, &net->cfg, err);
    if (st) return st;
    if (!(p->e = l2l_alloc(net->n_params * sizeof(float))))
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate a perturbation of %zu weights",
                             net->n_params);
    return L2L_STATUS_OK;
}

void l2l_perturb_next(l2l_perturb *p) { p->draw = l2l_rng_u64(&p->noise); }

void l2l_perturb_draw(l2l_perturb *p, int k)
{
    l2l_rng r;
    l2l_rng_seed(&r, p->draw, (uint64_t)k);
    for (size_t i = 0; i < p->pert.n_params; i++) p->e[i] = (float)l2l_rng_normal(&r);
}

void l2l_perturb_set(l2l_perturb *p, const l2l_lstm *net, int sign)
{
    const float sg = sign > 0 ? p->sigma : -p->sigma;
    for (size_t i = 0; i < p->pert.n_params; i++) p->pert.phi[i] = net->phi[i] + sg * p->e[i];
}

void l2l_perturb_pair(const l2l_perturb *p, const l2l_share *curves, int B, int len, int k,
                      double L[2], double F[2])
{
    for (int s = 0; s < 2; s++) {
        double l = 0, sum = 0;
        for (int t = 0; t < len; t++) {
            double f = 0; /* the meta-batch's mean loss, summed in optimizee order */
            for (int i = 0; i < B; i++) f += ((const double *)l2l_share_at(curves, l2l_particle(p->pairs, i, k, s)))[t];
            f /= B;
            if (!isfinite(f) || (p->log_loss && !(f > 0))) {
                l = INFINITY;
                break;
            }
            l += p->log_loss ? log(f) : f;
            sum += f;
        }
        L[s] = isfinite(l) ? l : INFINITY;
        F[s] = sum;
    }
}

void l2l_perturb_free(l2l_perturb *p)
{
    l2l_lstm_free(&p->pert);
    l2l_free(p->e);
    memset(p, 0, sizeof *p);
}
