/* The tool's domain policy (see family.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "family.h"

static const opt_choice tasks[] = {{"quadratic", FAMILY_QUADRATIC},
                                   {"mnist", FAMILY_MNIST},
                                   {"conv", FAMILY_CONV},
                                   {NULL, 0}};
static const opt_choice presets[] = {{"paper", 0}, {"deepmind", 1}, {NULL, 0}};
static const opt_choice activations[] = {{"sigmoid", L2L_ACTIVATION_SIGMOID},
                                         {"relu", L2L_ACTIVATION_RELU},
                                         {"tanh", L2L_ACTIVATION_TANH},
                                         {NULL, 0}};
const opt_choice family_baselines[] = {{"sgd", L2L_OPT_KIND_SGD},
                                       {"nag", L2L_OPT_KIND_NAG},
                                       {"rmsprop", L2L_OPT_KIND_RMSPROP},
                                       {"adam", L2L_OPT_KIND_ADAM},
                                       {"nag-floor", L2L_OPT_KIND_NAG_FLOOR},
                                       {NULL, 0}};

/* --mix 20x1,40x1,20x2: network shapes HIDDENxLAYERS (xLAYERS optional, default 1). */
static int parse_mix(const char *s, void *dest)
{
    family *f = dest;
    f->n_mix = 0;
    for (const char *q = s;;) {
        char *end;
        long h = strtol(q, &end, 10), l = 1;
        if (end == q || h < 1 || h > 4096) return -1;
        q = end;
        if (*q == 'x') {
            l = strtol(q + 1, &end, 10);
            if (end == q + 1 || l < 1 || l > 8) return -1;
            q = end;
        }
        if (f->n_mix == FAMILY_MAX_MIX) return -1;
        f->mix_hidden[f->n_mix] = (int)h, f->mix_layers[f->n_mix] = (int)l, f->n_mix++;
        if (*q == 0) return 0;
        if (*q++ != ',') return -1;
    }
}

static void format_mix(const void *dest, char *buf, size_t n)
{
    const family *f = dest;
    buf[0] = 0;
    for (int i = 0; i < f->n_mix; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%dx%d", i ? "," : "", f->mix_hidden[i], f->mix_layers[i]);
    }
}

/* --classes 0,1,2: distinct class labels 0..255, at least two. */
static int parse_classes(const char *s, void *dest)
{
    family *f = dest;
    const int n = opts_parse_ints(s, f->classes, FAMILY_MAX_CLASSES, 0, FAMILY_MAX_CLASSES - 1);
    if (n < 2) return -1;
    int seen[FAMILY_MAX_CLASSES] = {0};
    for (int i = 0; i < n; i++)
        if (seen[f->classes[i]]++) return -1;
    f->n_classes = n;
    return 0;
}

static void format_classes(const void *dest, char *buf, size_t n)
{
    const family *f = dest;
    opts_format_ints(f->classes, f->n_classes, buf, n);
}

