/* The Adam update rule, shared by the Adam baseline (optimizer.c), meta-Adam on phi
 * (src/meta/train.c) and the benchmark; not part of the API. */
#ifndef L2L_ADAM_H
#define L2L_ADAM_H

#include <stddef.h>

/* One bias-corrected Adam step on x (n) from the gradient g (n), moments m, v (n) updated
 * in place, t the 1-based step count (Torch7/TensorFlow form):
 *   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g²,
 *   x -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps). */
void l2l_adam_update(size_t n, float *x, const float *g, float *m, float *v, long t, float lr,
                     float beta1, float beta2, float eps);

#endif
