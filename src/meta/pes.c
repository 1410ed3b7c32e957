/* Persistent evolution strategies (Vicol, Metz and Sohl-Dickstein, ICML 2021, "Unbiased
 * gradient estimation in unrolled computation graphs with persistent evolution
 * strategies"): one meta-update per truncation of T = `unroll` steps, like truncated
 * backpropagation, but unbiased for the gradient of the Gaussian-smoothed meta-loss of
 * the whole run, like ES over the whole run (es.c).
 *
 * K antithetic pairs of particles each run the epoch's optimizee from its start, one
 * particle at phi + sigma e_k and one at phi - sigma e_k, with a fresh e_k ~ N(0, I)
 * for every truncation; each particle carries its own theta and LSTM state from one
 * truncation into the next. With L^+-_k the pair's meta-loss over truncation j and
 * xi_k = sum of the pair's e over truncations 0..j (its accumulated perturbation, reset
 * when the optimizee starts), truncation j's estimate is
 *   g_j = 1/(2 sigma K) sum_k (L^+_k - L^-_k) xi_k.
 * Why xi and not e_j: L_j depends on the perturbations of every truncation so far,
 * through the state it starts from; for the smoothed loss
 * E[L_j(phi + sigma e_0, ..., phi + sigma e_j)], whose gradient in phi is the sum of
 * its gradients in each truncation's perturbed phi, the antithetic estimate of that sum
 * is the difference times the sum of the perturbations. Truncated backpropagation
 * keeps only the last term and, besides, drops how phi changed the state truncation j
 * starts from; that bias toward short horizons is what PES removes. Summed over the
 * truncations of a run, the g_j are an unbiased estimate of the smoothed whole-run
 * gradient (tests/test_pes.c measures it against finite differences).
 *
 * Forward only (the inference kernel, no unroll caches). The particles share the
 * epoch's optimizees and minibatches (common random numbers, as ES's pairs do), and
 * are not staggered: every meta-update of an epoch sees one phase of the run. With a
 * meta-batch of B optimizees a pair's L is the meta-loss of the batch's mean loss, and
 * each of the 2KB particles (optimizee i of pair k's + or - side, perturb.c) is a unit
 * of work: the process that runs it keeps its state and sends its losses over the
 * truncation; every process keeps every pair's xi and forms the same estimate. A pair
 * one of whose runs diverged says nothing for the rest of its run; a meta-update in
 * which every pair has diverged is an error. */
#include <math.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

typedef struct {
    l2l_task *task;           /* its optimizee */
    float *theta, *grad;      /* (n) where it stands and its gradient, the next step's input */
    l2l_lstm_state state;
    l2l_rng rng;              /* its minibatches, the same draws as its optimizee's other particles */
} particle;

typedef struct {
    l2l_meta_batch mb;
    int T;
    l2l_perturb pt;           /* the pairs, sigma, the noise stream, phi +- sigma e */
    l2l_share curves;         /* per particle: f over the truncation, T doubles */
    particle *part;           /* (hi - lo) this process's particles */
    float *update;            /* (max n) */
    float *xi;                /* (pairs, P) every pair's sum of e since the optimizees started */
    int *alive;               /* (pairs) neither side of the pair has diverged */
} l2l_pes;

static void pes_free(void *self)
{
    l2l_pes *p = self;
    for (int u = 0; p->part && u < p->curves.hi - p->curves.lo; u++) {
        l2l_free(p->part[u].theta), l2l_free(p->part[u].grad);
        l2l_lstm_state_free(&p->part[u].state);
    }
    l2l_free(p->part);
    l2l_share_free(&p->curves);
    l2l_perturb_free(&p->pt);
    l2l_free(p->update), l2l_free(p->xi), l2l_free(p->alive);
    memset(p, 0, sizeof *p);
}

static l2l_status pes_create(void *self, const l2l_lstm *net, const l2l_meta_batch *mb,
                             const l2l_train_config *cfg, l2l_error *err)
{
    l2l_pes *p = self;
    const size_t P = net->n_params;
    p->mb = *mb;
    p->T = cfg->unroll;
    l2l_status st;
    if ((st = l2l_perturb_create(&p->pt, net, cfg, err)) ||
        (st = l2l_share_create(&p->curves, mb->comm, mb->B * 2 * p->pt.pairs, (size_t)p->T * sizeof(double),
                               err)))
        return st;
    const int K = p->pt.pairs, mine = p->curves.hi - p->curves.lo;
    size_t nmax = 0;
    for (int i = 0; i < mb->B; i++) nmax = mb->child[i].n > nmax ? mb->child[i].n : nmax;
    p->update = l2l_alloc(nmax * sizeof(float));
    p->xi = l2l_alloc((size_t)K * P * sizeof(float));
    p->alive = l2l_alloc((size_t)K * sizeof(int));
    p->part = l2l_alloc((mine > 0 ? (size_t)mine : 1) * sizeof *p->part);
    int ok = p->update && p->xi && p->alive && p->part;
    for (int u = 0; ok && u < mine; u++) {
        particle *q = &p->part[u];
        q->task = &mb->child[(p->curves.lo + u) / (2 * K)];
        if ((st = l2l_lstm_state_create(&q->state, net, q->task->n, q->task->group, err))) return st;
        q->theta = l2l_alloc(q->task->n * sizeof(float));
        q->grad = l2l_alloc(q->task->n * sizeof(float));
        ok = q->theta && q->grad;
    }
    if (!ok)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %d particles of up to %zu coordinates "
                             "for persistent ES", mine, nmax);
    return L2L_STATUS_OK;
}

