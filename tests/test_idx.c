/* IDX reader: files written here (plain and gzipped) load back exactly, and every kind of
 * damaged file is refused with a status and a message that names the problem, in memory
 * bounded by the bytes the file holds. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

enum { ROWS = 2, COLS = 4, N_IMG = 3 };

/* Three 2x4 images whose bytes are 10*i + j, and their labels. */
static const uint8_t labels3[N_IMG] = {0, 2, 1};

static void fill_images(uint8_t *px)
{
    for (int i = 0; i < N_IMG; i++)
        for (int j = 0; j < ROWS * COLS; j++) px[i * ROWS * COLS + j] = (uint8_t)(10 * i + j);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes magic, the ndim sizes and `len` bytes of payload; gzipped if gz. */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims,
                      const uint8_t *payload, size_t len, int gz)
{
    uint8_t buf[4096];
    size_t n = 0;
    put_be32(buf, magic);
    n = 4;
    for (int d = 0; d < ndim; d++, n += 4) put_be32(buf + n, dims[d]);
    assert_true(n + len <= sizeof buf);
    if (len) memcpy(buf + n, payload, len);
    n += len;
    if (!gz) {
        tu_write_file(path, buf, n);
        return;
    }
    gzFile f = gzopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (gzwrite(f, buf, (unsigned)n) != (int)n) fail_msg("short gzwrite to %s", path);
    if (gzclose(f) != Z_OK) fail_msg("gzclose failed on %s", path);
}

static void write_images(const char *path, int gz)
{
    uint8_t px[N_IMG * ROWS * COLS];
    fill_images(px);
    const uint32_t dims[3] = {N_IMG, ROWS, COLS};
    write_idx(path, 0x803, 3, dims, px, sizeof px, gz);
}

static void write_labels(const char *path, const uint8_t *labels, uint32_t n, int gz)
{
    write_idx(path, 0x801, 1, &n, labels, n, gz);
}

/* The call must fail with `status` and a message that contains every given phrase. */
static void expect_error(l2l_status st, const l2l_error *err, l2l_status status,
                         const l2l_dataset *ds, const char *phrase1, const char *phrase2)
{
    if (st != status)
        fail_msg("expected status '%s', found '%s' (message: %s)", l2l_status_name(status),
                 l2l_status_name(st), st == L2L_STATUS_OK ? "-" : err->msg);
    if (err->status != status)
        fail_msg("err->status is '%s', expected '%s'", l2l_status_name(err->status),
                 l2l_status_name(status));
    if (phrase1 && !strstr(err->msg, phrase1))
        fail_msg("message lacks \"%s\": %s", phrase1, err->msg);
    if (phrase2 && !strstr(err->msg, phrase2))
        fail_msg("message lacks \"%s\": %s", phrase2, err->msg);
    /* A failed load leaves nothing allocated and the data set zeroed. */
    assert_null(ds->images);
    assert_null(ds->labels);
    assert_int_equal(ds->n, 0);
}

static void check_contents(const l2l_dataset *ds)
{
    uint8_t px[N_IMG * ROWS * COLS];
    fill_images(px);
    assert_int_equal(ds->n, N_IMG);
    assert_int_equal(ds->rows, ROWS);
    assert_int_equal(ds->cols, COLS);
    assert_memory_equal(ds->images, px, sizeof px);
    assert_memory_equal(ds->labels, labels3, N_IMG);
}

