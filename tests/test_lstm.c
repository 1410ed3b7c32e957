/* The learned optimizer: finite-difference checks of the reference backward passes in
 * double precision, the fast float kernels against the reference, the authors' exact
 * check, thread-count independence and reproducibility. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lstm/lstm.h"
#include "lstm_ref.h"
#include "optim/adam.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

static void fill_normal(double *v, size_t n, double std, l2l_rng *rng)
{
    for (size_t i = 0; i < n; i++) v[i] = std * l2l_rng_normal(rng);
}

/* Central differences of f along one coordinate or a direction; f is smooth here and
 * evaluated in double, so h = 1e-5 leaves truncation ~1e-10 and rounding ~1e-11. */
#define FD_H 1e-5

/* A batch of quadratics with fixed W, y, in double (reference) and float (fast path). */
typedef struct {
    int dim, batch;
    double W[8][4][4], y[8][4];
} quad_fixed;

static double quad_ref_loss_grad(void *ctx, const double *theta, double *grad)
{
    quad_fixed *q = ctx;
    double total = 0;
    for (int b = 0; b < q->batch; b++) {
        double r[4];
        for (int i = 0; i < q->dim; i++) {
            r[i] = -q->y[b][i];
            for (int j = 0; j < q->dim; j++) r[i] += q->W[b][i][j] * theta[b * q->dim + j];
            total += r[i] * r[i];
        }
        for (int j = 0; j < q->dim; j++) {
            double s = 0;
            for (int i = 0; i < q->dim; i++) s += q->W[b][i][j] * r[i];
            grad[b * q->dim + j] = 2 * s;
        }
    }
    return total / q->batch;
}

static double quad_float_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)rng;
    quad_fixed *q = ctx;
    size_t n = (size_t)q->dim * q->batch;
    double th[32] = {0}, g[32];
    for (size_t i = 0; i < n; i++) th[i] = theta[i];
    double f = quad_ref_loss_grad(ctx, th, g);
    for (size_t i = 0; i < n; i++) grad[i] = (float)g[i];
    return f;
}

static void quad_init(quad_fixed *q, int dim, int batch, l2l_rng *rng)
{
    q->dim = dim;
    q->batch = batch;
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < dim; i++) {
            q->y[b][i] = l2l_rng_normal(rng);
            for (int j = 0; j < dim; j++) q->W[b][i][j] = (float)(0.5 * l2l_rng_normal(rng));
        }
}

/* The batch as a reference task. */
static l2l_ref_task quad_ref_task(quad_fixed *q)
{
    return (l2l_ref_task){.n = (size_t)q->dim * q->batch, .grad_scale = 1.0 / q->batch, .ctx = q,
                          .loss_grad = quad_ref_loss_grad};
}

