/* Optimizers by parameter group: a net with G LSTMs runs group g's on the coordinates a
 * task puts in group g. The grouped kernels are the plain ones routed tile by tile, so
 * every check here holds a grouped net against G separate one-group nets (whose kernels
 * test_lstm.c holds to finite differences and to a double-precision reference): the same
 * updates bit for bit, the same meta-gradient up to summation order. Then the tasks that
 * declare groups (conv nets, batches of them), the checks that refuse a mismatch, the
 * checkpoint (prefixed names, the "groups" key, bad values refused) and meta-training. */
#include <math.h>
#include <string.h>

#include "conv_testutil.h"
#include "io/safetensors.h"
#include "lstm/lstm.h"
#include "st_testutil.h"

#define G 3
#define N 517

static l2l_lstm_config grouped_cfg(int groups)
{
    l2l_lstm_config cfg = {.layers = 2, .hidden = 20, .preproc = L2L_PREPROC_LOGSIGN, .p = 10.0f, .scale = 0.1f,
                           .groups = groups};
    static const char *const names[] = {"kernels", "other", "third", "fourth"};
    for (int g = 0; g < groups; g++) snprintf(cfg.group_names[g], L2L_GROUP_NAME, "%s", names[g]);
    return cfg;
}

static void make_grouped(l2l_lstm *net, int groups, uint64_t seed)
{
    l2l_lstm_config cfg = grouped_cfg(groups);
    l2l_error err;
    if (l2l_lstm_create(net, &cfg, &err)) fail_msg("create: %s", err.msg);
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, L2L_STREAM_INIT);
    l2l_lstm_init(net, &rng);
}

/* Group g of a grouped net as a one-group net of its own (its slice of phi). */
static void group_net(const l2l_lstm *net, int g, l2l_lstm *out)
{
    l2l_lstm_config cfg = net->cfg;
    cfg.groups = 1;
    l2l_error err;
    if (l2l_lstm_create(out, &cfg, &err)) fail_msg("create: %s", err.msg);
    memcpy(out->phi, net->phi + (size_t)g * out->n_params, out->n_params * sizeof(float));
}

/* A group map of runs of random lengths 1..150 (many partial tiles, every group twice or
 * more), and its coordinates by group. */
static void make_groups(uint8_t *group, size_t n, l2l_rng *rng)
{
    for (size_t i = 0, run = 0; i < n; run++) {
        const int g = (int)(run % G);
        const size_t len = 1 + l2l_rng_below(rng, 150);
        for (size_t k = 0; k < len && i < n; k++) group[i++] = (uint8_t)g;
    }
}

static size_t gather(const float *src, const uint8_t *group, int g, float *dst)
{
    size_t m = 0;
    for (size_t i = 0; i < N; i++)
        if (group[i] == g) dst[m++] = src[i];
    return m;
}

static void test_layout_and_init(void **state)
{
    (void)state;
    l2l_lstm one, three;
    make_grouped(&one, 0, 4);
    make_grouped(&three, G, 4);
    assert_int_equal(one.cfg.groups, 1); /* 0 reads as 1 */
    assert_int_equal(three.n_params, G * one.n_params);
    /* group 0 gets exactly the draws a one-group net gets; later groups differ */
    assert_memory_equal(three.phi, one.phi, one.n_params * sizeof(float));
    assert_true(memcmp(three.phi + one.n_params, one.phi, one.n_params * sizeof(float)) != 0);
    assert_ptr_equal(three.w[1].layer[0].w_ih, three.phi + one.n_params);
    l2l_tensor_desc td[L2L_MAX_TENSORS];
    const int nt = l2l_lstm_tensors(&three.cfg, td), per = 4 * 2 + 2;
    assert_int_equal(nt, G * per);
    assert_string_equal(td[0].name, "kernels.lstm1.weight_ih");
    assert_string_equal(td[per].name, "other.lstm1.weight_ih");
    assert_string_equal(td[G * per - 1].name, "third.out.bias");
    assert_int_equal(td[per].offset, one.n_params);
    assert_int_equal(l2l_lstm_tensors(&one.cfg, td), per);
    assert_string_equal(td[0].name, "lstm1.weight_ih"); /* no prefix without groups */
    l2l_lstm_free(&one);
    l2l_lstm_free(&three);
}