static void test_load_plain_and_gzip(void **state)
{
    (void)state;
    char img[256], lab[256], imggz[256], labgz[256];
    tu_temp_path(img, sizeof img, "a-images");
    tu_temp_path(lab, sizeof lab, "a-labels");
    tu_temp_path(imggz, sizeof imggz, "a-images.gz");
    tu_temp_path(labgz, sizeof labgz, "a-labels.gz");
    write_images(img, 0);
    write_labels(lab, labels3, N_IMG, 0);
    write_images(imggz, 1);
    write_labels(labgz, labels3, N_IMG, 1);

    const char *pairs[4][2] = {{img, lab}, {imggz, labgz}, {imggz, lab}, {img, labgz}};
    for (int k = 0; k < 4; k++) {
        l2l_dataset ds;
        l2l_error err = {0};
        l2l_status st = l2l_idx_load(&ds, pairs[k][0], pairs[k][1], &err);
        if (st != L2L_STATUS_OK) fail_msg("pair %d: %s", k, err.msg);
        check_contents(&ds);
        assert_int_equal(ds.n_classes, 3); /* max label + 1 */
        l2l_dataset_free(&ds);
        assert_null(ds.images);
        l2l_dataset_free(&ds); /* freeing twice is harmless */
    }
}

static void test_bad_magic(void **state)
{
    (void)state;
    char img[256], lab[256];
    tu_temp_path(img, sizeof img, "m-images");
    tu_temp_path(lab, sizeof lab, "m-labels");
    uint8_t px[N_IMG * ROWS * COLS] = {0};
    const uint32_t dims[3] = {N_IMG, ROWS, COLS};
    write_labels(lab, labels3, N_IMG, 0);
    l2l_dataset ds;
    l2l_error err = {0};

    write_idx(img, 0xdeadbeef, 3, dims, px, sizeof px, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "bad magic number 0xdeadbeef", "expected 0x00000803");
    assert_non_null(strstr(err.msg, img));

    /* float elements (type 0x0d) are not unsigned bytes */
    write_idx(img, 0x00000d03, 3, dims, px, sizeof px, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "bad magic number 0x00000d03", NULL);

    /* a gzipped file with a bad magic is reported the same way */
    write_idx(img, 0x12345678, 3, dims, px, sizeof px, 1);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "bad magic number 0x12345678", NULL);
}

static void test_wrong_dimension_count(void **state)
{
    (void)state;
    char img[256], lab[256];
    tu_temp_path(img, sizeof img, "d-images");
    tu_temp_path(lab, sizeof lab, "d-labels");
    uint8_t px[N_IMG * ROWS * COLS] = {0};
    const uint32_t dims2[2] = {N_IMG, ROWS * COLS};
    write_idx(img, 0x802, 2, dims2, px, sizeof px, 0);
    write_labels(lab, labels3, N_IMG, 0);
    l2l_dataset ds;
    l2l_error err = {0};
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "says 2 dimensions, expected 3", img);

    /* image and label files swapped */
    write_images(img, 0);
    expect_error(l2l_idx_load(&ds, lab, img, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "says 1 dimension, expected 3", "swapped");
}

