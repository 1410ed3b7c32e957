/*
 * l2l: learned optimizers ("Learning to learn by gradient descent by gradient
 * descent", Andrychowicz et al., 2016).
 *
 * Conventions:
 * - The library never prints, never exits and keeps no global mutable state.
 * - Functions that can fail because of their input return an l2l_status and, when
 *   the caller passes an l2l_error, a message saying what was expected, what was
 *   found and what to do. Programmer errors (NULL handles, shape mismatches) abort
 *   with file:line.
 * - Every object is a struct the caller owns: `l2l_X_create(&x, ...)` fills it (and
 *   allocates what it points to), `l2l_X_free(&x)` releases that and zeroes it; free
 *   is safe on a zeroed struct and after a failed create.
 * - Hyper-parameters travel in config structs (`l2l_X_config`), never as long
 *   argument lists; an optimizer travels as one value, `l2l_opt_spec`.
 * - Enum values carry their enum's name in capitals.
 *
 * Shape letters: N = optimizee coordinates, H = LSTM hidden size, T = unroll length,
 * D = optimizer inputs per coordinate (1 or 2).
 */
#ifndef L2L_H
#define L2L_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility: what this header declares is exactly
 * what libl2l.so exports. */
#define L2L_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------- errors */

typedef enum {
    L2L_STATUS_OK = 0,
    L2L_STATUS_ARG,     /* an argument or option out of range */
    L2L_STATUS_IO,      /* open/read/write/rename failed */
    L2L_STATUS_FORMAT,  /* a file's contents are not what they must be */
    L2L_STATUS_NOMEM,   /* allocation failed */
    L2L_STATUS_NUMERIC  /* NaN or Inf where a finite number was needed */
} l2l_status;

typedef struct {
    l2l_status status;
    char msg[1024];
} l2l_error;

/* Records status and a printf-style message in err (err may be NULL); returns status.
 * For a task's own create function, so that its errors read like the library's. */