static void test_bad_configs(void **state)
{
    (void)state;
    l2l_error err;
    l2l_lstm net;
    struct {
        int groups;
        const char *names[2], *phrase;
    } bad[] = {{5, {"a", "b"}, "groups must be 0..4"},
               {2, {"a", "a"}, "both named 'a'"},
               {2, {"a", ""}, "must be 1..15 characters"},
               {2, {"a", "Kernels"}, "must be 1..15 characters"},
               {2, {"a", "b.c"}, "must be 1..15 characters"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        l2l_lstm_config cfg = grouped_cfg(0);
        cfg.groups = bad[i].groups;
        for (int g = 0; g < 2; g++) snprintf(cfg.group_names[g], L2L_GROUP_NAME, "%s", bad[i].names[g]);
        assert_int_equal(l2l_lstm_create(&net, &cfg, &err), L2L_STATUS_ARG);
        if (!strstr(err.msg, bad[i].phrase)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].phrase);
    }
}

/* Several steps of the grouped optimizer give bit for bit the updates of each group's own
 * net on that group's coordinates (an update does not depend on theta: each is taken
 * from theta = 0). */
static void test_step_is_each_groups_net(void **state)
{
    (void)state;
    l2l_lstm net, part[G];
    make_grouped(&net, G, 9);
    for (int g = 0; g < G; g++) group_net(&net, g, &part[g]);
    l2l_rng rng;
    l2l_rng_seed(&rng, 5, 0);
    uint8_t group[N];
    make_groups(group, N, &rng);
    l2l_error err;
    l2l_optimizer whole, sep[G];
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, &net};
    assert_int_equal(l2l_optimizer_create_groups(&whole, &spec, N, group, &err), L2L_STATUS_OK);
    size_t count[G];
    float grad[N], upd[N], gs[N], su[N], sub[N];
    for (int g = 0; g < G; g++) {
        count[g] = gather(grad, group, g, sub);
        assert_true(count[g] > 64); /* several tiles, and partial ones */
        const l2l_opt_spec ps = {L2L_OPT_KIND_LSTM, 0, &part[g]};
        assert_int_equal(l2l_optimizer_create(&sep[g], &ps, count[g], &err), L2L_STATUS_OK);
    }
    for (int step = 0; step < 5; step++) {
        for (size_t i = 0; i < N; i++) grad[i] = (float)(l2l_rng_normal(&rng) * exp(-8 * l2l_rng_uniform(&rng)));
        memset(upd, 0, sizeof upd);
        l2l_optimizer_step(&whole, grad, upd);
        for (int g = 0; g < G; g++) {
            gather(grad, group, g, gs);
            memset(su, 0, sizeof su);
            l2l_optimizer_step(&sep[g], gs, su);
            gather(upd, group, g, sub);
            assert_memory_equal(sub, su, count[g] * sizeof(float));
        }
    }
    l2l_optimizer_free(&whole);
    for (int g = 0; g < G; g++) l2l_optimizer_free(&sep[g]), l2l_lstm_free(&part[g]);
    l2l_lstm_free(&net);
}

/* f = 1/N sum_i a_i (theta_i - 1)², coordinates independent, so any subset of them is a
 * task of its own with the same per-coordinate gradients. */
typedef struct {
    size_t n;
    float a[N];
} diag;

static double diag_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)rng;
    const diag *d = ctx;
    double f = 0;
    for (size_t i = 0; i < d->n; i++) {
        const double e = theta[i] - 1.0;
        f += d->a[i] * e * e;
        grad[i] = (float)(2 * d->a[i] * e);
    }
    return f / N;
}

static void diag_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    const diag *d = ctx;
    for (size_t i = 0; i < d->n; i++) theta0[i] = (float)l2l_rng_normal(rng);
}

/* One unroll of the grouped net gives, for each group, the meta-gradient that the
 * group's own net gets on that group's coordinates alone. */
