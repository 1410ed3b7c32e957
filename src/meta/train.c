/* Meta-training (docs/METHOD.md section 4): epochs of fresh optimizees. In every epoch the
 * estimator (estimator.h: truncated backpropagation, evolution strategies or imitation)
 * gives one or more meta-gradients, and each is clipped and applied to phi by
 * meta-Adam. Every eval_every epochs (and after the last) phi is scored on a fixed set
 * of validation problems (by default the mean of f(theta_t) over t = 1..steps, the
 * meta-objective; or the final loss) and the best phi is kept: early stopping as in
 * the paper. Between two epochs the whole of meta-training is an l2l_train_state, from
 * which l2l_meta_train_resume goes on exactly as if it had never stopped.
 *
 * On several processes (cfg->comm, docs/DISTRIBUTED.md) every process runs this same
 * loop: the estimator and validation share their units of work (comm.h) and combine
 * them in one order, so every process takes the same meta-updates. Rank 0's starting
 * state goes to every process first, and after every epoch the processes check that
 * their phi still agree and agree on whether to stop. A batch task's problems are the
 * meta-batch, each an optimizee of its own with a stream drawn from the epoch's seed
 * (one draw of the training stream per epoch), so that the run of optimizee i does not
 * depend on which process runs it. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "meta/estimator.h"
#include "optim/adam.h"
#include "optim/evaluate.h"
#include "tasks/batch.h"
#include "util/util.h"

static const l2l_estimator_ops *const estimators[] = {
    [L2L_ESTIMATOR_TBPTT] = &l2l_estimator_tbptt,
    [L2L_ESTIMATOR_ES] = &l2l_estimator_es,
    [L2L_ESTIMATOR_IMITATE] = &l2l_estimator_imitate,
    [L2L_ESTIMATOR_PES] = &l2l_estimator_pes,
};

void l2l_train_config_default(l2l_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = 1000;
    cfg->steps = 100;
    cfg->unroll = 20;
    cfg->lr = 1e-3f;
    cfg->clip = 0;
    cfg->eval_every = 50;
    cfg->n_valid = 20;
    cfg->seed = 1;
    cfg->estimator = L2L_ESTIMATOR_TBPTT;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* score: the mean over problems of the mean loss over steps 1..steps (or, selecting by
 * the final loss, of the loss at the last step); +Inf if any diverged. all_steps (may be
 * NULL): the mean over steps 1..steps whatever the selection, the scale of an epoch's
 * training loss. The problems are the share's units, each process evaluating its own and
 * every process scoring all of them in order. */
static l2l_status validate(l2l_task *task, const l2l_lstm *net, const l2l_train_config *cfg,
                           l2l_share *runs, double *score, double *all_steps, l2l_error *err)
{
    const l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, net};
    const l2l_eval_config ecfg = {cfg->n_valid, cfg->steps, cfg->seed, L2L_STREAM_VALID};
    for (int r = runs->lo; r < runs->hi; r++) {
        l2l_error e;
        l2l_status st = l2l_evaluate_runs(task, &spec, &ecfg, r, 1, l2l_share_at(runs, r), &e);
        if (st) l2l_share_fail(runs, r, st, &e);
    }
    l2l_status st = l2l_share_exchange(runs, NULL, err);
    if (st) return st;
    double sum = 0, last = 0;
    for (int r = 0; r < cfg->n_valid; r++) {
        const double *curve = l2l_share_at(runs, r);
        for (int t = 1; t <= cfg->steps; t++) sum += curve[t];
        last += curve[cfg->steps];
    }
    const double mean = sum / ((double)cfg->n_valid * cfg->steps);
    *score = cfg->selection == L2L_SELECTION_FINAL ? last / cfg->n_valid : mean;
    if (!isfinite(*score)) *score = INFINITY;
    if (all_steps) *all_steps = isfinite(mean) ? mean : INFINITY;
    return L2L_STATUS_OK;
}

/* Clips dphi (P) to 2-norm cfg->clip (if on), then one step of meta-Adam (beta 0.9,
 * 0.999, eps 1e-8) on phi with the state's moments; returns the norm before clipping. */
static double meta_adam_step(l2l_train_state *s, const l2l_train_config *cfg, float *dphi)
{
    const size_t P = s->n_params;
    double norm2 = 0;
    for (size_t i = 0; i < P; i++) norm2 += (double)dphi[i] * dphi[i];
    const double norm = sqrt(norm2);
    if (cfg->clip > 0 && norm > cfg->clip)
        for (size_t i = 0; i < P; i++) dphi[i] *= (float)(cfg->clip / norm);
    l2l_adam_update(P, s->phi, dphi, s->adam_m, s->adam_v, ++s->adam_t, cfg->lr, 0.9f, 0.999f, 1e-8f);
    return norm;
}

