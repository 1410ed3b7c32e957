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
#define MAX_TENSORS L2L_MAX_TENSORS

/* The keys of the architecture (arch_meta), written by the savers themselves: nine, and
 * "groups" for an optimizer with parameter groups (reserved either way). */
#define N_RESERVED 10
#define STATE_FORMAT "l2l-train-state"

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

/* The architecture's metadata, as text that reads back to the same values (floats with
 * %.9g, enough digits that strtof gives back the same float). */
typedef struct {
    char layers[16], hidden[16], p[32], scale[32], n_in[16];
    char groups[L2L_MAX_GROUPS * L2L_GROUP_NAME]; /* "kernels,other" */
} arch_text;

static int arch_meta(const l2l_lstm_config *cfg, const char *format, arch_text *t, l2l_st_kv *kv)
{
    snprintf(t->layers, sizeof t->layers, "%d", cfg->layers);
    snprintf(t->hidden, sizeof t->hidden, "%d", cfg->hidden);
    snprintf(t->p, sizeof t->p, "%.9g", (double)cfg->p);
    snprintf(t->scale, sizeof t->scale, "%.9g", (double)cfg->scale);
    snprintf(t->n_in, sizeof t->n_in, "%d", l2l_lstm_n_in(cfg));
    int n = 0;
    kv[n++] = (l2l_st_kv){"format", format};
    kv[n++] = (l2l_st_kv){"format_version", FORMAT_VERSION};
    kv[n++] = (l2l_st_kv){"layers", t->layers};
    kv[n++] = (l2l_st_kv){"hidden", t->hidden};
    kv[n++] = (l2l_st_kv){"preproc", l2l_preproc_name(cfg->preproc)};
    kv[n++] = (l2l_st_kv){"p", t->p};
    kv[n++] = (l2l_st_kv){"scale", t->scale};
    kv[n++] = (l2l_st_kv){"gate_order", "ifgo"};
    kv[n++] = (l2l_st_kv){"n_in", t->n_in};
    l2l_group_names_join(cfg->group_names, cfg->groups > 1 ? cfg->groups : 0, t->groups, sizeof t->groups);
    kv[n++] = (l2l_st_kv){"groups", t->groups}; /* written only if not empty */
    return n;
}

/* Drops an empty "groups" from the n pairs of kv: a file without groups is as it was
 * before groups existed. Returns the new count. */
static int drop_empty_groups(l2l_st_kv *kv, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, "groups") == 0 && !kv[i].value[0]) {
            memmove(&kv[i], &kv[i + 1], (size_t)(n - i - 1) * sizeof *kv);
            return n - 1;
        }
    return n;
}

static l2l_status check_extra(const char *path, const l2l_kv *meta, int n_meta, const l2l_st_kv *kv,
                              int n, l2l_error *err);

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

    arch_text t;
    l2l_st_kv kv[L2L_MAX_META];
    int n = arch_meta(&net->cfg, FORMAT_NAME, &t, kv);
    L2L_ASSERT(n == N_RESERVED);
    l2l_status st = check_extra(path, meta, n_meta, kv, n, err);
    if (st) return st;
    n = drop_empty_groups(kv, n);
    for (int i = 0; i < n_meta; i++) kv[n++] = (l2l_st_kv){meta[i].key, meta[i].value};
    return l2l_st_save(path, tensors, nt, kv, n, err);
}

/* The caller's extra pairs: NUL-terminated, non-empty, distinct, and none of the n keys
 * the file's own writer already put in kv. */
static l2l_status check_extra(const char *path, const l2l_kv *meta, int n_meta, const l2l_st_kv *kv,
                              int n, l2l_error *err)
{
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
        for (int j = 0; j < n; j++)
            if (strcmp(kv[j].key, key) == 0)
                return l2l_error_set(err, L2L_STATUS_ARG,
                                             "cannot save %s: metadata key '%s' is reserved for the "
                                     "file's own use; choose another name",
                                     path, key);
        for (int j = 0; j < i; j++)
            if (strcmp(meta[j].key, key) == 0)
                return l2l_error_set(err, L2L_STATUS_ARG,
                                     "cannot save %s: metadata key '%s' given twice (pairs %d and %d)",
                                     path, key, j, i);
    }
    return L2L_STATUS_OK;
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