static void test_unroll_gradient_is_each_groups(void **state)
{
    (void)state;
    enum { T = 5 };
    l2l_lstm net;
    make_grouped(&net, G, 11);
    l2l_rng rng;
    l2l_rng_seed(&rng, 6, 0);
    uint8_t group[N];
    make_groups(group, N, &rng);
    diag whole = {.n = N};
    float theta[N];
    for (size_t i = 0; i < N; i++) whole.a[i] = (float)(0.1 + l2l_rng_uniform(&rng)), theta[i] = (float)l2l_rng_normal(&rng);
    l2l_task task = {.n = N, .grad_scale = 1.0f / N, .ctx = &whole, .loss_grad = diag_loss_grad,
                     .n_groups = G, .group = group};
    const l2l_unroll_config uc = {.T = T};
    l2l_error err;
    l2l_lstm_state st;
    l2l_unroll u;
    float *dphi = calloc(net.n_params, sizeof(float)), th[N];
    memcpy(th, theta, sizeof th);
    assert_int_equal(l2l_lstm_state_create(&st, &net, N, group, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_unroll_create(&u, &net, N, group, &uc, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_unroll_run(&u, &net, &task, th, &st, NULL, &rng, dphi, NULL, &err), L2L_STATUS_OK);
    for (int g = 0; g < G; g++) {
        l2l_lstm part;
        group_net(&net, g, &part);
        diag sub = {0};
        float pt[N], pth[N];
        sub.n = gather(whole.a, group, g, sub.a);
        assert_true(sub.n > 64);
        gather(theta, group, g, pt);
        l2l_task ptask = {.n = sub.n, .grad_scale = 1.0f / N, .ctx = &sub, .loss_grad = diag_loss_grad};
        l2l_lstm_state ps;
        l2l_unroll pu;
        float *pd = calloc(part.n_params, sizeof(float));
        assert_int_equal(l2l_lstm_state_create(&ps, &part, sub.n, NULL, &err), L2L_STATUS_OK);
        assert_int_equal(l2l_unroll_create(&pu, &part, sub.n, NULL, &uc, &err), L2L_STATUS_OK);
        assert_int_equal(l2l_unroll_run(&pu, &part, &ptask, pt, &ps, NULL, &rng, pd, NULL, &err), L2L_STATUS_OK);
        gather(th, group, g, pth); /* theta after the unroll, bit for bit */
        assert_memory_equal(pth, pt, sub.n * sizeof(float));
        const float *mine = dphi + (size_t)g * part.n_params;
        double num = 0, den = 0;
        for (size_t i = 0; i < part.n_params; i++)
            num += (mine[i] - pd[i]) * (double)(mine[i] - pd[i]), den += (double)pd[i] * pd[i];
        /* the same sums in another order: float rounding only */
        if (!(den > 0)) fail_msg("group %d: zero meta-gradient (num %g)", g, num);
        EXPECT_CLOSE(sqrt(num / den), 0, 1e-5, 0, "group %d: relative error of its meta-gradient", g);
        assert_true(den > 0);
        free(pd);
        l2l_unroll_free(&pu);
        l2l_lstm_state_free(&ps);
        l2l_lstm_free(&part);
    }
    free(dphi);
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&st);
    l2l_lstm_free(&net);
}

static void test_refusals(void **state)
{
    (void)state;
    l2l_lstm net;
    make_grouped(&net, 2, 1);
    l2l_error err;
    l2l_optimizer o;
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, &net};
    assert_int_equal(l2l_optimizer_create(&o, &spec, 10, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "not told which coordinate"));
    uint8_t group[10] = {0, 0, 1, 1, 2};
    assert_int_equal(l2l_optimizer_create_groups(&o, &spec, 10, group, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "coordinate 4 is in parameter group 2"));
    group[4] = 1;
    assert_int_equal(l2l_optimizer_create_groups(&o, &spec, 10, group, &err), L2L_STATUS_OK);
    l2l_optimizer_free(&o);
    /* hand-written optimizers and a shared LSTM ignore the map */
    const l2l_opt_spec sgd = {L2L_OPT_KIND_SGD, 0.1f, NULL};
    assert_int_equal(l2l_optimizer_create_groups(&o, &sgd, 10, NULL, &err), L2L_STATUS_OK);
    l2l_optimizer_free(&o);

    /* a task without groups, or with other ones */
    diag d = {.n = 10};
    l2l_task task = {.n = 10, .grad_scale = 1, .ctx = &d, .loss_grad = diag_loss_grad, .name = "plain"};
    assert_int_equal(l2l_lstm_check_task(&net, &task, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "(kernels,other), but the task 'plain' declares no parameter groups"));
    task.n_groups = 2, task.group = group;
    snprintf(task.group_names[0], L2L_GROUP_NAME, "kernels");
    snprintf(task.group_names[1], L2L_GROUP_NAME, "rest");
    assert_int_equal(l2l_lstm_check_task(&net, &task, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "declares the groups kernels,rest"));
    const l2l_eval_config ec = {.runs = 1, .steps = 1, .seed = 1, .stream = L2L_STREAM_TEST};
    double loss[2];
    assert_int_equal(l2l_evaluate(&task, &spec, &ec, loss, &err), L2L_STATUS_ARG);
    snprintf(task.group_names[1], L2L_GROUP_NAME, "other");
    assert_int_equal(l2l_lstm_check_task(&net, &task, &err), L2L_STATUS_OK);
    l2l_lstm shared;
    make_grouped(&shared, 0, 1);
    assert_int_equal(l2l_lstm_check_task(&shared, &task, &err), L2L_STATUS_OK);
    l2l_lstm_free(&shared);
    l2l_lstm_free(&net);
}

