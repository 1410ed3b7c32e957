/*
 * The paper's CIFAR-10 optimizee (section 3.3) on any labelled image set: a convolutional
 * network with batch norm, softmax cross-entropy on a fresh minibatch for every loss
 * evaluation. The layer kernels are in conv_kernels.c (conv.h); this file is the network.
 *
 * Shapes: B = minibatch, C0 = the images' channels, H x W their size, L = conv_layers,
 * F = channels (feature maps per convolution), k = kernel (odd), U = fc units,
 * K = n_classes, N = len(theta). Block l (l = 0..L-1) takes C_l x h_l x w_l (C_0 = C0,
 * h_0 = H, C_l = F above) to F x h_{l+1} x w_{l+1} with h_{l+1} = ceil(h_l / 2); the last
 * block's output, S = F h_L w_L values per example, is flattened in (channel, row, column)
 * order, PyTorch's flatten of NCHW.
 *
 * The network, for one minibatch X (B, C0, H, W) of pixels byte/255 in [0, 1]:
 *   block l:  Z_l = conv(A_l, K_l) + b_l       k x k kernels K_l (F, C_l, k, k), SAME
 *                                              (zero) padding (k-1)/2, stride 1, bias b_l (F)
 *             Y_l = (Z_l - mean) / sqrt(var + 1e-3) + beta_l
 *                                              batch norm per channel over the minibatch's
 *                                              B h w values (biased variance), shift beta_l (F),
 *                                              no scale
 *             A_{l+1} = maxpool(relu(Y_l))     2x2 windows at (2i, 2j), stride 2; an odd
 *                                              side's last row/column is a window of its
 *                                              own (the authors' SAME pooling; 28 -> 14 -> 7
 *                                              -> 4 for digits, 32 -> 16 -> 8 -> 4 for CIFAR)
 *   fc:       Zf = flatten(A_L) Wf^T + bf       Wf (U, S), bf (U)
 *             Af = relu((Zf - mean) / sqrt(var + 1e-3) + beta_f)   per unit over the B rows
 *   logits:   Zo = Af Wo^T + bo                 Wo (K, U), bo (K)
 *   loss = (1/B) sum_i [ logsumexp(Zo[i,:]) - Zo[i, y_i] ]
 * This is the authors' network (learning-to-learn's problems.cifar10 with conv_channels
 * (16, 16, 16) and linear_layers (32,): Sonnet's ConvNet2D with 5x5 kernels, SAME padding,
 * batch norm without scale (Sonnet's default), ReLU and 2x2 SAME max-pooling, then an MLP
 * with batch norm on its hidden layer), with the same batch-norm epsilon.
 *
 * The biases b_l and bf feed batch norm, which subtracts the per-channel (per-unit) batch
 * mean: a bias adds the same constant to every value it is averaged with, so the mean
 * takes it away exactly and the loss does not depend on it. Their gradient is therefore
 * exactly 0, and is written as 0; the forward leaves them out (adding them would change
 * nothing but the rounding). They stay in theta because they are in the paper's network
 * (and the authors' optimizer saw them); an optimizer that moves them changes nothing.
 *
 * theta layout (one flat float vector), the kernels first so that the paper's two
 * parameter groups (one optimizer for the convolution kernels, one for the rest) are two
 * contiguous ranges (l2l_conv_tensors gives every tensor's place):
 *   K_0 (F, C0, k, k), K_1 .. K_{L-1} (F, F, k, k)          the kernels: [0, kernels)
 *   for l = 0..L-1: b_l (F), beta_l (F)
 *   Wf (U, S), bf (U), beta_f (U)
 *   Wo (K, U), bo (K)
 * For the paper's net on 28x28 digits: kernels 400 + 6,400 + 6,400 = 13,200; then
 * 3 x 32 = 96; Wf 32 x 256 + 64 = 8,256; Wo 320 + 10 = 330: N = 21,882 (on 32x32x3 CIFAR,
 * kernels 1,200 + 12,800, N = 22,682).
 *
 * Initialisation (sample): theta in layout order, every weight and bias ~ N(0, init_std²)
 * (default 0.01, the authors' _nn_initializers for w and b, and the MLP task's), every
 * shift beta = 0 (Sonnet's offset initialiser) without a draw. Batch norm makes each
 * block's output independent of its kernels' scale (up to eps), so a fan-in scaling
 * would buy nothing in the forward pass; the scale sets only the kernels' gradient size
 * (proportional to 1/scale), and 0.01 is the one the paper's optimizer was trained at.
 * The small output layer starts the loss near log K, as in the MLP.
 *
 * Minibatch and pool: exactly as the MLP task draws them (mlp.c): B indices with
 * replacement from the data set, or from the network's pool of K examples chosen by
 * sample() after theta0 (a partial Fisher-Yates shuffle).
 *
 * Backward (grad = dloss/dtheta, the true gradient, grad_scale = 1; grad = NULL: the loss
 * only): softmax cross-entropy dZo = (softmax(Zo) - onehot(y)) / B; the output layer
 * dWo = dZo^T Af, dbo = sum_i dZo[i,:], dAf = dZo Wo; batch norm + ReLU (bn_relu_backward)
 * gives dZf and dbeta_f; dWf = dZf^T flatten(A_L), dflatten(A_L) = dZf Wf; then for
 * l = L-1..0 conv_bn_pool_backward gives dZ_l and dbeta_l, conv_backward dK_l and (l > 0)
 * dA_l. Derivations beside each kernel (conv_kernels.c) and above (the biases).
 * Cached from the forward: every block's input A_l (as zero-bordered planes, conv.h),
 * Z_l, the window maxima and their positions, the batch statistics, and the fc layer's Zf
 * and Af; nothing is recomputed. The kernels are repacked from theta at every call
 * (conv_pack: 6,400 floats for a 16 x 16 x 5 x 5 layer).
 *
 * All buffers are allocated at create time and live in the context, so one task must not
 * be evaluated by two threads at once (create one per thread). The convolutions run on
 * OpenMP's threads (as many as there were at create time, at most), each value computed
 * in one fixed order whatever the number of threads (conv_kernels.c); the fully connected
 * layers' products are cblas_sgemm calls: with the BLAS on one thread, the same inputs
 * give the same bytes.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "tasks/conv.h"
#include "tasks/classify.h"
#include "util/util.h"

#define CONV_MAX_KERNEL 15
#define CONV_MAX_FC 4096
#define CONV_MAX_BATCH 65536
#define CONV_MAX_SIDE 16384
#define CONV_MAX_CLASSES 256
/* Bounds that keep the kernels' int loop bounds and the fc layers' sgemm dimensions
 * within an int. */
