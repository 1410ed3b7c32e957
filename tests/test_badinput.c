/*
 * The bad-input table (issue 13): flags, checkpoints, training states, data files,
 * CSVs and paths that l2l must refuse, each with the exit status it must give (1
 * runtime failure, 2 usage, 3 diverged), a phrase its message must hold, and the
 * promise that nothing that existed before is changed: every file's bytes, mode and
 * mtime are compared before and after, and a case may create only the files it names
 * (a diverged run's .failed.safetensors, for example). A few cases are inputs that
 * used to go wrong and must now succeed (a log name, '%' in a train output).
 */
#define _XOPEN_SOURCE 700 /* realpath (cli_testutil.h) */
#include <fcntl.h>
#include <sys/stat.h>

#include "cli_testutil.h"

typedef struct {
    const char *args;    /* @ is the scratch directory, also the working directory */
    int code;            /* the exit status */
    const char *phrase;  /* in the output */
    const char *creates; /* files the case may create, separated by commas */
} bad_case;

static const bad_case cases[] = {
    /* values that pass as doubles but not as the floats they are stored in */
    {"train --out keep.safetensors --lr 1e-50", 2, "--lr expects a number in [1e-12, 1e+06] (as a float)", NULL},
    {"train --out keep.safetensors --lr 1e39", 2, "--lr expects a number", NULL},
    {"train --out keep.safetensors --clip 1e39", 2, "--clip expects a number", NULL},
    {"train --out keep.safetensors --p 1e-50", 2, "--p expects a number in [0.001, 79]", NULL},
    {"train --out keep.safetensors --scale 0", 2, "--scale must not be 0", NULL},
    {"train --out keep.safetensors --scale 1e-50", 2, "--scale must not be 0", NULL},
    {"train --out keep.safetensors --estimator imitate:sgd:1e300", 2, "--estimator expects tbptt", NULL},
    {"train --out keep.safetensors --estimator es:2:1e-50", 2, "--estimator expects tbptt", NULL},
    {"train --out keep.safetensors --estimator pes:2:1e39", 2, "--estimator expects tbptt", NULL},
    {"train --out keep.safetensors --estimator es:1000000:0.1", 2, "--estimator expects tbptt", NULL},
    {"train --out keep.safetensors --estimator imitate:nag:nan", 2, "--estimator expects tbptt", NULL},
    {"train --out keep.safetensors --save-minutes nan", 2, "--save-minutes expects a number", NULL},
    {"train --out keep.safetensors --save-every -1", 2, "--save-every expects an integer", NULL},
    /* integers and choices */
    {"train --out keep.safetensors --epochs 1e3", 2, "--epochs expects an integer", NULL},
    {"train --out keep.safetensors --epochs 99999999999", 2, "--epochs expects an integer", NULL},
    {"train --out keep.safetensors --steps 30 --unroll 20", 2, "--steps (30) must be a multiple of --unroll (20)", NULL},
    {"train --out keep.safetensors --seed -1", 2, "--seed expects an integer", NULL},
    {"train --out keep.safetensors --seed 1e300", 2, "--seed expects an integer", NULL},
    {"train --out keep.safetensors --threads 0", 2, "--threads expects an integer", NULL},
    {"train --out keep.safetensors --lstm-hidden 0", 2, "--lstm-hidden expects an integer", NULL},
    {"train --out keep.safetensors --lstm-layers 5", 2, "--lstm-layers expects an integer", NULL},
    {"train --out keep.safetensors --valid 0", 2, "--valid expects an integer", NULL},
    {"train --out keep.safetensors --meta-batch 0", 2, "--meta-batch expects an integer", NULL},
    {"train --out keep.safetensors --preproc log", 2, "--preproc expects one of none, logsign, logsign-rms", NULL},
    {"train --out keep.safetensors --task cifar", 2, "--task expects one of quadratic, mnist", NULL},
    {"train --epochs 1", 2, "--out FILE.safetensors is required", NULL},
    /* output paths, refused before any work */
    {"train --out subdir --epochs 1", 2, "--out 'subdir' is a directory", NULL},
    {"train --out fifo --epochs 1", 2, "--out 'fifo' is not a regular file", NULL},
    {"train --out nodir/q.safetensors", 2, "the directory 'nodir' does not exist", NULL},
    {"train --out keep.safetensors --log keep.safetensors", 2, "--log and --out name the same file", NULL},
    {"train --out keep.safetensors --log ./keep.safetensors", 2, "--log and --out name the same file", NULL},
    {"train --out keep.safetensors --log @/keep.safetensors", 2, "--log and --out name the same file", NULL},
    {"train --out keep.safetensors --log subdir", 2, "--log 'subdir' is a directory", NULL},
    {"train --out keep.safetensors --log nodir/l.csv", 2, "the directory 'nodir' does not exist", NULL},
    /* checkpoints given to --init, refused before any training */
    {"train --out keep.safetensors --steps 20 --init missing.safetensors", 1, "cannot open", NULL},
    {"train --out keep.safetensors --steps 20 --init notes.txt", 1, "notes.txt", NULL},
    {"train --out keep.safetensors --steps 20 --init bad.safetensors", 1, "bad.safetensors", NULL},
    {"train --out keep.safetensors --steps 20 --init trunc.safetensors", 1, "trunc.safetensors", NULL},
    {"train --out keep.safetensors --steps 20 --init empty.safetensors", 1, "empty.safetensors", NULL},
    {"train --out keep.safetensors --steps 20 --init nan.safetensors", 1, "expected finite weights", NULL},
    {"train --out keep.safetensors --steps 20 --init state.safetensors", 1, "not an l2l LSTM optimizer checkpoint", NULL},
    {"train --out keep.safetensors --steps 20 --init subdir", 1, "subdir", NULL},
    {"train --out keep.safetensors --steps 20 --init fifo", 1, "fifo", NULL},
    /* divergence: an error, the previous --out and log untouched, the best phi apart */
    {"train --out keep.safetensors --lr 1e6 --epochs 20 --steps 20 --eval-every 5", 3,
     "keep.safetensors is untouched; the best phi so far is in keep.failed.safetensors",
     "keep.failed.safetensors,keep-log.csv.part"},
    /* blown up within the first epoch: measured against the starting phi's validation */
    {"train --out keep.safetensors --dim 4 --batch 8 --lr 1e6 --epochs 3 --eval-every 1 --valid 3", 3,
     "diverged in epoch 1", "keep.failed.safetensors,keep-log.csv.part"},
    {"train --out keep.safetensors --lr 1e6 --epochs 20 --steps 20 --estimator es:2:0.1 --eval-every 0", 3,
     "diverged", "keep.failed.safetensors,keep-log.csv.part"},
    /* training states */
    {"train --resume missing.state.safetensors", 1, "cannot open", NULL},
    {"train --resume keep.safetensors", 1, "not an l2l training state", NULL},
    {"train --resume state.safetensors --epochs 5", 2, "--epochs cannot be given with it", NULL},
    {"train --resume noargs.safetensors", 2, "records no command line", NULL},
    {"train --resume fifo", 1, "fifo", NULL},
    {"train --resume subdir", 1, "subdir", NULL},
    /* eval */
    {"eval --optimizer sgd --lr 1e6 --csv keep.csv", 3, "100 of 100 runs diverged", NULL},
    {"eval --optimizer sgd --csv keep.csv", 2, "--lr is required for a baseline", NULL},
    {"eval --optimizer sgd --lr 1e-50 --csv keep.csv", 2, "--lr expects a number", NULL},
    {"eval --optimizer sgd --lr 0.1 --csv subdir", 2, "--csv 'subdir' is a directory", NULL},
    {"eval --optimizer sgd --lr 0.1 --csv fifo", 2, "--csv 'fifo' is not a regular file", NULL},
    {"eval --optimizer sgd --lr 0.1 --csv nodir/x.csv", 2, "the directory 'nodir' does not exist", NULL},
    {"eval --optimizer missing.safetensors --csv keep.csv", 1, "cannot open", NULL},
    {"eval --optimizer bad.safetensors --csv keep.csv", 1, "bad.safetensors", NULL},
    {"eval --optimizer fifo --csv keep.csv", 1, "fifo", NULL},
    {"eval --optimizer wild.safetensors --csv keep.csv --runs 3", 3, "3 of 3 runs diverged", NULL},
    {"eval --optimizer sgd --lr 0.1 --runs 0", 2, "--runs expects an integer", NULL},
    /* tune */
    {"tune --optimizer sgd --steps 5 --tune-runs 0", 2, "--tune-runs expects an integer", NULL},
    {"tune --steps 5", 2, "--optimizer must be one of", NULL},
    {"tune --optimizer sgd --dim 0", 2, "--dim expects an integer", NULL},
    /* compare: its --out checked before the tuning */
    {"compare --optimizer good.safetensors --out keep.csv --steps 5", 2, "--out 'keep.csv' exists and is not a directory", NULL},
    {"compare --optimizer good.safetensors --out nodir/c --steps 5", 2, "cannot be created", NULL},
    {"compare --optimizer good.safetensors --out c%n --steps 5", 2, "expands '%'", NULL},
    {"compare --optimizer missing.safetensors --out cmpkeep --steps 5", 1, "cannot open", NULL},
    {"compare --optimizer good.safetensors --out cmpkeep --baselines sgd,bfgs", 2, "--baselines expects", NULL},
    {"compare --optimizer wild.safetensors --out cmpkeep --steps 5 --runs 2 --tune-runs 1 --baselines sgd", 3,
     "lstm diverged on 2 of 2 test problems", NULL},
    /* data files */
    {"eval --task mnist --data nodata --optimizer sgd --lr 0.1", 1, "nodata", NULL},
    {"eval --task mnist --data badmagic --optimizer sgd --lr 0.1", 1, "magic", NULL},
    {"eval --task mnist --data trunc --optimizer sgd --lr 0.1", 1, "trunc", NULL},
    {"eval --task mnist --data mismatch --optimizer sgd --lr 0.1", 1, "mismatch", NULL},
    {"eval --task mnist --data dirdata --optimizer sgd --lr 0.1", 1, "dirdata", NULL},
    {"eval --task mnist --data fifodata --optimizer sgd --lr 0.1", 1, "fifodata", NULL},
    /* CSVs for plot */
    {"plot missing.csv --out fig.png", 1, "missing.csv", NULL},
    {"plot notes.txt --out fig.png", 1, "notes.txt", NULL},
    {"plot empty.csv --out fig.png", 1, "empty.csv", NULL},
    {"plot keep.csv --out fig.jpg", 2, "--out must end in .png or .svg", NULL},
    {"plot fifo --out fig.png", 1, "fifo", NULL},
    /* info */
    {"info", 2, "expects exactly one checkpoint file", NULL},
    {"info bad.safetensors", 1, "bad.safetensors", NULL},
    {"info good.safetensors keep.safetensors", 2, "unexpected argument", NULL},
    {"info state.safetensors", 0, "training state after epoch 1", NULL},
    /* inputs that used to go wrong and must now succeed, touching only their own files */
    {"train --out m.safetensors.d/q.safetensors --epochs 1 --steps 20 --eval-every 0", 0, "saved",
     "m.safetensors.d/q.safetensors,m.safetensors.d/q-log.csv"},
    {"train --out %n.safetensors --epochs 1 --steps 20 --eval-every 0", 0, "saved", "%n.safetensors,%n-log.csv"},
};

