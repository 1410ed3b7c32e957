/* Checkpoints of the learned optimizer: phi as a safetensors file with PyTorch
 * nn.LSTMCell names and shapes (the tensor list of l2l_lstm_tensors), the architecture
 * in __metadata__ so that a file alone rebuilds the net. docs/FORMAT.md describes the
 * format for readers outside l2l. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"
#include "lstm/lstm.h"
#include "util/util.h"

#define FORMAT_NAME "l2l-lstm-optimizer"
#define FORMAT_VERSION "1"
#define MAX_TENSORS (4 * L2L_MAX_LAYERS + 2)

/* Keys written by l2l_checkpoint_save itself; a caller may not use them. */
static const char *const reserved_keys[] = {
    "format", "format_version", "layers", "hidden", "preproc", "p", "scale", "gate_order", "n_in",
};
#define N_RESERVED ((int)(sizeof reserved_keys / sizeof reserved_keys[0]))

static int is_reserved(const char *key)
{
    for (int i = 0; i < N_RESERVED; i++)
        if (strcmp(key, reserved_keys[i]) == 0) return 1;
    return 0;
}

/* The first non-finite element of n floats, or -1. */
static long first_non_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

static void desc_to_shape(const l2l_tensor_desc *d, int64_t *shape)
{
    for (int k = 0; k < d->ndim; k++) shape[k] = d->shape[k];
}

l2l_status l2l_checkpoint_save(const char *path, const l2l_lstm *net, const l2l_kv *meta,
                               int n_meta, l2l_error *err)
{
    L2L_ASSERT(path && net && net->phi && n_meta >= 0 && (meta || n_meta == 0));
    if (n_meta > L2L_MAX_META - N_RESERVED)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "cannot save %s: %d extra metadata pairs, at most %d fit next to "
                             "the %d architecture keys",
                             path, n_meta, L2L_MAX_META - N_RESERVED, N_RESERVED);

    l2l_tensor_desc descs[MAX_TENSORS];
    l2l_st_write_tensor tensors[MAX_TENSORS];
    int nt = l2l_lstm_tensors(&net->cfg, descs);
    L2L_ASSERT(nt <= MAX_TENSORS);
    for (int i = 0; i < nt; i++) {
        L2L_ASSERT(descs[i].offset + descs[i].count <= net->n_params);
        const float *data = net->phi + descs[i].offset;
        long bad = first_non_finite(data, descs[i].count);
        if (bad >= 0)
            return l2l_error_set(err, L2L_STATUS_NUMERIC,
                                 "cannot save %s: tensor '%s' element %ld is %g; a checkpoint "
                                 "holds finite weights only (did training diverge?)",
                                 path, descs[i].name, bad, (double)data[bad]);
        memset(&tensors[i], 0, sizeof tensors[i]);
        tensors[i].name = descs[i].name;
        tensors[i].ndim = descs[i].ndim;
        desc_to_shape(&descs[i], tensors[i].shape);
        tensors[i].data = data;
    }

    /* Floats with %.9g: enough digits that strtof gives back the same float. */
    char layers[16], hidden[16], p[32], scale[32], n_in[16];
    snprintf(layers, sizeof layers, "%d", net->cfg.layers);
    snprintf(hidden, sizeof hidden, "%d", net->cfg.hidden);
    snprintf(p, sizeof p, "%.9g", (double)net->cfg.p);
    snprintf(scale, sizeof scale, "%.9g", (double)net->cfg.scale);
    snprintf(n_in, sizeof n_in, "%d", net->n_in);
    l2l_st_kv kv[L2L_MAX_META];
    int n = 0;
    kv[n++] = (l2l_st_kv){"format", FORMAT_NAME};
    kv[n++] = (l2l_st_kv){"format_version", FORMAT_VERSION};
    kv[n++] = (l2l_st_kv){"layers", layers};
    kv[n++] = (l2l_st_kv){"hidden", hidden};
    kv[n++] = (l2l_st_kv){"preproc", net->cfg.preproc == L2L_PREPROC_LOGSIGN ? "logsign" : "none"};
    kv[n++] = (l2l_st_kv){"p", p};
    kv[n++] = (l2l_st_kv){"scale", scale};
    kv[n++] = (l2l_st_kv){"gate_order", "ifgo"};
    kv[n++] = (l2l_st_kv){"n_in", n_in};
    L2L_ASSERT(n == N_RESERVED);

    for (int i = 0; i < n_meta; i++) {
        const char *key = meta[i].key, *value = meta[i].value;
        if (!memchr(key, '\0', sizeof meta[i].key) || !memchr(value, '\0', sizeof meta[i].value))
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "cannot save %s: metadata pair %d is not NUL-terminated within "
                                 "its %zu-byte key / %zu-byte value",
                                 path, i, sizeof meta[i].key, sizeof meta[i].value);
        if (!key[0])
            return l2l_error_set(err, L2L_STATUS_ARG, "cannot save %s: metadata pair %d has an empty key",
                                 path, i);
        if (is_reserved(key))
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "cannot save %s: metadata key '%s' is reserved for the "
                                 "architecture; choose another name",
                                 path, key);
        for (int j = 0; j < i; j++)
            if (strcmp(meta[j].key, key) == 0)
                return l2l_error_set(err, L2L_STATUS_ARG,
                                     "cannot save %s: metadata key '%s' given twice (pairs %d and %d)",
                                     path, key, j, i);
        kv[n++] = (l2l_st_kv){key, value};
    }
    return l2l_st_save(path, tensors, nt, kv, n, err);
}