#define CONV_MAX_PIXELS ((size_t)1 << 28) /* B h w, per channel */
#define CONV_MAX_FLAT ((size_t)1 << 24)   /* S, and C0 H W */

typedef struct {
    const l2l_dataset *data;
    int L, B, C0, H, W, F, k, U, K;
    conv_geom g[L2L_CONV_MAX_LAYERS];
    int S;           /* flattened values per example after the last block */
    size_t n;        /* N */
    size_t kern_off[L2L_CONV_MAX_LAYERS], bias_off[L2L_CONV_MAX_LAYERS],
        shift_off[L2L_CONV_MAX_LAYERS];
    size_t wf_off, bf_off, shiftf_off, wo_off, bo_off;
    float init_std;
    int pool;        /* examples per network, 0 = the whole data set */
    uint32_t *perm;  /* (n) when pool > 0: perm[0..pool) is this network's pool */
    /* Block l (conv.h's layouts): */
    float *a[L2L_CONV_MAX_LAYERS + 1];  /* a[l] planes (B, C_l, hp, wp): block l's input;
                                           a[L] (B, S) the last block's output, flattened */
    float *da[L2L_CONV_MAX_LAYERS + 1]; /* da[l] (l >= 1) pixels (B, h_l, w_l, Fp): dL/da[l] */
    float *z[L2L_CONV_MAX_LAYERS];      /* pixels (B, h_l, w_l, Fp) */
    float *zmax[L2L_CONV_MAX_LAYERS];   /* pixels (B, h_{l+1}, w_{l+1}, Fp): window maxima */
    int32_t *arg[L2L_CONV_MAX_LAYERS];  /* their positions and ReLU bits */
    float *mean[L2L_CONV_MAX_LAYERS], *inv_sigma[L2L_CONV_MAX_LAYERS]; /* (Fp) */
    float *wpack[L2L_CONV_MAX_LAYERS], *wtpack[L2L_CONV_MAX_LAYERS]; /* the kernels, packed */
    float *dwpack[L2L_CONV_MAX_LAYERS]; /* their gradients, packed */
    float *dz;       /* the largest block's pixels: dL/dZ_l, reused by every block */
    float *scratch;  /* conv_backward's, the largest, for each of n_scratch threads */
    int n_scratch;
    float *dxf;      /* (B, S) dL/da[L] */
    float *zf, *af, *daf, *dzf; /* (B, U) */
    float *mean_f, *inv_sigma_f; /* (U) */
    float *zo, *dzo; /* (B, K) logits and dL/dlogits */
    uint8_t *labels; /* (B) */
    uint8_t *group;  /* (n) the parameter groups: 0 for a kernel, 1 for the rest */
} conv_ctx;

