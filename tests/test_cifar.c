/*
 * The CIFAR-10 reader on files this program writes in the official binary format (records
 * of 1 label byte and 3,072 image bytes; no copy of CIFAR-10 can be downloaded here): a
 * good set read back exactly, split by split and file by file; then every malformed input
 * refused with a message that names the file and the problem: a truncated record, a wrong
 * size (an empty file, more records than a batch holds), a label above 9, an empty or
 * missing directory, a missing batch, something that is not a regular file. Last, keeping
 * a subset of the classes (l2l_dataset_select_classes).
 */
#define _XOPEN_SOURCE 700 /* mkfifo, symlink */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

enum { RECORD = 3073, IMAGE = 3072 };

static char root[64];

/* root/sub (made if needed) */
static const char *dir_path(char *buf, size_t n, const char *sub)
{
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/l2l-cifar-XXXXXX");
        if (!mkdtemp(root)) fail_msg("mkdtemp failed");
    }
    snprintf(buf, n, "%s/%s", root, sub);
    mkdir(buf, 0700);
    return buf;
}

/* The label and pixel of record i of file f, so that every byte is known. */
static uint8_t label_of(int f, int i) { return (uint8_t)((f * 7 + i * 3) % 10); }
static uint8_t pixel_of(int f, int i, int j) { return (uint8_t)(f * 31 + i * 17 + j * 5 + j / 1024); }

/* dir/name with `records` records of file number f. */
static void write_batch(const char *dir, const char *name, int f, int records)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf = malloc((size_t)records * RECORD + 1);
    assert_non_null(buf);
    for (int i = 0; i < records; i++) {
        buf[(size_t)i * RECORD] = label_of(f, i);
        for (int j = 0; j < IMAGE; j++) buf[(size_t)i * RECORD + 1 + j] = pixel_of(f, i, j);
    }
    tu_write_file(path, buf, (size_t)records * RECORD);
    free(buf);
}

static const int train_records[5] = {3, 2, 4, 1, 5};

/* A full set: data_batch_1..5.bin and test_batch.bin (file number 5). */
static void write_set(const char *dir)
{
    char name[32];
    for (int f = 0; f < 5; f++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", f + 1);
        write_batch(dir, name, f, train_records[f]);
    }
    write_batch(dir, "test_batch.bin", 5, 6);
}

