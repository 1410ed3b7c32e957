/* The hand-written baselines against steps worked out by hand, the quadratic task's
 * gradient against finite differences, evaluation and tuning, and meta-training's
 * reproducibility. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "meta/estimator.h" /* the ES estimator's rollout and estimate */
#include "testutil.h"

/* Two steps from theta = 1 with gradients 2 then -1; expected values from the update
 * rules written out by hand (Torch7 forms):
 *   SGD lr 0.1:      1 - 0.2 = 0.8;  0.8 + 0.1 = 0.9
 *   NAG lr 0.1:      buf 2, 1 - 0.1 (2 + 1.8) = 0.62;  buf 0.8, 0.62 - 0.1 (-1 + 0.72) = 0.648
 *   RMSprop lr 0.01: m 0.04, 1 - 0.01 * 2 / 0.2 = 0.9;  m 0.0496, 0.9 + 0.01 / sqrt(0.0496)
 *   Adam lr 0.1:     bias-corrected first step moves by lr: 0.9;  then m 0.08, v 0.004996,
 *                    step 0.1 sqrt(1 - 0.999²) / (1 - 0.9²).
 *   NAG floor lr 0.1: gradients above the floor (eps = 5e-3): NAG's steps, 0.62 and 0.648.
 *                    Gradients 1e-5 then -2e-5, below it (alpha = 0.8): v 2e-11, g1' = 1e-5 eps /
 *                    sqrt(v), buf g1', 1 - 0.1 (1.9 g1');  v 9.6e-11, g2' = -2e-5 eps / sqrt(v),
 *                    buf 0.9 g1' + g2', then minus 0.1 (g2' + 0.9 buf). */
static void test_baselines_by_hand(void **state)
{
    (void)state;
    const double f1 = 1e-5 * 5e-3 / sqrt(2e-11), f2 = -2e-5 * 5e-3 / sqrt(9.6e-11);
    struct {
        l2l_opt_kind kind;
        float lr, g1, g2;
        double after1, after2;
    } cases[] = {
        {L2L_OPT_KIND_SGD, 0.1f, 2, -1, 0.8, 0.9},
        {L2L_OPT_KIND_NAG, 0.1f, 2, -1, 0.62, 0.648},
        {L2L_OPT_KIND_RMSPROP, 0.01f, 2, -1, 0.9, 0.9 + 0.01 / sqrt(0.0496)},
        {L2L_OPT_KIND_ADAM, 0.1f, 2, -1, 0.9, 0.9 - 0.1 * sqrt(1 - 0.999 * 0.999) / (1 - 0.81) * 0.08 / sqrt(0.004996)},
        {L2L_OPT_KIND_NAG_FLOOR, 0.1f, 2, -1, 0.62, 0.648},
        {L2L_OPT_KIND_NAG_FLOOR, 0.1f, 1e-5f, -2e-5f, 1 - 0.19 * f1, 1 - 0.19 * f1 - 0.1 * (f2 + 0.9 * (0.9 * f1 + f2))},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        l2l_optimizer o;
        l2l_error err;
        const l2l_opt_spec spec = {cases[i].kind, cases[i].lr, NULL};
        assert_int_equal(l2l_optimizer_create(&o, &spec, 1, &err), L2L_STATUS_OK);
        float theta = 1, g1 = cases[i].g1, g2 = cases[i].g2;
        l2l_optimizer_step(&o, &g1, &theta);
        EXPECT_CLOSE(theta, cases[i].after1, 1e-6, 0, "%s after one step", l2l_opt_kind_name(cases[i].kind));
        l2l_optimizer_step(&o, &g2, &theta);
        EXPECT_CLOSE(theta, cases[i].after2, 1e-6, 0, "%s after two steps", l2l_opt_kind_name(cases[i].kind));
        l2l_optimizer_reset(&o); /* a new optimizee starts from zero state */
        theta = 1;
        l2l_optimizer_step(&o, &g1, &theta);
        EXPECT_CLOSE(theta, cases[i].after1, 1e-6, 0, "%s after reset", l2l_opt_kind_name(cases[i].kind));
        l2l_optimizer_free(&o);
    }
    l2l_optimizer o;
    l2l_error err;
    const l2l_opt_spec negative = {L2L_OPT_KIND_SGD, -1.0f, NULL}, unknown = {(l2l_opt_kind)9, 0.1f, NULL};
    assert_int_equal(l2l_optimizer_create(&o, &negative, 1, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "learning rate"));
    l2l_optimizer_free(&o); /* safe after a failed create */
    assert_int_equal(l2l_optimizer_create(&o, &unknown, 1, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "unknown optimizer"));
    assert_int_equal(l2l_opt_kind_parse("adam"), L2L_OPT_KIND_ADAM);
    assert_int_equal(l2l_opt_kind_parse("nag-floor"), L2L_OPT_KIND_NAG_FLOOR);
    assert_int_equal(l2l_opt_kind_parse("lstm"), -1); /* a checkpoint, not a name */
    assert_int_equal(l2l_opt_kind_parse("adamw"), -1);
}

