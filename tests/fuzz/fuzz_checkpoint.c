/* libFuzzer harness: l2l_checkpoint_load (the safetensors reader, then the architecture in
 * the metadata and every weight tensor) on arbitrary bytes. Seeds: corpus/checkpoint. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_file.h"
#include "l2l.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file file;
    if (!file.path[0]) fuzz_file_open(&file, "checkpoint");
    fuzz_file_set(&file, data, size);
    l2l_lstm net;
    l2l_kv meta[L2L_MAX_META];
    int n_meta;
    l2l_error err;
    if (l2l_checkpoint_load(file.path, &net, meta, &n_meta, &err) == L2L_STATUS_OK)
        l2l_lstm_free(&net);
    return 0;
}
