/*
 * The MNIST optimizee of the paper (section 3.2; docs/METHOD.md): a fully connected network
 *   D = channels*rows*cols inputs -> `layers` hidden layers of `hidden` units -> C = n_classes
 * with softmax cross-entropy, on a fresh minibatch for every loss evaluation (an image of
 * several channels is flattened as it is stored, channel after channel).
 *
 * Shapes: B = minibatch, D = inputs, C = classes, N = len(theta). Weight layer l
 * (l = 1..L, L = layers + 1) maps width[l-1] to width[l], with width[0] = D,
 * width[1..L-1] = hidden, width[L] = C.
 *
 * theta layout (one flat float vector): for l = 1..L in order, W_l (width[l], width[l-1])
 * row-major (row j holds unit j's input weights), then b_l (width[l]). For 784-20-10:
 * W1 (20, 784), b1 (20), W2 (10, 20), b2 (10): N = 15,680 + 20 + 200 + 10 = 15,910.
 *
 * Minibatch: loss_grad draws B indices with replacement as idx[i] = l2l_rng_below(rng, n)
 * for i = 0..B-1 in that order (B draws from rng per call, nothing else), so a copy of
 * the rng state reproduces the minibatch. With a pool of K examples the draw is
 * idx[i] = pool[l2l_rng_below(rng, K)] instead, where sample() chose pool as the first
 * K entries of a partial Fisher-Yates shuffle of 0..n-1 (after drawing theta0): for
 * j = 0..K-1, swap perm[j] with perm[j + l2l_rng_below(rng, n - j)], perm starting as
 * the identity. Pixels are byte/255 in [0, 1].
 *
 * Forward (A_0 = X, the minibatch, (B, D)):
 *   Z_l = A_{l-1} W_l^T + 1 b_l^T                           (B, width[l])
 *   A_l = act(Z_l) for l < L;  Z_L are the logits            (B, C)
 *   loss = (1/B) sum_i [ logsumexp(Z_L[i,:]) - Z_L[i, y_i] ]
 * with logsumexp(z) = m + log sum_k exp(z_k - m), m = max_k z_k (no overflow).
 *
 * Backward (writes grad = dloss/dtheta, the true gradient, grad_scale = 1; with
 * grad = NULL only the loss is computed):
 *   dZ_L[i,k] = (softmax(Z_L[i,:])_k - [k = y_i]) / B       d(lse - z_y)/dz, mean over i
 *   dW_l = dZ_l^T A_{l-1}       since Z_l[i,j] = sum_k A_{l-1}[i,k] W_l[j,k] + b_l[j]
 *   db_l = sum_i dZ_l[i,:]      the bias enters every row of Z_l once
 *   dA_{l-1} = dZ_l W_l         the same bilinear form, differentiated in A
 *   dZ_{l-1} = dA_{l-1} * act'(Z_{l-1}), with act' written through A = act(Z):
 *     sigmoid a(1-a), tanh 1-a², relu [a > 0] (0 at the kink z = 0).
 * Cached from the forward: X and every A_l (l < L) and Z_L; nothing is recomputed.
 * The matrix products are cblas_sgemm (row-major); bias, activation and act' are fused
 * into one pass each. All buffers are allocated at create time and live in the context,
 * so one task must not be evaluated by two threads at once (create one per thread).
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "tasks/classify.h"
#include "util/util.h"

#define MLP_MAX_LAYERS 8
#define MLP_MAX_HIDDEN 4096
#define MLP_MAX_BATCH 65536
#define MLP_MAX_INPUTS (1 << 24)
#define MLP_MAX_CLASSES 256

typedef struct {
    const l2l_dataset *data;
    l2l_activation act;
    int L;                         /* weight layers = hidden layers + 1 */
    int B;                         /* minibatch */
    int width[MLP_MAX_LAYERS + 2]; /* width[0] = D, ..., width[L] = C */
    size_t w_off[MLP_MAX_LAYERS + 2], b_off[MLP_MAX_LAYERS + 2]; /* offsets into theta */
    size_t n;                      /* N */
    float init_std;
    int pool;                      /* K, 0 = the whole data set */
    uint32_t *perm;                /* (n) when pool > 0: perm[0..K) is this network's pool */
    float *a[MLP_MAX_LAYERS + 2];  /* a[0] (B, D) inputs; a[l] (B, width[l]): A_l, a[L] = Z_L */
    float *dz, *dz_prev;           /* (B, max hidden/C width) backward ping-pong */
    uint8_t *labels;               /* (B) labels of the current minibatch */
} mlp_ctx;

