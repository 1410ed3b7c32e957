/*
 * The l2l tool from the outside: exit codes and messages for bad flags and bad files,
 * and the MNIST digit pool, on a small MNIST-shaped data set this program writes (24
 * training and 10 test digits of 28 x 28). The tool is the l2l next to this program's
 * directory (BUILD/tests/../l2l), so the sanitizer build tests its own binary.
 * Exit codes: 0 success, 1 runtime failure, 2 usage error.
 */
#define _XOPEN_SOURCE 700 /* realpath (cli_testutil.h) */
#include "cli_testutil.h"

static void expect(const char *args, int code, const char *phrase)
{
    int rc = ct_run(args, 120);
    if (rc != code) fail_msg("l2l %s: exit %d, expected %d; output:\n%s", args, rc, code, ct_out);
    if (phrase && !strstr(ct_out, phrase)) fail_msg("l2l %s: output lacks \"%s\":\n%s", args, phrase, ct_out);
}

static void test_usage_errors(void **state)
{
    (void)state;
    expect("train --bogus 1", 2, "unknown option '--bogus'");
    expect("eval --task mnist --optimizer nag --lr 1 --pool -1", 2, "--pool expects an integer");
    expect("train --task mnist --out @/x.safetensors --mix 20x", 2, "--mix expects shapes");
    expect("train --task mnist --out @/x.safetensors --mix 20x1,0", 2, "--mix expects shapes");
    expect("train --task quadratic --out @/x.safetensors --mix 20x1", 2, "--mix applies to --task mnist");
    expect("train --task mnist --out @/x.safetensors --init @/x.safetensors --p 5", 2, "--init FILE takes");
    expect("train --task mnist --out @/x.safetensors --init @/x.safetensors --lstm-hidden 8", 2,
           "--init FILE takes");
    expect("eval --task quadratic --optimizer nag --lr 0.01 --pool 5", 0, NULL); /* ignored there */
    expect("train --task conv --out @/x.safetensors --init-std 0.1", 2, "--init-std applies to --task mnist");
    expect("eval --task mnist --optimizer nag --lr 1 --init-std 0", 2, "--init-std expects a number");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag,lbfgs", 2, "--baselines expects");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag,nag", 2, "--baselines expects");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag,", 2, "--baselines expects");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag:0", 2, "--baselines expects");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag:0.1x", 2, "--baselines expects");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag:1e99", 2, "--baselines expects");
    expect("compare --optimizer x.safetensors --out @/c --baselines nag:0.1,nag:0.1", 2, "--baselines expects");
    expect("train extra --out @/x.safetensors", 2, "unexpected argument 'extra'");
    expect("eval --optimizer nag --lr 1 --epochs 3", 2, "unknown option '--epochs'"); /* train's */
    expect("tune --optimizer lstm", 2, "--optimizer expects one of sgd, nag, rmsprop, adam, nag-floor");
    expect("bench", 2, "unknown command 'bench'"); /* now its own program, l2l-bench */
}

/* The switches that measured nothing are gone: each is an unknown option. */
static void test_removed_options(void **state)
{
    (void)state;
    static const char *const removed[] = {"--lr-half-life 10", "--rollback 2", "--average 0.5",
                                          "--rescale 1", "--out-init 0.5", "--weighting last",
                                          "--imitate nag:1:5", "--es 8:0.01", "--quick"};
    for (size_t i = 0; i < sizeof removed / sizeof *removed; i++) {
        char args[256], phrase[64];
        snprintf(args, sizeof args, "train --task mnist --out @/x.safetensors %s", removed[i]);
        snprintf(phrase, sizeof phrase, "unknown option '%.*s'", (int)strcspn(removed[i], " "), removed[i]);
        expect(args, 2, phrase);
    }
    expect("train --out @/x.safetensors --objective log-each", 2, "--objective expects one of sum, log, got 'log-each'");
}

