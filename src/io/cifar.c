/*
 * CIFAR-10's binary version (www.cs.toronto.edu/~kriz/cifar.html, cifar-10-binary.tar.gz,
 * which extracts to cifar-10-batches-bin/): data_batch_1.bin .. data_batch_5.bin (the
 * training split, 50,000 images) and test_batch.bin (10,000), each a plain sequence of
 * 10,000 records of
 *   1 byte   the label, 0..9
 *   3072     the image: 1,024 red, then 1,024 green, then 1,024 blue bytes, each channel's
 *            32 x 32 pixels row-major
 * with no header. l2l_dataset keeps the images exactly so (channel-major, channels = 3).
 *
 * The format has no magic number, so the reader checks what it can before trusting
 * anything: every file is a regular file (input.h) whose size is a whole number of records,
 * at least one and at most the official 10,000 (smaller files in the same format, such as
 * the tests write, are accepted); every label is 0..9; and the read must return exactly the
 * bytes that fstat promised, then end. All sizes are checked before the images are
 * allocated, so a wrong file costs no memory. Every message names the file and says what
 * was expected and what was found.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/input.h"
#include "util/util.h"

#define CIFAR_SIDE 32
#define CIFAR_CHANNELS 3
#define CIFAR_IMAGE_BYTES (CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE) /* 3,072 */
#define CIFAR_RECORD_BYTES (1 + CIFAR_IMAGE_BYTES)                   /* 3,073 */
#define CIFAR_MAX_RECORDS 10000
#define CIFAR_CLASSES 10
#define CIFAR_TRAIN_FILES 5
/* Records read per read() call. */
#define CIFAR_BLOCK_RECORDS 64

/* Opens path and checks its size; *fd and *records on success. */
static l2l_status cifar_open(const char *path, int *fd, size_t *records, l2l_error *err)
{
    off_t size;
    *fd = l2l_input_open(path, "CIFAR-10 batch file", &size, err);
    if (*fd < 0) return err ? err->status : L2L_STATUS_IO;
    const unsigned long long bytes = (unsigned long long)size;
    l2l_status st = L2L_STATUS_OK;
    if (bytes == 0)
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: the file is empty (0 bytes); a CIFAR-10 batch file holds records "
                           "of %d bytes (1 label byte, %d image bytes), 10,000 of them in the "
                           "official files",
                           path, CIFAR_RECORD_BYTES, CIFAR_IMAGE_BYTES);
    else if (bytes % CIFAR_RECORD_BYTES != 0)
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: truncated record: %llu bytes are not a whole number of %d-byte "
                           "records (1 label byte, %d image bytes); the file ends %llu bytes into "
                           "record %llu; fetch the file again",
                           path, bytes, CIFAR_RECORD_BYTES, CIFAR_IMAGE_BYTES,
                           bytes % CIFAR_RECORD_BYTES, bytes / CIFAR_RECORD_BYTES);
    else if (bytes / CIFAR_RECORD_BYTES > CIFAR_MAX_RECORDS)
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: wrong size: %llu bytes hold %llu records of %d bytes, more than "
                           "the %d of a CIFAR-10 batch file; this is not a CIFAR-10 binary batch "
                           "(CIFAR-100's records, for one, have 2 label bytes)",
                           path, bytes, bytes / CIFAR_RECORD_BYTES, CIFAR_RECORD_BYTES,
                           CIFAR_MAX_RECORDS);
    if (st != L2L_STATUS_OK) {
        close(*fd);
        *fd = -1;
        return st;
    }
    *records = (size_t)(bytes / CIFAR_RECORD_BYTES);
    return L2L_STATUS_OK;
}

/* Reads up to n bytes, retrying after EINTR and short reads; returns the count, or -1 on
 * a read error (errno set). */
static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* Reads `records` records from fd into images/labels (room for them), checking labels.
 * block: CIFAR_BLOCK_RECORDS records of scratch. */
static l2l_status cifar_read(const char *path, int fd, size_t records, uint8_t *images,
                             uint8_t *labels, unsigned char *block, l2l_error *err)
{
    for (size_t r0 = 0; r0 < records; r0 += CIFAR_BLOCK_RECORDS) {
        const size_t nr = records - r0 < CIFAR_BLOCK_RECORDS ? records - r0 : CIFAR_BLOCK_RECORDS;
        const ssize_t got = read_full(fd, block, nr * CIFAR_RECORD_BYTES);
        if (got < 0)
            return l2l_error_set(err, L2L_STATUS_IO, "%s: read error at record %zu: %s", path, r0,
                                 strerror(errno));
        if ((size_t)got < nr * CIFAR_RECORD_BYTES)
            return l2l_error_set(err, L2L_STATUS_IO,
                                 "%s: the file ended at byte %zu while reading, before the %zu "
                                 "bytes its size promised; was it changed while being read?",
                                 path, r0 * CIFAR_RECORD_BYTES + (size_t)got,
                                 records * CIFAR_RECORD_BYTES);
        for (size_t i = 0; i < nr; i++) {
            const unsigned char *rec = block + i * CIFAR_RECORD_BYTES;
            if (rec[0] >= CIFAR_CLASSES)
                return l2l_error_set(err, L2L_STATUS_FORMAT,
                                     "%s: record %zu (byte %zu) has label %u, expected 0..%d "
                                     "(CIFAR-10's classes); the file is damaged or not a "
                                     "CIFAR-10 binary batch",
                                     path, r0 + i, (r0 + i) * CIFAR_RECORD_BYTES, rec[0],
                                     CIFAR_CLASSES - 1);
            labels[r0 + i] = rec[0];
            memcpy(images + (r0 + i) * CIFAR_IMAGE_BYTES, rec + 1, CIFAR_IMAGE_BYTES);
        }
    }
    unsigned char extra;
    const ssize_t more = read_full(fd, &extra, 1);
    if (more != 0)
        return l2l_error_set(err, L2L_STATUS_IO, "%s: %s after the %zu bytes its size promised; "
                             "was it changed while being read?", path,
                             more < 0 ? strerror(errno) : "more data", records * CIFAR_RECORD_BYTES);
    return L2L_STATUS_OK;
}

