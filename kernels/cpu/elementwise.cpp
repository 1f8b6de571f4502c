// elementwise: the typed loops behind unary, clip, binary, where and broadcast_copy.

// Compiled with -fno-trapping-math (kernels/CMakeLists.txt): selects whose arms do float math
// are only if-converted (and so vectorized) when GCC may assume floating-point traps are off;
// troupe never reads FP exception flags.

#include "kernels/cpu/elementwise.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "kernels/cpu/vector_math.hpp"

// Hot loops get AVX-512 and AVX2 clones picked at load time; the build has no -march.
// clang (the fuzz build) cannot clone templates, and ThreadSanitizer crashes in ifunc
// resolvers that run before it is initialized: there the loops stay generic.
#if defined(__clang__) || defined(__SANITIZE_THREAD__)
#define TROUPE_CLONES
#else
#define TROUPE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

namespace troupe::cpu {
namespace {

/// Calls f.template operator()<T>() with the C++ type of a numeric dtype; false if none.
template <class F>
bool visit_numeric(dtype t, F&& f) {
  switch (t) {
    case dtype::f32: f.template operator()<float>(); return true;
    case dtype::f64: f.template operator()<double>(); return true;
    case dtype::i8: f.template operator()<int8_t>(); return true;
    case dtype::i16: f.template operator()<int16_t>(); return true;
    case dtype::i32: f.template operator()<int32_t>(); return true;
    case dtype::i64: f.template operator()<int64_t>(); return true;
    case dtype::u8: f.template operator()<uint8_t>(); return true;
    case dtype::u16: f.template operator()<uint16_t>(); return true;
    case dtype::u32: f.template operator()<uint32_t>(); return true;
    case dtype::u64: f.template operator()<uint64_t>(); return true;
    default: return false;
  }
}

// Integer arithmetic wraps (two's complement) instead of overflowing, through an unsigned type
// at least as wide as int so small types do not promote to signed int.
template <class T>
using wrap_t = std::conditional_t<(sizeof(T) <= 4), uint32_t, uint64_t>;

template <class T>
T wrap_neg(T x) {
  return static_cast<T>(wrap_t<T>{0} - static_cast<wrap_t<T>>(x));
}

// ---- unary -------------------------------------------------------------------------------

template <unary_op Op>
inline float unary_one(float x, const unary_params& p) {
  if constexpr (Op == unary_op::identity) return x;
  else if constexpr (Op == unary_op::relu) return x < 0.0f ? 0.0f : x;
  else if constexpr (Op == unary_op::leaky_relu) return x < 0.0f ? p.alpha * x : x;
  else if constexpr (Op == unary_op::sigmoid) return vmath::sigmoid(x);
  else if constexpr (Op == unary_op::tanh) return vmath::tanh(x);
  else if constexpr (Op == unary_op::sqrt) return std::sqrt(x);
  else if constexpr (Op == unary_op::erf) return vmath::erf(x);
  else if constexpr (Op == unary_op::exp) return vmath::exp(x);
  else if constexpr (Op == unary_op::log) return vmath::log(x);
  else if constexpr (Op == unary_op::neg) return -x;
  else if constexpr (Op == unary_op::abs) return std::fabs(x);
  else if constexpr (Op == unary_op::reciprocal) return 1.0f / x;
  else if constexpr (Op == unary_op::floor) return std::floor(x);
  else if constexpr (Op == unary_op::ceil) return std::ceil(x);
  else if constexpr (Op == unary_op::round) return std::nearbyint(x); // half to even
  else if constexpr (Op == unary_op::sign)
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); // keeps 0, -0 and NaN
  else if constexpr (Op == unary_op::hard_sigmoid) {
    float v = p.alpha * x + p.beta;
    v = v < 0.0f ? 0.0f : v;
    return v > 1.0f ? 1.0f : v;
  } else if constexpr (Op == unary_op::hard_swish) {
    float v = x * (1.0f / 6.0f) + 0.5f;
    v = v < 0.0f ? 0.0f : v;
    return x * (v > 1.0f ? 1.0f : v);
  } else if constexpr (Op == unary_op::softplus) {
    // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), which neither overflows nor underflows.
    float ax = std::fabs(x);
    return (x > 0.0f ? x : 0.0f) + vmath::log1p(vmath::exp(-ax));
  } else if constexpr (Op == unary_op::softsign) return x / (1.0f + std::fabs(x));
  else if constexpr (Op == unary_op::elu) return x < 0.0f ? p.alpha * vmath::expm1(x) : x;
  else if constexpr (Op == unary_op::selu) return p.gamma * (x <= 0.0f ? p.alpha * vmath::expm1(x) : x);
  else if constexpr (Op == unary_op::celu) {
    float neg = p.alpha * vmath::expm1(x / p.alpha);
    return x < 0.0f ? neg : x;
  } else if constexpr (Op == unary_op::thresholded_relu) return x > p.alpha ? x : 0.0f;
  else if constexpr (Op == unary_op::square) return x * x;
  else {
    static_assert(Op == unary_op::cube);
    return x * x * x;
  }
}

template <unary_op Op>
TROUPE_CLONES void unary_f32_run(const float* x, float* y, int64_t n, const unary_params& p) {
  const unary_params q = p; // a local copy: stores to y cannot change it
  for (int64_t i = 0; i < n; ++i)
    y[i] = unary_one<Op>(x[i], q);
}

using unary_f32_fn = void (*)(const float*, float*, int64_t, const unary_params&);

template <size_t... I>
std::array<unary_f32_fn, sizeof...(I)> make_unary_f32_table(std::index_sequence<I...>) {
  return {&unary_f32_run<static_cast<unary_op>(I)>...};
}

constexpr size_t unary_op_count = static_cast<size_t>(unary_op::cube) + 1;

const std::array<unary_f32_fn, unary_op_count>& unary_f32_table() {
  static const auto table = make_unary_f32_table(std::make_index_sequence<unary_op_count>{});
  return table;
}

bool unary_int_op(unary_op op) {
  return op == unary_op::identity || op == unary_op::relu || op == unary_op::neg ||
         op == unary_op::abs || op == unary_op::sign;
}

// Signed integers only (unary_supported); other ops and types are identity.
template <class T>
void unary_int_run(unary_op op, const T* x, T* y, int64_t n) {
  if constexpr (std::is_signed_v<T>) {
    if (op == unary_op::relu) {
      for (int64_t i = 0; i < n; ++i)
        y[i] = x[i] < 0 ? T{0} : x[i];
      return;
    }
    if (op == unary_op::neg) {
      for (int64_t i = 0; i < n; ++i)
        y[i] = wrap_neg(x[i]);
      return;
    }
    if (op == unary_op::abs) {
      for (int64_t i = 0; i < n; ++i)
        y[i] = x[i] < 0 ? wrap_neg(x[i]) : x[i];
      return;
    }
    if (op == unary_op::sign) {
      for (int64_t i = 0; i < n; ++i)
        y[i] = static_cast<T>((x[i] > 0) - (x[i] < 0));
      return;
    }
  }
  if (x != y)
    std::memcpy(y, x, static_cast<size_t>(n) * sizeof(T));
}

// ---- clip --------------------------------------------------------------------------------

template <class T>
TROUPE_CLONES void clip_run(const T* x, T* y, int64_t n, T lo, T hi) {
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

template <class T>
T lowest_of() {
  if constexpr (std::is_floating_point_v<T>)
    return -std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::lowest();
}

template <class T>
T highest_of() {
  if constexpr (std::is_floating_point_v<T>)
    return std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::max();
}

// ---- binary ------------------------------------------------------------------------------

constexpr bool is_compare(binary_op op) {
  return op == binary_op::equal || op == binary_op::less || op == binary_op::greater ||
         op == binary_op::less_equal || op == binary_op::greater_equal;
}

constexpr bool is_logical(binary_op op) {
  return op == binary_op::logical_and || op == binary_op::logical_or ||
         op == binary_op::logical_xor;
}

template <binary_op Op, class T>
using result_of = std::conditional_t<is_compare(Op) || is_logical(Op), uint8_t, T>;

/// Integer base^exp by squaring, wrapping on overflow; negative exponents give 0 except for
/// bases 1 and -1 (as the exact result truncates).
template <class T>
T int_pow(T base, T exp) {
  if constexpr (std::is_signed_v<T>) {
    if (exp < 0) {
      if (base == 1)
        return 1;
      if (base == -1)
        return (exp & 1) ? T(-1) : T(1);
      return 0;
    }
  }
  wrap_t<T> result = 1, b = static_cast<wrap_t<T>>(base);
  for (auto e = static_cast<std::make_unsigned_t<T>>(exp); e != 0; e >>= 1) {
    if (e & 1)
      result *= b;
    b *= b;
  }
  return static_cast<T>(result);
}

template <binary_op Op, class T>
inline result_of<Op, T> binary_one(T a, T b) {
  constexpr bool is_int = std::is_integral_v<T>;
  using W = std::conditional_t<is_int, wrap_t<T>, T>;
  if constexpr (Op == binary_op::add) return static_cast<T>(W(a) + W(b));
  else if constexpr (Op == binary_op::sub) return static_cast<T>(W(a) - W(b));
  else if constexpr (Op == binary_op::mul) return static_cast<T>(W(a) * W(b));
  else if constexpr (Op == binary_op::div) return a / b; // integer case handled by the caller
  else if constexpr (Op == binary_op::pow) {
    if constexpr (is_int) return int_pow(a, b);
    else return std::pow(a, b);
  } else if constexpr (Op == binary_op::max) {
    if constexpr (is_int) return a > b ? a : b;
    else return (a != a || b != b) ? a + b : (a > b ? a : b); // NaN wins, as in numpy
  } else if constexpr (Op == binary_op::min) {
    if constexpr (is_int) return a < b ? a : b;
    else return (a != a || b != b) ? a + b : (a < b ? a : b);
  } else if constexpr (Op == binary_op::fmod) {
    if constexpr (is_int) return a % b; // b != 0, -1 handled by the caller
    else return std::fmod(a, b);
  } else if constexpr (Op == binary_op::mod) {
    T r = static_cast<T>(a % b); // the result takes the divisor's sign, as Python's %
    if constexpr (std::is_signed_v<T>)
      return (r != 0 && ((r < 0) != (b < 0))) ? static_cast<T>(r + b) : r;
    else return r;
  } else if constexpr (Op == binary_op::prelu) {
    if constexpr (std::is_unsigned_v<T>) return a;
    else if constexpr (is_int) return a < 0 ? static_cast<T>(W(a) * W(b)) : a;
    else return a < 0 ? a * b : a;
  } else if constexpr (Op == binary_op::equal) return a == b;
  else if constexpr (Op == binary_op::less) return a < b;
  else if constexpr (Op == binary_op::greater) return a > b;
  else if constexpr (Op == binary_op::less_equal) return a <= b;
  else if constexpr (Op == binary_op::greater_equal) return a >= b;
  else if constexpr (Op == binary_op::logical_and) return (a != 0) & (b != 0);
  else if constexpr (Op == binary_op::logical_or) return (a != 0) | (b != 0);
  else {
    static_assert(Op == binary_op::logical_xor);
    return (a != 0) ^ (b != 0);
  }
}

template <binary_op Op, class T>
constexpr bool checks_zero_divisor =
    std::is_integral_v<T> &&
    (Op == binary_op::div || Op == binary_op::mod || Op == binary_op::fmod);

template <binary_op Op, class T, bool SA, bool SB>
__attribute__((always_inline)) inline bool binary_body(const void* pa, const void* pb, void* po,
                                                      int64_t n) {
  const T* a = static_cast<const T*>(pa);
  const T* b = static_cast<const T*>(pb);
  auto* y = static_cast<result_of<Op, T>*>(po);
  if constexpr (checks_zero_divisor<Op, T>) {
    // Integer division does not vectorize; guard the two inputs x86 traps on.
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) {
      T av = a[SA ? i : 0], bv = b[SB ? i : 0];
      if (bv == 0) {
        ok = false;
        y[i] = 0;
        continue;
      }
      if constexpr (std::is_signed_v<T>) {
        if (bv == T(-1)) {
          y[i] = Op == binary_op::div ? wrap_neg(av) : T{0};
          continue;
        }
      }
      y[i] = binary_one<Op, T>(av, bv);
    }
    return ok;
  } else {
    for (int64_t i = 0; i < n; ++i)
      y[i] = binary_one<Op, T>(a[SA ? i : 0], b[SB ? i : 0]);
    return true;
  }
}

template <binary_op Op, class T, bool SA, bool SB>
TROUPE_CLONES bool binary_run_cloned(const void* a, const void* b, void* y, int64_t n) {
  return binary_body<Op, T, SA, SB>(a, b, y, n);
}

template <binary_op Op, class T, bool SA, bool SB>
bool binary_run_plain(const void* a, const void* b, void* y, int64_t n) {
  return binary_body<Op, T, SA, SB>(a, b, y, n);
}

// Only the types real models compute on in hot loops get ISA clones (code size).
template <class T>
constexpr bool hot_type = std::is_same_v<T, float> || std::is_same_v<T, int32_t> ||
                          std::is_same_v<T, int64_t>;

template <binary_op Op, class T, bool SA, bool SB>
binary_kernel::run_fn binary_run_of() {
  if constexpr (hot_type<T> && !checks_zero_divisor<Op, T> && Op != binary_op::pow)
    return &binary_run_cloned<Op, T, SA, SB>;
  else
    return &binary_run_plain<Op, T, SA, SB>;
}

// Booleans only for logic and Equal; Mod (Python-style) only on integers, as ONNX requires
// fmod=1 for floats.
template <binary_op Op, class T>
constexpr bool binary_defined =
    std::is_same_v<T, bool> ? (is_logical(Op) || Op == binary_op::equal)
    : is_logical(Op)        ? false
    : Op == binary_op::mod  ? std::is_integral_v<T>
                            : true;

/// The four run functions of Op on T, or nulls when Op is not defined on T.
template <binary_op Op, class T>
std::array<binary_kernel::run_fn, 4> binary_runs() {
  if constexpr (!binary_defined<Op, T>) {
    return {};
  } else {
    // Booleans are bytes; any nonzero byte reads as true.
    using E = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;
    return {binary_run_of<Op, E, false, false>(), binary_run_of<Op, E, false, true>(),
            binary_run_of<Op, E, true, false>(), binary_run_of<Op, E, true, true>()};
  }
}

template <class T>
std::array<binary_kernel::run_fn, 4> binary_runs_for(binary_op op) {
  switch (op) {
    case binary_op::add: return binary_runs<binary_op::add, T>();
    case binary_op::sub: return binary_runs<binary_op::sub, T>();
    case binary_op::mul: return binary_runs<binary_op::mul, T>();
    case binary_op::div: return binary_runs<binary_op::div, T>();
    case binary_op::pow: return binary_runs<binary_op::pow, T>();
    case binary_op::max: return binary_runs<binary_op::max, T>();
    case binary_op::min: return binary_runs<binary_op::min, T>();
    case binary_op::mod: return binary_runs<binary_op::mod, T>();
    case binary_op::fmod: return binary_runs<binary_op::fmod, T>();
    case binary_op::prelu: return binary_runs<binary_op::prelu, T>();
    case binary_op::equal: return binary_runs<binary_op::equal, T>();
    case binary_op::less: return binary_runs<binary_op::less, T>();
    case binary_op::greater: return binary_runs<binary_op::greater, T>();
    case binary_op::less_equal: return binary_runs<binary_op::less_equal, T>();
    case binary_op::greater_equal: return binary_runs<binary_op::greater_equal, T>();
    case binary_op::logical_and: return binary_runs<binary_op::logical_and, T>();
    case binary_op::logical_or: return binary_runs<binary_op::logical_or, T>();
    case binary_op::logical_xor: return binary_runs<binary_op::logical_xor, T>();
  }
  return {};
}

// ---- where and copy ----------------------------------------------------------------------

template <class T, bool SC, bool SX, bool SY>
TROUPE_CLONES void where_run(const uint8_t* c, const T* x, const T* y, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = c[SC ? i : 0] ? x[SX ? i : 0] : y[SY ? i : 0];
}

template <class T>
void where_typed(const broadcast_plan& plan, const uint8_t* cond, const T* x, const T* y,
                 T* out) {
  using fn = void (*)(const uint8_t*, const T*, const T*, T*, int64_t);
  static const std::array<fn, 8> runs{
      &where_run<T, false, false, false>, &where_run<T, false, false, true>,
      &where_run<T, false, true, false>,  &where_run<T, false, true, true>,
      &where_run<T, true, false, false>,  &where_run<T, true, false, true>,
      &where_run<T, true, true, false>,   &where_run<T, true, true, true>};
  const fn run = runs[static_cast<size_t>(plan.inner_step[0] * 4 + plan.inner_step[1] * 2 +
                                          plan.inner_step[2])];
  for_each_run(plan, [&](int64_t o, const int64_t* offs, int64_t len) {
    run(cond + offs[0], x + offs[1], y + offs[2], out + o, len);
  });
}

template <class T>
void copy_typed(const broadcast_plan& plan, const T* a, T* out) {
  for_each_run(plan, [&](int64_t o, const int64_t* offs, int64_t len) {
    if (plan.inner_step[0]) {
      std::memcpy(out + o, a + offs[0], static_cast<size_t>(len) * sizeof(T));
    } else {
      const T v = a[offs[0]];
      std::fill(out + o, out + o + len, v);
    }
  });
}

} // namespace

