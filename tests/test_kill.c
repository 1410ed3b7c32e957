/*
 * Kill -9 at random moments of meta-training (issue 13): `l2l train` is killed with
 * SIGKILL, resumed with --resume (or restarted, if it died before its first state),
 * killed again, ... until it finishes; its checkpoint must then be byte-identical to an
 * uninterrupted run's, its log must hold each epoch once with the uninterrupted run's
 * numbers, and no other file may remain (no state, no LOG.part, no temporaries).
 * TBPTT and ES, on 1 and 2 threads, and PES after a warm start with a curriculum (a run of
 * three stages), on small quadratic runs (a fifth of a second; a few seconds under the
 * sanitizers).
 *
 * `test_kill` alone (make test) makes 10 kills in runs of 12 epochs; `test_kill KILLS
 * SEED EPOCHS` makes KILLS in runs of EPOCHS (scripts/kill_test.sh: 100 in runs of 100
 * epochs) and prints the figures for docs/RELIABILITY.md.
 */
#define _XOPEN_SOURCE 700 /* realpath (cli_testutil.h) */
#include <signal.h>
#include <time.h>

#include "cli_testutil.h"

/* The estimator (and a warm start and a curriculum, which make a run of three stages)
 * and the threads. */
static const char *const configs[][2] = {{"tbptt", "1"},
                                         {"es:2:0.05", "2"},
                                         {"tbptt", "2"},
                                         {"es:2:0.05", "1"},
                                         {"pes:2:0.05 --warm-start sgd:0.1:6 --curriculum 5,10", "1"}};
enum { N_CONFIGS = 5 };

static int kills_wanted = 10, epochs = 12;
static uint64_t seed = 1;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Starts `l2l train ...` in ct_dir with output to /dev/null. */
static pid_t start(const char *args)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(ct_dir) != 0 || !freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execl("/bin/sh", "sh", "-c", args, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void train_args(char *buf, size_t n, int c, const char *out, int resume)
{
    if (resume)
        snprintf(buf, n, "exec '%s' train --resume %s.state.safetensors", ct_tool, out);
    else
        snprintf(buf, n, "OMP_NUM_THREADS=%s exec '%s' train --dim 4 --batch 16 --epochs %d --steps 20 "
                 "%s --eval-every 3 --valid 3 --save-every 2 --estimator %s --threads %s --out %s.safetensors",
                 configs[c][1], ct_tool, epochs, strstr(configs[c][0], "--curriculum") ? "" : "--unroll 10",
                 configs[c][0], configs[c][1], out);
}

static int file_exists(const char *name)
{
    char path[512];
    return access(ct_path(path, sizeof path, name), F_OK) == 0;
}

/* Runs the configuration killed until `kills` kills are made or it finishes; then
 * resumes it to the end and checks the result. */
static void check_round(int c, int *made_in_all, int kills, double t_ref, l2l_rng *rng)
{
    char args[8192], name[64];
    int ws, done = 0, made = *made_in_all, runs = 0;
    pid_t pid;
    while (!done) {
        const int resume = file_exists("k.state.safetensors");
        train_args(args, sizeof args, c, "k", resume);
        pid = start(args);
        runs++;
        if (made < kills) { /* a moment anywhere in a whole run, start-up included */
            const double wait = l2l_rng_uniform(rng) * t_ref;
            struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
        }
        waitpid(pid, &ws, 0);
        if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) made++;
        else if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) done = 1;
        else fail_msg("run %d of %s ended with status %d (%s)", runs, configs[c][0], ws, args);
        if (runs > 10 * kills + 10) fail_msg("no end after %d runs", runs);
    }
    *made_in_all = made;
    char ref[512], got[512];
    snprintf(ref, sizeof ref, "%s/ref%d.safetensors", ct_dir, c);
    snprintf(got, sizeof got, "%s/k.safetensors", ct_dir);
    if (ct_hash(ref) != ct_hash(got) || ct_hash(ref) == 0)
        fail_msg("%s, %s threads: after %d kills the checkpoint differs from the uninterrupted run's",
                 configs[c][0], configs[c][1], made);
    static char lr[1 << 16], lk[1 << 16];
    snprintf(name, sizeof name, "ref%d-log.csv", c);
    ct_log_numbers(name, lr, sizeof lr);
    ct_log_numbers("k-log.csv", lk, sizeof lk);
    if (strcmp(lr, lk) != 0) fail_msg("%s: the resumed log differs:\n%s\nagainst\n%s", configs[c][0], lk, lr);
    /* a warm start's best phi, as the uninterrupted run's */
    snprintf(ref, sizeof ref, "%s/ref%d.warm.safetensors", ct_dir, c);
    snprintf(got, sizeof got, "%s/k.warm.safetensors", ct_dir);
    if (ct_hash(ref) != ct_hash(got))
        fail_msg("%s: after %d kills the warm start's checkpoint differs from the uninterrupted run's",
                 configs[c][0], made);
    /* nothing else: the checkpoints and their logs */
    static ct_entry e[64];
    const int n = ct_scan(ct_dir, "", e, 0, 64);
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].name, "k.safetensors") && strcmp(e[i].name, "k-log.csv") &&
            strcmp(e[i].name, "k.warm.safetensors") && strncmp(e[i].name, "ref", 3))
            fail_msg("%s: a stray file remains: %s", configs[c][0], e[i].name);
    unlink(got);
    unlink(ct_path(got, sizeof got, "k.safetensors"));
    unlink(ct_path(got, sizeof got, "k-log.csv"));
}

/* One configuration: the uninterrupted run, then rounds of runs killed `kills` times
 * in all, every round resumed to its end and checked. Returns the rounds. */
static int trial(int c, int kills, l2l_rng *rng, double *seconds)
{
    fflush(stdout); /* or the children's copies of the buffer print it again */
    char args[8192], name[64];
    snprintf(name, sizeof name, "ref%d", c);
    train_args(args, sizeof args, c, name, 0);
    const double t0 = now();
    int ws;
    pid_t pid = start(args);
    waitpid(pid, &ws, 0);
    const double t_ref = now() - t0;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) fail_msg("the uninterrupted run %s failed", args);
    *seconds = t_ref;

    int made = 0, rounds = 0;
    while (made < kills) {
        check_round(c, &made, kills, t_ref, rng);
        rounds++;
    }
    return rounds;
}

static void test_kills(void **state)
{
    (void)state;
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 0);
    int total = 0;
    for (int c = 0; c < N_CONFIGS; c++) {
        const int k = kills_wanted / N_CONFIGS + (c < kills_wanted % N_CONFIGS);
        double t_ref;
        const double t0 = now();
        const int rounds = trial(c, k, &rng, &t_ref);
        total += k;
        printf("kill test: %-10s %s thread(s): %d kills, %d runs resumed to the end, every checkpoint "
               "identical, no stray files (uninterrupted run %.2f s, all %.1f s)\n", configs[c][0],
               configs[c][1], k, rounds, t_ref, now() - t0);
    }
    printf("kill test: %d kills in runs of %d epochs, every checkpoint byte-identical (seed %llu)\n", total,
           epochs, (unsigned long long)seed);
}

int main(int argc, char **argv)
{
    if (argc > 1) kills_wanted = atoi(argv[1]);
    if (argc > 2) seed = strtoull(argv[2], NULL, 10);
    if (argc > 3) epochs = atoi(argv[3]);
    if (kills_wanted < N_CONFIGS || epochs < 1 || ct_setup(argv[0], "kill")) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kills)};
    int failed = cmocka_run_group_tests_name("kill", tests, NULL, NULL);
    ct_teardown();
    return failed;
}