static const char *activation_name(l2l_activation act)
{
    switch (act) {
    case L2L_ACTIVATION_SIGMOID: return "sigmoid";
    case L2L_ACTIVATION_RELU: return "relu";
    case L2L_ACTIVATION_TANH: return "tanh";
    }
    return "?";
}

static void mlp_destroy(void *p)
{
    mlp_ctx *c = p;
    if (!c) return;
    for (int l = 0; l <= c->L; l++) l2l_free(c->a[l]);
    l2l_free(c->dz);
    l2l_free(c->dz_prev);
    l2l_free(c->labels);
    l2l_free(c->perm);
    l2l_free(c);
}

static void mlp_sample(void *p, l2l_rng *rng, float *theta0)
{
    mlp_ctx *c = p;
    L2L_ASSERT(rng && theta0);
    for (size_t i = 0; i < c->n; i++) theta0[i] = (float)(c->init_std * l2l_rng_normal(rng));
    if (c->pool > 0) l2l_pool_draw(c->perm, c->data->n, c->pool, rng);
}

/* z (B, w) += b (w) row by row, then the activation in place. */
static void bias_activate(float *z, const float *b, int B, int w, l2l_activation act)
{
    for (int i = 0; i < B; i++) {
        float *row = z + (size_t)i * w;
        switch (act) {
        case L2L_ACTIVATION_SIGMOID:
            for (int j = 0; j < w; j++) row[j] = 1.0f / (1.0f + expf(-(row[j] + b[j])));
            break;
        case L2L_ACTIVATION_RELU:
            for (int j = 0; j < w; j++) {
                float v = row[j] + b[j];
                row[j] = v > 0.0f ? v : 0.0f;
            }
            break;
        case L2L_ACTIVATION_TANH:
            for (int j = 0; j < w; j++) row[j] = tanhf(row[j] + b[j]);
            break;
        }
    }
}

/* d (B, w) *= act'(Z), expressed through a = act(Z) (B, w). */
static void activation_backward(float *d, const float *a, size_t count, l2l_activation act)
{
    switch (act) {
    case L2L_ACTIVATION_SIGMOID:
        for (size_t k = 0; k < count; k++) d[k] *= a[k] * (1.0f - a[k]);
        break;
    case L2L_ACTIVATION_RELU:
        for (size_t k = 0; k < count; k++) d[k] = a[k] > 0.0f ? d[k] : 0.0f;
        break;
    case L2L_ACTIVATION_TANH:
        for (size_t k = 0; k < count; k++) d[k] *= 1.0f - a[k] * a[k];
        break;
    }
}

