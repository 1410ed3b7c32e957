/*
 * Using a trained learned optimizer in your own training loop.
 *
 *   build/examples/mnist_lstm [OPTIMIZER.safetensors [MNIST_DIR]]
 *   (defaults: models/mnist.safetensors, data/mnist)
 *
 * The network, its loss and its gradient are this program's own code, not the library's:
 * a 784-20-10 MLP with sigmoid hidden units and softmax cross-entropy, written with plain
 * loops. The library provides only the data reader, the checkpoint loader and the
 * optimizers, through one call: l2l_optimizer_step(&opt, grad, theta). The learned
 * optimizer and Adam (lr 0.03, the rate tuned for this network) train the same initial
 * network on the same minibatches for 200 steps; the minibatch loss is printed every 10
 * steps and the loss and accuracy on the 2,000 test digits at the end.
 *
 * The learned optimizer works coordinatewise, so it takes a theta of any length; how well
 * it does on a network unlike the one it was meta-trained on (more units, more layers,
 * ReLU) is what the paper's generalisation experiments measure (its section 3.2;
 * docs/METHOD.md).
 * Build against an installed libl2l:  cc mnist_lstm.c $(pkg-config --cflags --libs l2l) -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2l.h"

#define D 784    /* inputs: 28x28 pixels */
#define H 20     /* hidden units */
#define C 10     /* classes */
#define B 128    /* minibatch, drawn with replacement */
#define STEPS 200

/* theta, one flat vector: W1 (H, D) row-major, b1 (H), W2 (C, H), b2 (C). */
enum { OFF_W1 = 0, OFF_B1 = OFF_W1 + H * D, OFF_W2 = OFF_B1 + H, OFF_B2 = OFF_W2 + C * H, N = OFF_B2 + C };

/*
 * Mean softmax cross-entropy over the n examples idx[0..n-1] of ds; when grad is not NULL
 * it receives the gradient dloss/dtheta (N floats). *correct (may be NULL) counts the
 * examples whose largest logit is the label.
 *
 * Forward, per example x (D, pixels / 255) with label y:
 *   a = sigmoid(W1 x + b1)        (H)
 *   z = W2 a + b2                 (C) logits
 *   loss = logsumexp(z) - z_y,    logsumexp(z) = m + log sum_k exp(z_k - m), m = max z
 * Backward, each term divided by n because the loss is the mean over examples:
 *   dz_k = softmax(z)_k - [k = y]           d(logsumexp(z) - z_y)/dz_k
 *   dW2 += dz a^T,  db2 += dz               z is linear in W2 and b2
 *   da = W2^T dz                            the same product, differentiated in a
 *   du = da * a (1 - a)                     sigmoid'(u) = a (1 - a) for u = W1 x + b1
 *   dW1 += du x^T,  db1 += du
 */
static double loss_grad(const float *theta, float *grad, const l2l_dataset *ds, const size_t *idx,
                        int n, int *correct)
{
    const float *w1 = theta + OFF_W1, *b1 = theta + OFF_B1, *w2 = theta + OFF_W2, *b2 = theta + OFF_B2;
    if (grad) memset(grad, 0, sizeof(float) * N);
    double loss = 0;
    int right = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *img = ds->images + idx[i] * D;
        int y = ds->labels[idx[i]];
        float x[D], a[H], z[C];
        for (int k = 0; k < D; k++) x[k] = img[k] / 255.0f;
        for (int j = 0; j < H; j++) {
            float u = b1[j];
            for (int k = 0; k < D; k++) u += w1[j * D + k] * x[k];
            a[j] = 1.0f / (1.0f + expf(-u));
        }
        float m = -INFINITY;
        int best = 0;
        for (int c = 0; c < C; c++) {
            z[c] = b2[c];
            for (int j = 0; j < H; j++) z[c] += w2[c * H + j] * a[j];
            if (z[c] > m) m = z[c], best = c;
        }
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp(z[c] - m);
        loss += m + log(sum) - z[y];
        right += best == y;
        if (!grad) continue;

        float dz[C], du[H];
        for (int c = 0; c < C; c++) dz[c] = (float)((exp(z[c] - m) / sum - (c == y)) / n);
        for (int j = 0; j < H; j++) {
            float da = 0;
            for (int c = 0; c < C; c++) {
                grad[OFF_W2 + c * H + j] += dz[c] * a[j];
                da += w2[c * H + j] * dz[c];
            }
            du[j] = da * a[j] * (1.0f - a[j]);
        }
        for (int c = 0; c < C; c++) grad[OFF_B2 + c] += dz[c];
        for (int j = 0; j < H; j++) {
            for (int k = 0; k < D; k++) grad[OFF_W1 + j * D + k] += du[j] * x[k];
            grad[OFF_B1 + j] += du[j];
        }
    }
    if (correct) *correct = right;
    return loss / n;
}

