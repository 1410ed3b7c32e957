/* The safetensors format: reading with every offset checked, writing atomically.
 * The layout is described in safetensors.h. The JSON header is parsed and built with
 * jansson only.
 *
 * Byte order: the format stores the header length and all tensor values little-endian.
 * The header length is decoded byte by byte; tensor data is copied as it is, which is
 * right only on a little-endian machine (x86-64, AArch64 as usually run), so a
 * big-endian build is refused at compile time rather than reading garbage. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io/input.h"
#include "io/safetensors.h"
#include "util/util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies little-endian float data as it is; port it before a big-endian build"
#endif

/* Every dtype of the safetensors specification, so that an unsupported one is told apart
 * from a misspelled one. */
static const char *const known_dtypes[] = {
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64", "C64", "F4", "F6_E2M3", "F6_E3M2",
};

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

/* Writes "(a, b, c)" into buf; returns buf. */
static const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int n = snprintf(buf, size, "(");
    if (n > 0) used = (size_t)n;
    for (int d = 0; d < ndim && used < size; d++) {
        n = snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
        if (n > 0) used += (size_t)n;
    }
    if (used < size) snprintf(buf + used, size - used, ")");
    return buf;
}

/* count = product(shape), bytes = 4 * count; 0 when either overflows. */
static int shape_bytes(int ndim, const int64_t *shape, uint64_t *bytes)
{
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return 0;
        if (shape[d] != 0 && count > UINT64_MAX / (uint64_t)shape[d]) return 0;
        count *= (uint64_t)shape[d];
    }
    if (count > UINT64_MAX / sizeof(float)) return 0;
    *bytes = count * sizeof(float);
    return 1;
}

/* ------------------------------------------------------------------ reading */

void l2l_st_free(l2l_st_file *f)
{
    if (f->header) json_decref((json_t *)f->header);
    free(f->path);
    free(f->bytes);
    free(f->tensors);
    free(f->meta);
    memset(f, 0, sizeof *f);
}

static l2l_status parse_dtype(const l2l_st_file *f, const char *name, const json_t *entry,
                              l2l_error *err)
{
    const json_t *dtype = json_object_get(entry, "dtype");
    if (!dtype)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s' has no \"dtype\" (expected \"dtype\": \"F32\")",
                             f->path, name);
    if (!json_is_string(dtype))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s': \"dtype\" must be a string such as \"F32\", found %s",
                             f->path, name, json_type_name(dtype));
    const char *s = json_string_value(dtype);
    if (strcmp(s, "F32") == 0) return L2L_STATUS_OK;
    for (size_t i = 0; i < sizeof known_dtypes / sizeof known_dtypes[0]; i++)
        if (strcmp(s, known_dtypes[i]) == 0)
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: tensor '%s' has dtype %s, which is not supported "
                                 "(only F32 is); convert the tensor to float32 before saving",
                                 f->path, name, s);
    return l2l_error_set(err, L2L_STATUS_FORMAT,
                         "%s: tensor '%s' has unknown dtype \"%.64s\" (expected \"F32\")", f->path,
                         name, s);
}

static l2l_status parse_shape(const l2l_st_file *f, const char *name, const json_t *entry,
                              l2l_st_tensor *t, l2l_error *err)
{
    const json_t *shape = json_object_get(entry, "shape");
    if (!shape || !json_is_array(shape))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s': \"shape\" must be an array of non-negative "
                             "integers, found %s",
                             f->path, name, shape ? json_type_name(shape) : "nothing");
    size_t ndim = json_array_size(shape);
    if (ndim > L2L_ST_MAX_DIMS)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s' has %zu dimensions, at most %d are supported",
                             f->path, name, ndim, L2L_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    for (size_t d = 0; d < ndim; d++) {
        const json_t *v = json_array_get(shape, d);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: tensor '%s': shape[%zu] must be a non-negative integer, "
                                 "found %s%s",
                                 f->path, name, d, json_type_name(v),
                                 json_is_integer(v) ? " below zero" : "");
        t->shape[d] = (int64_t)json_integer_value(v);
    }
    return L2L_STATUS_OK;
}

