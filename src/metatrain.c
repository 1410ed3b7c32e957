/* Meta-training (PAPER.md section 4): epochs of fresh optimizees, each run for `steps`
 * steps in truncated unrolls of `unroll`; after every unroll one Adam step on phi;
 * theta and the LSTM state carry on into the next unroll without gradient.
 * Every eval_every epochs phi is scored on a fixed set of validation problems (by
 * default the mean of f(theta_t) over t = 1..steps, the meta-objective; or the final
 * loss) and the best phi is kept: early stopping as in the paper.
 * The meta-loss weights are w_t = 1 (the paper) or, with L2L_WEIGHT_LINEAR,
 * w_t = 2t / (steps + 1), which has mean 1 and puts more weight on late steps.
 * With rollback > 1, a validation score worse than rollback x the best so far (meta-
 * training fell off a cliff, e.g. into an optimizer that no longer moves) sends phi
 * back to the best phi, with meta-Adam's moments and step count reset.
 * With average = d in (0, 1), an exponential moving average of phi over meta-updates,
 * a <- d a + (1 - d) phi, is what validation scores, what is kept as the best, and
 * what is returned; meta-Adam goes on updating phi itself. It smooths out the noise
 * of single meta-updates (Polyak averaging).
 * With rescale = L > 0, training unrolls run on the randomly rescaled task
 * f(c . theta) (src/task_rescale.c) and validation on the task itself.
 * With imitate_epochs = K > 0, the first K epochs train phi to make the updates a
 * hand-written teacher would make from the same gradients (its state reset for every
 * optimizee), in place of the objective, so that meta-training starts from an optimizer
 * that already descends instead of one that blows the optimizee up or barely moves it.
 * With imitate_weight = W > 0, the objective that follows keeps W x the imitation term.
 * With es_pairs = K > 0, every epoch makes one meta-update from the evolution-strategies
 * estimate of the whole run's meta-loss gradient (src/es.c) instead of one per unroll. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "internal.h"

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
}

/* The teacher's update from grad, as an imitation target (l2l_unroll_set_teacher). */
static void teacher_target(void *ctx, const float *grad, float *target)
{
    l2l_optimizer *o = ctx;
    memset(target, 0, o->n * sizeof(float));
    l2l_optimizer_step(o, grad, target); /* theta += update, from theta = 0 */
}

