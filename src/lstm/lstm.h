/* The learned optimizer's internals, shared by the library's modules, the tests and the
 * benchmark (not part of the API): the parameter layout, the recurrent state, the
 * inference step (src/lstm/step.c) and backpropagation through an unroll
 * (src/lstm/unroll.c). */
#ifndef L2L_LSTM_H
#define L2L_LSTM_H

#include "l2l.h"

/* ------------------------------------------------------- layout (params.c) */

/* The inputs per coordinate: 1 without preprocessing, 2 with log/sign, 3 with
 * log/sign and the mean-square-normalised gradient. */
int l2l_lstm_n_in(const l2l_lstm_config *cfg);
/* The first n group names joined by commas ("kernels,other"; "" for n = 0), as the
 * checkpoints' "groups" key and the error messages write them. */
void l2l_group_names_join(const char (*names)[L2L_GROUP_NAME], int n, char *out, size_t size);
/* The number of LSTMs, cfg->groups with 0 read as 1. */
int l2l_lstm_n_groups(const l2l_lstm_config *cfg);
/* Named views of a buffer in phi's layout (phi, its gradient, the meta-Adam moments):
 * v (room for L2L_MAX_GROUPS) receives group g's in v[g]. */
void l2l_lstm_view_of(const l2l_lstm_config *cfg, float *buf, l2l_lstm_view *v);

/* ------------------------------------------------- tiles (tiles.c) */

/* The kernels work on tiles of up to TILE consecutive coordinates of one group. */
typedef struct {
    size_t n0; /* first coordinate */
    int nt;    /* coordinates, 1..TILE */
    int g;     /* the group whose LSTM runs on them */
} l2l_tile;

typedef struct {
    size_t n;       /* coordinates covered, in order */
    size_t n_tiles;
    l2l_tile *tile; /* (n_tiles) */
} l2l_tiling;

/* Cuts n coordinates into tiles for net: with one group, tiles of TILE from 0; with
 * groups, each run of coordinates of one group (group, n bytes) into tiles of its own.
 * Fails (L2L_STATUS_ARG) for a net with groups when group is NULL or holds a value
 * >= its groups. */
l2l_status l2l_tiling_create(l2l_tiling *t, const l2l_lstm *net, size_t n, const uint8_t *group,
                             l2l_error *err);
void l2l_tiling_free(l2l_tiling *t);

/* ------------------------------------------------- inference (step.c) */

/* x (D, N), feature-major, from the gradient g (N). With logsign-rms, first updates the
 * mean square v (N) with g (v is not read otherwise and may be NULL). */
void l2l_preprocess(const l2l_lstm_config *cfg, size_t n, const float *g, float *v, float *x);

/* Recurrent state for N coordinates: h and c for every layer and the preprocessing's v,
 * zero for a new optimizee.
 * Feature-major (coordinates contiguous), so coordinates fill SIMD lanes. */
typedef struct {
    size_t n;
    int layers, hidden;
    float *h;       /* (layers, H, N) */
    float *c;       /* (layers, H, N) */
    float *v;       /* (N) logsign-rms's mean square gradient */
    float *x;       /* (D, N) preprocessed inputs of the current step */
    float *scratch; /* (n_scratch, 4H, tile) gate scratch, one slice per thread */
    int n_scratch;
    size_t capacity; /* the most coordinates it was allocated for */
    l2l_tiling tiles;
} l2l_lstm_state;

/* A state for up to n coordinates, bound to n of them with groups `group` (n bytes, read
 * here only; see l2l_tiling_create). */
l2l_status l2l_lstm_state_create(l2l_lstm_state *s, const l2l_lstm *net, size_t n,
                                 const uint8_t *group, l2l_error *err);
/* Binds the state to n <= capacity coordinates with groups `group`, for optimizees of
 * several sizes in turn; the state's contents are then undefined (zero it). */
l2l_status l2l_lstm_state_bind(l2l_lstm_state *s, const l2l_lstm *net, size_t n,
                               const uint8_t *group, l2l_error *err);
void l2l_lstm_state_zero(l2l_lstm_state *s);
void l2l_lstm_state_free(l2l_lstm_state *s);

