/* libFuzzer harness: the IDX reader on arbitrary bytes, plain or gzip (the reader tells
 * them apart by the first two bytes). The input is loaded as the image file beside a valid
 * one-label file, then as the label file beside a valid one-image file, so both header
 * shapes are reached and a one-item input loads completely. Seeds: corpus/idx. */
#define _GNU_SOURCE /* memfd_create */
#include <string.h>

#include "fuzz_file.h"
#include "l2l.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t one_image[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4};
static const uint8_t one_label[] = {0, 0, 8, 1, 0, 0, 0, 1, 7};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file input, image, label;
    if (!input.path[0]) {
        fuzz_file_open(&input, "idx");
        fuzz_file_open(&image, "image");
        fuzz_file_open(&label, "label");
        fuzz_file_set(&image, one_image, sizeof one_image);
        fuzz_file_set(&label, one_label, sizeof one_label);
    }
    fuzz_file_set(&input, data, size);
    l2l_dataset ds;
    l2l_error err;
    if (l2l_idx_load(&ds, input.path, label.path, &err) == L2L_STATUS_OK) l2l_dataset_free(&ds);
    if (l2l_idx_load(&ds, image.path, input.path, &err) == L2L_STATUS_OK) l2l_dataset_free(&ds);
    return 0;
}
