/* Reference implementation: see lstm_ref.h. Everything is a plain loop in double. */
#include <math.h>
#include <string.h>

#include "lstm/lstm.h"
#include "lstm_ref.h"
#include "util/util.h"

static double sigmoid(double a) { return 1.0 / (1.0 + exp(-a)); }

void l2l_ref_cell_forward(int H, int in, const double *W_ih, const double *W_hh,
                          const double *b_ih, const double *b_hh, const double *x,
                          const double *h_prev, const double *c_prev, double *gates, double *h,
                          double *c)
{
    for (int j = 0; j < 4 * H; j++) {
        double a = b_ih[j] + b_hh[j];
        for (int k = 0; k < in; k++) a += W_ih[j * in + k] * x[k];
        for (int k = 0; k < H; k++) a += W_hh[j * H + k] * h_prev[k];
        gates[j] = (j >= 2 * H && j < 3 * H) ? tanh(a) : sigmoid(a);
    }
    for (int k = 0; k < H; k++) {
        double i = gates[k], f = gates[H + k], g = gates[2 * H + k], o = gates[3 * H + k];
        c[k] = f * c_prev[k] + i * g;
        h[k] = o * tanh(c[k]);
    }
}

void l2l_ref_cell_backward(int H, int in, const double *W_ih, const double *W_hh,
                           const double *gates, const double *c_prev, const double *c,
                           const double *x, const double *h_prev, const double *dh,
                           const double *dc, double *dW_ih, double *dW_hh, double *db, double *dx,
                           double *dh_prev, double *dc_prev)
{
    double da[4 * 1024]; /* H <= 1024 (l2l_lstm_config_check) */
    for (int k = 0; k < H; k++) {
        double i = gates[k], f = gates[H + k], g = gates[2 * H + k], o = gates[3 * H + k];
        double tc = tanh(c[k]);
        double dct = dc[k] + dh[k] * o * (1 - tc * tc);
        da[k] = dct * g * i * (1 - i);
        da[H + k] = dct * c_prev[k] * f * (1 - f);
        da[2 * H + k] = dct * i * (1 - g * g);
        da[3 * H + k] = dh[k] * tc * o * (1 - o);
        dc_prev[k] = dct * f;
    }
    for (int k = 0; k < in; k++) dx[k] = 0;
    for (int k = 0; k < H; k++) dh_prev[k] = 0;
    for (int j = 0; j < 4 * H; j++) {
        db[j] += da[j];
        for (int k = 0; k < in; k++) {
            dW_ih[j * in + k] += da[j] * x[k];
            dx[k] += W_ih[j * in + k] * da[j];
        }
        for (int k = 0; k < H; k++) {
            dW_hh[j * H + k] += da[j] * h_prev[k];
            dh_prev[k] += W_hh[j * H + k] * da[j];
        }
    }
}

void l2l_ref_preprocess(const l2l_lstm_config *cfg, double g, double *v, double *x)
{
    if (cfg->preproc == L2L_PREPROC_NONE) {
        x[0] = g;
        return;
    }
    if (fabs(g) >= exp(-(double)cfg->p)) {
        x[0] = log(fabs(g)) / cfg->p;
        x[1] = g > 0 ? 1.0 : -1.0;
    } else {
        x[0] = -1.0;
        x[1] = exp((double)cfg->p) * g;
    }
    if (cfg->preproc == L2L_PREPROC_LOGSIGN_RMS) {
        const double d = L2L_RMS_DECAY, eps = L2L_RMS_EPS;
        *v = d * *v + (1 - d) * g * g;
        x[2] = g / sqrt(*v + eps * eps);
    }
}

