/*
 * l2l: learned optimizers ("Learning to learn by gradient descent by gradient
 * descent", Andrychowicz et al., 2016).
 *
 * The library never prints, never exits and keeps no global mutable state.
 * Functions that can fail because of their input return an l2l_status and, when
 * the caller passes an l2l_error, a message saying what was expected, what was
 * found and what to do. Programmer errors (NULL handles, shape mismatches) abort
 * with file:line.
 *
 * Shape letters used throughout: N = optimizee coordinates, H = LSTM hidden
 * size, T = unroll length, D = optimizer inputs per coordinate (1 or 2).
 */
#ifndef L2L_H
#define L2L_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef enum {
    L2L_OK = 0,
    L2L_ERR_ARG,     /* an argument or option out of range */
    L2L_ERR_IO,      /* open/read/write/rename failed */
    L2L_ERR_FORMAT,  /* a file's contents are not what they must be */
    L2L_ERR_NOMEM,   /* allocation failed */
    L2L_ERR_NUMERIC  /* NaN or Inf where a finite number was needed */
} l2l_status;

typedef struct {
    l2l_status status;
    char msg[1024];
} l2l_error;

/* Records status and a printf-style message in err (err may be NULL); returns status. */
l2l_status l2l_error_set(l2l_error *err, l2l_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *l2l_status_name(l2l_status status);

/* ------------------------------------------------------------------- rng */

/* xoshiro256**: explicit state, passed to everything that samples. */
typedef struct {
    uint64_t s[4];
} l2l_rng;

/* Seeds from (seed, stream): different streams are independent sequences. */
void l2l_rng_seed(l2l_rng *rng, uint64_t seed, uint64_t stream);
uint64_t l2l_rng_u64(l2l_rng *rng);
double l2l_rng_uniform(l2l_rng *rng);                  /* [0, 1) */
uint64_t l2l_rng_below(l2l_rng *rng, uint64_t bound);  /* [0, bound) */
double l2l_rng_normal(l2l_rng *rng);                   /* N(0, 1) */
double l2l_rng_truncnormal(l2l_rng *rng, double std);  /* N(0, std²) redrawn beyond 2 std */

/* Stream numbers used by the tools, so train, validation and test never share problems. */
enum {
    L2L_STREAM_TRAIN = 1,
    L2L_STREAM_VALID = 2,
    L2L_STREAM_TEST = 3,
    L2L_STREAM_INIT = 4,
    L2L_STREAM_ES = 5 /* evolution-strategies perturbations of phi */
};

/* ----------------------------------------------------------------- tasks */

/*
 * An optimizee family. sample() draws a new problem instance and its starting
 * point theta0 (N floats); loss_grad() returns the loss at theta and writes the
 * gradient the optimizer sees into grad (N floats). The true gradient of the
 * returned loss is grad_scale * grad (grad_scale = 1 for an ordinary task; a
 * batch of B independent functions whose loss is their mean, each optimized on
 * its own gradient, has grad_scale = 1/B). rng draws minibatches, if any.
 */
typedef struct l2l_task {
    size_t n;
    float grad_scale;
    void *ctx;
    void (*sample)(void *ctx, l2l_rng *rng, float *theta0);
    double (*loss_grad)(void *ctx, const float *theta, float *grad, l2l_rng *rng);
    void (*destroy)(void *ctx);
    char name[64];
    /* Optional (0 / NULL for a task of one piece): a task made of n_parts problems (a
     * batch), part i owning coordinates [part_off[i], part_off[i + 1]) and its loss the
     * mean of theirs. part_losses writes (n_parts) the parts' losses at the last
     * loss_grad call, for a meta-loss that takes each part's log. */
    int n_parts;
    const size_t *part_off; /* (n_parts + 1) */
    void (*part_losses)(void *ctx, double *out);
} l2l_task;

void l2l_task_free(l2l_task *task);

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

l2l_status l2l_task_quadratic_create(l2l_task *task, const l2l_quadratic_config *cfg,
                                     l2l_error *err);

/*
 * B problems side by side (N = the sum of the children's n, child i's parameters after
 * those of children 0..i-1): the loss is their mean and each is optimized on its own
 * gradient. The children may differ in size (a mix of network shapes) but must share
 * grad_scale. The children are the batch's parts (l2l_task.n_parts = B). Takes ownership
 * of the B children, which are zeroed; l2l_task_free frees them.
 */
l2l_status l2l_task_batch_create(l2l_task *task, l2l_task *children, int B, l2l_error *err);

/* ------------------------------------------------------------------ data */

/* A labelled image data set: n images of rows×cols bytes, labels in [0, n_classes). */
typedef struct {
    size_t n;
    int rows, cols;
    int n_classes;
    uint8_t *images; /* (n, rows*cols) */
    uint8_t *labels; /* (n) */
} l2l_dataset;

/* Reads an IDX image file and an IDX label file (each gzipped or not). */
l2l_status l2l_idx_load(l2l_dataset *ds, const char *images_path, const char *labels_path,
                        l2l_error *err);
/* Reads DIR/{train,t10k}-images-idx3-ubyte[.gz] and the matching labels; split is "train" or "t10k". */
l2l_status l2l_mnist_load(l2l_dataset *ds, const char *dir, const char *split, l2l_error *err);
void l2l_dataset_free(l2l_dataset *ds);

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

l2l_status l2l_task_mlp_create(l2l_task *task, const l2l_mlp_config *cfg,
                               const l2l_dataset *data, l2l_error *err);

/* ------------------------------------------------- the learned optimizer */

#define L2L_MAX_LAYERS 4

typedef enum {
    L2L_PREPROC_NONE = 0, /* the raw gradient is the single input (D = 1) */
    L2L_PREPROC_LOGSIGN   /* (log|x|/p, sgn x) or (-1, e^p x) (D = 2), paper Appendix A */
} l2l_preproc;

typedef struct {
    int layers; /* LSTM layers; 0 = a linear map of the input */
    int hidden; /* H */
    l2l_preproc preproc;
    float p;     /* preprocessing constant (paper 10, authors' code 5) */
    float scale; /* output scale: g = scale * (w_out . h_top + b_out) */
} l2l_lstm_config;

/*
 * Named views into one flat buffer in the layout of l2l_lstm (PyTorch nn.LSTMCell
 * order: per layer weight_ih (4H, in), weight_hh (4H, H), bias_ih (4H), bias_hh (4H),
 * gates i, f, g, o; then out.weight (1, H or D), out.bias (1)).
 * The same view maps phi, its gradient and the meta-Adam moments.
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

typedef struct {
    l2l_lstm_config cfg;
    int n_in;        /* D */
    size_t n_params; /* floats in phi */
    float *phi;      /* (n_params) */
    l2l_lstm_view w; /* views into phi */
} l2l_lstm;

