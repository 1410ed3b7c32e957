/*
 * Resumable meta-training and writes that lose nothing (issue 13), at the library level:
 * a run stopped after any epoch, its state saved to a file and resumed, ends with the
 * bytes of a run that was never stopped, for every estimator and thread count; the
 * state file reads back exactly; divergence is an error that keeps the best phi; a
 * save that fails (a full disk, simulated with RLIMIT_FSIZE) leaves the previous file
 * byte-identical; a replaced file keeps its mode, a link keeps being a link, and the
 * temporaries of a crashed save are removed.
 */
#define _XOPEN_SOURCE 700 /* symlink, readlink */
#include <omp.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "st_testutil.h"

typedef struct {
    const char *path; /* where the state goes */
    int stop_after;   /* the epoch after which the run saves and stops */
} stopper;

static int save_and_stop(const l2l_train_progress *p, void *ctx)
{
    const stopper *s = ctx;
    if (p->epoch < s->stop_after) return 0;
    l2l_error err;
    const l2l_kv meta[1] = {{"note", "resume test"}};
    if (l2l_train_state_save(s->path, p->state, meta, 1, &err)) fail_msg("saving the state: %s", err.msg);
    return 1;
}

static void make_task(l2l_task *task)
{
    const l2l_quadratic_config qc = {3, 4, 0};
    l2l_error err;
    assert_int_equal(l2l_task_quadratic_create(task, &qc, &err), L2L_STATUS_OK);
}

