/* The vectorisable exp, sigmoid and tanh against libm (in double) on a dense grid. */
#include "lstm/fastmath.h"
#include "testutil.h"

static double ulp_at(double v)
{
    float f = (float)fabs(v);
    return (double)nextafterf(f, INFINITY) - f;
}

static void test_exp(void **state)
{
    (void)state;
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 1e-3) {
        double ref = exp((float)x), got = l2l_expf((float)x);
        double ulps = fabs(got - ref) / ulp_at(ref);
        if (ulps > worst) worst = ulps;
        if (!(ulps <= 2.0)) EXPECT_CLOSE(got, ref, 0, 2.0 * ulp_at(ref) / ref, "exp(%.6g)", x);
    }
    print_message("exp: worst %.2f ulp\n", worst);
    EXPECT_CLOSE(l2l_expf(-1000.0f), 0, 1e-37, 0, "exp(-1000) underflows to ~0");
    EXPECT_CLOSE(l2l_expf(0.0f), 1.0, 0, 0, "exp(0)");
}

static void test_sigmoid_tanh(void **state)
{
    (void)state;
    double ws = 0, wt = 0;
    for (double x = -40.0; x <= 40.0; x += 1.3e-4) {
        float xf = (float)x;
        double s_ref = 1.0 / (1.0 + exp(-(double)xf)), t_ref = tanh((double)xf);
        double s = l2l_sigmoidf(xf), t = l2l_tanhf(xf);
        double es = fabs(s - s_ref) / fmax(fabs(s_ref), 2e-8 / 4e-7);
        double et = fabs(t - t_ref) / fmax(fabs(t_ref), 2e-8 / 4e-7);
        if (es > ws) ws = es;
        if (et > wt) wt = et;
        EXPECT_CLOSE(s, s_ref, 2e-8, 4e-7, "sigmoid(%.7g)", x);
        EXPECT_CLOSE(t, t_ref, 2e-8, 4e-7, "tanh(%.7g)", x);
    }
    for (float x = 1e-30f; x < 1.0f; x *= 1.7f) /* tiny arguments: relative accuracy */
        EXPECT_CLOSE(l2l_tanhf(x), tanh((double)x), 0, 4e-7, "tanh(%.3g)", (double)x);
    print_message("sigmoid: worst %.3g rel, tanh: worst %.3g rel\n", ws, wt);
    EXPECT_CLOSE(l2l_tanhf(-0.0f), 0, 0, 0, "tanh(-0)");
    EXPECT_CLOSE(l2l_sigmoidf(-200.0f), 0, 1e-30, 0, "sigmoid(-200)");
    EXPECT_CLOSE(l2l_sigmoidf(200.0f), 1, 0, 0, "sigmoid(200)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_sigmoid_tanh),
    };
    return cmocka_run_group_tests_name("fastmath", tests, NULL, NULL);
}