void family_init(family *f)
{
    memset(f, 0, sizeof *f);
    f->task = FAMILY_QUADRATIC;
    f->data = "data/mnist";
    f->dim = 10;
    f->batch = 128;
    f->hidden = 20;
    f->layers = 1;
    f->activation = L2L_ACTIVATION_SIGMOID;
    f->init_std = 0.01f;
    f->meta_batch = 1;
    l2l_train_config tc;
    l2l_train_config_default(&tc);
    f->steps = tc.steps;
    f->seed = tc.seed;
    const opt_desc opts[] = {
        {"task", OPT_CHOICE, &f->task, .choices = tasks,
         .help = "problem family: random quadratics, an MLP (mnist) or the\n"
                 "paper's conv net (conv) on --data's images (default quadratic)",
         .key = "task"},
        {"preset", OPT_CHOICE, &f->deepmind, .choices = presets,
         .help = "the paper's settings, or the authors' code's (default paper)", .key = "preset"},
        {"dim", OPT_INT, &f->dim, 1, 4096, .arg = "N", .help = "quadratic dimension (10)", .key = "dim"},
        {"batch", OPT_INT, &f->batch, 1, 1 << 20, .arg = "B",
         .help = "functions per quadratic sample (meta-training and --preset\n"
                 "deepmind: 128, else 1) / mnist and conv minibatch (128)",
         .key = "batch"},
        {"hidden", OPT_INT, &f->hidden, 1, 4096, .arg = "N", .help = "MNIST network: hidden units (20)",
         .key = "mlp_hidden"},
        {"layers", OPT_INT, &f->layers, 1, 8, .arg = "L", .help = "MNIST network: hidden layers (1)",
         .key = "mlp_layers"},
        {"activation", OPT_CHOICE, &f->activation, .choices = activations,
         .help = "MNIST network (sigmoid)", .key = "activation"},
        {"data", OPT_PATH, &f->data, .arg = "DIR", .expect = "a directory",
         .help = "the images of mnist and conv: MNIST's IDX files or\n"
                 "CIFAR-10's binary batches, told apart by their names\n"
                 "(default data/mnist)"},
        {"classes", OPT_CUSTOM, f, .parse = parse_classes, .format = format_classes, .arg = "LIST",
         .expect = "at least two distinct class labels 0..255 separated by commas, e.g. 0,1,2,3,4",
         .help = "mnist, conv: keep only these classes, relabelled 0..k-1\n"
                 "in the order given (default: all)",
         .key = "classes"},
        {"pool", OPT_INT, &f->pool, 0, 1 << 30, .arg = "K",
         .help = "mnist, conv: every network trains on its own K examples\n"
                 "drawn from the split (default: as many as the test split\n"
                 "holds; 0 = the whole split)",
         .key = "pool"},
        {"init-std", OPT_FLOAT, &f->init_std, 1e-6, 10, .arg = "S",
         .help = "mnist: weights and biases start ~ N(0, S²) (paper: 0.01)", .key = "init_std"},
        {NULL},
    };
    const opt_desc run_opts[] = {
        {"steps", OPT_INT, &f->steps, 1, 1e6, .arg = "S", .help = "steps per run (100)", .key = "steps"},
        {"seed", OPT_U64, &f->seed, 0, 9007199254740992.0, .arg = "S", .help = "random seed (1)",
         .key = "seed"},
        {"threads", OPT_INT, &f->threads, 1, 1024, .arg = "N", .help = "OpenMP threads"},
        {NULL},
    };
    const opt_desc train_opts[] = {
        {"mix", OPT_CUSTOM, f, .parse = parse_mix, .format = format_mix, .arg = "20x1,40x1,20x2",
         .expect = "shapes HIDDEN[xLAYERS] separated by commas, at most 16 (hidden 1..4096, "
                   "layers 1..8), e.g. 20x1,40x1,20x2",
         .help = "mnist: the meta-batch's networks cycle through these shapes\n"
                 "(HIDDEN[xLAYERS]); the meta-batch is at least one of each",
         .key = "mix"},
        {"meta-batch", OPT_INT, &f->meta_batch, 1, FAMILY_MAX_META_BATCH, .arg = "B",
         .help = "optimizees per meta-update (MNIST: B networks side by side) (1)",
         .key = "meta_batch"},
        {NULL},
    };
    OPT_TABLE_COPY(f->opts, opts);
    OPT_TABLE_COPY(f->run_opts, run_opts);
    OPT_TABLE_COPY(f->train_opts, train_opts);
}

/* The task options that only some tasks take. */
static tool_result task_options_check(const family *f, const char *cmd)
{
    if (f->n_classes && f->task == FAMILY_QUADRATIC)
        return tool_usage(cmd, "--classes applies to --task mnist and --task conv");
    if (f->task != FAMILY_MNIST && opts_given(f->opts, "init-std"))
        return tool_usage(cmd, "--init-std applies to --task mnist");
    return TOOL_OK;
}