/* The optional 'groups': 2 .. L2L_MAX_GROUPS names separated by commas. */
static l2l_status read_groups(const l2l_st_file *f, l2l_lstm_config *cfg, l2l_error *err)
{
    const char *s = l2l_st_meta_get(f, "groups");
    cfg->groups = 1;
    if (!s) return L2L_STATUS_OK;
    int g = 0;
    for (const char *p = s;; g++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (g == L2L_MAX_GROUPS || len >= L2L_GROUP_NAME)
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: metadata 'groups' is '%.64s'; expected 2 to %d names of at most %d "
                                 "characters separated by commas", f->path, s, L2L_MAX_GROUPS,
                                 L2L_GROUP_NAME - 1);
        memcpy(cfg->group_names[g], p, len);
        cfg->group_names[g][len] = '\0';
        if (!comma) break;
        p = comma + 1;
    }
    l2l_error inner;
    if (g + 1 < 2 || l2l_group_names_check(cfg->group_names, g + 1, &inner))
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: metadata 'groups' is '%.64s': %s", f->path, s,
                             g + 1 < 2 ? "an optimizer with groups has at least two" : inner.msg);
    cfg->groups = g + 1;
    return L2L_STATUS_OK;
}

/* The architecture from the metadata of a file whose 'format' must be `format`. */
static l2l_status read_config(const l2l_st_file *f, const char *format, l2l_lstm_config *cfg,
                              int *n_in, l2l_error *err)
{
    l2l_status st;
    const char *s;
    memset(cfg, 0, sizeof *cfg);
    if (!l2l_st_meta_get(f, "format"))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: not an l2l checkpoint: no metadata 'format' (expected '%s'); "
                             "it may be a safetensors file of something else",
                             f->path, format);
    if ((st = meta_expect(f, "format", format,
                          strcmp(format, FORMAT_NAME) == 0 ? " (not an l2l LSTM optimizer checkpoint)"
                                                           : " (not an l2l training state)",
                          err)) ||
        (st = meta_expect(f, "format_version", FORMAT_VERSION,
                          " (written by another version of l2l; this build reads version 1)", err)) ||
        (st = meta_expect(f, "gate_order", "ifgo", " (PyTorch gate order i, f, g, o)", err)) ||
        (st = meta_int(f, "layers", 0, L2L_MAX_LAYERS, &cfg->layers, err)) ||
        (st = meta_int(f, "hidden", 0, 1 << 20, &cfg->hidden, err)) ||
        (st = meta_float(f, "p", &cfg->p, err)) ||
        (st = meta_float(f, "scale", &cfg->scale, err)) ||
        (st = meta_int(f, "n_in", 1, 3, n_in, err)) ||
        (st = meta_require(f, "preproc", &s, err)))
        return st;
    const int pre = l2l_preproc_parse(s);
    if (pre < 0)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata 'preproc' must be 'none', 'logsign' or 'logsign-rms', "
                             "found '%.64s'", f->path, s);
    cfg->preproc = (l2l_preproc)pre;
    if (*n_in != l2l_lstm_n_in(cfg))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: metadata 'n_in' is %d but preproc '%s' gives %d inputs",
                             f->path, *n_in, s, l2l_lstm_n_in(cfg));
    return read_groups(f, cfg, err);
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

/* The metadata may declare an architecture far larger than the file: refuse it before
 * allocating its weights, so that memory grows with the bytes a file holds (`copies` of
 * phi's layout must fit in the data section). Below 1 MiB the weights are allocated and
 * the tensors then checked one by one, which names the one that is missing or short. */
static l2l_status check_data_size(const l2l_st_file *f, const l2l_lstm_config *cfg, int copies,
                                  l2l_error *err)
{
    l2l_error inner;
    if (l2l_lstm_config_check(cfg, &inner)) return L2L_STATUS_OK; /* the caller reports it */
    const size_t need = (size_t)copies * l2l_lstm_param_count(cfg) * sizeof(float);
    if (f->data_size < need && need > (1u << 20))
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: the metadata describe %d layers of %d units, "
                             "whose weights take %zu bytes, but the file's data section holds only "
                             "%zu", f->path, cfg->layers, cfg->hidden, need, f->data_size);
    return L2L_STATUS_OK;
}

/* The start of both loaders: zeroes what they fill (obj, size bytes, and *n_meta), then
 * reads the file. */
static l2l_status load_begin(const char *path, void *obj, size_t size, int *n_meta,
                             l2l_st_file *f, l2l_error *err)
{
    L2L_ASSERT(path && obj);
    memset(obj, 0, size);
    if (n_meta) *n_meta = 0;
    return l2l_st_read(f, path, err);
}

