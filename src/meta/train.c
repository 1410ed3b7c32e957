/* Meta-training (docs/METHOD.md section 4): epochs of fresh optimizees. In every epoch the
 * estimator (estimator.h: truncated backpropagation, evolution strategies or imitation)
 * gives one or more meta-gradients, and each is clipped and applied to phi by
 * meta-Adam. Every eval_every epochs (and after the last) phi is scored on a fixed set
 * of validation problems (by default the mean of f(theta_t) over t = 1..steps, the
 * meta-objective; or the final loss) and the best phi is kept: early stopping as in
 * the paper. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "meta/estimator.h"
#include "optim/adam.h"
#include "util/util.h"

static const l2l_estimator_ops *const estimators[] = {
    [L2L_ESTIMATOR_TBPTT] = &l2l_estimator_tbptt,
    [L2L_ESTIMATOR_ES] = &l2l_estimator_es,
    [L2L_ESTIMATOR_IMITATE] = &l2l_estimator_imitate,
    [L2L_ESTIMATOR_PES] = &l2l_estimator_pes,
};

void l2l_train_config_default(l2l_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = 1000;
    cfg->steps = 100;
    cfg->unroll = 20;
    cfg->lr = 1e-3f;
    cfg->clip = 0;
    cfg->eval_every = 50;
    cfg->n_valid = 20;
    cfg->seed = 1;
    cfg->estimator = L2L_ESTIMATOR_TBPTT;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Mean over problems of the mean loss over steps 1..steps (or of the final loss);
 * +Inf if any diverged. curves (n_valid, steps + 1) is scratch. */
static l2l_status validate(l2l_task *task, const l2l_lstm *net, const l2l_train_config *cfg,
                           double *curves, double *score, l2l_error *err)
{
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, net};
    const l2l_eval_config ecfg = {cfg->n_valid, cfg->steps, cfg->seed, L2L_STREAM_VALID};
    l2l_status st = l2l_evaluate(task, &spec, &ecfg, curves, err);
    if (st) return st;
    const int first = cfg->selection == L2L_SELECTION_FINAL ? cfg->steps : 1;
    double s = 0;
    for (int r = 0; r < cfg->n_valid; r++)
        for (int t = first; t <= cfg->steps; t++) s += curves[(size_t)r * (cfg->steps + 1) + t];
    *score = s / ((double)cfg->n_valid * (cfg->steps - first + 1));
    if (!isfinite(*score)) *score = INFINITY;
    return L2L_STATUS_OK;
}

/* Meta-Adam: Adam on phi (beta 0.9, 0.999, eps 1e-8), its moments m, v (P) in phi's
 * layout and its step count t. */
typedef struct {
    float *m, *v;
    long t;
} meta_adam;

/* Clips dphi (P) to 2-norm cfg->clip (if on), then one Adam step on phi; returns the
 * norm before clipping. */
static double meta_adam_step(meta_adam *a, const l2l_train_config *cfg, size_t P, float *phi,
                             float *dphi)
{
    double norm2 = 0;
    for (size_t i = 0; i < P; i++) norm2 += (double)dphi[i] * dphi[i];
    const double norm = sqrt(norm2);
    if (cfg->clip > 0 && norm > cfg->clip)
        for (size_t i = 0; i < P; i++) dphi[i] *= (float)(cfg->clip / norm);
    l2l_adam_update(P, phi, dphi, a->m, a->v, ++a->t, cfg->lr, 0.9f, 0.999f, 1e-8f);
    return norm;
}

