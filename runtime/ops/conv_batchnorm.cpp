// conv_batchnorm: ONNX BatchNormalization in inference mode on oneDNN (global statistics).
#include "kernels/cpu/dnnl_layout.hpp"
#include "runtime/ops/conv_window.hpp"

namespace troupe {
namespace {

using dnnl::memory;

class batchnorm_kernel final : public op_kernel {
public:
  dnnl::batch_normalization_forward prim;
  memory src;
  param_memory scale, shift, mean, variance;
  cpu::output_adapter dst;

  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    auto& stream = ctx.cpu.stream();
    try {
      src.set_data_handle(inputs[0].raw());
      prim.execute(stream, {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_SCALE, scale.bind(inputs[1])},
                            {DNNL_ARG_SHIFT, shift.bind(inputs[2])},
                            {DNNL_ARG_MEAN, mean.bind(inputs[3])},
                            {DNNL_ARG_VARIANCE, variance.bind(inputs[4])},
                            {DNNL_ARG_DST, dst.target(outputs[0].raw())}});
      dst.finish(stream);
      stream.wait();
    } catch (const dnnl::error& e) {
      return make_error(errc::internal, "batch normalization failed: {}", e.what());
    }
    return status::ok();
  }
};

expected<built_op> build_batchnorm(const node& n, std::span<const value_desc> in,
                                   build_context& bctx) {
  if (in.size() != 5)
    return bad_input(n, fmt::format("takes 5 inputs (X, scale, B, mean, var), got {}", in.size()));
  TROUPE_TRY_STATUS(check_float_inputs(n, in, 5));
  if (n.attr_int("training_mode", 0) != 0)
    return make_error(errc::unsupported, "{}: training_mode=1 is not supported", n.label());
  if (n.attr_int("spatial", 1) == 0)
    return make_error(errc::unsupported, "{}: spatial=0 is not supported", n.label());
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty())
      return make_error(errc::unsupported, "{}: only the Y output is supported (inference)",
                        n.label());
  const value_desc& x = in[0];
  if (x.dims.size() < 2)
    return bad_input(n, fmt::format("input X {} needs rank >= 2", to_string(x.dims)));
  if (x.dims.size() > 5)
    return make_error(errc::unsupported, "{}: X {} has more than 3 spatial dims", n.label(),
                      to_string(x.dims));
  for (int64_t d : x.dims)
    if (d <= 0)
      return make_error(errc::unsupported, "{}: empty input {} is not supported", n.label(),
                        to_string(x.dims));
  const int64_t c = x.dims[1];
  static constexpr const char* names[] = {"X", "scale", "B", "mean", "var"};
  for (size_t i = 1; i < 5; ++i)
    if (in[i].dims != shape{c})
      return bad_input(n, fmt::format("{} {} must be [{}] (channels of X {})", names[i],
                                      to_string(in[i].dims), c, to_string(x.dims)));
  const float epsilon = n.attr_float("epsilon", 1e-5f);

  return with_dnnl(n, [&]() -> built_op {
    auto& engine = bctx.cpu.engine();
    const memory::desc src_md = arriving_md(x);
    const memory::desc param_md({c}, memory::data_type::f32, memory::format_tag::a);
    const auto flags = dnnl::normalization_flags::use_global_stats |
                       dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    dnnl::batch_normalization_forward::desc desc(dnnl::prop_kind::forward_inference, src_md,
                                                 epsilon, flags);
    dnnl::batch_normalization_forward::primitive_desc pd(desc, engine);
    const memory::desc wanted = bctx.allow_blocked ? pd.dst_desc() : cpu::plain_md(x.dims);

    auto kernel = std::make_unique<batchnorm_kernel>();
    kernel->prim = dnnl::batch_normalization_forward(pd);
    kernel->src = memory(src_md, engine, DNNL_MEMORY_NONE);
    kernel->scale = param_memory(in[1], param_md, engine);
    kernel->shift = param_memory(in[2], param_md, engine);
    kernel->mean = param_memory(in[3], param_md, engine);
    kernel->variance = param_memory(in[4], param_md, engine);
    kernel->dst = cpu::output_adapter(pd.dst_desc(), wanted, engine);
    built_op op;
    op.outputs.push_back(output_desc(wanted, x.dims));
    op.kernel = std::move(kernel);
    return op;
  });
}

} // namespace

void register_batchnorm_ops(op_registry& registry) {
  registry.add({.type = "BatchNormalization", .build = build_batchnorm, .blocked_inputs = 1u});
}

} // namespace troupe
