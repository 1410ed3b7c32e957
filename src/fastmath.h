/* Branch-free exp, sigmoid and tanh in float that the compiler can vectorise (libm's
 * calls cannot be, without -ffast-math). Accuracy, checked against libm in
 * tests/test_fastmath.c over the whole float range that matters: exp within 2 ulp,
 * sigmoid and tanh within 4e-7 relative or 2e-8 absolute. IEEE semantics are kept:
 * only +, *, / and exact bit manipulation. */
#ifndef L2L_FASTMATH_H
#define L2L_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (Cody-Waite
 * with a two-part ln 2), e^r by a degree-7 Taylor polynomial (truncation < 2e-9 on
 * that interval), 2^n assembled in the exponent bits. Inputs are clamped to
 * [-87, 88] so 2^n stays a normal float; exp of anything below underflows to ~1.6e-38,
 * which every caller here treats as 0. */
static inline float l2l_expf(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float n = __builtin_rintf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float l2l_sigmoidf(float a) { return 1.0f / (1.0f + l2l_expf(-a)); }

/* tanh: an odd Taylor series through a^11 for |a| < 0.25 (remainder < 3e-11 relative),
 * else 1 - 2 / (e^{2|a|} + 1) with the sign restored (absolute error ~1e-7). */
static inline float l2l_tanhf(float a)
{
    const float s = a < 0 ? -1.0f : 1.0f, x = a * s;
    const float x2 = x * x;
    float p = 21844.0f / 6081075.0f;
    p = p * x2 - 1382.0f / 155925.0f;
    p = p * x2 + 62.0f / 2835.0f;
    p = p * x2 - 17.0f / 315.0f;
    p = p * x2 + 2.0f / 15.0f;
    p = p * x2 - 1.0f / 3.0f;
    const float small = x + x * x2 * p;
    const float big = 1.0f - 2.0f / (l2l_expf(2.0f * x) + 1.0f);
    return s * (x < 0.25f ? small : big);
}

#endif
