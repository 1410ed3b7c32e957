/* libFuzzer harness: l2l_train_state_load (a training state for `l2l train --resume`: the
 * safetensors reader, then the architecture, counters and random streams in the metadata
 * and the four (P) tensors) on arbitrary bytes. Seeds: corpus/fuzz_train_state. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_file.h"
#include "l2l.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file file;
    if (!file.path[0]) fuzz_file_open(&file, "train_state");
    fuzz_file_set(&file, data, size);
    l2l_train_state s;
    l2l_kv meta[L2L_MAX_META];
    int n_meta;
    l2l_error err;
    if (l2l_train_state_load(file.path, &s, meta, &n_meta, &err) == L2L_STATUS_OK)
        l2l_train_state_free(&s);
    return 0;
}
