/* The fast kernels' exactness properties (src/lstm/step.c, src/lstm/unroll.c), at sizes
 * with partial tiles, several chunks and parallel steps:
 *   - the meta-gradient and theta are identical bit for bit with 1 and 2 threads (fixed
 *     chunks summed in order; tiles computed the same way on any thread);
 *   - the unroll's forward equals l2l_lstm_step driven by the same gradients bit for bit
 *     (one l2l_cell_forward for the step, the unroll and the backward's recompute);
 *   - inference steps are identical with 1 and 2 threads.
 * Agreement with the slow reference is tests/test_lstm.c's job. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lstm/lstm.h"
#include "testutil.h"

enum { N = 64 * 70 + 17, T = 4 }; /* 71 tiles, the last partial; 32 chunks */

static void set_threads(int k)
{
#ifdef _OPENMP
    omp_set_num_threads(k);
#else
    (void)k;
#endif
}

/* f = (1/N) sum a_i (theta_i - 1)^2, gradient 2 a_i (theta_i - 1) (grad_scale 1/N). */
static double diag_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    (void)rng;
    const float *a = ctx;
    double f = 0;
    for (int i = 0; i < N; i++) {
        float d = theta[i] - 1.0f;
        grad[i] = 2.0f * a[i] * d;
        f += (double)a[i] * d * d;
    }
    return f / N;
}

static l2l_lstm make_net(void)
{
    l2l_lstm net;
    l2l_lstm_config cfg = {.layers = 2, .hidden = 20, .preproc = L2L_PREPROC_LOGSIGN, .p = 10.0f, .scale = 0.1f};
    l2l_error err;
    assert_int_equal(l2l_lstm_create(&net, &cfg, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, 5, 0);
    l2l_lstm_init(&net, &rng);
    return net;
}

static void start(float *a, float *theta)
{
    l2l_rng rng;
    l2l_rng_seed(&rng, 11, 2);
    for (int i = 0; i < N; i++) a[i] = (float)(0.1 + l2l_rng_uniform(&rng));
    for (int i = 0; i < N; i++) theta[i] = (float)l2l_rng_normal(&rng);
}

/* Two unrolls in a row (the second starts from a non-zero state). */
static void unroll_with(int threads, const l2l_lstm *net, float *a, float *theta, float *dphi,
                        float *h_out)
{
    set_threads(threads);
    l2l_task task = {.n = N, .grad_scale = 1.0f / N, .ctx = a, .loss_grad = diag_loss_grad};
    l2l_lstm_state st;
    l2l_unroll u;
    const l2l_unroll_config cfg = {.T = T, .objective = L2L_OBJECTIVE_SUM};
    l2l_error err;
    assert_int_equal(l2l_lstm_state_create(&st, net, N, NULL, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_unroll_create(&u, net, N, NULL, &cfg, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 1);
    memset(dphi, 0, net->n_params * sizeof(float));
    for (int k = 0; k < 2; k++)
        assert_int_equal(l2l_unroll_run(&u, net, &task, theta, &st, NULL, &rng, dphi, NULL, &err),
                         L2L_STATUS_OK);
    memcpy(h_out, st.h, (size_t)2 * 20 * N * sizeof(float));
    l2l_unroll_free(&u);
    l2l_lstm_state_free(&st);
}

static void test_unroll_threads_bitwise(void **state)
{
    (void)state;
    l2l_lstm net = make_net();
    static float a[N], th1[N], th2[N], h1[40 * N], h2[40 * N];
    float *d1 = calloc(net.n_params, sizeof(float)), *d2 = calloc(net.n_params, sizeof(float));
    start(a, th1);
    start(a, th2);
    unroll_with(1, &net, a, th1, d1, h1);
    unroll_with(2, &net, a, th2, d2, h2);
    for (int i = 0; i < N; i++)
        if (th1[i] != th2[i]) fail_msg("theta[%d]: 1 thread %.9g, 2 threads %.9g", i, th1[i], th2[i]);
    for (int i = 0; i < 40 * N; i++)
        if (h1[i] != h2[i]) fail_msg("h[%d]: 1 thread %.9g, 2 threads %.9g", i, h1[i], h2[i]);
    for (size_t i = 0; i < net.n_params; i++)
        if (d1[i] != d2[i]) fail_msg("dphi[%zu]: 1 thread %.9g, 2 threads %.9g", i, d1[i], d2[i]);
    double norm = 0;
    for (size_t i = 0; i < net.n_params; i++) norm += (double)d1[i] * d1[i];
    assert_true(norm > 0 && isfinite(norm));
    free(d1), free(d2);
    l2l_lstm_free(&net);
    set_threads(2);
}

/* The unroll's forward is the inference step: replaying the same optimizee with
 * l2l_lstm_step gives the same theta and state bit for bit, with either thread count. */
static void test_unroll_forward_is_step(void **state)
{
    (void)state;
    l2l_lstm net = make_net();
    static float a[N], th_u[N], th_s[N], h_u[40 * N], grad[N], update[N];
    float *dphi = calloc(net.n_params, sizeof(float));
    for (int threads = 1; threads <= 2; threads++) {
        start(a, th_u);
        start(a, th_s);
        unroll_with(threads, &net, a, th_u, dphi, h_u);
        l2l_lstm_state st;
        l2l_error err;
        assert_int_equal(l2l_lstm_state_create(&st, &net, N, NULL, &err), L2L_STATUS_OK);
        l2l_lstm_state_zero(&st);
        for (int t = 0; t < 2 * T; t++) {
            diag_loss_grad(a, th_s, grad, NULL);
            l2l_lstm_step(&net, &st, grad, update);
            for (int i = 0; i < N; i++) th_s[i] += update[i];
        }
        for (int i = 0; i < N; i++)
            if (th_u[i] != th_s[i])
                fail_msg("%d threads, theta[%d]: unroll %.9g, steps %.9g", threads, i, th_u[i], th_s[i]);
        for (int i = 0; i < 40 * N; i++)
            if (h_u[i] != st.h[i])
                fail_msg("%d threads, h[%d]: unroll %.9g, steps %.9g", threads, i, h_u[i], st.h[i]);
        l2l_lstm_state_free(&st);
    }
    free(dphi);
    l2l_lstm_free(&net);
    set_threads(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unroll_threads_bitwise),
        cmocka_unit_test(test_unroll_forward_is_step),
    };
    return cmocka_run_group_tests_name("bench_kernels", tests, NULL, NULL);
}
