/* Helpers shared by the MLP task's tests (test_mlp.c, test_mlp_grad.c). */
#ifndef L2L_MLP_TESTUTIL_H
#define L2L_MLP_TESTUTIL_H

#include "testutil.h"

/* n random images of rows x cols bytes (one channel) with labels in [0, classes). */
static inline void make_dataset(l2l_dataset *ds, size_t n, int rows, int cols, int classes,
                                uint64_t seed)
{
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 0);
    ds->n = n;
    ds->rows = rows;
    ds->cols = cols;
    ds->channels = 1;
    ds->n_classes = classes;
    ds->images = l2l_alloc(n * (size_t)rows * cols);
    ds->labels = l2l_alloc(n);
    assert_non_null(ds->images);
    assert_non_null(ds->labels);
    for (size_t k = 0; k < n * (size_t)rows * cols; k++)
        ds->images[k] = (uint8_t)l2l_rng_below(&rng, 256);
    for (size_t i = 0; i < n; i++) ds->labels[i] = (uint8_t)l2l_rng_below(&rng, classes);
}

/* The MLP task, or a failed test naming why not. */
static inline void create_task(l2l_task *task, const l2l_mlp_config *cfg,
                               const l2l_dataset *ds)
{
    l2l_error err = {0};
    if (l2l_task_mlp_create(task, cfg, ds, &err) != L2L_STATUS_OK) fail_msg("create: %s", err.msg);
}

#endif