static l2l_lstm make_net(int layers, int hidden, l2l_preproc pre, float scale, uint64_t seed)
{
    l2l_lstm net;
    l2l_lstm_config cfg = {.layers = layers, .hidden = hidden, .preproc = pre, .p = 10.0f, .scale = scale};
    l2l_error err;
    assert_int_equal(l2l_lstm_create(&net, &cfg, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 0);
    l2l_lstm_init(&net, &rng);
    /* Non-zero bias_hh so a kernel that ignores it fails the comparisons. */
    for (int l = 0; l < layers; l++)
        for (int j = 0; j < 4 * hidden; j++) net.w[0].layer[l].b_hh[j] = (float)(0.2 * l2l_rng_normal(&rng));
    return net;
}

/* ------------------------------------------------------ cell backward (FD) */

static void test_cell_backward_fd(void **state)
{
    (void)state;
    enum { H = 3, IN = 2 };
    l2l_rng rng;
    l2l_rng_seed(&rng, 7, 0);
    double W_ih[4 * H * IN], W_hh[4 * H * H], b_ih[4 * H], b_hh[4 * H], x[IN], hp[H], cp[H];
    double a[H], bc[H]; /* loss = a . h + bc . c */
    fill_normal(W_ih, 4 * H * IN, 0.7, &rng), fill_normal(W_hh, 4 * H * H, 0.7, &rng);
    fill_normal(b_ih, 4 * H, 0.5, &rng), fill_normal(b_hh, 4 * H, 0.5, &rng);
    fill_normal(x, IN, 1, &rng), fill_normal(hp, H, 0.5, &rng), fill_normal(cp, H, 1, &rng);
    fill_normal(a, H, 1, &rng), fill_normal(bc, H, 1, &rng);

    double gates[4 * H], h[H], c[H];
    l2l_ref_cell_forward(H, IN, W_ih, W_hh, b_ih, b_hh, x, hp, cp, gates, h, c);
    double dW_ih[4 * H * IN] = {0}, dW_hh[4 * H * H] = {0}, db[4 * H] = {0}, dx[IN], dhp[H], dcp[H];
    l2l_ref_cell_backward(H, IN, W_ih, W_hh, gates, cp, c, x, hp, a, bc, dW_ih, dW_hh, db, dx, dhp, dcp);

    struct {
        const char *name;
        double *v, *grad;
        int n;
    } blocks[] = {{"W_ih", W_ih, dW_ih, 4 * H * IN}, {"W_hh", W_hh, dW_hh, 4 * H * H},
                  {"b_ih", b_ih, db, 4 * H},          {"b_hh", b_hh, db, 4 * H},
                  {"x", x, dx, IN},                   {"h_prev", hp, dhp, H},
                  {"c_prev", cp, dcp, H}};
    for (size_t bl = 0; bl < sizeof blocks / sizeof *blocks; bl++)
        for (int i = 0; i < blocks[bl].n; i++) {
            double *p = &blocks[bl].v[i], saved = *p, fpm[2];
            for (int s = 0; s < 2; s++) {
                *p = saved + (s ? -FD_H : FD_H);
                double g2[4 * H], h2[H], c2[H];
                l2l_ref_cell_forward(H, IN, W_ih, W_hh, b_ih, b_hh, x, hp, cp, g2, h2, c2);
                fpm[s] = 0;
                for (int k = 0; k < H; k++) fpm[s] += a[k] * h2[k] + bc[k] * c2[k];
            }
            *p = saved;
            double fd = (fpm[0] - fpm[1]) / (2 * FD_H);
            EXPECT_CLOSE(blocks[bl].grad[i], fd, 1e-8, 1e-6, "cell d/d%s[%d]", blocks[bl].name, i);
        }
}

/* --------------------------------------------- unroll meta-gradient (FD) */

typedef struct {
    l2l_lstm_config cfg;
    size_t P;
    int T;
    quad_fixed q;
    double theta0[32], h0[256], c0[256];
    double *xs; /* frozen inputs (T, N, D) */
    const double *w; /* meta-loss weights (T) or NULL */
    int log_loss;
    int imitate;         /* with imitation of targets (T, N) */
    double targets[64];
} unroll_case;

static double frozen_meta_loss(unroll_case *uc, const double *phi)
{
    l2l_ref_task task = quad_ref_task(&uc->q);
    task.targets = uc->imitate ? uc->targets : NULL;
    double theta[32], h[256], c[256];
    memcpy(theta, uc->theta0, sizeof theta), memcpy(h, uc->h0, sizeof h), memcpy(c, uc->c0, sizeof c);
    return l2l_ref_unroll(&uc->cfg, phi, &task, uc->T, uc->w, uc->log_loss, theta, h, c, NULL, uc->xs,
                          NULL, NULL, NULL);
}

/* Per element and along random directions: the meta-gradient with second derivatives
 * dropped is the exact gradient of the meta-loss with the optimizer's inputs frozen at
 * the values the forward pass saw. Returns the number of mismatches (0 = pass). */
static int check_unroll_fd(int layers, int hidden, l2l_preproc pre, double scale, int T, int log_loss,
                           int imitate, int report)
{
    static const double w[8] = {0.5, 1.5, 0.25, 2.0, 1.0, 0.75, 1.25, 3.0};
    unroll_case uc = {.cfg = {layers, hidden, pre, 10.0f, (float)scale}, .T = T,
                      .w = layers == 1 ? w : NULL, .log_loss = log_loss, .imitate = imitate};
    if (layers == 0) uc.cfg.hidden = 0;
    l2l_rng rng;
    l2l_rng_seed(&rng, 11 + layers * 3 + hidden, 0);
    quad_init(&uc.q, 2, 2, &rng);
    const size_t N = 4, D = l2l_lstm_n_in(&uc.cfg), LH = (size_t)layers * uc.cfg.hidden;
    uc.P = l2l_lstm_param_count(&uc.cfg);
    double *phi = calloc(uc.P, sizeof(double)), *dphi = calloc(uc.P, sizeof(double));
    fill_normal(phi, uc.P, 0.4, &rng);
    fill_normal(uc.theta0, N, 1, &rng);
    fill_normal(uc.h0, N * LH, 0.3, &rng), fill_normal(uc.c0, N * LH, 0.3, &rng);
    uc.xs = calloc((size_t)T * N * D, sizeof(double));
    fill_normal(uc.targets, (size_t)T * N, 0.2, &rng);

    l2l_ref_task task = quad_ref_task(&uc.q);
    task.targets = uc.imitate ? uc.targets : NULL;
    double theta[32], h[256], c[256], v[32];
    memcpy(theta, uc.theta0, sizeof theta), memcpy(h, uc.h0, sizeof h), memcpy(c, uc.c0, sizeof c);
    for (size_t i = 0; i < N; i++) v[i] = 0.1 * (double)(i + 1); /* a run under way */
    l2l_ref_unroll(&uc.cfg, phi, &task, T, uc.w, uc.log_loss, theta, h, c, v, NULL, uc.xs, NULL, dphi);

    l2l_tensor_desc td[L2L_MAX_TENSORS];
    int nt = l2l_lstm_tensors(&uc.cfg, td), bad = 0;
    for (int ti = 0; ti < nt; ti++) {
        int is_bias_hh = strstr(td[ti].name, "bias_hh") != NULL;
        for (size_t i = 0; i < td[ti].count; i++) {
            double *p = &phi[td[ti].offset + i], saved = *p;
            *p = saved + FD_H;
            double fp = frozen_meta_loss(&uc, phi);
            *p = saved - FD_H;
            double fm = frozen_meta_loss(&uc, phi);
            *p = saved;
            double fd = (fp - fm) / (2 * FD_H), an = dphi[td[ti].offset + i];
            if (is_bias_hh) { /* not trained: its gradient is defined as 0; it must still
                                 enter the forward exactly like bias_ih */
                an = dphi[td[ti - 1].offset + i];
                if (dphi[td[ti].offset + i] != 0) bad++;
            }
            if (!(fabs(an - fd) <= 1e-7 + 1e-5 * fabs(fd))) {
                if (report)
                    print_error("L=%d H=%d: d/d%s[%zu]: expected (FD) %.10g, found %.10g\n", layers,
                                hidden, td[ti].name, i, fd, an);
                bad++;
            }
        }
    }
    /* Random directions over the whole vector. */
    double *dir = calloc(uc.P, sizeof(double)), *pp = calloc(uc.P, sizeof(double));
    for (int k = 0; k < 3; k++) {
        fill_normal(dir, uc.P, 1, &rng);
        double an = 0;
        for (size_t i = 0; i < uc.P; i++) an += dir[i] * dphi[i];
        for (int ti = 0; ti < nt; ti++) /* bias_hh's true effect equals bias_ih's */
            if (strstr(td[ti].name, "bias_hh"))
                for (size_t i = 0; i < td[ti].count; i++) an += dir[td[ti].offset + i] * dphi[td[ti - 1].offset + i];
        for (size_t i = 0; i < uc.P; i++) pp[i] = phi[i] + FD_H * dir[i];
        double fp = frozen_meta_loss(&uc, pp);
        for (size_t i = 0; i < uc.P; i++) pp[i] = phi[i] - FD_H * dir[i];
        double fd = (fp - frozen_meta_loss(&uc, pp)) / (2 * FD_H);
        if (!(fabs(an - fd) <= 1e-7 + 1e-6 * fabs(fd))) {
            if (report) print_error("L=%d direction %d: expected (FD) %.10g, found %.10g\n", layers, k, fd, an);
            bad++;
        }
    }
    free(dir), free(pp), free(phi), free(dphi), free(uc.xs);
    return bad;
}

static void test_unroll_fd(void **state)
{
    (void)state;
    assert_int_equal(check_unroll_fd(2, 3, L2L_PREPROC_LOGSIGN, 0.1, 4, 0, 0, 1), 0);
    assert_int_equal(check_unroll_fd(1, 2, L2L_PREPROC_NONE, 1.0, 3, 0, 0, 1), 0);
    assert_int_equal(check_unroll_fd(3, 2, L2L_PREPROC_LOGSIGN, 0.5, 3, 1, 0, 1), 0); /* log f */
    assert_int_equal(check_unroll_fd(2, 3, L2L_PREPROC_LOGSIGN, 0.1, 4, 1, 1, 1), 0); /* imitation */
    assert_int_equal(check_unroll_fd(0, 0, L2L_PREPROC_NONE, 1.0, 5, 0, 0, 1), 0);
    assert_int_equal(check_unroll_fd(0, 0, L2L_PREPROC_LOGSIGN, 0.1, 3, 0, 0, 1), 0);
    assert_int_equal(check_unroll_fd(2, 3, L2L_PREPROC_LOGSIGN_RMS, 0.1, 4, 0, 0, 1), 0);
    assert_int_equal(check_unroll_fd(1, 2, L2L_PREPROC_LOGSIGN_RMS, 0.3, 3, 1, 1, 1), 0); /* log f, imitation */
    assert_int_equal(check_unroll_fd(0, 0, L2L_PREPROC_LOGSIGN_RMS, 0.1, 3, 0, 0, 1), 0);
}

/* ------------------------------------------------ fast float vs reference */

static double rel_err(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

/* A teacher with state, NAG-like: buf = 0.9 buf + g, target = -0.05 (g + 0.9 buf); it
 * records its targets, row after row, for the reference to use. */
typedef struct {
    size_t n;
    float buf[64];
    double *rec; /* (T, n) */
    int row;
} test_teacher;

static void teacher_step(void *ctx, const float *grad, float *target)
{
    test_teacher *tt = ctx;
    for (size_t i = 0; i < tt->n; i++) {
        tt->buf[i] = 0.9f * tt->buf[i] + grad[i];
        target[i] = -0.05f * (grad[i] + 0.9f * tt->buf[i]);
        tt->rec[(size_t)tt->row * tt->n + i] = target[i];
    }
    tt->row++;
}

/* Two consecutive unrolls of T steps, float fast path vs double reference.
 * weighted: 0 plain, 1 meta-loss weights, 2 log f, 3 weights and imitation of a teacher. */
static void compare_fast_ref(int layers, int hidden, l2l_preproc pre, float scale, int dim,
                             int batch, int T, int weighted)
{
    float wf[64];
    double wd[64];
    for (int t = 0; t < T; t++) wd[t] = wf[t] = weighted ? 0.3f + 0.5f * t : 1.0f;
    l2l_lstm net = make_net(layers, hidden, pre, scale, 5 + layers);
    l2l_rng rng;
    l2l_rng_seed(&rng, 99, (uint64_t)batch);
    quad_fixed q;
    quad_init(&q, dim, batch, &rng);
    const size_t N = (size_t)dim * batch, P = net.n_params;
    const int L = net.cfg.layers, H = net.cfg.hidden;
    l2l_task task = {.n = N, .grad_scale = 1.0f / batch, .ctx = &q, .loss_grad = quad_float_loss_grad};
    l2l_ref_task rtask = quad_ref_task(&q);

    float *theta = calloc(N, sizeof(float)), *dphi = calloc(P, sizeof(float));
    double *rtheta = calloc(N, sizeof(double)), *rphi = calloc(P, sizeof(double));
    double *rdphi = calloc(P, sizeof(double)), *fdphi = calloc(P, sizeof(double));
    double *rh = calloc(N * L * H + 1, sizeof(double)), *rc = calloc(N * L * H + 1, sizeof(double));
    double *rv = calloc(N, sizeof(double));
    for (size_t i = 0; i < N; i++) rtheta[i] = theta[i] = (float)l2l_rng_normal(&rng);
    for (size_t i = 0; i < P; i++) rphi[i] = net.phi[i];

    l2l_lstm_state st;
    l2l_unroll u;
    l2l_error err;
    assert_int_equal(l2l_lstm_state_create(&st, &net, N, NULL, &err), L2L_STATUS_OK);
    test_teacher tt = {.n = N, .rec = calloc((size_t)T * N, sizeof(double))};
    const l2l_unroll_config ucfg = {.T = T, .objective = weighted == 2 ? L2L_OBJECTIVE_LOG : L2L_OBJECTIVE_SUM,
                                    .teacher = weighted == 3 ? teacher_step : NULL, .teacher_ctx = &tt};
    assert_int_equal(l2l_unroll_create(&u, &net, N, NULL, &ucfg, &err), L2L_STATUS_OK);
    if (weighted == 3) rtask.targets = tt.rec;
    double losses[64], rlosses[64];
    for (int unroll = 0; unroll < 2; unroll++) {
        memset(dphi, 0, P * sizeof(float));
        memset(rdphi, 0, P * sizeof(double));
        tt.row = 0;
        assert_int_equal(l2l_unroll_run(&u, &net, &task, theta, &st, weighted ? wf : NULL, &rng, dphi,
                                        losses, &err), L2L_STATUS_OK);
        if (weighted == 3) assert_int_equal(tt.row, T); /* one target per step */
        l2l_ref_unroll(&net.cfg, rphi, &rtask, T, weighted ? wd : NULL, weighted == 2, rtheta, rh, rc,
                       rv, NULL, NULL, rlosses, rdphi);
        for (int t = 0; t <= T; t++)
            EXPECT_CLOSE(losses[t], rlosses[t], 1e-6, 1e-4, "L=%d N=%zu unroll %d loss[%d]", L, N, unroll, t);
        for (size_t i = 0; i < N; i++)
            EXPECT_CLOSE(theta[i], rtheta[i], 1e-5, 1e-4, "L=%d N=%zu unroll %d theta[%zu]", L, N, unroll, i);
        for (size_t i = 0; i < P; i++) fdphi[i] = dphi[i];
        double e = rel_err(fdphi, rdphi, P), gmax = 0;
        for (size_t i = 0; i < P; i++) gmax = fmax(gmax, fabs(rdphi[i]));
        /* float rounding through T steps: relative error ~1e-6..1e-5; a real bug is O(1) */
        EXPECT_CLOSE(e, 0, 1e-4, 0, "L=%d N=%zu unroll %d: relative error of dphi", L, N, unroll);
        for (size_t i = 0; i < P; i++)
            EXPECT_CLOSE(fdphi[i], rdphi[i], 1e-4 * gmax, 1e-3, "L=%d N=%zu unroll %d dphi[%zu]", L, N, unroll, i);
    }
    /* the carried state matches too (layout (L, H, N) vs (N, L, H)) */
    for (int l = 0; l < L; l++)
        for (int k = 0; k < H; k++)
            for (size_t n = 0; n < N; n++)
                EXPECT_CLOSE(st.h[((size_t)l * H + k) * N + n], rh[(n * L + l) * H + k], 1e-5, 1e-4,
                             "h[l=%d,k=%d,n=%zu]", l, k, n);
    if (pre == L2L_PREPROC_LOGSIGN_RMS)
        for (size_t n = 0; n < N; n++) EXPECT_CLOSE(st.v[n], rv[n], 0, 1e-4, "v[n=%zu]", n);
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&st);
    l2l_lstm_free(&net);
    free(tt.rec);
    free(theta), free(dphi), free(rtheta), free(rphi), free(rdphi), free(fdphi), free(rh), free(rc), free(rv);
}

static void test_fast_matches_reference(void **state)
{
    (void)state;
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 3, 2, 5, 0); /* one partial tile */
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 4, 8, 4, 0); /* N = 32 */
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 4, 8, 4, 1); /* meta-loss weights */
    compare_fast_ref(1, 7, L2L_PREPROC_NONE, 0.3f, 3, 8, 3, 0);
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 4, 8, 4, 2); /* log meta-loss */
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 4, 8, 4, 3); /* imitation of a teacher */
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 3, 2, 5, 3); /* the same on a partial tile */
    compare_fast_ref(0, 0, L2L_PREPROC_NONE, 1.0f, 2, 3, 4, 1);
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN_RMS, 0.1f, 4, 8, 4, 1); /* the mean square carried over */
    compare_fast_ref(2, 20, L2L_PREPROC_LOGSIGN_RMS, 0.1f, 3, 2, 5, 3);
    compare_fast_ref(0, 0, L2L_PREPROC_LOGSIGN_RMS, 0.1f, 2, 3, 4, 0);
}

