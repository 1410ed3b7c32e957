/* libFuzzer harness: the IDX reader on arbitrary bytes, plain or gzip (the reader tells
 * them apart by the first two bytes). Loaded as images and as labels (idx_files.h).
 * Seeds: corpus/idx. */
#define _GNU_SOURCE /* memfd_create */
#include "idx_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static idx_files files;
    idx_files_open(&files, "idx");
    fuzz_file_set(&files.input, data, size);
    idx_files_load(&files);
    return 0;
}
