/* Truncated backpropagation through time, the paper's estimator: every epoch fresh
 * optimizees run for `steps` steps in unrolls of T = `unroll`; each unroll gives one
 * meta-update, the gradient of sum_{t in the unroll} f(theta_t) (or log f) with second
 * derivatives dropped (src/lstm/unroll.c), f the meta-batch's mean loss. theta and the
 * LSTM state carry on into the next unroll without gradient. The truncated runs are
 * shared with imitation (imitate.c), which adds a teacher and weighs the objective by
 * zero.
 *
 * A meta-batch of B optimizees, each a unit of work (comm.h): in every unroll each
 * process runs the forward of its optimizees, the processes exchange the B loss curves
 * (T + 1 doubles each), every process forms the batch's mean loss f_t = 1/B sum_i
 * f_i(theta_t) and from it the steps' weights (w_t, or w_t / f_t for the log objective:
 * d log f_t = d f_t / f_t), each process backpropagates through its optimizees with
 * those weights, and the processes exchange the B meta-gradients (P floats each), which
 * every process sums in optimizee order, in double, and divides by B: the gradient of
 * the batch's meta-loss, whose optimizee i enters through f_t with weight 1/B. */
#include <stdio.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

void l2l_meta_child_rng(uint64_t epoch_seed, int i, l2l_rng *rng) { l2l_rng_seed(rng, epoch_seed, (uint64_t)i); }

/* The teacher's update from grad, as an imitation target (l2l_unroll_config.teacher). */
static void teacher_target(void *ctx, const float *grad, float *target)
{
    l2l_optimizer *o = ctx;
    memset(target, 0, o->n * sizeof(float));
    l2l_optimizer_step(o, grad, target); /* theta += update, from theta = 0 */
}

l2l_status l2l_truncated_create(l2l_truncated *s, const l2l_lstm *net, const l2l_meta_batch *mb,
                                const l2l_unroll_config *ucfg, const l2l_opt_spec *teacher,
                                l2l_error *err)
{
    l2l_status st;
    const int T = ucfg->T;
    s->mb = *mb;
    s->T = T;
    s->log_loss = ucfg->objective == L2L_OBJECTIVE_LOG;
    if ((st = l2l_share_create(&s->losses, mb->comm, mb->B, (size_t)(T + 1) * sizeof(double), err)) ||
        (st = l2l_share_create(&s->grads, mb->comm, mb->B, net->n_params * sizeof(float), err)))
        return st;
    const int mine = s->grads.hi - s->grads.lo;
    s->run = l2l_alloc((mine > 0 ? (size_t)mine : 1) * sizeof *s->run);
    s->f = l2l_alloc((size_t)(T + 1) * sizeof(double));
    s->w = l2l_alloc((size_t)T * sizeof(float));
    if (!s->run || !s->f || !s->w)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the runs of %d optimizees", mine);
    for (int i = 0; i < mine; i++) {
        l2l_truncated_run *r = &s->run[i];
        r->task = &mb->child[s->grads.lo + i];
        const size_t n = r->task->n;
        l2l_unroll_config uc = *ucfg;
        uc.objective = L2L_OBJECTIVE_SUM; /* the weights come from the meta-batch's losses */
        if (teacher) {
            if ((st = l2l_optimizer_create(&r->teacher, teacher, n, err))) return st; /* hand-written */
            uc.teacher = teacher_target, uc.teacher_ctx = &r->teacher;
        }
        if ((st = l2l_unroll_create(&r->unroll, net, n, r->task->group, &uc, err)) ||
            (st = l2l_lstm_state_create(&r->state, net, n, r->task->group, err)))
            return st;
        if (!(r->theta = l2l_alloc(n * sizeof(float))))
            return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate an optimizee of %zu coordinates", n);
    }
    return L2L_STATUS_OK;
}

int l2l_truncated_updates(const l2l_train_config *cfg) { return cfg->steps / cfg->unroll; }

void l2l_truncated_begin(l2l_truncated *s, uint64_t epoch_seed)
{
    for (int i = 0; i < s->grads.hi - s->grads.lo; i++) {
        l2l_truncated_run *r = &s->run[i];
        l2l_meta_child_rng(epoch_seed, s->grads.lo + i, &r->rng);
        r->task->sample(r->task->ctx, &r->rng, r->theta);
        l2l_lstm_state_zero(&r->state);
        if (r->unroll.cfg.teacher) l2l_optimizer_reset(&r->teacher);
    }
}

