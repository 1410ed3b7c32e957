/*
 * `l2l train` under mpirun (issue 15): with 2 and 3 processes (3 oversubscribed on a
 * 2-core machine) the checkpoint must be byte-identical, and the log's numbers
 * identical, to a single process's, for truncated backpropagation, ES, PES and
 * imitation, on meta-batches that the processes divide and do not, with more processes
 * than optimizees, on quadratics and on MNIST-shaped networks (the l2l recipe's two
 * stages included). A process killed with SIGKILL mid-run ends the job with a clear
 * message and a non-zero status; --resume on another number of processes finishes it
 * with the same bytes as a run never stopped, and leaves no stray file. Commands that do
 * not share their work, bad options, and a process that fails to set up end the job
 * without a hang.
 *
 * mpirun comes from Debian's openmpi-bin (scripts/setup.sh installs it); without it, or
 * with a tool built without MPI (make MPI=0), the test fails and says so. As root,
 * mpirun needs OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, which the
 * test sets. It takes about 20 s on 2 cores.
 */
#define _XOPEN_SOURCE 700 /* realpath (cli_testutil.h), setenv */
#include <signal.h>
#include <time.h>

#include "cli_testutil.h"

/* The environment of the processes mpirun starts: under the sanitizers (make test-asan),
 * without leak detection, because Open MPI keeps what it allocates at start-up until
 * exit, inside plugins that MPI_Finalize unloads (so that no suppression can name them);
 * memory errors are still caught, and the library's sharing is leak-checked by
 * test_comm and the tool's single-process runs here. */
static char mpi_env[1200];

/* Runs `l2l ARGS` in ct_dir, alone (K = 0) or under `mpirun -np K`, at most `limit`
 * seconds; output in ct_out; returns the exit status (124: the limit was reached). */
