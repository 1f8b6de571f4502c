// vector_math: branch-free float32 exp, log, tanh and erf that GCC can vectorize in loops.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

// These are written as selects over values computed on every path (no early returns), so
// loops that call them if-convert and vectorize. libm's versions are scalar calls. Relative
// errors are about 1e-7 (exp, log, tanh) and below 5e-7 (erf), against double references.
namespace troupe::cpu::vmath {

inline float bits_to_float(uint32_t b) { return std::bit_cast<float>(b); }
inline uint32_t float_to_bits(float f) { return std::bit_cast<uint32_t>(f); }

/// e^x; 0 below -87.33 (where the result would be subnormal), inf above 88.72.
inline float exp(float x) {
  constexpr float lo = -87.33f, hi = 88.7228f;
  constexpr float log2e = 1.44269504088896341f;
  constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  constexpr float round_magic = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
  float xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  // x = n ln2 + r with |r| <= ln2/2; e^x = 2^n e^r.
  float t = xc * log2e + round_magic;
  uint32_t n = float_to_bits(t) - float_to_bits(round_magic);
  float nf = t - round_magic;
  float r = xc - nf * ln2_hi;
  r = r - nf * ln2_lo;
  // Least-squares fit of e^r on [-ln2/2, ln2/2] (relative error 1e-7).
  float p = 0.0013829420786350965f;
  p = p * r + 0.008374771103262901f;
  p = p * r + 0.0416683591902256f;
  p = p * r + 0.1666642129421234f;
  p = p * r + 0.49999991059303284f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // Scale by 2^n through the exponent bits; the clamps keep the biased exponent in [1, 254].
  float y = bits_to_float(float_to_bits(p) + (n << 23));
  y = x < lo ? 0.0f : y;
  y = x > hi ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : y;
}

/// e^x - 1, accurate relative to the result near 0 where exp(x) - 1 cancels.
inline float expm1(float x) {
  // Taylor series for |x| < 0.35: the first omitted term is below 2e-10 of the result.
  float p = 1.0f / 40320.0f;
  p = p * x + 1.0f / 5040.0f;
  p = p * x + 1.0f / 720.0f;
  p = p * x + 1.0f / 120.0f;
  p = p * x + 1.0f / 24.0f;
  p = p * x + 1.0f / 6.0f;
  p = p * x + 0.5f;
  p = p * x + 1.0f;
  float small = p * x;
  float large = exp(x) - 1.0f;
  return (x > -0.35f && x < 0.35f) ? small : large;
}

/// Natural log; -inf at 0, NaN below 0, inf at inf, exact for subnormal inputs.
inline float log(float x) {
  constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  // Subnormals: scale by 2^23 first so the exponent field is meaningful.
  bool tiny = x < 1.17549435e-38f;
  float xs = tiny ? x * 8388608.0f : x;
  uint32_t b = float_to_bits(xs);
  // Split xs = 2^e * m with m in [sqrt(1/2), sqrt(2)).
  uint32_t shifted = b - 0x3f3504f3u; // bits of sqrt(1/2)
  int32_t e = static_cast<int32_t>(shifted) >> 23;
  float m = bits_to_float(b - (static_cast<uint32_t>(e) << 23));
  float ef = static_cast<float>(e) - (tiny ? 23.0f : 0.0f);
  // log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172: odd series to s^9.
  float s = (m - 1.0f) / (m + 1.0f);
  float s2 = s * s;
  float q = 1.0f / 9.0f;
  q = q * s2 + 1.0f / 7.0f;
  q = q * s2 + 1.0f / 5.0f;
  q = q * s2 + 1.0f / 3.0f;
  q = q * s2 + 1.0f;
  float y = ef * ln2_hi + (ef * ln2_lo + 2.0f * s * q);
  y = x == 0.0f ? -std::numeric_limits<float>::infinity() : y;
  y = x < 0.0f ? std::numeric_limits<float>::quiet_NaN() : y;
  y = x == std::numeric_limits<float>::infinity() ? x : y;
  return x != x ? x : y;
}

/// log(1 + x), accurate for tiny x (the rounding of 1 + x is corrected for).
inline float log1p(float x) {
  float u = 1.0f + x;
  float d = u - 1.0f;
  float y = log(u) * (x / (d == 0.0f ? 1.0f : d));
  y = d == 0.0f ? x : y;
  return u == std::numeric_limits<float>::infinity() ? u : y;
}

inline float tanh(float x) {
  float ax = x < 0.0f ? -x : x;
  // |x| < 0.625: least-squares fit of tanh(x)/x in x^2.
  float z = x * x;
  float p = -0.005709965247660875f;
  p = p * z + 0.020642254501581192f;
  p = p * z + -0.053739842027425766f;
  p = p * z + 0.13331419229507446f;
  p = p * z + -0.33333277702331543f;
  p = p * z + 1.0f;
  float small = x * p;
  // Otherwise 1 - 2/(e^2|x| + 1), which goes to exactly 1 as e^2|x| overflows.
  float big = 1.0f - 2.0f / (exp(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < 0.625f ? small : big;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

inline float erf(float x) {
  float ax = x < 0.0f ? -x : x;
  // |x| < 0.5: Maclaurin series x * 2/sqrt(pi) * sum (-x^2)^k / (k! (2k+1)), k <= 6.
  float z = x * x;
  float p = 1.0f / 9360.0f;
  p = p * z - 1.0f / 1320.0f;
  p = p * z + 1.0f / 216.0f;
  p = p * z - 1.0f / 42.0f;
  p = p * z + 1.0f / 10.0f;
  p = p * z - 1.0f / 3.0f;
  p = p * z + 1.0f;
  float small = x * p * 1.12837916709551257f;
  // Otherwise Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, relative below 3e-7
  // because erf(0.5) > 0.5.
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float q = 1.061405429f;
  q = q * t - 1.453152027f;
  q = q * t + 1.421413741f;
  q = q * t - 0.284496736f;
  q = q * t + 0.254829592f;
  float big = 1.0f - q * t * exp(-z);
  big = x < 0.0f ? -big : big;
  return ax < 0.5f ? small : big;
}

} // namespace troupe::cpu::vmath
