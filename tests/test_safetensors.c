/* Checkpoints and the safetensors reader/writer: bit-exact round trips, byte-identical
 * saves, a hand-built file, and a clear error (status and message) for every kind of
 * broken file the reader must refuse. */
#include <dirent.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

/* The metadata of a 0-layer, no-preprocessing checkpoint (tensors out.weight (1, 1),
 * out.bias (1)), for hand-built files. */
#define META0                                                                              \
    "\"__metadata__\":{\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\","         \
    "\"layers\":\"0\",\"hidden\":\"0\",\"preproc\":\"none\",\"p\":\"10\",\"scale\":\"0.5\"," \
    "\"gate_order\":\"ifgo\",\"n_in\":\"1\"}"

static const char *tmp(const char *name)
{
    static char buf[8][256];
    static int next;
    char *b = buf[next++ % 8];
    return tu_temp_path(b, sizeof buf[0], name);
}

/* A safetensors file: the 8-byte length of header, header, then data. */
static void write_st(const char *path, const char *header, const void *data, size_t n)
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

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)size + 1);
    assert_non_null(b);
    if (fread(b, 1, (size_t)size, f) != (size_t)size) fail_msg("short read of %s", path);
    fclose(f);
    *n = (size_t)size;
    return b;
}

static void make_net(l2l_lstm *net, int layers, int hidden, l2l_preproc preproc, float p,
                     float scale, uint64_t seed)
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

static l2l_kv kv(const char *key, const char *value)
{
    l2l_kv p;
    memset(&p, 0, sizeof p);
    snprintf(p.key, sizeof p.key, "%s", key);
    snprintf(p.value, sizeof p.value, "%s", value);
    return p;
}

static const char *find_meta(const l2l_kv *meta, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(meta[i].key, key) == 0) return meta[i].value;
    return NULL;
}

static void save_ok(const char *path, const l2l_lstm *net, const l2l_kv *meta, int n_meta)
{
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_save(path, net, meta, n_meta, &err);
    if (st) fail_msg("saving %s: %s", path, err.msg);
}

static void assert_same_net(const l2l_lstm *got, const l2l_lstm *want)
{
    assert_int_equal(got->cfg.layers, want->cfg.layers);
    assert_int_equal(got->cfg.hidden, want->cfg.hidden);
    assert_int_equal(got->cfg.preproc, want->cfg.preproc);
    assert_true(got->cfg.p == want->cfg.p);
    assert_true(got->cfg.scale == want->cfg.scale);
    assert_int_equal(got->n_in, want->n_in);
    assert_int_equal(got->n_params, want->n_params);
    for (size_t i = 0; i < want->n_params; i++)
        if (memcmp(&got->phi[i], &want->phi[i], sizeof(float)) != 0)
            fail_msg("phi[%zu]: expected %.9g, found %.9g (not bit-exact)", i,
                     (double)want->phi[i], (double)got->phi[i]);
}

/* Loading path must fail with status, a message containing phrase, and a zeroed net. */
static void expect_load_error(const char *path, l2l_status status, const char *phrase)
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

static int count_temp_files(const char *dir_path)
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
static const char *temp_dir(void)
{
    static char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp("x"));
    *strrchr(dir, '/') = '\0';
    return dir;
}

/* ------------------------------------------------------------ round trips */

