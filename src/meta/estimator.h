/* How meta-training (train.c) estimates the gradient of the meta-loss with respect to
 * phi: one small interface, one file per estimator behind it. A new estimator is a new
 * file with its l2l_estimator_ops table plus one entry in train.c's table. Not part of
 * the API. */
#ifndef L2L_ESTIMATOR_H
#define L2L_ESTIMATOR_H

#include "lstm/lstm.h"

typedef struct l2l_estimator_ops {
    const char *name;
    size_t size; /* bytes of the estimator's state, which train.c allocates zeroed */
    /* Checks the estimator's own fields of cfg, then allocates its buffers for net and
     * task; self is zeroed. free must be safe after a failed create. */
    l2l_status (*create)(void *self, const l2l_lstm *net, l2l_task *task,
                         const l2l_train_config *cfg, l2l_error *err);
    /* Meta-updates per epoch (TBPTT and imitation: steps / unroll; ES: 1). */
    int (*updates_per_epoch)(const l2l_train_config *cfg);
    /* A fresh optimizee: theta0 drawn from the training stream, every state reset. */
    void (*begin_epoch)(void *self, l2l_rng *train_rng);
    /* Writes meta-update k's gradient into dphi (zeroed by the caller) and adds f over
     * the steps it ran to *loss_sum, one step at a time. An error message says where in
     * the epoch it happened (the caller adds the epoch). */
    l2l_status (*gradient)(void *self, const l2l_lstm *net, int k, l2l_rng *train_rng,
                           float *dphi, double *loss_sum, l2l_error *err);
    /* The estimator's own random stream, which carries on from one epoch into the next,
     * for the training state; NULL (the function or its result) if it has none. Nothing
     * else survives an epoch: begin_epoch redraws the optimizee and resets every
     * particle, so a state saved between epochs is whole with this stream alone. */
    l2l_rng *(*stream)(void *self);
    void (*free)(void *self);
} l2l_estimator_ops;

extern const l2l_estimator_ops l2l_estimator_tbptt;   /* tbptt.c */
extern const l2l_estimator_ops l2l_estimator_es;      /* es.c */
extern const l2l_estimator_ops l2l_estimator_imitate; /* imitate.c */
extern const l2l_estimator_ops l2l_estimator_pes;     /* pes.c */

/* ------------------------------------ truncated unrolls (tbptt.c, imitate.c) */

/* One optimizee run in unrolls of T steps, theta and the LSTM state carried from one
 * unroll into the next without gradient: what TBPTT and imitation share. */
typedef struct {
    l2l_task *task;
    l2l_unroll unroll;
    l2l_lstm_state state;
    float *theta;         /* (N) */
    double *losses;       /* (T+1) f(theta_0..theta_T) of the last unroll */
    const float *weights; /* (T) the objective's weights w_t; NULL: all ones */
} l2l_truncated;

l2l_status l2l_truncated_create(l2l_truncated *s, const l2l_lstm *net, l2l_task *task,
                                const l2l_unroll_config *ucfg, l2l_error *err);
int l2l_truncated_updates(const l2l_train_config *cfg);
void l2l_truncated_begin(l2l_truncated *s, l2l_rng *train_rng);
/* Unroll k: steps kT..(k+1)T. */
l2l_status l2l_truncated_gradient(l2l_truncated *s, const l2l_lstm *net, int k,
                                  l2l_rng *train_rng, float *dphi, double *loss_sum,
                                  l2l_error *err);
void l2l_truncated_free(l2l_truncated *s);

/* ------------------- antithetic perturbations of phi (perturb.c: es.c, pes.c) */

typedef struct {
    int pairs;      /* antithetic pairs per meta-update */
    float sigma;    /* the perturbations' scale */
    int log_loss;   /* the meta-loss sums log f instead of f */
    l2l_rng noise;  /* e ~ N(0, I): stream (seed, L2L_STREAM_ES) */
    l2l_lstm pert;  /* phi +- sigma e */
    float *e;       /* (P) */
} l2l_perturb;

/* Checks cfg->es (pairs >= 1, sigma > 0 and finite) and allocates for net's phi. */
l2l_status l2l_perturb_create(l2l_perturb *p, const l2l_lstm *net, const l2l_train_config *cfg,
                              l2l_error *err);
void l2l_perturb_draw(l2l_perturb *p);                             /* a new e */
void l2l_perturb_set(l2l_perturb *p, const l2l_lstm *net, int sign); /* pert = phi +- sigma e */
void l2l_perturb_free(l2l_perturb *p);

/* --------------------------------------------- evolution strategies (es.c) */

/* Its state, here for the tests that hold its estimate to finite differences. */
typedef struct {
    l2l_task *task;
    int steps;
    l2l_perturb pt;
    l2l_lstm_state state;
    float *theta0;                /* (N) the epoch's optimizee start */
    float *theta, *grad, *update; /* (N) */
} l2l_es;

/* The meta-loss of one run of net from theta0 over `steps` steps with the minibatch
 * stream rng (copied, so that every run sees the same minibatches): sum_t f(theta_t) or
 * sum_t log f(theta_t); +Inf if it diverged. mean_f (may be NULL) receives the mean of
 * f over steps 1..steps. */
double l2l_es_rollout(l2l_es *es, const l2l_lstm *net, const float *theta0, l2l_rng rng,
                      double *mean_f);
/* g (P) = the antithetic estimate from es->pt.pairs pairs of runs at phi +- sigma e; returns
 * the pairs used (those where neither run diverged). mean_f (may be NULL) receives the
 * mean of f over the steps and the used runs (+Inf if none). */
int l2l_es_gradient(l2l_es *es, const l2l_lstm *net, const float *theta0, l2l_rng rng, float *g,
                    double *mean_f);

#endif