/* The conv net declares kernels / other at the kernels' end; a batch of conv nets
 * declares the same groups over the concatenation; a batch mixing grouped and ungrouped
 * problems is refused. */
static void test_conv_and_batch_groups(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_images(&ds, 8, 1, 12, 12, 3, 2);
    const l2l_conv_config cfg = conv_cfg(2, 4, 3, 8, 4);
    l2l_conv_tensor tens[L2L_CONV_MAX_TENSORS];
    int nt;
    size_t kernels;
    l2l_error err;
    assert_int_equal(l2l_conv_tensors(&cfg, &ds, tens, &nt, &kernels, &err), L2L_STATUS_OK);
    l2l_task kids[3];
    for (int i = 0; i < 3; i++) create_conv(&kids[i], &cfg, &ds);
    const l2l_task *t = &kids[0];
    assert_int_equal(t->n_groups, 2);
    assert_string_equal(t->group_names[0], "kernels");
    assert_string_equal(t->group_names[1], "other");
    for (size_t i = 0; i < t->n; i++) assert_int_equal(t->group[i], i < kernels ? 0 : 1);
    const size_t n1 = t->n;
    l2l_task batch;
    assert_int_equal(l2l_task_batch_create(&batch, kids, 2, &err), L2L_STATUS_OK);
    assert_int_equal(batch.n_groups, 2);
    assert_string_equal(batch.group_names[1], "other");
    for (size_t i = 0; i < batch.n; i++) assert_int_equal(batch.group[i], i % n1 < kernels ? 0 : 1);
    l2l_task_free(&batch);

    diag d = {.n = 5};
    l2l_task mixed[2] = {kids[2], {.n = 5, .grad_scale = 1, .ctx = &d, .loss_grad = diag_loss_grad, .name = "plain"}};
    assert_int_equal(l2l_task_batch_create(&batch, mixed, 2, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "must declare the same parameter groups: problem 2 ('plain')"));
    l2l_task_free(&mixed[0]); /* still the caller's after a refusal */
    l2l_dataset_free(&ds);
}

/* A grouped net and its training state survive a save and a load: architecture, names,
 * weights; the tensors carry their group's prefix; a file without groups has no key. */
static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    l2l_lstm net, back;
    make_grouped(&net, 2, 7);
    const char *path = tmp("grouped.safetensors");
    save_ok(path, &net, NULL, 0);
    l2l_error err;
    assert_int_equal(l2l_checkpoint_load(path, &back, NULL, NULL, &err), L2L_STATUS_OK);
    assert_int_equal(back.cfg.groups, 2);
    assert_string_equal(back.cfg.group_names[0], "kernels");
    assert_string_equal(back.cfg.group_names[1], "other");
    assert_int_equal(back.n_params, net.n_params);
    assert_memory_equal(back.phi, net.phi, net.n_params * sizeof(float));
    l2l_st_file f;
    assert_int_equal(l2l_st_read(&f, path, &err), L2L_STATUS_OK);
    assert_string_equal(l2l_st_meta_get(&f, "groups"), "kernels,other");
    int found = 0;
    for (int i = 0; i < f.n_tensors; i++) found += strcmp(f.tensors[i].name, "other.lstm2.weight_hh") == 0;
    assert_int_equal(found, 1);
    l2l_st_free(&f);
    /* "groups" is reserved even where it is not written */
    l2l_lstm one;
    make_grouped(&one, 0, 7);
    const l2l_kv mine = {"groups", "x,y"};
    assert_int_equal(l2l_checkpoint_save(tmp("one.safetensors"), &one, &mine, 1, &err), L2L_STATUS_ARG);
    save_ok(tmp("one.safetensors"), &one, NULL, 0);
    assert_int_equal(l2l_st_read(&f, tmp("one.safetensors"), &err), L2L_STATUS_OK);
    assert_null(l2l_st_meta_get(&f, "groups"));
    l2l_st_free(&f);

    /* the training state keeps the groups too */
    l2l_train_state s = {.arch = net.cfg, .n_params = net.n_params, .phi = net.phi, .best = net.phi,
                         .adam_m = net.phi, .adam_v = net.phi, .best_valid = 1, .first_loss = 1};
    l2l_rng_seed(&s.train_rng, 1, 1);
    assert_int_equal(l2l_train_state_save(tmp("state.safetensors"), &s, NULL, 0, &err), L2L_STATUS_OK);
    l2l_train_state r;
    assert_int_equal(l2l_train_state_load(tmp("state.safetensors"), &r, NULL, NULL, &err), L2L_STATUS_OK);
    assert_int_equal(r.arch.groups, 2);
    assert_string_equal(r.arch.group_names[1], "other");
    l2l_train_state_free(&r);
    l2l_lstm_free(&one), l2l_lstm_free(&back), l2l_lstm_free(&net);
}