/* Each option's value is checked against its range in the type it is stored in. */
static void test_ranges(void **state)
{
    (void)state;
    /* 1e-50 is a positive double but 0 as the float the meta learning rate is */
    expect("train --out @/x.safetensors --lr 1e-50", 2, "--lr expects a number in [1e-12, 1e+06]");
    assert_non_null(strstr(ct_out, "'1e-50'"));
    expect("train --out @/x.safetensors --lr 1e39", 2, "--lr expects a number"); /* inf as a float */
    expect("train --lr 1e-12", 2, "--out FILE.safetensors is required"); /* the bound itself passes */
    expect("train --out @/x.safetensors --p 80", 2, "--p expects a number in [0.001, 79]");
    expect("train --out @/x.safetensors --epochs 0", 2, "--epochs expects an integer in 1..100000000, got '0'");
    expect("train --out @/x.safetensors --seed 1.5", 2, "--seed expects an integer");
    expect("train --out @/x.safetensors --steps 2x", 2, "--steps expects an integer");
    expect("train --out @/x.safetensors --lr", 2, "option '--lr' needs a value");
    expect("train --out @/x.safetensors --select best", 2, "--select expects one of mean, final, got 'best'");
    expect("train --out= --lr=1e-3", 2, "--out expects a file name, got ''");
    expect("plot @/x.csv --out @/x.png --linear=1", 2, "option '--linear' takes no value");
    expect("train --help", 0, "--estimator");
    assert_non_null(strstr(ct_out, "--meta-batch"));
    assert_non_null(strstr(ct_out, "--task quadratic|mnist"));
}

/* --estimator tbptt | es:PAIRS:SIGMA | pes:PAIRS:SIGMA | imitate:TEACHER:LR, nothing else. */
static void test_estimator(void **state)
{
    (void)state;
    static const char *const bad[] = {"es:0:0.01", "es:2", "es:2:0", "es:2:1e-50", "es:x:1",
                                      "imitate:bfgs:1", "imitate:nag:0", "imitate:nag:1:5",
                                      "imitate:nag", "sgd", "tbptt:1", "pes:0:0.01", "pes:2", "pes2:0.01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[256];
        snprintf(args, sizeof args, "train --out @/x.safetensors --estimator %s", bad[i]);
        expect(args, 2, "--estimator expects tbptt, es:PAIRS:SIGMA");
    }
    expect("train --task quadratic --dim 2 --batch 2 --epochs 1 --steps 20 --eval-every 0 "
           "--estimator tbptt --out @/tb.safetensors", 0, NULL);
    expect("info @/tb.safetensors", 0, "estimator        tbptt");
    expect("train --task quadratic --dim 2 --batch 2 --epochs 1 --steps 20 --unroll 10 --eval-every 0 "
           "--estimator pes:2:0.01 --out @/pes.safetensors", 0, NULL);
    expect("info @/pes.safetensors", 0, "estimator        pes:2:0.01");
}

/* The table in ct_out: every row's mean ends in the column where "final mean" ends, however
 * wide its name and learning rate. */
static void assert_table_aligned(void)
{
    const char *head = ct_out;
    if (strncmp(head, "optimizer ", 10)) {
        head = strstr(ct_out, "\noptimizer ");
        assert_non_null(head);
        head++;
    }
    const size_t col = (size_t)(strstr(head, "final mean") - head) + strlen("final mean");
    for (const char *line = head + strcspn(head, "\n"); line[0] && line[1] && line[1] != '(';) {
        line++;
        const size_t len = strcspn(line, "\n");
        if (len <= col || line[col - 1] == ' ' || line[col] != ' ')
            fail_msg("table row out of its columns:\n%.*s\nunder\n%.*s", (int)len, line,
                     (int)strcspn(head, "\n"), head);
        line += len;
    }
}

/* The tuned rates that DIR/summary.csv prints, given back as NAME:LR, are the same floats:
 * every fixed row of the new comparison ends as its tuned row did, to the last digit. */
static void fixed_rates_reproduce_tuned(const char *dir)
{
    char rel[256], file[512], args[1024], name[4][32], lr[4][32], tuned[4][128];
    size_t n;
    snprintf(rel, sizeof rel, "%s/summary.csv", dir);
    char *summary = tu_read_file(ct_path(file, sizeof file, rel), &n);
    int k = 0;
    for (char *line = strchr(summary, '\n'); line && line[1] && k < 4; line = strchr(line + 1, '\n')) {
        if (sscanf(line + 1, "%31[^,],%31[^,],%127[^,]", name[k], lr[k], tuned[k]) == 3) k++;
    }
    free(summary);
    assert_int_equal(k, 4); /* sgd, nag, rmsprop, adam; the learned row has no lr */
    snprintf(args, sizeof args, "compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 "
             "--optimizer @/p.safetensors --out @/%s-fixed --baselines %s:%s,%s:%s,%s:%s,%s:%s,sgd:0.012345678", dir,
             name[0], lr[0], name[1], lr[1], name[2], lr[2], name[3], lr[3]);
    expect(args, 0, NULL);
    assert_table_aligned(); /* names and rates wider than the columns' headers */
    snprintf(rel, sizeof rel, "%s-fixed/summary.csv", dir);
    summary = tu_read_file(ct_path(file, sizeof file, rel), &n);
    for (int i = 0; i < k; i++) {
        char row[1024];
        snprintf(row, sizeof row, "\n%s:%s,%s,%s,", name[i], lr[i], lr[i], tuned[i]);
        if (!strstr(summary, row)) fail_msg("%s at its tuned rate %s: no row \"%s\" in\n%s", name[i], lr[i], row + 1, summary);
    }
    free(summary);
}