/* Many tiles, with a remainder: a task of N = 200 independent coordinates. */
static double diag_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)rng;
    const float *a = ctx; /* f = mean_i a_i (theta_i - 1)^2, grad_i = 2 a_i (theta_i - 1) */
    double f = 0;
    for (int i = 0; i < 200; i++) {
        double d = theta[i] - 1.0;
        f += a[i] * d * d;
        grad[i] = (float)(2 * a[i] * d);
    }
    return f / 200;
}

static double diag_ref_loss_grad(void *ctx, const double *theta, double *grad)
{
    const float *a = ctx;
    double f = 0;
    for (int i = 0; i < 200; i++) {
        double d = theta[i] - 1.0;
        f += a[i] * d * d;
        grad[i] = 2 * a[i] * d;
    }
    return f / 200;
}

static void run_tiles(int threads, float *dphi_out, float *theta_out)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    enum { N = 200, T = 6 };
    float a[N];
    l2l_rng rng;
    l2l_rng_seed(&rng, 3, 3);
    for (int i = 0; i < N; i++) a[i] = (float)(0.1 + l2l_rng_uniform(&rng));
    l2l_lstm net = make_net(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 17);
    l2l_task task = {.n = N, .grad_scale = 1.0f / N, .ctx = a, .loss_grad = diag_loss_grad};
    l2l_lstm_state st;
    l2l_unroll u;
    l2l_error err;
    const l2l_unroll_config ucfg = {.T = T};
    assert_int_equal(l2l_lstm_state_create(&st, &net, N, NULL, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_unroll_create(&u, &net, N, NULL, &ucfg, &err), L2L_STATUS_OK);
    for (int i = 0; i < N; i++) theta_out[i] = (float)l2l_rng_normal(&rng);
    memset(dphi_out, 0, net.n_params * sizeof(float));
    assert_int_equal(l2l_unroll_run(&u, &net, &task, theta_out, &st, NULL, &rng, dphi_out, NULL, &err), L2L_STATUS_OK);

    if (threads == 1) { /* and against the reference */
        double *rphi = calloc(net.n_params, sizeof(double)), *rd = calloc(net.n_params, sizeof(double));
        double rtheta[N], rh[N * 40] = {0}, rc[N * 40] = {0}, *fd = calloc(net.n_params, sizeof(double));
        for (size_t i = 0; i < net.n_params; i++) rphi[i] = net.phi[i];
        l2l_rng_seed(&rng, 3, 3);
        for (int i = 0; i < N; i++) l2l_rng_uniform(&rng);
        for (int i = 0; i < N; i++) rtheta[i] = (float)l2l_rng_normal(&rng);
        l2l_ref_task rt = {.n = N, .grad_scale = 1.0 / N, .ctx = a, .loss_grad = diag_ref_loss_grad};
        l2l_ref_unroll(&net.cfg, rphi, &rt, T, NULL, 0, rtheta, rh, rc, NULL, NULL, NULL, NULL, rd);
        for (size_t i = 0; i < net.n_params; i++) fd[i] = dphi_out[i];
        EXPECT_CLOSE(rel_err(fd, rd, net.n_params), 0, 1e-4, 0, "N=200 relative error of dphi");
        for (int i = 0; i < N; i++) EXPECT_CLOSE(theta_out[i], rtheta[i], 1e-5, 1e-4, "N=200 theta[%d]", i);
        free(rphi), free(rd), free(fd);
    }
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&st);
    l2l_lstm_free(&net);
}