double l2l_ref_unroll(const l2l_lstm_config *cfg, const double *phi, const l2l_ref_task *task,
                      int T, const double *weights, int log_loss, double *theta, double *h,
                      double *c, double *v, const double *xs_in, double *xs_out, double *losses, double *dphi)
{
    const int L = cfg->layers, H = cfg->layers > 0 ? cfg->hidden : 0, D = l2l_lstm_n_in(cfg);
    const size_t N = task->n;
    l2l_tensor_desc td[L2L_MAX_TENSORS];
    l2l_lstm_config c0 = *cfg;
    c0.hidden = H;
    l2l_lstm_tensors(&c0, td);
#define P(l, k) (phi + td[4 * (l) + (k)].offset) /* k: 0 W_ih, 1 W_hh, 2 b_ih, 3 b_hh */
    const double *w_out = phi + td[4 * L].offset, b_out = phi[td[4 * L + 1].offset];

    /* Everything for backward, per step: x (T, N, D), grads (T+1, N), gates (T, N, L, 4H),
     * h and c (T+1, N, L, H). */
    const size_t LH = (size_t)L * H;
    double *xs = calloc((size_t)T * N * D, sizeof(double));
    double *gr = calloc((size_t)(T + 1) * N, sizeof(double));
    double *gs = calloc((size_t)T * N * 4 * LH + 1, sizeof(double));
    double *hs = calloc((size_t)(T + 1) * N * LH + 1, sizeof(double));
    double *cs = calloc((size_t)(T + 1) * N * LH + 1, sizeof(double));
    if (!xs || !gr || !gs || !hs || !cs) {
        free(xs), free(gr), free(gs), free(hs), free(cs);
        return NAN;
    }
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < LH; k++) {
            hs[n * LH + k] = h[n * LH + k];
            cs[n * LH + k] = c[n * LH + k];
        }

    double meta = 0, *fs = calloc((size_t)T + 1, sizeof(double));
    double *us = calloc((size_t)T * N, sizeof(double)); /* (T, N) updates */
    if (!fs || !us) {
        free(xs), free(gr), free(gs), free(hs), free(cs), free(fs), free(us);
        return NAN;
    }
    for (int t = 0; t <= T; t++) {
        double f = task->loss_grad(task->ctx, theta, gr + (size_t)t * N);
        fs[t] = f;
        if (losses) losses[t] = f;
        if (t > 0) meta += (weights ? weights[t - 1] : 1.0) * (log_loss ? log(f) : f);
        if (t == T) break;
        for (size_t n = 0; n < N; n++) {
            double *x = xs + ((size_t)t * N + n) * D;
            if (xs_in)
                memcpy(x, xs_in + ((size_t)t * N + n) * D, D * sizeof(double));
            else
                l2l_ref_preprocess(cfg, gr[(size_t)t * N + n], v ? &v[n] : NULL, x);
            const double *in = x;
            for (int l = 0; l < L; l++) {
                const double *hp = hs + ((size_t)t * N + n) * LH + (size_t)l * H;
                const double *cp = cs + ((size_t)t * N + n) * LH + (size_t)l * H;
                double *hn = hs + ((size_t)(t + 1) * N + n) * LH + (size_t)l * H;
                double *cn = cs + ((size_t)(t + 1) * N + n) * LH + (size_t)l * H;
                double *g = gs + ((size_t)t * N + n) * 4 * LH + (size_t)l * 4 * H;
                l2l_ref_cell_forward(H, l == 0 ? D : H, P(l, 0), P(l, 1), P(l, 2), P(l, 3), in, hp,
                                     cp, g, hn, cn);
                in = hn;
            }
            const int K = L > 0 ? H : D;
            double u = b_out;
            for (int k = 0; k < K; k++) u += w_out[k] * in[k];
            const double upd = cfg->scale * u;
            us[(size_t)t * N + n] = upd;
            if (task->targets) {
                const double e = upd - task->targets[(size_t)t * N + n];
                meta += e * e / N;
            }
            theta[n] += upd;
        }
    }
    if (xs_out) memcpy(xs_out, xs, (size_t)T * N * D * sizeof(double));
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < LH; k++) {
            h[n * LH + k] = hs[((size_t)T * N + n) * LH + k];
            c[n * LH + k] = cs[((size_t)T * N + n) * LH + k];
        }

    if (dphi) {
        double *dw_out = dphi + td[4 * L].offset, *db_out = dphi + td[4 * L + 1].offset;
        for (size_t n = 0; n < N; n++) {
            /* Coordinate n alone: adjoints of h and c per layer, carried back in time. */
            double dh[L2L_MAX_LAYERS][1024], dc[L2L_MAX_LAYERS][1024];
            double dx[1024], dhp[1024], dcp[1024];
            memset(dh, 0, sizeof dh);
            memset(dc, 0, sizeof dc);
            double acc = 0;
            for (int t = T - 1; t >= 0; t--) {
                /* dL/d update_t = grad_scale * sum_{s > t} w_s grad_s: theta_s for every
                 * s > t moves one-for-one with update_t, and grad_s is held constant. */
                /* with log f, d log f / d theta = grad / f */
                const double f = log_loss ? fs[t + 1] : 1.0;
                acc += (weights ? weights[t] : 1.0) / f * task->grad_scale * gr[(size_t)(t + 1) * N + n];
                double dupd = acc; /* the adjoint of update_t; imitation adds to it alone */
                if (task->targets)
                    dupd += 2.0 / N * (us[(size_t)t * N + n] - task->targets[(size_t)t * N + n]);
                const double du = cfg->scale * dupd;
                const double *x = xs + ((size_t)t * N + n) * D;
                const double *top = L > 0 ? hs + ((size_t)(t + 1) * N + n) * LH + (size_t)(L - 1) * H : x;
                const int K = L > 0 ? H : D;
                *db_out += du;
                for (int k = 0; k < K; k++) dw_out[k] += du * top[k];
                if (L > 0)
                    for (int k = 0; k < H; k++) dh[L - 1][k] += du * w_out[k];
                for (int l = L - 1; l >= 0; l--) {
                    const double *in = l == 0 ? x : hs + ((size_t)(t + 1) * N + n) * LH + (size_t)(l - 1) * H;
                    const double *hp = hs + ((size_t)t * N + n) * LH + (size_t)l * H;
                    const double *cp = cs + ((size_t)t * N + n) * LH + (size_t)l * H;
                    const double *cn = cs + ((size_t)(t + 1) * N + n) * LH + (size_t)l * H;
                    const double *g = gs + ((size_t)t * N + n) * 4 * LH + (size_t)l * 4 * H;
                    const int in_n = l == 0 ? D : H;
                    l2l_ref_cell_backward(H, in_n, P(l, 0), P(l, 1), g, cp, cn, in, hp, dh[l], dc[l],
                                          dphi + td[4 * l].offset, dphi + td[4 * l + 1].offset,
                                          dphi + td[4 * l + 2].offset, dx, dhp, dcp);
                    memcpy(dh[l], dhp, H * sizeof(double));
                    memcpy(dc[l], dcp, H * sizeof(double));
                    if (l > 0)
                        for (int k = 0; k < H; k++) dh[l - 1][k] += dx[k];
                }
            }
        }
    }
#undef P
    free(xs), free(gr), free(gs), free(hs), free(cs), free(fs), free(us);
    return meta;
}
