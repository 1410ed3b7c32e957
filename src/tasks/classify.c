/* The classification tasks' shared pieces (classify.h). */
#include <math.h>

#include "tasks/classify.h"

void l2l_pool_draw(uint32_t *perm, size_t n, int pool, l2l_rng *rng)
{
    for (size_t j = 0; j < n; j++) perm[j] = (uint32_t)j;
    for (size_t j = 0; j < (size_t)pool; j++) {
        const size_t k = j + (size_t)l2l_rng_below(rng, n - j);
        const uint32_t t = perm[j];
        perm[j] = perm[k];
        perm[k] = t;
    }
}

double l2l_softmax_xent(const float *z, const uint8_t *labels, int B, int K, float *dz)
{
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        const float *row = z + (size_t)i * K;
        float m = row[0];
        for (int j = 1; j < K; j++) m = row[j] > m ? row[j] : m;
        double s = 0.0;
        for (int j = 0; j < K; j++) s += exp((double)row[j] - m);
        const double lse = m + log(s);
        total += lse - row[labels[i]];
        if (dz) {
            float *drow = dz + (size_t)i * K;
            for (int j = 0; j < K; j++)
                drow[j] = (float)((exp((double)row[j] - lse) - (j == labels[i])) / B);
        }
    }
    return total / B;
}
