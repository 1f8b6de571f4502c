// conv_window: the sliding-window attributes shared by Conv and the pooling operators.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "runtime/ops/op_registry.hpp"

namespace troupe {

/// Kernel, strides, dilations and pads of one windowed op, resolved for concrete input dims
/// (auto_pad applied) with the resulting output spatial dims.
struct conv_window {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations; // ONNX convention: 1 is no dilation
  std::vector<int64_t> pad_begin;
  std::vector<int64_t> pad_end; // what oneDNN needs to produce `out` (grown by ceil_mode)
  std::vector<int64_t> out;
  bool ceil_grew_pads = false; // ceil_mode needed padding beyond the attribute's pads

  dnnl::memory::dims dnnl_dilations() const; // oneDNN convention: 0 is no dilation
};

/// Reads strides, dilations, pads and auto_pad of `n` for spatial input dims `in` and a
/// kernel already validated by the caller; errors name the node.
expected<conv_window> resolve_window(const node& n, std::span<const int64_t> in,
                                     std::vector<int64_t> kernel, bool ceil_mode);

/// Checks that every present input is float32 (others are errc::unsupported) and that
/// inputs [0, required) are present.
status check_float_inputs(const node& n, std::span<const value_desc> inputs, size_t required);

/// The oneDNN desc of a value as it arrives: its blocked desc, or the plain one.
dnnl::memory::desc arriving_md(const value_desc& v);

/// Output desc for a primitive's dst: blocked layout unless it is plain anyway.
value_desc output_desc(const dnnl::memory::desc& md, const shape& dims);

/// A small parameter input (bias, BN statistics) bound to a oneDNN memory: copied once at
/// build time when it is constant, else pointed at the run-time tensor.
class param_memory {
public:
  param_memory() = default;
  param_memory(const value_desc& v, const dnnl::memory::desc& md, const dnnl::engine& engine);
  /// The memory holding `t`'s values (`t` is ignored when the value was constant).
  const dnnl::memory& bind(const tensor& t);

private:
  dnnl::memory memory_;
  bool owned_ = false;
};

/// Runs `make` and turns a oneDNN error (no implementation for these shapes) into a status.
template <class F> auto with_dnnl(const node& n, F&& make) -> expected<decltype(make())> {
  try {
    return make();
  } catch (const dnnl::error& e) {
    return make_error(errc::unsupported, "{}: oneDNN cannot build it: {}", n.label(), e.what());
  }
}

void register_conv_ops(op_registry& registry);      // Conv, TroupeFusedConv
void register_pool_ops(op_registry& registry);      // MaxPool, AveragePool, global pools
void register_batchnorm_ops(op_registry& registry); // BatchNormalization (inference)

} // namespace troupe
