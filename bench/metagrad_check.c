/*
 * How good is the paper's meta-gradient on MNIST?
 *
 *   build/metagrad_check [OPTIMIZER [MNIST_DIR [WARMUP [T [HORIZON [H]]]]]]
 *   (defaults: models/mnist.safetensors, data/mnist, 40, 20, T, 1e-3)
 *
 * The paper (and l2l_unroll_run) drops second derivatives: the optimizee's gradients,
 * the optimizer's inputs, are held constant when backpropagating through an unroll.
 * This program measures what that costs. A trained optimizer runs WARMUP steps on a
 * fresh 784-20-10 network (training split, a pool of 2,000 digits), then HORIZON steps
 * in unrolls of T, with the log meta-loss L(phi) = sum_t log f(theta_t) over the
 * HORIZON steps and the same minibatches every time it is evaluated, so that L is a
 * deterministic function of phi. It compares
 *   a) the meta-gradient g that meta-training uses: the sum of l2l_unroll_run's over
 *      the unrolls, each with second derivatives dropped and blind to later unrolls,
 *   b) central differences of L itself (step H in phi), in which the gradients the
 *      optimizer reads and every later step change with phi, as they do in training,
 * along g and along 16 random directions, and prints the correlation of (a) and (b)
 * over the random directions: about the cosine between g and the true gradient. A
 * negative ratio along g means that a step against g makes L worse.
 * A diagnostic beside the benchmark: it drives the unroll directly (src/lstm/lstm.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2l.h"
#include "lstm/lstm.h"

#define N_DIRS 16

typedef struct {
    l2l_task *task;
    l2l_lstm *net;
    const float *theta0;     /* after the warm-up */
    const l2l_lstm_state *s0; /* the optimizer's state after the warm-up */
    l2l_rng rng0;            /* the minibatch stream of the unroll */
    l2l_unroll u;
    l2l_lstm_state s;
    float *theta, *dphi;
    double *losses;
    int T, horizon;
} problem;

/* L(phi) = sum_{t=1..horizon} log f(theta_t) from the saved start; dphi (may be NULL)
 * receives the truncated meta-gradient. */
static double meta_loss(problem *p, float *dphi)
{
    l2l_error err;
    size_t n = p->task->n, hn = (size_t)p->s.layers * p->s.hidden * n;
    memcpy(p->theta, p->theta0, n * sizeof(float));
    memcpy(p->s.h, p->s0->h, hn * sizeof(float));
    memcpy(p->s.c, p->s0->c, hn * sizeof(float));
    l2l_rng rng = p->rng0;
    memset(p->dphi, 0, p->net->n_params * sizeof(float));
    double L = 0;
    for (int k = 0; k < p->horizon / p->T; k++) { /* each unroll adds its part of g */
        if (l2l_unroll_run(&p->u, p->net, p->task, p->theta, &p->s, NULL, &rng, p->dphi, p->losses, &err)) {
            fprintf(stderr, "metagrad_check: %s\n", err.msg);
            exit(1);
        }
        for (int t = 1; t <= p->T; t++) L += log(p->losses[t]);
    }
    if (dphi) memcpy(dphi, p->dphi, p->net->n_params * sizeof(float));
    return L;
}

