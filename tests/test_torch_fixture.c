/* The learned optimizer against PyTorch: tests/fixtures/torch_unroll.safetensors holds
 * unrolls computed by bench/torch_l2l.py (torch.nn.LSTMCell, autograd, float64) from
 * float32-exact inputs, with logsign (a), no preprocessing (b) and logsign-rms (c). Here
 * l2l runs the same unrolls in float and must agree on the losses, the final theta and
 * LSTM state (and logsign-rms's mean square), and every meta-gradient tensor (bias_hh's
 * is exactly 0: it is frozen). Regenerate the file with
 *   /usr/bin/python3 bench/torch_l2l.py fixture --out tests/fixtures/torch_unroll.safetensors
 *
 * Layouts: the fixture stores PyTorch's (N, H) and (N, D); l2l keeps the state and the
 * inputs feature-major, (H, N) and (D, N), so the comparisons transpose. */
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lstm/lstm.h"
#include "testutil.h"

/* Honest for float32 over a few steps: the reference is float64, l2l float. */
#define ATOL 1e-5
#define RTOL 1e-4
#define T_UNROLL 4

/* Where the fixtures are: $L2L_FIXTURE_DIR, else tests/fixtures beside this source file. */
static const char *fixture_path(char *buf, size_t size)
{
    const char *dir = getenv("L2L_FIXTURE_DIR");
    if (dir && *dir) {
        snprintf(buf, size, "%s/torch_unroll.safetensors", dir);
    } else {
        const char *src = __FILE__, *slash = strrchr(src, '/');
        int len = slash ? (int)(slash - src) : 1;
        snprintf(buf, size, "%.*s/fixtures/torch_unroll.safetensors", len, slash ? src : ".");
    }
    return buf;
}

/* The largest errors seen, for the summary line. */
static double max_abs_err, max_rel_err;

static void check_close(double found, double expected, const char *what, size_t i)
{
    double d = fabs(found - expected);
    if (d > max_abs_err) max_abs_err = d;
    if (fabs(expected) > 1e-3 && d / fabs(expected) > max_rel_err) max_rel_err = d / fabs(expected);
    EXPECT_CLOSE(found, expected, ATOL, RTOL, "%s[%zu]", what, i);
}

/* Reads tensor name (prefix + suffix) of the given shape into a new buffer. */
static float *get(const l2l_st_file *f, const char *prefix, const char *suffix, int ndim,
                  const int64_t *shape)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    float *out = malloc(count * sizeof(float));
    assert_non_null(out);
    l2l_error err = {0};
    if (l2l_st_get_f32(f, name, ndim, shape, out, &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    return out;
}

/* ------------------------------------------------ the fixture's quadratic */

/* Paper mode: B functions f_b = ||W_b theta_b - y_b||², theta_b = theta[b*dim .. (b+1)*dim);
 * the loss is their mean and each coordinate gets its own function's gradient
 * 2 W_bᵀ (W_b theta_b - y_b) (grad_scale = 1/B). */
typedef struct {
    int dim, batch;
    const float *W; /* (B, dim, dim) */
    const float *y; /* (B, dim) */
} fixed_quadratic;

static double fixed_quadratic_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)rng;
    const fixed_quadratic *q = ctx;
    const int dim = q->dim;
    double total = 0;
    for (int b = 0; b < q->batch; b++) {
        const float *W = q->W + (size_t)b * dim * dim, *th = theta + (size_t)b * dim;
        double r[16];
        L2L_ASSERT(dim <= 16);
        for (int i = 0; i < dim; i++) {
            r[i] = -(double)q->y[b * dim + i];
            for (int j = 0; j < dim; j++) r[i] += (double)W[i * dim + j] * th[j];
            total += r[i] * r[i];
        }
        for (int j = 0; j < dim; j++) {
            double s = 0;
            for (int i = 0; i < dim; i++) s += (double)W[i * dim + j] * r[i];
            grad[b * dim + j] = (float)(2 * s);
        }
    }
    return total / q->batch;
}

/* ------------------------------------------------------------- one config */

typedef struct {
    const char *prefix;
    l2l_lstm_config cfg;
    const char *config_meta; /* the fixture's description of cfg, must match */
    int dim, batch, unrolls;
    int step0; /* the fixture holds <prefix>.step0.*: the first step's input, state, update */
} fixture_case;