static void test_truncated(void **state)
{
    (void)state;
    char img[256], lab[256], raw[256];
    tu_temp_path(img, sizeof img, "t-images");
    tu_temp_path(lab, sizeof lab, "t-labels");
    uint8_t px[N_IMG * ROWS * COLS];
    fill_images(px);
    const uint32_t dims[3] = {N_IMG, ROWS, COLS};
    write_labels(lab, labels3, N_IMG, 0);
    l2l_dataset ds;
    l2l_error err = {0};

    /* 24 data bytes promised, 20 present; plain and gzipped */
    for (int gz = 0; gz <= 1; gz++) {
        write_idx(img, 0x803, 3, dims, px, sizeof px - 4, gz);
        expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                     "truncated data: the header promises 24 bytes", "found 20");
    }

    /* a header cut inside the sizes, and an empty file */
    write_idx(img, 0x803, 1, dims, NULL, 0, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "truncated header: expected 16 bytes, found 8", NULL);
    tu_write_file(img, "", 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "truncated header", "found 0");

    /* a gzip stream cut in the middle: the bytes of a valid .gz file, less its tail */
    tu_temp_path(raw, sizeof raw, "t-full.gz");
    uint8_t big[2048];
    for (size_t k = 0; k < sizeof big; k++) big[k] = (uint8_t)(k * 7919 % 251);
    const uint32_t bigdims[3] = {2, 32, 32};
    write_idx(raw, 0x803, 3, bigdims, big, sizeof big, 1);
    FILE *f = fopen(raw, "rb");
    assert_non_null(f);
    uint8_t gzbytes[8192];
    size_t gzlen = fread(gzbytes, 1, sizeof gzbytes, f);
    fclose(f);
    assert_true(gzlen > 40 && gzlen < sizeof gzbytes);
    tu_write_file(img, gzbytes, gzlen / 2);
    l2l_status st = l2l_idx_load(&ds, img, lab, &err);
    assert_int_not_equal(st, L2L_STATUS_OK);
    if (!strstr(err.msg, img)) fail_msg("message does not name the file: %s", err.msg);
    assert_null(ds.images);

    /* the whole stream, with a wrong CRC-32 in the gzip trailer (bytes len-8 .. len-5) */
    gzbytes[gzlen - 8] ^= 0xff;
    tu_write_file(img, gzbytes, gzlen);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "corrupt gzip data", "incorrect data check");
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    char img[256], lab[256];
    tu_temp_path(img, sizeof img, "g-images");
    tu_temp_path(lab, sizeof lab, "g-labels");
    write_images(img, 0);
    const uint8_t more[N_IMG + 3] = {0, 2, 1, 'x', 'y', 'z'};
    const uint32_t n = N_IMG;
    l2l_dataset ds;
    l2l_error err = {0};
    for (int gz = 0; gz <= 1; gz++) {
        write_idx(lab, 0x801, 1, &n, more, sizeof more, gz);
        expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                     "3 trailing bytes", lab);
    }
}

/* gzip members a and b back to back, then `junk` bytes: the files of the next test. */
static void write_gzip_then(const char *path, const char *a_path, const char *b_path,
                            const void *junk, size_t junk_len)
{
    uint8_t bytes[8192];
    size_t n = 0;
    const char *parts[2] = {a_path, b_path};
    for (int k = 0; k < 2 && parts[k]; k++) {
        FILE *f = fopen(parts[k], "rb");
        if (!f) fail_msg("cannot read %s", parts[k]);
        n += fread(bytes + n, 1, sizeof bytes - n, f);
        fclose(f);
    }
    assert_true(n + junk_len <= sizeof bytes);
    if (junk_len) memcpy(bytes + n, junk, junk_len);
    tu_write_file(path, bytes, n + junk_len);
}

/* What follows the last gzip member must be another complete member: concatenated members
 * are valid gzip (their data are joined), anything else after them is refused. */
static void test_gzip_members_and_garbage(void **state)
{
    (void)state;
    char img[256], head[256], tail[256], lab[256];
    tu_temp_path(img, sizeof img, "z-images.gz");
    tu_temp_path(head, sizeof head, "z-head.gz");
    tu_temp_path(tail, sizeof tail, "z-tail.gz");
    tu_temp_path(lab, sizeof lab, "z-labels");
    write_labels(lab, labels3, N_IMG, 0);
    uint8_t px[N_IMG * ROWS * COLS];
    fill_images(px);
    const uint32_t dims[3] = {N_IMG, ROWS, COLS};
    /* member 1: the header and the first 5 pixels; member 2: the other pixels */
    write_idx(head, 0x803, 3, dims, px, 5, 1);
    gzFile g = gzopen(tail, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, px + 5, sizeof px - 5), (int)(sizeof px - 5));
    assert_int_equal(gzclose(g), Z_OK);
    l2l_dataset ds;
    l2l_error err = {0};

    write_gzip_then(img, head, tail, NULL, 0);
    if (l2l_idx_load(&ds, img, lab, &err) != L2L_STATUS_OK) fail_msg("two members: %s", err.msg);
    check_contents(&ds);
    l2l_dataset_free(&ds);

    /* junk, zero padding, a lone magic byte, and a member cut short after a complete file */
    static const uint8_t junk[] = {'j', 'u', 'n', 'k'}, zeros[8] = {0}, lone[1] = {0x1f};
    write_gzip_then(img, head, tail, junk, sizeof junk);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "4 bytes of trailing garbage after the gzip data", img);
    write_gzip_then(img, head, tail, zeros, sizeof zeros);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "8 bytes of trailing garbage", NULL);
    write_gzip_then(img, head, tail, lone, sizeof lone);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "truncated gzip member after the data", NULL);
    uint8_t cut[10]; /* a gzip member header, no data */
    FILE *f = fopen(tail, "rb");
    assert_non_null(f);
    assert_int_equal(fread(cut, 1, sizeof cut, f), sizeof cut);
    fclose(f);
    write_gzip_then(img, head, tail, cut, sizeof cut);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "truncated gzip member after the data", "ends early");
    /* garbage right after the header's member, before the data are complete */
    write_gzip_then(img, head, NULL, junk, sizeof junk);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "4 bytes of trailing garbage", NULL);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A field of /proc/self/status in kB, or -1. */