void l2l_conv_config_default(l2l_conv_config *cfg)
{
    L2L_ASSERT(cfg);
    cfg->conv_layers = 3;
    cfg->channels = 16;
    cfg->kernel = 5;
    cfg->fc = 32;
    cfg->batch = 128;
    cfg->init_std = 0.01f;
    cfg->pool = 0;
}

static void conv_destroy(void *p)
{
    conv_ctx *c = p;
    if (!c) return;
    for (int l = 0; l <= L2L_CONV_MAX_LAYERS; l++) {
        l2l_free(c->a[l]);
        l2l_free(c->da[l]);
    }
    for (int l = 0; l < L2L_CONV_MAX_LAYERS; l++) {
        void *per_layer[] = {c->z[l],         c->zmax[l],  c->arg[l],    c->mean[l],
                             c->inv_sigma[l], c->wpack[l], c->wtpack[l], c->dwpack[l]};
        for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer; i++) l2l_free(per_layer[i]);
    }
    void *bufs[] = {c->dz,  c->scratch, c->dxf,    c->zf,          c->af,     c->daf,  c->dzf,
                    c->zo,  c->dzo,     c->mean_f, c->inv_sigma_f, c->labels, c->perm, c->group};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) l2l_free(bufs[i]);
    l2l_free(c);
}