static void test_good_set(void **state)
{
    (void)state;
    char dir[256];
    dir_path(dir, sizeof dir, "good");
    write_set(dir);
    l2l_dataset ds;
    l2l_error err = {0};
    if (l2l_cifar10_load(&ds, dir, "train", &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 15);
    assert_int_equal(ds.channels, 3);
    assert_int_equal(ds.rows, 32);
    assert_int_equal(ds.cols, 32);
    assert_int_equal(ds.n_classes, 10);
    size_t k = 0;
    for (int f = 0; f < 5; f++)
        for (int i = 0; i < train_records[f]; i++, k++) {
            assert_int_equal(ds.labels[k], label_of(f, i));
            for (int j = 0; j < IMAGE; j++)
                if (ds.images[k * IMAGE + j] != pixel_of(f, i, j))
                    fail_msg("image %zu byte %d: %u, expected %u", k, j, ds.images[k * IMAGE + j], pixel_of(f, i, j));
        }
    l2l_dataset_free(&ds);
    l2l_dataset_free(&ds); /* freeing twice is harmless */
    if (l2l_cifar10_load(&ds, dir, "test", &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ds.labels[i], label_of(5, i));
        assert_int_equal(ds.images[(size_t)i * IMAGE + 2000], pixel_of(5, i, 2000));
    }
    l2l_dataset_free(&ds);
    /* load_files: any files, in the order given */
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/test_batch.bin", dir);
    snprintf(b, sizeof b, "%s/data_batch_4.bin", dir);
    const char *paths[2] = {a, b};
    if (l2l_cifar10_load_files(&ds, paths, 2, &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 7);
    assert_int_equal(ds.labels[6], label_of(3, 0));
    assert_int_equal(ds.images[6 * IMAGE + 7], pixel_of(3, 0, 7));
    l2l_dataset_free(&ds);
}

/* A load that must fail with status st and a message holding both phrases (phrase2 may
 * be NULL); the data set is left empty. */
static void expect_refused(l2l_status got, const l2l_error *err, const l2l_dataset *ds, l2l_status st,
                           const char *phrase1, const char *phrase2)
{
    if (got != st) fail_msg("expected %s, found %s (%s)", l2l_status_name(st), l2l_status_name(got), err->msg);
    if (!strstr(err->msg, phrase1)) fail_msg("message lacks \"%s\": %s", phrase1, err->msg);
    if (phrase2 && !strstr(err->msg, phrase2)) fail_msg("message lacks \"%s\": %s", phrase2, err->msg);
    assert_null(ds->images);
    assert_null(ds->labels);
    assert_int_equal(ds->n, 0);
    printf("    refused: %s\n", err->msg);
}

/* A good set in dir/sub with the file `name` replaced by bytes (n of them). */
static const char *set_with(char *dir, size_t size, const char *sub, const char *name, const uint8_t *bytes, size_t n)
{
    char path[512];
    dir_path(dir, size, sub);
    write_set(dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tu_write_file(path, bytes, n);
    return dir;
}

static void test_malformed_files(void **state)
{
    (void)state;
    char dir[256], path[512];
    l2l_dataset ds;
    l2l_error err = {0};
    uint8_t *bytes = calloc(3 * RECORD, 1);
    assert_non_null(bytes);

    /* truncated record: 2 whole records and 100 bytes of a third */
    set_with(dir, sizeof dir, "truncated", "data_batch_3.bin", bytes, 2 * RECORD + 100);
    expect_refused(l2l_cifar10_load(&ds, dir, "train", &err), &err, &ds, L2L_STATUS_FORMAT,
                   "data_batch_3.bin: truncated record", "ends 100 bytes into record 2");
    /* wrong size: an empty file */
    set_with(dir, sizeof dir, "empty-file", "test_batch.bin", bytes, 0);
    expect_refused(l2l_cifar10_load(&ds, dir, "test", &err), &err, &ds, L2L_STATUS_FORMAT,
                   "test_batch.bin: the file is empty (0 bytes)", "records of 3073 bytes");
    /* wrong size: 10,001 whole records, more than a batch holds (a sparse file: refused
     * from its size, before a byte is read) */
    set_with(dir, sizeof dir, "too-big", "data_batch_5.bin", bytes, 0);
    snprintf(path, sizeof path, "%s/data_batch_5.bin", dir);
    assert_int_equal(truncate(path, (off_t)10001 * RECORD), 0);
    expect_refused(l2l_cifar10_load(&ds, dir, "train", &err), &err, &ds, L2L_STATUS_FORMAT,
                   "data_batch_5.bin: wrong size", "10001 records of 3073 bytes, more than the 10000");
    /* a label out of range: record 1's label is 10 */
    bytes[RECORD] = 10;
    set_with(dir, sizeof dir, "label", "data_batch_1.bin", bytes, 3 * RECORD);
    expect_refused(l2l_cifar10_load(&ds, dir, "train", &err), &err, &ds, L2L_STATUS_FORMAT,
                   "data_batch_1.bin: record 1 (byte 3073) has label 10, expected 0..9", NULL);
    bytes[RECORD] = 255;
    set_with(dir, sizeof dir, "label255", "test_batch.bin", bytes, 3 * RECORD);
    expect_refused(l2l_cifar10_load(&ds, dir, "test", &err), &err, &ds, L2L_STATUS_FORMAT,
                   "record 1 (byte 3073) has label 255", NULL);
    free(bytes);
}

static void test_bad_directories(void **state)
{
    (void)state;
    char dir[256], path[512];
    l2l_dataset ds;
    l2l_error err = {0};
    /* an empty directory */
    dir_path(dir, sizeof dir, "empty");
    expect_refused(l2l_cifar10_load(&ds, dir, "train", &err), &err, &ds, L2L_STATUS_IO,
                   "holds no data_batch_1.bin .. data_batch_5.bin (the train split)", "cifar-10-batches-bin");
    expect_refused(l2l_cifar10_load(&ds, dir, "test", &err), &err, &ds, L2L_STATUS_IO,
                   "holds no test_batch.bin (the test split)", NULL);
    /* one batch missing */
    dir_path(dir, sizeof dir, "missing");
    write_set(dir);
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir);
    assert_int_equal(unlink(path), 0);
    expect_refused(l2l_cifar10_load(&ds, dir, "train", &err), &err, &ds, L2L_STATUS_IO,
                   "lacks data_batch_3.bin: the train split is data_batch_1.bin .. data_batch_5.bin", NULL);
    /* no such directory, a file in its place, an unknown split */
    snprintf(path, sizeof path, "%s/nowhere", root);
    expect_refused(l2l_cifar10_load(&ds, path, "train", &err), &err, &ds, L2L_STATUS_IO,
                   "nowhere: No such file or directory", NULL);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    expect_refused(l2l_cifar10_load(&ds, path, "test", &err), &err, &ds, L2L_STATUS_IO, "is not a directory", NULL);
    expect_refused(l2l_cifar10_load(&ds, dir, "t10k", &err), &err, &ds, L2L_STATUS_ARG,
                   "unknown CIFAR-10 split 't10k', expected \"train\" or \"test\"", NULL);
    /* not regular files: a directory, a named pipe (refused at once, not waited on), a
     * dangling link */
    dir_path(dir, sizeof dir, "odd");
    write_set(dir);
    snprintf(path, sizeof path, "%s/data_batch_2.bin", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_refused(l2l_cifar10_load(&ds, dir, "train", &err), &err, &ds, L2L_STATUS_IO,
                   "data_batch_2.bin: it is a directory, not a regular file", NULL);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(20);
    expect_refused(l2l_cifar10_load(&ds, dir, "test", &err), &err, &ds, L2L_STATUS_IO,
                   "test_batch.bin: it is a named pipe (FIFO), not a regular file", NULL);
    alarm(0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/nonexistent/cifar", path), 0);
    expect_refused(l2l_cifar10_load(&ds, dir, "test", &err), &err, &ds, L2L_STATUS_IO,
                   "cannot open CIFAR-10 batch file", "No such file or directory");
    const char *none[1] = {NULL};
    expect_refused(l2l_cifar10_load_files(&ds, none, 0, &err), &err, &ds, L2L_STATUS_ARG, "no batch file given", NULL);
}

static void expect_select_error(l2l_dataset *ds, const int *classes, int k, const char *phrase)
{
    l2l_error err = {0};
    const size_t n = ds->n;
    const int n_classes = ds->n_classes;
    const l2l_status st = l2l_dataset_select_classes(ds, classes, k, &err);
    if (st != L2L_STATUS_ARG) fail_msg("expected invalid argument for \"%s\", found %s", phrase, l2l_status_name(st));
    if (!strstr(err.msg, phrase)) fail_msg("message lacks \"%s\": %s", phrase, err.msg);
    assert_int_equal(ds->n, n); /* unchanged */
    assert_int_equal(ds->n_classes, n_classes);
}

static void test_select_classes(void **state)
{
    (void)state;
    char dir[256];
    dir_path(dir, sizeof dir, "select");
    write_set(dir);
    l2l_dataset ds;
    l2l_error err = {0};
    if (l2l_cifar10_load(&ds, dir, "train", &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    /* the labels in file order, and each image's first pixel, to follow them */
    uint8_t label[15], first[15];
    for (int i = 0; i < 15; i++) label[i] = ds.labels[i], first[i] = ds.images[(size_t)i * IMAGE];
    const int dup[2] = {3, 3}, out[2] = {1, 10}, neg[1] = {-1}, absent[1] = {9}; /* labels 0, 1, 3, 4, 6, 7, 8 occur */
    expect_select_error(&ds, dup, 2, "class 3 is listed twice");
    expect_select_error(&ds, out, 2, "class 10 is outside the data set's 10 classes (0..9)");
    expect_select_error(&ds, neg, 1, "class -1 is outside");
    expect_select_error(&ds, dup, 0, "a class list of 0 classes, expected 1..10");
    expect_select_error(&ds, absent, 1, "none of the 15 examples has one of the 1 classes");
    /* classes {7, 0, 3}: 7 -> 0, 0 -> 1, 3 -> 2, order kept */
    const int keep[3] = {7, 0, 3};
    assert_int_equal(l2l_dataset_select_classes(&ds, keep, 3, &err), L2L_STATUS_OK);
    assert_int_equal(ds.n_classes, 3);
    size_t j = 0;
    for (int i = 0; i < 15; i++) {
        const int want = label[i] == 7 ? 0 : label[i] == 0 ? 1 : label[i] == 3 ? 2 : -1;
        if (want < 0) continue;
        assert_true(j < ds.n);
        assert_int_equal(ds.labels[j], want);
        assert_int_equal(ds.images[j * IMAGE], first[i]);
        j++;
    }
    assert_int_equal(j, ds.n);
    assert_true(ds.n > 0 && ds.n < 15);
    l2l_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_set),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_bad_directories),
        cmocka_unit_test(test_select_classes),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (root[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    }
    return rc;
}