/* One step over N coordinates: reads grad, updates state, writes the update (N) to
 * apply as theta += update. No caches are kept. */
void l2l_lstm_step(const l2l_lstm *net, l2l_lstm_state *state, const float *grad, float *update);

/* ------------------------------------- backpropagation (unroll.c) */

/* An imitation teacher writes target (N), the update it would make from grad (it keeps
 * its own state, e.g. momentum; its owner resets it for a new optimizee). */
typedef void (*l2l_teacher_fn)(void *ctx, const float *grad, float *target);

typedef struct {
    int T;                   /* steps per unroll */
    l2l_objective objective; /* sum_t w_t f(theta_t), or sum_t w_t log f(theta_t) (f > 0) */
    /* With a teacher, the meta-loss gains 1/N sum_t ||update_t - target_t||²; the targets
     * are constants to the meta-gradient, like the gradients. NULL: none. */
    l2l_teacher_fn teacher;
    void *teacher_ctx;
} l2l_unroll_config;

/* Buffers for backpropagation through unrolls of T steps over N coordinates (see
 * unroll.c for what is cached and what is recomputed). Filled by l2l_unroll_create. */
typedef struct {
    l2l_unroll_config cfg;
    size_t n;
    int L, H, D;
    size_t n_params;
    float *x;          /* (T, D, N) preprocessed inputs */
    float *grad;       /* (T+1, N) gradients at theta_0..theta_T */
    float *h0, *c0;    /* (L, H, N) state at the unroll's start */
    float *update;     /* (N) */
    int n_threads;
    l2l_tiling tiles;
    size_t n_chunks;   /* fixed runs of consecutive tiles, each with its own dphi */
    float *dphi_chunk; /* (n_chunks, n_params) */
    float *ws;         /* (n_threads, ws_floats) per-thread tile caches */
    size_t ws_floats;
    float *wlog;       /* (T) log objective: the weights w_t / f(theta_t) */
    double *f;         /* (T+1) the losses, when l2l_unroll_run's caller keeps none */
    float *imit;       /* (T, N) with a teacher: the imitation term's adjoint of update_t */
} l2l_unroll;

/* group: as for l2l_lstm_state_create. */
l2l_status l2l_unroll_create(l2l_unroll *u, const l2l_lstm *net, size_t n, const uint8_t *group,
                             const l2l_unroll_config *cfg, l2l_error *err);
void l2l_unroll_free(l2l_unroll *u);
/* Runs the learned optimizer for T steps on a task from theta (N) and state, both carried
 * on in place, with the minibatch stream rng, and accumulates into dphi (n_params) the
 * gradient of the meta-loss sum_{t=1..T} w_t f(theta_t) (plus the imitation term) with
 * second derivatives dropped (d grad_t / d phi = 0). weights (T) may be NULL (all ones).
 * losses (T+1, may be NULL) receives f(theta_0..theta_T). It is l2l_unroll_forward, the
 * log objective's weights w_t / f(theta_t), then l2l_unroll_backward. */
l2l_status l2l_unroll_run(l2l_unroll *u, const l2l_lstm *net, l2l_task *task, float *theta,
                          l2l_lstm_state *state, const float *weights, l2l_rng *rng,
                          float *dphi, double *losses, l2l_error *err);
/* The two halves, for a caller that weighs the steps only once the losses are known (a
 * meta-batch whose optimizees run on several processes, src/meta/tbptt.c). The forward
 * runs the T steps, keeps what the backward needs and writes f(theta_0..theta_T) to
 * losses (T+1); it fails if a loss or gradient is not finite. The backward accumulates
 * into dphi the gradient of sum_t weights[t-1] f(theta_t) (weights NULL: all ones; the
 * objective is not applied here), the optimizee's gradients scaled by grad_scale, plus
 * the imitation term, through the last forward. */
l2l_status l2l_unroll_forward(l2l_unroll *u, const l2l_lstm *net, l2l_task *task, float *theta,
                              l2l_lstm_state *state, l2l_rng *rng, double *losses, l2l_error *err);
l2l_status l2l_unroll_backward(l2l_unroll *u, const l2l_lstm *net, float grad_scale,
                               const float *weights, float *dphi, l2l_error *err);

#endif