// ---- public ------------------------------------------------------------------------------

bool unary_supported(unary_op op, dtype t) {
  if (t == dtype::f32)
    return true;
  const bool signed_int = t == dtype::i8 || t == dtype::i16 || t == dtype::i32 || t == dtype::i64;
  return is_integral(t) && (op == unary_op::identity || (signed_int && unary_int_op(op)));
}

void unary(unary_op op, dtype t, const void* x, void* y, int64_t n, const unary_params& p) {
  if (t == dtype::f32) {
    const unary_f32_fn fn = unary_f32_table()[static_cast<size_t>(op)];
    const auto* xf = static_cast<const float*>(x);
    auto* yf = static_cast<float*>(y);
    parallel_ranges(n, [&](int64_t b, int64_t e) { fn(xf + b, yf + b, e - b, p); });
    return;
  }
  visit_numeric(t, [&]<class T>() {
    if constexpr (std::is_integral_v<T>)
      unary_int_run(op, static_cast<const T*>(x), static_cast<T*>(y), n);
  });
}

bool clip_supported(dtype t) { return t == dtype::f32 || t == dtype::f64 || is_integral(t); }

void clip(dtype t, const void* x, void* y, int64_t n, const void* lo, const void* hi) {
  visit_numeric(t, [&]<class T>() {
    const T l = lo ? *static_cast<const T*>(lo) : lowest_of<T>();
    const T h = hi ? *static_cast<const T*>(hi) : highest_of<T>();
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    parallel_ranges(n, [&](int64_t b, int64_t e) { clip_run<T>(xs + b, ys + b, e - b, l, h); });
  });
}

