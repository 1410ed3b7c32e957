/* The tool's domain policy in one place: which optimizee family the task options name
 * (random quadratics, MLPs or the paper's conv nets on an image set, the sizes of their
 * batches and example pools, the classes kept, the steps and seed of a run), the learned
 * optimizer's settings for each family and preset, and what --optimizer names. */
#ifndef L2L_TOOLS_FAMILY_H
#define L2L_TOOLS_FAMILY_H

#include <stdint.h>

#include "l2l.h"
#include "opts.h"

typedef enum {
    FAMILY_QUADRATIC = 0,
    FAMILY_MNIST, /* an MLP on --data's images */
    FAMILY_CONV   /* the paper's conv net on --data's images */
} family_kind;

enum { FAMILY_MAX_MIX = 16, FAMILY_MAX_META_BATCH = 1024, FAMILY_MAX_CLASSES = 256 };

/* The task options and, once family_task has resolved them, the values they imply. */
typedef struct {
    int task;         /* family_kind */
    int deepmind;     /* --preset: 0 the paper's settings, 1 the authors' code's */
    const char *data; /* the image directory: MNIST's IDX files or CIFAR-10's batches */
    int dim;          /* quadratic dimension */
    int batch;        /* functions per quadratic sample, or MNIST minibatch */
    int hidden, layers, activation; /* the MNIST network (activation: l2l_activation) */
    int pool;         /* examples per network (mnist, conv), 0 = the whole split */
    float init_std;   /* --init-std: the MNIST network's initial weights' std */
    int n_classes, classes[FAMILY_MAX_CLASSES]; /* --classes (mnist, conv); 0 = all */
    int meta_batch;   /* meta-training: optimizees per meta-update */
    int n_mix, mix_hidden[FAMILY_MAX_MIX], mix_layers[FAMILY_MAX_MIX]; /* --mix shapes */
    int pool_known;   /* pool is resolved (given, or sized from the test split) */
    int steps;        /* steps per run */
    uint64_t seed;    /* of every stream the runs draw from */
    int threads;      /* OpenMP threads, 0 = OpenMP's default */
    /* The options, pointing into this struct (so a family is never copied): opts and
     * run_opts for every command that builds a task, train_opts for meta-training's. */
    opt_desc opts[12];
    opt_desc run_opts[4];
    opt_desc train_opts[3];
} family;

/* A task and the digits it points into (none for quadratics). */
typedef struct {
    l2l_task task;
    l2l_dataset data;
} problem_set;

/* The hand-written optimizers, by name. */
extern const opt_choice family_baselines[];

/* The defaults (the library's meta-training settings for steps and seed) and the option
 * tables. */
void family_init(family *f);
/* Parses a command that runs an optimizer on the family's problems: the task options,
 * the command's own under `title`, then steps, seed and threads; sets the threads up. */
tool_result family_parse(family *f, const opt_command *cmd, const char *title, opt_desc *own,
                         int argc, char **argv);
/* After parsing, for meta-training: --mix needs MNIST, --classes an image task, and the
 * meta-batch rises to one network of each shape. Returns TOOL_OK or TOOL_USAGE (message
 * printed). */
tool_result family_check(family *f, const char *cmd);
/* The name of the task option's value: "quadratic", "mnist" or "conv". */
const char *family_task_name(const family *f);

/*
 * Builds the task the options name on the image set's split ("train", or "t10k" for the
 * test split: MNIST's t10k files, CIFAR-10's test_batch.bin), the format told from the
 * files in --data, and --classes kept. training says whether it is for meta-training:
 * then its batch default is the meta-training one and it is a meta-batch of
 * f->meta_batch optimizees. Resolves f->batch and f->pool in place.
 */
l2l_status family_problems(family *f, const char *split, int training, problem_set *ps,
                           l2l_error *err);
void problem_set_free(problem_set *ps);

/* The learned optimizer's settings for the family and preset: 2 layers of 20; the image
 * tasks (mnist, conv) the paper's MNIST preprocessing and scale. */
l2l_lstm_config family_lstm_config(const family *f);

/* --optimizer NAME|FILE: a hand-written kind (spec->lr is left as it is) or a checkpoint
 * loaded into net (l2l_lstm_free it), its metadata into meta (may be NULL). */
l2l_status family_optimizer(const char *name, l2l_opt_spec *spec, l2l_lstm *net, l2l_kv *meta,
                            int *n_meta, l2l_error *err);

#endif