static void test_pool(void **state)
{
    (void)state;
    /* The default pool is the test split's size (10): the checkpoint's task says so. */
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 1 --steps 20 --eval-every 1 --valid 1 "
           "--out @/p.safetensors", 0, "mlp-784-2-10-sigmoid-pool10");
    expect("info @/p.safetensors", 0, "pool10");
    /* compare tunes the baselines asked for, in that order, and only those */
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 "
           "--optimizer @/p.safetensors --out @/cmp --baselines nag-floor,nag", 0, "nag-floor");
    const char *rows = strstr(ct_out, "lstm");
    assert_non_null(rows);
    assert_non_null(strstr(rows, "nag-floor"));
    assert_non_null(strstr(strstr(rows, "nag-floor") + 9, "\nnag "));
    assert_null(strstr(rows, "adam"));
    assert_null(strstr(rows, "sgd"));
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 "
           "--optimizer @/p.safetensors --out @/cmp", 0, "rmsprop"); /* the paper's four */
    fixed_rates_reproduce_tuned("cmp");
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 1 --steps 20 --eval-every 0 --pool 0 "
           "--out @/q.safetensors", 0, "mlp-784-2-10-sigmoid,");
    /* --init-std reaches the networks: larger initial weights, another starting loss */
    double start[2];
    for (int k = 0; k < 2; k++) {
        expect(k ? "eval --task mnist --data @ --optimizer sgd --lr 1 --steps 1 --runs 2 --init-std 1"
                 : "eval --task mnist --data @ --optimizer sgd --lr 1 --steps 1 --runs 2",
               0, "step,mean");
        const char *row0 = strstr(ct_out, "\n0,");
        assert_non_null(row0);
        start[k] = strtod(row0 + 3, NULL);
    }
    assert_true(fabs(start[0] - log(10.0)) < 0.01); /* near-zero weights: uniform guesses */
    assert_true(start[1] > 2 * start[0]);
    expect("eval --task mnist --data @ --optimizer nag --lr 1 --steps 5 --runs 2 --pool 11", 1,
           "a pool of 11 examples per network, expected 0 (all) or 1..10");
    /* --init continues from a checkpoint: its architecture, p and scale come along. */
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 1 --steps 20 --eval-every 0 "
           "--init @/p.safetensors --out @/r.safetensors", 0, NULL);
    expect("info @/r.safetensors", 0, "init");
    /* more learned optimizers in one comparison, each paired against --optimizer's */
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 --baselines nag "
           "--optimizer @/p.safetensors --also @/p.safetensors,@/r.safetensors --out @/cmp2", 0, "minus lstm");
    const char *self = strstr(ct_out, "\np ");
    assert_non_null(self);
    assert_non_null(strstr(self, "+0 +- 0\n")); /* the same optimizer: no difference at all */
    assert_non_null(strstr(ct_out, "\nr "));
    /* finals.csv: every test problem's last loss; without baselines the learned
     * optimizers meet the same test problems, so their rows are the same bytes */
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 --baselines none "
           "--optimizer @/p.safetensors --also @/p.safetensors,@/r.safetensors --out @/cmp4", 0, "minus lstm");
    assert_null(strstr(ct_out, "\nnag "));
    char file[512];
    size_t n;
    char *with = tu_read_file(ct_path(file, sizeof file, "cmp2/finals.csv"), &n);
    char *without = tu_read_file(ct_path(file, sizeof file, "cmp4/finals.csv"), &n);
    char *nag = strstr(with, "\nnag,0,");
    assert_non_null(nag);
    assert_non_null(strstr(nag, "\nnag,1,"));
    nag[1] = 0; /* the learned optimizers' rows */
    assert_string_equal(with, without);
    free(with), free(without);
    /* l2l pair: the optimizers of two comparisons on their common test problems, paired as
     * one comparison pairs them (from values printed to 9 digits) */
    expect("pair cmp4/finals.csv cmp2/finals.csv --against cmp2/lstm --out pair.csv", 0, "cmp4/lstm");
    char *paired = tu_read_file(ct_path(file, sizeof file, "pair.csv"), &n);
    char *summary = tu_read_file(ct_path(file, sizeof file, "cmp2/summary.csv"), &n);
    assert_non_null(strstr(paired, "\ncmp4/lstm,"));
    assert_non_null(strstr(paired, "\ncmp4/r,"));
    double pm, ps, cm, cs; /* cmp4/lstm: the same optimizer on the same runs as the reference */
    assert_int_equal(sscanf(strstr(paired, "\ncmp4/lstm,"), "\ncmp4/lstm,%*[^,],%*[^,],%*[^,],2,%lf,%lf", &pm, &ps),
                     2);
    assert_true(pm == 0 && ps == 0);
    assert_int_equal(sscanf(strstr(paired, "\nnag,"), "\nnag,%*[^,],%*[^,],%*[^,],2,%lf,%lf", &pm, &ps), 2);
    assert_int_equal(sscanf(strstr(summary, "\nnag,"), "\nnag,%*[^,],%*[^,],%*[^,],%*[^,],2,%lf,%lf", &cm, &cs),
                     2);
    assert_true(cs > 0);
    assert_true(fabs(pm - cm) <= 1e-6 * fabs(cm) && fabs(ps - cs) <= 1e-6 * cs);
    free(paired), free(summary);
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 --baselines none --seed 2 "
           "--optimizer @/p.safetensors --out @/cmp5", 0, "minus lstm");
    expect("pair cmp4/finals.csv cmp5/finals.csv", 1, "were not run on the same test problems: run 0 starts at");
    expect("pair cmp2/curves.csv", 1, "is not a finals.csv of l2l compare");
    expect("pair cmp4/finals.csv --against nag", 1, "--against nag: no such optimizer; the files hold lstm, p, r");
    /* NAME:LR is NAME untuned at that learning rate, beside the tuned NAME: the rows l2l eval
     * gives on the same test problems */
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 --baselines nag,nag:0.5 "
           "--optimizer @/p.safetensors --out @/cmp6", 0, "nag:0.5");
    assert_null(strstr(ct_out, "tuned nag:0.5"));
    summary = tu_read_file(ct_path(file, sizeof file, "cmp6/summary.csv"), &n);
    expect("eval --task mnist --data @ --hidden 2 --steps 5 --runs 2 --optimizer nag --lr 0.5 --csv e.csv", 0, NULL);
    char *curve = tu_read_file(ct_path(file, sizeof file, "e.csv"), &n);
    char fixed[64];
    assert_int_equal(sscanf(strstr(summary, "\nnag:0.5,0.5,"), "\nnag:0.5,0.5,%63[^,]", fixed), 1);
    char *last = strstr(curve, "\n5,");
    assert_non_null(last);
    assert_int_equal(strncmp(last + 3, fixed, strlen(fixed)), 0);
    assert_int_equal(last[3 + strlen(fixed)], ',');
    free(summary), free(curve);
    expect("compare --task mnist --data @ --hidden 2 --steps 5 --runs 2 --tune-runs 1 --baselines nag "
           "--optimizer @/p.safetensors --also @/missing.safetensors --out @/cmp3", 1, "cannot open");
    expect("compare --optimizer @/p.safetensors --also a,,b --out @/cmp3", 2, "--also expects checkpoint paths");
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 1 --steps 20 --eval-every 0 "
           "--init @/missing.safetensors --out @/s.safetensors", 1, "cannot open");
    /* A mixed meta-batch: one network of each shape at least. */
    expect("train --task mnist --recipe paper --data @ --mix 2x1,3x2 --epochs 1 --steps 20 --eval-every 0 "
           "--out @/m.safetensors", 0, "mix of 2");
    expect("info @/m.safetensors", 0, "2x1,3x2");
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 2 --steps 20 --eval-every 0 "
           "--estimator imitate:nag-floor:1 --out @/n.safetensors", 0, NULL);
    expect("info @/n.safetensors", 0, "imitate:nag-floor:1");
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 1 --steps 20 --eval-every 0 "
           "--estimator es:2:0.01 --out @/v.safetensors", 0, NULL);
    expect("info @/v.safetensors", 0, "es:2:0.01");
    /* Without a test split, the default pool cannot be sized: say so. */
    char path[512];
    assert_int_equal(unlink(ct_path(path, sizeof path, "t10k-images-idx3-ubyte")), 0);
    expect("train --task mnist --recipe paper --data @ --hidden 2 --epochs 1 --steps 20 --eval-every 0 "
           "--out @/t.safetensors", 1, "the default --pool is the test split's size");
}