l2l_status l2l_checkpoint_load(const char *path, l2l_lstm *net, l2l_kv *meta, int *n_meta,
                               l2l_error *err)
{
    l2l_st_file f;
    l2l_status st = load_begin(path, net, sizeof *net, n_meta, &f, err);
    if (st) return st;
    l2l_lstm_config cfg;
    int n_in = 0;
    st = read_config(&f, FORMAT_NAME, &cfg, &n_in, err);
    if (!st) st = check_data_size(&f, &cfg, 1, err);
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

/* ----------------------------------------------------------- training states */

/* The state's own keys after the architecture's (see l2l_train_state_save). */
#define N_STATE_KEYS 8
#define STATE_TENSORS 4

static void rng_text(const l2l_rng *r, char *buf, size_t n)
{
    snprintf(buf, n, "%016llx%016llx%016llx%016llx", (unsigned long long)r->s[0],
             (unsigned long long)r->s[1], (unsigned long long)r->s[2], (unsigned long long)r->s[3]);
}

l2l_status l2l_train_state_save(const char *path, const l2l_train_state *s, const l2l_kv *meta,
                                int n_meta, l2l_error *err)
{
    L2L_ASSERT(path && s && s->phi && n_meta >= 0 && (meta || n_meta == 0));
    if (n_meta > L2L_MAX_META - N_RESERVED - N_STATE_KEYS)
        return l2l_error_set(err, L2L_STATUS_ARG, "cannot save %s: %d extra metadata pairs, at most %d fit",
                             path, n_meta, L2L_MAX_META - N_RESERVED - N_STATE_KEYS);
    const int64_t P = (int64_t)s->n_params;
    const l2l_st_write_tensor tensors[STATE_TENSORS] = {
        {"phi", 1, {P}, s->phi}, {"best", 1, {P}, s->best},
        {"adam_m", 1, {P}, s->adam_m}, {"adam_v", 1, {P}, s->adam_v}};
    /* Doubles with %.17g read back exactly (inf as "inf"); the streams as hex. */
    char epoch[16], adam_t[32], best_valid[32], best_epoch[16], first_loss[32], seconds[32];
    char train_rng[80], noise[80] = "none";
    snprintf(epoch, sizeof epoch, "%d", s->epoch);
    snprintf(adam_t, sizeof adam_t, "%lld", (long long)s->adam_t);
    snprintf(best_valid, sizeof best_valid, "%.17g", s->best_valid);
    snprintf(best_epoch, sizeof best_epoch, "%d", s->best_epoch);
    snprintf(first_loss, sizeof first_loss, "%.17g", s->first_loss);
    snprintf(seconds, sizeof seconds, "%.17g", s->seconds);
    rng_text(&s->train_rng, train_rng, sizeof train_rng);
    if (s->has_noise) rng_text(&s->noise, noise, sizeof noise);
    arch_text t;
    l2l_st_kv kv[L2L_MAX_META];
    int n = arch_meta(&s->arch, STATE_FORMAT, &t, kv);
    kv[n++] = (l2l_st_kv){"epoch", epoch};
    kv[n++] = (l2l_st_kv){"adam_t", adam_t};
    kv[n++] = (l2l_st_kv){"best_valid", best_valid};
    kv[n++] = (l2l_st_kv){"best_epoch", best_epoch};
    kv[n++] = (l2l_st_kv){"first_loss", first_loss};
    kv[n++] = (l2l_st_kv){"seconds", seconds};
    kv[n++] = (l2l_st_kv){"train_rng", train_rng};
    kv[n++] = (l2l_st_kv){"noise_rng", noise};
    L2L_ASSERT(n == N_RESERVED + N_STATE_KEYS);
    l2l_status st = check_extra(path, meta, n_meta, kv, n, err);
    if (st) return st;
    n = drop_empty_groups(kv, n);
    for (int i = 0; i < n_meta; i++) kv[n++] = (l2l_st_kv){meta[i].key, meta[i].value};
    return l2l_st_save(path, tensors, STATE_TENSORS, kv, n, err);
}

void l2l_train_state_free(l2l_train_state *s)
{
    l2l_free(s->phi), l2l_free(s->best), l2l_free(s->adam_m), l2l_free(s->adam_v);
    memset(s, 0, sizeof *s);
}

static l2l_status meta_double(const l2l_st_file *f, const char *key, double *out, l2l_error *err)
{
    const char *s;
    l2l_status st = meta_require(f, key, &s, err);
    if (st) return st;
    char *end;
    *out = strtod(s, &end);
    if (!s[0] || *end || isnan(*out))
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: metadata '%s' must be a number, found '%.64s'",
                             f->path, key, s);
    return L2L_STATUS_OK;
}

