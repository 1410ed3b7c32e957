/* l2l_optimizer_state_get/_set: for every kind, an optimizer that takes over another's
 * state mid-run makes bit for bit the steps the original makes; bad states are refused
 * with a message and leave the optimizer unchanged. */
#include <string.h>

#include "testutil.h"

#define N 1037 /* not a multiple of the LSTM's tile, and several tiles */
#define STEPS_BEFORE 7
#define STEPS_AFTER 5

static void random_vec(l2l_rng *rng, float *v, size_t n, double std)
{
    for (size_t i = 0; i < n; i++) v[i] = (float)(std * l2l_rng_normal(rng));
}

static void make_net(l2l_lstm *net)
{
    l2l_error err;
    const l2l_lstm_config cfg = {.layers = 2, .hidden = 20, .preproc = L2L_PREPROC_LOGSIGN, .p = 10.0f, .scale = 0.1f};
    assert_int_equal(l2l_lstm_create(net, &cfg, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, 3, L2L_STREAM_INIT);
    l2l_lstm_init(net, &rng);
}

/* Runs STEPS_BEFORE steps, copies the state into a fresh optimizer, then steps both
 * from copies of theta on the same gradients and compares every bit. */
static void check_round_trip(const l2l_opt_spec *spec)
{
    const char *name = l2l_opt_kind_name(spec->kind);
    l2l_error err;
    l2l_optimizer a, b;
    assert_int_equal(l2l_optimizer_create(&a, spec, N, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_optimizer_create(&b, spec, N, &err), L2L_STATUS_OK);
    const size_t size = l2l_optimizer_state_size(&a);
    const size_t expect = 1 + (spec->kind == L2L_OPT_KIND_SGD ? 0
                               : spec->kind == L2L_OPT_KIND_NAG || spec->kind == L2L_OPT_KIND_RMSPROP ? N
                               : spec->kind == L2L_OPT_KIND_LSTM ? 2 * 2 * 20 * (size_t)N
                               : 2 * (size_t)N);
    if (size != expect) fail_msg("%s: state size expected %zu, found %zu", name, expect, size);
    float *state = l2l_alloc(size * sizeof(float)), *fresh = l2l_alloc(size * sizeof(float));
    float theta_a[N], theta_b[N], grad[N];
    l2l_rng rng;
    l2l_rng_seed(&rng, 11, 0);
    l2l_optimizer_state_get(&a, fresh); /* a new optimizer's state is all zeros */
    for (size_t i = 0; i < size; i++)
        if (fresh[i] != 0) fail_msg("%s: new optimizer's state[%zu] expected 0, found %g", name, i, fresh[i]);
    random_vec(&rng, theta_a, N, 1.0);
    for (int t = 0; t < STEPS_BEFORE; t++) {
        random_vec(&rng, grad, N, t % 2 ? 1e-3 : 1.0); /* large and tiny (nag-floor's floor) */
        l2l_optimizer_step(&a, grad, theta_a);
    }
    l2l_optimizer_state_get(&a, state);
    if (state[0] != STEPS_BEFORE) fail_msg("%s: state[0] (t) expected %d, found %g", name, STEPS_BEFORE, state[0]);
    assert_int_equal(l2l_optimizer_state_set(&b, state, size, &err), L2L_STATUS_OK);
    memcpy(theta_b, theta_a, sizeof theta_a);
    for (int t = 0; t < STEPS_AFTER; t++) {
        random_vec(&rng, grad, N, 0.1);
        l2l_optimizer_step(&a, grad, theta_a);
        l2l_optimizer_step(&b, grad, theta_b);
        for (int i = 0; i < N; i++)
            if (memcmp(&theta_a[i], &theta_b[i], sizeof(float)) != 0)
                fail_msg("%s: step %d after the state copy, theta[%d]: original %.9g, copy %.9g", name,
                         t + 1, i, theta_a[i], theta_b[i]);
    }

    /* Bad states: refused, and the optimizer is unchanged. */
    l2l_optimizer_state_get(&b, state);
    memcpy(fresh, state, size * sizeof(float));
    assert_int_equal(l2l_optimizer_state_set(&b, state, size - 1, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "state of"));
    state[0] = 2.5f;
    assert_int_equal(l2l_optimizer_state_set(&b, state, size, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "whole number"));
    state[0] = -1.0f;
    assert_int_equal(l2l_optimizer_state_set(&b, state, size, &err), L2L_STATUS_ARG);
    state[0] = 3.0f;
    if (size > 1) {
        state[size - 1] = NAN;
        assert_int_equal(l2l_optimizer_state_set(&b, state, size, &err), L2L_STATUS_NUMERIC);
        assert_non_null(strstr(err.msg, "finite"));
    }
    l2l_optimizer_state_get(&b, state);
    if (memcmp(state, fresh, size * sizeof(float)) != 0) fail_msg("%s: a refused state changed the optimizer", name);
    l2l_optimizer_reset(&b); /* and reset zeroes what set wrote */
    l2l_optimizer_state_get(&b, state);
    for (size_t i = 0; i < size; i++)
        if (state[i] != 0) fail_msg("%s: state[%zu] after reset expected 0, found %g", name, i, state[i]);
    l2l_free(state);
    l2l_free(fresh);
    l2l_optimizer_free(&a);
    l2l_optimizer_free(&b);
}

static void test_state_round_trip(void **unused)
{
    (void)unused;
    for (int k = L2L_OPT_KIND_SGD; k < L2L_OPT_KIND_LSTM; k++) {
        const l2l_opt_spec spec = {(l2l_opt_kind)k, 0.01f, NULL};
        check_round_trip(&spec);
    }
    l2l_lstm net;
    make_net(&net);
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, &net};
    check_round_trip(&spec);
    l2l_lstm_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_state_round_trip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