static void test_roundtrip_two_layers(void **state)
{
    (void)state;
    l2l_lstm net, back;
    make_net(&net, 2, 20, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f, 7);
    l2l_kv extra[] = {kv("task", "quadratic"), kv("seed", "42"), kv("epochs", "100"),
                      kv("lr", "0.001")};
    const char *path = tmp("two.safetensors");
    save_ok(path, &net, extra, 4);

    l2l_kv meta[L2L_MAX_META];
    int n_meta = -1;
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_load(path, &back, meta, &n_meta, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_same_net(&back, &net);
    assert_true(back.cfg.scale == 0.1f);
    assert_true(back.cfg.p == 10.0f);

    assert_int_equal(n_meta, 9 + 4);
    assert_string_equal(find_meta(meta, n_meta, "format"), "l2l-lstm-optimizer");
    assert_string_equal(find_meta(meta, n_meta, "format_version"), "1");
    assert_string_equal(find_meta(meta, n_meta, "layers"), "2");
    assert_string_equal(find_meta(meta, n_meta, "hidden"), "20");
    assert_string_equal(find_meta(meta, n_meta, "preproc"), "logsign");
    assert_string_equal(find_meta(meta, n_meta, "p"), "10");
    assert_string_equal(find_meta(meta, n_meta, "scale"), "0.100000001");
    assert_string_equal(find_meta(meta, n_meta, "gate_order"), "ifgo");
    assert_string_equal(find_meta(meta, n_meta, "n_in"), "2");
    for (int i = 0; i < 4; i++) {
        const char *v = find_meta(meta, n_meta, extra[i].key);
        if (!v || strcmp(v, extra[i].value) != 0)
            fail_msg("metadata '%s': expected '%s', found '%s'", extra[i].key, extra[i].value,
                     v ? v : "(missing)");
    }

    /* The generic reader sees PyTorch names and shapes, stored back to back in order. */
    l2l_st_file f;
    st = l2l_st_read(&f, path, &err);
    if (st) fail_msg("l2l_st_read %s: %s", path, err.msg);
    assert_int_equal(f.n_tensors, 10);
    const l2l_st_tensor *t = l2l_st_find(&f, "lstm1.weight_ih");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 80);
    assert_int_equal(t->shape[1], 2);
    assert_int_equal(t->begin, 0);
    t = l2l_st_find(&f, "lstm2.weight_ih");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 80);
    assert_int_equal(t->shape[1], 20);
    t = l2l_st_find(&f, "lstm2.bias_hh");
    assert_non_null(t);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 80);
    t = l2l_st_find(&f, "out.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], 20);
    t = l2l_st_find(&f, "out.bias");
    assert_non_null(t);
    assert_int_equal(t->end, f.data_size);
    assert_int_equal(f.data_size, net.n_params * sizeof(float));
    assert_int_equal((f.data - f.bytes) % 8, 0); /* header padded to a multiple of 8 */
    l2l_st_free(&f);
    assert_null(f.bytes);

    l2l_lstm_free(&back);
    l2l_lstm_free(&net);
}

