/* Helpers for the tests that run the l2l tool from the outside (test_badinput,
 * test_kill): where the tool is (BUILD/tests/../l2l, so that the sanitizer build tests
 * its own binary), a scratch directory, MNIST-shaped IDX files, running a command line
 * with a time limit, and fingerprints of a directory's files. Its includers define
 * _XOPEN_SOURCE 700 (realpath) before any include. */
#ifndef L2L_CLI_TESTUTIL_H
#define L2L_CLI_TESTUTIL_H

#include <dirent.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char ct_tool[4096], ct_dir[256], ct_out[65536];

/* Finds the tool beside argv0's directory and makes the scratch directory; 0 on success. */
static inline int ct_setup(const char *argv0, const char *name)
{
    char self[4096];
    snprintf(self, sizeof self, "%s", argv0);
    snprintf(ct_tool, sizeof ct_tool, "%s/../l2l", dirname(self));
    char *abs = realpath(ct_tool, NULL); /* the commands run in the scratch directory */
    if (abs) snprintf(ct_tool, sizeof ct_tool, "%s", abs);
    free(abs);
    struct stat sb;
    if (!abs || stat(ct_tool, &sb) != 0) {
        fprintf(stderr, "%s: no tool at %s (build it: make all)\n", name, ct_tool);
        return 1;
    }
    snprintf(ct_dir, sizeof ct_dir, "/tmp/l2l-%s-XXXXXX", name);
    return mkdtemp(ct_dir) ? 0 : 1;
}

static inline void ct_teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ct_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", ct_dir);
}

/* ct_dir/name */
static inline const char *ct_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", ct_dir, name);
    return buf;
}

static inline void ct_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An IDX file ct_dir/name: magic, dims, then dims[0] * item bytes drawn from rng
 * (labels: 0..9). */
static inline void ct_write_idx(const char *name, uint32_t magic, int ndim, const uint32_t *dims, size_t item,
                         l2l_rng *rng, int labels)
{
    char path[512];
    FILE *f = fopen(ct_path(path, sizeof path, name), "wb");
    assert_non_null(f);
    uint8_t b[4];
    ct_put_be32(b, magic);
    fwrite(b, 1, 4, f);
    for (int i = 0; i < ndim; i++) ct_put_be32(b, dims[i]), fwrite(b, 1, 4, f);
    for (size_t i = 0; i < dims[0] * item; i++) fputc((int)l2l_rng_below(rng, labels ? 10 : 256), f);
    assert_int_equal(fclose(f), 0);
}

/* SUBDIR/SPLIT-images-idx3-ubyte and -labels-idx1-ubyte, n digits of 28 x 28. */
static inline void ct_write_split(const char *subdir, const char *split, uint32_t n, l2l_rng *rng)
{
    char name[256];
    const uint32_t idims[3] = {n, 28, 28}, ldims[1] = {n};
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte", subdir, split);
    ct_write_idx(name, 0x803, 3, idims, 784, rng, 0);
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte", subdir, split);
    ct_write_idx(name, 0x801, 1, ldims, 1, rng, 1);
}

/* Runs `tool ARGS` in ct_dir (ARGS as the shell reads it; @ stands for ct_dir), at most
 * `limit` seconds, stdout and stderr into ct_out; returns the exit status, 124 when
 * the time limit killed it, -1 for another signal. */
static inline int ct_run(const char *args, int limit)
{
    char cmd[16384], spec[8192] = "";
    for (const char *p = args; *p; p++) {
        if (*p == '@') strncat(spec, ct_dir, sizeof spec - strlen(spec) - 1);
        else strncat(spec, (char[2]){*p, 0}, sizeof spec - strlen(spec) - 1);
    }
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 timeout -s KILL %d '%s' %s > '%s.out' 2>&1",
             ct_dir, limit, ct_tool, spec, ct_dir);
    int st = system(cmd);
    snprintf(cmd, sizeof cmd, "%s.out", ct_dir);
    FILE *f = fopen(cmd, "r");
    size_t n = f ? fread(ct_out, 1, sizeof ct_out - 1, f) : 0;
    ct_out[n] = 0;
    if (f) fclose(f);
    unlink(cmd);
    if (!WIFEXITED(st)) return -1;
    return WEXITSTATUS(st) == 137 ? 124 : WEXITSTATUS(st);
}

/* The first six columns of the training log ct_dir/name into buf (n bytes), a line each:
 * the seventh is wall time, which differs from run to run. */
static inline void ct_log_numbers(const char *name, char *buf, size_t n)
{
    char path[512], line[512];
    FILE *f = fopen(ct_path(path, sizeof path, name), "r");
    if (!f) fail_msg("no log %s", path);
    size_t used = 0;
    buf[0] = 0;
    while (fgets(line, sizeof line, f) && used < n) {
        char *last = strrchr(line, ',');
        if (last) *last = 0;
        used += (size_t)snprintf(buf + used, n - used, "%s\n", line);
    }
    fclose(f);
}

/* FNV-1a of a file's bytes; 0 if it cannot be read. */
static inline uint64_t ct_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = 1469598103934665603ull;
    int c;
    while ((c = fgetc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ull;
    fclose(f);
    return h;
}

/* A fingerprint of every entry under a directory (recursively): name, type, mode,
 * mtime and, for regular files, a hash of the bytes. */
typedef struct {
    char name[512];
    mode_t mode;
    struct timespec mtime;
    uint64_t hash;
} ct_entry;

static inline int ct_scan(const char *dir, const char *rel, ct_entry *e, int n, int max)
{
    DIR *d = opendir(dir);
    if (!d) return n;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char path[1024];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path || lstat(path, &sb) != 0)
            continue;
        ct_entry *x = &e[n];
        if (snprintf(x->name, sizeof x->name, "%s%s", rel, de->d_name) >= (int)sizeof x->name) continue;
        n++;
        x->mode = sb.st_mode, x->mtime = sb.st_mtim;
        x->hash = S_ISREG(sb.st_mode) ? ct_hash(path) : 0;
        if (S_ISDIR(sb.st_mode)) {
            char sub[sizeof x->name + 1];
            snprintf(sub, sizeof sub, "%s/", x->name);
            n = ct_scan(path, sub, e, n, max);
        }
    }
    closedir(d);
    return n;
}

static inline const ct_entry *ct_find(const ct_entry *e, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].name, name)) return &e[i];
    return NULL;
}

#endif