/* Divergence: a non-finite training loss or phi, or a training loss
 * L2L_DIVERGENCE_FACTOR times epoch 1's (in epoch 1 itself, times start, the starting
 * phi's validation loss averaged over every step as the training loss is, when there is
 * one: a meta-learning rate can blow the optimizees up within the first epoch). Not its
 * selection score: selecting by the final loss, that is the last step's alone, which on
 * easy problems is a million times below the run's mean for a perfectly good phi. A run
 * of the learned optimizer that raises the loss a million-fold has no result worth
 * keeping, and without this test a run at --lr 1e6 (losses of 1e18) would end
 * "successfully" with its initial phi. */
static l2l_status check_divergence(const l2l_train_state *s, double train_loss, double start,
                                   l2l_error *err)
{
    size_t bad = 0;
    while (bad < s->n_params && isfinite(s->phi[bad])) bad++;
    if (bad < s->n_params)
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "meta-training diverged in epoch %d: phi[%zu] became %g",
                             s->epoch + 1, bad, (double)s->phi[bad]);
    const double ref = s->epoch > 0 ? s->first_loss : start; /* +Inf: no reference */
    if (!isfinite(train_loss) || train_loss > L2L_DIVERGENCE_FACTOR * ref)
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "meta-training diverged in epoch %d: its mean "
                             "training loss is %g, against %g %s", s->epoch + 1, train_loss, ref,
                             s->epoch > 0 ? "in epoch 1" : "for the starting phi on validation");
    return L2L_STATUS_OK;
}

/* Restores `from` into the live state s (whose buffers are the run's own). */
static l2l_status restore(l2l_train_state *s, const l2l_train_state *from, l2l_rng *own,
                          l2l_error *err)
{
    const size_t P = s->n_params;
    const l2l_lstm_config *a = &from->arch, *b = &s->arch;
    int same_arch = a->layers == b->layers && a->hidden == b->hidden && a->preproc == b->preproc &&
                    a->p == b->p && a->scale == b->scale && l2l_lstm_n_groups(a) == l2l_lstm_n_groups(b);
    for (int g = 0; same_arch && g < b->groups && b->groups > 1; g++)
        same_arch = strcmp(a->group_names[g], b->group_names[g]) == 0;
    if (from->n_params != P || !same_arch || !own != !from->has_noise)
        return l2l_error_set(err, L2L_STATUS_ARG, "the training state does not fit this run: %zu weights "
                             "%s, and %s estimator stream, expected %zu weights and %s", from->n_params,
                             same_arch ? "of this architecture" : "of another architecture",
                             from->has_noise ? "an" : "no", P, own ? "an" : "no");
    memcpy(s->phi, from->phi, P * sizeof(float));
    memcpy(s->best, from->best, P * sizeof(float));
    memcpy(s->adam_m, from->adam_m, P * sizeof(float));
    memcpy(s->adam_v, from->adam_v, P * sizeof(float));
    s->epoch = from->epoch;
    s->adam_t = from->adam_t;
    s->best_valid = from->best_valid;
    s->best_epoch = from->best_epoch;
    s->first_loss = from->first_loss;
    s->seconds = from->seconds;
    s->train_rng = from->train_rng;
    if (own) *own = from->noise;
    return L2L_STATUS_OK;
}

static l2l_status check_config(const l2l_train_config *cfg, l2l_error *err)
{
    if (cfg->epochs < 1 || cfg->steps < 1 || cfg->unroll < 1)
        return l2l_error_set(err, L2L_STATUS_ARG, "epochs, steps and unroll must be >= 1 (got %d, %d, %d)",
                             cfg->epochs, cfg->steps, cfg->unroll);
    if (cfg->steps % cfg->unroll != 0)
        return l2l_error_set(err, L2L_STATUS_ARG, "steps (%d) must be a multiple of the unroll length (%d)",
                             cfg->steps, cfg->unroll);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return l2l_error_set(err, L2L_STATUS_ARG, "meta learning rate must be positive, got %g", (double)cfg->lr);
    if (cfg->clip < 0 || !isfinite(cfg->clip))
        return l2l_error_set(err, L2L_STATUS_ARG, "gradient clip must be >= 0, got %g", (double)cfg->clip);
    if (cfg->eval_every < 0 || (cfg->eval_every > 0 && cfg->n_valid < 1))
        return l2l_error_set(err, L2L_STATUS_ARG, "validation needs eval_every >= 0 and n_valid >= 1");
    if (cfg->objective != L2L_OBJECTIVE_SUM && cfg->objective != L2L_OBJECTIVE_LOG)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown objective %d (expected sum or log)",
                             (int)cfg->objective);
    if ((unsigned)cfg->estimator >= sizeof estimators / sizeof *estimators)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown meta-gradient estimator %d", (int)cfg->estimator);
    const l2l_comm *c = cfg->comm;
    if (c && (!c->allgather || !c->broadcast || c->size < 1 || c->rank < 0 || c->rank >= c->size))
        return l2l_error_set(err, L2L_STATUS_ARG, "the communicator is not usable: process %d of %d%s", c->rank,
                             c->size, c->allgather && c->broadcast ? "" : ", without allgather and broadcast");
    return L2L_STATUS_OK;
}

