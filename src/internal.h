/* Internal helpers shared by the library's source files; not part of the API. */
#ifndef L2L_INTERNAL_H
#define L2L_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>

#include "l2l.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
/* f(c . theta) with c_i = exp(U[-spread, spread]) drawn afresh by every sample()
 * (src/task_rescale.c). Borrows inner, which must outlive task; free with l2l_task_free. */
l2l_status l2l_task_rescale_create(l2l_task *task, l2l_task *inner, float spread, l2l_error *err);

#endif

/* Programmer errors: print file:line and abort, in every build. */
#define L2L_ASSERT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: l2l internal error: assertion '%s' failed\n", __FILE__, \
                    __LINE__, #cond);                                                     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Allocations: zeroed, 64-byte aligned; free with l2l_free. Returns NULL on failure. */
void *l2l_alloc(size_t bytes);
void l2l_free(void *p);

/* f(c . theta) with c_i = exp(U[-spread, spread]) drawn afresh by every sample()
 * (src/task_rescale.c). Borrows inner, which must outlive task; free with l2l_task_free. */
l2l_status l2l_task_rescale_create(l2l_task *task, l2l_task *inner, float spread, l2l_error *err);

/* w (steps) = the meta-loss weights w_1..w_steps of a weighting (src/metatrain.c). */
void l2l_meta_weights(l2l_weighting weighting, int steps, float *w);

/* Evolution-strategies meta-gradients (src/es.c). */
typedef struct {
    l2l_lstm pert;        /* phi +- sigma e */
    l2l_lstm_state state;
    float *theta, *grad, *update; /* (N) */
    float *eps;           /* (P) */
} l2l_es_buffers;

l2l_status l2l_es_buffers_create(l2l_es_buffers *b, const l2l_lstm *net, size_t n, l2l_error *err);
void l2l_es_buffers_free(l2l_es_buffers *b);
/* The meta-loss of one run of net on task from theta0 over `steps` steps with the
 * minibatch stream rng (copied); +Inf if it diverged. mean_f (may be NULL) receives
 * the mean of f over steps 1..steps. */
double l2l_es_rollout(const l2l_lstm *net, l2l_task *task, const float *theta0, l2l_rng rng,
                      const float *weights, int steps, int log_loss, l2l_es_buffers *b,
                      double *mean_f);
/* g (P) = the antithetic ES estimate of the meta-loss's gradient from `pairs` pairs of
 * runs at phi +- sigma e (e drawn from noise); returns the pairs used (those where
 * neither run diverged). mean_f (may be NULL) receives the mean of f over the steps
 * and the used runs (+Inf if none). */
int l2l_es_gradient(const l2l_lstm *net, l2l_task *task, const float *theta0, l2l_rng rng,
                    const float *weights, int steps, int log_loss, int pairs, float sigma,
                    l2l_rng *noise, l2l_es_buffers *b, float *g, double *mean_f);

#endif