tool_result family_parse(family *f, const opt_command *cmd, const char *title, opt_desc *own,
                         int argc, char **argv)
{
    opt_group groups[] = {{"task", f->opts}, {title, own}, {NULL, f->run_opts}, {NULL, NULL}};
    tool_result r = opts_parse(cmd, groups, argc, argv, NULL, NULL);
    if (r == TOOL_OK) r = task_options_check(f, cmd->name);
    if (r == TOOL_OK) tool_threads(f->threads);
    return r;
}

tool_result family_check(family *f, const char *cmd)
{
    if (f->n_mix && f->task != FAMILY_MNIST) return tool_usage(cmd, "--mix applies to --task mnist");
    tool_result r = task_options_check(f, cmd);
    if (r != TOOL_OK) return r;
    if (f->meta_batch < f->n_mix) f->meta_batch = f->n_mix; /* one network of each shape */
    return TOOL_OK;
}

const char *family_task_name(const family *f) { return opts_choice_name(tasks, f->task); }

/* Whether dir/name exists (of any kind: the reader says what is wrong with it). */
static int has_file(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path && lstat(path, &sb) == 0;
}

/* The split ("train" or "t10k") of --data's images, told apart by their file names:
 * CIFAR-10's data_batch_N.bin and test_batch.bin (the test split), or MNIST's IDX files;
 * then the classes of --classes. */
static l2l_status load_images(const family *f, const char *split, l2l_dataset *ds, l2l_error *err)
{
    l2l_status st;
    const int test = strcmp(split, "t10k") == 0;
    if (has_file(f->data, "data_batch_1.bin") || has_file(f->data, "test_batch.bin")) {
        st = l2l_cifar10_load(ds, f->data, test ? "test" : "train", err);
    } else {
        static const char *const idx[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
        int found = 0;
        for (int i = 0; i < 4 && !found; i++) {
            char gz[64];
            snprintf(gz, sizeof gz, "%s.gz", idx[i]);
            found = has_file(f->data, idx[i]) || has_file(f->data, gz);
        }
        memset(ds, 0, sizeof *ds);
        if (!found)
            return l2l_error_set(err, L2L_STATUS_IO,
                                 "--data %s holds neither MNIST's IDX files (train-images-idx3-ubyte, "
                                 "t10k-images-idx3-ubyte and their labels, gzipped or not) nor "
                                 "CIFAR-10's binary batches (data_batch_1.bin .. data_batch_5.bin, "
                                 "test_batch.bin); `make data` fetches MNIST to data/mnist, and "
                                 "cifar-10-binary.tar.gz extracts to cifar-10-batches-bin",
                                 f->data);
        st = l2l_mnist_load(ds, f->data, split, err);
    }
    if (st || !f->n_classes) return st;
    if ((st = l2l_dataset_select_classes(ds, f->classes, f->n_classes, err))) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        l2l_dataset_free(ds);
        return l2l_error_set(err, st, "--classes on the %s split of %s: %s", test ? "test" : "training",
                             f->data, msg);
    }
    return L2L_STATUS_OK;
}

/* Image networks train, by default, on as many examples as the test split holds (a
 * pool drawn afresh for every network): 100 steps of 128 see a 2,000-digit pool six
 * times over but 8,000 digits not twice, so without this, meta-training and tuning on
 * the training split would prepare for a different network family from the one the
 * test split measures. ds holds the split's examples (of the classes kept). */
static l2l_status default_pool(family *f, const char *split, const l2l_dataset *ds, l2l_error *err)
{
    if (strcmp(split, "t10k") == 0) {
        f->pool = ds->n > (size_t)INT_MAX ? 0 : (int)ds->n;
        return L2L_STATUS_OK;
    }
    l2l_dataset test;
    l2l_status st = load_images(f, "t10k", &test, err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return l2l_error_set(err, st, "the default --pool is the test split's size, which cannot be "
                             "read (%s); give --pool K (0 = the whole split)", msg);
    }
    f->pool = test.n < ds->n ? (int)test.n : 0;
    l2l_dataset_free(&test);
    return L2L_STATUS_OK;
}

