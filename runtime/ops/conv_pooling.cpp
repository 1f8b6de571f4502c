// conv_pooling: ONNX MaxPool, AveragePool, GlobalMaxPool and GlobalAveragePool on oneDNN.
#include "kernels/cpu/dnnl_layout.hpp"
#include "runtime/ops/conv_window.hpp"

namespace troupe {
namespace {

using dnnl::memory;

enum class pool_kind { max, average, global_max, global_average };

class pool_kernel final : public op_kernel {
public:
  dnnl::pooling_v2_forward prim;
  memory src;
  cpu::output_adapter dst;

  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    auto& stream = ctx.cpu.stream();
    try {
      src.set_data_handle(inputs[0].raw());
      prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst.target(outputs[0].raw())}});
      dst.finish(stream);
      stream.wait();
    } catch (const dnnl::error& e) {
      return make_error(errc::internal, "pooling failed: {}", e.what());
    }
    return status::ok();
  }
};

/// The window of a pool: from attributes, or the whole spatial extent for global pools.
expected<conv_window> pool_window(const node& n, const shape& x, pool_kind kind) {
  const size_t spatial = x.size() - 2;
  if (kind == pool_kind::global_max || kind == pool_kind::global_average) {
    conv_window w;
    w.kernel.assign(x.begin() + 2, x.end());
    w.strides.assign(spatial, 1);
    w.dilations.assign(spatial, 1);
    w.pad_begin.assign(spatial, 0);
    w.pad_end.assign(spatial, 0);
    w.out.assign(spatial, 1);
    return w;
  }
  if (!n.has_attr("kernel_shape"))
    return bad_input(n, "attribute kernel_shape is required");
  auto kernel = n.attr_ints("kernel_shape");
  if (kernel.size() != spatial)
    return bad_input(n, fmt::format("kernel_shape {} must have one value per spatial dim of X {}",
                                    to_string(kernel), to_string(x)));
  for (int64_t k : kernel)
    if (k < 1)
      return bad_input(n, fmt::format("kernel_shape {} has a value below 1", to_string(kernel)));
  const bool ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  auto w = resolve_window(n, std::span(x).subspan(2), std::move(kernel), ceil_mode);
  if (!w)
    return w.error();
  // oneDNN would count the ceil_mode overhang as padding; ONNX averages over the padded input only.
  if (kind == pool_kind::average && n.attr_int("count_include_pad", 0) != 0 && w->ceil_grew_pads)
    return make_error(
        errc::unsupported,
        "{}: count_include_pad with a ceil_mode window past the pads is not supported", n.label());
  return w;
}

expected<built_op> build_pool(const node& n, std::span<const value_desc> in, build_context& bctx,
                              pool_kind kind) {
  if (in.size() != 1)
    return bad_input(n, fmt::format("takes 1 input, got {}", in.size()));
  TROUPE_TRY_STATUS(check_float_inputs(n, in, 1));
  if (n.outputs.size() > 1 && !n.outputs[1].empty())
    return make_error(errc::unsupported, "{}: the Indices output is not supported", n.label());
  const value_desc& x = in[0];
  if (x.dims.size() < 3)
    return bad_input(
        n, fmt::format("input X {} needs rank >= 3 (N, C, spatial...)", to_string(x.dims)));
  if (x.dims.size() > 5)
    return make_error(errc::unsupported, "{}: only 1 to 3 spatial dims are supported, X is {}",
                      n.label(), to_string(x.dims));
  for (int64_t d : x.dims)
    if (d <= 0)
      return make_error(errc::unsupported, "{}: empty input {} is not supported", n.label(),
                        to_string(x.dims));
  auto window = pool_window(n, x.dims, kind);
  if (!window)
    return window.error();
  shape out{x.dims[0], x.dims[1]};
  out.insert(out.end(), window->out.begin(), window->out.end());

  dnnl::algorithm alg = dnnl::algorithm::pooling_max;
  if (kind == pool_kind::global_average)
    alg = dnnl::algorithm::pooling_avg_exclude_padding;
  else if (kind == pool_kind::average)
    alg = n.attr_int("count_include_pad", 0) != 0 ? dnnl::algorithm::pooling_avg_include_padding
                                                  : dnnl::algorithm::pooling_avg_exclude_padding;

  return with_dnnl(n, [&]() -> built_op {
    auto& engine = bctx.cpu.engine();
    const memory::desc src_md = arriving_md(x);
    const memory::desc any_md(out, memory::data_type::f32, memory::format_tag::any);
    dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, alg, src_md, any_md,
                                        window->strides, window->kernel, window->dnnl_dilations(),
                                        window->pad_begin, window->pad_end);
    dnnl::pooling_v2_forward::primitive_desc pd(desc, engine);
    const memory::desc wanted = bctx.allow_blocked ? pd.dst_desc() : cpu::plain_md(out);

    auto kernel = std::make_unique<pool_kernel>();
    kernel->prim = dnnl::pooling_v2_forward(pd);
    kernel->src = memory(src_md, engine, DNNL_MEMORY_NONE);
    kernel->dst = cpu::output_adapter(pd.dst_desc(), wanted, engine);
    built_op op;
    op.outputs.push_back(output_desc(wanted, out));
    op.kernel = std::move(kernel);
    return op;
  });
}

op_def pool_def(std::string type, pool_kind kind) {
  return {.type = std::move(type),
          .build = [kind](const node& n, std::span<const value_desc> in,
                          build_context& bctx) { return build_pool(n, in, bctx, kind); },
          .blocked_inputs = 1u};
}

} // namespace

void register_pool_ops(op_registry& registry) {
  registry.add(pool_def("MaxPool", pool_kind::max));
  registry.add(pool_def("AveragePool", pool_kind::average));
  registry.add(pool_def("GlobalMaxPool", pool_kind::global_max));
  registry.add(pool_def("GlobalAveragePool", pool_kind::global_average));
}

} // namespace troupe
