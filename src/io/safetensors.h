/* A small reader and writer for the safetensors format (internal; not part of the API).
 *
 * File layout (https://github.com/huggingface/safetensors):
 *   8 bytes      N, the header length, an unsigned 64-bit little-endian integer
 *   N bytes      a UTF-8 JSON object: an optional "__metadata__": {string: string}, and per
 *                tensor "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *                begin/end in bytes from the start of the data section
 *   the rest     the data section: tensors back to back, every byte belonging to exactly one
 *                tensor, values little-endian, row-major (C order)
 *
 * Only F32 tensors are supported; other dtypes are recognised and rejected by name.
 * The reader refuses anything but a regular file (without blocking on a named pipe), reads
 * exactly the size that fstat gives, and checks every length and offset against it.
 * The writer pads the header with spaces to a multiple of 8 bytes (so the data section is
 * 8-byte aligned), stores the tensors in the order given, and replaces the target file
 * atomically (temporary file, fsync, rename). */
#ifndef L2L_SAFETENSORS_H
#define L2L_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "l2l.h"

#define L2L_ST_MAX_DIMS 8
/* A header longer than this is taken for corruption, not for a real file. */
#define L2L_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct {
    const char *key;
    const char *value;
} l2l_st_kv;

/* One tensor of a file that was read. name points into the file's parsed header. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[L2L_ST_MAX_DIMS];
    size_t begin, end; /* byte offsets into the data section, begin <= end */
} l2l_st_tensor;

/* A whole file in memory, validated. Strings point into the parsed header and live
 * until l2l_st_free. */
typedef struct {
    char *path;
    unsigned char *bytes; /* (size) the whole file */
    size_t size;
    const unsigned char *data; /* (data_size) the data section, inside bytes; not aligned */
    size_t data_size;
    int n_tensors;
    l2l_st_tensor *tensors; /* (n_tensors) in header order */
    int n_meta;
    l2l_st_kv *meta; /* (n_meta) the __metadata__ pairs, in header order */
    void *header;    /* the parsed JSON (json_t *) that owns the strings */
} l2l_st_file;

/* One tensor to write: ndim dims of shape, data holds product(shape) floats
 * (may be NULL when that product is 0). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[L2L_ST_MAX_DIMS];
    const float *data;
} l2l_st_write_tensor;

/* Reads and validates the whole file; on failure f is zeroed and nothing needs freeing.
 * L2L_STATUS_IO when it cannot be opened or read, L2L_STATUS_FORMAT when its contents are not a
 * valid safetensors file of F32 tensors. Every message names the file. */
l2l_status l2l_st_read(l2l_st_file *f, const char *path, l2l_error *err);
void l2l_st_free(l2l_st_file *f);

/* The tensor called name, or NULL. */
const l2l_st_tensor *l2l_st_find(const l2l_st_file *f, const char *name);
/* The metadata value for key, or NULL. */
const char *l2l_st_meta_get(const l2l_st_file *f, const char *key);
/* Copies tensor name, which must have exactly the given shape, into out (product(shape)
 * floats). L2L_STATUS_FORMAT naming the tensor and both shapes when it is missing or has
 * another shape. */
l2l_status l2l_st_get_f32(const l2l_st_file *f, const char *name, int ndim,
                          const int64_t *shape, float *out, l2l_error *err);

/* Writes a complete safetensors file to the open stream out and flushes it; does not close
 * it. what names the destination in messages. L2L_STATUS_ARG for invalid tensors or metadata
 * (duplicate or reserved names, bad shapes, strings that are not UTF-8), L2L_STATUS_IO when a
 * write fails (a full disk is named as such). */
l2l_status l2l_st_write_stream(FILE *out, const char *what, const l2l_st_write_tensor *tensors,
                               int n_tensors, const l2l_st_kv *meta, int n_meta,
                               l2l_error *err);
/* Writes the file atomically: to PATH.tmp.XXXXXX in the same directory, flushed and
 * fsync'ed, then renamed over path. On any failure the temporary file is removed and
 * an existing file at path is left as it was. */
l2l_status l2l_st_save(const char *path, const l2l_st_write_tensor *tensors, int n_tensors,
                       const l2l_st_kv *meta, int n_meta, l2l_error *err);

#endif
