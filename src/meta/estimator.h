/* How meta-training (train.c) estimates the gradient of the meta-loss with respect to
 * phi: one small interface, one file per estimator behind it. A new estimator is a new
 * file with its l2l_estimator_ops table plus one entry in train.c's table. Not part of
 * the API.
 *
 * Every estimator works on a meta-batch of B optimizees (a batch task's problems, or a
 * single task), which may be shared among several processes (comm.h): each optimizee
 * (TBPTT, imitation) or each particle of each optimizee (ES, PES) is one unit of work,
 * run by one process from random streams that depend only on the unit, and every
 * meta-update combines the units' records in unit order. The combination is the same
 * code on every process and in a process alone, so the bytes are the same whatever the
 * number of processes (docs/DISTRIBUTED.md). */
#ifndef L2L_ESTIMATOR_H
#define L2L_ESTIMATOR_H

#include "lstm/lstm.h"
#include "meta/comm.h"

/* The optimizees of a meta-update and the processes that share them. */
typedef struct {
    l2l_task *child;      /* (B) the optimizees */
    int B;
    const l2l_comm *comm; /* never NULL: l2l_comm_one for a process alone */
} l2l_meta_batch;

/* Optimizee i's random stream in the epoch whose seed the training stream drew: its
 * problem, its starting point, then its minibatches. It depends on (seed, i) alone, so
 * whichever process runs optimizee i runs it the same way. */
void l2l_meta_child_rng(uint64_t epoch_seed, int i, l2l_rng *rng);

typedef struct l2l_estimator_ops {
    const char *name;
    size_t size; /* bytes of the estimator's state, which train.c allocates zeroed */
    /* Checks the estimator's own fields of cfg, then allocates its buffers for net and
     * the meta-batch (mb must outlive the estimator); self is zeroed. free must be safe
     * after a failed create. Not collective: train.c agrees on the outcome. */
    l2l_status (*create)(void *self, const l2l_lstm *net, const l2l_meta_batch *mb,
                         const l2l_train_config *cfg, l2l_error *err);
    /* Meta-updates per epoch (TBPTT and imitation: steps / unroll; ES: 1). */
    int (*updates_per_epoch)(const l2l_train_config *cfg);
    /* Fresh optimizees from the epoch's seed (l2l_meta_child_rng), every state reset. */
    void (*begin_epoch)(void *self, uint64_t epoch_seed);
    /* Collective. Writes meta-update k's gradient into dphi (zeroed by the caller) and
     * adds f over the steps it ran to *loss_sum, one step at a time, the mean over the
     * meta-batch; the same on every process. An error message says where in the epoch
     * it happened (the caller adds the epoch). */
    l2l_status (*gradient)(void *self, const l2l_lstm *net, int k, float *dphi, double *loss_sum,
                           l2l_error *err);
    /* The estimator's own random stream, which carries on from one epoch into the next,
     * for the training state; NULL (the function or its result) if it has none. Nothing
     * else survives an epoch: begin_epoch redraws the optimizees and resets every
     * particle, so a state saved between epochs is whole with this stream alone. */
    l2l_rng *(*stream)(void *self);
    void (*free)(void *self);
} l2l_estimator_ops;

extern const l2l_estimator_ops l2l_estimator_tbptt;   /* tbptt.c */
extern const l2l_estimator_ops l2l_estimator_es;      /* es.c */
extern const l2l_estimator_ops l2l_estimator_imitate; /* imitate.c */
extern const l2l_estimator_ops l2l_estimator_pes;     /* pes.c */

/* ------------------------------------ truncated unrolls (tbptt.c, imitate.c) */

/* One optimizee of the meta-batch run in unrolls of T steps, theta and the LSTM state
 * carried from one unroll into the next without gradient. */
typedef struct {
    l2l_task *task;
    l2l_unroll unroll;
    l2l_lstm_state state;
    l2l_rng rng;          /* its minibatches */
    float *theta;         /* (n) */
    l2l_optimizer teacher; /* imitation: the teacher on this optimizee */
} l2l_truncated_run;

/* What TBPTT and imitation share: the runs of this process's optimizees; an unroll is
 * a forward on each, an exchange of their losses, a backward on each with the steps
 * weighed by the meta-batch's losses, and an exchange of their meta-gradients. */
