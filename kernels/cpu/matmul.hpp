// matmul: fp32 (batched) matrix products on oneDNN with constant weights prepacked once.
#pragma once

#include <memory>
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/cpu/cpu_context.hpp"
#include "kernels/cpu/packed_weights.hpp"
#include "kernels/shape.hpp"

namespace troupe::cpu {

/// What a matrix product computes: dst = scale * (A·B + bias), numpy-broadcast batch dims.
struct matmul_spec {
  shape a_dims;          // logical [batch..., M, K], rank >= 2
  shape b_dims;          // logical [batch..., K, N], rank >= 2
  bool trans_a = false;  // A's buffer holds [batch..., K, M] row-major
  bool trans_b = false;  // B's buffer holds [batch..., N, K] row-major
  float scale = 1.f;
  bool with_bias = false; // a length-N vector added to every row (before `scale`)
};

/// Output dims of `spec` ([broadcast batch..., M, N]); an error names mismatched K or
/// batch dims that do not broadcast.
expected<shape> matmul_output_dims(const matmul_spec& spec);

/// A matrix product bound to fixed shapes. Batch dims of A are folded into M when B has
/// none, so [B,S,K]x[K,N] runs as one [B*S,K]x[K,N] GEMM.
class matmul_op {
public:
  /// Builds the oneDNN primitive. With `constant_b`, B is reordered now into the layout
  /// the primitive prefers (shared through `packed` when given) and `run` ignores its `b`
  /// argument. K == 0 or an empty output is handled without oneDNN (zeros, or nothing).
  static expected<std::unique_ptr<matmul_op>> create(cpu_context& cpu, const matmul_spec& spec,
                                                     const tensor* constant_b = nullptr,
                                                     packed_weights* packed = nullptr);

  status run(cpu_context& cpu, const float* a, const float* b, const float* bias, float* dst);

  /// oneDNN's implementation name ("brg:avx512_core"), for benchmarks and logs.
  std::string implementation() const;

private:
  matmul_op() = default;

  enum class mode { gemm, zero_fill, empty };
  mode mode_ = mode::empty;
  int64_t dst_numel_ = 0;
  int64_t n_ = 0;
  float scale_ = 1.f;
  bool packed_b_ = false;
  dnnl::matmul primitive_;
  dnnl::matmul::primitive_desc pd_;
  dnnl::memory a_mem_, b_mem_, bias_mem_, dst_mem_;
};

} // namespace troupe::cpu
