/*
 * The conv-net task's behaviour (its gradient is checked in test_conv_grad.c): the paper's
 * network size, name and tensor layout on digits and on CIFAR-shaped images, minibatches
 * reproducible from the rng state and fresh on every call, sampling, configuration and
 * data errors, per-network example pools, and, on the fetched MNIST, plain gradient
 * descent lowering the loss.
 */
#include <stdlib.h>
#include <string.h>

#include "conv_testutil.h"

static void test_paper_net_size_name_layout(void **state)
{
    (void)state;
    l2l_conv_config cfg;
    l2l_conv_config_default(&cfg);
    assert_int_equal(cfg.conv_layers, 3);
    assert_int_equal(cfg.channels, 16);
    assert_int_equal(cfg.kernel, 5);
    assert_int_equal(cfg.fc, 32);
    assert_int_equal(cfg.batch, 128);
    assert_true(cfg.init_std == 0.01f);
    assert_int_equal(cfg.pool, 0);

    static const char *const names[14] = {"conv1.weight", "conv2.weight", "conv3.weight", "conv1.bias",
                                          "bn1.bias",     "conv2.bias",   "bn2.bias",     "conv3.bias",
                                          "bn3.bias",     "fc.weight",    "fc.bias",      "bn_fc.bias",
                                          "out.weight",   "out.bias"};
    /* digits 28x28x1: 28 -> 14 -> 7 -> 4, S = 16 * 4 * 4 = 256; CIFAR 32x32x3: 32 -> 4 */
    const struct {
        int channels, side;
        size_t n, kernels;
        const char *name;
    } shapes[2] = {{1, 28, 21882, 400 + 6400 + 6400, "conv-1x28x28-3x16k5-32-10"},
                   {3, 32, 22682, 1200 + 6400 + 6400, "conv-3x32x32-3x16k5-32-10"}};
    for (int s = 0; s < 2; s++) {
        l2l_dataset ds;
        make_images(&ds, 4, shapes[s].channels, shapes[s].side, shapes[s].side, 10, 1);
        l2l_task task;
        create_conv(&task, &cfg, &ds);
        assert_int_equal(task.n, shapes[s].n);
        assert_string_equal(task.name, shapes[s].name);
        assert_true(task.grad_scale == 1.0f);
        l2l_conv_tensor t[L2L_CONV_MAX_TENSORS];
        int nt;
        size_t kernels, off = 0;
        l2l_error err = {0};
        assert_int_equal(l2l_conv_tensors(&cfg, &ds, t, &nt, &kernels, &err), L2L_STATUS_OK);
        assert_int_equal(nt, 14);
        assert_int_equal(kernels, shapes[s].kernels);
        for (int k = 0; k < nt; k++) {
            assert_string_equal(t[k].name, names[k]);
            assert_int_equal(t[k].offset, off); /* contiguous, in order */
            off += t[k].count;
        }
        assert_int_equal(off, task.n);
        assert_int_equal(t[0].count, 16 * shapes[s].channels * 25);
        assert_int_equal(t[9].count, 32 * 256); /* fc.weight (32, 16 * 4 * 4) */
        l2l_task_free(&task);
        l2l_dataset_free(&ds);
    }
}

static void test_minibatches(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 300, 1, 12, 12, 10, 2);
    l2l_conv_config cfg = conv_cfg(3, 16, 5, 32, 16);
    l2l_task task;
    create_conv(&task, &cfg, &ds);
    const size_t n = task.n;
    float *theta = calloc(n, sizeof *theta), *g1 = calloc(n, sizeof *g1), *g2 = calloc(n, sizeof *g2);
    assert_true(theta && g1 && g2);
    l2l_rng rng;
    l2l_rng_seed(&rng, 9, 0);
    for (size_t i = 0; i < n; i++) theta[i] = (float)(0.3 * l2l_rng_normal(&rng));

    /* the same rng state gives the same minibatch, bit for bit */
    l2l_rng r1 = rng, r2 = rng;
    const double a = task.loss_grad(task.ctx, theta, g1, &r1);
    const double b = task.loss_grad(task.ctx, theta, g2, &r2);
    assert_true(a == b);
    assert_memory_equal(g1, g2, n * sizeof *g1);
    assert_memory_equal(&r1, &r2, sizeof r1);
    /* loss alone (grad NULL) is the same number */
    r2 = rng;
    assert_true(task.loss_grad(task.ctx, theta, NULL, &r2) == a);
    /* successive calls draw fresh minibatches */
    double prev = a;
    for (int call = 0; call < 5; call++) {
        const double l = task.loss_grad(task.ctx, theta, g2, &r1);
        if (l == prev) fail_msg("call %d: same loss %.9g as the previous call", call, l);
        if (memcmp(g1, g2, n * sizeof *g1) == 0) fail_msg("call %d: same gradient", call);
        prev = l;
    }
    /* a second task of the same config gives the same bytes */
    l2l_task other;
    create_conv(&other, &cfg, &ds);
    r1 = rng;
    assert_true(other.loss_grad(other.ctx, theta, g2, &r1) == a);
    assert_memory_equal(g1, g2, n * sizeof *g1);
    l2l_task_free(&other);
    /* a minibatch of one: batch norm of one value per unit gives the shift; all finite */
    l2l_task_free(&task);
    cfg.batch = 1;
    create_conv(&task, &cfg, &ds);
    r1 = rng;
    const double one = task.loss_grad(task.ctx, theta, g1, &r1);
    assert_true(isfinite(one));
    for (size_t i = 0; i < n; i++)
        if (!isfinite(g1[i])) fail_msg("batch of 1: gradient %zu is %g", i, g1[i]);
    free(theta), free(g1), free(g2);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

