/* Figures: PNG and SVG output, bad extensions, unwritable directories, NaN and zero values. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "plot/plot.h"

/* The same suppression as tests/lsan.supp, built in so that this program passes the ASan
 * build however it is run: fontconfig (under PLplot -> cairo -> pango) never frees its
 * font-match caches. Every block LeakSanitizer reports here is allocated inside
 * libfontconfig; nothing in l2l is suppressed. The hook is ignored without ASan. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

enum { T = 200, N_SERIES = 3 };

/* Three loss curves in the shape of the paper's: decaying over decades with noise-like
 * wiggle, each with a ±err band. */
typedef struct {
    double x[T];
    double y[N_SERIES][T];
    double e[N_SERIES][T];
    l2l_series s[N_SERIES];
} curves;

static void make_curves(curves *c)
{
    static const char *labels[N_SERIES] = {"LSTM", "ADAM", "SGD #2"};
    static const double rate[N_SERIES] = {0.045, 0.02, 0.008};
    for (int i = 0; i < T; i++) c->x[i] = i;
    for (int k = 0; k < N_SERIES; k++) {
        for (int i = 0; i < T; i++) {
            double y = 10.0 * exp(-rate[k] * i) * (1 + 0.1 * sin(0.3 * i + k)) + 1e-3;
            c->y[k][i] = y;
            c->e[k][i] = 0.3 * y;
        }
        c->s[k] = (l2l_series){labels[k], T, c->x, c->y[k], c->e[k]};
    }
}

static long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (long)st.st_size;
}

static void test_png(void **state)
{
    (void)state;
    curves c;
    make_curves(&c);
    char path[256];
    tu_temp_path(path, sizeof path, "loss.png");
    l2l_error err = {0};
    l2l_status st = l2l_plot_lines(path, "Quadratic functions", "step", "loss", 1, c.s, N_SERIES,
                                   &err);
    if (st != L2L_STATUS_OK) fail_msg("expected L2L_STATUS_OK, found %s: %s", l2l_status_name(st), err.msg);
    size_t n = 0;
    char *buf = tu_read_file(path, &n);
    if (n <= 5000) fail_msg("%s: expected a PNG of more than 5 kB, found %zu bytes", path, n);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (memcmp(buf, sig, 8) != 0) fail_msg("%s: does not start with the PNG signature", path);
    free(buf);
    /* No temporary file is left beside it. */
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) fail_msg("temporary file %s left in %s", e->d_name, dir);
    closedir(d);
}

static void test_svg(void **state)
{
    (void)state;
    curves c;
    make_curves(&c);
    char path[256];
    tu_temp_path(path, sizeof path, "loss.svg");
    l2l_error err = {0};
    l2l_status st = l2l_plot_lines(path, "Quadratic functions", "step", "loss", 1, c.s, N_SERIES,
                                   &err);
    if (st != L2L_STATUS_OK) fail_msg("expected L2L_STATUS_OK, found %s: %s", l2l_status_name(st), err.msg);
    size_t n = 0;
    char *buf = tu_read_file(path, &n);
    if (!strstr(buf, "<svg")) fail_msg("%s: expected \"<svg\" in the file, not found", path);
    free(buf);
}

/* Writing over an existing figure replaces it. */
static void test_overwrite(void **state)
{
    (void)state;
    curves c;
    make_curves(&c);
    char path[256];
    tu_temp_path(path, sizeof path, "again.png");
    tu_write_file(path, "old", 3);
    l2l_error err = {0};
    l2l_status st = l2l_plot_lines(path, NULL, NULL, NULL, 0, c.s, 1, &err);
    if (st != L2L_STATUS_OK) fail_msg("expected L2L_STATUS_OK, found %s: %s", l2l_status_name(st), err.msg);
    if (file_size(path) <= 5000) fail_msg("%s was not replaced (%ld bytes)", path, file_size(path));
}