static void test_roundtrip_zero_layers(void **state)
{
    (void)state;
    l2l_lstm net, back;
    make_net(&net, 0, 7, L2L_PREPROC_LOGSIGN, 5.0f, 0.25f, 3);
    assert_int_equal(net.n_params, 3); /* out.weight (1, 2), out.bias (1) */
    net.phi[2] = 0.125f;
    const char *path = tmp("zero.safetensors");
    save_ok(path, &net, NULL, 0);
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_load(path, &back, NULL, NULL, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_same_net(&back, &net);
    assert_int_equal(back.cfg.hidden, 0);
    l2l_lstm_free(&back);

    /* A 1-layer net without preprocessing, metadata wanted but none extra. */
    l2l_lstm one;
    make_net(&one, 1, 3, L2L_PREPROC_NONE, 10.0f, 1.0f, 9);
    path = tmp("one.safetensors");
    save_ok(path, &one, NULL, 0);
    l2l_kv meta[L2L_MAX_META];
    int n_meta = 0;
    st = l2l_checkpoint_load(path, &back, meta, &n_meta, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_same_net(&back, &one);
    assert_int_equal(n_meta, 9);
    assert_string_equal(find_meta(meta, n_meta, "preproc"), "none");
    l2l_lstm_free(&back);
    l2l_lstm_free(&one);
    l2l_lstm_free(&net);
}

static void test_save_is_deterministic(void **state)
{
    (void)state;
    l2l_lstm net;
    make_net(&net, 2, 20, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f, 11);
    l2l_kv extra[] = {kv("seed", "11")};
    const char *a = tmp("det_a.safetensors"), *b = tmp("det_b.safetensors");
    save_ok(a, &net, extra, 1);
    save_ok(b, &net, extra, 1);
    size_t na, nb;
    unsigned char *ba = read_all(a, &na), *bb = read_all(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    /* Length prefix: little-endian, a multiple of 8, and the header ends in JSON. */
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | ba[i];
    assert_int_equal(len % 8, 0);
    assert_int_equal(na, 8 + len + net.n_params * sizeof(float));
    assert_int_equal(ba[8], '{');
    /* The data section is phi itself, as one block. */
    assert_memory_equal(ba + 8 + len, net.phi, net.n_params * sizeof(float));
    free(ba);
    free(bb);
    l2l_lstm_free(&net);
}

static void test_hand_built_file_loads(void **state)
{
    (void)state;
    /* Unpadded header (the reader must not require alignment) and two floats. */
    const float data[2] = {2.5f, -1.0f};
    const char *path = tmp("hand.safetensors");
    write_st(path,
             "{" META0 ",\"out.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]},"
             "\"out.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             data, sizeof data);
    l2l_lstm net;
    l2l_kv meta[L2L_MAX_META];
    int n_meta = 0;
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_load(path, &net, meta, &n_meta, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_int_equal(net.cfg.layers, 0);
    assert_int_equal(net.cfg.preproc, L2L_PREPROC_NONE);
    assert_true(net.cfg.scale == 0.5f);
    assert_int_equal(net.n_params, 2);
    assert_true(net.w.w_out[0] == 2.5f);
    assert_true(net.w.b_out[0] == -1.0f);
    assert_int_equal(n_meta, 9);
    l2l_lstm_free(&net);

    /* Tensors listed out of order in the header, and a file with no tensors at all. */
    const float swapped[2] = {-1.0f, 2.5f};
    path = tmp("hand_swapped.safetensors");
    write_st(path,
             "{\"out.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[4,8]}," META0
             ",\"out.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  ",
             swapped, sizeof swapped);
    st = l2l_checkpoint_load(path, &net, NULL, NULL, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_true(net.w.w_out[0] == 2.5f);
    assert_true(net.w.b_out[0] == -1.0f);
    l2l_lstm_free(&net);

    path = tmp("empty_object.safetensors");
    write_st(path, "{}", NULL, 0);
    l2l_st_file f;
    st = l2l_st_read(&f, path, &err);
    if (st) fail_msg("reading %s: %s", path, err.msg);
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.n_meta, 0);
    l2l_st_free(&f);
    /* ... which is valid safetensors but not a checkpoint. */
    expect_load_error(path, L2L_ERR_FORMAT, "not an l2l checkpoint");
}

/* ------------------------------------------------------------ broken files */

static void test_short_and_truncated_files(void **state)
{
    (void)state;
    const char *path = tmp("empty.safetensors");
    tu_write_file(path, "", 0);
    expect_load_error(path, L2L_ERR_FORMAT, "shorter than the 8-byte header length");

    path = tmp("five.safetensors");
    tu_write_file(path, "\x10\0\0\0\0", 5);
    expect_load_error(path, L2L_ERR_FORMAT, "file is 5 bytes");

    /* The length says 100 bytes of header; only 20 follow. */
    unsigned char trunc[28] = {100, 0, 0, 0, 0, 0, 0, 0};
    memcpy(trunc + 8, "{\"__metadata__\":{\"a\"", 20);
    path = tmp("trunc.safetensors");
    tu_write_file(path, trunc, sizeof trunc);
    expect_load_error(path, L2L_ERR_FORMAT, "exceeds the 20 bytes");

    /* A saved checkpoint cut in the middle of its data. */
    l2l_lstm net;
    make_net(&net, 1, 4, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f, 1);
    const char *good = tmp("to_cut.safetensors");
    save_ok(good, &net, NULL, 0);
    size_t n;
    unsigned char *bytes = read_all(good, &n);
    path = tmp("cut.safetensors");
    tu_write_file(path, bytes, n - 6);
    expect_load_error(path, L2L_ERR_FORMAT, "out of range");
    free(bytes);
    l2l_lstm_free(&net);

    unsigned char absurd[16] = {0, 0, 0, 0, 0, 0, 0, 0x10, '{', '}'}; /* 2^60 */
    path = tmp("absurd.safetensors");
    tu_write_file(path, absurd, sizeof absurd);
    expect_load_error(path, L2L_ERR_FORMAT, "header length 1152921504606846976 bytes is absurd");

    expect_load_error(tmp("does_not_exist.safetensors"), L2L_ERR_IO, "No such file");
    expect_load_error(temp_dir(), L2L_ERR_IO, "not a regular file");
}

static void test_bad_json(void **state)
{
    (void)state;
    const char *path = tmp("badjson.safetensors");
    write_st(path, "{\"a\": ", NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "header is not valid JSON");

    path = tmp("notobject.safetensors");
    write_st(path, "[1, 2]", NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "header must be a JSON object, found an array");

    path = tmp("dupkey.safetensors");
    write_st(path, "{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "not valid JSON");

    path = tmp("entry_not_object.safetensors");
    write_st(path, "{\"out.bias\": 3}", NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "tensor 'out.bias' must be an object");

    path = tmp("meta_not_string.safetensors");
    write_st(path, "{\"__metadata__\":{\"format\":\"l2l-lstm-optimizer\",\"seed\":42}}", NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "metadata \"seed\" must be a string, found an integer");

    path = tmp("meta_not_object.safetensors");
    write_st(path, "{\"__metadata__\":[]}", NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "\"__metadata__\" must be an object");
}

static void test_bad_tensor_entries(void **state)
{
    (void)state;
    const float data[4] = {1, 2, 3, 4};
    static const struct {
        const char *name, *header;
        size_t n_data;
        const char *phrase;
    } cases[] = {
        {"f33", "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'w' has unknown dtype \"F33\""},
        {"f16", "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
         "tensor 'w' has dtype F16, which is not supported"},
        {"nodtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "has no \"dtype\""},
        {"intdtype", "{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "\"dtype\" must be a string"},
        {"shapestr", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
         "\"shape\" must be an array of non-negative integers, found a string"},
        {"shapeneg", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "shape[0] must be a non-negative integer"},
        {"shapereal", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
         "shape[0] must be a non-negative integer, found a real number"},
        {"offs1", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         "\"data_offsets\" must be an array of two integers"},
        {"offsrange", "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 8,
         "data_offsets [0, 400] out of range"},
        {"offsback", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
         "out of range"},
        {"offsneg", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8,
         "out of range"},
        {"length", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         "needs 12 bytes of F32"},
        {"overflow",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         "absurd shape"},
        {"overlap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "tensors 'a' and 'b' overlap"},
        {"gap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, "data bytes [4, 8) are not covered"},
        {"trailing", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
         "8 trailing bytes not covered"},
        {"notensors", "{}", 4, "lists no tensors but 4 data bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "entry_%s.safetensors", cases[i].name);
        const char *path = tmp(name);
        write_st(path, cases[i].header, data, cases[i].n_data);
        expect_load_error(path, L2L_ERR_FORMAT, cases[i].phrase);
        /* The generic reader gives the same answer and leaves nothing to free. */
        l2l_st_file f;
        l2l_error err = {0};
        assert_int_equal(l2l_st_read(&f, path, &err), L2L_ERR_FORMAT);
        assert_null(f.bytes);
        assert_null(f.header);
    }
}

/* A file written with the generic writer: checkpoint metadata for a 0-layer net with
 * log/sign preprocessing (out.weight (1, 2), out.bias (1)) and the given tensors. */
static void write_ckpt0(const char *path, const l2l_st_write_tensor *t, int n, const l2l_st_kv *extra,
                        int n_extra)
{
    l2l_st_kv meta[9 + L2L_MAX_META + 1] = {
        {"format", "l2l-lstm-optimizer"}, {"format_version", "1"}, {"layers", "0"},
        {"hidden", "0"}, {"preproc", "logsign"}, {"p", "10"}, {"scale", "0.1"},
        {"gate_order", "ifgo"}, {"n_in", "2"}};
    int n_meta = 9;
    assert_true(n_extra <= L2L_MAX_META);
    for (int i = 0; i < n_extra; i++) meta[n_meta++] = extra[i];
    l2l_error err = {0};
    l2l_status st = l2l_st_save(path, t, n, meta, n_meta, &err);
    if (st) fail_msg("l2l_st_save %s: %s", path, err.msg);
}

static void test_checkpoint_contents(void **state)
{
    (void)state;
    const float w[3] = {0.5f, -0.25f, 3.0f}, b[1] = {0.75f};
    l2l_st_write_tensor good[2] = {{"out.weight", 2, {1, 2}, w}, {"out.bias", 1, {1}, b}};

    const char *path = tmp("ck_good.safetensors");
    write_ckpt0(path, good, 2, NULL, 0);
    l2l_lstm net;
    l2l_error err = {0};
    l2l_status st = l2l_checkpoint_load(path, &net, NULL, NULL, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_true(net.w.w_out[1] == -0.25f);
    l2l_lstm_free(&net);

    l2l_st_write_tensor wrong_shape[2] = {{"out.weight", 2, {1, 3}, w}, {"out.bias", 1, {1}, b}};
    path = tmp("ck_shape.safetensors");
    write_ckpt0(path, wrong_shape, 2, NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "tensor 'out.weight' has shape (1, 3), expected (1, 2)");

    l2l_st_write_tensor flat[2] = {{"out.weight", 1, {2}, w}, {"out.bias", 1, {1}, b}};
    path = tmp("ck_flat.safetensors");
    write_ckpt0(path, flat, 2, NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "has shape (2), expected (1, 2)");

    path = tmp("ck_missing.safetensors");
    write_ckpt0(path, good, 1, NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "tensor 'out.bias' is missing (expected shape (1))");

    l2l_st_write_tensor extra[3] = {good[0], good[1], {"lstm1.weight_ih", 2, {4, 2}, NULL}};
    float zeros[8] = {0};
    extra[2].data = zeros;
    path = tmp("ck_extra.safetensors");
    write_ckpt0(path, extra, 3, NULL, 0);
    expect_load_error(path, L2L_ERR_FORMAT, "unexpected tensor 'lstm1.weight_ih'");

    const float nan_w[2] = {0.5f, NAN}, inf_b[1] = {INFINITY};
    l2l_st_write_tensor with_nan[2] = {{"out.weight", 2, {1, 2}, nan_w}, {"out.bias", 1, {1}, b}};
    path = tmp("ck_nan.safetensors");
    write_ckpt0(path, with_nan, 2, NULL, 0);
    expect_load_error(path, L2L_ERR_NUMERIC, "tensor 'out.weight' element 1 is nan");
    l2l_st_write_tensor with_inf[2] = {{"out.weight", 2, {1, 2}, w}, {"out.bias", 1, {1}, inf_b}};
    path = tmp("ck_inf.safetensors");
    write_ckpt0(path, with_inf, 2, NULL, 0);
    expect_load_error(path, L2L_ERR_NUMERIC, "tensor 'out.bias' element 0 is inf");

    /* Too many metadata pairs for the caller's array; fine when meta is not wanted. */
    static char keys[L2L_MAX_META][16];
    l2l_st_kv many[L2L_MAX_META];
    for (int i = 0; i < L2L_MAX_META; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        many[i] = (l2l_st_kv){keys[i], "v"};
    }
    path = tmp("ck_many.safetensors");
    write_ckpt0(path, good, 2, many, L2L_MAX_META);
    expect_load_error(path, L2L_ERR_FORMAT, "73 metadata pairs, at most 64");
    st = l2l_checkpoint_load(path, &net, NULL, NULL, &err);
    if (st) fail_msg("loading %s without metadata: %s", path, err.msg);
    l2l_lstm_free(&net);

    static char long_value[300];
    memset(long_value, 'x', sizeof long_value - 1);
    l2l_st_kv too_long[1] = {{"note", long_value}};
    path = tmp("ck_long.safetensors");
    write_ckpt0(path, good, 2, too_long, 1);
    expect_load_error(path, L2L_ERR_FORMAT, "metadata 'note' is too long");
}

static void test_bad_metadata(void **state)
{
    (void)state;
    const float data[2] = {1, 2};
    static const struct {
        const char *name, *meta, *phrase;
    } cases[] = {
        {"format", "\"format\":\"gguf\",\"format_version\":\"1\"",
         "metadata 'format' is 'gguf', expected 'l2l-lstm-optimizer'"},
        {"version", "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"2\"",
         "metadata 'format_version' is '2', expected '1'"},
        {"nolayers",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\"",
         "metadata key 'layers' is missing"},
        {"gates", "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"iofg\"",
         "metadata 'gate_order' is 'iofg', expected 'ifgo'"},
        {"layersabc",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\","
         "\"layers\":\"abc\"",
         "metadata 'layers' must be an integer in [0, 4], found 'abc'"},
        {"layers9",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\","
         "\"layers\":\"9\"",
         "metadata 'layers' must be an integer in [0, 4], found '9'"},
        {"scalenan",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\","
         "\"layers\":\"0\",\"hidden\":\"0\",\"p\":\"10\",\"scale\":\"nan\"",
         "metadata 'scale' must be a finite number, found 'nan'"},
        {"scale0",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\","
         "\"layers\":\"0\",\"hidden\":\"0\",\"p\":\"10\",\"scale\":\"0\",\"n_in\":\"1\","
         "\"preproc\":\"none\"",
         "invalid architecture: output scale must be finite and non-zero"},
        {"preproc",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\","
         "\"layers\":\"0\",\"hidden\":\"0\",\"p\":\"10\",\"scale\":\"1\",\"n_in\":\"1\","
         "\"preproc\":\"log\"",
         "metadata 'preproc' must be 'none' or 'logsign', found 'log'"},
        {"n_in",
         "\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\",\"gate_order\":\"ifgo\","
         "\"layers\":\"0\",\"hidden\":\"0\",\"p\":\"10\",\"scale\":\"1\",\"n_in\":\"2\","
         "\"preproc\":\"none\"",
         "metadata 'n_in' is 2 but preproc 'none' gives 1 inputs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64], header[1024];
        snprintf(name, sizeof name, "meta_%s.safetensors", cases[i].name);
        snprintf(header, sizeof header,
                 "{\"__metadata__\":{%s},"
                 "\"out.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]},"
                 "\"out.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 cases[i].meta);
        const char *path = tmp(name);
        write_st(path, header, data, sizeof data);
        expect_load_error(path, L2L_ERR_FORMAT, cases[i].phrase);
    }
}

/* ------------------------------------------------------------ saving */

static void test_save_errors_keep_old_file(void **state)
{
    (void)state;
    l2l_lstm a, b;
    make_net(&a, 1, 5, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f, 21);
    make_net(&b, 1, 5, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f, 22);
    l2l_error err = {0};

    /* Into a directory that does not exist: an I/O error, and no file. */
    const char *bad = "/nonexistent/dir/x.safetensors";
    l2l_status st = l2l_checkpoint_save(bad, &a, NULL, 0, &err);
    assert_int_equal(st, L2L_ERR_IO);
    if (!strstr(err.msg, bad) || !strstr(err.msg, "No such file or directory"))
        fail_msg("expected a message naming %s and the cause, found \"%s\"", bad, err.msg);
    FILE *f = fopen(bad, "rb");
    assert_null(f);

    /* Saving over an existing checkpoint replaces it completely. */
    const char *path = tmp("over.safetensors");
    save_ok(path, &a, NULL, 0);
    save_ok(path, &b, NULL, 0);
    l2l_lstm back;
    st = l2l_checkpoint_load(path, &back, NULL, NULL, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_same_net(&back, &b);
    l2l_lstm_free(&back);

    /* Failed saves leave the previous file intact. */
    l2l_kv reserved[] = {kv("scale", "3")};
    st = l2l_checkpoint_save(path, &a, reserved, 1, &err);
    assert_int_equal(st, L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "metadata key 'scale' is reserved"));
    l2l_kv twice[] = {kv("task", "a"), kv("task", "b")};
    st = l2l_checkpoint_save(path, &a, twice, 2, &err);
    assert_int_equal(st, L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "metadata key 'task' given twice"));
    l2l_kv empty[] = {kv("", "x")};
    st = l2l_checkpoint_save(path, &a, empty, 1, &err);
    assert_int_equal(st, L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "empty key"));
    float keep = a.phi[3];
    a.phi[3] = NAN;
    st = l2l_checkpoint_save(path, &a, NULL, 0, &err);
    assert_int_equal(st, L2L_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "tensor 'lstm1.weight_ih' element 3 is nan"));
    a.phi[3] = keep;
    st = l2l_checkpoint_load(path, &back, NULL, NULL, &err);
    if (st) fail_msg("loading %s after failed saves: %s", path, err.msg);
    assert_same_net(&back, &b);
    l2l_lstm_free(&back);

    /* A failure after the temporary file was written (the target is a directory, so the
     * rename fails): an error, and no temporary file left behind. */
    const char *dir = temp_dir();
    int before = count_temp_files(dir);
    st = l2l_checkpoint_save(dir, &a, NULL, 0, &err);
    assert_int_equal(st, L2L_ERR_IO);
    assert_non_null(strstr(err.msg, "renaming"));
    assert_int_equal(count_temp_files(dir), before);
    assert_int_equal(before, 0);

    l2l_lstm_free(&a);
    l2l_lstm_free(&b);
}

static void test_disk_full_is_named(void **state)
{
    (void)state;
    FILE *full = fopen("/dev/full", "wb");
    if (!full) {
        print_message("no /dev/full here; the disk-full message is not checked\n");
        skip();
    }
    float x[3] = {1, 2, 3};
    l2l_st_write_tensor t[1] = {{"x", 1, {3}, x}};
    l2l_error err = {0};
    l2l_status st = l2l_st_write_stream(full, "/dev/full", t, 1, NULL, 0, &err);
    fclose(full);
    assert_int_equal(st, L2L_ERR_IO);
    if (!strstr(err.msg, "disk full (ENOSPC)"))
        fail_msg("expected a message naming the full disk, found \"%s\"", err.msg);
}

static void test_writer_rejects_bad_input(void **state)
{
    (void)state;
    float x[2] = {1, 2};
    l2l_error err = {0};
    const char *path = tmp("writer_bad.safetensors");
    l2l_st_write_tensor dup[2] = {{"x", 1, {2}, x}, {"x", 1, {2}, x}};
    assert_int_equal(l2l_st_save(path, dup, 2, NULL, 0, &err), L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "tensor name 'x' given twice"));
    l2l_st_write_tensor reserved[1] = {{"__metadata__", 1, {2}, x}};
    assert_int_equal(l2l_st_save(path, reserved, 1, NULL, 0, &err), L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "invalid tensor name"));
    l2l_st_write_tensor neg[1] = {{"x", 1, {-2}, x}};
    assert_int_equal(l2l_st_save(path, neg, 1, NULL, 0, &err), L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "invalid shape (-2)"));
    l2l_st_kv bad_utf8[1] = {{"k", "\xff\xfe"}};
    assert_int_equal(l2l_st_save(path, NULL, 0, bad_utf8, 1, &err), L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "not valid UTF-8"));
    l2l_st_kv dup_meta[2] = {{"k", "1"}, {"k", "2"}};
    assert_int_equal(l2l_st_save(path, NULL, 0, dup_meta, 2, &err), L2L_ERR_ARG);
    assert_non_null(strstr(err.msg, "metadata key 'k' given twice"));
    FILE *f = fopen(path, "rb");
    assert_null(f);
    assert_int_equal(count_temp_files(temp_dir()), 0);

    /* A scalar, an empty tensor and a 3-d tensor survive the generic round trip. */
    float s = 4.0f, cube[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    l2l_st_write_tensor ok[3] = {{"s", 0, {0}, &s}, {"e", 2, {0, 5}, NULL}, {"c", 3, {2, 2, 2}, cube}};
    l2l_st_kv meta[1] = {{"note", "héllo"}};
    if (l2l_st_save(path, ok, 3, meta, 1, &err)) fail_msg("l2l_st_save: %s", err.msg);
    l2l_st_file file;
    if (l2l_st_read(&file, path, &err)) fail_msg("l2l_st_read: %s", err.msg);
    assert_int_equal(file.n_tensors, 3);
    assert_string_equal(l2l_st_meta_get(&file, "note"), "héllo");
    assert_null(l2l_st_meta_get(&file, "other"));
    float got[8], one;
    if (l2l_st_get_f32(&file, "s", 0, NULL, &one, &err)) fail_msg("%s", err.msg);
    assert_true(one == 4.0f);
    int64_t shape[3] = {2, 2, 2};
    if (l2l_st_get_f32(&file, "c", 3, shape, got, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(got, cube, sizeof cube);
    int64_t e_shape[2] = {0, 5};
    if (l2l_st_get_f32(&file, "e", 2, e_shape, got, &err)) fail_msg("%s", err.msg);
    int64_t wrong[2] = {4, 2};
    assert_int_equal(l2l_st_get_f32(&file, "c", 2, wrong, got, &err), L2L_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'c' has shape (2, 2, 2), expected (4, 2)"));
    assert_int_equal(l2l_st_get_f32(&file, "nope", 2, wrong, got, &err), L2L_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'nope' is missing (expected shape (4, 2))"));
    l2l_st_free(&file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_two_layers),
        cmocka_unit_test(test_roundtrip_zero_layers),
        cmocka_unit_test(test_save_is_deterministic),
        cmocka_unit_test(test_hand_built_file_loads),
        cmocka_unit_test(test_short_and_truncated_files),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_tensor_entries),
        cmocka_unit_test(test_checkpoint_contents),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_save_errors_keep_old_file),
        cmocka_unit_test(test_disk_full_is_named),
        cmocka_unit_test(test_writer_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
