/* Imitation of a hand-written teacher (Chen et al. 2020): the truncated unrolls of TBPTT
 * (tbptt.c) with the meta-loss
 *   1/N sum_t ||update_t - target_t||²,
 * target_t the update the teacher would make from the same gradient g_t, with its own
 * state (momentum, moments) carried along the run and reset for every optimizee; N is
 * the optimizee's coordinates, and a meta-batch averages its optimizees' terms. The
 * objective's weights are zero, so only the imitation term is trained and the objective
 * (sum or log) plays no part. A warm start: the optimizer it gives already descends,
 * and a second meta-training from it (TBPTT or ES) goes on from there. */
#include <math.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

typedef struct {
    l2l_truncated run;
    float *zeros; /* (T) the objective's weights */
} imitation;

static l2l_status imitation_create(void *self, const l2l_lstm *net, const l2l_meta_batch *mb,
                                   const l2l_train_config *cfg, l2l_error *err)
{
    imitation *im = self;
    const l2l_opt_spec *t = &cfg->teacher;
    if ((unsigned)t->kind >= L2L_OPT_KIND_LSTM || !(t->lr > 0) || !isfinite(t->lr))
        return l2l_error_set(err, L2L_STATUS_ARG, "imitation needs a hand-written teacher (sgd, nag, "
                             "rmsprop, adam or nag-floor) with a positive, finite learning rate "
                             "(got kind %d, lr %g)", (int)t->kind, (double)t->lr);
    const l2l_unroll_config ucfg = {.T = cfg->unroll, .objective = L2L_OBJECTIVE_SUM};
    l2l_status st = l2l_truncated_create(&im->run, net, mb, &ucfg, t, err);
    if (st) return st;
    im->zeros = l2l_alloc((size_t)cfg->unroll * sizeof(float));
    if (!im->zeros) return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the imitation's weights");
    im->run.weights = im->zeros;
    return L2L_STATUS_OK;
}

static void imitation_begin(void *self, uint64_t epoch_seed)
{
    l2l_truncated_begin(&((imitation *)self)->run, epoch_seed);
}

static l2l_status imitation_gradient(void *self, const l2l_lstm *net, int k, float *dphi, double *loss_sum,
                                     l2l_error *err)
{
    return l2l_truncated_gradient(&((imitation *)self)->run, net, k, dphi, loss_sum, err);
}

static void imitation_free(void *self)
{
    imitation *im = self;
    l2l_truncated_free(&im->run);
    l2l_free(im->zeros);
    im->zeros = NULL;
}

const l2l_estimator_ops l2l_estimator_imitate = {
    .name = "imitation", .size = sizeof(imitation),
    .create = imitation_create, .updates_per_epoch = l2l_truncated_updates, .begin_epoch = imitation_begin,
    .gradient = imitation_gradient, .free = imitation_free};
