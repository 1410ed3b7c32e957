/* The safetensors reader and writer: a hand-built file, and a clear error (status and
 * message) for every kind of broken file the reader must refuse, read both as a
 * checkpoint and as a generic file; the writer refuses bad input and names a full disk. */
#include "st_testutil.h"

/* The metadata of a 0-layer, no-preprocessing checkpoint (tensors out.weight (1, 1),
 * out.bias (1)), for hand-built files. */
#define META0                                                                              \
    "\"__metadata__\":{\"format\":\"l2l-lstm-optimizer\",\"format_version\":\"1\","         \
    "\"layers\":\"0\",\"hidden\":\"0\",\"preproc\":\"none\",\"p\":\"10\",\"scale\":\"0.5\"," \
    "\"gate_order\":\"ifgo\",\"n_in\":\"1\"}"

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
    assert_true(net.w[0].w_out[0] == 2.5f);
    assert_true(net.w[0].b_out[0] == -1.0f);
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
    assert_true(net.w[0].w_out[0] == 2.5f);
    assert_true(net.w[0].b_out[0] == -1.0f);
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
    expect_load_error(path, L2L_STATUS_FORMAT, "not an l2l checkpoint");
}

/* ------------------------------------------------------------ broken files */

static void test_short_and_truncated_files(void **state)
{
    (void)state;
    const char *path = tmp("empty.safetensors");
    tu_write_file(path, "", 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "shorter than the 8-byte header length");

    path = tmp("five.safetensors");
    tu_write_file(path, "\x10\0\0\0\0", 5);
    expect_load_error(path, L2L_STATUS_FORMAT, "file is 5 bytes");

    /* The length says 100 bytes of header; only 20 follow. */
    unsigned char trunc[28] = {100, 0, 0, 0, 0, 0, 0, 0};
    memcpy(trunc + 8, "{\"__metadata__\":{\"a\"", 20);
    path = tmp("trunc.safetensors");
    tu_write_file(path, trunc, sizeof trunc);
    expect_load_error(path, L2L_STATUS_FORMAT, "exceeds the 20 bytes");

    /* A saved checkpoint cut in the middle of its data. */
    l2l_lstm net;
    make_net(&net, 1, 4, L2L_PREPROC_LOGSIGN, 10.0f, 0.1f, 1);
    const char *good = tmp("to_cut.safetensors");
    save_ok(good, &net, NULL, 0);
    size_t n;
    unsigned char *bytes = tu_read_file(good, &n);
    path = tmp("cut.safetensors");
    tu_write_file(path, bytes, n - 6);
    expect_load_error(path, L2L_STATUS_FORMAT, "out of range");
    free(bytes);
    l2l_lstm_free(&net);

    unsigned char absurd[16] = {0, 0, 0, 0, 0, 0, 0, 0x10, '{', '}'}; /* 2^60 */
    path = tmp("absurd.safetensors");
    tu_write_file(path, absurd, sizeof absurd);
    expect_load_error(path, L2L_STATUS_FORMAT, "header length 1152921504606846976 bytes is absurd");

    expect_load_error(tmp("does_not_exist.safetensors"), L2L_STATUS_IO, "No such file");
    expect_load_error(temp_dir(), L2L_STATUS_IO, "not a regular file");
}

static void test_bad_json(void **state)
{
    (void)state;
    const char *path = tmp("badjson.safetensors");
    write_st(path, "{\"a\": ", NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "header is not valid JSON");

    path = tmp("notobject.safetensors");
    write_st(path, "[1, 2]", NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "header (JSON) must be an object, found an array");

    path = tmp("dupkey.safetensors");
    write_st(path, "{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "not valid JSON");

    path = tmp("entry_not_object.safetensors");
    write_st(path, "{\"out.bias\": 3}", NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "tensor 'out.bias' must be an object");

    path = tmp("meta_not_string.safetensors");
    write_st(path, "{\"__metadata__\":{\"format\":\"l2l-lstm-optimizer\",\"seed\":42}}", NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "metadata \"seed\" must be a string, found an integer");

    path = tmp("meta_not_object.safetensors");
    write_st(path, "{\"__metadata__\":[]}", NULL, 0);
    expect_load_error(path, L2L_STATUS_FORMAT, "\"__metadata__\" must be an object");
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
        expect_load_error(path, L2L_STATUS_FORMAT, cases[i].phrase);
        /* The generic reader gives the same answer and leaves nothing to free. */
        l2l_st_file f;
        l2l_error err = {0};
        assert_int_equal(l2l_st_read(&f, path, &err), L2L_STATUS_FORMAT);
        assert_null(f.bytes);
        assert_null(f.header);
    }
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
    assert_int_equal(st, L2L_STATUS_IO);
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
    assert_int_equal(l2l_st_save(path, dup, 2, NULL, 0, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "tensor name 'x' given twice"));
    l2l_st_write_tensor reserved[1] = {{"__metadata__", 1, {2}, x}};
    assert_int_equal(l2l_st_save(path, reserved, 1, NULL, 0, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "invalid tensor name"));
    l2l_st_write_tensor neg[1] = {{"x", 1, {-2}, x}};
    assert_int_equal(l2l_st_save(path, neg, 1, NULL, 0, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "invalid shape (-2)"));
    l2l_st_kv bad_utf8[1] = {{"k", "\xff\xfe"}};
    assert_int_equal(l2l_st_save(path, NULL, 0, bad_utf8, 1, &err), L2L_STATUS_ARG);
    assert_non_null(strstr(err.msg, "not valid UTF-8"));
    l2l_st_kv dup_meta[2] = {{"k", "1"}, {"k", "2"}};
    assert_int_equal(l2l_st_save(path, NULL, 0, dup_meta, 2, &err), L2L_STATUS_ARG);
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
    assert_int_equal(l2l_st_get_f32(&file, "c", 2, wrong, got, &err), L2L_STATUS_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'c' has shape (2, 2, 2), expected (4, 2)"));
    assert_int_equal(l2l_st_get_f32(&file, "nope", 2, wrong, got, &err), L2L_STATUS_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'nope' is missing (expected shape (4, 2))"));
    l2l_st_free(&file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built_file_loads),
        cmocka_unit_test(test_short_and_truncated_files),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_tensor_entries),
        cmocka_unit_test(test_disk_full_is_named),
        cmocka_unit_test(test_writer_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
