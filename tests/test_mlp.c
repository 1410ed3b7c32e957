/*
 * The MLP optimizee's behaviour (its gradient is checked in test_mlp_grad.c): the paper's
 * network size and names, minibatches reproducible from the rng state and fresh on every
 * call, sampling, configuration errors, per-network example pools, and, on the fetched
 * MNIST, plain gradient descent lowering the loss.
 */
#include <stdlib.h>
#include <string.h>

#include "mlp_testutil.h"

static void test_paper_net_size_and_name(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_dataset(&ds, 16, 28, 28, 10, 1);
    l2l_mlp_config cfg = {1, 20, L2L_ACTIVATION_SIGMOID, 128, 0.01f, 0};
    l2l_task task;
    create_task(&task, &cfg, &ds);
    assert_int_equal(task.n, 15910); /* 784*20 + 20 + 20*10 + 10 */
    assert_string_equal(task.name, "mlp-784-20-10-sigmoid");
    assert_true(task.grad_scale == 1.0f);
    l2l_task_free(&task);

    cfg.layers = 2;
    cfg.hidden = 40;
    cfg.activation = L2L_ACTIVATION_RELU;
    create_task(&task, &cfg, &ds);
    assert_int_equal(task.n, 784 * 40 + 40 + 40 * 40 + 40 + 40 * 10 + 10);
    assert_string_equal(task.name, "mlp-784-40x2-10-relu");
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

static void test_minibatches(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_dataset(&ds, 500, 28, 28, 10, 2);
    l2l_mlp_config cfg = {1, 20, L2L_ACTIVATION_SIGMOID, 16, 0.01f, 0};
    l2l_task task;
    create_task(&task, &cfg, &ds);
    size_t n = task.n;
    float *theta = calloc(n, sizeof *theta), *g1 = calloc(n, sizeof *g1);
    float *g2 = calloc(n, sizeof *g2);
    assert_true(theta && g1 && g2);
    l2l_rng rng;
    l2l_rng_seed(&rng, 9, 0);
    for (size_t i = 0; i < n; i++) theta[i] = (float)(0.3 * l2l_rng_normal(&rng));

    /* the same rng state gives the same minibatch, bit for bit */
    l2l_rng r1 = rng, r2 = rng;
    double a = task.loss_grad(task.ctx, theta, g1, &r1);
    double b = task.loss_grad(task.ctx, theta, g2, &r2);
    assert_true(a == b);
    assert_memory_equal(g1, g2, n * sizeof *g1);
    /* loss alone (grad NULL) is the same number */
    r2 = rng;
    assert_true(task.loss_grad(task.ctx, theta, NULL, &r2) == a);

    /* successive calls draw fresh minibatches */
    double prev = a;
    for (int call = 0; call < 5; call++) {
        double l = task.loss_grad(task.ctx, theta, g2, &r1);
        if (l == prev) fail_msg("call %d: same loss %.9g as the previous call", call, l);
        if (memcmp(g1, g2, n * sizeof *g1) == 0) fail_msg("call %d: same gradient", call);
        prev = l;
    }
    free(theta);
    free(g1);
    free(g2);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

static void test_sample(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_dataset(&ds, 8, 28, 28, 10, 3);
    l2l_mlp_config cfg = {1, 20, L2L_ACTIVATION_SIGMOID, 8, 0.01f, 0};
    l2l_task task;
    create_task(&task, &cfg, &ds);
    size_t n = task.n;
    float *t1 = calloc(n, sizeof *t1), *t2 = calloc(n, sizeof *t2);
    assert_true(t1 && t2);
    l2l_rng r1, r2;
    l2l_rng_seed(&r1, 4, L2L_STREAM_INIT);
    r2 = r1;
    task.sample(task.ctx, &r1, t1);
    task.sample(task.ctx, &r2, t2);
    assert_memory_equal(t1, t2, n * sizeof *t1);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s += t1[i];
        s2 += (double)t1[i] * t1[i];
    }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    /* mean within 5 standard errors (0.01/sqrt(15910) = 8e-5); sd within 5 % */
    EXPECT_CLOSE(mean, 0.0, 4e-4, 0, "mean of theta0");
    EXPECT_CLOSE(sd, 0.01, 0, 0.05, "sd of theta0");
    task.sample(task.ctx, &r1, t2);
    assert_true(memcmp(t1, t2, n * sizeof *t1) != 0);
    free(t1);
    free(t2);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

static void expect_arg_error(const l2l_mlp_config *cfg, const l2l_dataset *ds,
                             const char *phrase)
{
    l2l_task task;
    l2l_error err = {0};
    l2l_status st = l2l_task_mlp_create(&task, cfg, ds, &err);
    if (st != L2L_STATUS_ARG)
        fail_msg("expected invalid argument for \"%s\", found %s", phrase, l2l_status_name(st));
    if (!strstr(err.msg, phrase)) fail_msg("message lacks \"%s\": %s", phrase, err.msg);
    assert_null(task.ctx);
}

static void test_config_errors(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_dataset(&ds, 8, 6, 6, 3, 4);
    const l2l_mlp_config good = {1, 20, L2L_ACTIVATION_SIGMOID, 8, 0.01f, 0};
    l2l_mlp_config c;
    c = good; c.layers = 0; expect_arg_error(&c, &ds, "0 hidden layers, expected 1..8");
    c = good; c.layers = 9; expect_arg_error(&c, &ds, "9 hidden layers");
    c = good; c.hidden = 0; expect_arg_error(&c, &ds, "0 hidden units, expected 1..4096");
    c = good; c.hidden = 4097; expect_arg_error(&c, &ds, "4097 hidden units");
    c = good; c.batch = 0; expect_arg_error(&c, &ds, "minibatch of 0, expected 1..65536");
    c = good; c.batch = 65537; expect_arg_error(&c, &ds, "minibatch of 65537");
    c = good; c.init_std = 0; expect_arg_error(&c, &ds, "init_std 0");
    c = good; c.init_std = NAN; expect_arg_error(&c, &ds, "init_std");
    c = good; c.init_std = INFINITY; expect_arg_error(&c, &ds, "init_std");
    c = good; c.activation = (l2l_activation)7; expect_arg_error(&c, &ds, "unknown activation 7");

    ds.labels[5] = 3; /* n_classes is 3 */
    expect_arg_error(&good, &ds, "label 5 is 3");
    ds.labels[5] = 0;
    ds.n_classes = 1;
    expect_arg_error(&good, &ds, "1 classes, expected 2..256");
    ds.n_classes = 3;
    size_t n = ds.n;
    ds.n = 0;
    expect_arg_error(&good, &ds, "empty");
    ds.n = n;
    l2l_dataset_free(&ds);
}

/*
 * pool = K: every sampled network trains on K examples of its own. Example i is a
 * one-hot image (pixel i lit), so column i of W1's gradient is non-zero exactly when
 * example i is in the minibatch. A minibatch of 512 draws from K = 5 must light 5
 * columns (missing one has probability < 5 (4/5)^512), the same 5 on every call until
 * the next sample(), and another network must get another pool; pool = 0 reaches
 * beyond 5.
 */
static size_t lit_columns(l2l_task *task, const float *theta, float *g, l2l_rng *rng, int D,
                          int hidden, uint8_t *lit)
{
    task->loss_grad(task->ctx, theta, g, rng);
    size_t count = 0;
    for (int i = 0; i < D; i++) {
        lit[i] = 0;
        for (int j = 0; j < hidden; j++) lit[i] |= g[(size_t)j * D + i] != 0.0f;
        count += lit[i];
    }
    return count;
}

static void test_pool(void **state)
{
    (void)state;
    enum { D = 64, H = 3 };
    l2l_dataset ds;
    make_dataset(&ds, D, 8, 8, 4, 9);
    memset(ds.images, 0, (size_t)D * D);
    for (int i = 0; i < D; i++) ds.images[(size_t)i * D + i] = 255;
    l2l_mlp_config cfg = {1, H, L2L_ACTIVATION_SIGMOID, 512, 0.1f, 5};
    l2l_task task;
    create_task(&task, &cfg, &ds);
    assert_string_equal(task.name, "mlp-64-3-4-sigmoid-pool5");
    float *theta = calloc(task.n, sizeof *theta), *g = calloc(task.n, sizeof *g);
    assert_true(theta && g);
    uint8_t first[D], lit[D];
    l2l_rng rng;
    l2l_rng_seed(&rng, 3, L2L_STREAM_TEST);
    task.sample(task.ctx, &rng, theta);
    assert_int_equal(lit_columns(&task, theta, g, &rng, D, H, first), 5);
    for (int call = 0; call < 3; call++) {
        assert_int_equal(lit_columns(&task, theta, g, &rng, D, H, lit), 5);
        assert_memory_equal(lit, first, D);
    }
    int differs = 0; /* a new network: a new pool (same one has chance 1 / C(64, 5)) */
    task.sample(task.ctx, &rng, theta);
    assert_int_equal(lit_columns(&task, theta, g, &rng, D, H, lit), 5);
    differs = memcmp(lit, first, D) != 0;
    assert_true(differs);
    l2l_task_free(&task);

    cfg.pool = 0; /* the whole data set: 512 draws from 64 light nearly all */
    create_task(&task, &cfg, &ds);
    task.sample(task.ctx, &rng, theta);
    assert_true(lit_columns(&task, theta, g, &rng, D, H, lit) > 5);
    l2l_task_free(&task);

    cfg.pool = D + 1;
    expect_arg_error(&cfg, &ds, "a pool of 65 examples per network, expected 0 (all) or 1..64");
    cfg.pool = -1;
    expect_arg_error(&cfg, &ds, "a pool of -1");
    free(theta);
    free(g);
    l2l_dataset_free(&ds);
}

/* On the fetched MNIST (when present): plain gradient descent lowers the loss. */
static void test_mnist_descends(void **state)
{
    (void)state;
    const char *dir = tu_fetched_mnist();
    l2l_dataset ds;
    l2l_error err = {0};
    if (l2l_mnist_load(&ds, dir, "train", &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    l2l_mlp_config cfg = {1, 20, L2L_ACTIVATION_SIGMOID, 128, 0.01f, 0};
    l2l_task task;
    create_task(&task, &cfg, &ds);
    float *theta = calloc(task.n, sizeof *theta), *g = calloc(task.n, sizeof *g);
    assert_true(theta && g);
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, L2L_STREAM_TEST);
    task.sample(task.ctx, &rng, theta);
    double first = task.loss_grad(task.ctx, theta, g, &rng), last = 0;
    /* ln 10 = 2.3026 at theta ~ N(0, 0.01²) */
    EXPECT_CLOSE(first, log(10.0), 0.02, 0, "initial loss");
    for (int t = 0; t < 300; t++) {
        for (size_t i = 0; i < task.n; i++) theta[i] -= 1.0f * g[i];
        last = task.loss_grad(task.ctx, theta, g, &rng);
    }
    printf("    SGD lr 1: loss %.4f -> %.4f after 300 steps\n", first, last);
    if (!(last < 1.0)) fail_msg("loss %.4f after 300 SGD steps, expected < 1", last);
    free(theta);
    free(g);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_net_size_and_name),
        cmocka_unit_test(test_minibatches),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_mnist_descends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