/* ------------------------------------------------------------------ loading */

static l2l_status meta_require(const l2l_st_file *f, const char *key, const char **value,
                               l2l_error *err)
{
    *value = l2l_st_meta_get(f, key);
    if (!*value)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata key '%s' is missing; expected a checkpoint written by "
                             "l2l_checkpoint_save (see docs/FORMAT.md)",
                             f->path, key);
    return L2L_STATUS_OK;
}

static l2l_status meta_int(const l2l_st_file *f, const char *key, int lo, int hi, int *out,
                           l2l_error *err)
{
    const char *s;
    l2l_status st = meta_require(f, key, &s, err);
    if (st) return st;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || errno || v < lo || v > hi)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata '%s' must be an integer in [%d, %d], found '%.64s'",
                             f->path, key, lo, hi, s);
    *out = (int)v;
    return L2L_STATUS_OK;
}

static l2l_status meta_float(const l2l_st_file *f, const char *key, float *out, l2l_error *err)
{
    const char *s;
    l2l_status st = meta_require(f, key, &s, err);
    if (st) return st;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (!s[0] || *end || !isfinite(v))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata '%s' must be a finite number, found '%.64s'", f->path,
                             key, s);
    *out = v;
    return L2L_STATUS_OK;
}

static l2l_status meta_expect(const l2l_st_file *f, const char *key, const char *want,
                              const char *what, l2l_error *err)
{
    const char *s;
    l2l_status st = meta_require(f, key, &s, err);
    if (st) return st;
    if (strcmp(s, want) != 0)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: metadata '%s' is '%.64s', expected '%s'%s",
                             f->path, key, s, want, what);
    return L2L_STATUS_OK;
}

static l2l_status read_config(const l2l_st_file *f, l2l_lstm_config *cfg, int *n_in,
                              l2l_error *err)
{
    l2l_status st;
    const char *s;
    memset(cfg, 0, sizeof *cfg);
    if (!l2l_st_meta_get(f, "format"))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: not an l2l checkpoint: no metadata 'format' (expected '%s'); "
                             "it may be a safetensors file of something else",
                             f->path, FORMAT_NAME);
    if ((st = meta_expect(f, "format", FORMAT_NAME, " (not an l2l LSTM optimizer checkpoint)", err)) ||
        (st = meta_expect(f, "format_version", FORMAT_VERSION,
                          " (written by another version of l2l; this build reads version 1)", err)) ||
        (st = meta_expect(f, "gate_order", "ifgo", " (PyTorch gate order i, f, g, o)", err)) ||
        (st = meta_int(f, "layers", 0, L2L_MAX_LAYERS, &cfg->layers, err)) ||
        (st = meta_int(f, "hidden", 0, 1 << 20, &cfg->hidden, err)) ||
        (st = meta_float(f, "p", &cfg->p, err)) ||
        (st = meta_float(f, "scale", &cfg->scale, err)) ||
        (st = meta_int(f, "n_in", 1, 2, n_in, err)) ||
        (st = meta_require(f, "preproc", &s, err)))
        return st;
    if (strcmp(s, "none") == 0)
        cfg->preproc = L2L_PREPROC_NONE;
    else if (strcmp(s, "logsign") == 0)
        cfg->preproc = L2L_PREPROC_LOGSIGN;
    else
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata 'preproc' must be 'none' or 'logsign', found '%.64s'",
                             f->path, s);
    if (*n_in != l2l_lstm_n_in(cfg))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata 'n_in' is %d but preproc '%s' gives %d inputs",
                             f->path, *n_in, s, l2l_lstm_n_in(cfg));
    return L2L_STATUS_OK;
}

