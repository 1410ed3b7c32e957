/*
 * IDX files (the MNIST format, yann.lecun.com/exdb/mnist): a big-endian header
 *   magic = 0x00 0x00 type ndim   (type 0x08 = unsigned byte)
 *   ndim big-endian uint32 sizes
 * followed by exactly prod(sizes) bytes, the last dimension varying fastest.
 * Images are 0x00000803 (n, rows, cols); labels 0x00000801 (n).
 *
 * Files are read through zlib's gzopen/gzread, which reads gzip-compressed and plain
 * files alike, so "x-idx3-ubyte" and "x-idx3-ubyte.gz" load the same way. The
 * uncompressed size is only known by reading, so the reader takes the sizes from the
 * header, checks them for sense before allocating, reads exactly that many bytes and
 * then checks that the file ends there: a short file and trailing bytes are both
 * errors that give the expected and the found byte counts.
 *
 * Classes: l2l_idx_load is generic and takes n_classes = max(label) + 1 (a label is a
 * byte, so at most 256). l2l_mnist_load knows the data are digits: it requires every
 * label to be < 10 and sets n_classes = 10 whatever the largest label present, so a
 * subset that lacks a digit still gives a 10-way classifier.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "util/util.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
/* Sanity limits before anything is allocated: no image side beyond 65,536 pixels,
 * no file beyond 2^33 bytes (8 GiB; full MNIST is 47 MB). */
#define IDX_MAX_SIDE 65536u
#define IDX_MAX_BYTES ((uint64_t)1 << 33)
#define MNIST_CLASSES 10

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The outcome of reading from a gzFile. */
typedef struct {
    uint64_t got;    /* bytes read */
    int failed;      /* 1: an I/O or decompression error other than running out of data */
    l2l_status kind; /* when failed: L2L_STATUS_IO (the system) or L2L_STATUS_FORMAT (bad gzip) */
    const char *why; /* the system's or zlib's explanation, "" if none */
} gz_result;

/*
 * Reads up to n bytes. A short count with failed = 0 means the data ran out: a plain
 * file ended, or a gzip stream was cut short (zlib reports that as Z_BUF_ERROR,
 * "unexpected end of file", and why says so). failed = 1 is a read error or corrupt
 * compressed data.
 */
static gz_result gz_read_full(gzFile f, void *buf, uint64_t n)
{
    gz_result r = {0, 0, L2L_STATUS_OK, ""};
    unsigned char *p = buf;
    while (r.got < n) {
        uint64_t want = n - r.got;
        unsigned chunk = want > (1u << 30) ? (1u << 30) : (unsigned)want;
        int k = gzread(f, p + r.got, chunk);
        if (k <= 0) break;
        r.got += (uint64_t)k;
    }
    if (r.got < n) {
        int zerr;
        const char *msg = gzerror(f, &zerr);
        if (zerr == Z_ERRNO) {
            r.failed = 1;
            r.kind = L2L_STATUS_IO;
            r.why = strerror(errno);
        } else if (zerr == Z_BUF_ERROR) {
            r.why = " (the gzip stream ends early)";
        } else if (zerr != Z_OK && zerr != Z_STREAM_END) {
            /* zlib's message reads "PATH: what"; keep the what. */
            const char *colon = strstr(msg, ": ");
            r.failed = 1;
            r.kind = L2L_STATUS_FORMAT;
            r.why = colon ? colon + 2 : msg;
        }
    }
    return r;
}

static l2l_status read_failed(l2l_error *err, const char *path, const char *where,
                              gz_result r)
{
    if (r.kind == L2L_STATUS_IO)
        return l2l_error_set(err, L2L_STATUS_IO, "%s: read error in %s: %s", path, where, r.why);
    return l2l_error_set(err, L2L_STATUS_FORMAT,
                         "%s: corrupt gzip data in %s (zlib: %s); fetch the file again", path,
                         where, r.why);
}

/*
 * Reads one IDX unsigned-byte file of ndim dimensions (1 or 3) into a new buffer.
 * dims receives the sizes; *data the prod(dims) bytes (l2l_free it).
 */