/* Input-caused problems with the config or the data: L2L_STATUS_ARG with a message. */
static l2l_status conv_check(const l2l_conv_config *cfg, const l2l_dataset *data, l2l_error *err)
{
    if (cfg->conv_layers < 1 || cfg->conv_layers > L2L_CONV_MAX_LAYERS)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: %d convolution layers, expected 1..%d",
                             cfg->conv_layers, L2L_CONV_MAX_LAYERS);
    if (cfg->channels < 1 || cfg->channels > CONV_MAX_CHANNELS)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: %d channels, expected 1..%d",
                             cfg->channels, CONV_MAX_CHANNELS);
    if (cfg->kernel < 1 || cfg->kernel > CONV_MAX_KERNEL || cfg->kernel % 2 == 0)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "conv net: kernel side %d, expected an odd number 1..%d (SAME "
                             "padding needs a centre)", cfg->kernel, CONV_MAX_KERNEL);
    if (cfg->fc < 1 || cfg->fc > CONV_MAX_FC)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: %d fully connected units, expected 1..%d",
                             cfg->fc, CONV_MAX_FC);
    if (cfg->batch < 1 || cfg->batch > CONV_MAX_BATCH)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: minibatch of %d, expected 1..%d",
                             cfg->batch, CONV_MAX_BATCH);
    if (!(cfg->init_std > 0.0f) || !isfinite(cfg->init_std))
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "conv net: init_std %g, expected a finite value > 0 (authors' code: 0.01)",
                             (double)cfg->init_std);
    if (data->n < 1 || !data->images || !data->labels)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: the data set is empty");
    if (cfg->pool < 0 || (size_t)cfg->pool > data->n || data->n > UINT32_MAX)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "conv net: a pool of %d examples per network, expected 0 (all) or "
                             "1..%zu (the data set's size)", cfg->pool, data->n);
    if (data->channels < 1 || data->channels > CONV_MAX_CHANNELS)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: images of %d channels, expected 1..%d",
                             data->channels, CONV_MAX_CHANNELS);
    if (data->rows < 1 || data->cols < 1 || data->rows > CONV_MAX_SIDE || data->cols > CONV_MAX_SIDE ||
        (size_t)data->channels * data->rows * data->cols > CONV_MAX_FLAT ||
        (size_t)cfg->batch * data->rows * data->cols > CONV_MAX_PIXELS)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "conv net: images of %d x %d x %d for a minibatch of %d, expected sides "
                             "1..%d, at most %zu values per image and %zu pixels per minibatch",
                             data->channels, data->rows, data->cols, cfg->batch, CONV_MAX_SIDE,
                             CONV_MAX_FLAT, CONV_MAX_PIXELS);
    if (data->n_classes < 2 || data->n_classes > CONV_MAX_CLASSES)
        return l2l_error_set(err, L2L_STATUS_ARG, "conv net: %d classes, expected 2..%d",
                             data->n_classes, CONV_MAX_CLASSES);
    for (size_t i = 0; i < data->n; i++)
        if (data->labels[i] >= data->n_classes)
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "conv net: label %zu is %d, outside the data set's %d classes", i,
                                 data->labels[i], data->n_classes);
    return L2L_STATUS_OK;
}

/* Shapes and theta's layout (the header comment) into c, and the tensors into t (may be
 * NULL). Returns the number of tensors. cfg and data are checked. */
static int conv_layout(conv_ctx *c, const l2l_conv_config *cfg, const l2l_dataset *data,
                       l2l_conv_tensor *t)
{
    c->L = cfg->conv_layers, c->B = cfg->batch, c->F = cfg->channels, c->k = cfg->kernel;
    c->U = cfg->fc, c->K = data->n_classes;
    c->C0 = data->channels, c->H = data->rows, c->W = data->cols;
    int h = c->H, w = c->W, C = c->C0;
    for (int l = 0; l < c->L; l++) {
        conv_geom_init(&c->g[l], c->B, C, c->F, c->k, h, w);
        h = c->g[l].ph, w = c->g[l].pw, C = c->F;
    }
    c->S = c->F * h * w;

    int nt = 0;
    size_t off = 0;
#define CONV_TENSOR(offp, cnt, kernel, ...)                                                  \
    do {                                                                                      \
        *(offp) = off;                                                                        \
        if (t) {                                                                              \
            snprintf(t[nt].name, sizeof t[nt].name, __VA_ARGS__);                             \
            t[nt].is_kernel = (kernel), t[nt].offset = off, t[nt].count = (cnt);              \
        }                                                                                     \
        nt++, off += (cnt);                                                                   \
    } while (0)
    for (int l = 0; l < c->L; l++)
        CONV_TENSOR(&c->kern_off[l], (size_t)c->F * c->g[l].C * c->k * c->k, 1, "conv%d.weight", l + 1);
    for (int l = 0; l < c->L; l++) {
        CONV_TENSOR(&c->bias_off[l], (size_t)c->F, 0, "conv%d.bias", l + 1);
        CONV_TENSOR(&c->shift_off[l], (size_t)c->F, 0, "bn%d.bias", l + 1);
    }
    CONV_TENSOR(&c->wf_off, (size_t)c->U * c->S, 0, "fc.weight");
    CONV_TENSOR(&c->bf_off, (size_t)c->U, 0, "fc.bias");
    CONV_TENSOR(&c->shiftf_off, (size_t)c->U, 0, "bn_fc.bias");
    CONV_TENSOR(&c->wo_off, (size_t)c->K * c->U, 0, "out.weight");
    CONV_TENSOR(&c->bo_off, (size_t)c->K, 0, "out.bias");
#undef CONV_TENSOR
    c->n = off;
    return nt;
}

