// reorder: blocked -> plain through a dnnl::reorder primitive.
#include "runtime/ops/reorder.hpp"

namespace troupe {

dnnl::memory::data_type dnnl_type_of(dtype type) {
  using dt = dnnl::memory::data_type;
  switch (type) {
    case dtype::f32: return dt::f32;
    case dtype::f16: return dt::f16;
    case dtype::bf16: return dt::bf16;
    case dtype::i32: return dt::s32;
    case dtype::i8: return dt::s8;
    case dtype::u8: return dt::u8;
    default: return dt::undef;
  }
}

dnnl::memory::desc plain_md(dtype type, const shape& dims) {
  dnnl::memory::dims d(dims.begin(), dims.end());
  const auto row_major = strides_of(dims);
  dnnl::memory::dims strides(row_major.begin(), row_major.end());
  if (d.empty()) {
    d = {1};
    strides = {1};
  }
  return dnnl::memory::desc(d, dnnl_type_of(type), strides);
}

namespace {

class to_plain_kernel final : public op_kernel {
public:
  to_plain_kernel(const value_desc& from, cpu::cpu_context& cpu)
    : src_(from.layout.is_plain() ? plain_md(from.type, from.dims) : *from.layout.blocked,
           cpu.engine(), DNNL_MEMORY_NONE),
      dst_(plain_md(from.type, from.dims), cpu.engine(), DNNL_MEMORY_NONE),
      reorder_(src_, dst_) {}

  status run(exec_context& ctx, std::span<const tensor> inputs, std::span<tensor> outputs) override {
    src_.set_data_handle(inputs[0].raw());
    dst_.set_data_handle(outputs[0].raw());
    reorder_.execute(ctx.cpu.stream(), src_, dst_);
    ctx.cpu.stream().wait();
    return status::ok();
  }

private:
  dnnl::memory src_;
  dnnl::memory dst_;
  dnnl::reorder reorder_;
};

} // namespace

std::unique_ptr<op_kernel> make_to_plain_kernel(const value_desc& from, cpu::cpu_context& cpu) {
  return std::make_unique<to_plain_kernel>(from, cpu);
}

} // namespace troupe