static l2l_status idx_read(const char *path, int ndim, uint32_t dims[3], uint8_t **data,
                           l2l_error *err)
{
    const uint32_t magic_expected = (uint32_t)IDX_TYPE_UBYTE << 8 | (uint32_t)ndim;
    const char *kind = ndim == 3 ? "image" : "label";
    const size_t header_bytes = 4 + 4 * (size_t)ndim;
    unsigned char header[16];
    uint64_t total = 1;
    gz_result r;
    l2l_status st = L2L_STATUS_OK;
    *data = NULL;

    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return l2l_error_set(err, L2L_STATUS_IO, "cannot open IDX %s file %s: %s", kind, path,
                             errno ? strerror(errno) : "out of memory in zlib");
    gzbuffer(f, 1u << 17);

    r = gz_read_full(f, header, 4);
    if (r.failed) {
        st = read_failed(err, path, "the header", r);
        goto done;
    }
    if (r.got < 4) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: truncated header: expected at least 4 bytes (the magic "
                           "number), found %llu%s; the file is empty or cut short",
                           path, (unsigned long long)r.got, r.why);
        goto done;
    }
    uint32_t magic = be32(header);
    if (header[0] != 0 || header[1] != 0 || header[2] != IDX_TYPE_UBYTE) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: bad magic number 0x%08x, expected 0x%08x (an IDX file of "
                           "unsigned bytes with %d dimension%s, the MNIST %s format)",
                           path, magic, magic_expected, ndim, ndim == 1 ? "" : "s", kind);
        goto done;
    }
    if (header[3] != ndim) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: magic number 0x%08x says %d dimension%s, expected %d "
                           "(magic 0x%08x for an IDX %s file); are the image and label "
                           "files swapped?",
                           path, magic, header[3], header[3] == 1 ? "" : "s", ndim,
                           magic_expected, kind);
        goto done;
    }
    r = gz_read_full(f, header + 4, header_bytes - 4);
    if (r.failed) {
        st = read_failed(err, path, "the header", r);
        goto done;
    }
    if (r.got < header_bytes - 4) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: truncated header: expected %zu bytes, found %llu%s", path,
                           header_bytes, 4 + (unsigned long long)r.got, r.why);
        goto done;
    }

    for (int d = 0; d < ndim; d++) {
        dims[d] = be32(header + 4 + 4 * d);
        if (dims[d] == 0 || dims[d] > INT32_MAX) {
            st = l2l_error_set(err, L2L_STATUS_FORMAT,
                               "%s: dimension %d is %u, expected a positive size below 2^31",
                               path, d, dims[d]);
            goto done;
        }
        if (d > 0 && dims[d] > IDX_MAX_SIDE) {
            st = l2l_error_set(err, L2L_STATUS_FORMAT,
                               "%s: image side %u (dimension %d) is absurd (limit %u)", path,
                               dims[d], d, IDX_MAX_SIDE);
            goto done;
        }
        total *= dims[d]; /* at most 2^31 * 2^16 * 2^16 = 2^63: no overflow */
    }
    if (total > IDX_MAX_BYTES) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: the header's sizes promise %llu bytes of data, more than the "
                           "limit of %llu; the header is corrupt",
                           path, (unsigned long long)total, (unsigned long long)IDX_MAX_BYTES);
        goto done;
    }

    *data = l2l_alloc((size_t)total);
    if (!*data) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate %llu bytes for the data",
                           path, (unsigned long long)total);
        goto done;
    }
    r = gz_read_full(f, *data, total);
    if (r.failed) {
        st = read_failed(err, path, "the data", r);
        goto done;
    }
    if (r.got < total) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: truncated data: the header promises %llu bytes after the "
                           "%zu-byte header, found %llu%s; fetch the file again",
                           path, (unsigned long long)total, header_bytes,
                           (unsigned long long)r.got, r.why);
        goto done;
    }
    /* The file must end exactly here. */
    uint64_t trailing = 0;
    for (;;) {
        unsigned char extra[4096];
        r = gz_read_full(f, extra, sizeof extra);
        trailing += r.got;
        if (r.failed) {
            st = read_failed(err, path, "what follows the data", r);
            goto done;
        }
        if (r.got < sizeof extra) break;
    }
    if (trailing) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT,
                           "%s: %llu trailing bytes after the data: the header promises "
                           "%llu bytes of data, found %llu; the header and the data disagree",
                           path, (unsigned long long)trailing, (unsigned long long)total,
                           (unsigned long long)(total + trailing));
        goto done;
    }