l2l_status l2l_conv_tensors(const l2l_conv_config *cfg, const l2l_dataset *data,
                            l2l_conv_tensor *out, int *n_tensors, size_t *kernels, l2l_error *err)
{
    L2L_ASSERT(cfg && data && out && n_tensors);
    l2l_status st = conv_check(cfg, data, err);
    if (st != L2L_STATUS_OK) return st;
    conv_ctx c;
    memset(&c, 0, sizeof c);
    *n_tensors = conv_layout(&c, cfg, data, out);
    if (kernels) *kernels = c.bias_off[0]; /* the kernels end where the first bias starts */
    return L2L_STATUS_OK;
}

/* theta0 in layout order ~ N(0, init_std²), the shifts 0 (no draw); then the pool. */
static void conv_sample(void *p, l2l_rng *rng, float *theta0)
{
    conv_ctx *c = p;
    L2L_ASSERT(rng && theta0);
    size_t shift[L2L_CONV_MAX_LAYERS + 1];
    for (int l = 0; l < c->L; l++) shift[l] = c->shift_off[l];
    shift[c->L] = c->shiftf_off;
    for (size_t i = 0; i < c->n; i++) theta0[i] = (float)(c->init_std * l2l_rng_normal(rng));
    for (int l = 0; l <= c->L; l++) {
        const size_t count = l < c->L ? (size_t)c->F : (size_t)c->U;
        memset(theta0 + shift[l], 0, count * sizeof *theta0);
    }
    if (c->pool > 0) l2l_pool_draw(c->perm, c->data->n, c->pool, rng);
}

/* c->a[0] (planes with a border of p) and c->labels: B examples drawn as mlp.c draws
 * them, pixels byte/255. */
static void draw_minibatch(conv_ctx *c, l2l_rng *rng)
{
    const l2l_dataset *data = c->data;
    const conv_geom *g = &c->g[0];
    const size_t hw = (size_t)c->H * c->W, image = (size_t)c->C0 * hw, plane = (size_t)g->hp * g->wp;
    for (int i = 0; i < c->B; i++) {
        const size_t k = l2l_pool_pick(c->perm, c->pool, data->n, rng);
        const uint8_t *img = data->images + k * image;
        for (int ch = 0; ch < c->C0; ch++)
            for (int y = 0; y < c->H; y++) {
                float *x = c->a[0] + ((size_t)i * c->C0 + ch) * plane + (size_t)(y + g->p) * g->wp + g->p;
                const uint8_t *src = img + ch * hw + (size_t)y * c->W;
                for (int j = 0; j < c->W; j++) x[j] = (float)src[j] / 255.0f;
            }
        c->labels[i] = data->labels[k];
    }
}