static void run_case(const l2l_st_file *f, const fixture_case *fc)
{
    const char *pre = fc->prefix;
    char key[64], what[256];
    snprintf(key, sizeof key, "%s.config", pre);
    const char *desc = l2l_st_meta_get(f, key);
    if (!desc || strcmp(desc, fc->config_meta) != 0)
        fail_msg("fixture %s: expected \"%s\", found \"%s\"; regenerate the fixture or update "
                 "this test", key, fc->config_meta, desc ? desc : "(missing)");

    l2l_error err = {0};
    l2l_lstm net;
    if (l2l_lstm_create(&net, &fc->cfg, &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    const int L = net.cfg.layers, H = net.cfg.hidden, D = net.n_in;
    const int dim = fc->dim, B = fc->batch;
    const size_t N = (size_t)dim * B;

    l2l_tensor_desc td[L2L_MAX_TENSORS];
    const int nt = l2l_lstm_tensors(&net.cfg, td);
    for (int i = 0; i < nt; i++) {
        float *v = get(f, pre, td[i].name, td[i].ndim, td[i].shape);
        memcpy(net.phi + td[i].offset, v, td[i].count * sizeof(float));
        free(v);
    }
    const int64_t sW[3] = {B, dim, dim}, sy[2] = {B, dim}, sN[1] = {(int64_t)N},
                  sL[1] = {T_UNROLL + 1}, sLNH[3] = {L, (int64_t)N, H},
                  sND[2] = {(int64_t)N, D};
    float *W = get(f, pre, "W", 3, sW), *y = get(f, pre, "y", 2, sy);
    float *theta = get(f, pre, "theta0", 1, sN);

    fixed_quadratic q = {dim, B, W, y};
    l2l_task task = {.n = N, .grad_scale = 1.0f / B, .ctx = &q,
                     .loss_grad = fixed_quadratic_loss_grad};
    snprintf(task.name, sizeof task.name, "fixture quadratic");

    l2l_lstm_state state;
    if (l2l_lstm_state_create(&state, &net, N, NULL, &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    l2l_lstm_state_zero(&state);
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 0);

    /* The inference path, one step from the zero state, against the first step of u1. */
    if (fc->step0) {
        float grad[64], update[64];
        L2L_ASSERT(N <= 64);
        fixed_quadratic_loss_grad(&q, theta, grad, &rng);
        l2l_lstm_step(&net, &state, grad, update);
        float *ex = get(f, pre, "step0.x", 2, sND), *eu = get(f, pre, "step0.update", 1, sN);
        float *eh = get(f, pre, "step0.h", 3, sLNH), *ec = get(f, pre, "step0.c", 3, sLNH);
        for (size_t n = 0; n < N; n++) {
            for (int d = 0; d < D; d++) {
                snprintf(what, sizeof what, "%s.step0.x[n=%zu,d=%d], flat", pre, n, d);
                check_close(state.x[(size_t)d * N + n], ex[n * D + d], what, n * D + d);
            }
            snprintf(what, sizeof what, "%s.step0.update", pre);
            check_close(update[n], eu[n], what, n);
        }
        for (int l = 0; l < L; l++)
            for (size_t n = 0; n < N; n++)
                for (int k = 0; k < H; k++) {
                    size_t ft = ((size_t)l * N + n) * H + k, cl = ((size_t)l * H + k) * N + n;
                    snprintf(what, sizeof what, "%s.step0.h (layer, n, k) flat", pre);
                    check_close(state.h[cl], eh[ft], what, ft);
                    snprintf(what, sizeof what, "%s.step0.c (layer, n, k) flat", pre);
                    check_close(state.c[cl], ec[ft], what, ft);
                }
        free(ex), free(eu), free(eh), free(ec);
        l2l_lstm_state_zero(&state);
    }

    l2l_unroll u;
    const l2l_unroll_config ucfg = {.T = T_UNROLL, .objective = L2L_OBJECTIVE_SUM};
    if (l2l_unroll_create(&u, &net, N, NULL, &ucfg, &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    float *dphi = malloc(net.n_params * sizeof(float));
    assert_non_null(dphi);
    for (int k = 1; k <= fc->unrolls; k++) {
        char sub[96];
        /* Two unrolls at the same phi: theta and the state carry on, dphi is fresh. */
        memset(dphi, 0, net.n_params * sizeof(float));
        double losses[T_UNROLL + 1];
        if (l2l_unroll_run(&u, &net, &task, theta, &state, NULL, &rng, dphi, losses, &err) != L2L_STATUS_OK)
            fail_msg("%s.u%d: %s", pre, k, err.msg);

        snprintf(sub, sizeof sub, "u%d.losses", k);
        float *el = get(f, pre, sub, 1, sL);
        snprintf(what, sizeof what, "%s.%s", pre, sub);
        for (int t = 0; t <= T_UNROLL; t++) check_close(losses[t], el[t], what, (size_t)t);
        free(el);

        snprintf(sub, sizeof sub, "u%d.theta", k);
        float *eth = get(f, pre, sub, 1, sN);
        snprintf(what, sizeof what, "%s.%s", pre, sub);
        for (size_t n = 0; n < N; n++) check_close(theta[n], eth[n], what, n);
        free(eth);

        for (int hc = 0; hc < 2; hc++) {
            snprintf(sub, sizeof sub, "u%d.%s", k, hc ? "c" : "h");
            float *es = get(f, pre, sub, 3, sLNH);
            const float *mine = hc ? state.c : state.h;
            snprintf(what, sizeof what, "%s.%s (layer, n, k) flat", pre, sub);
            for (int l = 0; l < L; l++)
                for (size_t n = 0; n < N; n++)
                    for (int j = 0; j < H; j++) {
                        size_t ft = ((size_t)l * N + n) * H + j;
                        check_close(mine[((size_t)l * H + j) * N + n], es[ft], what, ft);
                    }
            free(es);
        }
        if (net.cfg.preproc == L2L_PREPROC_LOGSIGN_RMS) {
            snprintf(sub, sizeof sub, "u%d.v", k);
            float *ev = get(f, pre, sub, 1, sN);
            snprintf(what, sizeof what, "%s.%s", pre, sub);
            for (size_t n = 0; n < N; n++) check_close(state.v[n], ev[n], what, n);
            free(ev);
        }

        for (int i = 0; i < nt; i++) {
            const float *g = dphi + td[i].offset;
            snprintf(what, sizeof what, "%s.u%d.grad.%.31s", pre, k, td[i].name);
            if (strstr(td[i].name, "bias_hh")) { /* frozen: exactly zero, and not in the file */
                for (size_t j = 0; j < td[i].count; j++)
                    if (g[j] != 0) fail_msg("%s[%zu]: expected exactly 0, found %.9g", what, j, g[j]);
                continue;
            }
            snprintf(sub, sizeof sub, "u%d.grad.%.31s", k, td[i].name);
            float *eg = get(f, pre, sub, td[i].ndim, td[i].shape);
            for (size_t j = 0; j < td[i].count; j++) check_close(g[j], eg[j], what, j);
            free(eg);
        }
    }
    free(dphi);
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&state);
    free(W), free(y), free(theta);
    l2l_lstm_free(&net);
}

static void test_torch_fixture(void **unused)
{
    (void)unused;
    char path[512];
    l2l_st_file f;
    l2l_error err = {0};
    if (l2l_st_read(&f, fixture_path(path, sizeof path), &err) != L2L_STATUS_OK)
        fail_msg("%s (run the tests from the repository root, or set L2L_FIXTURE_DIR)", err.msg);
    const fixture_case cases[] = {
        {"a", {.layers = 2, .hidden = 5, .preproc = L2L_PREPROC_LOGSIGN, .p = 10.0f, .scale = 0.1f},
         "layers=2 hidden=5 preproc=logsign p=10 scale=0.1", 3, 2, 2, 1},
        {"b", {.layers = 1, .hidden = 3, .preproc = L2L_PREPROC_NONE, .p = 10.0f, .scale = 1.0f},
         "layers=1 hidden=3 preproc=none p=10 scale=1", 3, 2, 1, 0},
        {"c", {.layers = 2, .hidden = 4, .preproc = L2L_PREPROC_LOGSIGN_RMS, .p = 10.0f, .scale = 0.1f},
         "layers=2 hidden=4 preproc=logsign-rms p=10 scale=0.1", 3, 2, 2, 1},
    };
    max_abs_err = max_rel_err = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&f, &cases[i]);
    print_message("l2l vs PyTorch: max |error| %.3g, max relative error %.3g (|expected| > 1e-3)\n",
                  max_abs_err, max_rel_err);
    l2l_st_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
