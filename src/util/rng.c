/* xoshiro256** (Blackman & Vigna) seeded through splitmix64; all state is explicit. */
#include <math.h>

#include "util/util.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void l2l_rng_seed(l2l_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Mix the stream into the seed through one splitmix round so (s, k) and (s', k')
     * pairs do not collide by simple arithmetic. */
    uint64_t x = seed;
    uint64_t mixed = splitmix64(&x) ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&mixed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t l2l_rng_u64(l2l_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double l2l_rng_uniform(l2l_rng *rng) { return (double)(l2l_rng_u64(rng) >> 11) * 0x1.0p-53; }

uint64_t l2l_rng_below(l2l_rng *rng, uint64_t bound)
{
    L2L_ASSERT(bound > 0);
    /* Rejection sampling: unbiased for every bound. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = l2l_rng_u64(rng);
    while (x >= limit);
    return x % bound;
}

double l2l_rng_normal(l2l_rng *rng)
{
    /* Box-Muller, one value per call (no cached second value: no hidden state). */
    double u1 = 1.0 - l2l_rng_uniform(rng); /* (0, 1] */
    double u2 = l2l_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double l2l_rng_truncnormal(l2l_rng *rng, double std)
{
    double z;
    do z = l2l_rng_normal(rng);
    while (fabs(z) > 2.0);
    return z * std;
}