static void check_quadratic_gradient(int deepmind)
{
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {4, 3, deepmind};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    assert_int_equal(task.n, 12);
    EXPECT_CLOSE(task.grad_scale, deepmind ? 1.0 : 1.0 / 3, 1e-7, 0, "grad_scale");
    l2l_rng rng;
    l2l_rng_seed(&rng, 5, 0);
    float theta[12], grad[12], g2[12];
    task.sample(task.ctx, &rng, theta);
    for (int i = 0; i < 12; i++) theta[i] = (float)l2l_rng_normal(&rng); /* away from theta0 */
    task.loss_grad(task.ctx, theta, grad, &rng);
    /* the true gradient of the (batch-mean) loss is grad_scale * grad */
    for (int i = 0; i < 12; i++) {
        const float h = 1e-2f, saved = theta[i];
        theta[i] = saved + h;
        double fp = task.loss_grad(task.ctx, theta, g2, &rng);
        theta[i] = saved - h;
        double fm = task.loss_grad(task.ctx, theta, g2, &rng);
        theta[i] = saved;
        /* f is quadratic, so the central difference is exact up to float rounding */
        EXPECT_CLOSE(task.grad_scale * grad[i], (fp - fm) / (2 * h), 2e-3, 2e-3,
                     "%s quadratic d/dtheta[%d]", deepmind ? "deepmind" : "paper", i);
    }
    l2l_task_free(&task);
}

static void test_quadratic_gradient(void **state)
{
    (void)state;
    check_quadratic_gradient(0);
    check_quadratic_gradient(1);
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config bad = {0, 1, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &bad, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "dimension"));
}

