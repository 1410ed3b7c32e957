/* What the two IDX harnesses share: the input is loaded as the image file beside a valid
 * one-label file, then as the label file beside a valid one-image file, so that both
 * header shapes are reached and a one-item input loads completely. */
#ifndef L2L_FUZZ_IDX_FILES_H
#define L2L_FUZZ_IDX_FILES_H

#include "fuzz_file.h"
#include "l2l.h"

typedef struct {
    fuzz_file input, image, label;
} idx_files;

/* Opens the three files once (name: the input's) and writes the valid companions. */
static void idx_files_open(idx_files *f, const char *name)
{
    static const uint8_t one_image[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4};
    static const uint8_t one_label[] = {0, 0, 8, 1, 0, 0, 0, 1, 7};
    if (f->input.path[0]) return;
    fuzz_file_open(&f->input, name);
    fuzz_file_open(&f->image, "image");
    fuzz_file_open(&f->label, "label");
    fuzz_file_set(&f->image, one_image, sizeof one_image);
    fuzz_file_set(&f->label, one_label, sizeof one_label);
}

/* Loads the input (set by fuzz_file_set) as images and as labels. */
static void idx_files_load(const idx_files *f)
{
    l2l_dataset ds;
    l2l_error err;
    if (l2l_idx_load(&ds, f->input.path, f->label.path, &err) == L2L_STATUS_OK) l2l_dataset_free(&ds);
    if (l2l_idx_load(&ds, f->image.path, f->input.path, &err) == L2L_STATUS_OK) l2l_dataset_free(&ds);
}

#endif
