/*
 * Meta-training shared among processes (issue 15) at the library level, without MPI: K
 * "processes" are K threads of this program, each with its own task and net, joined by
 * an l2l_comm whose collectives go through shared memory (a barrier, then copies). For
 * every estimator, meta-batches that K divides and does not, and K above the meta-batch,
 * every thread must end with phi byte-identical to a single process's; a run stopped
 * on 2 threads resumes on 3 to the same bytes; a failure on one process reaches every
 * process with the same status and message. tests/test_mpi.c does the same through the
 * tool under mpirun.
 */
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "st_testutil.h"

enum { MAX_K = 4 };

/* The shared memory of the K threads: where each has put its buffer for the operation in
 * progress. */
typedef struct {
    int K;
    pthread_barrier_t barrier;
    void *buf[MAX_K];
} world;

typedef struct {
    world *w;
    l2l_comm comm;
} member;

static l2l_status thread_allgather(void *ctx, void *buf, size_t bytes, const int *first, l2l_error *err)
{
    member *m = ctx;
    world *w = m->w;
    w->buf[m->comm.rank] = buf;
    pthread_barrier_wait(&w->barrier);
    for (int r = 0; r < w->K; r++)
        if (r != m->comm.rank)
            memcpy((char *)buf + (size_t)first[r] * bytes, (char *)w->buf[r] + (size_t)first[r] * bytes,
                   (size_t)(first[r + 1] - first[r]) * bytes);
    pthread_barrier_wait(&w->barrier); /* nobody moves on while another still reads */
    return L2L_STATUS_OK;
}

static l2l_status thread_broadcast(void *ctx, void *buf, size_t bytes, int root, l2l_error *err)
{
    member *m = ctx;
    world *w = m->w;
    w->buf[m->comm.rank] = buf;
    pthread_barrier_wait(&w->barrier);
    if (m->comm.rank != root) memcpy(buf, w->buf[root], bytes);
    pthread_barrier_wait(&w->barrier);
    return L2L_STATUS_OK;
}

/* One run: B quadratics (dim 3, 4 functions each) as a batch task, or one when B = 1. */
typedef struct {
    l2l_train_config cfg;
    int B;
    int stop_after;              /* > 0: save the state after this epoch and stop */
    const char *state_out;       /* where */
    const l2l_train_state *from; /* resume from it */
    int break_rank;              /* this rank gets a config its estimator refuses (-1: none) */
    float scale;                 /* the optimizer's output scale (0: 0.5) */
    int odd_rank;                /* this rank (if > 0) takes meta-Adam steps twice as long */
} run_spec;

typedef struct {
    const run_spec *spec;
    member *m;         /* NULL: a process alone */
    l2l_status st;
    l2l_error err;
    float phi[8192];
    size_t P;
} run_out;

static int stop_and_save(const l2l_train_progress *p, void *ctx)
{
    run_out *o = ctx;
    if (p->epoch < o->spec->stop_after) return 0;
    if (!o->m || o->m->comm.rank == 0) {
        l2l_error e;
        if (l2l_train_state_save(o->spec->state_out, p->state, NULL, 0, &e)) o->st = L2L_STATUS_IO;
    }
    return 1;
}

static void *run_one(void *arg)
{
    run_out *o = arg;
    const run_spec *sp = o->spec;
    omp_set_num_threads(1);
    l2l_task kids[8], task;
    const l2l_quadratic_config qc = {3, 4, 0};
    for (int i = 0; i < sp->B; i++) l2l_task_quadratic_create(&kids[i], &qc, NULL);
    if (sp->B == 1) task = kids[0];
    else l2l_task_batch_create(&task, kids, sp->B, NULL);
    const l2l_lstm_config lc = {.layers = 2, .hidden = 4, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = sp->scale ? sp->scale : 0.5f};
    l2l_lstm net;
    l2l_lstm_create(&net, &lc, NULL);
    l2l_rng rng;
    l2l_rng_seed(&rng, 3, L2L_STREAM_INIT);
    l2l_lstm_init(&net, &rng);
    l2l_train_config cfg = sp->cfg;
    cfg.comm = o->m ? &o->m->comm : NULL;
    if (o->m && o->m->comm.rank == sp->break_rank) cfg.es.pairs = 0, cfg.teacher.lr = 0;
    if (o->m && sp->odd_rank > 0 && o->m->comm.rank == sp->odd_rank) cfg.lr *= 2;
    const l2l_status st = l2l_meta_train_resume(&net, &task, &cfg, sp->from, sp->stop_after ? stop_and_save : NULL,
                                                o, &o->err);
    if (!o->st) o->st = st;
    o->P = net.n_params;
    memcpy(o->phi, net.phi, net.n_params * sizeof(float));
    l2l_lstm_free(&net);
    l2l_task_free(&task);
    return NULL;
}

/* The run on K threads (K = 0: in this thread, with no communicator). */
static void run_on(const run_spec *sp, int K, run_out *out)
{
    if (K == 0) {
        out[0] = (run_out){.spec = sp};
        run_one(&out[0]);
        return;
    }
    world w = {.K = K};
    member m[MAX_K];
    pthread_t th[MAX_K];
    assert_int_equal(pthread_barrier_init(&w.barrier, NULL, (unsigned)K), 0);
    for (int r = 0; r < K; r++) {
        m[r] = (member){&w, {.rank = r, .size = K, .allgather = thread_allgather, .broadcast = thread_broadcast}};
        m[r].comm.ctx = &m[r];
        out[r] = (run_out){.spec = sp, .m = &m[r]};
        assert_int_equal(pthread_create(&th[r], NULL, run_one, &out[r]), 0);
    }
    for (int r = 0; r < K; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w.barrier);
}

