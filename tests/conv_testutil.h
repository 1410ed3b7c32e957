/* Helpers shared by the conv-net task's tests (test_conv.c, test_conv_grad.c). */
#ifndef L2L_CONV_TESTUTIL_H
#define L2L_CONV_TESTUTIL_H

#include "testutil.h"

/* n random images of channels x rows x cols bytes with labels in [0, classes). */
static inline void make_images(l2l_dataset *ds, size_t n, int channels, int rows, int cols,
                               int classes, uint64_t seed)
{
    l2l_rng rng;
    l2l_rng_seed(&rng, seed, 0);
    const size_t size = n * (size_t)channels * rows * cols;
    ds->n = n;
    ds->channels = channels;
    ds->rows = rows;
    ds->cols = cols;
    ds->n_classes = classes;
    ds->images = l2l_alloc(size);
    ds->labels = l2l_alloc(n);
    assert_non_null(ds->images);
    assert_non_null(ds->labels);
    for (size_t k = 0; k < size; k++) ds->images[k] = (uint8_t)l2l_rng_below(&rng, 256);
    for (size_t i = 0; i < n; i++) ds->labels[i] = (uint8_t)l2l_rng_below(&rng, classes);
}

/* The conv task, or a failed test naming why not. */
static inline void create_conv(l2l_task *task, const l2l_conv_config *cfg, const l2l_dataset *ds)
{
    l2l_error err = {0};
    if (l2l_task_conv_create(task, cfg, ds, &err) != L2L_STATUS_OK) fail_msg("create: %s", err.msg);
}

/* A small config: layers conv layers of F maps with k x k kernels, fc units, batch. */
static inline l2l_conv_config conv_cfg(int layers, int F, int k, int fc, int batch)
{
    l2l_conv_config c;
    l2l_conv_config_default(&c);
    c.conv_layers = layers, c.channels = F, c.kernel = k, c.fc = fc, c.batch = batch;
    return c;
}

#endif