static l2l_status parse_offsets(const l2l_st_file *f, const char *name, const json_t *entry,
                                l2l_st_tensor *t, l2l_error *err)
{
    const json_t *offs = json_object_get(entry, "data_offsets");
    if (!offs || !json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s': \"data_offsets\" must be an array of two "
                             "integers [begin, end], found %s",
                             f->path, name, offs ? json_type_name(offs) : "nothing");
    json_int_t begin = json_integer_value(json_array_get(offs, 0));
    json_int_t end = json_integer_value(json_array_get(offs, 1));
    if (begin < 0 || end < begin || (uint64_t)end > f->data_size)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s': data_offsets [%lld, %lld] out of range; expected "
                             "0 <= begin <= end <= %zu (the size of the data section; file "
                             "truncated?)",
                             f->path, name, (long long)begin, (long long)end, f->data_size);
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    uint64_t bytes = 0;
    char buf[160];
    shape_str(buf, sizeof buf, t->ndim, t->shape);
    if (!shape_bytes(t->ndim, t->shape, &bytes))
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: tensor '%s' has an absurd shape %s",
                             f->path, name, buf);
    if (bytes != (uint64_t)(end - begin))
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: tensor '%s' of shape %s needs %llu bytes of F32 (4 per "
                             "element), but its data_offsets [%lld, %lld] span %lld bytes",
                             f->path, name, buf, (unsigned long long)bytes, (long long)begin,
                             (long long)end, (long long)(end - begin));
    return L2L_STATUS_OK;
}

/* A JSON object's entries as an array of `size`-byte records, one per entry (*out, freed
 * by l2l_st_free); `what` names the object and its entries in the messages. */
static l2l_status object_records(const l2l_st_file *f, const json_t *obj, const char *what,
                                 const char *entries, size_t size, void **out, l2l_error *err)
{
    if (!json_is_object(obj))
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: %s must be an object, found %s", f->path,
                             what, json_type_name(obj));
    const size_t n = json_object_size(obj);
    if (n > INT_MAX / 2)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: %zu %s is absurd", f->path, n, entries);
    if (!(*out = calloc(n ? n : 1, size)))
        return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate %zu %s", f->path, n, entries);
    return L2L_STATUS_OK;
}

static l2l_status parse_metadata(l2l_st_file *f, const json_t *md, l2l_error *err)
{
    l2l_status st = object_records(f, md, "\"__metadata__\"", "metadata entries",
                                   sizeof *f->meta, (void **)&f->meta, err);
    if (st) return st;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)md, key, value) {
        if (!json_is_string(value))
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: metadata \"%s\" must be a string, found %s", f->path, key,
                                 json_type_name(value));
        f->meta[f->n_meta].key = key;
        f->meta[f->n_meta].value = json_string_value(value);
        f->n_meta++;
    }
    return L2L_STATUS_OK;
}

static int compare_by_offset(const void *a, const void *b)
{
    const l2l_st_tensor *x = *(const l2l_st_tensor *const *)a, *y = *(const l2l_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The specification requires the tensors to tile the data section exactly: sorted by
 * offset, each begins where the previous ended and the last ends at the end of the file. */
static l2l_status check_coverage(const l2l_st_file *f, l2l_error *err)
{
    if (f->n_tensors == 0) {
        if (f->data_size == 0) return L2L_STATUS_OK;
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: the header lists no tensors but %zu data bytes follow it",
                             f->path, f->data_size);
    }
    const l2l_st_tensor **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order) return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate", f->path);
    for (int i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, compare_by_offset);
    l2l_status st = L2L_STATUS_OK;
    size_t pos = 0;
    const char *prev = NULL;
    for (int i = 0; i < f->n_tensors && !st; i++) {
        const l2l_st_tensor *t = order[i];
        if (t->begin < pos)
            st = l2l_error_set(err, L2L_STATUS_FORMAT,
                               "%s: tensors '%s' and '%s' overlap: '%s' begins at byte %zu of "
                               "the data section, before '%s' ends at byte %zu",
                               f->path, prev, t->name, t->name, t->begin, prev, pos);
        else if (t->begin > pos)
            st = l2l_error_set(err, L2L_STATUS_FORMAT,
                               "%s: data bytes [%zu, %zu) are not covered by any tensor (a gap "
                               "before '%s'); expected tensors stored back to back",
                               f->path, pos, t->begin, t->name);
        pos = t->end;
        prev = t->name;
    }
    if (!st && pos != f->data_size)
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: the last tensor ends at byte %zu of the data section, but the "
                           "file has %zu data bytes (%zu trailing bytes not covered by any tensor)",
                           f->path, pos, f->data_size, f->data_size - pos);
    free(order);
    return st;
}