static int allowed(const char *creates, const char *name)
{
    if (!creates) return 0;
    size_t n = strlen(name);
    for (const char *p = creates; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

enum { MAX_ENTRIES = 256 };

/* Runs one case; prints what went wrong and returns 1, or returns 0. */
#define CASE_FAIL(...) return fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), 1
static int run_case(const bad_case *c)
{
    static ct_entry before[MAX_ENTRIES], after[MAX_ENTRIES];
    const int nb = ct_scan(ct_dir, "", before, 0, MAX_ENTRIES);
    const int rc = ct_run(c->args, 60);
    if (rc != c->code) CASE_FAIL("l2l %s: exit %d, expected %d; output:\n%s", c->args, rc, c->code, ct_out);
    if (!strstr(ct_out, c->phrase)) CASE_FAIL("l2l %s: output lacks \"%s\":\n%s", c->args, c->phrase, ct_out);
    const int na = ct_scan(ct_dir, "", after, 0, MAX_ENTRIES);
    for (int i = 0; i < nb; i++) {
        const ct_entry *b = &before[i], *a = ct_find(after, na, b->name);
        if (!a) CASE_FAIL("l2l %s: removed %s", c->args, b->name);
        if (a->mode != b->mode) CASE_FAIL("l2l %s: %s's mode %o became %o", c->args, b->name, b->mode, a->mode);
        if (S_ISDIR(b->mode)) continue; /* a directory's mtime is its entries' */
        if (a->hash != b->hash || a->mtime.tv_sec != b->mtime.tv_sec || a->mtime.tv_nsec != b->mtime.tv_nsec)
            CASE_FAIL("l2l %s: changed %s", c->args, b->name);
    }
    for (int i = 0; i < na; i++) {
        if (ct_find(before, nb, after[i].name)) continue;
        if (!allowed(c->creates, after[i].name))
            CASE_FAIL("l2l %s: created %s; output:\n%s", c->args, after[i].name, ct_out);
        char path[1024];
        if (unlink(ct_path(path, sizeof path, after[i].name)) != 0) CASE_FAIL("cannot remove %s", path);
    }
    return 0;
}

static void test_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) failed += run_case(&cases[i]);
    printf("bad-input table: %zu cases, %d failed\n", sizeof cases / sizeof *cases, failed);
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------ fixtures */

static void write_text(const char *name, const char *text)
{
    char path[512];
    FILE *f = fopen(ct_path(path, sizeof path, name), "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *name)
{
    char path[512];
    assert_int_equal(mkdir(ct_path(path, sizeof path, name), 0755), 0);
}

/* A copy of good.safetensors's first `keep` bytes (all if < 0), with the float at
 * byte `nan_at` of the data section (if >= 0) made NaN. */
static void copy_checkpoint(const char *name, long keep, long nan_at)
{
    char src[512], dst[512];
    FILE *f = fopen(ct_path(src, sizeof src, "good.safetensors"), "rb");
    assert_non_null(f);
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (nan_at >= 0) {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | buf[i];
        const float nan = NAN;
        memcpy(buf + 8 + h + nan_at, &nan, 4);
    }
    f = fopen(ct_path(dst, sizeof dst, name), "wb");
    assert_non_null(f);
    fwrite(buf, 1, keep < 0 ? n : (size_t)keep, f);
    assert_int_equal(fclose(f), 0);
}

/* A training state of a tiny net, with a command line (args) or none. */
static void write_state(const char *name, int with_args)
{
    l2l_lstm_config lc = {.layers = 1, .hidden = 2, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1};
    l2l_lstm net;
    l2l_error err;
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_train_state s = {.arch = lc, .epoch = 1, .n_params = net.n_params, .phi = net.phi, .best = net.phi,
                         .adam_m = net.phi, .adam_v = net.phi, .best_valid = INFINITY};
    l2l_rng_seed(&s.train_rng, 1, 1);
    l2l_kv meta[3] = {{"argv.0", "--out"}, {"argv.1", "st.safetensors"}, {"log_bytes", "0"}};
    char path[512];
    assert_int_equal(l2l_train_state_save(ct_path(path, sizeof path, name), &s, meta, with_args ? 3 : 0, &err),
                     L2L_STATUS_OK);
    l2l_lstm_free(&net);
}

/* An optimizer whose steps are a million times too large: every run diverges. */
static void write_wild(void)
{
    l2l_lstm_config lc = {.layers = 1, .hidden = 4, .preproc = L2L_PREPROC_NONE, .p = 10, .scale = 1e6f};
    l2l_lstm net;
    l2l_error err;
    assert_int_equal(l2l_lstm_create(&net, &lc, &err), L2L_STATUS_OK);
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 4);
    l2l_lstm_init(&net, &rng);
    for (size_t i = 0; i < net.n_params; i++) net.phi[i] = fabsf(net.phi[i]) + 0.5f;
    char path[512];
    assert_int_equal(l2l_checkpoint_save(ct_path(path, sizeof path, "wild.safetensors"), &net, NULL, 0, &err),
                     L2L_STATUS_OK);
    l2l_lstm_free(&net);
}

static void make_fifo(const char *name)
{
    char path[512];
    assert_int_equal(mkfifo(ct_path(path, sizeof path, name), 0644), 0);
}

static int fixtures(void **state)
{
    (void)state;
    l2l_rng rng;
    l2l_rng_seed(&rng, 1, 0);
    static const char *const dirs[] = {"data", "badmagic", "trunc", "mismatch", "dirdata", "fifodata",
                                       "subdir", "m.safetensors.d", "cmpkeep"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) make_dir(dirs[i]);
    ct_write_split("data", "train", 24, &rng);
    ct_write_split("data", "t10k", 10, &rng);
    const uint32_t idims[3] = {10, 28, 28}, ldims[1] = {10}, ldims9[1] = {9};
    ct_write_idx("badmagic/t10k-images-idx3-ubyte", 0x804, 3, idims, 784, &rng, 0);
    ct_write_idx("badmagic/t10k-labels-idx1-ubyte", 0x801, 1, ldims, 1, &rng, 1);
    ct_write_idx("trunc/t10k-images-idx3-ubyte", 0x803, 3, idims, 700, &rng, 0);
    ct_write_idx("trunc/t10k-labels-idx1-ubyte", 0x801, 1, ldims, 1, &rng, 1);
    ct_write_idx("mismatch/t10k-images-idx3-ubyte", 0x803, 3, idims, 784, &rng, 0);
    ct_write_idx("mismatch/t10k-labels-idx1-ubyte", 0x801, 1, ldims9, 1, &rng, 1);
    make_dir("dirdata/t10k-images-idx3-ubyte");
    ct_write_idx("dirdata/t10k-labels-idx1-ubyte", 0x801, 1, ldims, 1, &rng, 1);
    make_fifo("fifodata/t10k-images-idx3-ubyte");
    ct_write_idx("fifodata/t10k-labels-idx1-ubyte", 0x801, 1, ldims, 1, &rng, 1);
    if (ct_run("train --dim 2 --batch 2 --epochs 1 --steps 20 --eval-every 0 --out good.safetensors", 60) != 0)
        fail_msg("cannot train the fixture checkpoint:\n%s", ct_out);
    char path[512];
    assert_int_equal(unlink(ct_path(path, sizeof path, "good-log.csv")), 0);
    copy_checkpoint("keep.safetensors", -1, -1);
    assert_int_equal(chmod(ct_path(path, sizeof path, "keep.safetensors"), 0600), 0);
    copy_checkpoint("trunc.safetensors", 300, -1);
    copy_checkpoint("nan.safetensors", -1, 8);
    write_text("bad.safetensors", "\x40\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}");
    write_text("empty.safetensors", "");
    write_text("notes.txt", "not a checkpoint\n");
    write_text("keep-log.csv", "epoch,train_loss\n1,2\n");
    write_text("keep.csv", "series,x,y\na,0,1\na,1,0.5\n");
    write_text("m-log.csv", "the log of m.safetensors\n");
    write_text("cmpkeep/curves.csv", "optimizer,step,mean,std\n");
    write_text("empty.csv", "");
    make_fifo("fifo");
    write_state("state.safetensors", 1);
    write_state("noargs.safetensors", 0);
    write_wild();
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    if (ct_setup(argv[0], "badinput")) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table)};
    int failed = cmocka_run_group_tests_name("badinput", tests, fixtures, NULL);
    ct_teardown();
    return failed;
}