static long proc_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t len = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') kb = atol(line + len + 1);
    if (f) fclose(f);
    return kb;
}

enum { LIMIT_MB = 64 };

/*
 * Loads images_path in a child process and returns what it found, so that a loader that
 * trusts the header cannot exhaust this process. Memory is bounded two ways:
 *   - without ASan, RLIMIT_AS allows the child LIMIT_MB MB of address space beyond what it
 *     holds, so an allocation of the promised size fails (NOMEM) even if never touched;
 *   - with ASan, whose shadow reservations make RLIMIT_AS unusable, the peak resident size
 *     (VmHWM, reset through /proc/self/clear_refs) must grow by less than LIMIT_MB MB; the
 *     reader zeroes what it allocates, so a promised-size buffer would show.
 */
static void load_bounded(const char *images_path, const char *labels_path, l2l_status *st,
                         char *msg, size_t msg_size, long *grew_kb)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        long before_kb = -1;
#ifdef UNDER_ASAN
        FILE *c = fopen("/proc/self/clear_refs", "w");
        if (c && fputs("5", c) >= 0 && fclose(c) == 0) before_kb = proc_status_kb("VmRSS");
#else
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)proc_status_kb("VmSize") * 1024 + ((rlim_t)LIMIT_MB << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(100);
#endif
        l2l_dataset ds;
        l2l_error err = {0};
        l2l_status s = l2l_idx_load(&ds, images_path, labels_path, &err);
        long grew = before_kb < 0 ? -1 : proc_status_kb("VmHWM") - before_kb;
        dprintf(fds[1], "%d %ld %s", (int)s, grew, err.msg);
        _exit(0);
    }
    close(fds[1]);
    char buf[1200] = {0};
    size_t n = 0;
    ssize_t k;
    while (n + 1 < sizeof buf && (k = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)k;
    close(fds[0]);
    int wstatus;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        fail_msg("the child loading %s died (wait status 0x%x)", images_path, wstatus);
    int s, used;
    if (sscanf(buf, "%d %ld %n", &s, grew_kb, &used) != 2) fail_msg("bad report from the child: %s", buf);
    *st = (l2l_status)s;
    snprintf(msg, msg_size, "%s", buf + used);
}

/* The reproducers of issue 13 (tests/fixtures/idx-*): files of 16 to 33 bytes whose headers
 * promise 784 MB to 3.6 GB. Each is refused as truncated, within LIMIT_MB MB. */