typedef struct {
    l2l_meta_batch mb;
    int T;
    int log_loss;         /* the objective sums log f of the meta-batch's mean loss */
    const float *weights; /* (T) the objective's weights w_t; NULL: all ones */
    l2l_truncated_run *run; /* (hi - lo) this process's optimizees lo .. hi - 1 */
    l2l_share losses;     /* per optimizee: f(theta_0..theta_T), (T + 1) doubles */
    l2l_share grads;      /* per optimizee: its meta-gradient, P floats */
    double *f;            /* (T + 1) the meta-batch's mean loss */
    float *w;             /* (T) the weights the backward gets */
} l2l_truncated;

/* teacher: imitation's hand-written optimizer, or NULL (TBPTT). */
l2l_status l2l_truncated_create(l2l_truncated *s, const l2l_lstm *net, const l2l_meta_batch *mb,
                                const l2l_unroll_config *ucfg, const l2l_opt_spec *teacher,
                                l2l_error *err);
int l2l_truncated_updates(const l2l_train_config *cfg);
void l2l_truncated_begin(l2l_truncated *s, uint64_t epoch_seed);
/* Unroll k: steps kT..(k+1)T. */
l2l_status l2l_truncated_gradient(l2l_truncated *s, const l2l_lstm *net, int k, float *dphi,
                                  double *loss_sum, l2l_error *err);
void l2l_truncated_free(l2l_truncated *s);

/* ------------------- antithetic perturbations of phi (perturb.c: es.c, pes.c) */

/* A particle of ES and PES is one optimizee of the meta-batch run at phi + sigma e_k or
 * phi - sigma e_k: unit (i, k, s) = (i pairs + k) 2 + s for optimizee i, pair k, sign s
 * (0: +, 1: -), so that a process's block of units holds few optimizees. */
typedef struct {
    int pairs;      /* antithetic pairs per meta-update */
    float sigma;    /* the perturbations' scale */
    int log_loss;   /* the meta-loss sums log f instead of f */
    l2l_rng noise;  /* the estimator's stream (seed, L2L_STREAM_ES): one draw per update */
    uint64_t draw;  /* this update's draw: e_k comes from stream (draw, k) */
    l2l_lstm pert;  /* phi +- sigma e */
    float *e;       /* (P) */
} l2l_perturb;

/* Checks cfg->es (pairs >= 1, sigma > 0 and finite) and allocates for net's phi. */
l2l_status l2l_perturb_create(l2l_perturb *p, const l2l_lstm *net, const l2l_train_config *cfg,
                              l2l_error *err);
void l2l_perturb_next(l2l_perturb *p);                               /* a new update */
void l2l_perturb_draw(l2l_perturb *p, int k);                        /* e = this update's e_k */
void l2l_perturb_set(l2l_perturb *p, const l2l_lstm *net, int sign); /* pert = phi +- sigma e */
void l2l_perturb_free(l2l_perturb *p);
static inline int l2l_particle(int pairs, int i, int k, int s) { return (i * pairs + k) * 2 + s; }
/* Pair k's meta-losses L[s] = sum_t f_t (or log f_t) and F[s] = sum_t f_t over the
 * `len` steps of its runs, f_t the meta-batch's mean of the optimizees' losses at step
 * t, from the particles' records (len doubles each; +Inf from a divergence on). L[s] is
 * +Inf when a run diverged. */
void l2l_perturb_pair(const l2l_perturb *p, const l2l_share *curves, int B, int len, int k,
                      double L[2], double F[2]);

/* --------------------------------------------- evolution strategies (es.c) */

/* Its state, here for the tests that hold its estimate to finite differences. */
typedef struct {
    l2l_meta_batch mb;
    int steps;
    l2l_perturb pt;
    l2l_share curves;     /* per particle: f(theta_1..theta_steps), steps doubles */
    uint64_t epoch_seed;
    l2l_lstm_state *state; /* (B) the optimizees' LSTM states */
    float *theta0;        /* (max n) the optimizee's start */
    float *theta, *grad, *update; /* (max n) */
} l2l_es;

/* One run of net on optimizee i of the meta-batch from theta0 over `steps` steps with the
 * minibatch stream rng (copied, so that every run sees the same minibatches):
 * f(theta_1 .. theta_steps) into curve (steps), +Inf from the first non-finite loss on. */
void l2l_es_rollout(l2l_es *es, const l2l_lstm *net, int i, const float *theta0, l2l_rng rng,
                    double *curve);

#endif
