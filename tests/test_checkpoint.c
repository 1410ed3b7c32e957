/* Checkpoints of the learned optimizer: bit-exact round trips, byte-identical saves,
 * the tensors and metadata a checkpoint must hold, and failed saves that leave the
 * previous file intact. */
#include "st_testutil.h"

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

    /* logsign-rms: three inputs, its name in the file. */
    l2l_lstm rms;
    make_net(&rms, 2, 5, L2L_PREPROC_LOGSIGN_RMS, 12.0f, 0.1f, 4);
    assert_int_equal(rms.n_in, 3);
    path = tmp("rms.safetensors");
    save_ok(path, &rms, NULL, 0);
    st = l2l_checkpoint_load(path, &back, meta, &n_meta, &err);
    if (st) fail_msg("loading %s: %s", path, err.msg);
    assert_same_net(&back, &rms);
    assert_int_equal(back.cfg.preproc, L2L_PREPROC_LOGSIGN_RMS);
    assert_string_equal(find_meta(meta, n_meta, "preproc"), "logsign-rms");
    assert_string_equal(find_meta(meta, n_meta, "n_in"), "3");
    l2l_lstm_free(&back);
    l2l_lstm_free(&rms);
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
    unsigned char *ba = tu_read_file(a, &na), *bb = tu_read_file(b, &nb);
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
    assert_true(net.w[0].w_out[1] == -0.25f);
    l2l_lstm_free(&net);

    l2l_st_write_tensor wrong_shape[2] = {{"out.weight", 2, {1, 3}, w}, {"out.bias", 1, {1}, b}};
    path = tmp("ck_shape.safetensors");
    write_ckpt0(path, wrong_shape, 2, NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "tensor 'out.weight' has shape (1, 3), expected (1, 2)");

    l2l_st_write_tensor flat[2] = {{"out.weight", 1, {2}, w}, {"out.bias", 1, {1}, b}};
    path = tmp("ck_flat.safetensors");
    write_ckpt0(path, flat, 2, NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "has shape (2), expected (1, 2)");

    path = tmp("ck_missing.safetensors");
    write_ckpt0(path, good, 1, NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "tensor 'out.bias' is missing (expected shape (1))");

    l2l_st_write_tensor extra[3] = {good[0], good[1], {"lstm1.weight_ih", 2, {4, 2}, NULL}};
    float zeros[8] = {0};
    extra[2].data = zeros;
    path = tmp("ck_extra.safetensors");
    write_ckpt0(path, extra, 3, NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "unexpected tensor 'lstm1.weight_ih'");

    const float nan_w[2] = {0.5f, NAN}, inf_b[1] = {INFINITY};
    l2l_st_write_tensor with_nan[2] = {{"out.weight", 2, {1, 2}, nan_w}, {"out.bias", 1, {1}, b}};
    path = tmp("ck_nan.safetensors");
    write_ckpt0(path, with_nan, 2, NULL, 0);
    expect_load_error(path, L2L_STATUS_NUMERIC, "tensor 'out.weight' element 1 is nan");
    l2l_st_write_tensor with_inf[2] = {{"out.weight", 2, {1, 2}, w}, {"out.bias", 1, {1}, inf_b}};
    path = tmp("ck_inf.safetensors");
    write_ckpt0(path, with_inf, 2, NULL, 0);
    expect_load_error(path, L2L_STATUS_NUMERIC, "tensor 'out.bias' element 0 is inf");

    /* Too many metadata pairs for the caller's array; fine when meta is not wanted. */
    static char keys[L2L_MAX_META][16];
    l2l_st_kv many[L2L_MAX_META];
    for (int i = 0; i < L2L_MAX_META; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        many[i] = (l2l_st_kv){keys[i], "v"};
    }
    path = tmp("ck_many.safetensors");
    write_ckpt0(path, good, 2, many, L2L_MAX_META);
    expect_load_error(path, L2L_STATUS_FORMAT, "73 metadata pairs, at most 64");
    st = l2l_checkpoint_load(path, &net, NULL, NULL, &err);
    if (st) fail_msg("loading %s without metadata: %s", path, err.msg);
    l2l_lstm_free(&net);

    static char long_value[300];
    memset(long_value, 'x', sizeof long_value - 1);
    l2l_st_kv too_long[1] = {{"note", long_value}};
    path = tmp("ck_long.safetensors");
    write_ckpt0(path, good, 2, too_long, 1);
    expect_load_error(path, L2L_STATUS_FORMAT, "metadata 'note' is too long");
}

/* The names a checkpoint's "preproc" holds, both ways. */
static void test_preproc_names(void **state)
{
    (void)state;
    assert_string_equal(l2l_preproc_name(L2L_PREPROC_NONE), "none");
    assert_string_equal(l2l_preproc_name(L2L_PREPROC_LOGSIGN), "logsign");
    assert_string_equal(l2l_preproc_name(L2L_PREPROC_LOGSIGN_RMS), "logsign-rms");
    assert_string_equal(l2l_preproc_name((l2l_preproc)(L2L_PREPROC_LOGSIGN_RMS + 1)), "?");
    for (int k = L2L_PREPROC_NONE; k <= L2L_PREPROC_LOGSIGN_RMS; k++)
        assert_int_equal(l2l_preproc_parse(l2l_preproc_name((l2l_preproc)k)), k);
    assert_int_equal(l2l_preproc_parse("log"), -1);
    assert_int_equal(l2l_preproc_parse("?"), -1);
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
         "metadata 'preproc' must be 'none', 'logsign' or 'logsign-rms', found 'log'"},
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
        expect_load_error(path, L2L_STATUS_FORMAT, cases[i].phrase);
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
    assert_int_equal(st, L2L_STATUS_IO);
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
    assert_int_equal(st, L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "metadata key 'scale' is reserved"));
    l2l_kv twice[] = {kv("task", "a"), kv("task", "b")};
    st = l2l_checkpoint_save(path, &a, twice, 2, &err);
    assert_int_equal(st, L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "metadata key 'task' given twice"));
    l2l_kv empty[] = {kv("", "x")};
    st = l2l_checkpoint_save(path, &a, empty, 1, &err);
    assert_int_equal(st, L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "empty key"));
    float keep = a.phi[3];
    a.phi[3] = NAN;
    st = l2l_checkpoint_save(path, &a, NULL, 0, &err);
    assert_int_equal(st, L2L_STATUS_NUMERIC);
    assert_non_null(strstr(err.msg, "tensor 'lstm1.weight_ih' element 3 is nan"));
    a.phi[3] = keep;
    st = l2l_checkpoint_load(path, &back, NULL, NULL, &err);
    if (st) fail_msg("loading %s after failed saves: %s", path, err.msg);
    assert_same_net(&back, &b);
    l2l_lstm_free(&back);

    /* A target that is a directory: refused before anything is written, and no
     * temporary file left behind. */
    const char *dir = temp_dir();
    int before = count_temp_files(dir);
    st = l2l_checkpoint_save(dir, &a, NULL, 0, &err);
    assert_int_equal(st, L2L_STATUS_IO);
    assert_non_null(strstr(err.msg, "is a directory, not a regular file"));
    assert_int_equal(count_temp_files(dir), before);
    assert_int_equal(before, 0);

    l2l_lstm_free(&a);
    l2l_lstm_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_two_layers),
        cmocka_unit_test(test_roundtrip_zero_layers),
        cmocka_unit_test(test_save_is_deterministic),
        cmocka_unit_test(test_checkpoint_contents),
        cmocka_unit_test(test_preproc_names),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_save_errors_keep_old_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