static void test_bad_extension(void **state)
{
    (void)state;
    curves c;
    make_curves(&c);
    char path[256];
    const char *names[] = {"loss.pdf", "loss", "dir.png/loss", "loss.png.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tu_temp_path(path, sizeof path, names[i]);
        l2l_error err = {0};
        l2l_status st = l2l_plot_lines(path, "t", "x", "y", 1, c.s, N_SERIES, &err);
        if (st != L2L_STATUS_ARG)
            fail_msg("%s: expected L2L_STATUS_ARG, found %s", names[i], l2l_status_name(st));
        if (!strstr(err.msg, ".png")) fail_msg("%s: message does not say what is expected: %s",
                                               names[i], err.msg);
        if (file_size(path) >= 0) fail_msg("%s: a file was written", names[i]);
    }
    /* No series at all. */
    tu_temp_path(path, sizeof path, "empty.png");
    assert_int_equal(l2l_plot_lines(path, "t", "x", "y", 0, c.s, 0, NULL), L2L_STATUS_ARG);
}

static void test_unwritable_directory(void **state)
{
    (void)state;
    curves c;
    make_curves(&c);
    char dir[256], path[320];
    tu_temp_path(dir, sizeof dir, "readonly");
    assert_int_equal(mkdir(dir, 0555), 0);
    l2l_error err = {0};
    snprintf(path, sizeof path, "%s/loss.png", dir);
    l2l_status st = l2l_plot_lines(path, "t", "x", "y", 1, c.s, N_SERIES, &err);
    /* root can write anywhere; then the plot simply succeeds. */
    if (geteuid() != 0 && st != L2L_STATUS_IO)
        fail_msg("read-only directory: expected L2L_STATUS_IO, found %s", l2l_status_name(st));
    if (st != L2L_STATUS_OK && !strstr(err.msg, "writable"))
        fail_msg("message does not say what to do: %s", err.msg);

    /* A path through a regular file fails even for root. */
    tu_temp_path(dir, sizeof dir, "a_file");
    tu_write_file(dir, "x", 1);
    snprintf(path, sizeof path, "%s/loss.png", dir);
    memset(&err, 0, sizeof err);
    st = l2l_plot_lines(path, "t", "x", "y", 1, c.s, N_SERIES, &err);
    if (st != L2L_STATUS_IO)
        fail_msg("path through a file: expected L2L_STATUS_IO, found %s", l2l_status_name(st));
    if (!strstr(err.msg, path)) fail_msg("message does not name the file: %s", err.msg);

    tu_temp_path(dir, sizeof dir, "no/such/dir/loss.svg");
    memset(&err, 0, sizeof err);
    st = l2l_plot_lines(dir, "t", "x", "y", 0, c.s, N_SERIES, &err);
    if (st != L2L_STATUS_IO)
        fail_msg("missing directory: expected L2L_STATUS_IO, found %s", l2l_status_name(st));
}

/* NaN, Inf, zero and negative values on a log axis; NaN errors; a series of one point;
 * an empty series; sparse series with error bars; a constant series. */
static void test_bad_values(void **state)
{
    (void)state;
    curves c;
    make_curves(&c);
    c.y[0][10] = NAN;
    c.y[0][11] = 0.0;
    c.y[0][50] = -1.0;
    c.y[1][100] = INFINITY;
    c.x[150] = NAN;
    c.e[1][20] = NAN;
    c.e[2][30] = -1.0;
    c.e[2][31] = INFINITY;
    c.e[2][40] = 100.0; /* band reaches below zero on the log axis */
    double sx[5] = {5, 10, 20, 40, 80}, sy[5] = {0.5, NAN, 0.1, 0.0, 0.02}, se[5] = {0.1, 0.1, 0.5, 0.1, NAN};
    double one_x = 7, one_y = 0.3;
    double flat[4] = {2, 2, 2, 2};
    l2l_series s[7] = {c.s[0], c.s[1], c.s[2],
                       {"width sweep", 5, sx, sy, se},
                       {"one point", 1, &one_x, &one_y, NULL},
                       {"empty", 0, NULL, NULL, NULL},
                       {NULL, 4, sx, flat, NULL}};
    const char *names[] = {"bad_log.png", "bad_lin.svg"};
    for (int log_y = 1; log_y >= 0; log_y--) {
        char path[256];
        tu_temp_path(path, sizeof path, names[1 - log_y]);
        l2l_error err = {0};
        l2l_status st = l2l_plot_lines(path, "bad values", "step", "loss", log_y, s, 7, &err);
        if (st != L2L_STATUS_OK)
            fail_msg("log_y=%d: expected L2L_STATUS_OK, found %s: %s", log_y, l2l_status_name(st),
                     err.msg);
        if (file_size(path) <= 0) fail_msg("%s: missing or empty", path);
    }
    /* Only a constant series on a linear axis, and only one point. */
    char path[256];
    tu_temp_path(path, sizeof path, "flat.png");
    assert_int_equal(l2l_plot_lines(path, "", "", "", 0, &s[6], 1, NULL), L2L_STATUS_OK);
    assert_int_equal(l2l_plot_lines(path, "", "", "", 1, &s[4], 1, NULL), L2L_STATUS_OK);

    /* Nothing drawable at all: a clear error, no file. */
    double zeros[3] = {0, 0, NAN}, xs[3] = {1, 2, 3};
    l2l_series z = {"zeros", 3, xs, zeros, NULL};
    tu_temp_path(path, sizeof path, "nothing.png");
    l2l_error err = {0};
    l2l_status st = l2l_plot_lines(path, "t", "x", "y", 1, &z, 1, &err);
    if (st != L2L_STATUS_NUMERIC)
        fail_msg("all zero on a log axis: expected L2L_STATUS_NUMERIC, found %s", l2l_status_name(st));
    if (file_size(path) >= 0) fail_msg("%s: a file was written", path);
}

