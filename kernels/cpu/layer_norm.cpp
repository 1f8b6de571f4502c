// layer_norm: oneDNN layer_normalization_forward over [rows, cols].
#include "kernels/cpu/layer_norm.hpp"

#include <cmath>
#include <limits>
#include <unordered_map>

namespace troupe::cpu {

expected<std::unique_ptr<layer_norm_op>> layer_norm_op::create(cpu_context& cpu, int64_t rows,
                                                               int64_t cols, options opts) {
  std::unique_ptr<layer_norm_op> op{new layer_norm_op()};
  op->rows_ = rows;
  op->cols_ = cols;
  op->opts_ = opts;
  if (rows == 0 || cols == 0)
    return op;
  try {
    using dnnl::memory;
    auto& eng = cpu.engine();
    const memory::desc md({rows, cols}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc stat_md({rows}, memory::data_type::f32, memory::format_tag::a);
    const memory::desc param_md({cols}, memory::data_type::f32, memory::format_tag::a);
    auto flags = dnnl::normalization_flags::none;
    if (opts.scale)
      flags |= dnnl::normalization_flags::use_scale;
    if (opts.shift)
      flags |= dnnl::normalization_flags::use_shift;
    // Only training mode hands out the statistics; inference skips writing them.
    const auto kind =
        opts.stats ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    dnnl::layer_normalization_forward::primitive_desc pd(
        dnnl::layer_normalization_forward::desc(kind, md, stat_md, opts.epsilon, flags), eng);
    op->primitive_ = dnnl::layer_normalization_forward(pd);
    op->src_mem_ = memory(md, eng, DNNL_MEMORY_NONE);
    op->dst_mem_ = memory(md, eng, DNNL_MEMORY_NONE);
    if (opts.scale)
      op->scale_mem_ = memory(param_md, eng, DNNL_MEMORY_NONE);
    if (opts.shift)
      op->shift_mem_ = memory(param_md, eng, DNNL_MEMORY_NONE);
    if (opts.stats) {
      op->mean_scratch_.resize(static_cast<size_t>(rows));
      op->var_scratch_.resize(static_cast<size_t>(rows));
      op->mean_mem_ = memory(stat_md, eng, DNNL_MEMORY_NONE);
      op->var_mem_ = memory(stat_md, eng, op->var_scratch_.data());
    }
  } catch (const dnnl::error& e) {
    return make_error(errc::unsupported, "oneDNN layer normalization [{},{}]: {}", rows, cols,
                      e.what());
  }
  return op;
}

status layer_norm_op::run(cpu_context& cpu, const float* src, const float* scale,
                          const float* shift, float* dst, float* mean, float* inv_std_dev) {
  if (rows_ == 0)
    return status::ok();
  if (cols_ == 0) {
    // Statistics of an empty row are undefined.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t r = 0; r < rows_ && opts_.stats; ++r) {
      if (mean)
        mean[r] = nan;
      if (inv_std_dev)
        inv_std_dev[r] = nan;
    }
    return status::ok();
  }
  try {
    src_mem_.set_data_handle(const_cast<float*>(src));
    dst_mem_.set_data_handle(dst);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src_mem_},
                                               {DNNL_ARG_DST, dst_mem_}};
    if (opts_.scale) {
      scale_mem_.set_data_handle(const_cast<float*>(scale));
      args.emplace(DNNL_ARG_SCALE, scale_mem_);
    }
    if (opts_.shift) {
      shift_mem_.set_data_handle(const_cast<float*>(shift));
      args.emplace(DNNL_ARG_SHIFT, shift_mem_);
    }
    if (opts_.stats) {
      mean_mem_.set_data_handle(mean ? mean : mean_scratch_.data());
      args.emplace(DNNL_ARG_MEAN, mean_mem_);
      args.emplace(DNNL_ARG_VARIANCE, var_mem_);
    }
    primitive_.execute(cpu.stream(), args);
    cpu.stream().wait();
  } catch (const dnnl::error& e) {
    return make_error(errc::internal, "oneDNN layer normalization failed: {}", e.what());
  }
  if (opts_.stats && inv_std_dev)
    for (int64_t r = 0; r < rows_; ++r)
      inv_std_dev[r] = 1.f / std::sqrt(var_scratch_[static_cast<size_t>(r)] + opts_.epsilon);
  return status::ok();
}

} // namespace troupe::cpu
