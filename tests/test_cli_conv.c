/*
 * The l2l tool's conv-net task, image formats and class subsets from the outside: --task
 * conv on MNIST-shaped IDX files and on CIFAR-10 binary batches that this program writes
 * (24 training and 10 test digits of 28 x 28; 5 training batches of 4 and a test batch of
 * 10 CIFAR images), --data telling the two apart, --classes on both, and every error
 * these flags can meet. The tool is the l2l next to this program's directory
 * (BUILD/tests/../l2l), so the sanitizer build tests its own binary.
 * Exit codes: 0 success, 1 runtime failure, 2 usage error.
 */
#define _XOPEN_SOURCE 700 /* realpath (cli_testutil.h) */
#include "cli_testutil.h"

static void expect(const char *args, int code, const char *phrase)
{
    int rc = ct_run(args, 300);
    if (rc != code) fail_msg("l2l %s: exit %d, expected %d; output:\n%s", args, rc, code, ct_out);
    if (phrase && !strstr(ct_out, phrase)) fail_msg("l2l %s: output lacks \"%s\":\n%s", args, phrase, ct_out);
}

/* SUBDIR/NAME: `records` CIFAR-10 records, labels first_label, first_label + 1, ... mod 10. */
static void write_cifar(const char *subdir, const char *name, int records, int first_label, l2l_rng *rng)
{
    char path[512], rel[256];
    snprintf(rel, sizeof rel, "%s/%s", subdir, name);
    FILE *f = fopen(ct_path(path, sizeof path, rel), "wb");
    assert_non_null(f);
    for (int i = 0; i < records; i++) {
        fputc((first_label + i) % 10, f);
        for (int j = 0; j < 3072; j++) fputc((int)l2l_rng_below(rng, 256), f);
    }
    assert_int_equal(fclose(f), 0);
}

static void make_subdir(const char *name)
{
    char path[512];
    assert_int_equal(mkdir(ct_path(path, sizeof path, name), 0700), 0);
}

static void test_usage_errors(void **state)
{
    (void)state;
    const char *bad[] = {"3", "1,1", "1,x", "256,1", "0,,1", "-1,2", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[256];
        snprintf(args, sizeof args, "eval --task conv --data @/cifar --optimizer nag --lr 1 --classes '%s'", bad[i]);
        expect(args, 2, "--classes expects at least two distinct class labels 0..255 separated by commas");
    }
    expect("eval --task quadratic --optimizer nag --lr 1 --classes 0,1", 2,
           "--classes applies to --task mnist and --task conv");
    expect("train --task quadratic --out @/q.safetensors --classes 0,1", 2,
           "--classes applies to --task mnist and --task conv");
    expect("eval --task cnn --optimizer nag --lr 1", 2, "--task expects one of quadratic, mnist, conv");
    expect("train --task conv --out @/x.safetensors --mix 20x1", 2, "--mix applies to --task mnist");
    expect("eval --help", 0, "--task quadratic|mnist|conv");
    assert_non_null(strstr(ct_out, "--classes LIST"));
}

/* --data: the format from the file names; what is wrong with a directory, named. */
static void test_data_errors(void **state)
{
    (void)state;
    expect("eval --task conv --data @/empty --optimizer adam --lr 0.01 --runs 1 --steps 2", 1,
           "holds neither MNIST's IDX files");
    assert_non_null(strstr(ct_out, "nor CIFAR-10's binary batches"));
    expect("eval --task conv --data @/nowhere --optimizer adam --lr 0.01 --runs 1 --steps 2", 1, "nowhere");
    expect("eval --task conv --data @/cifar-trunc --optimizer adam --lr 0.01 --runs 1 --steps 2", 1,
           "test_batch.bin: truncated record");
    expect("eval --task conv --data @/cifar-label --optimizer adam --lr 0.01 --runs 1 --steps 2", 1,
           "has label 10, expected 0..9");
    expect("tune --task conv --data @/cifar-half --optimizer adam --steps 2 --tune-runs 1", 1,
           "lacks data_batch_2.bin");
    expect("eval --task conv --data @/cifar --optimizer adam --lr 0.01 --runs 1 --steps 2 --classes 12,3", 1,
           "class 12 is outside the data set's 10 classes (0..9)");
    expect("eval --task mnist --data @/cifar --optimizer adam --lr 0.01 --runs 1 --steps 2 --classes 8,9 "
           "--pool 5", 1, "a pool of 5 examples per network, expected 0 (all) or 1..2");
}