/* A batch of two problems is the two side by side: mean loss, each block its own gradient. */
static void test_task_batch(void **state)
{
    (void)state;
    l2l_error err;
    l2l_quadratic_config qc = {3, 2, 0};
    l2l_task kids[2], single, batch;
    assert_int_equal(l2l_task_quadratic_create(&kids[0], &qc, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_quadratic_create(&kids[1], &qc, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_quadratic_create(&single, &qc, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_batch_create(&batch, kids, 2, &err), L2L_STATUS_OK);
    assert_null(kids[0].ctx); /* ownership moved */
    assert_int_equal(batch.n, 12);
    EXPECT_CLOSE(batch.grad_scale, single.grad_scale / 2, 1e-9, 0, "batch grad_scale");
    l2l_rng r1, r2;
    l2l_rng_seed(&r1, 9, 0);
    float tb[12], gb[12], t1[6], g1[6];
    batch.sample(batch.ctx, &r1, tb);
    double fb = batch.loss_grad(batch.ctx, tb, gb, &r1), fs = 0;
    for (int i = 0; i < 2; i++) { /* problem i is the (i+1)-th draw of the same stream */
        l2l_rng_seed(&r2, 9, 0);
        for (int k = 0; k <= i; k++) single.sample(single.ctx, &r2, t1);
        for (int j = 0; j < 6; j++) EXPECT_CLOSE(tb[6 * i + j], t1[j], 0, 0, "theta0 block %d[%d]", i, j);
        fs += single.loss_grad(single.ctx, t1, g1, &r2) / 2;
        for (int j = 0; j < 6; j++) EXPECT_CLOSE(gb[6 * i + j], g1[j], 0, 0, "grad block %d[%d]", i, j);
    }
    EXPECT_CLOSE(fb, fs, 1e-12, 1e-12, "batch loss is the mean");
    l2l_task_free(&batch);
    l2l_task_free(&single);
    assert_int_equal(l2l_task_batch_create(&batch, kids, 0, &err), L2L_STATUS_ARG);

    /* Children of different sizes: a 3-dim and a 2-dim quadratic, blocks of 3 and 2. */
    l2l_quadratic_config q3 = {3, 1, 0}, q2 = {2, 1, 0};
    l2l_task a3, a2;
    assert_int_equal(l2l_task_quadratic_create(&kids[0], &q3, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_quadratic_create(&kids[1], &q2, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_quadratic_create(&a3, &q3, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_quadratic_create(&a2, &q2, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_task_batch_create(&batch, kids, 2, &err), L2L_STATUS_OK);
    assert_int_equal(batch.n, 5);
    float tm[5], gm[5], t3[3], g3[3], t2[2], g2[2];
    l2l_rng_seed(&r1, 4, 0);
    batch.sample(batch.ctx, &r1, tm);
    double fm = batch.loss_grad(batch.ctx, tm, gm, &r1);
    l2l_rng_seed(&r2, 4, 0);
    a3.sample(a3.ctx, &r2, t3);
    a2.sample(a2.ctx, &r2, t2);
    double f3 = a3.loss_grad(a3.ctx, t3, g3, &r2), f2 = a2.loss_grad(a2.ctx, t2, g2, &r2);
    for (int j = 0; j < 3; j++) EXPECT_CLOSE(gm[j], g3[j], 0, 0, "mixed grad block 0[%d]", j);
    for (int j = 0; j < 2; j++) EXPECT_CLOSE(gm[3 + j], g2[j], 0, 0, "mixed grad block 1[%d]", j);
    EXPECT_CLOSE(fm, (f3 + f2) / 2, 1e-12, 1e-12, "mixed batch loss is the mean");
    assert_non_null(strstr(batch.name, "mix of 2"));
    l2l_task_free(&batch);
    l2l_task_free(&a3);
    l2l_task_free(&a2);
}

static int keep_progress(const l2l_train_progress *p, void *ctx)
{
    *(l2l_train_progress *)ctx = *p;
    return 0;
}

static void test_quadratic_sampling(void **state)
{
    (void)state;
    /* paper: W, y, theta0 ~ N(0, 1); deepmind: W, y ~ U[0, 1), theta0 ~ N(0, 0.01²) */
    for (int dm = 0; dm < 2; dm++) {
        l2l_task task;
        l2l_error err;
        l2l_quadratic_config qc = {10, 200, dm};
        assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
        l2l_rng rng;
        l2l_rng_seed(&rng, 1, 2);
        float *theta = calloc(task.n, sizeof(float));
        task.sample(task.ctx, &rng, theta);
        double s = 0, s2 = 0;
        for (size_t i = 0; i < task.n; i++) s += theta[i], s2 += (double)theta[i] * theta[i];
        double mean = s / task.n, sd = sqrt(s2 / task.n - mean * mean);
        EXPECT_CLOSE(sd, dm ? 0.01 : 1.0, 0, 0.1, "std of theta0 (deepmind=%d)", dm);
        EXPECT_CLOSE(mean, 0, dm ? 0.002 : 0.1, 0, "mean of theta0 (deepmind=%d)", dm);
        free(theta);
        l2l_task_free(&task);
    }
}

static void test_evaluate_and_tune(void **state)
{
    (void)state;
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {10, 1, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    enum { R = 6, S = 30 };
    double a[R * (S + 1)], b[R * (S + 1)];
    const l2l_eval_config test = {R, S, 7, L2L_STREAM_TEST}, valid = {R, S, 7, L2L_STREAM_VALID};
    const l2l_opt_spec adam = {L2L_OPT_KIND_ADAM, 0.1f, NULL}, sgd = {L2L_OPT_KIND_SGD, 0.01f, NULL};
    assert_int_equal(l2l_evaluate(&task, &adam, &test, a, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_evaluate(&task, &sgd, &test, b, &err), L2L_STATUS_OK);
    for (int r = 0; r < R; r++) { /* same problems for every optimizer: same f(theta_0) */
        assert_true(a[r * (S + 1)] == b[r * (S + 1)]);
        assert_true(a[r * (S + 1) + S] < a[r * (S + 1)]); /* Adam made progress */
    }
    assert_true(a[0] != a[S + 1]); /* and different problems per run */
    /* a divergent learning rate gives +Inf, never NaN */
    const l2l_opt_spec divergent = {L2L_OPT_KIND_SGD, 1e5f, NULL};
    assert_int_equal(l2l_evaluate(&task, &divergent, &test, b, &err), L2L_STATUS_OK);
    assert_true(isinf(b[S]));
    const l2l_eval_config no_runs = {0, S, 7, L2L_STREAM_TEST};
    assert_int_equal(l2l_evaluate(&task, &sgd, &no_runs, b, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "runs"));

    float lrs[32];
    int n = l2l_tune_grid(lrs, 32);
    assert_true(n >= 10 && lrs[0] <= 1e-4f && lrs[n - 1] >= 3.0f);
    float lr;
    double best;
    assert_int_equal(l2l_tune(&task, L2L_OPT_KIND_SGD, &valid, &lr, &best, &err), L2L_STATUS_OK);
    /* the chosen rate beats its neighbours on the grid */
    for (int i = 0; i < n; i++) {
        if (lrs[i] == lr) continue;
        double c[R * (S + 1)], m = 0;
        const l2l_opt_spec other = {L2L_OPT_KIND_SGD, lrs[i], NULL};
        assert_int_equal(l2l_evaluate(&task, &other, &valid, c, &err), L2L_STATUS_OK);
        for (int r = 0; r < R; r++) m += c[r * (S + 1) + S] / R;
        assert_true(!(m < best));
    }
    l2l_task_free(&task);
}

static int count_epochs(const l2l_train_progress *p, void *ctx)
{
    *(int *)ctx = p->epoch;
    assert_true(isfinite(p->train_loss));
    return 0;
}

static void train_once(uint64_t seed, float *phi_out)
{
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {10, 16, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    l2l_lstm net;
    l2l_lstm_config lc = {.layers = 2, .hidden = 20, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1.0f};
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, L2L_STREAM_INIT);
    l2l_lstm_init(&net, &rng);
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    tc.epochs = 12;
    tc.steps = 20;
    tc.unroll = 5;
    tc.eval_every = 4;
    tc.n_valid = 4;
    tc.lr = 3e-3f;
    tc.seed = seed;
    int epochs = 0;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, count_epochs, &epochs, &err), L2L_STATUS_OK);
    assert_int_equal(epochs, 12);
    memcpy(phi_out, net.phi, net.n_params * sizeof(float));
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    static float a[5281], b[5281], c[5281], d[5281];
    train_once(3, a);
    train_once(3, b);
    train_once(4, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
#ifdef _OPENMP /* and whatever the thread count: the meta-gradient is summed in a fixed order */
    int threads = omp_get_max_threads();
    omp_set_num_threads(threads == 1 ? 2 : 1);
    train_once(3, d);
    omp_set_num_threads(threads);
    assert_memory_equal(a, d, sizeof a);
#endif
}

static void test_train_config_errors(void **state)
{
    (void)state;
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {2, 2, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    l2l_lstm net;
    l2l_lstm_config lc = {.layers = 1, .hidden = 4, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1.0f};
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    tc.steps = 30, tc.unroll = 20;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "multiple"));
    l2l_train_config_default(&tc);
    tc.lr = -1;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    l2l_train_config_default(&tc);
    tc.clip = -1;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "clip"));
    l2l_train_config_default(&tc);
    tc.estimator = (l2l_estimator)7;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "estimator"));
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

/* Mean squared difference between the learned optimizer's updates and SGD's (lr) along
 * the learned optimizer's own path on 4 quadratics of 20 steps. */
static double distance_to_sgd(const l2l_lstm *net, l2l_task *task, float lr)
{
    l2l_error err;
    l2l_optimizer o;
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, net};
    assert_int_equal(l2l_optimizer_create(&o, &spec, task->n, &err), L2L_STATUS_OK);
    float *theta = calloc(task->n, sizeof(float)), *before = calloc(task->n, sizeof(float));
    float *grad = calloc(task->n, sizeof(float));
    double d = 0;
    l2l_rng rng;
    l2l_rng_seed(&rng, 77, 0);
    for (int r = 0; r < 4; r++) {
        task->sample(task->ctx, &rng, theta);
        l2l_optimizer_reset(&o);
        for (int t = 0; t < 20; t++) {
            task->loss_grad(task->ctx, theta, grad, &rng);
            memcpy(before, theta, task->n * sizeof(float));
            l2l_optimizer_step(&o, grad, theta);
            for (size_t i = 0; i < task->n; i++) {
                double e = (theta[i] - before[i]) - (-lr * grad[i]);
                d += e * e / (4.0 * 20 * task->n);
            }
        }
    }
    free(theta), free(before), free(grad);
    l2l_optimizer_free(&o);
    return d;
}

/* Imitation: epochs of imitating SGD bring the learned optimizer's updates close to
 * SGD's, far closer than the fresh optimizer's; a bad teacher is refused. */
static void test_imitation(void **state)
{
    (void)state;
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {10, 8, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    l2l_lstm net;
    l2l_lstm_config lc = {.layers = 1, .hidden = 8, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 0.1f};
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, 4, L2L_STREAM_INIT);
    l2l_lstm_init(&net, &rng);
    const float lr = 0.005f; /* SGD's steps (~0.05) within the optimizer's output range */
    double d0 = distance_to_sgd(&net, &task, lr);
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    tc.epochs = 150, tc.steps = 20, tc.unroll = 20, tc.eval_every = 0, tc.lr = 0.01f;
    tc.estimator = L2L_ESTIMATOR_IMITATE, tc.teacher = (l2l_opt_spec){L2L_OPT_KIND_SGD, lr, NULL};
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_OK);
    double d1 = distance_to_sgd(&net, &task, lr);
    printf("    mean squared distance to SGD's updates: %.3g fresh, %.3g after imitation\n", d0, d1);
    assert_true(d1 < 0.01 * d0);
    tc.teacher.lr = 0;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "imitation"));
    tc.teacher = (l2l_opt_spec){L2L_OPT_KIND_LSTM, lr, &net}; /* a teacher is hand-written */
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "imitation"));
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

