// softmax: fp32 softmax and log-softmax along one axis on oneDNN.
#pragma once

#include <memory>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/cpu/cpu_context.hpp"

namespace troupe::cpu {

/// Softmax over the middle dim of a row-major [outer, axis, inner] tensor.
class softmax_op {
public:
  static expected<std::unique_ptr<softmax_op>> create(cpu_context& cpu, int64_t outer,
                                                      int64_t axis, int64_t inner, bool log);

  status run(cpu_context& cpu, const float* src, float* dst);

private:
  softmax_op() = default;

  bool empty_ = true;
  dnnl::softmax_v2_forward primitive_;
  dnnl::memory src_mem_, dst_mem_;
};

} // namespace troupe::cpu
