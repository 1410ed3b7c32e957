/* Hand-written baselines and the learned optimizer behind one interface:
 * step(grad, theta). Hyper-parameters other than the learning rate are Torch7's
 * defaults, as in the paper's comparisons (PAPER.md section 5). */
#include <math.h>
#include <string.h>

#include "internal.h"

static const char *const opt_names[] = {"sgd", "nag", "rmsprop", "adam", "nag-floor", "lstm"};

const char *l2l_opt_name(l2l_opt_kind kind)
{
    return (unsigned)kind < sizeof opt_names / sizeof *opt_names ? opt_names[kind] : "?";
}

int l2l_opt_parse(const char *name)
{
    for (int k = L2L_OPT_SGD; k < L2L_OPT_LSTM; k++)
        if (strcmp(name, opt_names[k]) == 0) return k;
    return -1;
}

l2l_status l2l_optimizer_create(l2l_optimizer *o, l2l_opt_kind kind, size_t n, float lr,
                                const l2l_lstm *net, l2l_error *err)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->n = n;
    o->lr = lr;
    if (kind == L2L_OPT_LSTM) {
        L2L_ASSERT(net != NULL);
        o->net = net;
        o->update = l2l_alloc(n * sizeof(float));
        if (!o->update) return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate an optimizer for %zu coordinates", n);
        l2l_status st = l2l_lstm_state_create(&o->state, net, n, err);
        if (st) {
            l2l_optimizer_free(o);
            return st;
        }
        return L2L_OK;
    }
    if (kind > L2L_OPT_LSTM) return l2l_error_set(err, L2L_ERR_ARG, "unknown optimizer kind %d", (int)kind);
    if (!(lr > 0) || !isfinite(lr))
        return l2l_error_set(err, L2L_ERR_ARG, "learning rate must be positive and finite, got %g", (double)lr);
    o->m = l2l_alloc(n * sizeof(float));
    o->v = l2l_alloc(n * sizeof(float));
    if (!o->m || !o->v) {
        l2l_optimizer_free(o);
        return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate an optimizer for %zu coordinates", n);
    }
    return L2L_OK;
}

void l2l_optimizer_reset(l2l_optimizer *o)
{
    o->t = 0;
    if (o->m) memset(o->m, 0, o->n * sizeof(float));
    if (o->v) memset(o->v, 0, o->n * sizeof(float));
    if (o->kind == L2L_OPT_LSTM) l2l_lstm_state_zero(&o->state);
}

void l2l_adam_update(size_t n, float *x, const float *g, float *m, float *v, long t, float lr,
                     float beta1, float beta2, float eps)
{
    /* Torch7/TensorFlow form: step = lr sqrt(1 - b2^t) / (1 - b1^t), x -= step m / (sqrt(v) + eps). */
    const float step = (float)(lr * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t)));
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        x[i] -= step * m[i] / (sqrtf(v[i]) + eps);
    }
}

void l2l_optimizer_step(l2l_optimizer *o, const float *grad, float *theta)
{
    const size_t n = o->n;
    const float lr = o->lr;
    o->t++;
    switch (o->kind) {
    case L2L_OPT_SGD:
        for (size_t i = 0; i < n; i++) theta[i] -= lr * grad[i];
        break;
    case L2L_OPT_NAG: {
        /* buf = mu buf + g; theta -= lr (g + mu buf) (Torch7 sgd with nesterov, dampening 0). */
        const float mu = 0.9f;
        for (size_t i = 0; i < n; i++) {
            o->m[i] = mu * o->m[i] + grad[i];
            theta[i] -= lr * (grad[i] + mu * o->m[i]);
        }
        break;
    }
    case L2L_OPT_RMSPROP: {
        const float alpha = 0.99f, eps = 1e-8f;
        for (size_t i = 0; i < n; i++) {
            o->m[i] = alpha * o->m[i] + (1.0f - alpha) * grad[i] * grad[i];
            theta[i] -= lr * grad[i] / (sqrtf(o->m[i]) + eps);
        }
        break;
    }
    case L2L_OPT_NAG_FLOOR: {
        const float mu = 0.9f, alpha = L2L_FLOOR_ALPHA, eps = L2L_FLOOR_EPS;
        for (size_t i = 0; i < n; i++) {
            o->v[i] = alpha * o->v[i] + (1.0f - alpha) * grad[i] * grad[i];
            const float rms = sqrtf(o->v[i]);
            const float g = rms < eps && rms > 0 ? grad[i] * (eps / rms) : grad[i];
            o->m[i] = mu * o->m[i] + g;
            theta[i] -= lr * (g + mu * o->m[i]);
        }
        break;
    }
    case L2L_OPT_ADAM:
        l2l_adam_update(n, theta, grad, o->m, o->v, o->t, lr, 0.9f, 0.999f, 1e-8f);
        break;
    case L2L_OPT_LSTM:
        l2l_lstm_step(o->net, &o->state, grad, o->update);
        for (size_t i = 0; i < n; i++) theta[i] += o->update[i];
        break;
    }
}

void l2l_optimizer_free(l2l_optimizer *o)
{
    l2l_free(o->m);
    l2l_free(o->v);
    l2l_free(o->update);
    if (o->kind == L2L_OPT_LSTM) l2l_lstm_state_free(&o->state);
    memset(o, 0, sizeof *o);
}
