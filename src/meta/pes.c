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
 * epoch's optimizee and minibatches (common random numbers, as ES's pairs do), and
 * are not staggered: every meta-update of an epoch sees one phase of the run. A pair
 * one of whose particles diverged says nothing for the rest of its run; a meta-update
 * in which every pair has diverged is an error. */
#include <math.h>
#include <string.h>

#include "meta/estimator.h"
#include "util/util.h"

typedef struct {
    float *theta[2];          /* (N) the + and - particles' optimizees */
    float *grad[2];           /* (N) their gradients at theta, the next step's input */
    l2l_lstm_state state[2];
    float *xi;                /* (P) sum of the pair's e since the optimizee started */
    int alive;                /* neither particle has diverged */
} pes_pair;

typedef struct {
    l2l_task *task;
    int T;
    l2l_perturb pt;           /* the pairs, sigma, the noise stream, phi +- sigma e */
    l2l_rng mb;               /* the epoch's minibatch stream, shared by every particle */
    float *update;            /* (N) */
    pes_pair *pair;           /* (pt.pairs) */
} l2l_pes;

static void pes_free(void *self)
{
    l2l_pes *p = self;
    for (int k = 0; p->pair && k < p->pt.pairs; k++) {
        pes_pair *q = &p->pair[k];
        for (int s = 0; s < 2; s++) {
            l2l_free(q->theta[s]), l2l_free(q->grad[s]);
            l2l_lstm_state_free(&q->state[s]);
        }
        l2l_free(q->xi);
    }
    l2l_free(p->pair);
    l2l_perturb_free(&p->pt);
    l2l_free(p->update);
    memset(p, 0, sizeof *p);
}

static l2l_status pes_create(void *self, const l2l_lstm *net, l2l_task *task,
                             const l2l_train_config *cfg, l2l_error *err)
{
    l2l_pes *p = self;
    const size_t n = task->n, P = net->n_params;
    p->task = task;
    p->T = cfg->unroll;
    l2l_status st = l2l_perturb_create(&p->pt, net, cfg, err);
    if (st) return st;
    p->update = l2l_alloc(n * sizeof(float));
    p->pair = l2l_alloc((size_t)p->pt.pairs * sizeof *p->pair);
    int ok = p->update && p->pair;
    for (int k = 0; ok && k < p->pt.pairs; k++) {
        pes_pair *q = &p->pair[k];
        for (int s = 0; s < 2 && ok; s++) {
            if ((st = l2l_lstm_state_create(&q->state[s], net, n, err))) return st;
            q->theta[s] = l2l_alloc(n * sizeof(float));
            q->grad[s] = l2l_alloc(n * sizeof(float));
            ok = q->theta[s] && q->grad[s];
        }
        ok = ok && (q->xi = l2l_alloc(P * sizeof(float)));
    }
    if (!ok)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %d pairs of particles of %zu "
                             "coordinates for persistent ES", p->pt.pairs, n);
    return L2L_STATUS_OK;
}

static int pes_updates(const l2l_train_config *cfg) { return cfg->steps / cfg->unroll; }

/* A fresh optimizee for every particle, its gradient at theta0 from the epoch's own
 * minibatch stream (seeded from the training stream, as ES seeds its run's). */
static void pes_begin(void *self, l2l_rng *train_rng)
{
    l2l_pes *p = self;
    l2l_task *task = p->task;
    const size_t n = task->n;
    pes_pair *first = &p->pair[0];
    task->sample(task->ctx, train_rng, first->theta[0]);
    l2l_rng_seed(&p->mb, l2l_rng_u64(train_rng), 0);
    task->loss_grad(task->ctx, first->theta[0], first->grad[0], &p->mb);
    for (int k = 0; k < p->pt.pairs; k++) {
        pes_pair *q = &p->pair[k];
        for (int s = 0; s < 2; s++) {
            if (q != first || s) {
                memcpy(q->theta[s], first->theta[0], n * sizeof(float));
                memcpy(q->grad[s], first->grad[0], n * sizeof(float));
            }
            l2l_lstm_state_zero(&q->state[s]);
        }
        memset(q->xi, 0, p->pt.pert.n_params * sizeof(float));
        q->alive = 1;
    }
}