static int mp_run(int K, const char *args, int limit)
{
    char launcher[1400] = "";
    if (K > 0) snprintf(launcher, sizeof launcher, "%s mpirun -np %d --oversubscribe", mpi_env, K);
    char spec[8192] = "";
    for (const char *p = args; *p; p++) {
        if (*p == '@') strncat(spec, ct_dir, sizeof spec - strlen(spec) - 1);
        else strncat(spec, (char[2]){*p, 0}, sizeof spec - strlen(spec) - 1);
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 timeout -k 10 %d %s '%s' %s > '%s.out' 2>&1", ct_dir,
             limit, launcher, ct_tool, spec, ct_dir);
    const int st = system(cmd);
    snprintf(cmd, sizeof cmd, "%s.out", ct_dir);
    FILE *f = fopen(cmd, "r");
    const size_t n = f ? fread(ct_out, 1, sizeof ct_out - 1, f) : 0;
    ct_out[n] = 0;
    if (f) fclose(f);
    unlink(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The files of `stem` (its checkpoint and log) against those of `ref`. */
static void expect_same(const char *ref, const char *stem, const char *what)
{
    char a[512], b[512], name[128];
    snprintf(name, sizeof name, "%s.safetensors", ref);
    ct_path(a, sizeof a, name);
    snprintf(name, sizeof name, "%s.safetensors", stem);
    ct_path(b, sizeof b, name);
    if (ct_hash(a) == 0 || ct_hash(a) != ct_hash(b))
        fail_msg("%s: the checkpoint %s differs from the single process's %s", what, b, a);
    static char la[1 << 16], lb[1 << 16];
    snprintf(name, sizeof name, "%s-log.csv", ref);
    ct_log_numbers(name, la, sizeof la);
    snprintf(name, sizeof name, "%s-log.csv", stem);
    ct_log_numbers(name, lb, sizeof lb);
    if (strcmp(la, lb) != 0) fail_msg("%s: the log differs:\n%s\nagainst the single process's\n%s", what, lb, la);
}

/* ARGS alone, then on each process count of Ks (0-terminated): the same bytes. */
static void check_counts(const char *args, const int *Ks)
{
    char cmd[4096], stem[32];
    snprintf(cmd, sizeof cmd, "%s --out one.safetensors", args);
    if (mp_run(0, cmd, 120) != 0) fail_msg("alone: %s\n%s", cmd, ct_out);
    for (const int *K = Ks; *K; K++) {
        snprintf(stem, sizeof stem, "np%d", *K);
        snprintf(cmd, sizeof cmd, "%s --out %s.safetensors", args, stem);
        if (mp_run(*K, cmd, 120) != 0) fail_msg("%d processes: %s\n%s", *K, cmd, ct_out);
        if (!strstr(ct_out, "processes share the work")) fail_msg("%d processes did not share the work:\n%s", *K, ct_out);
        char what[4200];
        snprintf(what, sizeof what, "%d processes, %s", *K, args);
        expect_same("one", stem, what);
    }
    printf("    same bytes alone and on");
    for (const int *K = Ks; *K; K++) printf(" %d", *K);
    printf(" processes: %s\n", args);
}

static void test_quadratics(void **state)
{
    (void)state;
    static const char *const base = "train --dim 4 --batch 8 --epochs 4 --steps 12 --unroll 4 --eval-every 2 "
                                    "--valid 5 --lr 0.01 --threads 1";
    static const struct {
        const char *opts;
        int K[3];
    } cases[] = {
        {"--estimator tbptt --meta-batch 4 --objective log", {2, 3, 0}},
        {"--estimator es:3:0.05 --meta-batch 4", {2, 3, 0}},
        {"--estimator pes:3:0.05 --meta-batch 4 --objective log", {2, 3, 0}},
        {"--estimator imitate:nag:0.1 --meta-batch 4", {3, 0, 0}},
        {"--estimator tbptt --meta-batch 2", {3, 0, 0}},   /* more processes than optimizees */
        {"--estimator pes:2:0.05", {3, 0, 0}},              /* one optimizee, its particles shared */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[1024];
        snprintf(args, sizeof args, "%s %s", base, cases[i].opts);
        check_counts(args, cases[i].K);
    }
}

/* MNIST-shaped networks on random digits: TBPTT, and the l2l recipe (an imitation warm
 * start, then PES on the log objective). */
static void test_mnist(void **state)
{
    (void)state;
    l2l_rng rng;
    l2l_rng_seed(&rng, 15, 0);
    char dir[512];
    if (mkdir(ct_path(dir, sizeof dir, "mnist"), 0755) != 0) fail_msg("mkdir %s", dir);
    ct_write_split("mnist", "train", 300, &rng);
    ct_write_split("mnist", "t10k", 64, &rng);
    static const char *const base = "train --task mnist --data @/mnist --hidden 2 --batch 16 --epochs 2 "
                                    "--steps 8 --unroll 4 --eval-every 2 --valid 2 --meta-batch 3 --threads 1";
    char args[1024];
    snprintf(args, sizeof args, "%s --recipe paper --estimator tbptt", base);
    check_counts(args, (const int[]){2, 0});
    snprintf(args, sizeof args, "%s --warm-start nag-floor:1:2 --warm-unroll 4 --estimator pes:2:0.01", base);
    check_counts(args, (const int[]){3, 0});
}

static int exists(const char *name)
{
    char path[512];
    return access(ct_path(path, sizeof path, name), F_OK) == 0;
}

/* The pid of mpirun's child that is process `rank` of its job, or 0. */
static pid_t rank_pid(pid_t mpirun, int rank)
{
    char want[64], path[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found = 0;
    while (d && (de = readdir(d)) && !found) {
        const pid_t pid = (pid_t)atoi(de->d_name);
        if (pid <= 0) continue;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        int ppid = 0;
        if (!f || fscanf(f, "%*d %*s %*c %d", &ppid) != 1) ppid = 0;
        if (f) fclose(f);
        if (ppid != mpirun) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        if (!(f = fopen(path, "r"))) continue;
        static char env[1 << 16];
        const size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        env[n] = 0;
        for (size_t i = 0; i < n; i += strlen(env + i) + 1)
            if (!strcmp(env + i, want)) found = pid;
    }
    if (d) closedir(d);
    return found;
}

/* SIGKILL to process 1 of 2 after the first training state; then --resume on 3. The run
 * takes about half a second (20 epochs, ten times longer, under the sanitizers). */
static void test_kill_and_resume(void **state)
{
    (void)state;
    char args[512], cmd[8192];
    snprintf(args, sizeof args, "train --dim 6 --batch 16 --epochs %d --steps 20 --unroll 10 --eval-every 10 "
             "--valid 3 --meta-batch 4 --threads 1 --save-every 2", mpi_env[0] ? 20 : 50);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", ct_dir); /* the other tests' files */
    if (system(cmd) != 0) fail_msg("cannot empty %s", ct_dir);
    snprintf(cmd, sizeof cmd, "%s --out ref.safetensors", args);
    if (mp_run(0, cmd, 300) != 0) fail_msg("the uninterrupted run failed:\n%s", ct_out);

    fflush(stdout); /* or the child's copy of the buffer prints it again */
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char out[512];
        snprintf(out, sizeof out, "%s/killed.out", ct_dir);
        if (chdir(ct_dir) != 0 || !freopen("/dev/null", "w", stdout) || !freopen(out, "w", stderr)) _exit(126);
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 exec %s mpirun -np 2 '%s' %s --out k.safetensors", mpi_env,
                 ct_tool, args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    pid_t victim = 0;
    int ws = 0, waited = 0;
    for (int i = 0; i < 60000 && !victim; i++) { /* up to 5 minutes, in steps of 5 ms */
        if (exists("k.state.safetensors")) victim = rank_pid(pid, 1);
        if (!victim && waitpid(pid, &ws, WNOHANG) == pid) {
            waited = 1;
            break;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    if (!victim) {
        if (!waited) kill(pid, SIGKILL), waitpid(pid, &ws, 0);
        fail_msg("the run under mpirun %s before its process 1 could be killed",
                 waited ? "ended" : "saved no state in 5 minutes");
    }
    kill(victim, SIGKILL);
    if (!waited) waitpid(pid, &ws, 0);
    char path[512];
    FILE *f = fopen(ct_path(path, sizeof path, "killed.out"), "r");
    const size_t n = f ? fread(ct_out, 1, sizeof ct_out - 1, f) : 0;
    ct_out[n] = 0;
    if (f) fclose(f);
    unlink(path);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) == 0)
        fail_msg("mpirun ended with status %d after process 1 was killed", ws);
    if (!strstr(ct_out, "got a signal to stop") || !strstr(ct_out, "--resume"))
        fail_msg("no clear message after process 1 was killed:\n%s", ct_out);
    printf("    process 1 of 2 killed after the first state; mpirun's status %d, its message:\n%s",
           WEXITSTATUS(ws), ct_out);
    if (!exists("k.state.safetensors")) fail_msg("no training state after the kill");

    if (mp_run(3, "train --resume k.state.safetensors", 300) != 0)
        fail_msg("--resume on 3 processes failed:\n%s", ct_out);
    expect_same("ref", "k", "killed on 2 processes, resumed on 3");
    static ct_entry e[64];
    const int ne = ct_scan(ct_dir, "", e, 0, 64);
    for (int i = 0; i < ne; i++)
        if (strncmp(e[i].name, "ref", 3) && strcmp(e[i].name, "k.safetensors") && strcmp(e[i].name, "k-log.csv"))
            fail_msg("a stray file remains: %s", e[i].name);
    printf("    resumed on 3 processes: the uninterrupted run's bytes, no stray file\n");
}

/* What ends a job early ends it without a hang: a command that does not share its
 * work, a bad option, one process that cannot set up (an MPMD job whose second process
 * reads digits that are not there). */
static void test_refusals(void **state)
{
    (void)state;
    if (mp_run(2, "eval --optimizer sgd --runs 2", 60) != 2 || !strstr(ct_out, "only 'l2l train'"))
        fail_msg("l2l eval under mpirun:\n%s", ct_out);
    if (mp_run(2, "train --epochs 0 --out x.safetensors", 60) != 2 || !strstr(ct_out, "--epochs"))
        fail_msg("a bad option under mpirun:\n%s", ct_out);
    static const char *const args = "train --dim 4 --batch 8 --epochs 2 --steps 8 --unroll 4 --threads 1 "
                                    "--out m.safetensors";
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s : -np 1 '%s' %s --task mnist --recipe paper --data @/nothing", args, ct_tool,
             args);
    const int rc = mp_run(1, cmd, 60);
    if (rc == 0 || rc == 124 || !strstr(ct_out, "nothing")) fail_msg("a process that cannot set up:\n%s", ct_out);
    if (exists("m.safetensors") || exists("m-log.csv.part") || exists("m-log.csv"))
        fail_msg("a job that could not start left files behind");
}

int main(int argc, char **argv)
{
    if (ct_setup(argv[0], "mpi")) return 1;
    if (system("command -v mpirun > /dev/null") != 0) {
        fprintf(stderr, "test_mpi: FAILED: mpirun is not installed; install Debian's openmpi-bin and "
                "libopenmpi-dev (scripts/setup.sh, which make test runs, does) and rebuild\n");
        ct_teardown();
        return 1;
    }
    if (geteuid() == 0) { /* mpirun refuses root without them */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1); /* 3 processes on 2 cores: no busy waiting */
#ifdef __SANITIZE_ADDRESS__ /* this test, and so the tool beside it, built with -fsanitize=address */
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(mpi_env, sizeof mpi_env, "env ASAN_OPTIONS='%.1000s%sdetect_leaks=0'", asan ? asan : "",
             asan && *asan ? ":" : "");
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quadratics),
        cmocka_unit_test(test_mnist),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_refusals),
    };
    const int failed = cmocka_run_group_tests_name("mpi", tests, NULL, NULL);
    ct_teardown();
    return failed;
}