static void test_threads_agree(void **state)
{
    (void)state;
    float d1[5301], d2[5301], t1[200], t2[200];
    run_tiles(1, d1, t1);
    run_tiles(2, d2, t2);
    for (int i = 0; i < 200; i++) assert_true(t1[i] == t2[i]); /* forward: disjoint, exact */
    double g = 0;
    for (int i = 0; i < 5301; i++) g = fmax(g, fabs(d1[i]));
    for (int i = 0; i < 5301; i++) /* summation order differs only */
        EXPECT_CLOSE(d2[i], d1[i], 1e-5 * g, 1e-5, "dphi[%d] with 2 threads vs 1", i);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
}

/* ------------------------------------------------- inference vs reference */

static void check_step_matches_reference(l2l_preproc pre)
{
    enum { N = 130, STEPS = 4 };
    l2l_lstm net = make_net(2, 20, pre, 0.1f, 23);
    const int L = 2, H = 20, D = net.n_in;
    l2l_lstm_state st;
    l2l_error err;
    assert_int_equal(l2l_lstm_state_create(&st, &net, N, NULL, &err), L2L_STATUS_OK);
    l2l_tensor_desc td[10];
    l2l_lstm_tensors(&net.cfg, td);
    double *rphi = calloc(net.n_params, sizeof(double)), *rh = calloc(N * L * H, sizeof(double));
    double *rc = calloc(N * L * H, sizeof(double)), rv[N] = {0};
    for (size_t i = 0; i < net.n_params; i++) rphi[i] = net.phi[i];
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 1);
    float grad[N], upd[N];
    for (int s = 0; s < STEPS; s++) {
        for (int n = 0; n < N; n++) /* magnitudes over many decades, and exact zeros */
            grad[n] = n % 17 == 0 ? 0.0f : (float)(l2l_rng_normal(&rng) * pow(10, -8 + (n % 9)));
        l2l_lstm_step(&net, &st, grad, upd);
        for (int n = 0; n < N; n++) {
            double x[3], in[40], gates[80];
            l2l_ref_preprocess(&net.cfg, grad[n], &rv[n], x);
            const double *inp = x;
            for (int l = 0; l < L; l++) {
                double *h = rh + ((size_t)n * L + l) * H, *c = rc + ((size_t)n * L + l) * H;
                l2l_ref_cell_forward(H, l == 0 ? D : H, rphi + td[4 * l].offset, rphi + td[4 * l + 1].offset,
                                     rphi + td[4 * l + 2].offset, rphi + td[4 * l + 3].offset, inp, h, c,
                                     gates, h, c);
                memcpy(in, h, H * sizeof(double));
                inp = in;
            }
            double u = rphi[td[9].offset];
            for (int k = 0; k < H; k++) u += rphi[td[8].offset + k] * in[k];
            EXPECT_CLOSE(upd[n], 0.1 * u, 1e-6, 1e-4, "D=%d step %d update[%d]", D, s, n);
        }
    }
    l2l_lstm_state_free(&st);
    l2l_lstm_free(&net);
    free(rphi), free(rh), free(rc);
}