static void fresh_net(l2l_lstm *net)
{
    const l2l_lstm_config lc = {.layers = 2, .hidden = 4, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1};
    l2l_error err;
    assert_int_equal(l2l_lstm_create(net, &lc, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, L2L_STREAM_INIT);
    l2l_lstm_init(net, &rng);
}

/* 7 epochs straight, against 7 epochs stopped after `stop` and resumed from the file. */
static void check_resume(l2l_estimator estimator, int threads, int stop)
{
    l2l_train_config cfg;
    l2l_train_config_default(&cfg);
    cfg.epochs = 7, cfg.steps = 20, cfg.unroll = 10, cfg.eval_every = 2, cfg.n_valid = 3;
    cfg.estimator = estimator;
    cfg.es.pairs = 2, cfg.es.sigma = 0.01f;
    cfg.teacher = (l2l_opt_spec){L2L_OPT_KIND_NAG, 0.1f, NULL};
    omp_set_num_threads(threads);
    l2l_task task;
    make_task(&task);
    l2l_error err;
    l2l_lstm ref, net, back;
    fresh_net(&ref);
    fresh_net(&net);
    if (l2l_meta_train(&ref, &task, &cfg, NULL, NULL, &err)) fail_msg("straight run: %s", err.msg);
    char path[512];
    stopper s = {tmp("resume.state.safetensors"), stop};
    snprintf(path, sizeof path, "%s", s.path);
    if (l2l_meta_train(&net, &task, &cfg, save_and_stop, &s, &err)) fail_msg("stopped run: %s", err.msg);
    l2l_train_state st;
    l2l_kv meta[L2L_MAX_META];
    int nm;
    if (l2l_train_state_load(path, &st, meta, &nm, &err)) fail_msg("loading the state: %s", err.msg);
    assert_int_equal(st.epoch, stop);
    assert_int_equal(nm, 1);
    assert_string_equal(meta[0].key, "note");
    assert_int_equal(st.has_noise, estimator == L2L_ESTIMATOR_ES || estimator == L2L_ESTIMATOR_PES);
    assert_int_equal(l2l_lstm_create(&back, &st.arch, &err), L2L_STATUS_OK);
    if (l2l_meta_train_resume(&back, &task, &cfg, &st, NULL, NULL, &err)) fail_msg("resumed run: %s", err.msg);
    for (size_t i = 0; i < ref.n_params; i++)
        if (memcmp(&ref.phi[i], &back.phi[i], sizeof(float)) != 0)
            fail_msg("estimator %d, %d threads, stopped after epoch %d: phi[%zu] is %.9g resumed, %.9g straight",
                     (int)estimator, threads, stop, i, (double)back.phi[i], (double)ref.phi[i]);
    /* a state does not fit a net of another size */
    const l2l_lstm_config other = {.layers = 1, .hidden = 3, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1};
    l2l_lstm_free(&back);
    assert_int_equal(l2l_lstm_create(&back, &other, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_meta_train_resume(&back, &task, &cfg, &st, NULL, NULL, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "does not fit this run"));
    l2l_train_state_free(&st);
    l2l_lstm_free(&ref), l2l_lstm_free(&net), l2l_lstm_free(&back);
    l2l_task_free(&task);
    unlink(path);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    const l2l_estimator est[] = {L2L_ESTIMATOR_TBPTT, L2L_ESTIMATOR_ES, L2L_ESTIMATOR_PES, L2L_ESTIMATOR_IMITATE};
    for (int e = 0; e < 4; e++)
        for (int threads = 1; threads <= 2; threads++) check_resume(est[e], threads, 1 + (e + threads) % 5);
}

/* Every field of a state comes back from its file as it was, infinities included. */
static void test_state_file(void **state)
{
    (void)state;
    l2l_lstm net;
    fresh_net(&net);
    const size_t P = net.n_params;
    float *buf = malloc(3 * P * sizeof(float));
    for (size_t i = 0; i < 3 * P; i++) buf[i] = (float)i * 0.25f - 7;
    l2l_train_state s = {.arch = net.cfg, .epoch = 12, .n_params = P, .phi = net.phi, .best = buf,
                         .adam_m = buf + P, .adam_v = buf + 2 * P, .adam_t = 1234567890123, .best_valid = INFINITY,
                         .best_epoch = 0, .first_loss = 0.1, .seconds = 1e-300, .has_noise = 1};
    l2l_rng_seed(&s.train_rng, 7, 1);
    l2l_rng_seed(&s.noise, 7, 5);
    l2l_error err;
    const char *path = tmp("fields.state.safetensors");
    assert_int_equal(l2l_train_state_save(path, &s, NULL, 0, &err), L2L_STATUS_OK);
    l2l_train_state b;
    if (l2l_train_state_load(path, &b, NULL, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(b.epoch, 12);
    assert_int_equal(b.n_params, P);
    assert_true(b.adam_t == 1234567890123);
    assert_true(isinf(b.best_valid) && b.first_loss == 0.1 && b.seconds == 1e-300);
    assert_memory_equal(&b.train_rng, &s.train_rng, sizeof s.train_rng);
    assert_memory_equal(&b.noise, &s.noise, sizeof s.noise);
    assert_memory_equal(b.phi, net.phi, P * sizeof(float));
    assert_memory_equal(b.best, buf, 3 * P * sizeof(float) / 3);
    assert_memory_equal(b.adam_v, buf + 2 * P, P * sizeof(float));
    l2l_train_state_free(&b);
    /* a checkpoint is not a state, nor a state a checkpoint */
    l2l_lstm_free(&net);
    assert_int_equal(l2l_checkpoint_load(path, &net, NULL, NULL, &err), L2L_STATUS_FORMAT);
    assert_non_null(strstr(err.msg, "not an l2l LSTM optimizer checkpoint"));
    fresh_net(&net);
    const char *ck = tmp("not-a-state.safetensors");
    assert_int_equal(l2l_checkpoint_save(ck, &net, NULL, 0, &err), L2L_STATUS_OK);
    assert_int_equal(l2l_train_state_load(ck, &b, NULL, NULL, &err), L2L_STATUS_FORMAT);
    assert_non_null(strstr(err.msg, "not an l2l training state"));
    l2l_lstm_free(&net);
    free(buf);
}

/* --lr 1e6: the losses explode (1e18); an error, and phi is the best validated one. */
static void test_divergence(void **state)
{
    (void)state;
    l2l_train_config cfg;
    l2l_train_config_default(&cfg);
    cfg.epochs = 20, cfg.steps = 20, cfg.unroll = 20, cfg.eval_every = 5, cfg.n_valid = 3, cfg.lr = 1e6f;
    l2l_task task;
    make_task(&task);
    l2l_lstm net, init;
    fresh_net(&net);
    fresh_net(&init);
    l2l_error err;
    assert_int_equal(l2l_meta_train(&net, &task, &cfg, NULL, NULL, &err), L2L_STATUS_NUMERIC);
    assert_non_null(strstr(err.msg, "diverged in epoch"));
    assert_memory_equal(net.phi, init.phi, net.n_params * sizeof(float)); /* no better phi was found */
    l2l_lstm_free(&net), l2l_lstm_free(&init);
    l2l_task_free(&task);
}

static void slurp(const char *path, unsigned char *buf, size_t cap, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    *n = fread(buf, 1, cap, f);
    fclose(f);
}

/* A full disk during a save: the child's file-size limit makes write() fail with EFBIG
 * (SIGXFSZ ignored, as a full disk gives ENOSPC); the previous checkpoint stays
 * byte-identical and no temporary file is left. */
static void test_full_disk(void **state)
{
    (void)state;
    l2l_lstm net;
    fresh_net(&net);
    l2l_error err;
    const char *path = tmp("full.safetensors");
    assert_int_equal(l2l_checkpoint_save(path, &net, NULL, 0, &err), L2L_STATUS_OK);
    static unsigned char before[1 << 16], after[1 << 16];
    size_t nb, na;
    slurp(path, before, sizeof before, &nb);
    net.phi[0] += 1;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1000, 1000};
        setrlimit(RLIMIT_FSIZE, &rl);
        l2l_status st = l2l_checkpoint_save(path, &net, NULL, 0, &err);
        if (st != L2L_STATUS_IO || !strstr(err.msg, "file too large (EFBIG)")) {
            fprintf(stderr, "child: status %d, message: %s\n", (int)st, err.msg);
            _exit(1);
        }
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    slurp(path, after, sizeof after, &na);
    assert_int_equal(na, nb);
    assert_memory_equal(after, before, nb);
    assert_int_equal(count_temp_files(temp_dir()), 0);
    l2l_lstm_free(&net);
}

/* Replacing keeps the mode (0600 stays 0600), writes through a link to its target,
 * and removes the temporaries a killed save of the same file left. */
static void test_replace(void **state)
{
    (void)state;
    l2l_lstm net;
    fresh_net(&net);
    l2l_error err;
    char target[512], link[512], stale[600];
    snprintf(target, sizeof target, "%s", tmp("private.safetensors"));
    snprintf(link, sizeof link, "%s", tmp("link.safetensors"));
    assert_int_equal(l2l_checkpoint_save(target, &net, NULL, 0, &err), L2L_STATUS_OK);
    assert_int_equal(chmod(target, 0600), 0);
    unlink(link);
    assert_int_equal(symlink(target, link), 0);
    snprintf(stale, sizeof stale, "%s.tmp.Ab3xYz", target);
    FILE *f = fopen(stale, "w");
    assert_non_null(f);
    fclose(f);
    net.phi[0] = 42;
    assert_int_equal(l2l_checkpoint_save(link, &net, NULL, 0, &err), L2L_STATUS_OK);
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(stat(target, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_not_equal(access(stale, F_OK), 0);
    l2l_lstm back;
    assert_int_equal(l2l_checkpoint_load(target, &back, NULL, NULL, &err), L2L_STATUS_OK);
    assert_true(back.phi[0] == 42);
    l2l_lstm_free(&back), l2l_lstm_free(&net);
    unlink(link);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_exact), cmocka_unit_test(test_state_file),
        cmocka_unit_test(test_divergence),      cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_replace),
    };
    return cmocka_run_group_tests_name("resume", tests, NULL, NULL);
}