static l2l_status read_weights(const l2l_st_file *f, l2l_lstm *net, l2l_error *err)
{
    l2l_tensor_desc descs[MAX_TENSORS];
    int nt = l2l_lstm_tensors(&net->cfg, descs);
    L2L_ASSERT(nt <= MAX_TENSORS);
    for (int i = 0; i < nt; i++) {
        int64_t shape[L2L_ST_MAX_DIMS];
        desc_to_shape(&descs[i], shape);
        float *data = net->phi + descs[i].offset;
        l2l_status st = l2l_st_get_f32(f, descs[i].name, descs[i].ndim, shape, data, err);
        if (st) return st;
        long bad = first_non_finite(data, descs[i].count);
        if (bad >= 0)
            return l2l_error_set(err, L2L_STATUS_NUMERIC,
                                 "%s: tensor '%s' element %ld is %g; expected finite weights "
                                 "(the checkpoint is corrupt or training diverged)",
                                 f->path, descs[i].name, bad, (double)data[bad]);
    }
    /* All nt expected names were found and names in a header are unique, so any further
     * tensor is one this architecture does not have. */
    for (int i = 0; i < f->n_tensors && f->n_tensors > nt; i++) {
        int known = 0;
        for (int j = 0; j < nt && !known; j++) known = strcmp(f->tensors[i].name, descs[j].name) == 0;
        if (!known)
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: unexpected tensor '%s': a %d-layer LSTM optimizer has "
                                 "exactly %d tensors",
                                 f->path, f->tensors[i].name, net->cfg.layers, nt);
    }
    return L2L_STATUS_OK;
}

static l2l_status copy_meta(const l2l_st_file *f, l2l_kv *meta, int *n_meta, l2l_error *err)
{
    if (f->n_meta > L2L_MAX_META)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: %d metadata pairs, at most %d are supported",
                             f->path, f->n_meta, L2L_MAX_META);
    for (int i = 0; i < f->n_meta; i++) {
        const char *key = f->meta[i].key, *value = f->meta[i].value;
        if (strlen(key) >= sizeof meta[i].key || strlen(value) >= sizeof meta[i].value)
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: metadata '%.64s' is too long: keys hold at most %zu bytes "
                                 "and values %zu",
                                 f->path, key, sizeof meta[i].key - 1, sizeof meta[i].value - 1);
        snprintf(meta[i].key, sizeof meta[i].key, "%s", key);
        snprintf(meta[i].value, sizeof meta[i].value, "%s", value);
    }
    if (n_meta) *n_meta = f->n_meta;
    return L2L_STATUS_OK;
}

l2l_status l2l_checkpoint_load(const char *path, l2l_lstm *net, l2l_kv *meta, int *n_meta,
                               l2l_error *err)
{
    L2L_ASSERT(path && net);
    memset(net, 0, sizeof *net);
    if (n_meta) *n_meta = 0;
    l2l_st_file f;
    l2l_status st = l2l_st_read(&f, path, err);
    if (st) return st;
    l2l_lstm_config cfg;
    int n_in = 0;
    st = read_config(&f, &cfg, &n_in, err);
    if (!st) {
        l2l_error inner;
        st = l2l_lstm_create(net, &cfg, &inner);
        if (st == L2L_STATUS_NOMEM)
            l2l_error_set(err, st, "%s: %s", path, inner.msg);
        else if (st)
            st = l2l_error_set(err, L2L_STATUS_FORMAT, "%s: the metadata describe an invalid "
                               "architecture: %s", path, inner.msg);
    }
    if (!st) st = read_weights(&f, net, err);
    if (!st && meta) st = copy_meta(&f, meta, n_meta, err);
    l2l_st_free(&f);
    if (st) {
        l2l_lstm_free(net);
        if (n_meta) *n_meta = 0;
    }
    return st;
}
