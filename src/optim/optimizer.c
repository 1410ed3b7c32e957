/* Hand-written baselines and the learned optimizer behind one interface:
 * step(grad, theta). Hyper-parameters other than the learning rate are Torch7's
 * defaults, as in the paper's comparisons (docs/METHOD.md section 5). */
#include <math.h>
#include <string.h>

#include "lstm/lstm.h"
#include "optim/adam.h"
#include "util/util.h"

/* L2L_OPT_KIND_NAG_FLOOR: the decay of the mean square gradient and the floor on its
 * root (l2l.h). */
#define FLOOR_ALPHA 0.8f
#define FLOOR_EPS 5e-3f

static const char *const opt_names[] = {"sgd", "nag", "rmsprop", "adam", "nag-floor", "lstm"};

const char *l2l_opt_kind_name(l2l_opt_kind kind)
{
    return (unsigned)kind < sizeof opt_names / sizeof *opt_names ? opt_names[kind] : "?";
}

int l2l_opt_kind_parse(const char *name)
{
    for (int k = L2L_OPT_KIND_SGD; k < L2L_OPT_KIND_LSTM; k++)
        if (strcmp(name, opt_names[k]) == 0) return k;
    return -1;
}

/* An optimizer's private state: the step count and per-coordinate moments of the
 * hand-written kinds, the recurrent state and update buffer of the learned one. */
struct l2l_opt_state {
    long t;
    float *m, *v;        /* (N) first and second moments (NAG, RMSprop: m only) */
    l2l_lstm_state lstm; /* L2L_OPT_KIND_LSTM */
    float *update;       /* (N) L2L_OPT_KIND_LSTM */
};

l2l_status l2l_optimizer_create(l2l_optimizer *o, const l2l_opt_spec *spec, size_t n, l2l_error *err)
{
    return l2l_optimizer_create_groups(o, spec, n, NULL, err);
}

l2l_status l2l_optimizer_create_groups(l2l_optimizer *o, const l2l_opt_spec *spec, size_t n,
                                       const uint8_t *group, l2l_error *err)
{
    memset(o, 0, sizeof *o);
    if ((unsigned)spec->kind > L2L_OPT_KIND_LSTM)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown optimizer kind %d", (int)spec->kind);
    const int learned = spec->kind == L2L_OPT_KIND_LSTM;
    if (learned) L2L_ASSERT(spec->net != NULL);
    else if (!(spec->lr > 0) || !isfinite(spec->lr))
        return l2l_error_set(err, L2L_STATUS_ARG, "learning rate must be positive and finite, got %g",
                             (double)spec->lr);
    o->spec = *spec;
    o->n = n;
    l2l_opt_state *s = o->state = l2l_alloc(sizeof *s);
    if (!s) return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate an optimizer");
    if (learned) {
        l2l_status st = l2l_lstm_state_create(&s->lstm, spec->net, n, group, err);
        if (st) {
            l2l_optimizer_free(o);
            return st;
        }
        s->update = l2l_alloc(n * sizeof(float));
    } else {
        s->m = l2l_alloc(n * sizeof(float));
        s->v = l2l_alloc(n * sizeof(float));
    }
    if (learned ? !s->update : !s->m || !s->v) {
        l2l_optimizer_free(o);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate an optimizer for %zu coordinates", n);
    }
    return L2L_STATUS_OK;
}

void l2l_optimizer_reset(l2l_optimizer *o)
{
    l2l_opt_state *s = o->state;
    s->t = 0;
    if (s->m) memset(s->m, 0, o->n * sizeof(float));
    if (s->v) memset(s->v, 0, o->n * sizeof(float));
    if (o->spec.kind == L2L_OPT_KIND_LSTM) l2l_lstm_state_zero(&s->lstm);
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
    l2l_opt_state *s = o->state;
    const size_t n = o->n;
    const float lr = o->spec.lr;
    s->t++;
    switch (o->spec.kind) {
    case L2L_OPT_KIND_SGD:
        for (size_t i = 0; i < n; i++) theta[i] -= lr * grad[i];
        break;
    case L2L_OPT_KIND_NAG: {
        /* buf = mu buf + g; theta -= lr (g + mu buf) (Torch7 sgd with nesterov, dampening 0). */
        const float mu = 0.9f;
        for (size_t i = 0; i < n; i++) {
            s->m[i] = mu * s->m[i] + grad[i];
            theta[i] -= lr * (grad[i] + mu * s->m[i]);
        }
        break;
    }
    case L2L_OPT_KIND_RMSPROP: {
        const float alpha = 0.99f, eps = 1e-8f;
        for (size_t i = 0; i < n; i++) {
            s->m[i] = alpha * s->m[i] + (1.0f - alpha) * grad[i] * grad[i];
            theta[i] -= lr * grad[i] / (sqrtf(s->m[i]) + eps);
        }
        break;
    }
    case L2L_OPT_KIND_NAG_FLOOR: {
        const float mu = 0.9f, alpha = FLOOR_ALPHA, eps = FLOOR_EPS;
        for (size_t i = 0; i < n; i++) {
            s->v[i] = alpha * s->v[i] + (1.0f - alpha) * grad[i] * grad[i];
            const float rms = sqrtf(s->v[i]);
            const float g = rms < eps && rms > 0 ? grad[i] * (eps / rms) : grad[i];
            s->m[i] = mu * s->m[i] + g;
            theta[i] -= lr * (g + mu * s->m[i]);
        }
        break;
    }
    case L2L_OPT_KIND_ADAM:
        l2l_adam_update(n, theta, grad, s->m, s->v, s->t, lr, 0.9f, 0.999f, 1e-8f);
        break;
    case L2L_OPT_KIND_LSTM:
        l2l_lstm_step(o->spec.net, &s->lstm, grad, s->update);
        for (size_t i = 0; i < n; i++) theta[i] += s->update[i];
        break;
    }
}