/* The meta-loss sum_{t=1..steps} f(theta_t) of one run, written out with the public
 * optimizer interface: the truth for the ES estimate. */
static double run_loss(const l2l_lstm *net, l2l_task *task, const float *theta0, l2l_rng rng, int steps)
{
    l2l_error err;
    l2l_optimizer o;
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, net};
    assert_int_equal(l2l_optimizer_create(&o, &spec, task->n, &err), L2L_STATUS_OK);
    float theta[8], grad[8];
    memcpy(theta, theta0, task->n * sizeof(float));
    double L = 0;
    for (int t = 0; t <= steps; t++) {
        double f = task->loss_grad(task->ctx, theta, grad, &rng);
        if (t > 0) L += f;
        if (t < steps) l2l_optimizer_step(&o, grad, theta);
    }
    l2l_optimizer_free(&o);
    return L;
}

/* Evolution strategies: with many pairs and a small sigma the estimate is the gradient of
 * the run's meta-loss (central differences, second derivatives included); meta-training
 * with it improves the optimizer; bad settings are refused. */
static void test_evolution_strategies(void **state)
{
    (void)state;
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {3, 1, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    l2l_lstm net; /* a linear map of the gradient: 2 weights, smooth in phi */
    l2l_lstm_config lc = {.layers = 0, .hidden = 0, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 0.1f};
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    net.phi[0] = -0.5f, net.phi[1] = 0.05f;
    enum { STEPS = 5, PAIRS = 4000, EPOCH_SEED = 6 };
    /* the optimizee and minibatches the estimator draws for the epoch of EPOCH_SEED */
    l2l_rng mb, noise;
    float theta0[3];
    l2l_meta_child_rng(EPOCH_SEED, 0, &mb);
    task.sample(task.ctx, &mb, theta0);
    l2l_rng_seed(&noise, 8, 0);
    double fd[2];
    for (int i = 0; i < 2; i++) {
        const float h = 1e-3f, saved = net.phi[i];
        net.phi[i] = saved + h;
        double lp = run_loss(&net, &task, theta0, mb, STEPS);
        net.phi[i] = saved - h;
        double lm = run_loss(&net, &task, theta0, mb, STEPS);
        net.phi[i] = saved;
        fd[i] = (lp - lm) / (2 * h);
    }
    l2l_train_config ec; /* the estimator as meta-training creates it */
    l2l_train_config_default(&ec);
    ec.steps = STEPS, ec.estimator = L2L_ESTIMATOR_ES, ec.es.pairs = PAIRS, ec.es.sigma = 1e-3f;
    const l2l_meta_batch batch = {&task, 1, &l2l_comm_one};
    l2l_es es = {0};
    assert_int_equal(l2l_estimator_es.create(&es, &net, &batch, &ec, &err), L2L_STATUS_OK);
    *l2l_estimator_es.stream(&es) = noise;
    double curve[STEPS], L = 0;
    l2l_es_rollout(&es, &net, 0, theta0, mb, curve);
    for (int t = 0; t < STEPS; t++) L += curve[t];
    EXPECT_CLOSE(L, run_loss(&net, &task, theta0, mb, STEPS), 1e-9, 1e-6, "rollout meta-loss");
    float g[2] = {0, 0};
    double loss = 0;
    l2l_estimator_es.begin_epoch(&es, EPOCH_SEED);
    assert_int_equal(l2l_estimator_es.gradient(&es, &net, 0, g, &loss, &err), L2L_STATUS_OK);
    for (int u = 0; u < 2 * PAIRS; u++) /* every pair was used: no run diverged */
        for (int t = 0; t < STEPS; t++)
            if (!isfinite(((const double *)l2l_share_at(&es.curves, u))[t])) fail_msg("run %d diverged", u);
    /* sigma is small: the perturbed runs' mean loss is phi's own */
    EXPECT_CLOSE(loss / STEPS, run_loss(&net, &task, theta0, mb, STEPS) / STEPS, 0, 1e-3,
                 "mean f of the ES runs");
    /* the estimate's relative standard error is about sqrt((P + 1) / PAIRS) = 2.7 % */
    double num = 0, den = 0;
    for (int i = 0; i < 2; i++) num += (g[i] - fd[i]) * (g[i] - fd[i]), den += fd[i] * fd[i];
    printf("    ES (%d pairs) %.5g %.5g, finite differences %.5g %.5g\n", PAIRS, g[0], g[1], fd[0], fd[1]);
    assert_true(sqrt(num / den) < 0.1);
    l2l_estimator_es.free(&es);

    /* meta-training with it: the validated meta-objective improves on the start */
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    tc.epochs = 60, tc.steps = 10, tc.unroll = 10, tc.eval_every = 10, tc.n_valid = 8, tc.lr = 0.01f;
    tc.estimator = L2L_ESTIMATOR_ES, tc.es.pairs = 4, tc.es.sigma = 0.01f;
    l2l_train_progress last;
    net.phi[0] = 0.0f, net.phi[1] = 0.0f; /* no update at all: f stays where it starts */
    double curves[8 * 11], start = 0; /* the validation score of phi = 0, as meta-training scores it */
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, &net};
    const l2l_eval_config valid = {8, 10, tc.seed, L2L_STREAM_VALID};
    assert_int_equal(l2l_evaluate(&task, &spec, &valid, curves, &err), L2L_STATUS_OK);
    for (int r = 0; r < 8; r++)
        for (int t = 1; t <= 10; t++) start += curves[r * 11 + t] / 80;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, keep_progress, &last, &err), L2L_STATUS_OK);
    printf("    validation: %.4g for phi = 0, %.4g after 60 ES epochs\n", start, last.best_valid);
    assert_true(last.best_valid < 0.5 * start);
    tc.es.sigma = 0;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "evolution strategies"));
    tc.es.sigma = 0.01f, tc.es.pairs = 0;
    assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "evolution strategies"));
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

