/* A slow, obvious double-precision reference of the learned optimizer (forward and
 * backpropagation through an unroll), used by the tests to check the fast float
 * kernels and, by finite differences, the backward passes. Layout is
 * coordinate-major here, (N, H), the opposite of the fast path, on purpose. */
#ifndef L2L_LSTM_REF_H
#define L2L_LSTM_REF_H

#include "l2l.h"

typedef struct {
    size_t n;
    double grad_scale; /* d loss / d theta = grad_scale * grad */
    void *ctx;
    double (*loss_grad)(void *ctx, const double *theta, double *grad);
    /* optional imitation (NULL: none): the meta-loss gains
     * 1/n sum_t ||update_t - targets_t||², targets (T, n) fixed */
    const double *targets;
} l2l_ref_task;

/* One cell for one coordinate: gates (4H) receives the activated i, f, g, o. */
void l2l_ref_cell_forward(int H, int in, const double *W_ih, const double *W_hh,
                          const double *b_ih, const double *b_hh, const double *x,
                          const double *h_prev, const double *c_prev, double *gates, double *h,
                          double *c);
/* Given dh, dc (gradients of h and c), accumulates dW_ih, dW_hh, db (4H) and writes dx (in),
 * dh_prev, dc_prev (H). */
void l2l_ref_cell_backward(int H, int in, const double *W_ih, const double *W_hh,
                           const double *gates, const double *c_prev, const double *c,
                           const double *x, const double *h_prev, const double *dh,
                           const double *dc, double *dW_ih, double *dW_hh, double *db, double *dx,
                           double *dh_prev, double *dc_prev);
/* x (D) from one coordinate's g; with logsign-rms, updates its mean square *v first. */
void l2l_ref_preprocess(const l2l_lstm_config *cfg, double g, double *v, double *x);

/* T steps of the learned optimizer with phi (double, l2l layout) on task from theta (N),
 * h, c (L, N, H) and logsign-rms's mean squares v (N; may be NULL for the other
 * preprocessings), updated in place. xs_in (T, N, D), when non-NULL, replaces the
 * preprocessed gradients (frozen inputs, for finite differences); xs_out (may be NULL)
 * receives the inputs used. losses (T+1, may be NULL) gets f(theta_0..theta_T).
 * Returns the meta-loss sum_{t=1..T} w_t f(theta_t) (log_loss: w_t log f(theta_t));
 * dphi (may be NULL) accumulates its gradient with second derivatives dropped.
 * Returns NaN on allocation failure. */
double l2l_ref_unroll(const l2l_lstm_config *cfg, const double *phi, const l2l_ref_task *task,
                      int T, const double *weights, int log_loss, double *theta, double *h,
                      double *c, double *v, const double *xs_in, double *xs_out, double *losses, double *dphi);

#endif
