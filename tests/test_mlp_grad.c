/*
 * The MLP optimizee's gradient, checked three ways:
 *  1. A slow, obvious reference (below, in double precision, one example at a time) is
 *     checked against central finite differences in double: per element and along random
 *     directions, tight tolerances.
 *  2. The library's float loss and gradient are held to the reference on the same
 *     minibatch, to float rounding.
 *  3. The library's float loss itself is differentiated by a 4-point stencil, per element
 *     and along random directions, with a tolerance derived from float rounding.
 * fd_check returns pass/fail; it is itself shown to fail on gradients with a flipped
 * sign, a doubled element, a factor of 2 and a transposed weight matrix.
 * Same minibatch for every evaluation: the l2l_rng state is copied before each call.
 */
#include <stdlib.h>
#include <string.h>

#include "mlp_testutil.h"

/* -------------------------------------------- the reference, in double */

typedef struct {
    int L;         /* weight layers */
    int width[10]; /* width[0] = D .. width[L] = C */
    l2l_activation act;
    const l2l_dataset *data;
    int B;
    size_t idx[64]; /* the minibatch */
} ref_net;

static ref_net ref_of(const l2l_mlp_config *cfg, const l2l_dataset *ds)
{
    ref_net r;
    memset(&r, 0, sizeof r);
    r.L = cfg->layers + 1;
    r.width[0] = ds->rows * ds->cols;
    for (int l = 1; l < r.L; l++) r.width[l] = cfg->hidden;
    r.width[r.L] = ds->n_classes;
    r.act = cfg->activation;
    r.data = ds;
    r.B = cfg->batch;
    assert_true(r.B <= 64);
    return r;
}

/* The minibatch the task draws from this rng state: B calls of l2l_rng_below(n). */
static void ref_draw(ref_net *r, const l2l_rng *rng)
{
    l2l_rng copy = *rng;
    for (int i = 0; i < r->B; i++) r->idx[i] = (size_t)l2l_rng_below(&copy, r->data->n);
}

static size_t ref_count(const ref_net *r)
{
    size_t n = 0;
    for (int l = 1; l <= r->L; l++) n += (size_t)r->width[l] * (r->width[l - 1] + 1);
    return n;
}

static double act_f(l2l_activation a, double z)
{
    switch (a) {
    case L2L_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case L2L_ACTIVATION_RELU: return z > 0 ? z : 0;
    case L2L_ACTIVATION_TANH: return tanh(z);
    }
    return NAN;
}

static double act_df(l2l_activation a, double z)
{
    switch (a) {
    case L2L_ACTIVATION_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-z));
        return s * (1 - s);
    }
    case L2L_ACTIVATION_RELU: return z > 0 ? 1 : 0;
    case L2L_ACTIVATION_TANH: return 1 - tanh(z) * tanh(z);
    }
    return NAN;
}

/*
 * Mean cross-entropy over the minibatch, and its gradient (if grad) with the task's
 * layout: per layer W (out, in) row-major, then b (out). pattern (if not NULL) receives
 * the sign of every hidden pre-activation, to tell when a ReLU kink lies between two
 * evaluation points. Written per example with plain loops, from the definitions.
 */
static double ref_loss_grad(const ref_net *r, const double *theta, double *grad,
                            uint8_t *pattern)
{
    enum { MAXW = 64 };
    double z[10][MAXW], a[10][MAXW], dz[10][MAXW];
    size_t n = ref_count(r), np = 0;
    const int D = r->width[0], L = r->L, C = r->width[L];
    assert_true(D <= MAXW);
    if (grad) memset(grad, 0, n * sizeof *grad);
    double total = 0;
    for (int i = 0; i < r->B; i++) {
        const uint8_t *img = r->data->images + r->idx[i] * (size_t)D;
        int y = r->data->labels[r->idx[i]];
        for (int k = 0; k < D; k++) a[0][k] = img[k] / 255.0;
        size_t off = 0;
        for (int l = 1; l <= L; l++) {
            int in = r->width[l - 1], out = r->width[l];
            assert_true(out <= MAXW);
            const double *W = theta + off, *b = theta + off + (size_t)out * in;
            for (int j = 0; j < out; j++) {
                double s = b[j];
                for (int k = 0; k < in; k++) s += W[j * in + k] * a[l - 1][k];
                z[l][j] = s;
                if (l < L) {
                    a[l][j] = act_f(r->act, s);
                    if (pattern) pattern[np++] = s > 0;
                }
            }
            off += (size_t)out * (in + 1);
        }
        double m = z[L][0], s = 0;
        for (int k = 1; k < C; k++) m = fmax(m, z[L][k]);
        for (int k = 0; k < C; k++) s += exp(z[L][k] - m);
        double lse = m + log(s);
        total += lse - z[L][y];
        if (!grad) continue;
        for (int k = 0; k < C; k++) dz[L][k] = (exp(z[L][k] - lse) - (k == y)) / r->B;
        for (int l = L; l >= 1; l--) {
            int in = r->width[l - 1], out = r->width[l];
            off -= (size_t)out * (in + 1);
            const double *W = theta + off;
            double *dW = grad + off, *db = grad + off + (size_t)out * in;
            for (int j = 0; j < out; j++) {
                db[j] += dz[l][j];
                for (int k = 0; k < in; k++) dW[j * in + k] += dz[l][j] * a[l - 1][k];
            }
            if (l > 1)
                for (int k = 0; k < in; k++) {
                    double s2 = 0;
                    for (int j = 0; j < out; j++) s2 += dz[l][j] * W[j * in + k];
                    dz[l - 1][k] = s2 * act_df(r->act, z[l - 1][k]);
                }
        }
    }
    return total / r->B;
}