static void test_promises_cost_nothing(void **state)
{
    (void)state;
    static const char *const files[] = {"idx-16byte-allocates-784MB",
                                        "idx-22byte-allocates-3.5GB.gz",
                                        "idx-33byte-allocates-2.2GB.gz"};
    static const char *const phrases[] = {"truncated data: the header promises 784000000 bytes",
                                          "ends early", "truncated data"};
    char lab[256];
    tu_temp_path(lab, sizeof lab, "r-labels");
    write_labels(lab, labels3, N_IMG, 0);
    const char *src = __FILE__, *slash = strrchr(src, '/');
    for (int i = 0; i < 3; i++) {
        char path[512], msg[1024];
        snprintf(path, sizeof path, "%.*s/fixtures/%s", slash ? (int)(slash - src) : 1,
                 slash ? src : ".", files[i]);
        struct stat sb;
        if (stat(path, &sb) != 0) fail_msg("reproducer %s is missing", path);
        l2l_status st;
        long grew_kb;
        load_bounded(path, lab, &st, msg, sizeof msg, &grew_kb);
        if (st != L2L_STATUS_FORMAT || !strstr(msg, phrases[i]) || !strstr(msg, path))
            fail_msg("%s: expected a format error with \"%s\", found status %s: %s", files[i],
                     phrases[i], l2l_status_name(st), msg);
#ifdef UNDER_ASAN
        if (grew_kb < 0)
            printf("[  SKIP    ] %s: /proc/self/clear_refs not writable, peak memory not checked\n",
                   files[i]);
        else if (grew_kb >= LIMIT_MB * 1024)
            fail_msg("%s: the peak resident size grew by %ld kB, expected under %d MB", files[i],
                     grew_kb, LIMIT_MB);
#endif
    }
}

static void test_counts_disagree(void **state)
{
    (void)state;
    char img[256], lab[256];
    tu_temp_path(img, sizeof img, "c-images");
    tu_temp_path(lab, sizeof lab, "c-labels");
    write_images(img, 0);
    write_labels(lab, labels3, 2, 0);
    l2l_dataset ds;
    l2l_error err = {0};
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "image and label counts disagree", "3 images");
    assert_non_null(strstr(err.msg, "2 labels"));
}

static void test_bad_sizes(void **state)
{
    (void)state;
    char img[256], lab[256];
    tu_temp_path(img, sizeof img, "s-images");
    tu_temp_path(lab, sizeof lab, "s-labels");
    write_labels(lab, labels3, N_IMG, 0);
    l2l_dataset ds;
    l2l_error err = {0};

    const uint32_t zero[3] = {N_IMG, 0, COLS};
    write_idx(img, 0x803, 3, zero, NULL, 0, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "dimension 1 is 0", "positive");

    const uint32_t negative[3] = {0x80000000u, ROWS, COLS};
    write_idx(img, 0x803, 3, negative, NULL, 0, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "dimension 0 is 2147483648", NULL);

    const uint32_t wide[3] = {1, 1, 1u << 20};
    write_idx(img, 0x803, 3, wide, NULL, 0, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds, "absurd", NULL);

    /* sizes that pass one by one but promise far too much data */
    const uint32_t huge[3] = {0x7fffffffu, 60000, 60000};
    write_idx(img, 0x803, 3, huge, NULL, 0, 0);
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_FORMAT, &ds,
                 "more than the limit", NULL);
}

static void test_missing_file(void **state)
{
    (void)state;
    char img[256], lab[256];
    tu_temp_path(img, sizeof img, "x-images");
    tu_temp_path(lab, sizeof lab, "no-such-labels");
    write_images(img, 0);
    l2l_dataset ds;
    l2l_error err = {0};
    expect_error(l2l_idx_load(&ds, img, lab, &err), &err, L2L_STATUS_IO, &ds, "cannot open", lab);
    expect_error(l2l_idx_load(&ds, "/nonexistent/dir/images", lab, &err), &err, L2L_STATUS_IO,
                 &ds, "/nonexistent/dir/images", "No such file");
}

/* An MNIST-style directory with the given split's two files, plain or gzipped. */
static void make_mnist_dir(char *dir, size_t size, const char *name, const char *split,
                           const uint8_t *labels, int gz)
{
    char path[512];
    tu_temp_path(dir, size, name);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) fail_msg("mkdir %s failed", dir);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, split, gz ? ".gz" : "");
    write_images(path, gz);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, split, gz ? ".gz" : "");
    write_labels(path, labels, N_IMG, gz);
}