static int pes_updates(const l2l_train_config *cfg) { return cfg->steps / cfg->unroll; }

/* Fresh optimizees for this process's particles: each optimizee drawn once from its own
 * stream, its gradient at theta0 from the rest of that stream (its minibatches), copied
 * into each of its particles here. */
static void pes_begin(void *self, uint64_t epoch_seed)
{
    l2l_pes *p = self;
    const int K = p->pt.pairs, lo = p->curves.lo, hi = p->curves.hi;
    const particle *start = NULL; /* the first particle of the optimizee being set up */
    for (int u = lo; u < hi; u++) {
        particle *q = &p->part[u - lo];
        const size_t n = q->task->n;
        if (!start || start->task != q->task) {
            l2l_meta_child_rng(epoch_seed, u / (2 * K), &q->rng);
            q->task->sample(q->task->ctx, &q->rng, q->theta);
            q->task->loss_grad(q->task->ctx, q->theta, q->grad, &q->rng);
            start = q;
        } else {
            memcpy(q->theta, start->theta, n * sizeof(float));
            memcpy(q->grad, start->grad, n * sizeof(float));
            q->rng = start->rng;
        }
        l2l_lstm_state_zero(&q->state);
    }
    memset(p->xi, 0, (size_t)K * p->pt.pert.n_params * sizeof(float));
    for (int k = 0; k < K; k++) p->alive[k] = 1;
}

/* T steps of a particle at p->pt.pert from where it stands: f at each into curve (T),
 * +Inf from the first non-finite loss on. */
static void particle_run(l2l_pes *p, particle *q, double *curve)
{
    l2l_task *task = q->task;
    const size_t n = task->n;
    for (int t = 1; t <= p->T; t++) {
        l2l_lstm_step(&p->pt.pert, &q->state, q->grad, p->update);
        for (size_t i = 0; i < n; i++) q->theta[i] += p->update[i];
        const double f = task->loss_grad(task->ctx, q->theta, q->grad, &q->rng);
        if (!isfinite(f)) {
            for (int s = t; s <= p->T; s++) curve[s - 1] = INFINITY;
            return;
        }
        curve[t - 1] = f;
    }
}

static l2l_status pes_gradient(void *self, const l2l_lstm *net, int k, float *dphi, double *loss_sum,
                               l2l_error *err)
{
    l2l_pes *p = self;
    const size_t P = net->n_params;
    const float sigma = p->pt.sigma;
    const int K = p->pt.pairs, B = p->mb.B, lo = p->curves.lo, hi = p->curves.hi;
    l2l_perturb_next(&p->pt);
    for (int j = 0; j < K; j++) {
        /* drawn for every pair, alive or not, on every process: every xi is needed for
         * the estimate, and the draws do not depend on which pairs diverged */
        l2l_perturb_draw(&p->pt, j);
        if (!p->alive[j]) continue;
        float *xi = p->xi + (size_t)j * P;
        for (size_t i = 0; i < P; i++) xi[i] += p->pt.e[i];
        for (int s = 0; s < 2; s++) {
            int set = 0;
            for (int i = 0; i < B; i++) {
                const int u = l2l_particle(K, i, j, s);
                if (u < lo || u >= hi) continue;
                if (!set++) l2l_perturb_set(&p->pt, net, s ? -1 : 1);
                particle_run(p, &p->part[u - lo], l2l_share_at(&p->curves, u));
            }
        }
    }
    l2l_status st = l2l_share_exchange(&p->curves, NULL, err);
    if (st) return st;
    int used = 0;
    double sum_f = 0;
    for (int j = 0; j < K; j++) {
        if (!p->alive[j]) continue;
        double L[2], F[2];
        l2l_perturb_pair(&p->pt, &p->curves, B, p->T, j, L, F);
        if (!isfinite(L[0]) || !isfinite(L[1])) {
            p->alive[j] = 0;
            continue;
        }
        const float c = (float)((L[0] - L[1]) / (2.0 * sigma));
        const float *xi = p->xi + (size_t)j * P;
        for (size_t i = 0; i < P; i++) dphi[i] += c * xi[i];
        sum_f += F[0] + F[1];
        used++;
    }
    if (used == 0)
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "truncation %d (steps %d..%d): every one of the %d "
                             "pairs of particles at phi +- sigma e (sigma %g) has diverged, so there is no "
                             "estimate of the meta-gradient (try a smaller sigma or --lr)", k + 1, k * p->T,
                             (k + 1) * p->T, K, (double)sigma);
    for (size_t i = 0; i < P; i++) dphi[i] /= (float)used;
    *loss_sum += sum_f / (2 * used);
    return L2L_STATUS_OK;
}

/* The particles (theta, LSTM state, gradient, minibatches), xi and alive are all redrawn
 * by pes_begin from the epoch's seed, so between epochs the noise stream is PES's whole
 * state. */
static l2l_rng *pes_stream(void *self) { return &((l2l_pes *)self)->pt.noise; }

const l2l_estimator_ops l2l_estimator_pes = {
    .name = "persistent evolution strategies", .size = sizeof(l2l_pes),
    .create = pes_create, .updates_per_epoch = pes_updates, .begin_epoch = pes_begin,
    .gradient = pes_gradient, .stream = pes_stream, .free = pes_free};