/*
 * Checks loss_grad's gradient before trusting an optimizer with it: along a random unit
 * direction v, the central difference (f(theta + eps v) - f(theta - eps v)) / (2 eps) must
 * match grad . v. Returns the relative error; float rounding alone gives about 1e-3.
 */
static double check_gradient(const float *theta, const l2l_dataset *ds, const size_t *idx, l2l_rng *rng)
{
    const double eps = 1e-2;
    float *g = malloc(sizeof(float) * N), *v = malloc(sizeof(float) * N), *tp = malloc(sizeof(float) * N);
    double rel = INFINITY;
    if (g && v && tp) {
        double norm = 0, dot = 0;
        for (int i = 0; i < N; i++) v[i] = (float)l2l_rng_normal(rng), norm += (double)v[i] * v[i];
        loss_grad(theta, g, ds, idx, B, NULL);
        for (int i = 0; i < N; i++) v[i] = (float)(v[i] / sqrt(norm)), dot += (double)g[i] * v[i];
        for (int i = 0; i < N; i++) tp[i] = (float)(theta[i] + eps * v[i]);
        double up = loss_grad(tp, NULL, ds, idx, B, NULL);
        for (int i = 0; i < N; i++) tp[i] = (float)(theta[i] - eps * v[i]);
        double down = loss_grad(tp, NULL, ds, idx, B, NULL);
        double fd = (up - down) / (2 * eps);
        rel = fabs(fd - dot) / fmax(fabs(fd) + fabs(dot), 1e-12);
    }
    free(g), free(v), free(tp);
    return rel;
}

/* Loss and accuracy on every example of ds. */
static double full_loss(const float *theta, const l2l_dataset *ds, double *accuracy)
{
    size_t *all = malloc(sizeof(size_t) * ds->n);
    *accuracy = NAN;
    if (!all) return NAN;
    for (size_t i = 0; i < ds->n; i++) all[i] = i;
    int correct;
    double loss = loss_grad(theta, NULL, ds, all, (int)ds->n, &correct);
    *accuracy = (double)correct / ds->n;
    free(all);
    return loss;
}

static int check_shape(const l2l_dataset *ds, const char *split)
{
    if (ds->channels * ds->rows * ds->cols == D && ds->n_classes <= C && ds->n > 0) return 0;
    fprintf(stderr, "mnist_lstm: the %s images are %dx%dx%d with %d classes; this network expects "
            "28x28 digits with at most %d classes\n", split, ds->channels, ds->rows, ds->cols,
            ds->n_classes, C);
    return 1;
}

