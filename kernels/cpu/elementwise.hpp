// elementwise: unary, broadcasting binary and select kernels over raw typed buffers.
#pragma once

#include <array>
#include <cstdint>

#include "kernels/cpu/broadcast_plan.hpp"
#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe::cpu {

enum class unary_op : uint8_t {
  identity, relu, leaky_relu, sigmoid, tanh, sqrt, erf, exp, log, neg, abs, reciprocal,
  floor, ceil, round, sign, hard_sigmoid, hard_swish, softplus, softsign, elu, selu, celu,
  thresholded_relu, square, cube,
};

/// Op parameters, named as in ONNX: alpha (LeakyRelu, Elu, Selu, Celu, HardSigmoid,
/// ThresholdedRelu), beta (HardSigmoid), gamma (Selu).
struct unary_params {
  float alpha = 0.0f;
  float beta = 0.0f;
  float gamma = 0.0f;
};

/// Whether `unary` handles `op` on elements of type `t`: every op on float32; relu, neg, abs
/// and sign also on signed integers (wrapping), identity on every integer type.
bool unary_supported(unary_op op, dtype t);

/// y[i] = op(x[i]) for n elements of type t (x may equal y). Threads over large n.
void unary(unary_op op, dtype t, const void* x, void* y, int64_t n, const unary_params& p = {});

/// Whether `clip` handles type t (float32, float64 and the integer types).
bool clip_supported(dtype t);

/// y = min(max(x, *lo), *hi) for n elements of type t; a null bound is absent. NaN stays NaN.
void clip(dtype t, const void* x, void* y, int64_t n, const void* lo, const void* hi);

enum class binary_op : uint8_t {
  add, sub, mul, div, pow, max, min, mod, fmod, prelu,       // result has the input type
  equal, less, greater, less_equal, greater_equal,          // result is boolean
  logical_and, logical_or, logical_xor,                      // boolean in and out
};

/// dtype of `op`'s result on inputs of type t.
dtype binary_result_type(binary_op op, dtype t);

/// A binary op on one element type, resolved once; `run` walks a two-operand plan.
class binary_kernel {
public:
  /// An unsupported error when `op` is not defined on `t` (e.g. fmod on integers, And on
  /// floats, any arithmetic on bool or float16).
  static expected<binary_kernel> make(binary_op op, dtype t);

  /// out = op(a, b) where a and b broadcast by `plan`. The only run-time error is integer
  /// division (or modulo) by zero: invalid_argument.
  status run(const broadcast_plan& plan, const void* a, const void* b, void* out) const;

  /// Computes one run of `len` elements; returns false on an integer division by zero.
  using run_fn = bool (*)(const void* a, const void* b, void* out, int64_t len);

private:
  std::array<run_fn, 4> runs_{}; // by a_steps * 2 + b_steps
  size_t in_size_ = 0, out_size_ = 0;
};

/// out = cond ? x : y over a three-operand plan (cond, x, y), elements of `elem_size` bytes
/// (1, 2, 4 or 8). cond is one byte per element, nonzero meaning true.
void where(const broadcast_plan& plan, const uint8_t* cond, const void* x, const void* y,
           void* out, size_t elem_size);

/// out = a broadcast to the plan's output (one-operand plan) for `elem_size`-byte elements.
void broadcast_copy(const broadcast_plan& plan, const void* a, void* out, size_t elem_size);

} // namespace troupe::cpu