/* One tensor of phi, for checkpoints: name, shape and offset in floats. */
typedef struct {
    char name[32];
    int ndim;
    int64_t shape[2];
    size_t offset;
    size_t count;
} l2l_tensor_desc;

l2l_status l2l_lstm_config_check(const l2l_lstm_config *cfg, l2l_error *err);
/* Allocates phi (zeroed). */
l2l_status l2l_lstm_create(l2l_lstm *net, const l2l_lstm_config *cfg, l2l_error *err);
void l2l_lstm_free(l2l_lstm *net);
/* The authors' initialisation: gate weights and biases ~ truncnormal(1/sqrt(in+H)),
 * forget-gate bias_ih += 1 (their constant forget bias, folded in), bias_hh = 0,
 * out.weight ~ truncnormal(1/sqrt(H)), out.bias = 0. */
void l2l_lstm_init(l2l_lstm *net, l2l_rng *rng);
size_t l2l_lstm_param_count(const l2l_lstm_config *cfg);
void l2l_lstm_view_of(const l2l_lstm_config *cfg, float *buf, l2l_lstm_view *v);
/* Fills out (room for 4*L2L_MAX_LAYERS + 2) and returns the number of tensors. */
int l2l_lstm_tensors(const l2l_lstm_config *cfg, l2l_tensor_desc *out);
/* The inputs per coordinate: 1 without preprocessing, 2 with log/sign. */
int l2l_lstm_n_in(const l2l_lstm_config *cfg);
/* x (D, N), feature-major, from the gradient g (N). */
void l2l_preprocess(const l2l_lstm_config *cfg, size_t n, const float *g, float *x);

