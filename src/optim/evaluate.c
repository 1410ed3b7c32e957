/* Evaluation on freshly sampled problems, and learning-rate tuning for the baselines. */
#include <math.h>
#include <string.h>

#include "optim/evaluate.h"
#include "util/util.h"

/* Run r of a stream draws from its own sub-seed, so every optimizer sees the same
 * problems (and the same minibatches) whatever ran before it. */
static void run_rng(l2l_rng *rng, uint64_t seed, uint64_t stream, int run)
{
    l2l_rng_seed(rng, seed, (stream << 32) | (uint64_t)run);
}

static int config_ok(const l2l_eval_config *cfg, l2l_error *err)
{
    if (cfg->runs >= 1 && cfg->steps >= 0) return 1;
    l2l_error_set(err, L2L_STATUS_ARG, "need runs >= 1 and steps >= 0, got %d and %d", cfg->runs, cfg->steps);
    return 0;
}

l2l_status l2l_evaluate(l2l_task *task, const l2l_opt_spec *spec, const l2l_eval_config *cfg,
                        double *loss, l2l_error *err)
{
    if (!config_ok(cfg, err)) return L2L_STATUS_ARG;
    return l2l_evaluate_runs(task, spec, cfg, 0, cfg->runs, loss, err);
}

l2l_status l2l_evaluate_runs(l2l_task *task, const l2l_opt_spec *spec, const l2l_eval_config *cfg,
                             int first, int count, double *loss, l2l_error *err)
{
    const int steps = cfg->steps;
    L2L_ASSERT(first >= 0 && count >= 0 && first + count <= cfg->runs && steps >= 0);
    const size_t N = task->n;
    l2l_optimizer opt;
    l2l_status st = spec->kind == L2L_OPT_KIND_LSTM && spec->net ? l2l_lstm_check_task(spec->net, task, err)
                                                                 : L2L_STATUS_OK;
    if (st || (st = l2l_optimizer_create_groups(&opt, spec, N, task->group, err))) return st;
    float *theta = l2l_alloc(N * sizeof(float)), *grad = l2l_alloc(N * sizeof(float));
    if (!theta || !grad) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %zu parameters", N);
        goto done;
    }
    for (int r = first; r < first + count; r++) {
        l2l_rng rng;
        run_rng(&rng, cfg->seed, cfg->stream, r);
        task->sample(task->ctx, &rng, theta);
        l2l_optimizer_reset(&opt);
        double *row = loss + (size_t)(r - first) * (steps + 1);
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

l2l_status l2l_tune(l2l_task *task, l2l_opt_kind kind, const l2l_eval_config *cfg, float *best_lr,
                    double *best_loss, l2l_error *err)
{
    const int runs = cfg->runs, steps = cfg->steps;
    if (!config_ok(cfg, err)) return L2L_STATUS_ARG;
    float lrs[32];
    const int n = l2l_tune_grid(lrs, 32);
    double *loss = l2l_alloc((size_t)runs * (steps + 1) * sizeof(double));
    if (!loss) return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the tuning curves");
    *best_lr = lrs[0];
    *best_loss = INFINITY;
    l2l_status st = L2L_STATUS_OK;
    for (int i = 0; i < n && !st; i++) {
        const l2l_opt_spec spec = {kind, lrs[i], NULL};
        st = l2l_evaluate(task, &spec, cfg, loss, err);
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