/* ----------------------------------------------------- the FD checker */

/* A scalar function of theta (double), evaluated on a fixed minibatch. */
typedef struct {
    double (*loss)(void *ctx, const double *theta, uint8_t *pattern);
    void *ctx;
    size_t n;
    size_t n_pattern; /* 0: smooth, no kink detection */
} objective;

static double obj_ref(void *ctx, const double *theta, uint8_t *pattern)
{
    return ref_loss_grad(ctx, theta, NULL, pattern);
}

/* The library's float loss at theta (exactly representable in float, see below). */
typedef struct {
    l2l_task *task;
    l2l_rng rng; /* the state before the minibatch draw; copied for every call */
    ref_net *ref;
    float *theta, *grad; /* (N) */
} float_ctx;

static double obj_float(void *ctx, const double *theta, uint8_t *pattern)
{
    float_ctx *c = ctx;
    for (size_t i = 0; i < c->task->n; i++) {
        c->theta[i] = (float)theta[i];
        if ((double)c->theta[i] != theta[i]) fail_msg("theta[%zu] not exact in float", i);
    }
    l2l_rng rng = c->rng;
    double loss = c->task->loss_grad(c->task->ctx, c->theta, c->grad, &rng);
    if (pattern) ref_loss_grad(c->ref, theta, NULL, pattern); /* kinks, from the reference */
    return loss;
}

typedef struct {
    double h, atol, rtol; /* per element: |g - fd| <= atol + rtol |fd| */
    double vec_rtol;      /* ||g - fd|| <= vec_rtol ||fd|| */
    double dir_atol, dir_rtol;
    int stencil; /* 2: central difference; 4: (8(f1 - f-1) - (f2 - f-2)) / 12h */
    int n_dirs;
} fd_opts;

typedef struct {
    size_t worst;
    double worst_excess, g_worst, fd_worst; /* the element furthest beyond its tolerance */
    double vec_rel;
    double dir_excess;
    size_t skipped; /* elements whose stencil crosses a ReLU kink */
    int dirs_done;
} fd_report;

/* f at theta + t*d, with the pattern check: returns 0 if any pattern differs from base. */
static double eval_at(const objective *o, const double *theta, const double *d, double t,
                      double *work, uint8_t *pattern, const uint8_t *base, int *same)
{
    for (size_t i = 0; i < o->n; i++) work[i] = theta[i] + t * d[i];
    double f = o->loss(o->ctx, work, o->n_pattern ? pattern : NULL);
    if (o->n_pattern && memcmp(pattern, base, o->n_pattern) != 0) *same = 0;
    return f;
}

static double stencil(const objective *o, const fd_opts *opt, const double *theta,
                      const double *d, double t, double *work, uint8_t *pattern,
                      const uint8_t *base, int *same)
{
    double f1 = eval_at(o, theta, d, t, work, pattern, base, same);
    double fm1 = eval_at(o, theta, d, -t, work, pattern, base, same);
    if (opt->stencil == 2) return (f1 - fm1) / (2 * t);
    double f2 = eval_at(o, theta, d, 2 * t, work, pattern, base, same);
    double fm2 = eval_at(o, theta, d, -2 * t, work, pattern, base, same);
    return (8 * (f1 - fm1) - (f2 - fm2)) / (12 * t);
}

/*
 * Compares the candidate gradient g (N) of o at theta with finite differences: every
 * element, the whole vector's relative error, and n_dirs random directions. Steps and
 * directions are multiples of powers of two so that theta + t d is exact. Returns 1 if
 * everything is within tolerance, 0 otherwise; rep says where it was worst.
 */