void l2l_meta_weights(l2l_weighting weighting, int steps, float *w)
{
    const int last = steps / 5 > 0 ? steps / 5 : 1; /* L2L_WEIGHT_LAST's steps */
    for (int t = 1; t <= steps; t++) {
        switch (weighting) {
        case L2L_WEIGHT_LINEAR: w[t - 1] = 2.0f * t / (steps + 1); break;
        case L2L_WEIGHT_LAST: w[t - 1] = t > steps - last ? (float)steps / last : 0.0f; break;
        default: w[t - 1] = 1.0f;
        }
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Mean over problems of the mean loss over steps 1..steps (or of the final loss);
 * +Inf if any diverged. */
static l2l_status validate(l2l_task *task, const l2l_lstm *net, const l2l_train_config *cfg,
                           double *curves, double *score, l2l_error *err)
{
    l2l_status st = l2l_evaluate(task, L2L_OPT_LSTM, 0, net, cfg->n_valid, cfg->steps, cfg->seed,
                                 L2L_STREAM_VALID, curves, err);
    if (st) return st;
    const int first = cfg->selection == L2L_SELECT_FINAL ? cfg->steps : 1;
    double s = 0;
    for (int r = 0; r < cfg->n_valid; r++)
        for (int t = first; t <= cfg->steps; t++) s += curves[(size_t)r * (cfg->steps + 1) + t];
    *score = s / ((double)cfg->n_valid * (cfg->steps - first + 1));
    if (!isfinite(*score)) *score = INFINITY;
    return L2L_OK;
}

l2l_status l2l_meta_train(l2l_lstm *net, l2l_task *task, const l2l_train_config *cfg,
                          l2l_train_callback cb, void *cb_ctx, l2l_error *err)
{
    if (cfg->epochs < 1 || cfg->steps < 1 || cfg->unroll < 1)
        return l2l_error_set(err, L2L_ERR_ARG, "epochs, steps and unroll must be >= 1 (got %d, %d, %d)",
                             cfg->epochs, cfg->steps, cfg->unroll);
    if (cfg->steps % cfg->unroll != 0)
        return l2l_error_set(err, L2L_ERR_ARG, "steps (%d) must be a multiple of the unroll length (%d)",
                             cfg->steps, cfg->unroll);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return l2l_error_set(err, L2L_ERR_ARG, "meta learning rate must be positive, got %g", (double)cfg->lr);
    if (cfg->lr_half_life < 0 || !isfinite(cfg->lr_half_life))
        return l2l_error_set(err, L2L_ERR_ARG, "learning-rate half-life must be >= 0 epochs, got %g",
                             (double)cfg->lr_half_life);
    if (cfg->clip < 0 || !isfinite(cfg->clip))
        return l2l_error_set(err, L2L_ERR_ARG, "gradient clip must be >= 0, got %g", (double)cfg->clip);
    if (cfg->rollback != 0 && !(cfg->rollback > 1 && isfinite(cfg->rollback)))
        return l2l_error_set(err, L2L_ERR_ARG, "rollback must be 0 (off) or a finite factor > 1, got %g",
                             (double)cfg->rollback);
    if (!(cfg->average >= 0 && cfg->average < 1))
        return l2l_error_set(err, L2L_ERR_ARG, "average must be in [0, 1), got %g", (double)cfg->average);
    const int imitating = cfg->imitate_epochs > 0 || cfg->imitate_weight > 0;
    if (cfg->imitate_epochs < 0 || !(cfg->imitate_weight >= 0 && isfinite(cfg->imitate_weight)) ||
        (imitating && (cfg->teacher < L2L_OPT_SGD || cfg->teacher >= L2L_OPT_LSTM ||
                       !(cfg->teacher_lr > 0) || !isfinite(cfg->teacher_lr))))
        return l2l_error_set(err, L2L_ERR_ARG, "imitation needs a hand-written teacher with a positive "
                             "learning rate, imitate_epochs >= 0 and a weight >= 0 (got %d epochs, "
                             "lr %g, weight %g)", cfg->imitate_epochs, (double)cfg->teacher_lr,
                             (double)cfg->imitate_weight);
    const int es = cfg->es_pairs > 0;
    if (cfg->es_pairs < 0 || (es && !(cfg->es_sigma > 0 && isfinite(cfg->es_sigma))))
        return l2l_error_set(err, L2L_ERR_ARG, "evolution strategies need es_pairs >= 0 and a "
                             "positive sigma (got %d pairs, sigma %g)", cfg->es_pairs, (double)cfg->es_sigma);
    if (es && (imitating || cfg->objective == L2L_OBJECTIVE_LOG_EACH))
        return l2l_error_set(err, L2L_ERR_ARG, "evolution strategies work with the sum and log "
                             "objectives only, without imitation");
    if (!(cfg->rescale >= 0 && cfg->rescale <= 20))
        return l2l_error_set(err, L2L_ERR_ARG, "rescale must be in [0, 20], got %g", (double)cfg->rescale);
    if (cfg->eval_every < 0 || (cfg->eval_every > 0 && cfg->n_valid < 1))
        return l2l_error_set(err, L2L_ERR_ARG, "validation needs eval_every >= 0 and n_valid >= 1");

    const size_t N = task->n, P = net->n_params;
    const int T = cfg->unroll, n_unrolls = cfg->steps / cfg->unroll;
    l2l_status st = L2L_OK;
    l2l_unroll *u = NULL;
    l2l_lstm_state state;
    memset(&state, 0, sizeof state);
    l2l_task rescaled = {0}, *train_task = task;
    l2l_optimizer teacher;
    memset(&teacher, 0, sizeof teacher);
    l2l_es_buffers esb;
    memset(&esb, 0, sizeof esb);
    l2l_rng noise;
    l2l_rng_seed(&noise, cfg->seed, L2L_STREAM_ES);
    float *theta = l2l_alloc(N * sizeof(float));
    float *dphi = l2l_alloc(P * sizeof(float)), *m = l2l_alloc(P * sizeof(float));
    float *v = l2l_alloc(P * sizeof(float)), *best = l2l_alloc(P * sizeof(float));
    const int averaging = cfg->average > 0;
    float *avg = averaging ? l2l_alloc(P * sizeof(float)) : NULL;
    float *raw = averaging ? l2l_alloc(P * sizeof(float)) : NULL;
    double *losses = l2l_alloc((size_t)(T + 1) * sizeof(double));
    float *weights = l2l_alloc((size_t)cfg->steps * sizeof(float)); /* (steps) w_1..w_steps */
    float *no_weights = imitating ? l2l_alloc((size_t)cfg->unroll * sizeof(float)) : NULL; /* zeros */
    double *curves = l2l_alloc((size_t)(cfg->n_valid > 0 ? cfg->n_valid : 1) * (cfg->steps + 1) * sizeof(double));
    if (!theta || !dphi || !m || !v || !best || !losses || !weights || !curves ||
        (averaging && (!avg || !raw)) || (imitating && !no_weights)) {
        st = l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate meta-training buffers");
        goto done;
    }
    l2l_meta_weights(cfg->weighting, cfg->steps, weights);
    if (cfg->rescale > 0) {
        if ((st = l2l_task_rescale_create(&rescaled, task, cfg->rescale, err))) goto done;
        train_task = &rescaled;
    }
    if (es) { /* whole runs, forward only: no unroll (T x N caches) and no carried state */
        if ((st = l2l_es_buffers_create(&esb, net, N, err))) goto done;
    } else {
        if ((st = l2l_unroll_create(&u, net, N, T, err))) goto done;
        l2l_unroll_set_log_loss(u, cfg->objective == L2L_OBJECTIVE_LOG        ? 1
                                   : cfg->objective == L2L_OBJECTIVE_LOG_EACH ? 2
                                                                              : 0);
        if ((st = l2l_lstm_state_create(&state, net, N, err))) goto done;
    }
    if (imitating && /* the teacher's weight is set epoch by epoch below */
        ((st = l2l_optimizer_create(&teacher, cfg->teacher, N, cfg->teacher_lr, NULL, err)) ||
         (st = l2l_unroll_set_teacher(u, teacher_target, &teacher, 1.0f, err))))
        goto done;

    l2l_rng rng;
    l2l_rng_seed(&rng, cfg->seed, L2L_STREAM_TRAIN);
    memcpy(best, net->phi, P * sizeof(float));
    if (averaging) memcpy(avg, net->phi, P * sizeof(float));
    l2l_train_progress pr = {.best_valid = INFINITY, .valid_loss = NAN};
    if (cfg->eval_every > 0) { /* the starting phi is a candidate too */
        if ((st = validate(task, net, cfg, curves, &pr.best_valid, err))) goto done;
    }
    const double t0 = now_seconds();
    long adam_t = 0;
    for (int epoch = 1; epoch <= cfg->epochs; epoch++) {
        train_task->sample(train_task->ctx, &rng, theta);
        if (!es) l2l_lstm_state_zero(&state);
        const int imitate = epoch <= cfg->imitate_epochs;
        if (imitating) {
            l2l_optimizer_reset(&teacher);
            const float lambda = imitate ? 1.0f : cfg->imitate_weight;
            l2l_unroll_set_teacher(u, lambda > 0 ? teacher_target : NULL, &teacher, lambda, NULL);
            if (epoch == cfg->imitate_epochs + 1 && cfg->imitate_epochs > 0) {
                /* the objective from here on, with a fresh meta-Adam */
                memset(m, 0, P * sizeof(float)), memset(v, 0, P * sizeof(float));
                adam_t = 0;
            }
        }
        double train = 0, gnorm = 0;
        const int n_updates = es ? 1 : n_unrolls;
        for (int k = 0; k < n_updates; k++) {
            memset(dphi, 0, P * sizeof(float));
            if (es) { /* the whole run, its minibatches from a stream of its own */
                l2l_rng mb;
                l2l_rng_seed(&mb, l2l_rng_u64(&rng), 0);
                const int log_loss = cfg->objective == L2L_OBJECTIVE_LOG;
                double mean_f; /* over the perturbed runs: a run of phi itself would cost 1/(2K) more */
                l2l_es_gradient(net, train_task, theta, mb, weights, cfg->steps, log_loss, cfg->es_pairs,
                                cfg->es_sigma, &noise, &esb, dphi, &mean_f);
                train += mean_f * cfg->steps;
            } else {
                st = l2l_unroll_run(u, net, train_task, theta, &state,
                                    imitate ? no_weights : weights + (size_t)k * T, &rng, dphi, losses, err);
                for (int t = 1; t <= T; t++) train += losses[t];
            }
            if (st) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
                l2l_error_set(err, st, "meta-training epoch %d, unroll %d (steps %d..%d): %s; "
                              "phi was not updated from it and the best phi so far is kept "
                              "(try a lower --lr or --clip)",
                              epoch, k + 1, k * T, (k + 1) * T, msg);
                goto done;
            }
            double norm2 = 0;
            for (size_t i = 0; i < P; i++) norm2 += (double)dphi[i] * dphi[i];
            double norm = sqrt(norm2);
            gnorm += norm;
            if (cfg->clip > 0 && norm > cfg->clip)
                for (size_t i = 0; i < P; i++) dphi[i] *= (float)(cfg->clip / norm);
            const float lr = cfg->lr_half_life > 0
                                 ? (float)(cfg->lr * pow(0.5, (epoch - 1) / (double)cfg->lr_half_life))
                                 : cfg->lr;
            l2l_adam_update(P, net->phi, dphi, m, v, ++adam_t, lr, 0.9f, 0.999f, 1e-8f);
            if (averaging)
                for (size_t i = 0; i < P; i++) avg[i] = cfg->average * avg[i] + (1 - cfg->average) * net->phi[i];
        }
        pr.epoch = epoch;
        pr.train_loss = train / cfg->steps;
        pr.grad_norm = gnorm / n_updates;
        pr.valid_loss = NAN;
        if (cfg->eval_every > 0 && (epoch % cfg->eval_every == 0 || epoch == cfg->epochs)) {
            if (averaging) { /* score the average: phi is set aside meanwhile */
                memcpy(raw, net->phi, P * sizeof(float));
                memcpy(net->phi, avg, P * sizeof(float));
            }
            st = validate(task, net, cfg, curves, &pr.valid_loss, err);
            if (averaging) memcpy(net->phi, raw, P * sizeof(float));
            if (st) goto done;
            if (pr.valid_loss < pr.best_valid) {
                pr.best_valid = pr.valid_loss;
                pr.best_epoch = epoch;
                memcpy(best, averaging ? avg : net->phi, P * sizeof(float));
            } else if (cfg->rollback > 0 && !(pr.valid_loss <= cfg->rollback * pr.best_valid)) {
                memcpy(net->phi, best, P * sizeof(float));
                if (averaging) memcpy(avg, best, P * sizeof(float));
                memset(m, 0, P * sizeof(float));
                memset(v, 0, P * sizeof(float));
                adam_t = 0;
                pr.rollbacks++;
            }
        }
        pr.seconds = now_seconds() - t0;
        pr.rng = rng;
        if (cb && cb(&pr, cb_ctx)) break;
    }
done:
    if (best && cfg->eval_every > 0) memcpy(net->phi, best, P * sizeof(float));
    else if (avg) memcpy(net->phi, avg, P * sizeof(float));
    l2l_unroll_free(u);
    l2l_task_free(&rescaled);
    if (imitating) l2l_optimizer_free(&teacher);
    l2l_es_buffers_free(&esb);
    l2l_lstm_state_free(&state);
    l2l_free(theta), l2l_free(dphi), l2l_free(m), l2l_free(v), l2l_free(best);
    l2l_free(losses), l2l_free(weights), l2l_free(curves), l2l_free(avg), l2l_free(raw);
    l2l_free(no_weights);
    return st;
}