done:
    if (gzclose_r(f) != Z_OK && st == L2L_STATUS_OK)
        st = l2l_error_set(err, L2L_STATUS_IO, "%s: error while closing the file", path);
    if (st != L2L_STATUS_OK) {
        l2l_free(*data);
        *data = NULL;
    }
    return st;
}

l2l_status l2l_idx_load(l2l_dataset *ds, const char *images_path, const char *labels_path,
                        l2l_error *err)
{
    L2L_ASSERT(ds && images_path && labels_path);
    memset(ds, 0, sizeof *ds);

    uint32_t idims[3], ldims[3];
    uint8_t *images = NULL, *labels = NULL;
    l2l_status st = idx_read(images_path, 3, idims, &images, err);
    if (st != L2L_STATUS_OK) return st;
    st = idx_read(labels_path, 1, ldims, &labels, err);
    if (st != L2L_STATUS_OK) {
        l2l_free(images);
        return st;
    }
    if (idims[0] != ldims[0]) {
        l2l_free(images);
        l2l_free(labels);
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "image and label counts disagree: %s holds %u images, %s holds "
                             "%u labels; the two files do not belong together",
                             images_path, idims[0], labels_path, ldims[0]);
    }
    int max_label = 0;
    for (uint32_t i = 0; i < ldims[0]; i++)
        if (labels[i] > max_label) max_label = labels[i];

    ds->n = idims[0];
    ds->rows = (int)idims[1];
    ds->cols = (int)idims[2];
    ds->n_classes = max_label + 1;
    ds->images = images;
    ds->labels = labels;
    return L2L_STATUS_OK;
}

/* Whether path names an existing regular file. */
static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* DIR/<split>-<what>-<idx>, or the same with .gz when only that exists. */
static l2l_status mnist_path(char *out, size_t size, const char *dir, const char *split,
                             const char *what, l2l_error *err)
{
    int len = snprintf(out, size, "%s/%s-%s", dir, split, what);
    if (len < 0 || (size_t)len + 3 >= size)
        return l2l_error_set(err, L2L_STATUS_ARG, "MNIST directory path too long: %s", dir);
    if (file_exists(out)) return L2L_STATUS_OK;
    strcat(out, ".gz");
    if (file_exists(out)) return L2L_STATUS_OK;
    out[len] = '\0';
    return l2l_error_set(err, L2L_STATUS_IO,
                         "MNIST file not found: neither %s nor %s.gz exists; run `make data` "
                         "(scripts/fetch_mnist.sh %s) to create it",
                         out, out, dir);
}

l2l_status l2l_mnist_load(l2l_dataset *ds, const char *dir, const char *split, l2l_error *err)
{
    L2L_ASSERT(ds && dir && split);
    memset(ds, 0, sizeof *ds);
    if (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "unknown MNIST split '%s', expected \"train\" or \"t10k\"", split);

    char images_path[4096], labels_path[4096];
    l2l_status st = mnist_path(images_path, sizeof images_path, dir, split, "images-idx3-ubyte",
                               err);
    if (st != L2L_STATUS_OK) return st;
    st = mnist_path(labels_path, sizeof labels_path, dir, split, "labels-idx1-ubyte", err);
    if (st != L2L_STATUS_OK) return st;
    st = l2l_idx_load(ds, images_path, labels_path, err);
    if (st != L2L_STATUS_OK) return st;

    for (size_t i = 0; i < ds->n; i++) {
        if (ds->labels[i] >= MNIST_CLASSES) {
            unsigned value = ds->labels[i];
            l2l_dataset_free(ds);
            return l2l_error_set(err, L2L_STATUS_FORMAT,
                                 "%s: label %zu is %u, expected a digit 0..9", labels_path, i,
                                 value);
        }
    }
    ds->n_classes = MNIST_CLASSES;
    return L2L_STATUS_OK;
}

void l2l_dataset_free(l2l_dataset *ds)
{
    if (!ds) return;
    l2l_free(ds->images);
    l2l_free(ds->labels);
    memset(ds, 0, sizeof *ds);
}