/* Recurrent state for N coordinates: h and c for every layer, zero for a new optimizee.
 * Feature-major (coordinates contiguous), so coordinates fill SIMD lanes. */
typedef struct {
    size_t n;
    int layers, hidden;
    float *h;       /* (layers, H, N) */
    float *c;       /* (layers, H, N) */
    float *x;       /* (D, N) preprocessed inputs of the current step */
    float *scratch; /* (n_scratch, 4H, tile) gate scratch, one slice per thread */
    int n_scratch;
} l2l_lstm_state;

l2l_status l2l_lstm_state_create(l2l_lstm_state *s, const l2l_lstm *net, size_t n,
                                 l2l_error *err);
void l2l_lstm_state_zero(l2l_lstm_state *s);
void l2l_lstm_state_free(l2l_lstm_state *s);

/* Inference: one step over N coordinates; reads grad, updates state, writes the update
 * g (N) to apply as theta += g. No caches are kept. */
void l2l_lstm_step(const l2l_lstm *net, l2l_lstm_state *state, const float *grad, float *update);

/*
 * Backpropagation through one unroll of T steps (training). Runs the learned optimizer
 * on a task from theta (N) and state, both carried on in place, and accumulates into
 * dphi (n_params) the gradient of the meta-loss L = sum_{t=1..T} w_t f(theta_t) with
 * second derivatives dropped (d grad_t / d phi = 0). weights may be NULL (all ones).
 * losses (T+1, may be NULL) receives f(theta_0..theta_T).
 */
typedef struct l2l_unroll l2l_unroll;

l2l_status l2l_unroll_create(l2l_unroll **u, const l2l_lstm *net, size_t n, int T,
                             l2l_error *err);
void l2l_unroll_free(l2l_unroll *u);
/* mode 1: meta-loss sum_t w_t log f(theta_t) instead of sum_t w_t f(theta_t) (f must be
 * > 0): every step's relative progress counts alike, so late steps, where f is small,
 * are not drowned by the first ones. mode 2: sum_t w_t mean_i log f_i(theta_t) over the
 * task's parts (l2l_task.n_parts; mode 1 for a task without parts), so that in a batch
 * of different networks the one with the highest loss does not drown the others.
 * 0 (the paper) by default. */
void l2l_unroll_set_log_loss(l2l_unroll *u, int mode);
/* Imitation of a teacher (Chen et al. 2020): with a teacher set (fn not NULL, lambda > 0)
 * the meta-loss gains lambda / N sum_t ||update_t - target_t||², where the teacher writes
 * target_t (N), the update it would make, from the gradient at theta_t that the learned
 * optimizer sees (the teacher keeps its own state, e.g. momentum; the caller resets it
 * for a new optimizee). Targets are constants to the meta-gradient, like the gradients.
 * fn = NULL turns it off. */
typedef void (*l2l_teacher_fn)(void *ctx, const float *grad, float *target);
l2l_status l2l_unroll_set_teacher(l2l_unroll *u, l2l_teacher_fn fn, void *ctx, float lambda,
                                  l2l_error *err);
l2l_status l2l_unroll_run(l2l_unroll *u, const l2l_lstm *net, l2l_task *task, float *theta,
                          l2l_lstm_state *state, const float *weights, l2l_rng *rng,
                          float *dphi, double *losses, l2l_error *err);

/* ------------------------------------------------------------ optimizers */

