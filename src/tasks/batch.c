/* B independent problems side by side, so that one meta-gradient averages over B
 * optimizees (less variance per meta-update than one MNIST network gives). The children
 * may differ in size (a mix of network shapes); they must share grad_scale.
 * theta is the children's parameters concatenated, child i at off[i]; the loss is the
 * mean of the children's losses; each child is optimized on its own gradient, so the
 * true gradient of the mean is child grad_scale / B times what the optimizer sees. */
#include <string.h>

#include "tasks/batch.h"
#include "util/util.h"

typedef struct {
    int B;
    l2l_task *child; /* (B) */
    size_t *off;     /* (B + 1) child i's parameters are theta[off[i] .. off[i + 1]) */
    uint8_t *group;  /* (N) the children's parameter groups side by side, or NULL */
} batch;

static void batch_sample(void *ctx, l2l_rng *rng, float *theta0)
{
    batch *b = ctx;
    for (int i = 0; i < b->B; i++) b->child[i].sample(b->child[i].ctx, rng, theta0 + b->off[i]);
}

static double batch_loss_grad(void *ctx, const float *theta, float *grad, l2l_rng *rng)
{
    batch *b = ctx;
    double total = 0;
    for (int i = 0; i < b->B; i++)
        total += b->child[i].loss_grad(b->child[i].ctx, theta + b->off[i],
                                       grad ? grad + b->off[i] : NULL, rng);
    return total / b->B;
}

static void batch_destroy(void *ctx)
{
    batch *b = ctx;
    if (!b) return;
    for (int i = 0; i < b->B; i++) l2l_task_free(&b->child[i]);
    l2l_free(b->child);
    l2l_free(b->off);
    l2l_free(b->group);
    l2l_free(b);
}

int l2l_task_batch_children(const l2l_task *task, l2l_task **children)
{
    if (task->sample != batch_sample) return 0;
    batch *b = task->ctx;
    *children = b->child;
    return b->B;
}

l2l_status l2l_task_batch_create(l2l_task *task, l2l_task *children, int B, l2l_error *err)
{
    memset(task, 0, sizeof *task);
    if (B < 1) return l2l_error_set(err, L2L_STATUS_ARG, "a batch needs at least one problem, got %d", B);
    for (int i = 1; i < B; i++) L2L_ASSERT(children[i].grad_scale == children[0].grad_scale);
    const int G = children[0].n_groups > 1 ? children[0].n_groups : 0;
    for (int i = 0; i < B; i++) {
        const l2l_task *c = &children[i];
        int same = (c->n_groups > 1 ? c->n_groups : 0) == G && (!G || c->group);
        for (int g = 0; same && g < G; g++) same = strcmp(c->group_names[g], children[0].group_names[g]) == 0;
        if (!same)
            return l2l_error_set(err, L2L_STATUS_ARG, "the problems of a batch must declare the same "
                                 "parameter groups: problem %d ('%s') differs from problem 1 ('%s')",
                                 i + 1, c->name, children[0].name);
    }
    if (G) {
        l2l_error inner;
        if (l2l_group_names_check(children[0].group_names, G, &inner))
            return l2l_error_set(err, L2L_STATUS_ARG, "problem 1 ('%s'): %s", children[0].name, inner.msg);
    }
    batch *b = l2l_alloc(sizeof *b);
    l2l_task *child = l2l_alloc((size_t)B * sizeof *child);
    size_t *off = l2l_alloc((size_t)(B + 1) * sizeof *off);
    if (!b || !child || !off) {
        l2l_free(b), l2l_free(child), l2l_free(off);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate a batch of %d problems", B);
    }
    memcpy(child, children, (size_t)B * sizeof *child); /* ownership moves to the batch */
    memset(children, 0, (size_t)B * sizeof *children);
    b->B = B;
    b->child = child;
    b->off = off;
    size_t n = 0;
    int same = 1;
    for (int i = 0; i < B; i++) {
        off[i] = n;
        n += child[i].n;
        same = same && strcmp(child[i].name, child[0].name) == 0;
    }
    off[B] = n;
    if (G) {
        if (!(b->group = l2l_alloc(n ? n : 1))) {
            memcpy(children, child, (size_t)B * sizeof *child); /* ownership back to the caller */
            l2l_free(b), l2l_free(child), l2l_free(off);
            return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the groups of %zu parameters", n);
        }
        for (int i = 0; i < B; i++) memcpy(b->group + off[i], child[i].group, child[i].n);
        task->n_groups = G;
        task->group = b->group;
        memcpy(task->group_names, child[0].group_names, sizeof task->group_names);
    }
    task->n = n;
    task->grad_scale = child[0].grad_scale / (float)B;
    task->ctx = b;
    task->sample = batch_sample;
    task->loss_grad = batch_loss_grad;
    task->destroy = batch_destroy;
    if (same) snprintf(task->name, sizeof task->name, "%dx %.50s", B, child[0].name);
    else snprintf(task->name, sizeof task->name, "mix of %d: %.30s, ...", B, child[0].name);
    return L2L_STATUS_OK;
}