static l2l_status parse(l2l_st_file *f, l2l_error *err)
{
    if (f->size < 8)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: file is %zu bytes, shorter than the 8-byte header length that "
                             "starts a safetensors file (empty or truncated)",
                             f->path, f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | f->bytes[i]; /* little-endian u64 */
    if (n > L2L_ST_MAX_HEADER)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: header length %llu bytes is absurd (limit %llu); the file is "
                             "corrupt or not a safetensors file",
                             f->path, (unsigned long long)n, (unsigned long long)L2L_ST_MAX_HEADER);
    if (n > f->size - 8)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: header length %llu bytes exceeds the %zu bytes that follow the "
                             "length field (file truncated?)",
                             f->path, (unsigned long long)n, f->size - 8);
    f->data = f->bytes + 8 + n;
    f->data_size = f->size - 8 - (size_t)n;

    json_error_t je;
    json_t *root = json_loadb((const char *)f->bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: header is not valid JSON: %s (line %d, column %d)", f->path,
                             je.text, je.line, je.column);
    f->header = root;
    l2l_status st = object_records(f, root, "header (JSON)", "tensors", sizeof *f->tensors,
                                   (void **)&f->tensors, err);
    if (st) return st;

    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry) {
        if (strcmp(name, "__metadata__") == 0) {
            if ((st = parse_metadata(f, entry, err))) return st;
            continue;
        }
        if (!json_is_object(entry))
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: tensor '%s' must be an object {\"dtype\", \"shape\", "
                                 "\"data_offsets\"}, found %s",
                                 f->path, name, json_type_name(entry));
        l2l_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = name;
        if ((st = parse_dtype(f, name, entry, err))) return st;
        if ((st = parse_shape(f, name, entry, t, err))) return st;
        if ((st = parse_offsets(f, name, entry, t, err))) return st;
        f->n_tensors++;
    }
    return check_coverage(f, err);
}

l2l_status l2l_st_read(l2l_st_file *f, const char *path, l2l_error *err)
{
    L2L_ASSERT(f && path);
    memset(f, 0, sizeof *f);
    off_t file_size;
    int fd = l2l_input_open(path, "safetensors file", &file_size, err);
    if (fd < 0) return err->status;
    l2l_status st = L2L_STATUS_OK;
    if ((uint64_t)file_size > SIZE_MAX / 2) {
        st = l2l_error_set(err, L2L_STATUS_IO, "%s is too large (%lld bytes)", path, (long long)file_size);
    } else {
        f->size = (size_t)file_size;
        f->path = strdup(path);
        f->bytes = malloc(f->size ? f->size : 1);
        if (!f->path || !f->bytes)
            st = l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %zu bytes to read %s", f->size, path);
    }
    /* Exactly the size fstat gave and no more: a file that grows meanwhile is cut there,
     * one that shrinks gives a short read. */
    size_t got = 0;
    while (!st && got < f->size) {
        ssize_t k = read(fd, f->bytes + got, f->size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            st = l2l_error_set(err, L2L_STATUS_IO, "%s: short read: expected %zu bytes, got %zu%s%s",
                               path, f->size, got, k < 0 ? ": " : " (file shrank?)",
                               k < 0 ? strerror(errno) : "");
        else
            got += (size_t)k;
    }
    close(fd);
    if (!st) st = parse(f, err);
    if (st) l2l_st_free(f);
    return st;
}

const l2l_st_tensor *l2l_st_find(const l2l_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *l2l_st_meta_get(const l2l_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

l2l_status l2l_st_get_f32(const l2l_st_file *f, const char *name, int ndim,
                          const int64_t *shape, float *out, l2l_error *err)
{
    L2L_ASSERT(ndim >= 0 && ndim <= L2L_ST_MAX_DIMS);
    char want[160], found[160];
    shape_str(want, sizeof want, ndim, shape);
    const l2l_st_tensor *t = l2l_st_find(f, name);
    if (!t)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: tensor '%s' is missing (expected shape %s)",
                             f->path, name, want);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                             f->path, name, shape_str(found, sizeof found, t->ndim, t->shape),
                             want);
    /* The data section need not be aligned for float: copy bytes (little-endian, as is). */
    if (t->end > t->begin) memcpy(out, f->data + t->begin, t->end - t->begin);
    return L2L_STATUS_OK;
}

/* ------------------------------------------------------------------ writing */


/* The header object: "__metadata__" first, then the tensors in order, offsets back to back. */
static l2l_status build_header(json_t *root, const char *what, const l2l_st_write_tensor *tensors,
                               int n_tensors, const l2l_st_kv *meta, int n_meta, l2l_error *err)
{
    if (n_meta > 0) {
        json_t *md = json_object();
        if (!md || json_object_set_new(root, "__metadata__", md))
            return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot build the header", what);
        for (int i = 0; i < n_meta; i++) {
            const char *key = meta[i].key, *value = meta[i].value;
            L2L_ASSERT(key && value);
            if (json_object_get(md, key))
                return l2l_error_set(err, L2L_STATUS_ARG, "%s: metadata key '%s' given twice",
                                     what, key);
            json_t *s = json_string(value);
            if (!s)
                return l2l_error_set(err, L2L_STATUS_ARG,
                                     "%s: metadata value for '%s' is not valid UTF-8", what, key);
            if (json_object_set_new(md, key, s))
                return l2l_error_set(err, L2L_STATUS_ARG,
                                     "%s: metadata key '%.64s' is not valid UTF-8", what, key);
        }
    }
    uint64_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const l2l_st_write_tensor *t = &tensors[i];
        L2L_ASSERT(t->name && t->ndim >= 0 && t->ndim <= L2L_ST_MAX_DIMS);
        char buf[160];
        uint64_t bytes = 0;
        if (!t->name[0] || strcmp(t->name, "__metadata__") == 0)
            return l2l_error_set(err, L2L_STATUS_ARG, "%s: invalid tensor name '%s'", what, t->name);
        if (json_object_get(root, t->name))
            return l2l_error_set(err, L2L_STATUS_ARG, "%s: tensor name '%s' given twice", what,
                                 t->name);
        if (!shape_bytes(t->ndim, t->shape, &bytes) || bytes > (uint64_t)LLONG_MAX - offset)
            return l2l_error_set(err, L2L_STATUS_ARG, "%s: tensor '%s' has an invalid shape %s",
                                 what, t->name, shape_str(buf, sizeof buf, t->ndim, t->shape));
        L2L_ASSERT(t->data || bytes == 0);
        json_t *entry = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !entry || !shape || !offs;
        for (int d = 0; d < t->ndim && !bad; d++)
            bad = json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)offset)) ||
              json_array_append_new(offs, json_integer((json_int_t)(offset + bytes)));
        if (bad || json_object_set_new(entry, "dtype", json_string("F32")) ||
            json_object_set(entry, "shape", shape) || json_object_set(entry, "data_offsets", offs)) {
            json_decref(entry);
            json_decref(shape);
            json_decref(offs);
            return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot build the header", what);
        }
        json_decref(shape);
        json_decref(offs);
        if (json_object_set_new(root, t->name, entry))
            return l2l_error_set(err, L2L_STATUS_ARG, "%s: tensor name '%.64s' is not valid UTF-8",
                                 what, t->name);
        offset += bytes;
    }
    return L2L_STATUS_OK;
}