static void test_mnist_load(void **state)
{
    (void)state;
    char dir[256], dirgz[256];
    make_mnist_dir(dir, sizeof dir, "mnist-plain", "train", labels3, 0);
    make_mnist_dir(dirgz, sizeof dirgz, "mnist-gz", "t10k", labels3, 1);
    l2l_dataset ds;
    l2l_error err = {0};

    if (l2l_mnist_load(&ds, dir, "train", &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    check_contents(&ds);
    assert_int_equal(ds.n_classes, 10); /* digits, whatever the largest label present */
    l2l_dataset_free(&ds);

    if (l2l_mnist_load(&ds, dirgz, "t10k", &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
    check_contents(&ds);
    l2l_dataset_free(&ds);

    expect_error(l2l_mnist_load(&ds, dir, "t10k", &err), &err, L2L_STATUS_IO, &ds,
                 "MNIST file not found", "t10k-images-idx3-ubyte.gz");
    assert_non_null(strstr(err.msg, "make data"));
    expect_error(l2l_mnist_load(&ds, dir, "test", &err), &err, L2L_STATUS_ARG, &ds,
                 "unknown MNIST split 'test'", NULL);
}

static void test_mnist_label_out_of_range(void **state)
{
    (void)state;
    char dir[256];
    const uint8_t bad[N_IMG] = {3, 9, 10};
    make_mnist_dir(dir, sizeof dir, "mnist-bad-label", "train", bad, 0);
    l2l_dataset ds;
    l2l_error err = {0};
    expect_error(l2l_mnist_load(&ds, dir, "train", &err), &err, L2L_STATUS_FORMAT, &ds,
                 "label 2 is 10", "expected a digit 0..9");
    assert_non_null(strstr(err.msg, "train-labels-idx1-ubyte"));
}

/* The data set made by scripts/fetch_mnist.sh, when it is there (`make data`). */
static void test_fetched_mnist(void **state)
{
    (void)state;
    const char *dir = tu_fetched_mnist();
    /* Class counts of the documented split (seed 20160614), from DIR/README. */
    static const int train_counts[10] = {817, 894, 790, 814, 787, 703, 808, 871, 759, 757};
    static const int t10k_counts[10] = {184, 233, 201, 218, 193, 160, 206, 199, 185, 221};
    const char *splits[2] = {"train", "t10k"};
    const int *counts[2] = {train_counts, t10k_counts};
    const size_t sizes[2] = {8000, 2000};
    for (int s = 0; s < 2; s++) {
        l2l_dataset ds;
        l2l_error err = {0};
        if (l2l_mnist_load(&ds, dir, splits[s], &err) != L2L_STATUS_OK) fail_msg("%s", err.msg);
        assert_int_equal(ds.n, sizes[s]);
        assert_int_equal(ds.rows, 28);
        assert_int_equal(ds.cols, 28);
        assert_int_equal(ds.n_classes, 10);
        int found[10] = {0};
        double ink = 0;
        for (size_t i = 0; i < ds.n; i++) found[ds.labels[i]]++;
        for (size_t k = 0; k < ds.n * 784; k++) ink += ds.images[k];
        for (int c = 0; c < 10; c++)
            if (found[c] != counts[s][c])
                fail_msg("%s: class %d has %d images, expected %d", splits[s], c, found[c],
                         counts[s][c]);
        /* MNIST's mean pixel is about 33/255; a scrambled conversion would not be. */
        double mean = ink / ((double)ds.n * 784);
        if (!(mean > 25 && mean < 40)) fail_msg("%s: mean pixel %g, expected about 33", splits[s], mean);
        l2l_dataset_free(&ds);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_plain_and_gzip),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_wrong_dimension_count),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_gzip_members_and_garbage),
        cmocka_unit_test(test_promises_cost_nothing),
        cmocka_unit_test(test_counts_disagree),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_mnist_load),
        cmocka_unit_test(test_mnist_label_out_of_range),
        cmocka_unit_test(test_fetched_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
