/* The learned optimizer's parameters: sizes, layout, named views, initialisation.
 *
 * Layout of phi (PyTorch nn.LSTMCell names and order, gates i, f, g, o), for each
 * layer l = 1..L with input width in_l (D for l = 1, H above):
 *   lstm<l>.weight_ih (4H, in_l), lstm<l>.weight_hh (4H, H), lstm<l>.bias_ih (4H),
 *   lstm<l>.bias_hh (4H);
 * then out.weight (1, H) (or (1, D) when L = 0) and out.bias (1).
 * The cell computes gates = W_ih x + b_ih + W_hh h + b_hh, exactly as PyTorch does.
 * An optimizer with G > 1 parameter groups is G such layouts one after the other, each
 * tensor's name prefixed by its group's ("kernels.lstm1.weight_ih"); each group is then
 * a PyTorch LSTMCell stack of its own. */
#include <math.h>
#include <string.h>

#include "lstm/lstm.h"
#include "util/util.h"

static const char *const preproc_names[] = {"none", "logsign", "logsign-rms"};

const char *l2l_preproc_name(l2l_preproc preproc)
{
    return (unsigned)preproc < sizeof preproc_names / sizeof *preproc_names ? preproc_names[preproc] : "?";
}

int l2l_preproc_parse(const char *name)
{
    for (int k = 0; k < (int)(sizeof preproc_names / sizeof *preproc_names); k++)
        if (strcmp(name, preproc_names[k]) == 0) return k;
    return -1;
}

int l2l_lstm_n_in(const l2l_lstm_config *cfg)
{
    return cfg->preproc == L2L_PREPROC_LOGSIGN_RMS ? 3 : cfg->preproc == L2L_PREPROC_LOGSIGN ? 2 : 1;
}

l2l_status l2l_lstm_config_check(const l2l_lstm_config *cfg, l2l_error *err)
{
    if (cfg->layers < 0 || cfg->layers > L2L_MAX_LAYERS)
        return l2l_error_set(err, L2L_STATUS_ARG, "LSTM layers must be 0..%d, got %d", L2L_MAX_LAYERS,
                             cfg->layers);
    if (cfg->layers > 0 && (cfg->hidden < 1 || cfg->hidden > 1024))
        return l2l_error_set(err, L2L_STATUS_ARG, "LSTM hidden size must be 1..1024, got %d",
                             cfg->hidden);
    if ((unsigned)cfg->preproc > L2L_PREPROC_LOGSIGN_RMS)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown preprocessing %d", (int)cfg->preproc);
    if (cfg->preproc != L2L_PREPROC_NONE && !(cfg->p > 0 && cfg->p < 80))
        return l2l_error_set(err, L2L_STATUS_ARG, "preprocessing p must be in (0, 80), got %g",
                             (double)cfg->p);
    if (!isfinite(cfg->scale) || cfg->scale == 0)
        return l2l_error_set(err, L2L_STATUS_ARG, "output scale must be finite and non-zero, got %g",
                             (double)cfg->scale);
    if (cfg->groups < 0 || cfg->groups > L2L_MAX_GROUPS)
        return l2l_error_set(err, L2L_STATUS_ARG, "LSTM groups must be 0..%d, got %d", L2L_MAX_GROUPS,
                             cfg->groups);
    if (cfg->groups > 1) return l2l_group_names_check(cfg->group_names, cfg->groups, err);
    return L2L_STATUS_OK;
}

/* The number of LSTMs: groups, 0 read as 1. */
int l2l_lstm_n_groups(const l2l_lstm_config *cfg) { return cfg->groups > 1 ? cfg->groups : 1; }

/* Walks one group's layout once, from offset `off` in floats; used for the count, the
 * views and the tensor list (names prefixed by `prefix`). Returns the offset after it. */