/* An optimizer that blows up: the NaN is reported with its epoch, and phi stays finite
 * and is the start. With ES every pair of runs diverges, which leaves no estimate: an
 * error too, not a silent zero update. */
static void test_divergence_is_reported(void **state)
{
    (void)state;
    l2l_task task;
    l2l_error err;
    l2l_quadratic_config qc = {10, 4, 0};
    assert_int_equal(l2l_task_quadratic_create(&task, &qc, &err), L2L_STATUS_OK);
    l2l_lstm net;
    l2l_lstm_config lc = {.layers = 0, .hidden = 0, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1.0f};
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    for (int es = 0; es < 2; es++) {
        net.phi[0] = 50.0f; /* update = 50 x gradient: theta grows ~1000x per step */
        l2l_train_config tc;
        l2l_train_config_default(&tc);
        tc.epochs = 3, tc.eval_every = 1, tc.n_valid = 2;
        if (es) tc.estimator = L2L_ESTIMATOR_ES, tc.es.pairs = 2, tc.es.sigma = 0.01f;
        assert_int_equal(l2l_meta_train(&net, &task, &tc, NULL, NULL, &err), L2L_STATUS_NUMERIC);
        assert_non_null(strstr(err.msg, "epoch 1"));
        assert_non_null(strstr(err.msg, es ? "all 2 pairs" : "non-finite"));
        assert_true(isfinite(net.phi[0]) && isfinite(net.phi[1]));
        EXPECT_CLOSE(net.phi[0], 50.0, 0, 0, "phi is the best validated one (the start, es=%d)", es);
    }
    l2l_lstm_free(&net);
    l2l_task_free(&task);
}

