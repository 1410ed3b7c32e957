/* Random rescaling of an optimizee (Lv et al. 2017, "Learning Gradient Descent: Better
 * Generalization and Longer Horizons"): meta-training on g(theta) = f(c . theta) with a
 * fresh per-coordinate scale c_i = exp(u_i), u_i ~ U[-spread, spread], for every sampled
 * problem. The optimizer then sees gradients c . grad f(c . theta) and its steps act on
 * f magnified by c, so no single gradient scale can be learned by heart: it has to
 * infer each coordinate's scale from what it sees, as hand-written adaptive methods do.
 * The start is theta0 = x0 / c, so c . theta0 is the inner task's own start x0.
 * The wrapper borrows the inner task; meta-training uses it for training unrolls only
 * and validates on the task itself. */
#include <math.h>
#include <string.h>

#include "internal.h"

typedef struct {
    l2l_task *inner;
    float spread;
    float *c; /* (N) this problem's scales */
    float *x; /* (N) c . theta */
} rescale;

static void rescale_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    rescale *r = ctx;
    const size_t n = r->inner->n;
    r->inner->sample(r->inner->ctx, rng, theta0);
    for (size_t i = 0; i < n; i++) {
        r->c[i] = expf(r->spread * (float)(2 * l2l_rng_uniform(rng) - 1));
        theta0[i] /= r->c[i];
    }
}

static double rescale_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    rescale *r = ctx;
    const size_t n = r->inner->n;
    for (size_t i = 0; i < n; i++) r->x[i] = r->c[i] * theta[i];
    double f = r->inner->loss_grad(r->inner->ctx, r->x, grad, rng);
    if (grad)
        for (size_t i = 0; i < n; i++) grad[i] *= r->c[i];
    return f;
}

static void rescale_part_losses(void *ctx, double *out)
{
    rescale *r = ctx;
    r->inner->part_losses(r->inner->ctx, out);
}

static void rescale_destroy(void *ctx)
{
    rescale *r = ctx;
    if (!r) return;
    l2l_free(r->c), l2l_free(r->x), l2l_free(r);
}

l2l_status l2l_task_rescale_create(l2l_task *task, l2l_task *inner, float spread, l2l_error *err)
{
    memset(task, 0, sizeof *task);
    if (!(spread >= 0 && spread <= 20))
        return l2l_error_set(err, L2L_ERR_ARG, "rescaling spread must be in [0, 20], got %g", (double)spread);
    rescale *r = l2l_alloc(sizeof *r);
    float *c = l2l_alloc(inner->n * sizeof(float)), *x = l2l_alloc(inner->n * sizeof(float));
    if (!r || !c || !x) {
        l2l_free(r), l2l_free(c), l2l_free(x);
        return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate rescaling for %zu coordinates", inner->n);
    }
    for (size_t i = 0; i < inner->n; i++) c[i] = 1;
    *r = (rescale){.inner = inner, .spread = spread, .c = c, .x = x};
    task->n = inner->n;
    task->grad_scale = inner->grad_scale;
    task->ctx = r;
    task->sample = rescale_sample;
    task->loss_grad = rescale_loss_grad;
    task->destroy = rescale_destroy;
    if (inner->n_parts) { /* the same parts: rescaling keeps every coordinate where it is */
        task->n_parts = inner->n_parts;
        task->part_off = inner->part_off;
        task->part_losses = rescale_part_losses;
    }
    snprintf(task->name, sizeof task->name, "%.48s, rescaled", inner->name);
    return L2L_OK;
}