L2L_API l2l_status l2l_error_set(l2l_error *err, l2l_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
L2L_API const char *l2l_status_name(l2l_status status);

/* ------------------------------------------------------------------- rng */

/* xoshiro256**: explicit state, passed to everything that samples. */
typedef struct {
    uint64_t s[4];
} l2l_rng;

/* Seeds from (seed, stream): different streams are independent sequences. */
L2L_API void l2l_rng_seed(l2l_rng *rng, uint64_t seed, uint64_t stream);
L2L_API uint64_t l2l_rng_u64(l2l_rng *rng);
L2L_API double l2l_rng_uniform(l2l_rng *rng);                  /* [0, 1) */
L2L_API uint64_t l2l_rng_below(l2l_rng *rng, uint64_t bound);  /* [0, bound) */
L2L_API double l2l_rng_normal(l2l_rng *rng);                   /* N(0, 1) */
L2L_API double l2l_rng_truncnormal(l2l_rng *rng, double std);  /* N(0, std²) redrawn beyond 2 std */

/* The streams of one seed, so that train, validation and test never share problems. */
typedef enum {
    L2L_STREAM_TRAIN = 1,
    L2L_STREAM_VALID = 2,
    L2L_STREAM_TEST = 3,
    L2L_STREAM_INIT = 4,
    L2L_STREAM_ES = 5 /* evolution-strategies perturbations of phi */
} l2l_stream;

/* ----------------------------------------------------------------- tasks */

/* Parameter groups: a task may split its coordinates into up to L2L_MAX_GROUPS named
 * groups (a conv net's kernels and everything else), and a learned optimizer may have one
 * LSTM per group. A name is 1 to L2L_GROUP_NAME - 1 characters of [a-z0-9_]. */
#define L2L_MAX_GROUPS 4
#define L2L_GROUP_NAME 16

/*
 * An optimizee family: the two callbacks a user writes to meta-train on their own
 * problems. sample() draws a new problem instance and its starting point theta0
 * (N floats); loss_grad() returns the loss at theta and writes the gradient the
 * optimizer sees into grad (N floats). The true gradient of the returned loss is
 * grad_scale * grad (grad_scale = 1 for an ordinary task; a batch of B independent
 * functions whose loss is their mean, each optimized on its own gradient, has
 * grad_scale = 1/B). rng draws minibatches, if any. destroy (may be NULL) frees ctx.
 */
typedef struct l2l_task {
    size_t n;
    float grad_scale;
    void *ctx;
    void (*sample)(void *ctx, l2l_rng *rng, float *theta0);
    double (*loss_grad)(void *ctx, const float *theta, float *grad, l2l_rng *rng);
    void (*destroy)(void *ctx);
    char name[64];
    /* Parameter groups, for optimizers by group (l2l_lstm_config.groups); zero for none.
     * n_groups >= 2 declares that coordinate i belongs to group group[i] in
     * [0, n_groups), named group_names[g] (see l2l_group_names_check); group (N bytes)
     * belongs to ctx. */
    int n_groups;
    const uint8_t *group;
    char group_names[L2L_MAX_GROUPS][L2L_GROUP_NAME];
} l2l_task;

L2L_API void l2l_task_free(l2l_task *task);

/*
 * Random quadratics f(theta) = ||W theta - y||², W dim×dim, y dim. A sample is
 * `batch` independent functions side by side (N = dim·batch); the loss is their mean.
 * Paper (deepmind = 0): W, y ~ N(0, 1), theta0 ~ N(0, 1), each function optimized on
 * its own gradient. deepmind = 1: W, y ~ U[0, 1), theta0 ~ N(0, 0.01²), and the
 * gradient of the batch-mean loss.
 */
typedef struct {
    int dim;
    int batch;
    int deepmind;
} l2l_quadratic_config;

L2L_API l2l_status l2l_task_quadratic_create(l2l_task *task, const l2l_quadratic_config *cfg,
                                             l2l_error *err);

/*
 * B problems side by side (N = the sum of the children's n, child i's parameters after
 * those of children 0..i-1): the loss is their mean and each is optimized on its own
 * gradient. The children may differ in size (a mix of network shapes) but must share
 * grad_scale. Takes ownership of the B children, which are zeroed; l2l_task_free
 * frees them. Children with parameter groups must all declare the same groups, which the
 * batch then declares for the concatenated coordinates (L2L_STATUS_ARG otherwise).
 */
L2L_API l2l_status l2l_task_batch_create(l2l_task *task, l2l_task *children, int B,
                                         l2l_error *err);

/* ------------------------------------------------------------------ data */

/* A labelled image data set: n images of channels×rows×cols bytes, labels in
 * [0, n_classes). An image is channel-major, as CIFAR-10 stores it: all of channel 0's
 * rows, then channel 1's, ...; MNIST's digits have channels = 1. */
typedef struct {
    size_t n;
    int rows, cols;
    int channels;
    int n_classes;
    uint8_t *images; /* (n, channels*rows*cols) */
    uint8_t *labels; /* (n) */
} l2l_dataset;

/* Reads an IDX image file and an IDX label file (each gzipped or not). */
L2L_API l2l_status l2l_idx_load(l2l_dataset *ds, const char *images_path,
                                const char *labels_path, l2l_error *err);
/* Reads DIR/{train,t10k}-images-idx3-ubyte[.gz] and the matching labels; split is
 * "train" or "t10k". */
L2L_API l2l_status l2l_mnist_load(l2l_dataset *ds, const char *dir, const char *split,
                                  l2l_error *err);
L2L_API void l2l_dataset_free(l2l_dataset *ds);

/*
 * CIFAR-10's binary files: records of 1 label byte (0..9) and 3,072 image bytes (32×32
 * red, then green, then blue, each row-major), channels = 3, n_classes = 10. Every file
 * must hold a whole number of records, 1 to 10,000 (the official files hold 10,000);
 * anything else (a truncated record, an empty or oversized file, a label above 9, a path
 * that is not a regular file) is refused with a message naming the file and the problem.
 * load_files reads and concatenates n_files files in order; load reads the standard
 * names in dir: split "train" = data_batch_1.bin .. data_batch_5.bin, "test" =
 * test_batch.bin.
 */
L2L_API l2l_status l2l_cifar10_load_files(l2l_dataset *ds, const char *const *paths, int n_files,
                                          l2l_error *err);
L2L_API l2l_status l2l_cifar10_load(l2l_dataset *ds, const char *dir, const char *split,
                                    l2l_error *err);

/* Keeps only the examples whose label is one of classes[0..k), in their order, and
 * relabels them with the class's position in the list (classes {3, 5}: 3 -> 0, 5 -> 1);
 * n_classes becomes k. Refuses (L2L_STATUS_ARG, ds unchanged) k < 1, a repeated class,
 * a class outside [0, n_classes), and a selection that leaves no example. */
L2L_API l2l_status l2l_dataset_select_classes(l2l_dataset *ds, const int *classes, int k,
                                              l2l_error *err);

/* ------------------------------------------------------------- MLP task */

typedef enum {
    L2L_ACTIVATION_SIGMOID = 0,
    L2L_ACTIVATION_RELU,
    L2L_ACTIVATION_TANH
} l2l_activation;

/*
 * A fully connected network on a data set: (rows*cols) -> hidden x layers -> n_classes,
 * softmax cross-entropy on a fresh minibatch of `batch` examples drawn with replacement
 * for every loss evaluation. Weights and biases ~ N(0, init_std²) (paper: 0.01).
 * pool = 0: minibatches come from the whole data set. pool = K (1..n): every sampled
 * network gets its own K examples, drawn without replacement from the data set when
 * it is sampled, and its minibatches come from those K only. How many distinct
 * examples a network trains on changes how low its loss gets in a given number of
 * steps (100 steps of 128 see 2,000 digits six times over, 8,000 not twice), so a
 * network family is defined by its pool size as much as by its shape.
 * The task keeps a pointer to data, which must outlive it. Its products go through
 * CBLAS: a threaded BLAS may round them differently with its thread count, so for the
 * same bytes from the same seed, run the BLAS on one thread (the l2l tool does).
 */
typedef struct {
    int layers; /* hidden layers */
    int hidden; /* units per hidden layer */
    l2l_activation activation;
    int batch;
    float init_std;
    int pool; /* examples per network, 0 = all of the data set */
} l2l_mlp_config;

L2L_API l2l_status l2l_task_mlp_create(l2l_task *task, const l2l_mlp_config *cfg,
                                       const l2l_dataset *data, l2l_error *err);

/* ------------------------------------------------------- conv-net task */

/*
 * The paper's CIFAR-10 network (section 3.3) on a data set of any image size and channel
 * count: conv_layers blocks of [conv kernel×kernel, `channels` maps, SAME padding, bias ->
 * batch norm -> ReLU -> 2×2 max-pooling], then a fully connected layer of fc units with
 * batch norm and ReLU, then n_classes logits; softmax cross-entropy on a fresh minibatch
 * of `batch` examples (drawn as the MLP draws them, pool included) for every loss
 * evaluation, pixels byte/255. Batch norm uses the minibatch's statistics (biased
 * variance, eps 1e-3) and a learned shift only, no scale. Pooling windows start at 0 and
 * an odd side keeps its last row or column as a window of its own (SAME pooling:
 * 28 -> 14 -> 7 -> 4). All weights and biases ~ N(0, init_std²), shifts 0. The exact
 * definition, theta's layout and each backward's derivation are in src/tasks/conv.c.
 * The convolutions are l2l's own kernels, on the calling thread; the fully connected
 * layers' products go through CBLAS, so for the same bytes from the same seed run the
 * BLAS on one thread (the l2l tool does). One task must not be evaluated by two threads
 * at once. The task declares the paper's two parameter groups: "kernels" (group 0, the
 * convolution kernels) and "other" (group 1, every other parameter).
 */
#define L2L_CONV_MAX_LAYERS 6

typedef struct {
    int conv_layers; /* 3 */
    int channels;    /* feature maps per convolution (16) */
    int kernel;      /* odd kernel side (5) */
    int fc;          /* units of the fully connected layer (32) */
    int batch;       /* minibatch (128) */
    float init_std;  /* 0.01, the authors' code's */
    int pool;        /* examples per network, 0 = all of the data set (as l2l_mlp_config) */
} l2l_conv_config;

/* The paper's network: 3 convolutions of 16 5×5 kernels, fc 32, batch 128, init 0.01,
 * pool 0. */
L2L_API void l2l_conv_config_default(l2l_conv_config *cfg);
L2L_API l2l_status l2l_task_conv_create(l2l_task *task, const l2l_conv_config *cfg,
                                        const l2l_dataset *data, l2l_error *err);

/* One tensor of a conv task's theta: its name (PyTorch's: "conv1.weight", "conv1.bias",
 * "bn1.bias" (the shift), ..., "fc.weight", "fc.bias", "bn_fc.bias", "out.weight",
 * "out.bias"), where it lies in theta, and whether it is a convolution kernel. The kernels
 * come first and are contiguous, so theta splits into the paper's two parameter groups
 * at one offset: [0, kernels) the convolution kernels, [kernels, N) everything else. */
typedef struct {
    char name[24];
    int is_kernel;
    size_t offset, count;
} l2l_conv_tensor;

#define L2L_CONV_MAX_TENSORS (3 * L2L_CONV_MAX_LAYERS + 5)

/* Fills out (room for L2L_CONV_MAX_TENSORS) with the layout of theta for cfg on data's
 * image shape and classes, in theta's order; *n_tensors and *kernels (may be NULL)
 * receive the number of tensors and the number of kernel coordinates. Fails as
 * l2l_task_conv_create does on a bad config or data set. */
L2L_API l2l_status l2l_conv_tensors(const l2l_conv_config *cfg, const l2l_dataset *data,
                                    l2l_conv_tensor *out, int *n_tensors, size_t *kernels,
                                    l2l_error *err);

/* ------------------------------------------------- the learned optimizer */

#define L2L_MAX_LAYERS 4

typedef enum {
    L2L_PREPROC_NONE = 0, /* the raw gradient is the single input (D = 1) */
    L2L_PREPROC_LOGSIGN,  /* (log|x|/p, sgn x) or (-1, e^p x) (D = 2), paper Appendix A */
    /* Not the paper's: logsign's two inputs and a third, x / sqrt(v + L2L_RMS_EPS²), with
     * v the coordinate's mean square gradient, v <- d v + (1 - d) x² (d = L2L_RMS_DECAY),
     * kept with the recurrent state (D = 3). The input the learned optimizers after the
     * paper add (Wichrowska et al. 2017, Metz et al. 2019): it does not depend on the
     * gradient's scale, which logsign reads as -1 below e^-p. */
    L2L_PREPROC_LOGSIGN_RMS
} l2l_preproc;

#define L2L_RMS_DECAY 0.8f
#define L2L_RMS_EPS 1e-15f

/* "none", "logsign", "logsign-rms" (the checkpoints' and the tool's names); "?" if
 * unknown. */
L2L_API const char *l2l_preproc_name(l2l_preproc preproc);
/* A preprocessing from its name; returns -1 if unknown. */
L2L_API int l2l_preproc_parse(const char *name);

typedef struct {
    int layers; /* LSTM layers; 0 = a linear map of the input */
    int hidden; /* H */
    l2l_preproc preproc;
    float p;     /* preprocessing constant (paper 10, authors' code 5) */
    float scale; /* output scale: g = scale * (w_out . h_top + b_out) */
    /* Optimizers by parameter group (the paper's conv nets: one for the kernels, one for
     * the rest): `groups` LSTMs of this architecture, each with its own weights, named
     * group_names[0..groups), the one named like a task's group g running on the
     * coordinates the task puts in group g. 0 or 1: one LSTM shared by every coordinate
     * (names unused). */
    int groups;
    char group_names[L2L_MAX_GROUPS][L2L_GROUP_NAME];
} l2l_lstm_config;

/*
 * Named views into one flat buffer in the layout of l2l_lstm (PyTorch nn.LSTMCell
 * order: per layer weight_ih (4H, in), weight_hh (4H, H), bias_ih (4H), bias_hh (4H),
 * gates i, f, g, o; then out.weight (1, H or D), out.bias (1)).
 */
typedef struct {
    struct {
        float *w_ih; /* (4H, in) */
        float *w_hh; /* (4H, H) */
        float *b_ih; /* (4H) */
        float *b_hh; /* (4H) */
        int in;
    } layer[L2L_MAX_LAYERS];
    float *w_out; /* (1, H) or (1, D) when layers = 0 */
    float *b_out; /* (1) */
} l2l_lstm_view;

/* The learned optimizer's weights phi and their architecture. phi holds the groups'
 * weights one group after the other, each in the layout above. */
typedef struct {
    l2l_lstm_config cfg;  /* groups >= 1 */
    int n_in;             /* D */
    size_t n_params;      /* floats in phi, all groups */
    float *phi;           /* (n_params) */
    l2l_lstm_view w[L2L_MAX_GROUPS]; /* views into phi, w[g] group g's */
} l2l_lstm;

/* One tensor of phi as a checkpoint stores it: name, shape and offset in floats. With
 * groups, every name is prefixed by its group's name and a dot ("kernels.lstm1.bias_ih"). */
#define L2L_MAX_TENSORS (L2L_MAX_GROUPS * (4 * L2L_MAX_LAYERS + 2))
typedef struct {
    char name[48];
    int ndim;
    int64_t shape[2];
    size_t offset;
    size_t count;
} l2l_tensor_desc;

L2L_API l2l_status l2l_lstm_config_check(const l2l_lstm_config *cfg, l2l_error *err);
/* Allocates phi (zeroed). */
L2L_API l2l_status l2l_lstm_create(l2l_lstm *net, const l2l_lstm_config *cfg, l2l_error *err);
L2L_API void l2l_lstm_free(l2l_lstm *net);
/* The authors' initialisation: gate weights and biases ~ truncnormal(1/sqrt(in+H)),
 * forget-gate bias_ih += 1 (their constant forget bias, folded in), bias_hh = 0,
 * out.weight ~ truncnormal(1/sqrt(H)), out.bias = 0; group after group. */
L2L_API void l2l_lstm_init(l2l_lstm *net, l2l_rng *rng);
L2L_API size_t l2l_lstm_param_count(const l2l_lstm_config *cfg);
/* Fills out (room for L2L_MAX_TENSORS) and returns the number of tensors. */
L2L_API int l2l_lstm_tensors(const l2l_lstm_config *cfg, l2l_tensor_desc *out);
/* Checks n (1..L2L_MAX_GROUPS) group names: each valid (see L2L_GROUP_NAME), no two alike. */
L2L_API l2l_status l2l_group_names_check(const char (*names)[L2L_GROUP_NAME], int n, l2l_error *err);
/* Whether net can optimize task's problems: an optimizer with groups needs a task with
 * the same groups, by name and in order (a shared optimizer runs on any task). */
L2L_API l2l_status l2l_lstm_check_task(const l2l_lstm *net, const l2l_task *task, l2l_error *err);

/* ------------------------------------------------------------ optimizers */

typedef enum {
    L2L_OPT_KIND_SGD = 0,
    L2L_OPT_KIND_NAG,     /* Nesterov momentum 0.9 (Torch7/PyTorch form) */
    L2L_OPT_KIND_RMSPROP, /* alpha 0.99, eps 1e-8 (Torch7) */
    L2L_OPT_KIND_ADAM,    /* 0.9, 0.999, 1e-8, bias-corrected (Torch7) */
    /* Not one of the paper's baselines: NAG (momentum 0.9) on a floored gradient
     * g' = g max(1, eps / sqrt(v)), v the coordinate's mean square gradient decaying
     * by 0.8 per step, eps = 5e-3. Large gradients get NAG's steps, tiny ones (the
     * inner layers of a freshly initialised sigmoid MLP) RMSprop's, at lr * eps. */
    L2L_OPT_KIND_NAG_FLOOR,
    L2L_OPT_KIND_LSTM     /* a learned optimizer */
} l2l_opt_kind;

/* An optimizer as one value: its kind, its learning rate (hand-written kinds) or its
 * learned weights (L2L_OPT_KIND_LSTM; net must outlive whatever uses the spec). */
typedef struct {
    l2l_opt_kind kind;
    float lr;
    const l2l_lstm *net;
} l2l_opt_spec;

/* "sgd", "nag", "rmsprop", "adam", "nag-floor", "lstm". */
L2L_API const char *l2l_opt_kind_name(l2l_opt_kind kind);
/* A hand-written kind from its name; returns -1 if unknown (or "lstm"). */
L2L_API int l2l_opt_kind_parse(const char *name);

/* Every optimizer, learned or hand-written, has the same shape: step(grad, theta). */
typedef struct l2l_opt_state l2l_opt_state; /* private: momenta, LSTM state, ... */
typedef struct {
    l2l_opt_spec spec;
    size_t n;
    l2l_opt_state *state;
} l2l_optimizer;

L2L_API l2l_status l2l_optimizer_create(l2l_optimizer *o, const l2l_opt_spec *spec, size_t n,
                                        l2l_error *err);
/* For a learned optimizer with groups: group (n bytes, read here only) gives each
 * coordinate's group, as l2l_task.group does; a value >= the optimizer's groups is
 * refused. Other optimizers ignore group, which may then be NULL. l2l_optimizer_create
 * is this with group NULL, so it refuses an optimizer with groups (L2L_STATUS_ARG). */
L2L_API l2l_status l2l_optimizer_create_groups(l2l_optimizer *o, const l2l_opt_spec *spec,
                                               size_t n, const uint8_t *group, l2l_error *err);
L2L_API void l2l_optimizer_reset(l2l_optimizer *o); /* zero state, for a new optimizee */
/* theta (N) += the optimizer's update from grad (N). */
L2L_API void l2l_optimizer_step(l2l_optimizer *o, const float *grad, float *theta);
L2L_API void l2l_optimizer_free(l2l_optimizer *o);

/*
 * An optimizer's state as one flat float vector, so that a training run can be saved and
 * resumed (the Python binding's state_dict). Layout: [0] the step count t (a whole
 * number below 2^24, exact as a float), then by kind: SGD nothing; NAG and RMSprop the
 * momentum or mean square (N); Adam and nag-floor the first then the second moment
 * (N each); the learned optimizer the LSTM's h then c, each (layers, H, N) with the
 * coordinates contiguous, then with logsign-rms the mean square v (N). Setting it and
 * stepping gives bit for bit the steps the optimizer it was read from would have made.
 * state_set fails (L2L_STATUS_ARG) when n is not state_size or t is not a whole number
 * in [0, 2^24], and (L2L_STATUS_NUMERIC) when a value is NaN or infinite or a mean
 * square negative; the optimizer is unchanged then.
 */
L2L_API size_t l2l_optimizer_state_size(const l2l_optimizer *o);
L2L_API void l2l_optimizer_state_get(const l2l_optimizer *o, float *out);
L2L_API l2l_status l2l_optimizer_state_set(l2l_optimizer *o, const float *in, size_t n,
                                           l2l_error *err);

/* ------------------------------------------------------------ evaluation */

/* `runs` problems drawn from stream (seed, stream), run r from its own sub-seed so
 * that every optimizer sees the same problems and minibatches, `steps` steps each. */
typedef struct {
    int runs;
    int steps;
    uint64_t seed;
    l2l_stream stream;
} l2l_eval_config;

/* loss (runs, steps+1) receives f(theta_t) for t = 0..steps. A run whose loss becomes
 * NaN or Inf keeps +Inf from there on (it diverged). */
L2L_API l2l_status l2l_evaluate(l2l_task *task, const l2l_opt_spec *opt,
                                const l2l_eval_config *cfg, double *loss, l2l_error *err);

/* The log grid of learning rates for tuning: 10^(k/2) for k = -10..3 (1e-5 .. 31.6). */
L2L_API int l2l_tune_grid(float *lrs, int max);
/* The learning rate of the grid with the lowest mean final loss on cfg's problems (the
 * tool uses L2L_STREAM_VALID); best_loss receives that mean. */
L2L_API l2l_status l2l_tune(l2l_task *task, l2l_opt_kind kind, const l2l_eval_config *cfg,
                            float *best_lr, double *best_loss, l2l_error *err);

/* -------------------------------------------------------- meta-training */

/* The meta-loss's summand: f(theta_t) (the paper) or log f(theta_t). */
typedef enum {
    L2L_OBJECTIVE_SUM = 0,
    L2L_OBJECTIVE_LOG
} l2l_objective;

/* What validation scores to pick the best phi. */
typedef enum {
    L2L_SELECTION_MEAN = 0, /* mean f over steps 1..steps: the meta-objective (the paper) */
    L2L_SELECTION_FINAL     /* f at the last step */
} l2l_selection;

/* How a meta-update's gradient is estimated; each is its own module (src/meta/). */
typedef enum {
    /* the paper: backpropagation through truncated unrolls of `unroll` steps, one
     * meta-update per unroll, theta and the LSTM state carried on without gradient */
    L2L_ESTIMATOR_TBPTT = 0,
    /* antithetic evolution strategies over the whole run of `steps` steps (Metz et al.
     * 2019): es.pairs pairs of runs at phi +- es.sigma e, one meta-update per epoch */
    L2L_ESTIMATOR_ES,
    /* imitation of a hand-written teacher (Chen et al. 2020): truncated unrolls whose
     * loss is 1/N sum_t ||update_t - target_t||², target_t the update the teacher
     * would make from the same gradient; a warm start for the estimators above */
    L2L_ESTIMATOR_IMITATE,
    /* persistent evolution strategies (Vicol et al. 2021): es.pairs antithetic pairs of
     * particles carried across the truncations of `unroll` steps, one meta-update per
     * truncation, unbiased for the smoothed whole-run meta-loss; forward passes only */
    L2L_ESTIMATOR_PES
} l2l_estimator;

/*
 * Several processes (docs/DISTRIBUTED.md). Meta-training divides the optimizees of a
 * meta-batch, the particles of ES and PES and the validation problems among `size`
 * processes, and every meta-update combines their contributions in one fixed order, so
 * that every process ends with the same phi and the bytes do not depend on the number
 * of processes. The library knows no MPI: the caller passes these two collective
 * operations, which every process calls in the same order (the l2l tool's, over MPI,
 * are tools/comm_mpi.c). Every process must compute like the others (the same build of
 * l2l on the same kind of machine); meta-training checks that phi agrees after every
 * epoch.
 */
typedef struct l2l_comm {
    int rank, size; /* this process, 0 .. size - 1, of size */
    void *ctx;
    /* In place: buf holds first[size] records of `bytes` bytes each, process r's being
     * records first[r] .. first[r + 1] - 1 (first has size + 1 entries, first[0] = 0,
     * nondecreasing). This process's records are filled in; on return every process's
     * are, on every process (MPI_Allgatherv). */
    l2l_status (*allgather)(void *ctx, void *buf, size_t bytes, const int *first, l2l_error *err);
    /* buf (bytes) from process root to every other (MPI_Bcast). */
    l2l_status (*broadcast)(void *ctx, void *buf, size_t bytes, int root, l2l_error *err);
} l2l_comm;

typedef struct {
    int epochs;       /* fresh optimizees */
    int steps;        /* steps per optimizee (100) */
    int unroll;       /* steps per truncated unroll (20) */
    float lr;         /* meta-Adam learning rate (1e-3) */
    float clip;       /* clip the meta-gradient's 2-norm to this; 0 = off */
    int eval_every;   /* validate every K epochs (0 = never; the last phi is kept) */
    int n_valid;      /* validation problems */
    uint64_t seed;
    l2l_objective objective;
    l2l_selection selection;
    l2l_estimator estimator;
    struct {
        int pairs;
        float sigma;
    } es;                 /* L2L_ESTIMATOR_ES and _PES: antithetic pairs, perturbation scale */
    l2l_opt_spec teacher; /* L2L_ESTIMATOR_IMITATE: a hand-written kind and its lr */
    const l2l_comm *comm; /* the processes that share the work; NULL: this one alone */
} l2l_train_config;

typedef struct {
    int epoch;          /* 1-based */
    double train_loss;  /* mean f over the epoch's steps 1..steps (with ES: and over the
                           runs at phi +- sigma e) */
    double grad_norm;   /* mean meta-gradient norm over the epoch's meta-updates */
    double valid_loss;  /* validation score (see l2l_selection), NaN when not evaluated */
    double best_valid;  /* best so far */
    int best_epoch;
    double seconds;     /* since the start */
    l2l_rng rng;        /* the training stream's state after this epoch */
    const struct l2l_train_state *state; /* the whole state after this epoch, valid
                                            during the callback (l2l_train_state_save) */
} l2l_train_progress;

/* Called after every epoch; a non-zero return stops training (the best phi is kept). */
typedef int (*l2l_train_callback)(const l2l_train_progress *p, void *ctx);

/* The paper's settings: 1000 epochs of 100 steps, unrolls of 20, meta-Adam 1e-3,
 * truncated backpropagation, validation on 20 problems every 50 epochs. */
L2L_API void l2l_train_config_default(l2l_train_config *cfg);
/* Meta-trains net->phi in place on the task; on return phi is the best validated phi.
 * A loss that becomes non-finite, or an epoch's training loss above
 * L2L_DIVERGENCE_FACTOR times the first epoch's (for the first epoch: times the starting
 * phi's validation loss averaged over every step, if validating, whatever the selection),
 * stops it with L2L_STATUS_NUMERIC (diverged);
 * phi is then the best validated phi so far.
 * A batch task (l2l_task_batch_create) is the meta-batch: each of its B problems runs as
 * an optimizee of its own, from a random stream of its own drawn from the training
 * stream, and a meta-update averages their meta-gradients; validation runs the whole
 * batch. With cfg->comm, every process calls this with the same arguments (each with
 * its own task and net) and gets the same status, message and phi; the callback runs on
 * every process after every epoch, and training stops after an epoch in which any
 * process's callback asked it to. */
#define L2L_DIVERGENCE_FACTOR 1e6
L2L_API l2l_status l2l_meta_train(l2l_lstm *net, l2l_task *task, const l2l_train_config *cfg,
                                  l2l_train_callback cb, void *cb_ctx, l2l_error *err);

/*
 * Meta-training's whole state between two epochs: with it and the same config and task,
 * l2l_meta_train_resume goes on to the same bytes as a run that was never stopped.
 * Within a callback, progress->state points at the live state (its buffers are
 * meta-training's own); l2l_train_state_load fills one that the caller owns
 * (l2l_train_state_free it). What an estimator redraws at the start of every epoch (the
 * optimizee, PES's particles) is not part of it; its own random stream is.
 */
typedef struct l2l_train_state {
    l2l_lstm_config arch;
    int epoch;              /* epochs done */
    size_t n_params;        /* P */
    float *phi;             /* (P) */
    float *best;            /* (P) the best validated phi */
    float *adam_m, *adam_v; /* (P) meta-Adam's moments */
    int64_t adam_t;         /* meta-Adam's step count */
    double best_valid;      /* the best validation score, +Inf if none */
    int best_epoch;
    double first_loss;      /* epoch 1's training loss, the divergence test's reference */
    double seconds;         /* of meta-training so far */
    l2l_rng train_rng;      /* the training stream */
    int has_noise;          /* the estimator has a stream of its own (ES, PES): */
    l2l_rng noise;          /* its state */
} l2l_train_state;

/* Continues from `from` (NULL: starts afresh, as l2l_meta_train); net must have from's
 * architecture and cfg the config that made it. */
L2L_API l2l_status l2l_meta_train_resume(l2l_lstm *net, l2l_task *task,
                                         const l2l_train_config *cfg,
                                         const l2l_train_state *from, l2l_train_callback cb,
                                         void *cb_ctx, l2l_error *err);

/* ----------------------------------------------------------- checkpoints */

/* Extra string metadata stored in the checkpoint's __metadata__. */
typedef struct {
    char key[64];
    char value[256];
} l2l_kv;

#define L2L_MAX_META 64

/*
 * Saves phi as a safetensors file with PyTorch nn.LSTMCell names and shapes; the
 * architecture goes into __metadata__ with the extra pairs. Written atomically.
 */
L2L_API l2l_status l2l_checkpoint_save(const char *path, const l2l_lstm *net,
                                       const l2l_kv *meta, int n_meta, l2l_error *err);
/* Loads a checkpoint into a new net (l2l_lstm_free it); meta (room for L2L_MAX_META, may
 * be NULL) receives every __metadata__ pair and *n_meta their number. */
L2L_API l2l_status l2l_checkpoint_load(const char *path, l2l_lstm *net, l2l_kv *meta,
                                       int *n_meta, l2l_error *err);

/* A training state (l2l_train_state) as a safetensors file: tensors phi, best, adam_m,
 * adam_v; the architecture, counters and random streams in __metadata__ with the extra
 * pairs (docs/RELIABILITY.md). Written atomically. */
L2L_API l2l_status l2l_train_state_save(const char *path, const l2l_train_state *s,
                                        const l2l_kv *meta, int n_meta, l2l_error *err);
/* Loads one into s (l2l_train_state_free it); meta as for l2l_checkpoint_load. */
L2L_API l2l_status l2l_train_state_load(const char *path, l2l_train_state *s, l2l_kv *meta,
                                        int *n_meta, l2l_error *err);
L2L_API void l2l_train_state_free(l2l_train_state *s);

#ifdef __cplusplus
}
#endif

#endif