static l2l_status check_config(const l2l_train_config *cfg, l2l_error *err)
{
    if (cfg->epochs < 1 || cfg->steps < 1 || cfg->unroll < 1)
        return l2l_error_set(err, L2L_STATUS_ARG, "epochs, steps and unroll must be >= 1 (got %d, %d, %d)",
                             cfg->epochs, cfg->steps, cfg->unroll);
    if (cfg->steps % cfg->unroll != 0)
        return l2l_error_set(err, L2L_STATUS_ARG, "steps (%d) must be a multiple of the unroll length (%d)",
                             cfg->steps, cfg->unroll);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return l2l_error_set(err, L2L_STATUS_ARG, "meta learning rate must be positive, got %g", (double)cfg->lr);
    if (cfg->clip < 0 || !isfinite(cfg->clip))
        return l2l_error_set(err, L2L_STATUS_ARG, "gradient clip must be >= 0, got %g", (double)cfg->clip);
    if (cfg->eval_every < 0 || (cfg->eval_every > 0 && cfg->n_valid < 1))
        return l2l_error_set(err, L2L_STATUS_ARG, "validation needs eval_every >= 0 and n_valid >= 1");
    if (cfg->objective != L2L_OBJECTIVE_SUM && cfg->objective != L2L_OBJECTIVE_LOG)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown objective %d (expected sum or log)",
                             (int)cfg->objective);
    if ((unsigned)cfg->estimator >= sizeof estimators / sizeof *estimators)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown meta-gradient estimator %d", (int)cfg->estimator);
    return L2L_STATUS_OK;
}

l2l_status l2l_meta_train(l2l_lstm *net, l2l_task *task, const l2l_train_config *cfg,
                          l2l_train_callback cb, void *cb_ctx, l2l_error *err)
{
    l2l_status st = check_config(cfg, err);
    if (st) return st;
    const l2l_estimator_ops *ops = estimators[cfg->estimator];
    const size_t P = net->n_params;
    void *est = l2l_alloc(ops->size);
    float *dphi = l2l_alloc(P * sizeof(float)), *best = l2l_alloc(P * sizeof(float));
    if (best) memcpy(best, net->phi, P * sizeof(float)); /* what every return leaves in phi */
    meta_adam adam = {l2l_alloc(P * sizeof(float)), l2l_alloc(P * sizeof(float)), 0};
    double *curves = l2l_alloc((size_t)(cfg->n_valid > 0 ? cfg->n_valid : 1) * (cfg->steps + 1) * sizeof(double));
    if (!est || !dphi || !best || !adam.m || !adam.v || !curves) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate meta-training buffers");
        goto done;
    }
    if ((st = ops->create(est, net, task, cfg, err))) goto done;

    l2l_rng rng;
    l2l_rng_seed(&rng, cfg->seed, L2L_STREAM_TRAIN);
    l2l_train_progress pr = {.best_valid = INFINITY, .valid_loss = NAN};
    if (cfg->eval_every > 0) { /* the starting phi is a candidate too */
        if ((st = validate(task, net, cfg, curves, &pr.best_valid, err))) goto done;
    }
    const double t0 = now_seconds();
    const int n_updates = ops->updates_per_epoch(cfg);
    for (int epoch = 1; epoch <= cfg->epochs; epoch++) {
        ops->begin_epoch(est, &rng);
        double train = 0, gnorm = 0;
        for (int k = 0; k < n_updates; k++) {
            memset(dphi, 0, P * sizeof(float));
            if ((st = ops->gradient(est, net, k, &rng, dphi, &train, err))) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
                l2l_error_set(err, st, "meta-training epoch %d (%s), %s; phi was not updated from it "
                              "and the best phi so far is kept (try a lower --lr or --clip)", epoch,
                              ops->name, msg);
                goto done;
            }
            gnorm += meta_adam_step(&adam, cfg, P, net->phi, dphi);
        }
        pr.epoch = epoch;
        pr.train_loss = train / cfg->steps;
        pr.grad_norm = gnorm / n_updates;
        pr.valid_loss = NAN;
        if (cfg->eval_every > 0 && (epoch % cfg->eval_every == 0 || epoch == cfg->epochs)) {
            if ((st = validate(task, net, cfg, curves, &pr.valid_loss, err))) goto done;
            if (pr.valid_loss < pr.best_valid) {
                pr.best_valid = pr.valid_loss;
                pr.best_epoch = epoch;
                memcpy(best, net->phi, P * sizeof(float));
            }
        }
        pr.seconds = now_seconds() - t0;
        pr.rng = rng;
        if (cb && cb(&pr, cb_ctx)) break;
    }
done:
    if (best && cfg->eval_every > 0) memcpy(net->phi, best, P * sizeof(float));
    if (est) ops->free(est);
    l2l_free(est), l2l_free(dphi), l2l_free(best), l2l_free(adam.m), l2l_free(adam.v);
    l2l_free(curves);
    return st;
}