/* The state vector's parts after t (l2l.h). */
#define MAX_PARTS 3
typedef struct {
    float *part[MAX_PARTS];
    size_t len[MAX_PARTS];
    int square[MAX_PARTS]; /* a mean square: never negative */
    int k;
} state_layout;

static state_layout state_parts(const l2l_optimizer *o)
{
    l2l_opt_state *s = o->state;
    state_layout p = {0};
    switch (o->spec.kind) {
    case L2L_OPT_KIND_SGD: break;
    case L2L_OPT_KIND_NAG:
    case L2L_OPT_KIND_RMSPROP:
        p = (state_layout){{s->m}, {o->n}, {o->spec.kind == L2L_OPT_KIND_RMSPROP}, 1};
        break;
    case L2L_OPT_KIND_ADAM:
    case L2L_OPT_KIND_NAG_FLOOR:
        p = (state_layout){{s->m, s->v}, {o->n, o->n}, {0, 1}, 2};
        break;
    case L2L_OPT_KIND_LSTM: {
        const size_t hn = (size_t)s->lstm.layers * s->lstm.hidden * o->n;
        const int rms = o->spec.net->cfg.preproc == L2L_PREPROC_LOGSIGN_RMS; /* v too */
        p = (state_layout){{s->lstm.h, s->lstm.c, s->lstm.v}, {hn, hn, o->n}, {0, 0, 1}, rms ? 3 : 2};
        break;
    }
    }
    return p;
}

size_t l2l_optimizer_state_size(const l2l_optimizer *o)
{
    L2L_ASSERT(o && o->state);
    const state_layout p = state_parts(o);
    size_t size = 1;
    for (int i = 0; i < p.k; i++) size += p.len[i];
    return size;
}

void l2l_optimizer_state_get(const l2l_optimizer *o, float *out)
{
    L2L_ASSERT(o && o->state && out);
    const state_layout p = state_parts(o);
    out[0] = (float)o->state->t;
    out++;
    for (int i = 0; i < p.k; i++) {
        if (p.len[i]) memcpy(out, p.part[i], p.len[i] * sizeof(float));
        out += p.len[i];
    }
}

/* t travels as a float: whole numbers up to 2^24 are exact. */
#define STATE_MAX_T 16777216.0f

l2l_status l2l_optimizer_state_set(l2l_optimizer *o, const float *in, size_t n, l2l_error *err)
{
    L2L_ASSERT(o && o->state && (in || n == 0));
    const size_t want = l2l_optimizer_state_size(o);
    if (n != want)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "a %s optimizer over %zu coordinates has a state of %zu floats, got %zu; "
                             "was the state saved from another optimizer or model?",
                             l2l_opt_kind_name(o->spec.kind), o->n, want, n);
    if (!(in[0] >= 0 && in[0] <= STATE_MAX_T && in[0] == floorf(in[0])))
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "the state's step count (its first float) must be a whole number in "
                             "[0, 2^24], got %g", (double)in[0]);
    for (size_t i = 1; i < n; i++)
        if (!isfinite(in[i]))
            return l2l_error_set(err, L2L_STATUS_NUMERIC,
                                 "the state's float %zu of %zu is %g; a state must be finite", i, n,
                                 (double)in[i]);
    const state_layout p = state_parts(o);
    size_t at = 1;
    for (int i = 0; i < p.k; at += p.len[i], i++)
        for (size_t j = 0; p.square[i] && j < p.len[i]; j++)
            if (in[at + j] < 0)
                return l2l_error_set(err, L2L_STATUS_NUMERIC,
                                     "the state's float %zu of %zu is %g, in a mean square; a mean "
                                     "square is never negative", at + j, n, (double)in[at + j]);
    o->state->t = (long)in[0];
    in++;
    for (int i = 0; i < p.k; i++) {
        if (p.len[i]) memcpy(p.part[i], in, p.len[i] * sizeof(float));
        in += p.len[i];
    }
    return L2L_STATUS_OK;
}

void l2l_optimizer_free(l2l_optimizer *o)
{
    l2l_opt_state *s = o->state;
    if (s) {
        l2l_free(s->m);
        l2l_free(s->v);
        l2l_free(s->update);
        l2l_lstm_state_free(&s->lstm);
        l2l_free(s);
    }
    memset(o, 0, sizeof *o);
}
