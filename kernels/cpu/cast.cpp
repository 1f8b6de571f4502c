// cast: per-pair conversion loops and the float16/bfloat16 bit conversions.

// Compiled with -fno-trapping-math, as elementwise.cpp: lets GCC if-convert float selects so
// the loops vectorize.

#include "kernels/cpu/cast.hpp"

#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/broadcast_plan.hpp"

namespace troupe::cpu {

uint16_t float_to_half(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t mag = bits & 0x7fffffffu;
  if (mag >= 0x7f800000u) // inf, or NaN with its top payload bits and the quiet bit set
    return static_cast<uint16_t>(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u | ((mag >> 13) & 0x3ffu) : 0u));
  if (mag >= 0x477ff000u) // >= 65520 rounds to inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (mag < 0x38800000u) {
    // Below the smallest normal half (2^-14): adding 0.5 rounds |x| to a multiple of 2^-24
    // (nearest even); the ulps above 0.5 are the subnormal half's bits (0x400 is 2^-14).
    const float rounded = std::bit_cast<float>(mag) + 0.5f;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(rounded) - 0x3f000000u));
  }
  // Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a carry
  // out of the mantissa correctly bumps the exponent.
  const uint32_t odd = (mag >> 13) & 1u;
  return static_cast<uint16_t>(sign | ((mag - 0x38000000u + 0xfffu + odd) >> 13));
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t body = static_cast<uint32_t>(h & 0x7fffu) << 13;
  // As float bits, body is the value scaled by 2^-112 (subnormals included); scale it back.
  const float scaled = std::bit_cast<float>(body) * 0x1p112f;
  const uint32_t finite = std::bit_cast<uint32_t>(scaled);
  const uint32_t special = body | 0x7f800000u; // exponent 31: inf or NaN
  return std::bit_cast<float>(sign | ((h & 0x7c00u) == 0x7c00u ? special : finite));
}

uint16_t float_to_bfloat16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40u); // keep NaN a (quiet) NaN
  const uint32_t odd = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + odd) >> 16);
}

float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

namespace {

// Element types: half and bfloat16 are tagged bit patterns, bool is a byte.
struct half_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};
struct bool_t {
  uint8_t byte;
};

template <class F>
bool visit_castable(dtype t, F&& f) {
  switch (t) {
    case dtype::f32: f.template operator()<float>(); return true;
    case dtype::f64: f.template operator()<double>(); return true;
    case dtype::f16: f.template operator()<half_t>(); return true;
    case dtype::bf16: f.template operator()<bf16_t>(); return true;
    case dtype::i8: f.template operator()<int8_t>(); return true;
    case dtype::i16: f.template operator()<int16_t>(); return true;
    case dtype::i32: f.template operator()<int32_t>(); return true;
    case dtype::i64: f.template operator()<int64_t>(); return true;
    case dtype::u8: f.template operator()<uint8_t>(); return true;
    case dtype::u16: f.template operator()<uint16_t>(); return true;
    case dtype::u32: f.template operator()<uint32_t>(); return true;
    case dtype::u64: f.template operator()<uint64_t>(); return true;
    case dtype::boolean: f.template operator()<bool_t>(); return true;
    default: return false;
  }
}

/// The value of a source element as an arithmetic type (float for the 16-bit floats).
template <class S>
auto widen(S v) {
  if constexpr (std::is_same_v<S, half_t>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<S, bf16_t>) return bfloat16_to_float(v.bits);
  else if constexpr (std::is_same_v<S, bool_t>) return static_cast<uint8_t>(v.byte != 0);
  else return v;
}

/// Float to integer: truncate, saturate at the type's range, NaN to 0 (defined for any input).
template <class D, class F>
D float_to_int(F v) {
  constexpr F lo = static_cast<F>(std::numeric_limits<D>::lowest());
  constexpr F hi = static_cast<F>(std::numeric_limits<D>::max()); // may round up to 2^k
  if (!(v == v))
    return 0;
  if (v <= lo)
    return std::numeric_limits<D>::lowest();
  if (v >= hi)
    return std::numeric_limits<D>::max();
  return static_cast<D>(v);
}

template <class D, class V>
D narrow(V v) {
  if constexpr (std::is_same_v<D, half_t>) return {float_to_half(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, bf16_t>) return {float_to_bfloat16(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, bool_t>) return {static_cast<uint8_t>(v != 0)};
  else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<V>)
    return float_to_int<D>(v);
  else return static_cast<D>(v);
}

template <class S, class D>
void cast_run(const S* x, D* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = narrow<D>(widen(x[i]));
}

} // namespace

bool cast_supported(dtype t) { return visit_castable(t, []<class>() {}); }

void cast(dtype from, const void* x, dtype to, void* y, int64_t n) {
  if (from == to) {
    std::memcpy(y, x, static_cast<size_t>(n) * size_of(from));
    return;
  }
  visit_castable(from, [&]<class S>() {
    visit_castable(to, [&]<class D>() {
      const S* xs = static_cast<const S*>(x);
      D* ys = static_cast<D*>(y);
      parallel_ranges(n, [&](int64_t b, int64_t e) { cast_run(xs + b, ys + b, e - b); });
    });
  });
}

} // namespace troupe::cpu