static void test_conv_on_digits(void **state)
{
    (void)state;
    expect("eval --task conv --data @ --optimizer adam --lr 0.01 --runs 3 --steps 5 --batch 4", 0, "step,mean,std");
    assert_non_null(strstr(ct_out, "\n5,"));
    expect("tune --task conv --data @ --optimizer adam --steps 3 --tune-runs 1 --batch 4", 0, "adam: lr");
    expect("train --task conv --data @ --batch 4 --epochs 1 --steps 2 --unroll 2 --eval-every 0 "
           "--out @/c.safetensors", 0, "conv-1x28x28-3x16k5-32-10-pool10, 21882 coordinates");
    expect("info @/c.safetensors", 0, "task             conv");
    /* one LSTM per parameter group, as the paper's conv nets have; --shared: one for all */
    expect("info @/c.safetensors", 0, "parameter groups: 2, one LSTM each: kernels other");
    expect("info @/c.safetensors", 0, "other.lstm2.weight_hh");
    expect("compare --task conv --data @ --batch 4 --steps 3 --runs 2 --tune-runs 1 --baselines nag "
           "--optimizer @/c.safetensors --out @/cmp", 0, "conv-1x28x28-3x16k5-32-10-pool10");
    expect("eval --task mnist --data @ --batch 4 --runs 1 --steps 2 --optimizer @/c.safetensors", 1,
           "one LSTM per parameter group (kernels,other), but the task");
    expect("train --task conv --data @ --batch 4 --epochs 1 --steps 2 --unroll 2 --eval-every 0 --shared "
           "--out @/s.safetensors", 0, "LSTM 2x20 (5301 weights)");
    expect("info @/s.safetensors", 0, "lstm2.weight_hh");
    assert_null(strstr(ct_out, "parameter groups"));
    expect("train --task conv --data @ --batch 4 --epochs 1 --steps 2 --unroll 2 --eval-every 0 --shared "
           "--init @/c.safetensors --out @/t.safetensors", 2, "--init FILE takes the optimizer's architecture");
    /* --classes on digits: a network with two outputs */
    expect("train --task mnist --data @ --hidden 2 --batch 4 --epochs 1 --steps 2 --unroll 2 --eval-every 0 "
           "--recipe paper --classes 7,2 --out @/m.safetensors", 0, "mlp-784-2-2-sigmoid");
    expect("info @/m.safetensors", 0, "classes          7,2");
}

static void test_conv_on_cifar(void **state)
{
    (void)state;
    expect("eval --task conv --data @/cifar --optimizer adam --lr 0.01 --runs 2 --steps 4 --batch 4", 0,
           "step,mean,std");
    /* classes 3, 5, 0 of the test batch's 10 (labels 0..9 once each): a pool of 3, and
     * 3 logits: 22,682 - 10 x 33 + 3 x 33 coordinates */
    expect("train --task conv --data @/cifar --classes 3,5,0 --batch 4 --epochs 1 --steps 2 --unroll 2 "
           "--eval-every 0 --out @/k.safetensors", 0, "conv-3x32x32-3x16k5-32-3-pool3, 22451 coordinates");
    expect("info @/k.safetensors", 0, "classes          3,5,0");
    expect("eval --task conv --data @/cifar --classes 3,5,0 --optimizer @/k.safetensors --runs 2 --steps 4 "
           "--batch 4", 0, "step,mean,std");
    /* the MLP on CIFAR's 3 x 32 x 32 values */
    expect("eval --task mnist --data @/cifar --optimizer nag --lr 0.1 --runs 2 --steps 3 --batch 4", 0,
           "step,mean,std");
}

int main(int argc, char **argv)
{
    (void)argc;
    if (ct_setup(argv[0], "cli-conv")) return 1;
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 0);
    ct_write_split(".", "train", 24, &rng);
    ct_write_split(".", "t10k", 10, &rng);
    static const char *const sets[] = {"cifar", "cifar-trunc", "cifar-label", "cifar-half", "empty"};
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) make_subdir(sets[s]);
    for (int s = 0; s < 4; s++) {
        char name[32];
        for (int b = 1; b <= 5; b++) {
            if (s == 3 && b == 2) continue; /* cifar-half: data_batch_2.bin missing */
            snprintf(name, sizeof name, "data_batch_%d.bin", b);
            write_cifar(sets[s], name, 4, b, &rng);
        }
        write_cifar(sets[s], "test_batch.bin", s == 2 ? 0 : 10, 0, &rng);
    }
    /* cifar-trunc: the test batch cut inside its last record; cifar-label: label 10 */
    char path[512];
    assert_int_equal(truncate(ct_path(path, sizeof path, "cifar-trunc/test_batch.bin"), 10 * 3073 - 7), 0);
    FILE *f = fopen(ct_path(path, sizeof path, "cifar-label/test_batch.bin"), "wb");
    assert_non_null(f);
    for (int i = 0; i < 2 * 3073; i++) fputc(i == 3073 ? 10 : 1, f);
    assert_int_equal(fclose(f), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_data_errors),
        cmocka_unit_test(test_conv_on_digits),
        cmocka_unit_test(test_conv_on_cifar),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ct_teardown();
    return rc;
}
