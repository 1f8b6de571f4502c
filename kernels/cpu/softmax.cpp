// softmax: oneDNN softmax_v2 over a collapsed [outer, axis, inner] view.
#include "kernels/cpu/softmax.hpp"

#include <unordered_map>

namespace troupe::cpu {

expected<std::unique_ptr<softmax_op>> softmax_op::create(cpu_context& cpu, int64_t outer,
                                                         int64_t axis, int64_t inner, bool log) {
  std::unique_ptr<softmax_op> op{new softmax_op()};
  if (outer == 0 || axis == 0 || inner == 0)
    return op;
  try {
    using dnnl::memory;
    // A trailing inner dim of 1 is dropped so the common last-axis case is a plain 2-D softmax.
    const memory::desc md =
        inner == 1 ? memory::desc({outer, axis}, memory::data_type::f32, memory::format_tag::ab)
                   : memory::desc({outer, axis, inner}, memory::data_type::f32,
                                  memory::format_tag::abc);
    const auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
    dnnl::softmax_v2_forward::primitive_desc pd(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, alg, md, md, 1),
        cpu.engine());
    op->primitive_ = dnnl::softmax_v2_forward(pd);
    op->src_mem_ = memory(md, cpu.engine(), DNNL_MEMORY_NONE);
    op->dst_mem_ = memory(md, cpu.engine(), DNNL_MEMORY_NONE);
  } catch (const dnnl::error& e) {
    return make_error(errc::unsupported, "oneDNN softmax [{},{},{}]: {}", outer, axis, inner,
                      e.what());
  }
  op->empty_ = false;
  return op;
}

status softmax_op::run(cpu_context& cpu, const float* src, float* dst) {
  if (empty_)
    return status::ok();
  try {
    src_mem_.set_data_handle(const_cast<float*>(src));
    dst_mem_.set_data_handle(dst);
    primitive_.execute(cpu.stream(), {{DNNL_ARG_SRC, src_mem_}, {DNNL_ARG_DST, dst_mem_}});
    cpu.stream().wait();
  } catch (const dnnl::error& e) {
    return make_error(errc::internal, "oneDNN softmax failed: {}", e.what());
  }
  return status::ok();
}

} // namespace troupe::cpu
