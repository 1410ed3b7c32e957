/* libFuzzer harness: the CIFAR-10 reader (l2l_cifar10_load_files) on arbitrary bytes, as
 * the only batch file and as the second after a valid one-record file, so that both a
 * first file and one appended to earlier records are reached; a data set that loads is
 * handed to l2l_dataset_select_classes with classes taken from its first label.
 * Seeds: corpus/fuzz_cifar. */
#define _GNU_SOURCE /* memfd_create */
#include <string.h>

#include "fuzz_file.h"
#include "l2l.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(const char *const *paths, int n)
{
    l2l_dataset ds;
    l2l_error err;
    if (l2l_cifar10_load_files(&ds, paths, n, &err) != L2L_STATUS_OK) return;
    const int classes[2] = {ds.labels[0], (ds.labels[0] + 1) % 10};
    l2l_dataset_select_classes(&ds, classes, 2, &err);
    l2l_dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file input, valid;
    if (!input.path[0]) {
        static uint8_t record[3073];
        record[0] = 7;
        for (int j = 1; j < 3073; j++) record[j] = (uint8_t)j;
        fuzz_file_open(&input, "cifar");
        fuzz_file_open(&valid, "valid");
        fuzz_file_set(&valid, record, sizeof record);
    }
    fuzz_file_set(&input, data, size);
    const char *alone[1] = {input.path}, *after[2] = {valid.path, input.path};
    load(alone, 1);
    load(after, 2);
    return 0;
}