static void test_step_matches_reference(void **state)
{
    (void)state;
    check_step_matches_reference(L2L_PREPROC_LOGSIGN);
    check_step_matches_reference(L2L_PREPROC_LOGSIGN_RMS);
}

/* ------------------------------------------------ the authors' exact check */

static double square_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)ctx, (void)rng;
    grad[0] = 2 * theta[0];
    return (double)theta[0] * theta[0];
}

static void test_authors_check(void **state)
{
    (void)state;
    /* docs/METHOD.md section 4: f(x) = x², x0 = 1, no LSTM layers (g = w grad + b, w = b = 0),
     * no preprocessing, scale 1, unroll 5, two unrolls, meta-Adam lr 0.01. */
    l2l_lstm net;
    l2l_lstm_config cfg = {.layers = 0, .hidden = 0, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1.0f};
    l2l_error err;
    assert_int_equal(l2l_lstm_create(&net, &cfg, &err), L2L_STATUS_OK);
    assert_int_equal(net.n_params, 2);
    l2l_task task = {.n = 1, .grad_scale = 1, .loss_grad = square_loss_grad};
    l2l_lstm_state st;
    l2l_unroll u;
    const l2l_unroll_config bad_T = {.T = 0}, bad_objective = {.T = 5, .objective = 7};
    assert_int_equal(l2l_unroll_create(&u, &net, 1, NULL, &bad_T, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "unroll length"));
    l2l_unroll_free(&u); /* safe after a failed create */
    assert_int_equal(l2l_unroll_create(&u, &net, 1, NULL, &bad_objective, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "objective"));
    const l2l_unroll_config ucfg = {.T = 5, .objective = L2L_OBJECTIVE_SUM};
    assert_int_equal(l2l_lstm_state_create(&st, &net, 1, NULL, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_unroll_create(&u, &net, 1, NULL, &ucfg, &err), L2L_STATUS_OK);
    float theta = 1, dphi[2], m[2] = {0}, v[2] = {0};
    double losses[6];
    l2l_rng rng;
    l2l_rng_seed(&rng, 0, 0);
    for (int k = 1; k <= 2; k++) {
        memset(dphi, 0, sizeof dphi);
        assert_int_equal(l2l_unroll_run(&u, &net, &task, &theta, &st, NULL, &rng, dphi, losses, &err), L2L_STATUS_OK);
        if (k == 1) {
            EXPECT_CLOSE(theta, 1.0, 0, 0, "x after the first unroll");
            EXPECT_CLOSE(dphi[0], 60.0, 1e-5, 0, "dL/dw after the first unroll");
            EXPECT_CLOSE(dphi[1], 30.0, 1e-5, 0, "dL/db after the first unroll");
        }
        l2l_adam_update(2, net.phi, dphi, m, v, k, 0.01f, 0.9f, 0.999f, 1e-8f);
        if (k == 1) {
            EXPECT_CLOSE(net.phi[0], -0.01, 1e-7, 0, "w after one Adam step");
            EXPECT_CLOSE(net.phi[1], -0.01, 1e-7, 0, "b after one Adam step");
        }
    }
    EXPECT_CLOSE(theta, 0.8559, 5e-5, 0, "x at the end of the second unroll (authors: 0.8559)");
    EXPECT_CLOSE(losses[5], 0.7325327, 5e-5, 0, "f at the end of the second unroll (authors: 0.7325327)");
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&st);
    l2l_lstm_free(&net);
}

