/*
 * IDX files (the MNIST format, yann.lecun.com/exdb/mnist): a big-endian header
 *   magic = 0x00 0x00 type ndim   (type 0x08 = unsigned byte)
 *   ndim big-endian uint32 sizes
 * followed by exactly prod(sizes) bytes, the last dimension varying fastest.
 * Images are 0x00000803 (n, rows, cols); labels 0x00000801 (n).
 *
 * Files are gzip-compressed or plain, told apart by their first two bytes (1f 8b, the gzip
 * magic; an IDX file starts with 00 00), so "x-idx3-ubyte" and "x-idx3-ubyte.gz" load the
 * same way. The reader takes the sizes from the header and checks them for sense, then:
 *   plain: compares them with the file's real size before allocating anything, so a short
 *          file and trailing bytes are found without reading;
 *   gzip:  the uncompressed size is only known by inflating, so the buffer grows with the
 *          bytes that actually arrive (doubling, up to the header's promise), and a tiny file
 *          that promises gigabytes costs what it holds, not what it promises.
 * Either way exactly the promised bytes must be there and the data must end there: a short
 * file and trailing bytes are both errors that give the expected and the found byte counts.
 *
 * Gzip framing follows RFC 1952 and gunzip: a file may hold several members back to back
 * (`cat a.gz b.gz` is valid gzip), and their data are concatenated. Anything after the last
 * member that is not itself a complete member (zero padding, junk) is refused, where gunzip
 * only warns: such bytes mean the file is not what was written. The stream is inflated here
 * rather than through gzread, which skips trailing garbage silently.
 *
 * Classes: l2l_idx_load is generic and takes n_classes = max(label) + 1 (a label is a
 * byte, so at most 256). l2l_mnist_load knows the data are digits: it requires every
 * label to be < 10 and sets n_classes = 10 whatever the largest label present, so a
 * subset that lacks a digit still gives a 10-way classifier.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/input.h"
#include "util/util.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
/* Sanity limits before anything is allocated: no image side beyond 65,536 pixels,
 * no file beyond 2^33 bytes (8 GiB; full MNIST is 47 MB). */
#define IDX_MAX_SIDE 65536u
#define IDX_MAX_BYTES ((uint64_t)1 << 33)
/* The gzip buffer's first size; it doubles as data arrive. */
#define IDX_GZ_FIRST_BYTES ((uint64_t)1 << 16)
#define MNIST_CLASSES 10

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* An open IDX file, plain or gzip, read front to back. */
typedef struct {
    const char *path;
    int fd;
    uint64_t file_size;   /* from fstat */
    uint64_t file_read;   /* bytes read from fd so far */
    int at_eof;           /* read() returned 0 */
    int gz;               /* 1: inflate the gzip members; 0: plain */
    int member_ended;     /* gz: the last member was complete; more input must be a new member */
    uint64_t member_end;  /* gz: the file offset where the last complete member ended */
    z_stream zs;          /* inflate's state (gz); next_in/avail_in: the unread part of `in`,
                             in plain mode too */
    unsigned char in[1 << 16]; /* read-ahead from fd */
} idx_source;

/* The outcome of reading from an idx_source. */
typedef struct {
    uint64_t got;    /* bytes read */
    int failed;      /* 1: an I/O or decompression error other than running out of data */
    l2l_status kind; /* when failed: L2L_STATUS_IO (the system) or L2L_STATUS_FORMAT (bad gzip) */
    const char *why; /* the system's or zlib's explanation, "" if none */
} gz_result;

/* Refills s->in when it is empty, as far as the file allows; returns -1 on a read error
 * (errno set). */
static int source_fill(idx_source *s)
{
    if (s->zs.avail_in || s->at_eof) return 0;
    size_t have = 0;
    while (have < sizeof s->in && !s->at_eof) {
        ssize_t k = read(s->fd, s->in + have, sizeof s->in - have);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) s->at_eof = 1;
        have += (size_t)k;
    }
    s->zs.next_in = s->in;
    s->zs.avail_in = (uInt)have;
    s->file_read += have;
    return 0;
}