l2l_status l2l_st_write_stream(FILE *out, const char *what, const l2l_st_write_tensor *tensors,
                               int n_tensors, const l2l_st_kv *meta, int n_meta,
                               l2l_error *err)
{
    L2L_ASSERT(out && what && n_tensors >= 0 && n_meta >= 0);
    L2L_ASSERT(tensors || n_tensors == 0);
    L2L_ASSERT(meta || n_meta == 0);
    json_t *root = json_object();
    if (!root) return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot build the header", what);
    l2l_status st = build_header(root, what, tensors, n_tensors, meta, n_meta, err);
    char *header = NULL;
    if (!st) {
        header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!header) st = l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot serialise the header", what);
    }
    json_decref(root);
    if (st) return st;

    /* Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned. */
    size_t len = strlen(header), padded = (len + 7) / 8 * 8;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "       ";
    errno = 0;
    int ok = fwrite(prefix, 1, 8, out) == 8 && fwrite(header, 1, len, out) == len &&
             fwrite(spaces, 1, padded - len, out) == padded - len;
    free(header);
    for (int i = 0; i < n_tensors && ok; i++) {
        uint64_t bytes = 0;
        shape_bytes(tensors[i].ndim, tensors[i].shape, &bytes);
        if (bytes) ok = fwrite(tensors[i].data, 1, (size_t)bytes, out) == (size_t)bytes;
    }
    if (!ok) return l2l_io_error(err, what, "writing", errno);
    if (fflush(out) != 0) return l2l_io_error(err, what, "flushing", errno);
    return L2L_STATUS_OK;
}

l2l_status l2l_st_save(const char *path, const l2l_st_write_tensor *tensors, int n_tensors,
                       const l2l_st_kv *meta, int n_meta, l2l_error *err)
{
    L2L_ASSERT(path);
    l2l_atomic a;
    l2l_status st = l2l_atomic_open(&a, path, err);
    if (st) return st;
    st = l2l_st_write_stream(a.f, path, tensors, n_tensors, meta, n_meta, err);
    if (st) {
        l2l_atomic_abort(&a); /* the previous file at path is untouched */
        return st;
    }
    return l2l_atomic_commit(&a, err);
}
