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

/* tanh: the rational minimax approximation p(x)/q(x) (odd degree 13 over even degree 6)
 * used by Eigen's generic_fast_tanh_float, on x clamped to +-7.905311 where it reaches
 * float's 1 - ulp; for |x| < 4e-4, tanh x = x to float precision (and -0 stays -0).
 * One division and 12 multiply-adds, no exp: measured worst relative error 2.8e-7 on
 * [-40, 40] (tests/test_fastmath.c). */
static inline float l2l_tanhf(float a)
{
    const float clamp = 7.90531110763549805f;
    const float x = a > clamp ? clamp : a < -clamp ? -clamp : a;
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    const float r = (x * p) / q;
    return (a < 4e-4f && a > -4e-4f) ? a : r;
}

#endif