/* Opens path and tells plain from gzip by its first two bytes. */
static l2l_status source_open(idx_source *s, const char *path, const char *kind,
                              l2l_error *err)
{
    char what[32];
    off_t size;
    memset(s, 0, sizeof *s);
    s->path = path;
    snprintf(what, sizeof what, "IDX %s file", kind);
    s->fd = l2l_input_open(path, what, &size, err);
    if (s->fd < 0) return err->status;
    s->file_size = (uint64_t)size;
    if (source_fill(s) != 0) {
        l2l_status st = l2l_error_set(err, L2L_STATUS_IO, "%s: read error: %s", path, strerror(errno));
        close(s->fd);
        return st;
    }
    s->gz = s->zs.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (s->gz && inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) {
        close(s->fd);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: out of memory in zlib", path);
    }
    return L2L_STATUS_OK;
}

static void source_close(idx_source *s)
{
    if (s->gz) inflateEnd(&s->zs);
    close(s->fd);
}

static gz_result io_failure(void)
{
    return (gz_result){0, 1, L2L_STATUS_IO, strerror(errno)};
}

/* Refills s's input; on a read error replaces *r by the failure, keeping its count. */
static int refill_failed(idx_source *s, gz_result *r)
{
    if (source_fill(s) == 0) return 0;
    const uint64_t got = r->got;
    *r = io_failure();
    r->got = got;
    return 1;
}

static gz_result plain_read(idx_source *s, unsigned char *buf, uint64_t n)
{
    gz_result r = {0, 0, L2L_STATUS_OK, ""};
    while (r.got < n) {
        if (refill_failed(s, &r)) return r;
        if (!s->zs.avail_in) break;
        uint64_t k = n - r.got < s->zs.avail_in ? n - r.got : s->zs.avail_in;
        memcpy(buf + r.got, s->zs.next_in, (size_t)k);
        s->zs.next_in += k;
        s->zs.avail_in -= (uInt)k;
        r.got += k;
    }
    return r;
}

/* Inflates up to n bytes, member after member. A short count with failed = 0 means the
 * data ran out: after a complete member (why "") or inside one (why says so). */
static gz_result gz_inflate(idx_source *s, unsigned char *buf, uint64_t n)
{
    gz_result r = {0, 0, L2L_STATUS_OK, ""};
    while (r.got < n) {
        if (refill_failed(s, &r)) return r;
        if (s->member_ended) {
            if (!s->zs.avail_in) return r; /* the file ends with a complete member */
            /* More bytes: they must open another member (gzip magic 1f 8b). */
            if (s->zs.next_in[0] != 0x1f || (s->zs.avail_in > 1 && s->zs.next_in[1] != 0x8b)) {
                r.failed = 1;
                r.kind = L2L_STATUS_FORMAT;
                r.why = "trailing garbage";
                return r;
            }
            inflateReset(&s->zs);
            s->member_ended = 0;
        }
        uint64_t want = n - r.got;
        s->zs.next_out = buf + r.got;
        s->zs.avail_out = want > (1u << 30) ? (1u << 30) : (uInt)want;
        uInt before = s->zs.avail_out;
        int z = inflate(&s->zs, Z_NO_FLUSH);
        r.got += before - s->zs.avail_out;
        if (z == Z_STREAM_END) {
            s->member_ended = 1;
            s->member_end = s->file_read - s->zs.avail_in;
        } else if (z == Z_BUF_ERROR) {
            /* No progress possible although the input was refilled: it ran out inside a
             * member. */
            r.why = " (the gzip stream ends early)";
            return r;
        } else if (z != Z_OK) {
            r.failed = 1;
            r.kind = z == Z_MEM_ERROR ? L2L_STATUS_NOMEM : L2L_STATUS_FORMAT;
            r.why = s->zs.msg ? s->zs.msg : zError(z);
            return r;
        }
    }
    return r;
}

/* Reads up to n bytes; see gz_result. */
static gz_result source_read(idx_source *s, void *buf, uint64_t n)
{
    return s->gz ? gz_inflate(s, buf, n) : plain_read(s, buf, n);
}

static l2l_status read_failed(l2l_error *err, const idx_source *s, const char *where,
                              gz_result r)
{
    if (r.kind == L2L_STATUS_IO)
        return l2l_error_set(err, L2L_STATUS_IO, "%s: read error in %s: %s", s->path, where, r.why);
    if (r.kind == L2L_STATUS_NOMEM)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: out of memory in zlib", s->path);
    if (s->member_ended)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: %llu bytes of trailing garbage after the gzip data, which "
                             "ends at byte %llu of %llu; the file is damaged or not what was "
                             "written (fetch it again, or cut it at byte %llu)",
                             s->path, (unsigned long long)(s->file_size - s->member_end),
                             (unsigned long long)s->member_end,
                             (unsigned long long)s->file_size, (unsigned long long)s->member_end);
    return l2l_error_set(err, L2L_STATUS_FORMAT,
                         "%s: corrupt gzip data in %s (zlib: %s); fetch the file again", s->path,
                         where, r.why);
}

