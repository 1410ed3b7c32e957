/* A data set in memory: keeping a subset of its classes (l2l_dataset_select_classes), so
 * that the paper's 5- and 2-class CIFAR panels, and meta-training on classes disjoint from
 * the test classes, are a class list each. */
#include <string.h>

#include "util/util.h"

l2l_status l2l_dataset_select_classes(l2l_dataset *ds, const int *classes, int k, l2l_error *err)
{
    L2L_ASSERT(ds && (classes || k == 0));
    if (k < 1 || k > ds->n_classes)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "a class list of %d classes, expected 1..%d (the data set's classes)",
                             k, ds->n_classes);
    int label_of[256]; /* the new label of each old one, -1 if dropped */
    for (int i = 0; i < 256; i++) label_of[i] = -1;
    for (int i = 0; i < k; i++) {
        if (classes[i] < 0 || classes[i] >= ds->n_classes || classes[i] > 255)
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "class %d is outside the data set's %d classes (0..%d)", classes[i],
                                 ds->n_classes, ds->n_classes - 1);
        if (label_of[classes[i]] >= 0)
            return l2l_error_set(err, L2L_STATUS_ARG, "class %d is listed twice", classes[i]);
        label_of[classes[i]] = i;
    }
    size_t kept = 0;
    for (size_t i = 0; i < ds->n; i++) kept += label_of[ds->labels[i]] >= 0;
    if (kept == 0)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "none of the %zu examples has one of the %d classes asked for", ds->n, k);
    /* Compact in place, in order: example i moves to j <= i, whose slot is already read. */
    const size_t image = (size_t)ds->channels * ds->rows * ds->cols;
    size_t j = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const int label = label_of[ds->labels[i]];
        if (label < 0) continue;
        if (j != i) memcpy(ds->images + j * image, ds->images + i * image, image);
        ds->labels[j++] = (uint8_t)label;
    }
    ds->n = kept;
    ds->n_classes = k;
    return L2L_STATUS_OK;
}