static double conv_loss_grad(void *p, const float *theta, float *grad, l2l_rng *rng)
{
    conv_ctx *c = p;
    const int L = c->L, B = c->B, U = c->U, K = c->K, S = c->S;
    L2L_ASSERT(theta && rng);
    draw_minibatch(c, rng);

    for (int l = 0; l < L; l++) {
        const conv_geom *g = &c->g[l];
        conv_pack(g, theta + c->kern_off[l], c->wpack[l], grad && l > 0 ? c->wtpack[l] : NULL);
        conv_forward(g, c->a[l], c->wpack[l], c->z[l]);
        conv_bn_pool_forward(g, c->z[l], theta + c->shift_off[l], c->zmax[l], c->arg[l], c->mean[l],
                             c->inv_sigma[l], c->a[l + 1], l + 1 < L ? c->g[l + 1].p : 0);
    }
    const float *xf = c->a[L]; /* (B, S): flatten(A_L) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, U, S, 1.0f, xf, S,
                theta + c->wf_off, S, 0.0f, c->zf, U);
    bn_relu_forward(B, U, c->zf, theta + c->shiftf_off, c->mean_f, c->inv_sigma_f, c->af);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, K, U, 1.0f, c->af, U,
                theta + c->wo_off, U, 0.0f, c->zo, K);
    const float *bo = theta + c->bo_off;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < K; j++) c->zo[(size_t)i * K + j] += bo[j];
    const double loss = l2l_softmax_xent(c->zo, c->labels, B, K, grad ? c->dzo : NULL);
    if (!grad) return loss;

    memset(grad, 0, c->n * sizeof *grad); /* the biases b_l, bf stay 0: see the header */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, U, B, 1.0f, c->dzo, K, c->af, U,
                0.0f, grad + c->wo_off, U);
    float *dbo = grad + c->bo_off;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < K; j++) dbo[j] += c->dzo[(size_t)i * K + j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, U, K, 1.0f, c->dzo, K,
                theta + c->wo_off, U, 0.0f, c->daf, U);
    memset(c->dzf, 0, (size_t)B * U * sizeof *c->dzf);
    bn_relu_backward(B, U, c->zf, c->mean_f, c->inv_sigma_f, c->af, c->daf, c->dzf,
                     grad + c->shiftf_off);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, U, S, B, 1.0f, c->dzf, U, xf, S,
                0.0f, grad + c->wf_off, S);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, S, U, 1.0f, c->dzf, U,
                theta + c->wf_off, S, 0.0f, c->dxf, S);
    /* dxf (B, S) in (f, i, j) order -> da[L], pixels (B, ph, pw, Fp) */
    const conv_geom *last = &c->g[L - 1];
    const size_t T = (size_t)last->ph * last->pw, Fp = (size_t)last->Fp;
    memset(c->da[L], 0, (size_t)B * T * Fp * sizeof *c->da[L]);
    for (int n = 0; n < B; n++)
        for (int f = 0; f < c->F; f++)
            for (size_t t = 0; t < T; t++)
                c->da[L][((size_t)n * T + t) * Fp + f] = c->dxf[(size_t)n * S + f * T + t];

    for (int l = L - 1; l >= 0; l--) {
        const conv_geom *g = &c->g[l];
        const size_t pixels = (size_t)g->B * g->h * g->w;
        conv_bn_pool_backward(g, c->z[l], c->zmax[l], c->arg[l], c->mean[l], c->inv_sigma[l],
                              c->da[l + 1], c->dz, grad + c->shift_off[l]);
        memset(c->dwpack[l], 0, conv_wpack_floats(g) * sizeof *c->dwpack[l]);
        if (l > 0) memset(c->da[l], 0, pixels * g->Cp * sizeof *c->da[l]);
        conv_backward(g, c->a[l], c->wtpack[l], c->dz, c->dwpack[l], l > 0 ? c->da[l] : NULL,
                      c->scratch, c->n_scratch);
        conv_unpack_grad(g, c->dwpack[l], grad + c->kern_off[l]);
    }
    return loss;
}