/* Reads the `total` data bytes that the header promised into a new buffer, grown as they
 * arrive (gzip) or allocated once after the file size was checked (plain). */
static l2l_status read_data(idx_source *s, uint64_t total, size_t header_bytes, uint8_t **data,
                            l2l_error *err)
{
    uint64_t cap = s->gz ? (total < IDX_GZ_FIRST_BYTES ? total : IDX_GZ_FIRST_BYTES) : total;
    uint64_t got = 0;
    gz_result r = {0, 0, L2L_STATUS_OK, ""};
    *data = l2l_alloc((size_t)cap);
    while (*data) {
        r = source_read(s, *data + got, cap - got);
        got += r.got;
        if (r.failed || got < cap || cap == total) break;
        uint64_t grown = 2 * cap < total ? 2 * cap : total;
        uint8_t *bigger = l2l_alloc((size_t)grown);
        if (bigger) memcpy(bigger, *data, (size_t)got);
        l2l_free(*data);
        *data = bigger;
        cap = grown;
    }
    if (!*data)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate %llu bytes for the data",
                             s->path, (unsigned long long)cap);
    if (r.failed) return read_failed(err, s, "the data", r);
    if (got < total)
        return l2l_error_set(err, L2L_STATUS_FORMAT,
                             "%s: truncated data: the header promises %llu bytes after the "
                             "%zu-byte header, found %llu%s; fetch the file again",
                             s->path, (unsigned long long)total, header_bytes,
                             (unsigned long long)got, r.why);
    return L2L_STATUS_OK;
}

static l2l_status trailing_error(l2l_error *err, const char *path, uint64_t trailing,
                                 uint64_t total)
{
    return l2l_error_set(err, L2L_STATUS_FORMAT,
                         "%s: %llu trailing bytes after the data: the header promises %llu bytes "
                         "of data, found %llu; the header and the data disagree",
                         path, (unsigned long long)trailing, (unsigned long long)total,
                         (unsigned long long)(total + trailing));
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
    idx_source *f = malloc(sizeof *f); /* its 64 KiB read-ahead is too big for the stack */
    *data = NULL;
    if (!f) return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: out of memory", path);
    l2l_status st = source_open(f, path, kind, err);
    if (st != L2L_STATUS_OK) {
        free(f);
        return st;
    }

    r = source_read(f, header, 4);
    if (r.failed) {
        st = read_failed(err, f, "the header", r);
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
    r = source_read(f, header + 4, header_bytes - 4);
    if (r.failed) {
        st = read_failed(err, f, "the header", r);
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

    /* A plain file's size says at once whether the promised data are there. */
    if (!f->gz && f->file_size != header_bytes + total) {
        /* The header was read, so the file held it unless it changed since fstat. */
        uint64_t found = f->file_size > header_bytes ? f->file_size - header_bytes : 0;
        if (found < total)
            st = l2l_error_set(err, L2L_STATUS_FORMAT,
                               "%s: truncated data: the header promises %llu bytes after the "
                               "%zu-byte header, found %llu; fetch the file again",
                               path, (unsigned long long)total, header_bytes,
                               (unsigned long long)found);
        else
            st = trailing_error(err, path, found - total, total);
        goto done;
    }
    if ((st = read_data(f, total, header_bytes, data, err)) != L2L_STATUS_OK) goto done;
    /* The file must end exactly here. */
    uint64_t trailing = 0;
    for (;;) {
        unsigned char extra[4096];
        r = source_read(f, extra, sizeof extra);
        trailing += r.got;
        if (r.failed) {
            st = read_failed(err, f, "what follows the data", r);
            goto done;
        }
        if (r.got < sizeof extra) break;
    }
    if (trailing)
        st = trailing_error(err, path, trailing, total);
    else if (r.why[0]) /* a member begun after the data and cut short */
        st = l2l_error_set(err, L2L_STATUS_FORMAT, "%s: truncated gzip member after the data%s; "
                           "fetch the file again", path, r.why);

done:
    source_close(f);
    free(f);
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
    ds->channels = 1;
    ds->n_classes = max_label + 1;
    ds->images = images;
    ds->labels = labels;
    return L2L_STATUS_OK;
}

/* Whether path names something. Not only regular files: a directory or a pipe in the
 * file's place is then refused by the reader, which says what it is. */
static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
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