/* Central difference of L along the unit direction d, step h. */
static double fd_along(problem *p, const float *d, double h)
{
    size_t P = p->net->n_params;
    float *saved = malloc(P * sizeof(float));
    memcpy(saved, p->net->phi, P * sizeof(float));
    for (size_t i = 0; i < P; i++) p->net->phi[i] = saved[i] + (float)(h * d[i]);
    double lp = meta_loss(p, NULL);
    for (size_t i = 0; i < P; i++) p->net->phi[i] = saved[i] - (float)(h * d[i]);
    double lm = meta_loss(p, NULL);
    memcpy(p->net->phi, saved, P * sizeof(float));
    free(saved);
    return (lp - lm) / (2 * h);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

int main(int argc, char **argv)
{
    const char *ckpt = argc > 1 ? argv[1] : "models/mnist.safetensors";
    const char *dir = argc > 2 ? argv[2] : "data/mnist";
    const int warmup = argc > 3 ? atoi(argv[3]) : 40, T = argc > 4 ? atoi(argv[4]) : 20;
    const int horizon = argc > 5 ? atoi(argv[5]) : T;
    const double h = argc > 6 ? atof(argv[6]) : 1e-3;
    l2l_error err;
    l2l_lstm net;
    l2l_dataset ds;
    l2l_task task;
    if (warmup < 0 || T < 1 || horizon < T || horizon % T || !(h > 0)) {
        fprintf(stderr, "metagrad_check: WARMUP must be >= 0, T >= 1, HORIZON a multiple of T "
                        "and H > 0\n");
        return 2;
    }
    if (l2l_checkpoint_load(ckpt, &net, NULL, NULL, &err) || l2l_mnist_load(&ds, dir, "train", &err)) {
        fprintf(stderr, "metagrad_check: %s\n", err.msg);
        return 1;
    }
    l2l_mlp_config mc = {1, 20, L2L_ACTIVATION_SIGMOID, 128, 0.01f, 2000};
    if (l2l_task_mlp_create(&task, &mc, &ds, &err)) {
        fprintf(stderr, "metagrad_check: %s\n", err.msg);
        return 1;
    }
    const size_t n = task.n, P = net.n_params;
    problem p = {.task = &task, .net = &net, .T = T, .horizon = horizon};
    float *theta0 = malloc(n * sizeof(float)), *grad = malloc(n * sizeof(float));
    float *update = malloc(n * sizeof(float));
    p.theta = malloc(n * sizeof(float));
    p.dphi = malloc(P * sizeof(float));
    p.losses = malloc((size_t)(T + 1) * sizeof(double));
    l2l_lstm_state s0;
    const l2l_unroll_config ucfg = {.T = T, .objective = L2L_OBJECTIVE_LOG};
    if (l2l_lstm_state_create(&s0, &net, n, NULL, &err) || l2l_lstm_state_create(&p.s, &net, n, NULL, &err) ||
        l2l_unroll_create(&p.u, &net, n, NULL, &ucfg, &err)) {
        fprintf(stderr, "metagrad_check: %s\n", err.msg);
        return 1;
    }
    l2l_rng rng;
    l2l_rng_seed(&rng, 12345, L2L_STREAM_TRAIN);
    task.sample(task.ctx, &rng, theta0);
    l2l_lstm_state_zero(&s0);
    for (int t = 0; t < warmup; t++) { /* the optimizer's own path up to the unroll */
        task.loss_grad(task.ctx, theta0, grad, &rng);
        l2l_lstm_step(&net, &s0, grad, update);
        for (size_t i = 0; i < n; i++) theta0[i] += update[i];
    }
    p.theta0 = theta0, p.s0 = &s0, p.rng0 = rng;

    float *g = malloc(P * sizeof(float)), *d = malloc(P * sizeof(float));
    double L = meta_loss(&p, g), gn = sqrt(dot(g, g, P));
    printf("optimizer %s, %zu coordinates, warm-up %d, %d steps in unrolls of %d, step %g, "
           "L = %.6f, |g| = %.4g\n", ckpt, n, warmup, horizon, T, h, L, gn);
    for (size_t i = 0; i < P; i++) d[i] = (float)(g[i] / gn);
    double along = fd_along(&p, d, h);
    printf("along g: dropped-second-order %.5g, finite differences %.5g (ratio %.3f)\n", gn, along,
           along / gn);
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    l2l_rng dr;
    l2l_rng_seed(&dr, 99, 0);
    printf("direction,dropped_second_order,finite_difference\n");
    for (int k = 0; k < N_DIRS; k++) {
        double s = 0;
        for (size_t i = 0; i < P; i++) d[i] = (float)l2l_rng_normal(&dr), s += (double)d[i] * d[i];
        for (size_t i = 0; i < P; i++) d[i] = (float)(d[i] / sqrt(s));
        double a = dot(g, d, P), b = fd_along(&p, d, h);
        printf("%d,%.6g,%.6g\n", k, a, b);
        sa += a, sb += b, saa += a * a, sbb += b * b, sab += a * b;
    }
    /* about the cosine between g and the true gradient: both are sums of the same
     * random projections, so their uncentred correlation estimates it */
    printf("correlation over %d random directions: %.3f\n", N_DIRS, sab / sqrt(saa * sbb));
    free(g), free(d), free(theta0), free(grad), free(update), free(p.theta), free(p.dphi), free(p.losses);
    l2l_unroll_free(&p.u);
    l2l_lstm_state_free(&p.s);
    l2l_lstm_state_free(&s0);
    l2l_task_free(&task);
    l2l_dataset_free(&ds);
    l2l_lstm_free(&net);
    return 0;
}
