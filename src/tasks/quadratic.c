/* Random quadratics f(theta) = ||W theta - y||^2 (the paper, section 3.1; docs/METHOD.md).
 * A sample is `batch` independent functions side by side; theta is their parameters
 * concatenated, (batch, dim). The reported loss is the mean over the batch.
 * Paper: each function is optimized on its own gradient 2 W^T (W theta - y), which is
 * batch times the gradient of the mean, so grad_scale = 1/batch.
 * Authors' code (deepmind): the optimizer sees the gradient of the mean, grad_scale = 1. */
#include <string.h>

#include "util/util.h"

typedef struct {
    l2l_quadratic_config cfg;
    float *W; /* (batch, dim, dim) */
    float *y; /* (batch, dim) */
    float *r; /* (dim) residual */
} quadratic;

static void quadratic_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    quadratic *q = ctx;
    const int d = q->cfg.dim, B = q->cfg.batch;
    const size_t nw = (size_t)B * d * d, ny = (size_t)B * d;
    if (q->cfg.deepmind) {
        for (size_t i = 0; i < nw; i++) q->W[i] = (float)l2l_rng_uniform(rng);
        for (size_t i = 0; i < ny; i++) q->y[i] = (float)l2l_rng_uniform(rng);
        for (size_t i = 0; i < ny; i++) theta0[i] = (float)(0.01 * l2l_rng_normal(rng));
    } else {
        for (size_t i = 0; i < nw; i++) q->W[i] = (float)l2l_rng_normal(rng);
        for (size_t i = 0; i < ny; i++) q->y[i] = (float)l2l_rng_normal(rng);
        for (size_t i = 0; i < ny; i++) theta0[i] = (float)l2l_rng_normal(rng);
    }
}

static double quadratic_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    quadratic *q = ctx;
    const int d = q->cfg.dim, B = q->cfg.batch;
    const float gscale = q->cfg.deepmind ? 2.0f / (float)B : 2.0f;
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *W = q->W + (size_t)b * d * d, *y = q->y + (size_t)b * d;
        const float *th = theta + (size_t)b * d;
        float *g = grad + (size_t)b * d;
        double f = 0;
        for (int i = 0; i < d; i++) {
            double s = -(double)y[i];
            for (int j = 0; j < d; j++) s += (double)W[i * d + j] * th[j];
            q->r[i] = (float)s;
            f += s * s;
        }
        for (int j = 0; j < d; j++) {
            float s = 0;
            for (int i = 0; i < d; i++) s += W[i * d + j] * q->r[i];
            g[j] = gscale * s;
        }
        total += f;
    }
    return total / B;
}

static void quadratic_destroy(void *ctx)
{
    quadratic *q = ctx;
    if (!q) return;
    l2l_free(q->W);
    l2l_free(q->y);
    l2l_free(q->r);
    l2l_free(q);
}

l2l_status l2l_task_quadratic_create(l2l_task *task, const l2l_quadratic_config *cfg, l2l_error *err)
{
    memset(task, 0, sizeof *task);
    if (cfg->dim < 1 || cfg->dim > 4096)
        return l2l_error_set(err, L2L_STATUS_ARG, "quadratic dimension must be 1..4096, got %d", cfg->dim);
    if (cfg->batch < 1 || cfg->batch > 1 << 20)
        return l2l_error_set(err, L2L_STATUS_ARG, "quadratic batch must be 1..%d, got %d", 1 << 20, cfg->batch);
    quadratic *q = l2l_alloc(sizeof *q);
    if (!q) return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate a quadratic task");
    q->cfg = *cfg;
    q->W = l2l_alloc((size_t)cfg->batch * cfg->dim * cfg->dim * sizeof(float));
    q->y = l2l_alloc((size_t)cfg->batch * cfg->dim * sizeof(float));
    q->r = l2l_alloc((size_t)cfg->dim * sizeof(float));
    if (!q->W || !q->y || !q->r) {
        quadratic_destroy(q);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %d quadratics of dimension %d",
                             cfg->batch, cfg->dim);
    }
    task->n = (size_t)cfg->batch * cfg->dim;
    task->grad_scale = cfg->deepmind ? 1.0f : 1.0f / (float)cfg->batch;
    task->ctx = q;
    task->sample = quadratic_sample;
    task->loss_grad = quadratic_loss_grad;
    task->destroy = quadratic_destroy;
    snprintf(task->name, sizeof task->name, "quadratic-%d%s", cfg->dim, cfg->deepmind ? "-deepmind" : "");
    return L2L_STATUS_OK;
}

void l2l_task_free(l2l_task *task)
{
    if (task->destroy) task->destroy(task->ctx);
    memset(task, 0, sizeof *task);
}