l2l_status l2l_cifar10_load_files(l2l_dataset *ds, const char *const *paths, int n_files,
                                  l2l_error *err)
{
    L2L_ASSERT(ds && (paths || n_files == 0));
    memset(ds, 0, sizeof *ds);
    if (n_files < 1)
        return l2l_error_set(err, L2L_STATUS_ARG, "CIFAR-10: no batch file given, expected at least one");
    int *fds = malloc((size_t)n_files * sizeof *fds);
    size_t *records = malloc((size_t)n_files * sizeof *records);
    unsigned char *block = malloc((size_t)CIFAR_BLOCK_RECORDS * CIFAR_RECORD_BYTES);
    if (!fds || !records || !block) {
        free(fds), free(records), free(block);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "CIFAR-10: out of memory");
    }
    /* Every file's size first, so that a bad one costs nothing. */
    l2l_status st = L2L_STATUS_OK;
    int opened = 0;
    size_t total = 0;
    for (; opened < n_files && !st; opened++) {
        L2L_ASSERT(paths[opened]);
        st = cifar_open(paths[opened], &fds[opened], &records[opened], err);
        if (!st) total += records[opened];
    }
    if (st) opened--; /* the failed one closed itself */
    if (!st) {
        ds->images = l2l_alloc(total * CIFAR_IMAGE_BYTES);
        ds->labels = l2l_alloc(total);
        if (!ds->images || !ds->labels)
            st = l2l_error_set(err, L2L_STATUS_NOMEM,
                               "CIFAR-10: cannot allocate %zu bytes for %zu images", total * CIFAR_IMAGE_BYTES,
                               total);
    }
    size_t at = 0;
    for (int i = 0; i < n_files && !st; i++) {
        st = cifar_read(paths[i], fds[i], records[i], ds->images + at * CIFAR_IMAGE_BYTES,
                        ds->labels + at, block, err);
        at += records[i];
    }
    for (int i = 0; i < opened; i++) close(fds[i]);
    free(fds), free(records), free(block);
    if (st) {
        l2l_dataset_free(ds);
        return st;
    }
    ds->n = total;
    ds->rows = ds->cols = CIFAR_SIDE;
    ds->channels = CIFAR_CHANNELS;
    ds->n_classes = CIFAR_CLASSES;
    return L2L_STATUS_OK;
}

l2l_status l2l_cifar10_load(l2l_dataset *ds, const char *dir, const char *split, l2l_error *err)
{
    L2L_ASSERT(ds && dir && split);
    memset(ds, 0, sizeof *ds);
    const int train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "unknown CIFAR-10 split '%s', expected \"train\" or \"test\"", split);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return l2l_error_set(err, L2L_STATUS_IO, "CIFAR-10 directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return l2l_error_set(err, L2L_STATUS_IO,
                             "CIFAR-10 directory %s is not a directory; give the directory that "
                             "holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin", dir);
    const int n_files = train ? CIFAR_TRAIN_FILES : 1;
    char names[CIFAR_TRAIN_FILES][4096];
    const char *paths[CIFAR_TRAIN_FILES];
    int missing = -1, found = 0;
    for (int i = 0; i < n_files; i++) {
        int len = train ? snprintf(names[i], sizeof names[i], "%s/data_batch_%d.bin", dir, i + 1)
                        : snprintf(names[i], sizeof names[i], "%s/test_batch.bin", dir);
        if (len < 0 || (size_t)len >= sizeof names[i])
            return l2l_error_set(err, L2L_STATUS_ARG, "CIFAR-10 directory path too long: %s", dir);
        paths[i] = names[i];
        /* lstat: a dangling link is there, and refused by the reader with its reason */
        if (lstat(names[i], &sb) == 0) found++;
        else if (missing < 0) missing = i;
    }
    const char *split_files = train ? "data_batch_1.bin .. data_batch_5.bin" : "test_batch.bin";
    if (!found)
        return l2l_error_set(err, L2L_STATUS_IO,
                             "CIFAR-10 directory %s holds no %s (the %s split); give the directory "
                             "that cifar-10-binary.tar.gz extracts to (cifar-10-batches-bin)",
                             dir, split_files, split);
    if (missing >= 0)
        return l2l_error_set(err, L2L_STATUS_IO,
                             "CIFAR-10 directory %s lacks %s: the %s split is %s", dir,
                             names[missing] + strlen(dir) + 1, split, split_files);
    return l2l_cifar10_load_files(ds, paths, n_files, err);
}
