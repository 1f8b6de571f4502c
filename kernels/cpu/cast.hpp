// cast: element type conversion between every numeric dtype and bool, float16/bfloat16 included.
#pragma once

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::cpu {

/// IEEE binary16 bits of x, rounded to nearest even; overflow gives inf, NaN stays a quiet NaN.
uint16_t float_to_half(float x);
float half_to_float(uint16_t h);

/// bfloat16 bits of x (the high half of a float32), rounded to nearest even; NaN stays NaN.
uint16_t float_to_bfloat16(float x);
float bfloat16_to_float(uint16_t b);

/// Whether `cast` converts from/to t: the numeric types and bool (not string).
bool cast_supported(dtype t);

/// y[i] = x[i] converted from `from` to `to`, n elements. Floats to integers truncate toward
/// zero and saturate (NaN gives 0); integers narrow by wrapping; to bool is `!= 0`. Threads
/// over large n.
void cast(dtype from, const void* x, dtype to, void* y, int64_t n);

} // namespace troupe::cpu
