/* libFuzzer harness: the IDX reader's gzip path with valid compression around arbitrary
 * contents, which random bytes seldom reach past the CRC check. The first input byte
 * chooses the framing: bits 0-3 where to split the rest into two gzip members (0: one
 * member), bits 4-7 how many of the input's last bytes to append raw after the members
 * (trailing garbage); the rest, compressed, is loaded as an image file and as a label
 * file. Seeds: corpus/idx_gz (plain IDX contents after the control byte). */
#define _GNU_SOURCE /* memfd_create */
#include <string.h>
#include <zlib.h>

#include "idx_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Appends data[0, n) as one gzip member to out (room for cap bytes); returns the new
 * length. */
static size_t gzip_member(uint8_t *out, size_t len, size_t cap, const uint8_t *data, size_t n)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out + len;
    zs.avail_out = (uInt)(cap - len);
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
    len = cap - zs.avail_out;
    deflateEnd(&zs);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static idx_files files;
    idx_files_open(&files, "idx_gz");
    if (size < 1 || size > (1 << 20)) return -1; /* not added to the corpus */
    size_t split = data[0] & 15, raw = data[0] >> 4;
    data++, size--;
    if (raw > size) raw = size;
    size_t body = size - raw;
    if (split > body) split = body;
    size_t cap = 2 * compressBound((uLong)body) + 64 + raw;
    uint8_t *gz = malloc(cap);
    if (!gz) abort();
    size_t len = 0;
    if (split) len = gzip_member(gz, len, cap, data, split);
    len = gzip_member(gz, len, cap, data + split, body - split);
    memcpy(gz + len, data + body, raw);
    fuzz_file_set(&files.input, gz, len + raw);
    free(gz);
    idx_files_load(&files);
    return 0;
}
