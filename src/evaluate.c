/* Evaluation on freshly sampled problems, and learning-rate tuning for the baselines. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Run r of a stream draws from its own sub-seed, so every optimizer sees the same
 * problems (and the same minibatches) whatever ran before it. */
static void run_rng(l2l_rng *rng, uint64_t seed, uint64_t stream, int run)
{
    l2l_rng_seed(rng, seed, (stream << 32) | (uint64_t)run);
}

l2l_status l2l_evaluate(l2l_task *task, l2l_opt_kind kind, float lr, const l2l_lstm *net,
                        int runs, int steps, uint64_t seed, uint64_t stream, double *loss,
                        l2l_error *err)
{
    if (runs < 1 || steps < 0)
        return l2l_error_set(err, L2L_ERR_ARG, "need runs >= 1 and steps >= 0, got %d and %d", runs, steps);
    const size_t N = task->n;
    l2l_optimizer opt;
    l2l_status st = l2l_optimizer_create(&opt, kind, N, lr, net, err);
    if (st) return st;
    float *theta = l2l_alloc(N * sizeof(float)), *grad = l2l_alloc(N * sizeof(float));
    if (!theta || !grad) {
        st = l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate %zu parameters", N);
        goto done;
    }
    for (int r = 0; r < runs; r++) {
        l2l_rng rng;
        run_rng(&rng, seed, stream, r);
        task->sample(task->ctx, &rng, theta);
        l2l_optimizer_reset(&opt);
        double *row = loss + (size_t)r * (steps + 1);
        for (int t = 0; t <= steps; t++) {
            double f = task->loss_grad(task->ctx, theta, grad, &rng);
            int finite = isfinite(f);
            for (size_t i = 0; finite && i < N; i++) finite = isfinite(grad[i]);
            if (!finite) { /* diverged: +Inf from here on */
                for (int s = t; s <= steps; s++) row[s] = INFINITY;
                break;
            }
            row[t] = f;
            if (t < steps) l2l_optimizer_step(&opt, grad, theta);
        }
    }
done:
    l2l_free(theta);
    l2l_free(grad);
    l2l_optimizer_free(&opt);
    return st;
}

int l2l_tune_grid(float *lrs, int max)
{
    int n = 0;
    for (int k = -10; k <= 3 && n < max; k++) lrs[n++] = (float)pow(10.0, k / 2.0);
    return n;
}

l2l_status l2l_tune(l2l_task *task, l2l_opt_kind kind, int runs, int steps, uint64_t seed,
                    float *best_lr, double *best_loss, l2l_error *err)
{
    float lrs[32];
    const int n = l2l_tune_grid(lrs, 32);
    double *loss = l2l_alloc((size_t)runs * (steps + 1) * sizeof(double));
    if (!loss) return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate the tuning curves");
    *best_lr = lrs[0];
    *best_loss = INFINITY;
    l2l_status st = L2L_OK;
    for (int i = 0; i < n && !st; i++) {
        st = l2l_evaluate(task, kind, lrs[i], NULL, runs, steps, seed, L2L_STREAM_VALID, loss, err);
        double mean = 0;
        for (int r = 0; r < runs; r++) mean += loss[(size_t)r * (steps + 1) + steps];
        mean /= runs;
        if (!st && mean < *best_loss) { /* NaN/Inf never wins */
            *best_loss = mean;
            *best_lr = lrs[i];
        }
    }
    l2l_free(loss);
    return st;
}
