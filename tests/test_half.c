/* test_half.c: float16 <-> float32: every one of the 65536 binary16 values
 * widens and narrows back to itself (NaNs stay NaN), and spot values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "distill/half.h"

Test(half, every_half_round_trips_through_float)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dk_half_to_float((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            cr_assert(isnan(f), "0x%04x", h);
            continue;
        }
        cr_assert_eq(dk_half_from_float(f), h, "0x%04x -> %g -> 0x%04x", h, f,
                     dk_half_from_float(f));
    }
    cr_assert_eq(dk_half_to_float(0x3c00), 1.0f);
    cr_assert_eq(dk_half_to_float(0xc000), -2.0f);
    cr_assert_eq(dk_half_to_float(0x7bff), 65504.0f);
    cr_assert_eq(dk_half_to_float(0x0001), ldexpf(1, -24));
    cr_assert(isinf(dk_half_to_float(0xfc00)) && dk_half_to_float(0xfc00) < 0);
    cr_assert(signbit(dk_half_to_float(0x8000)));
}
