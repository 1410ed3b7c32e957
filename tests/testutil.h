/* Shared helpers for the cmocka test programs. */
#ifndef L2L_TESTUTIL_H
#define L2L_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "util/util.h"
#include "l2l.h"

/* |found - expected| <= atol + rtol*|expected|, else fail naming both values and where. */
#define EXPECT_CLOSE(found, expected, atol, rtol, ...)                                      \
    do {                                                                                    \
        double f_ = (double)(found), e_ = (double)(expected);                               \
        if (!(fabs(f_ - e_) <= (atol) + (rtol)*fabs(e_))) {                                 \
            char where_[512];                                                               \
            int wn_ = snprintf(where_, sizeof where_, __VA_ARGS__); /* may truncate */      \
            (void)wn_;                                                                      \
            fail_msg("%s: expected %.9g, found %.9g (|diff| %.3g > atol %.3g + rtol %.3g)",  \
                     where_, e_, f_, fabs(f_ - e_), (double)(atol), (double)(rtol));        \
        }                                                                                   \
    } while (0)

/* Writes a file in a fresh temporary directory; returns its path in buf. */
static inline const char *tu_temp_path(char *buf, size_t size, const char *name)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/l2l-test-XXXXXX");
        if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    }
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

static inline void tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (n && fwrite(data, 1, n, f) != n) fail_msg("short write to %s", path);
    fclose(f);
}

/* The whole file, malloc'ed and followed by a NUL (so text can be searched); *n receives
 * its size. */
static inline void *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)size + 1);
    assert_non_null(b);
    if (fread(b, 1, (size_t)size, f) != (size_t)size) fail_msg("short read of %s", path);
    fclose(f);
    b[size] = 0;
    *n = (size_t)size;
    return b;
}

/* The directory of the MNIST files that scripts/fetch_mnist.sh made (L2L_MNIST_DIR, by
 * default data/mnist); skips the calling test when they are not there (`make data`). */
static inline const char *tu_fetched_mnist(void)
{
    const char *dir = getenv("L2L_MNIST_DIR") ? getenv("L2L_MNIST_DIR") : "data/mnist";
    char stamp[512];
    struct stat sb;
    snprintf(stamp, sizeof stamp, "%s/.stamp", dir);
    if (stat(stamp, &sb) != 0) {
        printf("[  SKIP    ] %s has no fetched MNIST (run `make data`)\n", dir);
        skip();
    }
    return dir;
}

#endif
