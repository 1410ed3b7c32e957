/* The tiles the kernels work on (lstm.h): runs of up to TILE consecutive coordinates of
 * one group. Without groups they are the plain cut of 0..n into TILE-sized pieces; with
 * groups every maximal run of one group is cut on its own, so a tile never mixes two
 * groups' LSTMs (a conv net's kernels come first in theta: two runs, two partial tiles
 * at most). */
#include "lstm/kernels.h"

/* Where the run of coordinate i's group ends (group NULL: one run). */
static size_t run_end(const uint8_t *group, size_t i, size_t n)
{
    if (!group) return n;
    size_t j = i + 1;
    while (j < n && group[j] == group[i]) j++;
    return j;
}

l2l_status l2l_tiling_create(l2l_tiling *t, const l2l_lstm *net, size_t n, const uint8_t *group,
                             l2l_error *err)
{
    memset(t, 0, sizeof *t);
    const int G = net->cfg.groups;
    if (G > 1 && !group && n > 0)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "the optimizer has %d parameter groups but was not told which "
                             "coordinate is in which (l2l_optimizer_create_groups)", G);
    if (G == 1) group = NULL; /* one LSTM for all: a task's groups do not matter */
    /* Count, check, then fill: runs cannot outnumber the coordinates. */
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        const int g = group ? group[i] : 0;
        if (g >= G)
            return l2l_error_set(err, L2L_STATUS_ARG,
                                 "coordinate %zu is in parameter group %d, but the optimizer has "
                                 "groups 0..%d only", i, g, G - 1);
        const size_t j = run_end(group, i, n);
        count += (j - i + TILE - 1) / TILE;
        i = j;
    }
    t->tile = l2l_alloc((count ? count : 1) * sizeof *t->tile);
    if (!t->tile)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the tiles of %zu coordinates", n);
    for (size_t i = 0; i < n;) {
        const int g = group ? group[i] : 0;
        const size_t j = run_end(group, i, n);
        for (size_t k = i; k < j; k += TILE)
            t->tile[t->n_tiles++] = (l2l_tile){k, (int)(j - k < TILE ? j - k : TILE), g};
        i = j;
    }
    t->n = n;
    return L2L_STATUS_OK;
}

void l2l_tiling_free(l2l_tiling *t)
{
    l2l_free(t->tile);
    memset(t, 0, sizeof *t);
}