/* A stream as 64 hex digits, or "none" (*present = 0). */
static l2l_status meta_rng(const l2l_st_file *f, const char *key, l2l_rng *r, int *present,
                           l2l_error *err)
{
    const char *s;
    l2l_status st = meta_require(f, key, &s, err);
    if (st) return st;
    *present = strcmp(s, "none") != 0;
    if (!*present) return L2L_STATUS_OK;
    int ok = strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
    for (int k = 0; ok && k < 4; k++) {
        char word[17];
        memcpy(word, s + 16 * k, 16);
        word[16] = 0;
        r->s[k] = strtoull(word, NULL, 16);
    }
    if (!ok || (r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: metadata '%s' must be a random stream's state "
                             "(64 hex digits, not all zero), found '%.80s'", f->path, key, s);
    return L2L_STATUS_OK;
}

static l2l_status read_state(const l2l_st_file *f, l2l_train_state *s, l2l_error *err)
{
    int n_in, epoch_ok = 1, has_train;
    long long adam_t = 0;
    l2l_status st;
    if ((st = read_config(f, STATE_FORMAT, &s->arch, &n_in, err))) return st;
    l2l_error inner;
    if (l2l_lstm_config_check(&s->arch, &inner))
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: the metadata describe an invalid architecture: %s",
                             f->path, inner.msg);
    if (s->arch.layers == 0) s->arch.hidden = 0;
    if ((st = check_data_size(f, &s->arch, STATE_TENSORS, err))) return st;
    const size_t P = s->n_params = l2l_lstm_param_count(&s->arch);
    float **bufs[STATE_TENSORS] = {&s->phi, &s->best, &s->adam_m, &s->adam_v};
    static const char *const names[STATE_TENSORS] = {"phi", "best", "adam_m", "adam_v"};
    const int64_t shape[1] = {(int64_t)P};
    for (int i = 0; i < STATE_TENSORS; i++) {
        if (!(*bufs[i] = l2l_alloc(P * sizeof(float))))
            return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate %zu weights", f->path, P);
        if ((st = l2l_st_get_f32(f, names[i], 1, shape, *bufs[i], err))) return st;
    }
    const char *t;
    if ((st = meta_int(f, "epoch", 0, INT32_MAX, &s->epoch, err)) ||
        (st = meta_int(f, "best_epoch", 0, INT32_MAX, &s->best_epoch, err)) ||
        (st = meta_require(f, "adam_t", &t, err)) ||
        (st = meta_double(f, "best_valid", &s->best_valid, err)) ||
        (st = meta_double(f, "first_loss", &s->first_loss, err)) ||
        (st = meta_double(f, "seconds", &s->seconds, err)) ||
        (st = meta_rng(f, "train_rng", &s->train_rng, &has_train, err)) ||
        (st = meta_rng(f, "noise_rng", &s->noise, &s->has_noise, err)))
        return st;
    char *end;
    adam_t = strtoll(t, &end, 10);
    epoch_ok = has_train && s->best_epoch <= s->epoch;
    if (!t[0] || *end || adam_t < 0 || !epoch_ok)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: inconsistent training state (epoch %d, best "
                             "epoch %d, meta-Adam step '%.32s', training stream %s)", f->path, s->epoch,
                             s->best_epoch, t, has_train ? "present" : "missing");
    s->adam_t = adam_t;
    return L2L_STATUS_OK;
}

l2l_status l2l_train_state_load(const char *path, l2l_train_state *s, l2l_kv *meta, int *n_meta,
                                l2l_error *err)
{
    l2l_st_file f;
    l2l_status st = load_begin(path, s, sizeof *s, n_meta, &f, err);
    if (st) return st;
    st = read_state(&f, s, err);
    /* the caller's pairs: all but the state's own */
    static const char *const own[] = {"format", "format_version", "layers", "hidden", "preproc", "p",
                                      "scale", "gate_order", "n_in", "groups", "epoch", "adam_t", "best_valid",
                                      "best_epoch", "first_loss", "seconds", "train_rng", "noise_rng"};
    _Static_assert(sizeof own / sizeof *own == N_RESERVED + N_STATE_KEYS, "the state's keys");
    l2l_st_kv extra[L2L_MAX_META];
    int n = 0;
    for (int i = 0; !st && meta && i < f.n_meta; i++) {
        int mine = 0;
        for (size_t j = 0; j < sizeof own / sizeof *own && !mine; j++) mine = !strcmp(f.meta[i].key, own[j]);
        if (mine) continue;
        if (n == L2L_MAX_META)
            st = l2l_error_set(err, L2L_STATUS_FORMAT, "%s: more than %d metadata pairs", path, L2L_MAX_META);
        else extra[n++] = f.meta[i];
    }
    if (!st && meta) {
        l2l_st_file view = f;
        view.meta = extra, view.n_meta = n;
        st = copy_meta(&view, meta, n_meta, err);
    }
    l2l_st_free(&f);
    if (st) l2l_train_state_free(s);
    return st;
}