typedef enum {
    L2L_OPT_SGD = 0,
    L2L_OPT_NAG,     /* Nesterov momentum 0.9 (Torch7/PyTorch form) */
    L2L_OPT_RMSPROP, /* alpha 0.99, eps 1e-8 (Torch7) */
    L2L_OPT_ADAM,    /* 0.9, 0.999, 1e-8, bias-corrected (Torch7) */
    /* Not one of the paper's baselines: NAG on a floored gradient (l2l, a teacher for
     * --imitate). v, the mean square of a coordinate's gradients, decays by
     * L2L_FLOOR_ALPHA per step; where its root sqrt(v) is below eps = L2L_FLOOR_EPS the
     * gradient is scaled up by eps / sqrt(v), g' = g max(1, eps / sqrt(v)); then NAG
     * (momentum 0.9) on g'. Large gradients get NAG's steps, tiny ones (the inner
     * layers of a freshly initialised sigmoid MLP) RMSprop's, at lr * eps. */
    L2L_OPT_NAG_FLOOR,
    L2L_OPT_LSTM     /* a learned optimizer */
} l2l_opt_kind;

#define L2L_FLOOR_ALPHA 0.8f
#define L2L_FLOOR_EPS 5e-3f

/* Every optimizer, learned or hand-written, has the same shape: step(grad, theta). */
typedef struct {
    l2l_opt_kind kind;
    size_t n;
    float lr;
    long t;    /* steps taken */
    float *m;  /* (N) momentum / first moment / mean square */
    float *v;  /* (N) second moment (Adam) */
    const l2l_lstm *net;
    l2l_lstm_state state;
    float *update; /* (N) */
} l2l_optimizer;

const char *l2l_opt_name(l2l_opt_kind kind);
/* "sgd", "nag", "rmsprop", "adam", "nag-floor" -> kind; returns -1 if unknown. */
int l2l_opt_parse(const char *name);
/* net is used (and must outlive the optimizer) only for L2L_OPT_LSTM; lr is ignored there. */
l2l_status l2l_optimizer_create(l2l_optimizer *o, l2l_opt_kind kind, size_t n, float lr,
                                const l2l_lstm *net, l2l_error *err);
void l2l_optimizer_reset(l2l_optimizer *o); /* zero state, for a new optimizee */
void l2l_optimizer_step(l2l_optimizer *o, const float *grad, float *theta);
void l2l_optimizer_free(l2l_optimizer *o);

/* ------------------------------------------------------------ evaluation */

/*
 * Runs an optimizer on `runs` problems drawn from stream (seed, stream), run r from its
 * own sub-seed so every optimizer sees the same problems, for `steps` steps.
 * loss (runs, steps+1) receives f(theta_t) for t = 0..steps. A run whose loss becomes
 * NaN or Inf keeps +Inf from there on (it diverged).
 */
l2l_status l2l_evaluate(l2l_task *task, l2l_opt_kind kind, float lr, const l2l_lstm *net,
                        int runs, int steps, uint64_t seed, uint64_t stream, double *loss,
                        l2l_error *err);

/* The log grid of learning rates for tuning: 10^(k/2) for k = -10..3 (1e-5 .. 31.6). */
int l2l_tune_grid(float *lrs, int max);
/* Chooses the learning rate with the lowest mean final loss on `runs` validation problems. */
l2l_status l2l_tune(l2l_task *task, l2l_opt_kind kind, int runs, int steps, uint64_t seed,
                    float *best_lr, double *best_loss, l2l_error *err);

/* -------------------------------------------------------- meta-training */

/* Weights w_t of the meta-loss sum_t w_t f(theta_t) over an optimizee's steps. */
typedef enum {
    L2L_WEIGHT_UNIFORM = 0, /* w_t = 1 (the paper) */
    L2L_WEIGHT_LINEAR,      /* w_t proportional to t, mean 1: favours the final loss */
    L2L_WEIGHT_LAST         /* w_t = 5 on the last fifth of the steps, 0 before: mean 1,
                               the final loss only, averaged over steps to be less noisy */
} l2l_weighting;

/* The meta-loss's summand: f(theta_t) (the paper) or log f(theta_t). */
typedef enum {
    L2L_OBJECTIVE_SUM = 0,
    L2L_OBJECTIVE_LOG,
    L2L_OBJECTIVE_LOG_EACH /* mean over a batch's problems of log f_i (l2l_task.n_parts) */
} l2l_objective;