static void test_sample(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 8, 1, 28, 28, 10, 3);
    l2l_conv_config cfg;
    l2l_conv_config_default(&cfg);
    cfg.batch = 8;
    l2l_task task;
    create_conv(&task, &cfg, &ds);
    const size_t n = task.n;
    float *t1 = calloc(n, sizeof *t1), *t2 = calloc(n, sizeof *t2);
    assert_true(t1 && t2);
    l2l_conv_tensor t[L2L_CONV_MAX_TENSORS];
    int nt;
    l2l_error err = {0};
    assert_int_equal(l2l_conv_tensors(&cfg, &ds, t, &nt, NULL, &err), L2L_STATUS_OK);
    l2l_rng r1, r2;
    l2l_rng_seed(&r1, 4, L2L_STREAM_INIT);
    r2 = r1;
    task.sample(task.ctx, &r1, t1);
    task.sample(task.ctx, &r2, t2);
    assert_memory_equal(t1, t2, n * sizeof *t1);
    /* the shifts start at 0; every other value ~ N(0, 0.01²) */
    double s = 0, s2 = 0;
    size_t m = 0;
    for (int k = 0; k < nt; k++) {
        const int shift = strncmp(t[k].name, "bn", 2) == 0;
        for (size_t i = t[k].offset; i < t[k].offset + t[k].count; i++) {
            if (shift) {
                if (t1[i] != 0.0f) fail_msg("%s[%zu] is %g, expected 0", t[k].name, i - t[k].offset, t1[i]);
                continue;
            }
            s += t1[i], s2 += (double)t1[i] * t1[i], m++;
        }
    }
    assert_int_equal(m, n - 3 * 16 - 32);
    const double mean = s / m, sd = sqrt(s2 / m - mean * mean);
    /* mean within 5 standard errors (0.01 / sqrt(21754) = 7e-5); sd within 5 % */
    EXPECT_CLOSE(mean, 0.0, 3.5e-4, 0, "mean of theta0");
    EXPECT_CLOSE(sd, 0.01, 0, 0.05, "sd of theta0");
    task.sample(task.ctx, &r1, t2);
    assert_true(memcmp(t1, t2, n * sizeof *t1) != 0);
    free(t1), free(t2);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

static void expect_arg_error(const l2l_conv_config *cfg, const l2l_dataset *ds, const char *phrase)
{
    l2l_task task;
    l2l_error err = {0};
    const l2l_status st = l2l_task_conv_create(&task, cfg, ds, &err);
    if (st != L2L_STATUS_ARG) fail_msg("expected invalid argument for \"%s\", found %s", phrase, l2l_status_name(st));
    if (!strstr(err.msg, phrase)) fail_msg("message lacks \"%s\": %s", phrase, err.msg);
    assert_null(task.ctx);
    l2l_conv_tensor t[L2L_CONV_MAX_TENSORS];
    int nt;
    err = (l2l_error){0};
    assert_int_equal(l2l_conv_tensors(cfg, ds, t, &nt, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, phrase));
}