static int fd_check(const objective *o, const double *theta, const double *g,
                    const fd_opts *opt, uint64_t seed, fd_report *rep)
{
    size_t n = o->n;
    double *work = calloc(n, sizeof *work), *d = calloc(n, sizeof *d);
    uint8_t *base = calloc(o->n_pattern + 1, 1), *pattern = calloc(o->n_pattern + 1, 1);
    assert_true(work && d && base && pattern);
    memset(rep, 0, sizeof *rep);
    rep->worst_excess = -INFINITY;
    rep->dir_excess = -INFINITY;
    int pass = 1;
    o->loss(o->ctx, theta, o->n_pattern ? base : NULL);

    double diff2 = 0, fd2 = 0;
    for (size_t i = 0; i < n; i++) {
        memset(d, 0, n * sizeof *d);
        d[i] = 1;
        int same = 1;
        double fd = stencil(o, opt, theta, d, opt->h, work, pattern, base, &same);
        if (!same) {
            rep->skipped++;
            continue;
        }
        double excess = fabs(g[i] - fd) - (opt->atol + opt->rtol * fabs(fd));
        if (excess > rep->worst_excess) {
            rep->worst_excess = excess;
            rep->worst = i;
            rep->g_worst = g[i];
            rep->fd_worst = fd;
        }
        if (excess > 0) pass = 0;
        diff2 += (g[i] - fd) * (g[i] - fd);
        fd2 += fd * fd;
    }
    rep->vec_rel = sqrt(diff2 / fd2);
    if (!(rep->vec_rel <= opt->vec_rtol)) pass = 0;

    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 7);
    for (int tries = 0; rep->dirs_done < opt->n_dirs && tries < 4 * opt->n_dirs; tries++) {
        /* entries in [-1, 1] on a grid of 1/256 */
        for (size_t i = 0; i < n; i++) d[i] = ((double)l2l_rng_below(&rng, 513) - 256) / 256;
        double gd = 0;
        for (size_t i = 0; i < n; i++) gd += g[i] * d[i];
        int same = 1;
        double fd = stencil(o, opt, theta, d, opt->h, work, pattern, base, &same);
        if (!same) continue;
        rep->dirs_done++;
        double excess = fabs(gd - fd) - (opt->dir_atol + opt->dir_rtol * fabs(fd));
        if (excess > rep->dir_excess) rep->dir_excess = excess;
        if (excess > 0) pass = 0;
    }
    if (rep->dirs_done < opt->n_dirs) pass = 0;
    free(work);
    free(d);
    free(base);
    free(pattern);
    return pass;
}

static void report(const char *what, const fd_report *r)
{
    printf("    %-34s worst element %zu: g %+.8f fd %+.8f (excess %.2e), vector rel %.2e, "
           "dir excess %.2e, skipped %zu\n",
           what, r->worst, r->g_worst, r->fd_worst, r->worst_excess, r->vec_rel, r->dir_excess,
           r->skipped);
}

/* --------------------------------------------------------------- tests */

/* theta ~ N(0, 0.5²), rounded to a multiple of 2^-16 (exact in float and after adding
 * multiples of the FD steps below). */
static void draw_theta(double *theta, size_t n, uint64_t seed)
{
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 3);
    for (size_t i = 0; i < n; i++) theta[i] = round(0.5 * l2l_rng_normal(&rng) * 65536) / 65536;
}

static const char *act_names[3] = {"sigmoid", "relu", "tanh"};