static double mlp_loss_grad(void *p, const float *theta, float *grad, l2l_rng *rng)
{
    mlp_ctx *c = p;
    const l2l_dataset *data = c->data;
    const int B = c->B, L = c->L, D = c->width[0], C = c->width[L];
    L2L_ASSERT(theta && rng);

    /* The minibatch: B examples drawn with replacement, pixels scaled to [0, 1]. */
    for (int i = 0; i < B; i++) {
        const size_t k = l2l_pool_pick(c->perm, c->pool, data->n, rng);
        const uint8_t *img = data->images + k * (size_t)D;
        float *x = c->a[0] + (size_t)i * D;
        for (int j = 0; j < D; j++) x[j] = (float)img[j] / 255.0f; /* vectorizes */
        c->labels[i] = data->labels[k];
    }

    for (int l = 1; l <= L; l++) {
        const int in = c->width[l - 1], out = c->width[l];
        const float *W = theta + c->w_off[l], *b = theta + c->b_off[l];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, c->a[l - 1], in,
                    W, in, 0.0f, c->a[l], out);
        if (l < L) {
            bias_activate(c->a[l], b, B, out, c->act);
        } else {
            for (int i = 0; i < B; i++)
                for (int j = 0; j < out; j++) c->a[l][(size_t)i * out + j] += b[j];
        }
    }
    double loss = l2l_softmax_xent(c->a[L], c->labels, B, C, grad ? c->dz : NULL);
    if (!grad) return loss;

    for (int l = L; l >= 1; l--) {
        const int in = c->width[l - 1], out = c->width[l];
        const float *W = theta + c->w_off[l];
        float *dW = grad + c->w_off[l], *db = grad + c->b_off[l];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, c->dz, out,
                    c->a[l - 1], in, 0.0f, dW, in);
        memset(db, 0, (size_t)out * sizeof *db);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < out; j++) db[j] += c->dz[(size_t)i * out + j];
        if (l > 1) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, c->dz, out,
                        W, in, 0.0f, c->dz_prev, in);
            activation_backward(c->dz_prev, c->a[l - 1], (size_t)B * in, c->act);
            float *t = c->dz;
            c->dz = c->dz_prev;
            c->dz_prev = t;
        }
    }
    return loss;
}

/* Input-caused problems with the config or the data: L2L_STATUS_ARG with a message. */
static l2l_status mlp_check(const l2l_mlp_config *cfg, const l2l_dataset *data, l2l_error *err)
{
    if (cfg->layers < 1 || cfg->layers > MLP_MAX_LAYERS)
        return l2l_error_set(err, L2L_STATUS_ARG, "MLP: %d hidden layers, expected 1..%d",
                             cfg->layers, MLP_MAX_LAYERS);
    if (cfg->hidden < 1 || cfg->hidden > MLP_MAX_HIDDEN)
        return l2l_error_set(err, L2L_STATUS_ARG, "MLP: %d hidden units, expected 1..%d",
                             cfg->hidden, MLP_MAX_HIDDEN);
    if (cfg->batch < 1 || cfg->batch > MLP_MAX_BATCH)
        return l2l_error_set(err, L2L_STATUS_ARG, "MLP: minibatch of %d, expected 1..%d",
                             cfg->batch, MLP_MAX_BATCH);
    if (!(cfg->init_std > 0.0f) || !isfinite(cfg->init_std))
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "MLP: init_std %g, expected a finite value > 0 (paper: 0.01)",
                             (double)cfg->init_std);
    if (cfg->activation != L2L_ACTIVATION_SIGMOID && cfg->activation != L2L_ACTIVATION_RELU &&
        cfg->activation != L2L_ACTIVATION_TANH)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "MLP: unknown activation %d, expected sigmoid, relu or tanh",
                             (int)cfg->activation);
    if (data->n < 1 || !data->images || !data->labels)
        return l2l_error_set(err, L2L_STATUS_ARG, "MLP: the data set is empty");
    if (cfg->pool < 0 || (size_t)cfg->pool > data->n || data->n > UINT32_MAX)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "MLP: a pool of %d examples per network, expected 0 (all) or 1..%zu "
                             "(the data set's size)", cfg->pool, data->n);
    if (data->rows < 1 || data->cols < 1 || data->channels < 1 ||
        (long long)data->channels * data->rows * data->cols > MLP_MAX_INPUTS)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "MLP: images of %d x %d x %d values, expected 1..%d values",
                             data->channels, data->rows, data->cols, MLP_MAX_INPUTS);
    if (data->n_classes < 2 || data->n_classes > MLP_MAX_CLASSES)
        return l2l_error_set(err, L2L_STATUS_ARG, "MLP: %d classes, expected 2..%d",
                             data->n_classes, MLP_MAX_CLASSES);
    for (size_t i = 0; i < data->n; i++)
        if (data->labels[i] >= data->n_classes)
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "MLP: label %zu is %d, outside the data set's %d classes", i,
                                 data->labels[i], data->n_classes);
    return L2L_STATUS_OK;
}

