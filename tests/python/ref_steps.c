/* The C side of the Python binding's bit-identity test: runs an optimizer through
 * libl2l directly (no Python) and writes theta after every step.
 *
 *   ref_steps OPTIMIZER LR N STEPS GRADS THETA0 OUT STATE
 *
 * OPTIMIZER is a kind name (with LR) or a checkpoint; GRADS holds STEPS x N float32,
 * THETA0 N float32; OUT receives STEPS x N float32 (theta after each step), STATE the
 * optimizer's final state (l2l_optimizer_state_get). Exits 1 with a message on error. */
#include <stdio.h>
#include <stdlib.h>

#include "l2l.h"

static float *read_floats(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    float *buf = malloc(count * sizeof(float));
    if (!f || !buf || fread(buf, sizeof(float), count, f) != count) {
        fprintf(stderr, "ref_steps: cannot read %zu floats from %s\n", count, path);
        exit(1);
    }
    fclose(f);
    return buf;
}

static void write_floats(const char *path, const float *buf, size_t count)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, sizeof(float), count, f) != count || fclose(f) != 0) {
        fprintf(stderr, "ref_steps: cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: ref_steps OPTIMIZER LR N STEPS GRADS THETA0 OUT STATE\n");
        return 1;
    }
    const size_t n = strtoul(argv[3], NULL, 10), steps = strtoul(argv[4], NULL, 10);
    l2l_error err;
    l2l_lstm net = {0};
    l2l_opt_spec spec = {L2L_OPT_KIND_LSTM, 0, &net};
    int kind = l2l_opt_kind_parse(argv[1]);
    if (kind >= 0) spec = (l2l_opt_spec){(l2l_opt_kind)kind, strtof(argv[2], NULL), NULL};
    else if (l2l_checkpoint_load(argv[1], &net, NULL, NULL, &err)) {
        fprintf(stderr, "ref_steps: %s\n", err.msg);
        return 1;
    }
    l2l_optimizer opt;
    if (l2l_optimizer_create(&opt, &spec, n, &err)) {
        fprintf(stderr, "ref_steps: %s\n", err.msg);
        return 1;
    }
    float *grads = read_floats(argv[5], steps * n), *theta = read_floats(argv[6], n);
    float *out = malloc(steps * n * sizeof(float));
    float *state = malloc(l2l_optimizer_state_size(&opt) * sizeof(float));
    if (!out || !state) return 1;
    for (size_t t = 0; t < steps; t++) {
        l2l_optimizer_step(&opt, grads + t * n, theta);
        for (size_t i = 0; i < n; i++) out[t * n + i] = theta[i];
    }
    l2l_optimizer_state_get(&opt, state);
    write_floats(argv[7], out, steps * n);
    write_floats(argv[8], state, l2l_optimizer_state_size(&opt));
    l2l_optimizer_free(&opt);
    l2l_lstm_free(&net);
    free(grads), free(theta), free(out), free(state);
    return 0;
}