/* A task whose loss falls 10-fold every other step, whatever theta: 1 at the start, 1e-10
 * at step 20; its gradient is zero, so phi never moves and no epoch can diverge. */
static void falling_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    (void)rng;
    *(int *)ctx = 0;
    theta0[0] = theta0[1] = 1.0f;
}

static double falling_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)theta, (void)rng;
    grad[0] = grad[1] = 0.0f;
    return pow(10.0, -0.5 * (*(int *)ctx)++);
}

/* Epoch 1's training loss (the mean over a run's steps) is checked against the starting
 * phi's validation loss over every step, not against its selection score: selecting by
 * the final loss, that is 1e-10 here, and the run's mean of 0.02 would read as a
 * million-fold blow-up (it did, on two-class conv nets from an imitation warm start). */
static void test_no_divergence_from_a_final_score(void **state)
{
    (void)state;
    int calls = 0;
    l2l_task task = {.n = 2, .grad_scale = 1, .ctx = &calls, .sample = falling_sample,
                     .loss_grad = falling_loss_grad, .name = "falling"};
    l2l_lstm net;
    l2l_error err;
    l2l_lstm_config lc = {.layers = 0, .hidden = 0, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1.0f};
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    for (int final = 0; final < 2; final++) {
        net.phi[0] = 1.0f;
        l2l_train_config tc;
        l2l_train_config_default(&tc);
        tc.epochs = 2, tc.steps = 20, tc.unroll = 5, tc.eval_every = 1, tc.n_valid = 2;
        tc.selection = final ? L2L_SELECTION_FINAL : L2L_SELECTION_MEAN;
        l2l_status st = l2l_meta_train(&net, &task, &tc, NULL, NULL, &err);
        if (st) fail_msg("selecting by the %s loss: %s", final ? "final" : "mean", err.msg);
    }
    l2l_lstm_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baselines_by_hand),
        cmocka_unit_test(test_quadratic_gradient),
        cmocka_unit_test(test_quadratic_sampling),
        cmocka_unit_test(test_task_batch),
        cmocka_unit_test(test_evaluate_and_tune),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_train_config_errors),
        cmocka_unit_test(test_divergence_is_reported),
        cmocka_unit_test(test_no_divergence_from_a_final_score),
        cmocka_unit_test(test_imitation),
        cmocka_unit_test(test_evolution_strategies),
    };
    return cmocka_run_group_tests_name("optimizers", tests, NULL, NULL);
}