static void expect_same_phi(const run_out *ref, const run_out *o, const char *what, int rank)
{
    if (ref->st || o->st) fail_msg("%s, process %d: failed: %s / %s", what, rank, ref->err.msg, o->err.msg);
    assert_int_equal(o->P, ref->P);
    for (size_t i = 0; i < ref->P; i++)
        if (memcmp(&o->phi[i], &ref->phi[i], sizeof(float)) != 0)
            fail_msg("%s, process %d: phi[%zu] is %.9g, alone %.9g", what, rank, i, (double)o->phi[i],
                     (double)ref->phi[i]);
}

static l2l_train_config config(l2l_estimator est)
{
    l2l_train_config c;
    l2l_train_config_default(&c);
    c.epochs = 4, c.steps = 12, c.unroll = 4, c.eval_every = 2, c.n_valid = 5, c.lr = 0.01f;
    c.estimator = est, c.es.pairs = 3, c.es.sigma = 0.05f;
    c.teacher = (l2l_opt_spec){L2L_OPT_KIND_NAG, 0.1f, NULL};
    return c;
}

/* Every estimator, both objectives, B = 1, 2, 3, 4 on 1 to 4 threads: the bytes of a
 * process alone. */
static void test_same_bytes(void **state)
{
    (void)state;
    static const l2l_estimator ests[] = {L2L_ESTIMATOR_TBPTT, L2L_ESTIMATOR_ES, L2L_ESTIMATOR_PES,
                                         L2L_ESTIMATOR_IMITATE};
    static run_out alone, out[MAX_K];
    for (int e = 0; e < 4; e++)
        for (int B = 1; B <= 4; B++) {
            run_spec sp = {config(ests[e]), B, .break_rank = -1};
            sp.cfg.objective = B % 2 ? L2L_OBJECTIVE_LOG : L2L_OBJECTIVE_SUM;
            run_on(&sp, 0, &alone);
            for (int K = 1; K <= MAX_K; K++) {
                run_on(&sp, K, out);
                for (int r = 0; r < K; r++) {
                    char what[96];
                    snprintf(what, sizeof what, "estimator %d, meta-batch %d, %d processes", (int)ests[e], B, K);
                    expect_same_phi(&alone, &out[r], what, r);
                }
            }
        }
}

/* Stopped after epoch 2 on 2 processes, resumed on 3 (and on 1) from the saved state:
 * the bytes of a straight run. */
static void test_resume_other_count(void **state)
{
    (void)state;
    static run_out alone, out[MAX_K];
    char path[256];
    tu_temp_path(path, sizeof path, "comm.state.safetensors");
    for (int e = 0; e < 2; e++) {
        const l2l_estimator est = e ? L2L_ESTIMATOR_PES : L2L_ESTIMATOR_TBPTT;
        run_spec sp = {config(est), 3, .break_rank = -1};
        run_on(&sp, 0, &alone);
        run_spec stop = sp;
        stop.stop_after = 2, stop.state_out = path;
        run_on(&stop, 2, out);
        l2l_train_state st;
        l2l_error err;
        if (l2l_train_state_load(path, &st, NULL, NULL, &err)) fail_msg("loading the state: %s", err.msg);
        assert_int_equal(st.epoch, 2);
        run_spec resume = sp;
        resume.from = &st;
        for (int K = 0; K <= 3; K += 3) {
            run_on(&resume, K, out);
            for (int r = 0; r < (K ? K : 1); r++) expect_same_phi(&alone, &out[r], "resumed", r);
        }
        l2l_train_state_free(&st);
    }
}

/* A process whose estimator refuses its config: every process fails with its message;
 * a diverging optimizee on one process: every process fails with the same message; a
 * process that updates phi differently: every process stops after the first epoch. */
static void test_failures_reach_everyone(void **state)
{
    (void)state;
    static run_out out[MAX_K];
    run_spec sp = {config(L2L_ESTIMATOR_ES), 4, .break_rank = 2};
    run_on(&sp, 3, out);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(out[r].st, L2L_STATUS_ARG);
        if (!strstr(out[r].err.msg, "process 2 of 3") || !strstr(out[r].err.msg, "pairs >= 1"))
            fail_msg("process %d: %s", r, out[r].err.msg);
    }
    run_spec big = {config(L2L_ESTIMATOR_TBPTT), 4, .break_rank = -1, .scale = 1e30f}; /* theta -> Inf */
    run_on(&big, 0, &out[3]);
    assert_int_equal(out[3].st, L2L_STATUS_NUMERIC);
    if (!strstr(out[3].err.msg, "optimizee 1 of 4") || !strstr(out[3].err.msg, "non-finite"))
        fail_msg("alone: %s", out[3].err.msg);
    run_on(&big, 3, out);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(out[r].st, L2L_STATUS_NUMERIC);
        assert_string_equal(out[r].err.msg, out[3].err.msg);
    }
    printf("    the failure every process reports: %.160s\n", out[0].err.msg);
    run_spec odd = {config(L2L_ESTIMATOR_PES), 2, .break_rank = -1, .odd_rank = 1};
    run_on(&odd, 2, out);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(out[r].st, L2L_STATUS_IO);
        if (!strstr(out[r].err.msg, "after epoch 1, process 1's phi differs")) fail_msg("process %d: %s", r, out[r].err.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_resume_other_count),
        cmocka_unit_test(test_failures_reach_everyone),
    };
    return cmocka_run_group_tests_name("comm", tests, NULL, NULL);
}