l2l_status l2l_task_conv_create(l2l_task *task, const l2l_conv_config *cfg,
                                const l2l_dataset *data, l2l_error *err)
{
    L2L_ASSERT(task && cfg && data);
    memset(task, 0, sizeof *task);
    l2l_status st = conv_check(cfg, data, err);
    if (st != L2L_STATUS_OK) return st;

    conv_ctx *c = l2l_alloc(sizeof *c);
    if (!c) return l2l_error_set(err, L2L_STATUS_NOMEM, "conv net: out of memory");
    c->data = data;
    c->init_std = cfg->init_std;
    c->pool = cfg->pool;
    conv_layout(c, cfg, data, NULL);

    const size_t B = (size_t)c->B, U = (size_t)c->U, K = (size_t)c->K, S = (size_t)c->S;
    size_t scratch = 0, dz = 0;
    int ok = 1;
    for (int l = 0; l < c->L; l++) {
        const conv_geom *g = &c->g[l];
        const size_t pixels = B * g->h * g->w, pooled = B * g->ph * g->pw * g->Fp;
        ok = ok && (c->a[l] = l2l_alloc(B * g->C * g->hp * g->wp * sizeof(float)));
        if (l > 0) ok = ok && (c->da[l] = l2l_alloc(pixels * g->Cp * sizeof(float)));
        ok = ok && (c->z[l] = l2l_alloc(pixels * g->Fp * sizeof(float)));
        ok = ok && (c->zmax[l] = l2l_alloc(pooled * sizeof(float)));
        ok = ok && (c->arg[l] = l2l_alloc(pooled * sizeof(int32_t)));
        ok = ok && (c->mean[l] = l2l_alloc((size_t)g->Fp * sizeof(float)));
        ok = ok && (c->inv_sigma[l] = l2l_alloc((size_t)g->Fp * sizeof(float)));
        ok = ok && (c->wpack[l] = l2l_alloc(conv_wpack_floats(g) * sizeof(float)));
        ok = ok && (c->dwpack[l] = l2l_alloc(conv_wpack_floats(g) * sizeof(float)));
        if (l > 0) ok = ok && (c->wtpack[l] = l2l_alloc(conv_wtpack_floats(g) * sizeof(float)));
        if (conv_scratch_floats(g) > scratch) scratch = conv_scratch_floats(g);
        if (pixels * g->Fp > dz) dz = pixels * g->Fp;
    }
    const conv_geom *last = &c->g[c->L - 1];
    ok = ok && (c->a[c->L] = l2l_alloc(B * S * sizeof(float)));
    ok = ok && (c->da[c->L] = l2l_alloc(B * last->ph * last->pw * last->Fp * sizeof(float)));
    c->n_scratch = max_threads();
    ok = ok && (c->dz = l2l_alloc(dz * sizeof(float))) &&
         (c->scratch = l2l_alloc((size_t)c->n_scratch * scratch * sizeof(float)));
    ok = ok && (c->dxf = l2l_alloc(B * S * sizeof(float)));
    ok = ok && (c->zf = l2l_alloc(B * U * sizeof(float))) && (c->af = l2l_alloc(B * U * sizeof(float)));
    ok = ok && (c->daf = l2l_alloc(B * U * sizeof(float))) && (c->dzf = l2l_alloc(B * U * sizeof(float)));
    ok = ok && (c->mean_f = l2l_alloc(U * sizeof(float))) &&
         (c->inv_sigma_f = l2l_alloc(U * sizeof(float)));
    ok = ok && (c->zo = l2l_alloc(B * K * sizeof(float))) && (c->dzo = l2l_alloc(B * K * sizeof(float)));
    ok = ok && (c->labels = l2l_alloc(B)) && (c->group = l2l_alloc(c->n));
    if (c->pool > 0) ok = ok && (c->perm = l2l_alloc(data->n * sizeof *c->perm));
    if (!ok) {
        conv_destroy(c);
        return l2l_error_set(err, L2L_STATUS_NOMEM,
                             "conv net: cannot allocate the work buffers for a minibatch of %d "
                             "images of %d x %d x %d with %d channels; reduce batch or channels",
                             cfg->batch, data->channels, data->rows, data->cols, cfg->channels);
    }

    task->n = c->n;
    task->grad_scale = 1.0f;
    task->ctx = c;
    task->sample = conv_sample;
    task->loss_grad = conv_loss_grad;
    task->destroy = conv_destroy;
    /* The paper's two parameter groups: the kernels come first (conv_layout). */
    const size_t kernels = c->bias_off[0];
    memset(c->group, 0, kernels);
    memset(c->group + kernels, 1, c->n - kernels);
    task->n_groups = 2;
    task->group = c->group;
    snprintf(task->group_names[0], L2L_GROUP_NAME, "kernels");
    snprintf(task->group_names[1], L2L_GROUP_NAME, "other");
    /* "conv-1x28x28-3x16k5-32-10", then "-pool2000" with a pool */
    snprintf(task->name, sizeof task->name, "conv-%dx%dx%d-%dx%dk%d-%d-%d", c->C0, c->H, c->W,
             c->L, c->F, c->k, c->U, c->K);
    if (c->pool > 0) {
        size_t len = strlen(task->name);
        snprintf(task->name + len, sizeof task->name - len, "-pool%d", c->pool);
    }
    return L2L_STATUS_OK;
}