/* T steps of one particle at p->pt.pert from where it stands: its meta-loss over them,
 * sum_t f(theta_t) (or log f), +Inf if it diverged; *sum_f receives sum_t f. */
static double particle_run(l2l_pes *p, pes_pair *q, int s, l2l_rng *rng, double *sum_f)
{
    l2l_task *task = p->task;
    const size_t n = task->n;
    float *theta = q->theta[s], *grad = q->grad[s];
    double L = 0, F = 0;
    for (int t = 1; t <= p->T; t++) {
        l2l_lstm_step(&p->pt.pert, &q->state[s], grad, p->update);
        for (size_t i = 0; i < n; i++) theta[i] += p->update[i];
        const double f = task->loss_grad(task->ctx, theta, grad, rng);
        if (!isfinite(f) || (p->pt.log_loss && !(f > 0))) return INFINITY;
        L += p->pt.log_loss ? log(f) : f;
        F += f;
    }
    *sum_f = F;
    return isfinite(L) ? L : INFINITY;
}

static l2l_status pes_gradient(void *self, const l2l_lstm *net, int k, l2l_rng *train_rng,
                               float *dphi, double *loss_sum, l2l_error *err)
{
    l2l_pes *p = self;
    const size_t P = net->n_params;
    const float sigma = p->pt.sigma;
    l2l_rng mb_after = p->mb;
    int used = 0;
    double sum_f = 0;
    for (int j = 0; j < p->pt.pairs; j++) {
        pes_pair *q = &p->pair[j];
        /* drawn for every pair, alive or not, so that the noise stream does not depend
         * on which pairs diverged */
        l2l_perturb_draw(&p->pt);
        if (!q->alive) continue;
        for (size_t i = 0; i < P; i++) q->xi[i] += p->pt.e[i];
        double L[2], F[2];
        for (int s = 0; s < 2; s++) {
            l2l_perturb_set(&p->pt, net, s ? -1 : 1);
            l2l_rng rng = p->mb;
            L[s] = particle_run(p, q, s, &rng, &F[s]);
            mb_after = rng;
        }
        if (!isfinite(L[0]) || !isfinite(L[1])) {
            q->alive = 0;
            continue;
        }
        const float c = (float)((L[0] - L[1]) / (2.0 * sigma));
        for (size_t i = 0; i < P; i++) dphi[i] += c * q->xi[i];
        sum_f += F[0] + F[1];
        used++;
    }
    if (used == 0)
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "truncation %d (steps %d..%d): every one of the %d "
                             "pairs of particles at phi +- sigma e (sigma %g) has diverged, so there is no "
                             "estimate of the meta-gradient (try a smaller sigma or --lr)", k + 1, k * p->T,
                             (k + 1) * p->T, p->pt.pairs, (double)sigma);
    for (size_t i = 0; i < P; i++) dphi[i] /= (float)used;
    p->mb = mb_after; /* every particle drew the same minibatches */
    *loss_sum += sum_f / (2 * used);
    return L2L_STATUS_OK;
}

/* The particles (theta, LSTM state, gradient, xi, alive) and the minibatch stream are
 * all redrawn by pes_begin from the training stream, so between epochs the noise
 * stream is PES's whole state. */
static l2l_rng *pes_stream(void *self) { return &((l2l_pes *)self)->pt.noise; }

const l2l_estimator_ops l2l_estimator_pes = {
    .name = "persistent evolution strategies", .size = sizeof(l2l_pes),
    .create = pes_create, .updates_per_epoch = pes_updates, .begin_epoch = pes_begin,
    .gradient = pes_gradient, .stream = pes_stream, .free = pes_free};