/* --------------------------------------------------------- misc */

static void test_param_count_and_init(void **state)
{
    (void)state;
    l2l_lstm_config cfg = {.layers = 2, .hidden = 20, .preproc = L2L_PREPROC_LOGSIGN, .p = 10, .scale = 0.1f};
    assert_int_equal(l2l_lstm_param_count(&cfg), 5301); /* 5,141 trained + 160 bias_hh */
    l2l_lstm net = make_net(2, 20, L2L_PREPROC_LOGSIGN, 0.1f, 1);
    l2l_rng rng;
    l2l_rng_seed(&rng, 4, 0);
    l2l_lstm_init(&net, &rng);
    /* forget gate bias (rows H..2H) carries +1; every draw within 2 std */
    double sf = 0;
    for (int j = 20; j < 40; j++) sf += net.w[0].layer[0].b_ih[j];
    assert_true(sf / 20 > 0.7 && sf / 20 < 1.3);
    double lim = 2.0 / sqrt(22.0);
    for (int i = 0; i < 160; i++) assert_true(fabs(net.w[0].layer[0].w_ih[i]) <= lim);
    for (int j = 0; j < 80; j++) assert_true(net.w[0].layer[1].b_hh[j] == 0);
    assert_true(net.w[0].b_out[0] == 0);
    l2l_lstm_free(&net);
    l2l_error err;
    cfg.layers = 9;
    assert_int_equal(l2l_lstm_create(&net, &cfg, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "layers"));
}

