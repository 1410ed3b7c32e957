/* Persistent evolution strategies (src/meta/pes.c) against the exact whole-run
 * meta-gradient, and truncated backpropagation's bias measured on the same problem.
 *
 * The problem is small enough for the exact gradient: f(theta) = 1/2 sum_i a_i theta_i²
 * (2 coordinates, a = (1, 0.1), theta0 = (1, 1)) optimized for S = 20 steps by the
 * optimizer with no LSTM layers and no preprocessing, update = w g + b (phi = (w, b)),
 * so theta_{t+1} = (1 + w a) theta_t + b. The meta-loss L(phi) = sum_{t=1..S} f(theta_t)
 * is a polynomial in phi; the test simulates it in double precision, independently of
 * the library, and takes central differences. Its Gaussian smoothing at sigma = 0.01
 * moves the gradient by O(sigma²) relative, far below the tolerance. */
#include <string.h>

#include "meta/estimator.h"
#include "testutil.h"

enum { DIM = 2, STEPS = 20, UNROLL = 4, SAMPLES = 40000 };
static const double A[DIM] = {1.0, 0.1}, THETA0[DIM] = {1.0, 1.0};
static const double W = -0.5, B = 0.02;

static void sample(void *ctx, l2l_rng *rng, float *theta0)
{
    for (int i = 0; i < DIM; i++) theta0[i] = (float)THETA0[i];
}

static double loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    double f = 0;
    for (int i = 0; i < DIM; i++) {
        f += 0.5 * A[i] * theta[i] * theta[i];
        if (grad) grad[i] = (float)(A[i] * theta[i]);
    }
    return f;
}

static double meta_loss(double w, double b)
{
    double theta[DIM] = {THETA0[0], THETA0[1]}, L = 0;
    for (int t = 1; t <= STEPS; t++)
        for (int i = 0; i < DIM; i++) {
            theta[i] += w * A[i] * theta[i] + b;
            L += 0.5 * A[i] * theta[i] * theta[i];
        }
    return L;
}

/* Sums an estimator's per-truncation gradients over one whole run at fixed phi. */
static void whole_run(const l2l_estimator_ops *ops, void *est, const l2l_lstm *net, l2l_rng *rng,
                      double g[2])
{
    float dphi[2];
    double loss = 0;
    l2l_error err;
    ops->begin_epoch(est, l2l_rng_u64(rng));
    g[0] = g[1] = 0;
    for (int k = 0; k < ops->updates_per_epoch(&(l2l_train_config){.steps = STEPS, .unroll = UNROLL}); k++) {
        memset(dphi, 0, sizeof dphi);
        if (ops->gradient(est, net, k, dphi, &loss, &err)) fail_msg("%s: %s", ops->name, err.msg);
        g[0] += dphi[0], g[1] += dphi[1];
    }
}

static void test_pes_unbiased(void **state)
{
    (void)state;
    l2l_task task = {.n = DIM, .grad_scale = 1, .sample = sample, .loss_grad = loss_grad};
    const l2l_lstm_config lc = {.layers = 0, .preproc = L2L_PREPROC_NONE, .scale = 1};
    l2l_lstm net;
    l2l_error err;
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    assert_int_equal(net.n_params, 2);
    net.w[0].w_out[0] = (float)W, net.w[0].b_out[0] = (float)B;

    const double h = 1e-6;
    const double exact[2] = {(meta_loss(W + h, B) - meta_loss(W - h, B)) / (2 * h),
                             (meta_loss(W, B + h) - meta_loss(W, B - h)) / (2 * h)};

    l2l_train_config cfg;
    l2l_train_config_default(&cfg);
    cfg.steps = STEPS, cfg.unroll = UNROLL, cfg.es.pairs = 1, cfg.es.sigma = 0.01f, cfg.seed = 7;
    l2l_rng rng;
    l2l_rng_seed(&rng, 7, L2L_STREAM_TRAIN);
    const l2l_meta_batch mb = {&task, 1, &l2l_comm_one};

    /* PES: SAMPLES independent whole-run estimates (fresh perturbations every run). */
    void *pes = test_calloc(1, l2l_estimator_pes.size);
    assert_int_equal(l2l_estimator_pes.create(pes, &net, &mb, &cfg, &err), L2L_STATUS_OK);
    double sum[2] = {0, 0}, sum2[2] = {0, 0};
    for (int s = 0; s < SAMPLES; s++) {
        double g[2];
        whole_run(&l2l_estimator_pes, pes, &net, &rng, g);
        for (int i = 0; i < 2; i++) sum[i] += g[i], sum2[i] += g[i] * g[i];
    }
    l2l_estimator_pes.free(pes);
    test_free(pes);

    /* Truncated backpropagation: deterministic here. */
    void *tb = test_calloc(1, l2l_estimator_tbptt.size);
    assert_int_equal(l2l_estimator_tbptt.create(tb, &net, &mb, &cfg, &err), L2L_STATUS_OK);
    double tbptt[2];
    whole_run(&l2l_estimator_tbptt, tb, &net, &rng, tbptt);
    l2l_estimator_tbptt.free(tb);
    test_free(tb);

    const char *name[2] = {"w", "b"};
    for (int i = 0; i < 2; i++) {
        const double mean = sum[i] / SAMPLES;
        const double se = sqrt((sum2[i] / SAMPLES - mean * mean) / (SAMPLES - 1));
        printf("dL/d%s: exact %.5g, PES %.5g +- %.3g (s.e., %d runs), truncated backpropagation "
               "(unroll %d of %d) %.5g, its bias %.1f s.e.\n", name[i], exact[i], mean, se, SAMPLES,
               UNROLL, STEPS, tbptt[i], (tbptt[i] - exact[i]) / se);
        /* unbiased: within 4 standard errors of the exact gradient, and precise enough
         * (s.e. under 5% of it) for that to mean something */
        EXPECT_CLOSE(mean, exact[i], 4 * se, 0, "PES mean of dL/d%s", name[i]);
        if (!(se < 0.05 * fabs(exact[i]))) fail_msg("PES s.e. %g of dL/d%s is not under 5%% of %g", se, name[i], exact[i]);
    }
    /* The bias of truncated backpropagation, measured: on b it misses by far more than
     * PES's standard error (about half the gradient: it ignores how b moved theta before
     * each unroll). */
    const double se_b = sqrt((sum2[1] / SAMPLES - pow(sum[1] / SAMPLES, 2)) / (SAMPLES - 1));
    if (!(fabs(tbptt[1] - exact[1]) > 20 * se_b && fabs(tbptt[1] - exact[1]) > 0.3 * fabs(exact[1])))
        fail_msg("truncated backpropagation's dL/db %g is not clearly biased against the exact %g "
                 "(PES s.e. %g)", tbptt[1], exact[1], se_b);
    l2l_lstm_free(&net);
}