dtype binary_result_type(binary_op op, dtype t) {
  return is_compare(op) || is_logical(op) ? dtype::boolean : t;
}

expected<binary_kernel> binary_kernel::make(binary_op op, dtype t) {
  binary_kernel k;
  auto pick = [&]<class T>() { k.runs_ = binary_runs_for<T>(op); };
  if (t == dtype::boolean)
    pick.template operator()<bool>();
  else
    visit_numeric(t, pick);
  if (k.runs_[0] == nullptr)
    return make_error(errc::unsupported, "this operation is not defined on {}", to_string(t));
  k.in_size_ = size_of(t);
  k.out_size_ = size_of(binary_result_type(op, t));
  return k;
}

status binary_kernel::run(const broadcast_plan& plan, const void* a, const void* b,
                          void* out) const {
  const run_fn fn = runs_[static_cast<size_t>(plan.inner_step[0] * 2 + plan.inner_step[1])];
  const auto* pa = static_cast<const std::byte*>(a);
  const auto* pb = static_cast<const std::byte*>(b);
  auto* po = static_cast<std::byte*>(out);
  std::atomic<bool> ok{true};
  for_each_run(plan, [&](int64_t o, const int64_t* offs, int64_t len) {
    if (!fn(pa + offs[0] * static_cast<int64_t>(in_size_),
            pb + offs[1] * static_cast<int64_t>(in_size_),
            po + o * static_cast<int64_t>(out_size_), len))
      ok.store(false, std::memory_order_relaxed);
  });
  if (!ok.load())
    return make_error(errc::invalid_argument, "integer division by zero");
  return {};
}

void where(const broadcast_plan& plan, const uint8_t* cond, const void* x, const void* y,
           void* out, size_t elem_size) {
  auto typed = [&]<class T>() {
    where_typed<T>(plan, cond, static_cast<const T*>(x), static_cast<const T*>(y),
                   static_cast<T*>(out));
  };
  switch (elem_size) {
    case 1: typed.template operator()<uint8_t>(); break;
    case 2: typed.template operator()<uint16_t>(); break;
    case 4: typed.template operator()<uint32_t>(); break;
    default: typed.template operator()<uint64_t>(); break;
  }
}

void broadcast_copy(const broadcast_plan& plan, const void* a, void* out, size_t elem_size) {
  auto typed = [&]<class T>() {
    copy_typed<T>(plan, static_cast<const T*>(a), static_cast<T*>(out));
  };
  switch (elem_size) {
    case 1: typed.template operator()<uint8_t>(); break;
    case 2: typed.template operator()<uint16_t>(); break;
    case 4: typed.template operator()<uint32_t>(); break;
    default: typed.template operator()<uint64_t>(); break;
  }
}

} // namespace troupe::cpu