/* What rank 0 sends every process at the start: the state's counters and streams, then
 * phi, best, adam_m and adam_v (4 P floats). */
typedef struct {
    int64_t epoch, adam_t, best_epoch;
    double best_valid, first_loss, seconds;
    l2l_rng train_rng, noise;
} sync_head;

/* Every process continues from rank 0's state, whatever it loaded or drew itself. */
static l2l_status sync_state(const l2l_comm *comm, l2l_train_state *s, l2l_rng *own, void *buf,
                             l2l_error *err)
{
    const size_t P = s->n_params;
    sync_head *h = buf;
    float *v = (float *)(h + 1);
    *h = (sync_head){s->epoch, s->adam_t, s->best_epoch, s->best_valid, s->first_loss, s->seconds,
                     s->train_rng, own ? *own : s->noise};
    float *const parts[4] = {s->phi, s->best, s->adam_m, s->adam_v};
    for (int i = 0; i < 4; i++) memcpy(v + i * P, parts[i], P * sizeof(float));
    l2l_status st = comm->broadcast(comm->ctx, buf, sizeof *h + 4 * P * sizeof(float), 0, err);
    if (st) return st;
    for (int i = 0; i < 4; i++) memcpy(parts[i], v + i * P, P * sizeof(float));
    s->epoch = (int)h->epoch, s->adam_t = h->adam_t, s->best_epoch = (int)h->best_epoch;
    s->best_valid = h->best_valid, s->first_loss = h->first_loss, s->seconds = h->seconds;
    s->train_rng = h->train_rng;
    if (own) *own = h->noise;
    return L2L_STATUS_OK;
}

