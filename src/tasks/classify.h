/* What the classification tasks (mlp.c, conv.c) share: the example pool a sampled
 * network trains on, the draw of one minibatch example, and softmax cross-entropy. Not
 * part of the API. */
#ifndef L2L_TASKS_CLASSIFY_H
#define L2L_TASKS_CLASSIFY_H

#include "util/util.h"

/* A network's pool: perm[0..pool) becomes `pool` distinct indices of 0..n-1 drawn without
 * replacement (a partial Fisher-Yates shuffle of perm, which has n entries). */
void l2l_pool_draw(uint32_t *perm, size_t n, int pool, l2l_rng *rng);

/* One minibatch example, drawn with replacement: from the pool (pool > 0) or from all n. */
static inline size_t l2l_pool_pick(const uint32_t *perm, int pool, size_t n, l2l_rng *rng)
{
    return pool > 0 ? perm[l2l_rng_below(rng, (uint64_t)pool)] : (size_t)l2l_rng_below(rng, n);
}

/* Mean cross-entropy of the logits z (B, K) against labels, and, when dz is not NULL,
 * dz = (softmax(z) - onehot(y)) / B. Each row's log-sum-exp is shifted by its maximum and
 * summed in double. */
double l2l_softmax_xent(const float *z, const uint8_t *labels, int B, int K, float *dz);

#endif
