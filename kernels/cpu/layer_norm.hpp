// layer_norm: fp32 layer normalization of rows on oneDNN, with optional statistics.
#pragma once

#include <memory>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/cpu/cpu_context.hpp"

namespace troupe::cpu {

/// y = (x - mean) / sqrt(var + epsilon) * scale + shift over each row of a row-major
/// [rows, cols] tensor.
class layer_norm_op {
public:
  struct options {
    float epsilon = 1e-5f;
    bool scale = false; // run() gets `cols` scale values
    bool shift = false; // run() gets `cols` shift values
    bool stats = false; // run() may write per-row mean and 1/sqrt(var + epsilon)
  };

  static expected<std::unique_ptr<layer_norm_op>> create(cpu_context& cpu, int64_t rows,
                                                         int64_t cols, options opts);

  /// `mean` and `inv_std_dev` (rows values each) may be null; both are ignored unless the
  /// op was created with stats.
  status run(cpu_context& cpu, const float* src, const float* scale, const float* shift,
             float* dst, float* mean, float* inv_std_dev);

private:
  layer_norm_op() = default;

  int64_t rows_ = 0, cols_ = 0;
  options opts_;
  dnnl::layer_normalization_forward primitive_;
  dnnl::memory src_mem_, dst_mem_, scale_mem_, shift_mem_, mean_mem_, var_mem_;
  std::vector<float> mean_scratch_, var_scratch_;
};

} // namespace troupe::cpu
