/* half.h: float32 <-> IEEE binary16 (numpy's float16), rounding to nearest even.
 * dualkd converts itself rather than through HDF5, whose 1.10.8 conversion turns
 * values just below a power of two (1.99988) into the power below (1.0). */
#ifndef DK_HALF_H
#define DK_HALF_H

#include <stdint.h>

/* The binary16 bits of f: round to nearest even, overflow to inf, NaN kept. */
uint16_t dk_half_from_float(float f);

/* The float32 equal to binary16 bits h (exact: every binary16 is a float32). */
float dk_half_to_float(uint16_t h);

#endif
