/* Antithetic perturbations of phi, shared by the two evolution-strategies estimators
 * (es.c over the whole run, pes.c over truncations): the pairs and their scale sigma,
 * the noise stream e ~ N(0, I) draws from, and the perturbed optimizer phi +- sigma e. */
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

void l2l_perturb_draw(l2l_perturb *p)
{
    for (size_t i = 0; i < p->pert.n_params; i++) p->e[i] = (float)l2l_rng_normal(&p->noise);
}

void l2l_perturb_set(l2l_perturb *p, const l2l_lstm *net, int sign)
{
    const float sg = sign > 0 ? p->sigma : -p->sigma;
    for (size_t i = 0; i < p->pert.n_params; i++) p->pert.phi[i] = net->phi[i] + sg * p->e[i];
}

void l2l_perturb_free(l2l_perturb *p)
{
    l2l_lstm_free(&p->pert);
    l2l_free(p->e);
    memset(p, 0, sizeof *p);
}