/* A file whose "groups" is wrong is refused by name. */
static void test_bad_groups_metadata(void **state)
{
    (void)state;
    l2l_lstm net;
    make_grouped(&net, 2, 3);
    l2l_tensor_desc td[L2L_MAX_TENSORS];
    const int nt = l2l_lstm_tensors(&net.cfg, td);
    l2l_st_write_tensor tensors[L2L_MAX_TENSORS];
    for (int i = 0; i < nt; i++) {
        memset(&tensors[i], 0, sizeof tensors[i]);
        tensors[i].name = td[i].name;
        tensors[i].ndim = td[i].ndim;
        tensors[i].shape[0] = td[i].shape[0], tensors[i].shape[1] = td[i].shape[1];
        tensors[i].data = net.phi + td[i].offset;
    }
    const struct {
        const char *groups, *phrase;
    } bad[] = {{"kernels", "at least two"},
               {"kernels,Other", "must be 1..15 characters"},
               {"a,b,c,d,e", "expected 2 to 4 names"},
               {"kernels,kernels", "both named"},
               {"kernels,other,third", "tensor"}}; /* a third group's tensors are missing */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const l2l_st_kv kv[] = {{"format", "l2l-lstm-optimizer"}, {"format_version", "1"}, {"layers", "2"},
                                {"hidden", "20"}, {"preproc", "logsign"}, {"p", "10"}, {"scale", "0.1"},
                                {"gate_order", "ifgo"}, {"n_in", "2"}, {"groups", bad[i].groups}};
        const char *path = tmp("badgroups.safetensors");
        l2l_error err;
        assert_int_equal(l2l_st_save(path, tensors, nt, kv, 10, &err), L2L_STATUS_OK);
        expect_load_error(path, L2L_STATUS_FORMAT, bad[i].phrase);
    }
    l2l_lstm_free(&net);
}

/* Meta-training a grouped net on a grouped task moves every group's weights, resumes to
 * the same bytes, and refuses a task with other groups. */
static void test_meta_train(void **state)
{
    (void)state;
    l2l_lstm net;
    make_grouped(&net, 2, 5);
    diag d = {.n = 64};
    uint8_t group[64];
    for (int i = 0; i < 64; i++) d.a[i] = i < 20 ? 0.05f : 1.0f, group[i] = i < 20 ? 0 : 1;
    l2l_task task = {.n = 64, .grad_scale = 1.0f / 64, .ctx = &d, .sample = diag_sample, .loss_grad = diag_loss_grad, .n_groups = 2,
                     .group = group, .name = "diag"};
    snprintf(task.group_names[0], L2L_GROUP_NAME, "kernels");
    snprintf(task.group_names[1], L2L_GROUP_NAME, "other");
    l2l_train_config cfg;
    l2l_train_config_default(&cfg);
    cfg.epochs = 2, cfg.steps = 10, cfg.unroll = 5, cfg.eval_every = 0;
    l2l_error err;
    for (int e = 0; e < 2; e++) {
        cfg.estimator = e ? L2L_ESTIMATOR_PES : L2L_ESTIMATOR_TBPTT;
        cfg.es.pairs = 2, cfg.es.sigma = 0.01f;
        float *before = malloc(net.n_params * sizeof(float));
        memcpy(before, net.phi, net.n_params * sizeof(float));
        if (l2l_meta_train(&net, &task, &cfg, NULL, NULL, &err)) fail_msg("%s", err.msg);
        const size_t P1 = net.n_params / 2;
        for (int g = 0; g < 2; g++) {
            int moved = 0;
            for (size_t i = 0; i < P1; i++) moved |= before[g * P1 + i] != net.phi[g * P1 + i];
            if (!moved) fail_msg("estimator %d: group %d's weights did not move", e, g);
        }
        free(before);
    }
    task.n_groups = 0;
    assert_int_equal(l2l_meta_train(&net, &task, &cfg, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "declares no parameter groups"));
    l2l_lstm_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_init),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_step_is_each_groups_net),
        cmocka_unit_test(test_unroll_gradient_is_each_groups),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_conv_and_batch_groups),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_bad_groups_metadata),
        cmocka_unit_test(test_meta_train),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