/* Many series cycle through colours and styles; the caller's PLplot stream is untouched. */
static void test_many_series(void **state)
{
    (void)state;
    enum { K = 12 };
    static double y[K][T];
    double x[T];
    l2l_series s[K];
    char labels[K][32];
    for (int i = 0; i < T; i++) x[i] = i;
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < T; i++) y[k][i] = (k + 1) * exp(-0.01 * (k + 1) * i);
        snprintf(labels[k], sizeof labels[k], "series %d", k);
        s[k] = (l2l_series){labels[k], T, x, y[k], NULL};
    }
    char path[256];
    tu_temp_path(path, sizeof path, "many.png");
    l2l_error err = {0};
    for (int rep = 0; rep < 3; rep++) {
        l2l_status st = l2l_plot_lines(path, "many", "step", "loss", 1, s, K, &err);
        if (st != L2L_STATUS_OK) fail_msg("rep %d: expected L2L_STATUS_OK, found %s: %s", rep,
                                   l2l_status_name(st), err.msg);
    }
}

/* PLplot's fatal errors end in exit(); l2l must catch them and return a status. A fresh
 * process (PLplot loads its driver list once) is started with PLPLOT_DRV_DIR pointing at an
 * empty directory, which makes PLplot's set-up call plexit. */
static const char *self_path;

static int child_no_drivers(void)
{
    curves c;
    make_curves(&c);
    char path[256];
    for (int rep = 0; rep < 2; rep++) {
        tu_temp_path(path, sizeof path, "nodriver.png");
        l2l_error err = {0};
        l2l_status st = l2l_plot_lines(path, "t", "x", "y", 1, c.s, N_SERIES, &err);
        if (st != L2L_STATUS_IO) {
            fprintf(stderr, "no drivers, call %d: expected L2L_STATUS_IO, found %s: %s\n", rep,
                    l2l_status_name(st), err.msg);
            return 3;
        }
        if (!strstr(err.msg, "plplot-driver-cairo")) {
            fprintf(stderr, "no drivers: message does not say what to install: %s\n", err.msg);
            return 4;
        }
        if (access(path, F_OK) == 0) {
            fprintf(stderr, "no drivers: %s was written\n", path);
            return 5;
        }
    }
    return 0;
}

static void test_plplot_exit_is_caught(void **state)
{
    (void)state;
    char empty[256];
    tu_temp_path(empty, sizeof empty, "no_drivers");
    assert_int_equal(mkdir(empty, 0755), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("PLPLOT_DRV_DIR", empty, 1);
        execl(self_path, self_path, "--child-no-drivers", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) fail_msg("child died from signal %d", WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child exited with %d: expected 0 (1 means PLplot called exit())",
                 WEXITSTATUS(status));
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 2 && strcmp(argv[1], "--child-no-drivers") == 0) return child_no_drivers();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_svg),
        cmocka_unit_test(test_overwrite),
        cmocka_unit_test(test_bad_extension),
        cmocka_unit_test(test_unwritable_directory),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_plplot_exit_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