/* Optimizee k of a meta-batch; with --mix, a network of shape k mod the number of shapes. */
static l2l_status optimizee(const family *f, int k, const l2l_dataset *ds, l2l_task *task,
                            l2l_error *err)
{
    if (f->task == FAMILY_QUADRATIC) {
        l2l_quadratic_config qc = {f->dim, f->batch, f->deepmind};
        return l2l_task_quadratic_create(task, &qc, err);
    }
    if (f->task == FAMILY_CONV) { /* the paper's network: 3 x 16 5x5, fc 32 */
        l2l_conv_config cc;
        l2l_conv_config_default(&cc);
        cc.batch = f->batch;
        cc.pool = f->pool;
        return l2l_task_conv_create(task, &cc, ds, err);
    }
    l2l_mlp_config mc = {f->n_mix ? f->mix_layers[k % f->n_mix] : f->layers,
                         f->n_mix ? f->mix_hidden[k % f->n_mix] : f->hidden,
                         (l2l_activation)f->activation, f->batch, f->init_std, f->pool};
    return l2l_task_mlp_create(task, &mc, ds, err);
}

l2l_status family_problems(family *f, const char *split, int training, problem_set *ps,
                           l2l_error *err)
{
    l2l_dataset *ds = &ps->data;
    memset(ps, 0, sizeof *ps);
    /* Paper: one quadratic per run when evaluating, batches of 128 in meta-training.
     * Authors' code: the batch-mean loss of 128 functions is the optimizee. */
    if (!opts_given(f->opts, "batch"))
        f->batch = f->task == FAMILY_QUADRATIC && !training && !f->deepmind ? 1 : 128;
    l2l_status st = L2L_STATUS_OK;
    if (f->task != FAMILY_QUADRATIC) {
        if ((st = load_images(f, split, ds, err))) return st;
        /* resolved once: the later tasks of a command share it */
        if (!f->pool_known && !opts_given(f->opts, "pool")) st = default_pool(f, split, ds, err);
        f->pool_known = 1;
    }
    const int n = training ? f->meta_batch : 1;
    l2l_task kids[FAMILY_MAX_META_BATCH]; /* the networks of an MNIST meta-batch share ds */
    int k = 0; /* optimizees made */
    while (!st && k < n)
        if (!(st = optimizee(f, k, ds, &kids[k], err))) k++;
    if (!st && n == 1) ps->task = kids[0];
    else if (!st) st = l2l_task_batch_create(&ps->task, kids, n, err);
    if (st) {
        for (int i = 0; i < k; i++) l2l_task_free(&kids[i]);
        l2l_dataset_free(ds);
    }
    return st;
}

void problem_set_free(problem_set *ps)
{
    l2l_task_free(&ps->task);
    l2l_dataset_free(&ps->data);
}

/* Paper: quadratics without preprocessing, scale 1 (authors' value; the paper gives
 * none); MNIST (and CIFAR, the conv net) log/sign with p = 10 and scale 0.1. Authors'
 * code: p = 5, scale 0.01. */
l2l_lstm_config family_lstm_config(const family *f)
{
    const int mnist = f->task != FAMILY_QUADRATIC;
    l2l_lstm_config c;
    c.layers = 2;
    c.hidden = 20;
    c.preproc = mnist ? L2L_PREPROC_LOGSIGN : L2L_PREPROC_NONE;
    c.p = f->deepmind ? 5.0f : 10.0f;
    c.scale = !mnist ? 1.0f : f->deepmind ? 0.01f : 0.1f;
    return c;
}

l2l_status family_optimizer(const char *name, l2l_opt_spec *spec, l2l_lstm *net, l2l_kv *meta,
                            int *n_meta, l2l_error *err)
{
    const int k = l2l_opt_kind_parse(name);
    spec->net = NULL;
    if (k >= 0) {
        spec->kind = (l2l_opt_kind)k;
        return L2L_STATUS_OK;
    }
    spec->kind = L2L_OPT_KIND_LSTM;
    l2l_status st = l2l_checkpoint_load(name, net, meta, n_meta, err);
    if (!st) spec->net = net;
    return st;
}
