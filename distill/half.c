/* half.c: float32 -> binary16 conversion (see half.h). */
#include "distill/half.h"

#include <math.h>
#include <string.h>

uint16_t dk_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00); /* NaN, inf */
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* rounds beyond 65504 */
    if (ax < 0x38800000u) {                      /* below 2^-14: subnormal (exact scaling) */
        float af;
        memcpy(&af, &ax, sizeof af);
        return sign | (uint16_t)lrintf(af * 16777216.0f);
    }
    uint32_t r = ax - 0x38000000u;  /* rebias the exponent, 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u); /* round the 13 dropped bits to nearest even */
    return sign | (uint16_t)(r >> 13);
}

float dk_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float f = (float)mant * (1.0f / 16777216.0f);
        uint32_t x;
        memcpy(&x, &f, sizeof x);
        x |= sign;
        memcpy(&f, &x, sizeof f);
        return f;
    }
    uint32_t x = exp == 31 ? sign | 0x7f800000u | (mant << 13) /* inf, NaN (payload kept) */
                           : sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}