static void test_preprocess(void **state)
{
    (void)state;
    l2l_lstm_config cfg = {.layers = 2, .hidden = 20, .preproc = L2L_PREPROC_LOGSIGN, .p = 10, .scale = 0.1f};
    float g[4] = {1.0f, -0.5f, 1e-6f, 0.0f}, x[8];
    l2l_preprocess(&cfg, 4, g, NULL, x);
    EXPECT_CLOSE(x[0], 0, 1e-7, 0, "log|1|/10");
    EXPECT_CLOSE(x[4], 1, 0, 0, "sgn 1");
    EXPECT_CLOSE(x[1], log(0.5) / 10, 1e-7, 0, "log|-0.5|/10");
    EXPECT_CLOSE(x[5], -1, 0, 0, "sgn -0.5");
    EXPECT_CLOSE(x[2], -1, 0, 0, "small: -1");
    EXPECT_CLOSE(x[6], exp(10) * 1e-6, 1e-6, 1e-6, "small: e^p g");
    EXPECT_CLOSE(x[3], -1, 0, 0, "zero: -1");
    EXPECT_CLOSE(x[7], 0, 0, 0, "zero: 0");

    /* logsign-rms: the same two rows, then g / sqrt(v) with v <- 0.8 v + 0.2 g². */
    cfg.preproc = L2L_PREPROC_LOGSIGN_RMS;
    float v[4] = {0}, x3[12];
    l2l_preprocess(&cfg, 4, g, v, x3);
    for (int i = 0; i < 8; i++) EXPECT_CLOSE(x3[i], x[i], 0, 0, "logsign row %d", i);
    EXPECT_CLOSE(v[1], 0.2 * 0.25, 1e-9, 1e-6, "v after one step");
    EXPECT_CLOSE(x3[8], 1 / sqrt(0.2), 0, 1e-6, "first step: sgn g / sqrt(0.2)");
    EXPECT_CLOSE(x3[9], -1 / sqrt(0.2), 0, 1e-6, "first step, g < 0");
    EXPECT_CLOSE(x3[10], 1 / sqrt(0.2), 0, 1e-6, "first step, g = 1e-6: the same");
    EXPECT_CLOSE(x3[11], 0, 0, 0, "zero: 0");
    float g2[4] = {0.5f, -0.5f, 1e-6f, 0.0f};
    l2l_preprocess(&cfg, 4, g2, v, x3);
    EXPECT_CLOSE(v[0], 0.8 * 0.2 + 0.2 * 0.25, 1e-9, 1e-6, "v after two steps");
    EXPECT_CLOSE(x3[8], 0.5 / sqrt(0.8 * 0.2 + 0.2 * 0.25), 0, 1e-6, "second step");
    /* The gradient's scale drops out (above L2L_RMS_EPS): 1e-6 times the gradients give
     * the same third row. */
    float vs[4] = {0}, gs[4], xs[12];
    for (int i = 0; i < 4; i++) gs[i] = 1e-6f * g[i];
    l2l_preprocess(&cfg, 4, gs, vs, xs);
    for (int i = 0; i < 4; i++) gs[i] = 1e-6f * g2[i];
    l2l_preprocess(&cfg, 4, gs, vs, xs);
    for (int i = 8; i < 12; i++) EXPECT_CLOSE(xs[i], x3[i], 0, 1e-5, "scaled by 1e-6: x[%d]", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_count_and_init),
        cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_cell_backward_fd),
        cmocka_unit_test(test_unroll_fd),
        cmocka_unit_test(test_fast_matches_reference),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_step_matches_reference),
        cmocka_unit_test(test_authors_check),
    };
    return cmocka_run_group_tests_name("lstm", tests, NULL, NULL);
}