/* What validation scores to pick the best phi. */
typedef enum {
    L2L_SELECT_MEAN = 0, /* mean f over steps 1..steps: the meta-objective (the paper) */
    L2L_SELECT_FINAL     /* f at the last step */
} l2l_selection;

typedef struct {
    int epochs;       /* fresh optimizees */
    int steps;        /* steps per optimizee (100) */
    int unroll;       /* steps per truncated unroll (20) */
    float lr;         /* meta-Adam learning rate */
    float lr_half_life; /* epochs over which the meta learning rate halves; 0 = constant */
    float clip;       /* clip the meta-gradient's 2-norm to this; 0 = off */
    int eval_every;   /* validate every K epochs (0 = never; the last phi is kept) */
    int n_valid;      /* validation problems */
    uint64_t seed;
    l2l_weighting weighting;
    l2l_selection selection;
    l2l_objective objective;
    float rollback;   /* > 1: when a validation score exceeds rollback x the best so far,
                         phi returns to the best phi and meta-Adam restarts; 0 = off */
    float average;    /* d in (0, 1): validate, keep and return the moving average
                         a <- d a + (1 - d) phi over meta-updates; 0 = off */
    float rescale;    /* L > 0: train (not validate) on f(c . theta), c_i = exp(U[-L, L])
                         drawn afresh for every optimizee (Lv et al. 2017); 0 = off */
    int imitate_epochs; /* K > 0: for the first K epochs the meta-loss is the imitation of
                           a hand-written teacher (l2l_unroll_set_teacher, weight 1)
                           instead of the objective: a warm start; 0 = off */
    l2l_opt_kind teacher;    /* L2L_OPT_SGD .. L2L_OPT_ADAM */
    float teacher_lr;
    float imitate_weight; /* W > 0: after the warm start (or from the first epoch when
                             imitate_epochs = 0) the meta-loss is the objective plus W x
                             the imitation term, which keeps phi near the teacher; 0 = off */
    int es_pairs;     /* K > 0: one meta-update per epoch from the antithetic evolution-
                         strategies estimate over the whole run (K pairs of runs at
                         phi +- es_sigma e, the same minibatches), in place of truncated
                         backpropagation (Metz et al. 2019); 0 = off */
    float es_sigma;
} l2l_train_config;

typedef struct {
    int epoch;          /* 1-based */
    double train_loss;  /* mean f over the epoch's steps 1..steps (with ES: and over the
                           runs at phi +- sigma e) */
    double grad_norm;   /* mean meta-gradient norm over the epoch's unrolls */
    double valid_loss;  /* validation score (see l2l_selection), NaN when not evaluated */
    double best_valid;  /* best so far */
    int best_epoch;
    int rollbacks;      /* returns to the best phi so far (see rollback) */
    double seconds;     /* since the start */
    l2l_rng rng;        /* the training stream's state after this epoch */
} l2l_train_progress;

/* Called after every epoch; a non-zero return stops training (the best phi is kept). */
typedef int (*l2l_train_callback)(const l2l_train_progress *p, void *ctx);

void l2l_train_config_default(l2l_train_config *cfg);
/* Meta-trains net->phi in place on the task; on return phi is the best validated phi. */
l2l_status l2l_meta_train(l2l_lstm *net, l2l_task *task, const l2l_train_config *cfg,
                          l2l_train_callback cb, void *cb_ctx, l2l_error *err);

/* One bias-corrected Adam step on x (n) with gradient g, moments m, v, step count t >= 1. */
void l2l_adam_update(size_t n, float *x, const float *g, float *m, float *v, long t, float lr,
                     float beta1, float beta2, float eps);

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
l2l_status l2l_checkpoint_save(const char *path, const l2l_lstm *net, const l2l_kv *meta,
                               int n_meta, l2l_error *err);
/* Loads a checkpoint into a new net (l2l_lstm_free it); meta (room for L2L_MAX_META, may
 * be NULL) receives every __metadata__ pair and *n_meta their number. */
l2l_status l2l_checkpoint_load(const char *path, l2l_lstm *net, l2l_kv *meta, int *n_meta,
                               l2l_error *err);

#ifdef __cplusplus
}
#endif

#endif