int main(int argc, char **argv)
{
    const char *ckpt = argc > 1 ? argv[1] : "models/mnist.safetensors";
    const char *dir = argc > 2 ? argv[2] : "data/mnist";
    if (argc > 3) {
        fprintf(stderr, "usage: %s [OPTIMIZER.safetensors [MNIST_DIR]]\n", argv[0]);
        return 2;
    }
    l2l_error err = {0};
    l2l_dataset train = {0}, test = {0};
    l2l_lstm net = {0};
    l2l_optimizer lstm = {0}, adam = {0};
    float *theta_lstm = NULL, *theta_adam = NULL, *grad = NULL;
    int rc = 1;

    l2l_kv meta[L2L_MAX_META];
    int n_meta = 0;
    if (l2l_checkpoint_load(ckpt, &net, meta, &n_meta, &err)) goto fail;
    const char *trained_on = "unknown";
    for (int i = 0; i < n_meta; i++)
        if (strcmp(meta[i].key, "task_name") == 0) trained_on = meta[i].value;
    printf("learned optimizer %s: LSTM %d x %d, trained on %s\n", ckpt, net.cfg.layers, net.cfg.hidden,
           trained_on);

    if (l2l_mnist_load(&train, dir, "train", &err) || l2l_mnist_load(&test, dir, "t10k", &err)) goto fail;
    if (check_shape(&train, "training") || check_shape(&test, "test")) goto cleanup;
    printf("network %d-%d-%d sigmoid (%d parameters), minibatch %d of %zu training digits\n", D, H, C, N, B,
           train.n);

    theta_lstm = malloc(sizeof(float) * N);
    theta_adam = malloc(sizeof(float) * N);
    grad = malloc(sizeof(float) * N);
    if (!theta_lstm || !theta_adam || !grad) {
        fprintf(stderr, "mnist_lstm: out of memory\n");
        goto cleanup;
    }
    /* One initial network, weights and biases ~ N(0, 0.01^2) as in the paper, for both. */
    l2l_rng rng;
    l2l_rng_seed(&rng, 42, 0);
    for (int i = 0; i < N; i++) theta_lstm[i] = theta_adam[i] = (float)(0.01 * l2l_rng_normal(&rng));

    /* An optimizer is one value: its kind and either its learned weights or its lr. */
    const l2l_opt_spec lstm_spec = {.kind = L2L_OPT_KIND_LSTM, .net = &net};
    const l2l_opt_spec adam_spec = {.kind = L2L_OPT_KIND_ADAM, .lr = 0.03f};
    if (l2l_optimizer_create(&lstm, &lstm_spec, N, &err) ||
        l2l_optimizer_create(&adam, &adam_spec, N, &err))
        goto fail;

    size_t idx[B];
    for (int i = 0; i < B; i++) idx[i] = (size_t)l2l_rng_below(&rng, train.n);
    l2l_rng check_rng; /* its own stream, so that the check does not change the minibatches */
    l2l_rng_seed(&check_rng, 42, 1);
    double rel = check_gradient(theta_lstm, &train, idx, &check_rng);
    printf("gradient check along a random direction: relative error %.2g\n", rel);
    if (!(rel < 1e-2)) {
        fprintf(stderr, "mnist_lstm: the gradient does not match the loss's finite differences "
                "(relative error %g, expected < 1e-2); fix loss_grad first\n", rel);
        goto cleanup;
    }

    printf("%5s %12s %12s   (minibatch loss before the step)\n", "step", "lstm", "adam");
    for (int t = 0; t <= STEPS; t++) {
        for (int i = 0; i < B; i++) idx[i] = (size_t)l2l_rng_below(&rng, train.n);
        double loss_lstm = loss_grad(theta_lstm, grad, &train, idx, B, NULL);
        if (t < STEPS) l2l_optimizer_step(&lstm, grad, theta_lstm);
        double loss_adam = loss_grad(theta_adam, grad, &train, idx, B, NULL);
        if (t < STEPS) l2l_optimizer_step(&adam, grad, theta_adam);
        if (t % 10 == 0) printf("%5d %12.4f %12.4f\n", t, loss_lstm, loss_adam);
        if (!isfinite(loss_lstm) || !isfinite(loss_adam)) {
            fprintf(stderr, "mnist_lstm: the loss became %g (lstm) / %g (adam) at step %d\n", loss_lstm,
                    loss_adam, t);
            goto cleanup;
        }
    }
    double acc_lstm, acc_adam;
    double test_lstm = full_loss(theta_lstm, &test, &acc_lstm), test_adam = full_loss(theta_adam, &test, &acc_adam);
    printf("after %d steps, on the %zu test digits:\n", STEPS, test.n);
    printf("  lstm: loss %.4f, accuracy %.1f%%\n", test_lstm, 100 * acc_lstm);
    printf("  adam: loss %.4f, accuracy %.1f%%\n", test_adam, 100 * acc_adam);
    rc = 0;
    goto cleanup;

fail:
    fprintf(stderr, "mnist_lstm: %s\n", err.msg);
cleanup:
    l2l_optimizer_free(&lstm), l2l_optimizer_free(&adam);
    l2l_lstm_free(&net);
    l2l_dataset_free(&train), l2l_dataset_free(&test);
    free(theta_lstm), free(theta_adam), free(grad);
    return rc;
}
