/* The learned optimizer's parameters: sizes, layout, named views, initialisation.
 *
 * Layout of phi (PyTorch nn.LSTMCell names and order, gates i, f, g, o), for each
 * layer l = 1..L with input width in_l (D for l = 1, H above):
 *   lstm<l>.weight_ih (4H, in_l), lstm<l>.weight_hh (4H, H), lstm<l>.bias_ih (4H),
 *   lstm<l>.bias_hh (4H);
 * then out.weight (1, H) (or (1, D) when L = 0) and out.bias (1).
 * The cell computes gates = W_ih x + b_ih + W_hh h + b_hh, exactly as PyTorch does. */
#include <math.h>
#include <string.h>

#include "lstm/lstm.h"
#include "util/util.h"

int l2l_lstm_n_in(const l2l_lstm_config *cfg) { return cfg->preproc == L2L_PREPROC_LOGSIGN ? 2 : 1; }

l2l_status l2l_lstm_config_check(const l2l_lstm_config *cfg, l2l_error *err)
{
    if (cfg->layers < 0 || cfg->layers > L2L_MAX_LAYERS)
        return l2l_error_set(err, L2L_STATUS_ARG, "LSTM layers must be 0..%d, got %d", L2L_MAX_LAYERS,
                             cfg->layers);
    if (cfg->layers > 0 && (cfg->hidden < 1 || cfg->hidden > 1024))
        return l2l_error_set(err, L2L_STATUS_ARG, "LSTM hidden size must be 1..1024, got %d",
                             cfg->hidden);
    if (cfg->preproc != L2L_PREPROC_NONE && cfg->preproc != L2L_PREPROC_LOGSIGN)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown preprocessing %d", (int)cfg->preproc);
    if (cfg->preproc == L2L_PREPROC_LOGSIGN && !(cfg->p > 0 && cfg->p < 80))
        return l2l_error_set(err, L2L_STATUS_ARG, "preprocessing p must be in (0, 80), got %g",
                             (double)cfg->p);
    if (!isfinite(cfg->scale) || cfg->scale == 0)
        return l2l_error_set(err, L2L_STATUS_ARG, "output scale must be finite and non-zero, got %g",
                             (double)cfg->scale);
    return L2L_STATUS_OK;
}

/* Walks the layout once; used for the count, the views and the tensor list. */
static size_t layout(const l2l_lstm_config *cfg, float *buf, l2l_lstm_view *v,
                     l2l_tensor_desc *t, int *n_tensors)
{
    const int D = l2l_lstm_n_in(cfg), H = cfg->hidden, L = cfg->layers;
    size_t off = 0;
    int nt = 0;
#define TENSOR(NAME_FMT, IDX, ROWS, COLS, NDIM, PTR)                                 \
    do {                                                                              \
        size_t count_ = (size_t)(ROWS) * (size_t)(COLS);                              \
        if (t) {                                                                      \
            snprintf(t[nt].name, sizeof t[nt].name, NAME_FMT, IDX);                   \
            t[nt].ndim = (NDIM);                                                      \
            t[nt].shape[0] = (NDIM) == 2 ? (ROWS) : (int64_t)count_;                  \
            t[nt].shape[1] = (NDIM) == 2 ? (COLS) : 0;                                \
            t[nt].offset = off;                                                       \
            t[nt].count = count_;                                                     \
        }                                                                             \
        if (v) PTR = buf ? buf + off : NULL;                                          \
        nt++;                                                                         \
        off += count_;                                                                \
    } while (0)
    for (int l = 0; l < L; l++) {
        int in = l == 0 ? D : H;
        if (v) v->layer[l].in = in;
        TENSOR("lstm%d.weight_ih", l + 1, 4 * H, in, 2, v->layer[l].w_ih);
        TENSOR("lstm%d.weight_hh", l + 1, 4 * H, H, 2, v->layer[l].w_hh);
        TENSOR("lstm%d.bias_ih", l + 1, 4 * H, 1, 1, v->layer[l].b_ih);
        TENSOR("lstm%d.bias_hh", l + 1, 4 * H, 1, 1, v->layer[l].b_hh);
    }
    TENSOR("out.weight%s", "", 1, L > 0 ? H : D, 2, v->w_out);
    TENSOR("out.bias%s", "", 1, 1, 1, v->b_out);
#undef TENSOR
    if (n_tensors) *n_tensors = nt;
    return off;
}

size_t l2l_lstm_param_count(const l2l_lstm_config *cfg) { return layout(cfg, NULL, NULL, NULL, NULL); }

void l2l_lstm_view_of(const l2l_lstm_config *cfg, float *buf, l2l_lstm_view *v)
{
    memset(v, 0, sizeof *v);
    layout(cfg, buf, v, NULL, NULL);
}

int l2l_lstm_tensors(const l2l_lstm_config *cfg, l2l_tensor_desc *out)
{
    int n = 0;
    layout(cfg, NULL, NULL, out, &n);
    return n;
}

l2l_status l2l_lstm_create(l2l_lstm *net, const l2l_lstm_config *cfg, l2l_error *err)
{
    memset(net, 0, sizeof *net);
    l2l_status st = l2l_lstm_config_check(cfg, err);
    if (st) return st;
    net->cfg = *cfg;
    if (cfg->layers == 0) net->cfg.hidden = 0;
    net->n_in = l2l_lstm_n_in(cfg);
    net->n_params = l2l_lstm_param_count(&net->cfg);
    net->phi = l2l_alloc(net->n_params * sizeof(float));
    if (!net->phi) return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %zu LSTM weights", net->n_params);
    l2l_lstm_view_of(&net->cfg, net->phi, &net->w);
    return L2L_STATUS_OK;
}

void l2l_lstm_free(l2l_lstm *net)
{
    l2l_free(net->phi);
    memset(net, 0, sizeof *net);
}

void l2l_lstm_init(l2l_lstm *net, l2l_rng *rng)
{
    const int H = net->cfg.hidden, L = net->cfg.layers;
    memset(net->phi, 0, net->n_params * sizeof(float));
    for (int l = 0; l < L; l++) {
        int in = net->w.layer[l].in;
        double std = 1.0 / sqrt((double)(in + H));
        for (int i = 0; i < 4 * H * in; i++) net->w.layer[l].w_ih[i] = (float)l2l_rng_truncnormal(rng, std);
        for (int i = 0; i < 4 * H * H; i++) net->w.layer[l].w_hh[i] = (float)l2l_rng_truncnormal(rng, std);
        for (int i = 0; i < 4 * H; i++) net->w.layer[l].b_ih[i] = (float)l2l_rng_truncnormal(rng, std);
        /* The authors' constant forget bias of +1, folded into the stored bias (gate f
         * is rows H..2H-1 in PyTorch's order i, f, g, o). */
        for (int i = H; i < 2 * H; i++) net->w.layer[l].b_ih[i] += 1.0f;
    }
    int top = L > 0 ? H : net->n_in;
    double std = 1.0 / sqrt(L > 0 ? (double)H : 20.0);
    for (int i = 0; i < top; i++) net->w.w_out[i] = (float)l2l_rng_truncnormal(rng, std);
    net->w.b_out[0] = 0.0f;
}