/* The number after `key` in the last `l2l info`'s output. */
static double info_value(const char *key)
{
    const char *p = strstr(ct_out, key);
    if (!p) fail_msg("no %s in:\n%s", key, ct_out);
    return strtod(p + strlen(key), NULL);
}

/* The l2l recipe is MNIST's default: an imitation warm start, then PES on the
 * meta-objective, with the recipe's settings wherever the command line gives none. */
static void test_recipe(void **state)
{
    (void)state;
    expect("train --task mnist --data @ --hidden 2 --steps 20 --warm-start nag-floor:1:2 --epochs 1 "
           "--valid 1 --out @/w.safetensors", 0, "a warm start imitating nag-floor:1:2 epochs, then 1 epochs");
    expect("info @/w.safetensors", 0, "pes:6:0.01");
    if (!strstr(ct_out, "3 inputs (log/sign, g / rms(g), p = 12)")) fail_msg("not logsign-rms:\n%s", ct_out);
    static const char *const settings[] = {"recipe           l2l", "meta_batch       4", "p                12",
                                           "objective        log", "select           final", "eval_every       10",
                                           "warm_start       nag-floor:1:2", "epochs_run       3"};
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++)
        if (!strstr(ct_out, settings[i])) fail_msg("no '%s' in:\n%s", settings[i], ct_out);
    expect("info @/w.warm.safetensors", 0, "completed        warm start");
    /* the warm start's best phi is the second stage's start: never worse on validation */
    expect("train --task mnist --data @ --hidden 2 --steps 20 --warm-start nag-floor:1:2 --epochs 1 "
           "--recipe paper --estimator es:2:0.01 --valid 1 --eval-every 1 --out @/e.safetensors", 0, NULL);
    expect("info @/e.safetensors", 0, "meta_batch       1");
    const double final = info_value("best_valid");
    expect("info @/e.warm.safetensors", 0, NULL);
    assert_true(final <= info_value("best_valid"));
    expect("train --task mnist --preset deepmind --data @ --hidden 2 --steps 20 --epochs 1 --eval-every 0 "
           "--out @/d.safetensors", 0, NULL);
    expect("info @/d.safetensors", 0, "recipe           paper");
    expect("train --task quadratic --recipe l2l --out @/x.safetensors", 2, "--recipe l2l is made for --task mnist");
    expect("train --out @/x.safetensors --warm-start nag:0:5", 2, "--warm-start expects none or TEACHER:LR:EPOCHS");
    expect("train --out @/x.safetensors --warm-start lstm:1:5", 2, "--warm-start expects");
    expect("train --out @/x.safetensors --warm-start nag:1:5x", 2, "--warm-start expects");
    expect("train --out @/x.safetensors --warm-start adam:1:3 --warm-unroll 7", 2,
           "--steps (100) must be a multiple of --warm-unroll (7)");
    /* an unroll-length curriculum: the epochs in parts, one per length */
    expect("train --task quadratic --dim 2 --batch 2 --steps 20 --curriculum 5,10 --epochs 3 --eval-every 1 "
           "--valid 2 --out @/c.safetensors", 0, "3 epochs x 20 steps (unroll 5,10)");
    expect("info @/c.safetensors", 0, "curriculum       5,10");
    assert_true(info_value("epochs_run") == 3);
    expect("train --out @/x.safetensors --curriculum 5,0", 2, "--curriculum expects unroll lengths");
    expect("train --out @/x.safetensors --curriculum 1,2,3,4,5,6,7,8,9", 2, "--curriculum expects");
    expect("train --out @/x.safetensors --curriculum 5,10 --unroll 5", 2, "drop --unroll");
    expect("train --out @/x.safetensors --curriculum 5,7", 2, "must be a multiple of every --curriculum length (7)");
    expect("train --out @/x.safetensors --curriculum 5,10,20 --epochs 2", 2,
           "--epochs (2) must be at least the number of --curriculum lengths (3)");
}

int main(int argc, char **argv)
{
    (void)argc;
    if (ct_setup(argv[0], "cli")) return 1;
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 0);
    ct_write_split(".", "train", 24, &rng);
    ct_write_split(".", "t10k", 10, &rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_removed_options),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_estimator),
        cmocka_unit_test(test_recipe), /* before test_pool, which removes the test split */
        cmocka_unit_test(test_pool),
    };
    int failed = cmocka_run_group_tests_name("cli", tests, NULL, NULL);
    ct_teardown();
    return failed;
}