/* "unroll k (steps a..b)" and, in a meta-batch, which optimizee, before msg. */
static l2l_status where(l2l_status st, const l2l_truncated *s, int k, int i, l2l_error *err)
{
    char msg[sizeof err->msg], who[48] = "";
    snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
    if (s->mb.B > 1 && i >= 0) snprintf(who, sizeof who, ", optimizee %d of %d", i + 1, s->mb.B);
    return l2l_error_set(err, st, "unroll %d (steps %d..%d)%s: %s", k + 1, k * s->T, (k + 1) * s->T, who, msg);
}

l2l_status l2l_truncated_gradient(l2l_truncated *s, const l2l_lstm *net, int k, float *dphi,
                                  double *loss_sum, l2l_error *err)
{
    const int T = s->T, B = s->mb.B, lo = s->grads.lo, hi = s->grads.hi;
    const size_t P = net->n_params;
    l2l_error e;
    int bad;
    for (int i = lo; i < hi; i++) {
        l2l_truncated_run *r = &s->run[i - lo];
        l2l_status st = l2l_unroll_forward(&r->unroll, net, r->task, r->theta, &r->state, &r->rng,
                                           l2l_share_at(&s->losses, i), &e);
        if (st) l2l_share_fail(&s->losses, i, st, &e);
    }
    l2l_status st = l2l_share_exchange(&s->losses, &bad, err);
    if (st) return where(st, s, k, bad, err);

    /* The meta-batch's mean loss, in optimizee order, and the weights of its steps. */
    for (int t = 0; t <= T; t++) {
        double f = 0;
        for (int i = 0; i < B; i++) f += ((const double *)l2l_share_at(&s->losses, i))[t];
        s->f[t] = f / B;
    }
    for (int t = 1; t <= T; t++) {
        const double w = s->weights ? s->weights[t - 1] : 1.0;
        if (s->log_loss && !(s->f[t] > 0))
            return where(l2l_error_set(err, L2L_STATUS_ARG, "the log meta-loss needs positive losses, got %g "
                                       "at step %d", s->f[t], t), s, k, -1, err);
        s->w[t - 1] = (float)(s->log_loss ? w / s->f[t] : w);
        *loss_sum += s->f[t];
    }

    for (int i = lo; i < hi; i++) {
        l2l_truncated_run *r = &s->run[i - lo];
        float *g = l2l_share_at(&s->grads, i);
        memset(g, 0, P * sizeof(float));
        st = l2l_unroll_backward(&r->unroll, net, r->task->grad_scale, s->w, g, &e);
        if (st) l2l_share_fail(&s->grads, i, st, &e);
    }
    if ((st = l2l_share_exchange(&s->grads, &bad, err))) return where(st, s, k, bad, err);
    for (size_t j = 0; j < P; j++) {
        double g = 0;
        for (int i = 0; i < B; i++) g += ((const float *)l2l_share_at(&s->grads, i))[j];
        dphi[j] += (float)(g / B);
    }
    return L2L_STATUS_OK;
}

void l2l_truncated_free(l2l_truncated *s)
{
    for (int i = 0; s->run && i < s->grads.hi - s->grads.lo; i++) {
        l2l_truncated_run *r = &s->run[i];
        l2l_unroll_free(&r->unroll);
        l2l_lstm_state_free(&r->state);
        l2l_optimizer_free(&r->teacher);
        l2l_free(r->theta);
    }
    l2l_free(s->run);
    l2l_share_free(&s->losses);
    l2l_share_free(&s->grads);
    l2l_free(s->f);
    l2l_free(s->w);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------ the estimator's table */

static l2l_status tbptt_create(void *self, const l2l_lstm *net, const l2l_meta_batch *mb,
                               const l2l_train_config *cfg, l2l_error *err)
{
    const l2l_unroll_config ucfg = {.T = cfg->unroll, .objective = cfg->objective};
    return l2l_truncated_create(self, net, mb, &ucfg, NULL, err);
}

static void tbptt_begin(void *self, uint64_t epoch_seed) { l2l_truncated_begin(self, epoch_seed); }

static l2l_status tbptt_gradient(void *self, const l2l_lstm *net, int k, float *dphi, double *loss_sum,
                                 l2l_error *err)
{
    return l2l_truncated_gradient(self, net, k, dphi, loss_sum, err);
}

static void tbptt_free(void *self) { l2l_truncated_free(self); }

const l2l_estimator_ops l2l_estimator_tbptt = {
    .name = "truncated backpropagation", .size = sizeof(l2l_truncated),
    .create = tbptt_create, .updates_per_epoch = l2l_truncated_updates, .begin_epoch = tbptt_begin,
    .gradient = tbptt_gradient, .free = tbptt_free};