l2l_status l2l_task_mlp_create(l2l_task *task, const l2l_mlp_config *cfg,
                               const l2l_dataset *data, l2l_error *err)
{
    L2L_ASSERT(task && cfg && data);
    memset(task, 0, sizeof *task);
    l2l_status st = mlp_check(cfg, data, err);
    if (st != L2L_STATUS_OK) return st;

    mlp_ctx *c = l2l_alloc(sizeof *c);
    if (!c) return l2l_error_set(err, L2L_STATUS_NOMEM, "MLP: out of memory");
    c->data = data;
    c->act = cfg->activation;
    c->L = cfg->layers + 1;
    c->B = cfg->batch;
    c->init_std = cfg->init_std;
    c->pool = cfg->pool;
    c->width[0] = data->channels * data->rows * data->cols;
    for (int l = 1; l < c->L; l++) c->width[l] = cfg->hidden;
    c->width[c->L] = data->n_classes;

    size_t off = 0, widest = 0;
    for (int l = 1; l <= c->L; l++) {
        c->w_off[l] = off;
        off += (size_t)c->width[l] * (size_t)c->width[l - 1];
        c->b_off[l] = off;
        off += (size_t)c->width[l];
        if ((size_t)c->width[l] > widest) widest = (size_t)c->width[l];
    }
    c->n = off;

    int ok = 1;
    for (int l = 0; l <= c->L; l++) {
        c->a[l] = l2l_alloc((size_t)c->B * (size_t)c->width[l] * sizeof(float));
        ok = ok && c->a[l];
    }
    c->dz = l2l_alloc((size_t)c->B * widest * sizeof(float));
    c->dz_prev = l2l_alloc((size_t)c->B * widest * sizeof(float));
    c->labels = l2l_alloc((size_t)c->B);
    if (c->pool > 0) ok = ok && (c->perm = l2l_alloc(data->n * sizeof *c->perm));
    if (!ok || !c->dz || !c->dz_prev || !c->labels) {
        mlp_destroy(c);
        return l2l_error_set(err, L2L_STATUS_NOMEM,
                             "MLP: cannot allocate the work buffers for a minibatch of %d with "
                             "%d inputs and layers of %d units; reduce batch or hidden",
                             cfg->batch, c->width[0], cfg->hidden);
    }

    task->n = c->n;
    task->grad_scale = 1.0f;
    task->ctx = c;
    task->sample = mlp_sample;
    task->loss_grad = mlp_loss_grad;
    task->destroy = mlp_destroy;
    /* "mlp-784-20-10-sigmoid"; deeper nets "mlp-784-20x2-10-sigmoid". */
    char hidden[32];
    if (cfg->layers == 1)
        snprintf(hidden, sizeof hidden, "%d", cfg->hidden);
    else
        snprintf(hidden, sizeof hidden, "%dx%d", cfg->hidden, cfg->layers);
    snprintf(task->name, sizeof task->name, "mlp-%d-%s-%d-%s", c->width[0], hidden,
             data->n_classes, activation_name(c->act));
    if (c->pool > 0) { /* "mlp-784-20-10-sigmoid-pool2000" */
        size_t len = strlen(task->name);
        snprintf(task->name + len, sizeof task->name - len, "-pool%d", c->pool);
    }
    return L2L_STATUS_OK;
}
