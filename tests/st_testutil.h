/* Helpers shared by test_safetensors.c (the file format) and test_checkpoint.c (the
 * learned optimizer's checkpoints): temporary files, hand-built files, and the one check
 * every refused file must pass (a status, a message naming the file, a zeroed net). */
#ifndef L2L_ST_TESTUTIL_H
#define L2L_ST_TESTUTIL_H

#include <dirent.h>
#include <string.h>

#include "io/safetensors.h"
#include "testutil.h"

/* NAME in the test's temporary directory; the last 8 paths stay valid. */
static inline const char *tmp(const char *name)
{
    static char buf[8][256];
    static int next;
    char *b = buf[next++ % 8];
    return tu_temp_path(b, sizeof buf[0], name);
}

/* A safetensors file: the 8-byte length of header, header, then data. */
static inline void write_st(const char *path, const char *header, const void *data, size_t n)
{
    size_t len = strlen(header);
    unsigned char *bytes = malloc(8 + len + n + 1);
    assert_non_null(bytes);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(bytes + 8, header, len);
    if (n) memcpy(bytes + 8 + len, data, n);
    tu_write_file(path, bytes, 8 + len + n);
    free(bytes);
}

/* A net of the given architecture with the authors' initialisation from seed. */
static inline void make_net(l2l_lstm *net, int layers, int hidden, l2l_preproc preproc,
                            float p, float scale, uint64_t seed)
{
    l2l_lstm_config cfg = {.layers = layers, .hidden = hidden, .preproc = preproc, .p = p,
                           .scale = scale};
    l2l_error err = {0};
    l2l_status st = l2l_lstm_create(net, &cfg, &err);
    if (st) fail_msg("l2l_lstm_create: %s", err.msg);
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, L2L_STREAM_INIT);
    l2l_lstm_init(net, &rng);
}

static inline void save_ok(const char *path, const l2l_lstm *net, const l2l_kv *meta, int n_meta)
{
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_save(path, net, meta, n_meta, &err);
    if (st) fail_msg("saving %s: %s", path, err.msg);
}

/* Loading path must fail with status, a message containing phrase, and a zeroed net. */
static inline void expect_load_error(const char *path, l2l_status status, const char *phrase)
{
    l2l_lstm net;
    memset(&net, 0xAB, sizeof net);
    l2l_kv meta[L2L_MAX_META];
    int n_meta = 123;
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_load(path, &net, meta, &n_meta, &err);
    if (st != status)
        fail_msg("loading %s: expected status '%s', found '%s' (message: %s)", path,
                 l2l_status_name(status), l2l_status_name(st), err.msg);
    assert_int_equal(err.status, status);
    if (!strstr(err.msg, phrase))
        fail_msg("loading %s: expected the message to contain \"%s\", found \"%s\"", path,
                 phrase, err.msg);
    if (!strstr(err.msg, path))
        fail_msg("loading %s: the message does not name the file: \"%s\"", path, err.msg);
    assert_null(net.phi);
    assert_int_equal(net.n_params, 0);
    assert_int_equal(net.cfg.layers, 0);
    assert_int_equal(n_meta, 0);
}

/* Leftover temporary files (*.tmp.*) of atomic writes in a directory. */
static inline int count_temp_files(const char *dir_path)
{
    DIR *d = opendir(dir_path);
    if (!d) fail_msg("cannot open directory %s", dir_path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* The directory of the test's temporary files. */
static inline const char *temp_dir(void)
{
    static char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp("x"));
    *strrchr(dir, '/') = '\0';
    return dir;
}

#endif