/* FNV-1a of phi's bytes. */
static uint64_t phi_hash(const float *phi, size_t P)
{
    const unsigned char *b = (const unsigned char *)phi;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < P * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* After every epoch on several processes: each process's phi (as a hash) and whether its
 * callback asked to stop. */
typedef struct {
    uint64_t hash;
    int32_t stop;
} epoch_end;

/* Collective: the processes' phi must agree (they compute the same updates; a machine
 * that rounds differently, such as a node of another CPU type whose libm takes other
 * code paths, would make them drift apart unseen); *stop becomes whether any process
 * asked to stop. */
static l2l_status end_epoch(l2l_share *ends, const l2l_train_state *s, int *stop, l2l_error *err)
{
    epoch_end *mine = l2l_share_at(ends, ends->lo);
    *mine = (epoch_end){phi_hash(s->phi, s->n_params), *stop};
    l2l_status st = l2l_share_exchange(ends, NULL, err);
    if (st) return st;
    const epoch_end *first = l2l_share_at(ends, 0);
    for (int r = 0; r < ends->units; r++) {
        const epoch_end *e = l2l_share_at(ends, r);
        if (e->hash != first->hash)
            return l2l_error_set(err, L2L_STATUS_IO, "after epoch %d, process %d's phi differs from process "
                                 "0's: the processes do not compute alike (run the same build of l2l on "
                                 "machines of the same kind)", s->epoch, r);
        *stop |= e->stop != 0;
    }
    return L2L_STATUS_OK;
}

l2l_status l2l_meta_train(l2l_lstm *net, l2l_task *task, const l2l_train_config *cfg,
                          l2l_train_callback cb, void *cb_ctx, l2l_error *err)
{
    return l2l_meta_train_resume(net, task, cfg, NULL, cb, cb_ctx, err);
}

l2l_status l2l_meta_train_resume(l2l_lstm *net, l2l_task *task, const l2l_train_config *cfg,
                                 const l2l_train_state *from, l2l_train_callback cb, void *cb_ctx,
                                 l2l_error *err)
{
    l2l_status st = check_config(cfg, err);
    if (st || (st = l2l_lstm_check_task(net, task, err))) return st;
    const l2l_estimator_ops *ops = estimators[cfg->estimator];
    const l2l_comm *comm = cfg->comm ? cfg->comm : &l2l_comm_one;
    l2l_meta_batch mb = {task, 1, comm};
    l2l_task *children;
    const int B = l2l_task_batch_children(task, &children);
    if (B > 0) mb.child = children, mb.B = B;
    const size_t P = net->n_params;
    void *est = l2l_alloc(ops->size);
    float *dphi = l2l_alloc(P * sizeof(float));
    /* The live state: phi is the net's own buffer. */
    l2l_train_state s = {.arch = net->cfg, .n_params = P, .phi = net->phi, .best = l2l_alloc(P * sizeof(float)),
                         .adam_m = l2l_alloc(P * sizeof(float)), .adam_v = l2l_alloc(P * sizeof(float)),
                         .best_valid = INFINITY};
    if (s.best) memcpy(s.best, net->phi, P * sizeof(float)); /* what every return leaves in phi */
    void *sync = comm->size > 1 ? l2l_alloc(sizeof(sync_head) + 4 * P * sizeof(float)) : NULL;
    l2l_share valid = {0}, ends = {0};
    l2l_rng *own = NULL;
    if (!est || !dphi || !s.best || !s.adam_m || !s.adam_v || (comm->size > 1 && !sync))
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate meta-training buffers");
    if (!st) st = ops->create(est, net, &mb, cfg, err);
    if (!st && cfg->eval_every > 0)
        st = l2l_share_create(&valid, comm, cfg->n_valid, (size_t)(cfg->steps + 1) * sizeof(double), err);
    if (!st && comm->size > 1) st = l2l_share_create(&ends, comm, comm->size, sizeof(epoch_end), err);
    if (!st) {
        own = ops->stream ? ops->stream(est) : NULL;
        s.has_noise = own != NULL;
        if (from) st = restore(&s, from, own, err);
        else l2l_rng_seed(&s.train_rng, cfg->seed, L2L_STREAM_TRAIN);
    }
    if ((st = l2l_comm_agree(comm, st, err))) goto done;
    if (comm->size > 1 && (st = sync_state(comm, &s, own, sync, err))) goto done;
    double start = INFINITY; /* the starting phi's validation loss over every step */
    if (!from && cfg->eval_every > 0) { /* the starting phi is a candidate too */
        if ((st = validate(task, net, cfg, &valid, &s.best_valid, &start, err))) goto done;
    }
    l2l_train_progress pr = {.valid_loss = NAN, .state = &s};
    const double t0 = now_seconds() - s.seconds;
    const int n_updates = ops->updates_per_epoch(cfg);
    while (s.epoch < cfg->epochs) {
        const int epoch = s.epoch + 1;
        ops->begin_epoch(est, l2l_rng_u64(&s.train_rng));
        double train = 0, gnorm = 0;
        for (int k = 0; k < n_updates; k++) {
            memset(dphi, 0, P * sizeof(float));
            if ((st = ops->gradient(est, net, k, dphi, &train, err))) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
                l2l_error_set(err, st, "meta-training epoch %d (%s), %s; phi was not updated from it "
                              "and the best phi so far is kept (try a lower --lr or --clip)", epoch,
                              ops->name, msg);
                goto done;
            }
            gnorm += meta_adam_step(&s, cfg, dphi);
        }
        pr.train_loss = train / cfg->steps;
        if ((st = check_divergence(&s, pr.train_loss, start, err))) goto done;
        if (epoch == 1) s.first_loss = pr.train_loss;
        s.epoch = pr.epoch = epoch;
        pr.grad_norm = gnorm / n_updates;
        pr.valid_loss = NAN;
        if (cfg->eval_every > 0 && (epoch % cfg->eval_every == 0 || epoch == cfg->epochs)) {
            if ((st = validate(task, net, cfg, &valid, &pr.valid_loss, NULL, err))) goto done;
            if (pr.valid_loss < s.best_valid) {
                s.best_valid = pr.valid_loss;
                s.best_epoch = epoch;
                memcpy(s.best, net->phi, P * sizeof(float));
            }
        }
        pr.best_valid = s.best_valid;
        pr.best_epoch = s.best_epoch;
        pr.seconds = s.seconds = now_seconds() - t0;
        pr.rng = s.train_rng;
        if (own) s.noise = *own;
        int stop = cb && cb(&pr, cb_ctx);
        if (comm->size > 1 && (st = end_epoch(&ends, &s, &stop, err))) goto done;
        if (stop) break;
    }
done:
    if (s.best && cfg->eval_every > 0) memcpy(net->phi, s.best, P * sizeof(float));
    if (est) ops->free(est);
    l2l_free(est), l2l_free(dphi), l2l_free(s.best), l2l_free(s.adam_m), l2l_free(s.adam_v);
    l2l_free(sync);
    l2l_share_free(&valid);
    l2l_share_free(&ends);
    return st;
}