static void test_config_and_data_errors(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 8, 2, 6, 6, 3, 4);
    const l2l_conv_config good = conv_cfg(2, 4, 3, 5, 8);
    l2l_conv_config c;
    c = good, c.conv_layers = 0, expect_arg_error(&c, &ds, "0 convolution layers, expected 1..6");
    c = good, c.conv_layers = 7, expect_arg_error(&c, &ds, "7 convolution layers");
    c = good, c.channels = 0, expect_arg_error(&c, &ds, "0 channels, expected 1..1024");
    c = good, c.channels = 1025, expect_arg_error(&c, &ds, "1025 channels");
    c = good, c.kernel = 4, expect_arg_error(&c, &ds, "kernel side 4, expected an odd number 1..15");
    c = good, c.kernel = 17, expect_arg_error(&c, &ds, "kernel side 17");
    c = good, c.kernel = -1, expect_arg_error(&c, &ds, "kernel side -1");
    c = good, c.fc = 0, expect_arg_error(&c, &ds, "0 fully connected units, expected 1..4096");
    c = good, c.batch = 0, expect_arg_error(&c, &ds, "minibatch of 0, expected 1..65536");
    c = good, c.batch = 65537, expect_arg_error(&c, &ds, "minibatch of 65537");
    c = good, c.init_std = 0, expect_arg_error(&c, &ds, "init_std 0");
    c = good, c.init_std = NAN, expect_arg_error(&c, &ds, "init_std");
    c = good, c.init_std = INFINITY, expect_arg_error(&c, &ds, "init_std");
    c = good, c.pool = 9, expect_arg_error(&c, &ds, "a pool of 9 examples per network, expected 0 (all) or 1..8");
    c = good, c.pool = -1, expect_arg_error(&c, &ds, "a pool of -1");

    ds.labels[5] = 3; /* n_classes is 3 */
    expect_arg_error(&good, &ds, "label 5 is 3");
    ds.labels[5] = 0;
    ds.n_classes = 1;
    expect_arg_error(&good, &ds, "1 classes, expected 2..256");
    ds.n_classes = 3;
    ds.channels = 0;
    expect_arg_error(&good, &ds, "images of 0 channels");
    ds.channels = 2;
    ds.rows = 0;
    expect_arg_error(&good, &ds, "images of 2 x 0 x 6");
    ds.rows = 6;
    const size_t n = ds.n;
    ds.n = 0;
    expect_arg_error(&good, &ds, "empty");
    ds.n = n;
    l2l_dataset_free(&ds);
}

/*
 * pool = 1: every minibatch is B copies of the network's one example, so with the same
 * theta every call gives the same loss whatever the rng draws; the next network gets
 * another example (another loss). pool = 0 draws from the whole set: losses differ.
 */
static void test_pool(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 50, 1, 8, 8, 4, 9);
    l2l_conv_config cfg = conv_cfg(2, 4, 3, 5, 8);
    cfg.pool = 1;
    l2l_task task;
    create_conv(&task, &cfg, &ds);
    assert_string_equal(task.name, "conv-1x8x8-2x4k3-5-4-pool1");
    float *theta = calloc(task.n, sizeof *theta), *g = calloc(task.n, sizeof *g), *fixed = calloc(task.n, sizeof *fixed);
    assert_true(theta && g && fixed);
    l2l_rng rng;
    l2l_rng_seed(&rng, 3, L2L_STREAM_TEST);
    for (size_t i = 0; i < task.n; i++) fixed[i] = (float)(0.3 * l2l_rng_normal(&rng));
    task.sample(task.ctx, &rng, theta);
    const double first = task.loss_grad(task.ctx, fixed, g, &rng);
    for (int call = 0; call < 3; call++) assert_true(task.loss_grad(task.ctx, fixed, g, &rng) == first);
    int other = 0; /* a new network: another example (the same one has chance 1/50 each) */
    for (int k = 0; k < 3 && !other; k++) {
        task.sample(task.ctx, &rng, theta);
        other = task.loss_grad(task.ctx, fixed, g, &rng) != first;
    }
    assert_true(other);
    l2l_task_free(&task);
    cfg.pool = 0;
    create_conv(&task, &cfg, &ds);
    task.sample(task.ctx, &rng, theta);
    const double a = task.loss_grad(task.ctx, fixed, g, &rng);
    assert_true(task.loss_grad(task.ctx, fixed, g, &rng) != a);
    free(theta), free(g), free(fixed);
    l2l_task_free(&task);
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
    l2l_conv_config cfg;
    l2l_conv_config_default(&cfg);
    cfg.batch = 16;
    l2l_task task;
    create_conv(&task, &cfg, &ds);
    float *theta = calloc(task.n, sizeof *theta), *g = calloc(task.n, sizeof *g);
    assert_true(theta && g);
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, L2L_STREAM_TEST);
    task.sample(task.ctx, &rng, theta);
    const double first = task.loss_grad(task.ctx, theta, g, &rng);
    /* ln 10 = 2.3026 with the output layer ~ N(0, 0.01²) */
    EXPECT_CLOSE(first, log(10.0), 0.05, 0, "initial loss");
    /* 40 steps of SGD at 0.2; the last 10 minibatch losses averaged (one minibatch of 16
     * is noisy). Over 8 seeds that mean was 0.76 to 1.15. */
    double last = 0;
    for (int t = 0; t < 40; t++) {
        for (size_t i = 0; i < task.n; i++) theta[i] -= 0.2f * g[i];
        const double l = task.loss_grad(task.ctx, theta, g, &rng);
        if (t >= 30) last += l / 10;
    }
    printf("    SGD lr 0.2, minibatch 16: loss %.4f -> %.4f (mean of steps 31..40)\n", first, last);
    if (!(last < 1.5)) fail_msg("mean loss %.4f over SGD steps 31..40, expected < 1.5", last);
    free(theta), free(g);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_net_size_name_layout),
        cmocka_unit_test(test_minibatches),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_config_and_data_errors),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_mnist_descends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