/* Tiny nets: 6x6 images, 3 classes, hidden 5, 1 and 2 hidden layers, each activation. */
static void test_gradient_fd(void **state)
{
    (void)state;
    l2l_dataset ds;
    make_dataset(&ds, 40, 6, 6, 3, 11);
    for (int act = 0; act < 3; act++) {
        for (int layers = 1; layers <= 2; layers++) {
            l2l_mlp_config cfg = {layers, 5, (l2l_activation)act, 4, 0.01f, 0};
            l2l_task task;
            create_task(&task, &cfg, &ds);
            ref_net ref = ref_of(&cfg, &ds);
            size_t n = task.n;
            assert_int_equal(n, ref_count(&ref));
            printf("  %s, %d hidden layer%s, N = %zu\n", act_names[act], layers,
                   layers > 1 ? "s" : "", n);

            double *theta = calloc(n, sizeof *theta), *gref = calloc(n, sizeof *gref);
            double *g = calloc(n, sizeof *g), *bad = calloc(n, sizeof *bad);
            float *thetaf = calloc(n, sizeof *thetaf), *gradf = calloc(n, sizeof *gradf);
            float *scratch = calloc(n, sizeof *scratch);
            assert_true(theta && gref && g && bad && thetaf && gradf && scratch);
            draw_theta(theta, n, 200 + 10 * act + layers);
            for (size_t i = 0; i < n; i++) thetaf[i] = (float)theta[i];

            l2l_rng rng0;
            l2l_rng_seed(&rng0, 5, act * 2 + layers);
            ref_draw(&ref, &rng0);
            uint8_t *pattern = act == L2L_ACTIVATION_RELU ? calloc((size_t)cfg.batch * 10 * 5, 1)
                                                          : NULL;
            size_t n_pattern = pattern ? (size_t)cfg.batch * (size_t)layers * 5 : 0;
            double lref = ref_loss_grad(&ref, theta, gref, pattern);
            if (pattern) {
                /* the check must see live units on both sides of a kink-free point */
                size_t on = 0;
                for (size_t k = 0; k < n_pattern; k++) on += pattern[k];
                printf("    live ReLU units: %zu of %zu\n", on, n_pattern);
                assert_true(on >= n_pattern / 4 && on < n_pattern);
            }

            /* 1. the reference against central differences in double */
            objective oref = {obj_ref, &ref, n, n_pattern};
            fd_opts dopt = {0x1p-17, 1e-9, 1e-6, 1e-7, 1e-9, 1e-6, 2, 8};
            fd_report rep;
            int ok = fd_check(&oref, theta, gref, &dopt, 1, &rep);
            report("reference vs FD (double):", &rep);
            if (!ok)
                fail_msg("reference gradient fails FD: element %zu analytic %.10g fd %.10g",
                         rep.worst, rep.g_worst, rep.fd_worst);

            /* 2. the library against the reference on the same minibatch */
            l2l_rng rng = rng0;
            double loss = task.loss_grad(task.ctx, thetaf, gradf, &rng);
            EXPECT_CLOSE(loss, lref, 0, 1e-6, "loss %s/%d", act_names[act], layers);
            for (size_t i = 0; i < n; i++) {
                EXPECT_CLOSE(gradf[i], gref[i], 2e-7, 1e-5, "grad[%zu] %s/%d", i,
                             act_names[act], layers);
                g[i] = gradf[i];
            }
            /* the rng advanced by exactly the B draws of the minibatch */
            l2l_rng expect = rng0;
            for (int i = 0; i < cfg.batch; i++) l2l_rng_below(&expect, ds.n);
            assert_memory_equal(&rng, &expect, sizeof rng);

            /* 3. the library's float gradient against FD of its own float loss.
             * Loss rounding is about 1e-7; the 4-point stencil turns an error e in f into
             * at most 1.5 e/h = 2e-5 at h = 2^-7, and its truncation error h^4 f^(5)/30
             * is below 1e-8 here. */
            float_ctx fc = {&task, rng0, &ref, thetaf, scratch};
            objective of = {obj_float, &fc, n, n_pattern};
            fd_opts fopt = {0x1p-7, 2e-5, 1e-3, 3e-4, 5e-5, 1e-3, 4, 8};
            ok = fd_check(&of, theta, g, &fopt, 2, &rep);
            report("library vs FD (float loss):", &rep);
            if (!ok)
                fail_msg("library gradient fails FD: element %zu analytic %.8g fd %.8g, "
                         "vector rel %.3g",
                         rep.worst, rep.g_worst, rep.fd_worst, rep.vec_rel);
            assert_true(rep.skipped <= n / 10);

            /* the checker itself fails on wrong gradients */
            size_t big = 0;
            for (size_t i = 0; i < n; i++)
                if (fabs(g[i]) > fabs(g[big])) big = i;
            for (int kind = 0; kind < 4; kind++) {
                memcpy(bad, g, n * sizeof *bad);
                const char *what = "";
                if (kind == 0) {
                    for (size_t i = 0; i < n; i++) bad[i] = -g[i];
                    what = "wrong sign";
                } else if (kind == 1) {
                    for (size_t i = 0; i < n; i++) bad[i] = 2 * g[i];
                    what = "missing factor 1/2";
                } else if (kind == 2) {
                    bad[big] = 2 * g[big];
                    what = "one element doubled";
                } else {
                    /* W1 (5, 36) read as if stored (36, 5) */
                    for (int j = 0; j < 5; j++)
                        for (int k = 0; k < 36; k++) bad[j * 36 + k] = g[k * 5 + j];
                    what = "first weight transposed";
                }
                if (fd_check(&of, theta, bad, &fopt, 2, &rep))
                    fail_msg("FD check passed a gradient with %s (%s, %d layers)", what,
                             act_names[act], layers);
                if (fd_check(&oref, theta, bad, &dopt, 1, &rep))
                    fail_msg("double FD check passed a gradient with %s", what);
            }

            free(theta);
            free(gref);
            free(g);
            free(bad);
            free(thetaf);
            free(gradf);
            free(scratch);
            free(pattern);
            l2l_task_free(&task);
        }
    }
    l2l_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
