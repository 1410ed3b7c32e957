/* Loaders refuse at once what is not a regular file (src/io/input.c): a named pipe, a
 * directory or a device given as IDX file, checkpoint or CSV. Each loader must return an I/O
 * error naming the path and saying what it is; one that blocks (open() on a pipe without a
 * writer never returns) is killed by alarm(), and the program fails. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/input.h"
#include "plot/csv.h"
#include "testutil.h"

enum { HANG_SECONDS = 10 };

typedef struct {
    const char *path;
    const char *kind; /* as the message says it */
} odd_file;

/* A FIFO and a directory in the temporary directory, and /dev/null. */
static int odd_files(odd_file *out)
{
    static char fifo[256], dir[256];
    tu_temp_path(fifo, sizeof fifo, "fifo");
    tu_temp_path(dir, sizeof dir, "dir");
    if (access(fifo, F_OK) != 0 && mkfifo(fifo, 0600) != 0) fail_msg("mkfifo %s failed", fifo);
    if (access(dir, F_OK) != 0 && mkdir(dir, 0700) != 0) fail_msg("mkdir %s failed", dir);
    out[0] = (odd_file){fifo, "a named pipe (FIFO)"};
    out[1] = (odd_file){dir, "a directory"};
    out[2] = (odd_file){"/dev/null", "a character device"};
    return 3;
}

static void expect_refused(l2l_status st, const l2l_error *err, const odd_file *f,
                           const char *loader)
{
    if (st != L2L_STATUS_IO)
        fail_msg("%s on %s: expected status 'io', found '%s' (%s)", loader, f->path,
                 l2l_status_name(st), st ? err->msg : "-");
    char want[300];
    snprintf(want, sizeof want, "%s: it is %s, not a regular file", f->path, f->kind);
    if (!strstr(err->msg, want)) fail_msg("%s: message lacks \"%s\": %s", loader, want, err->msg);
}

static void test_idx_refuses(void **state)
{
    (void)state;
    odd_file odd[3];
    int n = odd_files(odd);
    char lab[256];
    tu_temp_path(lab, sizeof lab, "labels");
    static const uint8_t one_label[] = {0, 0, 8, 1, 0, 0, 0, 1, 7};
    tu_write_file(lab, one_label, sizeof one_label);
    alarm(HANG_SECONDS);
    for (int i = 0; i < n; i++) {
        l2l_dataset ds;
        l2l_error err = {0};
        expect_refused(l2l_idx_load(&ds, odd[i].path, lab, &err), &err, &odd[i], "l2l_idx_load");
        assert_non_null(strstr(err.msg, "IDX image file"));
        assert_null(ds.images);
    }
    alarm(0);
}

static void test_checkpoint_refuses(void **state)
{
    (void)state;
    odd_file odd[3];
    int n = odd_files(odd);
    alarm(HANG_SECONDS);
    for (int i = 0; i < n; i++) {
        l2l_lstm net;
        l2l_error err = {0};
        expect_refused(l2l_checkpoint_load(odd[i].path, &net, NULL, NULL, &err), &err, &odd[i],
                       "l2l_checkpoint_load");
        assert_null(net.phi);
    }
    alarm(0);
}

static void test_csv_refuses(void **state)
{
    (void)state;
    odd_file odd[3];
    int n = odd_files(odd);
    alarm(HANG_SECONDS);
    for (int i = 0; i < n; i++) {
        csv_plot p;
        l2l_error err = {0};
        expect_refused(csv_plot_read(&p, odd[i].path, NULL, NULL, NULL, NULL, &err), &err,
                       &odd[i], "csv_plot_read");
        assert_int_equal(p.n_curves, 0);
        csv_plot_free(&p);
    }
    alarm(0);
}

/* A regular file opens, with its size; a missing one is named with the system's reason. */
static void test_regular_and_missing(void **state)
{
    (void)state;
    char path[256];
    tu_temp_path(path, sizeof path, "regular");
    tu_write_file(path, "12345", 5);
    l2l_error err = {0};
    off_t size = -1;
    int fd = l2l_input_open(path, "test file", &size, &err);
    if (fd < 0) fail_msg("%s", err.msg);
    assert_int_equal(size, 5);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof buf), 5);
    close(fd);
    tu_temp_path(path, sizeof path, "missing");
    assert_int_equal(l2l_input_open(path, "test file", &size, &err), -1);
    assert_int_equal(err.status, L2L_STATUS_IO);
    char want[300];
    snprintf(want, sizeof want, "cannot open test file %s: No such file", path);
    if (!strstr(err.msg, want)) fail_msg("message lacks \"%s\": %s", want, err.msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_refuses),
        cmocka_unit_test(test_checkpoint_refuses),
        cmocka_unit_test(test_csv_refuses),
        cmocka_unit_test(test_regular_and_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