static size_t group_layout(const l2l_lstm_config *cfg, size_t off, const char *prefix, float *buf,
                           l2l_lstm_view *v, l2l_tensor_desc *t, int *nt)
{
    const int D = l2l_lstm_n_in(cfg), H = cfg->hidden, L = cfg->layers;
#define TENSOR(NAME_FMT, IDX, ROWS, COLS, NDIM, PTR)                                 \
    do {                                                                              \
        size_t count_ = (size_t)(ROWS) * (size_t)(COLS);                              \
        if (t) {                                                                      \
            l2l_tensor_desc *d_ = &t[*nt];                                            \
            int w_ = snprintf(d_->name, sizeof d_->name, "%s", prefix);               \
            snprintf(d_->name + w_, sizeof d_->name - (size_t)w_, NAME_FMT, IDX);     \
            d_->ndim = (NDIM);                                                        \
            d_->shape[0] = (NDIM) == 2 ? (ROWS) : (int64_t)count_;                    \
            d_->shape[1] = (NDIM) == 2 ? (COLS) : 0;                                  \
            d_->offset = off;                                                         \
            d_->count = count_;                                                       \
        }                                                                             \
        if (v) PTR = buf ? buf + off : NULL;                                          \
        ++*nt;                                                                        \
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
    return off;
}

/* Every group's layout, one after the other; v (may be NULL) has room for
 * L2L_MAX_GROUPS views. With one group the names carry no prefix. */
static size_t layout(const l2l_lstm_config *cfg, float *buf, l2l_lstm_view *v, l2l_tensor_desc *t,
                     int *n_tensors)
{
    const int G = l2l_lstm_n_groups(cfg);
    size_t off = 0;
    int nt = 0;
    for (int g = 0; g < G; g++) {
        char prefix[L2L_GROUP_NAME + 1] = "";
        if (G > 1) snprintf(prefix, sizeof prefix, "%s.", cfg->group_names[g]);
        off = group_layout(cfg, off, prefix, buf, v ? &v[g] : NULL, t, &nt);
    }
    if (n_tensors) *n_tensors = nt;
    return off;
}

size_t l2l_lstm_param_count(const l2l_lstm_config *cfg) { return layout(cfg, NULL, NULL, NULL, NULL); }

void l2l_lstm_view_of(const l2l_lstm_config *cfg, float *buf, l2l_lstm_view *v)
{
    memset(v, 0, L2L_MAX_GROUPS * sizeof *v);
    layout(cfg, buf, v, NULL, NULL);
}

int l2l_lstm_tensors(const l2l_lstm_config *cfg, l2l_tensor_desc *out)
{
    int n = 0;
    layout(cfg, NULL, NULL, out, &n);
    return n;
}

l2l_status l2l_group_names_check(const char (*names)[L2L_GROUP_NAME], int n, l2l_error *err)
{
    if (n < 1 || n > L2L_MAX_GROUPS)
        return l2l_error_set(err, L2L_STATUS_ARG, "parameter groups must number 1..%d, got %d",
                             L2L_MAX_GROUPS, n);
    for (int g = 0; g < n; g++) {
        const char *name = names[g];
        size_t len = strnlen(name, L2L_GROUP_NAME);
        int ok = len > 0 && len < L2L_GROUP_NAME;
        for (size_t i = 0; ok && i < len; i++)
            ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
        if (!ok)
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "parameter group %d's name '%.*s' must be 1..%d characters of "
                                 "a-z, 0-9 and _", g, (int)len, name, L2L_GROUP_NAME - 1);
        for (int h = 0; h < g; h++)
            if (strcmp(names[h], name) == 0)
                return l2l_error_set(err, L2L_STATUS_ARG, "parameter groups %d and %d are both named '%s'",
                                     h, g, name);
    }
    return L2L_STATUS_OK;
}

void l2l_group_names_join(const char (*names)[L2L_GROUP_NAME], int n, char *out, size_t size)
{
    size_t w = 0;
    out[0] = '\0';
    for (int g = 0; g < n && w < size; g++) w += (size_t)snprintf(out + w, size - w, "%s%s", g ? "," : "", names[g]);
}

l2l_status l2l_lstm_check_task(const l2l_lstm *net, const l2l_task *task, l2l_error *err)
{
    const int G = l2l_lstm_n_groups(&net->cfg);
    if (G == 1) return L2L_STATUS_OK;
    const int tg = task->n_groups > 1 ? task->n_groups : 0;
    int same = tg == G && task->group;
    for (int g = 0; same && g < G; g++) same = strcmp(net->cfg.group_names[g], task->group_names[g]) == 0;
    if (same) return L2L_STATUS_OK;
    char want[L2L_MAX_GROUPS * L2L_GROUP_NAME], have[L2L_MAX_GROUPS * L2L_GROUP_NAME];
    l2l_group_names_join(net->cfg.group_names, G, want, sizeof want);
    l2l_group_names_join(task->group_names, tg, have, sizeof have);
    return l2l_error_set(err, L2L_STATUS_ARG,
                         "the optimizer has one LSTM per parameter group (%s), but the task '%s' "
                         "declares %s%s%s; use an optimizer meta-trained on this kind of task, "
                         "or one shared LSTM",
                         want, task->name, tg ? "the groups " : "no parameter groups", have,
                         tg && !task->group ? " without saying which coordinate is in which" : "");
}

l2l_status l2l_lstm_create(l2l_lstm *net, const l2l_lstm_config *cfg, l2l_error *err)
{
    memset(net, 0, sizeof *net);
    l2l_status st = l2l_lstm_config_check(cfg, err);
    if (st) return st;
    net->cfg = *cfg;
    if (cfg->layers == 0) net->cfg.hidden = 0;
    net->cfg.groups = l2l_lstm_n_groups(cfg);
    if (net->cfg.groups == 1) memset(net->cfg.group_names, 0, sizeof net->cfg.group_names);
    net->n_in = l2l_lstm_n_in(cfg);
    net->n_params = l2l_lstm_param_count(&net->cfg);
    net->phi = l2l_alloc(net->n_params * sizeof(float));
    if (!net->phi) return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %zu LSTM weights", net->n_params);
    l2l_lstm_view_of(&net->cfg, net->phi, net->w);
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
    for (int g = 0; g < net->cfg.groups; g++) {
        l2l_lstm_view *w = &net->w[g];
        for (int l = 0; l < L; l++) {
            int in = w->layer[l].in;
            double std = 1.0 / sqrt((double)(in + H));
            for (int i = 0; i < 4 * H * in; i++) w->layer[l].w_ih[i] = (float)l2l_rng_truncnormal(rng, std);
            for (int i = 0; i < 4 * H * H; i++) w->layer[l].w_hh[i] = (float)l2l_rng_truncnormal(rng, std);
            for (int i = 0; i < 4 * H; i++) w->layer[l].b_ih[i] = (float)l2l_rng_truncnormal(rng, std);
            /* The authors' constant forget bias of +1, folded into the stored bias (gate f
             * is rows H..2H-1 in PyTorch's order i, f, g, o). */
            for (int i = H; i < 2 * H; i++) w->layer[l].b_ih[i] += 1.0f;
        }
        int top = L > 0 ? H : net->n_in;
        double std = 1.0 / sqrt(L > 0 ? (double)H : 20.0);
        for (int i = 0; i < top; i++) w->w_out[i] = (float)l2l_rng_truncnormal(rng, std);
        w->b_out[0] = 0.0f;
    }
}