/* With one truncation (unroll = steps) PES is ES over the whole run: both must agree
 * bit for bit when they draw the same perturbations and minibatches. */
static void test_pes_one_truncation_is_es(void **state)
{
    (void)state;
    l2l_quadratic_config qc = {.dim = 3, .batch = 4, .deepmind = 0};
    l2l_task task;
    l2l_error err;
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    const l2l_lstm_config lc = {.layers = 1, .hidden = 4, .preproc = L2L_PREPROC_NONE, .scale = 0.1f};
    l2l_lstm net;
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_rng init;
    l2l_rng_seed(&init, 3, L2L_STREAM_INIT);
    l2l_lstm_init(&net, &init);
    l2l_train_config cfg;
    l2l_train_config_default(&cfg);
    cfg.steps = cfg.unroll = 10, cfg.es.pairs = 3, cfg.es.sigma = 0.05f;

    float g_pes[256], g_es[256];
    assert_true(net.n_params <= 256);
    const l2l_estimator_ops *ops[2] = {&l2l_estimator_pes, &l2l_estimator_es};
    float *out[2] = {g_pes, g_es};
    double loss[2] = {0, 0};
    const l2l_meta_batch mb = {&task, 1, &l2l_comm_one};
    for (int e = 0; e < 2; e++) {
        void *est = test_calloc(1, ops[e]->size);
        assert_int_equal(ops[e]->create(est, &net, &mb, &cfg, &err), L2L_STATUS_OK);
        ops[e]->begin_epoch(est, 5);
        memset(out[e], 0, net.n_params * sizeof(float));
        assert_int_equal(ops[e]->gradient(est, &net, 0, out[e], &loss[e], &err), L2L_STATUS_OK);
        ops[e]->free(est);
        test_free(est);
    }
    EXPECT_CLOSE(loss[0], loss[1], 0, 1e-12, "mean loss of the perturbed runs");
    for (size_t i = 0; i < net.n_params; i++) EXPECT_CLOSE(g_pes[i], g_es[i], 0, 0, "gradient[%zu]", i);
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

static void test_pes_errors(void **state)
{
    (void)state;
    l2l_quadratic_config qc = {.dim = 2, .batch = 1, .deepmind = 0};
    l2l_task task;
    l2l_error err;
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    const l2l_lstm_config lc = {.layers = 0, .preproc = L2L_PREPROC_NONE, .scale = 1};
    l2l_lstm net;
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_train_config cfg;
    l2l_train_config_default(&cfg);
    cfg.estimator = L2L_ESTIMATOR_PES, cfg.epochs = 2, cfg.eval_every = 0;
    cfg.es.pairs = 0, cfg.es.sigma = 0.1f;
    assert_int_equal(l2l_meta_train(&net, &task, &cfg, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "pairs >= 1"));
    /* An optimizer that multiplies the gradient by 1e6 diverges in every particle. */
    cfg.es.pairs = 2;
    net.w[0].w_out[0] = 1e6f;
    assert_int_equal(l2l_meta_train(&net, &task, &cfg, NULL, NULL, &err), L2L_STATUS_NUMERIC);
    assert_non_null(strstr(err.msg, "every one of the 2 pairs"));
    assert_true(net.w[0].w_out[0] == 1e6f); /* phi left as it was */
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pes_unbiased),
        cmocka_unit_test(test_pes_one_truncation_is_es),
        cmocka_unit_test(test_pes_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
