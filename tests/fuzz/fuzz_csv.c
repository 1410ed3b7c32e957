/* libFuzzer harness: the CSV reader of `l2l plot` (tools/plot/csv.c) on arbitrary bytes, read
 * from memory (fmemopen) with the default columns and with --err set. Seeds: corpus/csv. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const err_cols[2] = {NULL, "std"};
    for (int k = 0; k < 2; k++) {
        /* fmemopen reads at most size bytes, NULs included, and needs a writable buffer */
        char *copy = malloc(size ? size : 1);
        if (!copy) abort();
        memcpy(copy, data, size);
        FILE *f = fmemopen(copy, size, "r");
        if (!f) abort();
        csv_plot p;
        l2l_error err;
        csv_plot_read_stream(&p, f, "fuzz.csv", NULL, NULL, NULL, err_cols[k], &err);
        csv_plot_free(&p);
        fclose(f);
        free(copy);
    }
    return 0;
}
