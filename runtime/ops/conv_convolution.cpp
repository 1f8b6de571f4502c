// conv_convolution: ONNX Conv and troupe's TroupeFusedConv (conv + sum + activation) on oneDNN.
#include <cfloat>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "kernels/cpu/dnnl_layout.hpp"
#include "runtime/ops/conv_window.hpp"

namespace troupe {
namespace {

using dnnl::memory;
using tag = memory::format_tag;

constexpr int input_x = 0, input_w = 1, input_b = 2, input_sum = 3;

/// How the Sum input of a fused conv reaches the dst buffer before the post-op sum.
enum class sum_mode { none, copy, reorder };

class conv_kernel final : public op_kernel {
public:
  dnnl::convolution_forward prim;
  cpu::input_adapter src;
  memory weights;                                   // prepared once when the weights are constant
  std::optional<cpu::input_adapter> weights_at_run; // when they are not
  std::optional<param_memory> bias;
  memory dst;
  sum_mode sum = sum_mode::none;
  memory sum_src;
  dnnl::reorder sum_reorder;

  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    auto& stream = ctx.cpu.stream();
    void* out = outputs[0].raw();
    try {
      dst.set_data_handle(out);
      // The post-op sum accumulates into dst, so dst must hold Sum (in dst's layout) first.
      if (sum == sum_mode::copy && inputs[input_sum].raw() != out) {
        std::memcpy(out, inputs[input_sum].raw(), dst.get_desc().get_size());
      } else if (sum == sum_mode::reorder) {
        sum_src.set_data_handle(inputs[input_sum].raw());
        sum_reorder.execute(stream, sum_src, dst);
      }
      std::unordered_map<int, memory> args;
      args[DNNL_ARG_SRC] = src.bring(inputs[input_x].raw(), stream);
      args[DNNL_ARG_WEIGHTS] =
          weights_at_run ? weights_at_run->bring(inputs[input_w].raw(), stream) : weights;
      if (bias)
        args[DNNL_ARG_BIAS] = bias->bind(inputs[input_b]);
      args[DNNL_ARG_DST] = dst;
      prim.execute(stream, args);
      stream.wait();
    } catch (const dnnl::error& e) {
      return make_error(errc::internal, "convolution failed: {}", e.what());
    }
    return status::ok();
  }
};

/// oneDNN eltwise post-op from the fused op's `activation` attribute ("" adds none).
status append_activation(const node& n, dnnl::post_ops& ops) {
  const std::string act = n.attr_string("activation", "");
  if (act.empty())
    return status::ok();
  if (act == "Relu")
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  else if (act == "LeakyRelu")
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, n.attr_float("alpha", 0.01f), 0.f);
  else if (act == "Clip")
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, n.attr_float("min", -FLT_MAX),
                       n.attr_float("max", FLT_MAX));
  else if (act == "Sigmoid")
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f);
  else
    return bad_input(n, fmt::format("unknown activation '{}'", act));
  return status::ok();
}

/// Shapes of a validated conv: X, W (grouped as oneDNN wants), B and the output.
struct conv_shapes {
  int64_t group = 1;
  memory::dims weights; // [g, M/g, C/g, k...] when group > 1, else W's dims
  shape out;
  conv_window window;
};

expected<conv_shapes> check_conv(const node& n, std::span<const value_desc> in, bool fused) {
  const size_t max_inputs = fused ? 4 : 3;
  if (in.size() > max_inputs)
    return bad_input(n, fmt::format("takes at most {} inputs, got {}", max_inputs, in.size()));
  TROUPE_TRY_STATUS(check_float_inputs(n, in, 2));
  const shape& x = in[input_x].dims;
  const shape& w = in[input_w].dims;
  if (x.size() < 3)
    return bad_input(n, fmt::format("input X {} needs rank >= 3 (N, C, spatial...)", to_string(x)));
  if (x.size() > 5)
    return make_error(errc::unsupported, "{}: only 1 to 3 spatial dims are supported, X is {}",
                      n.label(), to_string(x));
  if (w.size() != x.size())
    return bad_input(
        n, fmt::format("weights {} must have the rank of X {}", to_string(w), to_string(x)));
  for (int64_t d : w)
    if (d <= 0)
      return bad_input(n, fmt::format("weights {} have an empty dimension", to_string(w)));
  conv_shapes s;
  s.group = n.attr_int("group", 1);
  const int64_t c = x[1], m = w[0];
  if (s.group < 1 || c % s.group != 0 || m % s.group != 0)
    return bad_input(n, fmt::format("group {} must divide input channels {} and output "
                                    "channels {}",
                                    s.group, c, m));
  if (w[1] * s.group != c)
    return bad_input(n, fmt::format("weights {} expect {} input channels with group {}, X has {}",
                                    to_string(w), w[1] * s.group, s.group, c));
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  if (n.has_attr("kernel_shape") && n.attr_ints("kernel_shape") != kernel)
    return bad_input(n, fmt::format("kernel_shape {} does not match weights {}",
                                    to_string(n.attr_ints("kernel_shape")), to_string(w)));
  if (in.size() > input_b && in[input_b].present() && in[input_b].dims != shape{m})
    return bad_input(n, fmt::format("bias {} must be [{}]", to_string(in[input_b].dims), m));
  auto window = resolve_window(n, std::span(x).subspan(2), std::move(kernel), false);
  if (!window)
    return window.error();
  s.window = std::move(*window);
  s.out = {x[0], m};
  s.out.insert(s.out.end(), s.window.out.begin(), s.window.out.end());
  if (in.size() > input_sum && in[input_sum].present() && in[input_sum].dims != s.out)
    return bad_input(n, fmt::format("Sum {} must have the output's shape {}",
                                    to_string(in[input_sum].dims), to_string(s.out)));
  s.weights = w;
  if (s.group > 1) {
    s.weights[0] = m / s.group;
    s.weights.insert(s.weights.begin(), s.group);
  }
  return s;
}

expected<built_op> build_conv(const node& n, std::span<const value_desc> in, build_context& bctx,
                              bool fused) {
  auto shapes = check_conv(n, in, fused);
  if (!shapes)
    return shapes.error();
  const conv_shapes& s = *shapes;
  const value_desc& x = in[input_x];
  const value_desc& w = in[input_w];
  const bool has_bias = in.size() > input_b && in[input_b].present();
  const bool has_sum = in.size() > input_sum && in[input_sum].present();
  dnnl::post_ops ops;
  if (has_sum)
    ops.append_sum(1.f);
  if (fused)
    TROUPE_TRY_STATUS(append_activation(n, ops));

  return with_dnnl(n, [&]() -> built_op {
    auto& engine = bctx.cpu.engine();
    const auto f32 = memory::data_type::f32;
    // A blocked X is consumed as it is; a plain one lets oneDNN pick and is reordered.
    const memory::desc src_md =
        x.layout.is_plain() ? memory::desc(x.dims, f32, tag::any) : *x.layout.blocked;
    const memory::desc weights_md(s.weights, f32, tag::any);
    const memory::desc bias_md({w.dims[0]}, f32, tag::a);
    const memory::desc dst_md =
        bctx.allow_blocked ? memory::desc(s.out, f32, tag::any) : cpu::plain_md(s.out);
    const memory::dims strides = s.window.strides, pad_l = s.window.pad_begin,
                       pad_r = s.window.pad_end, dilations = s.window.dnnl_dilations();
    const auto prop = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    auto desc = has_bias ? dnnl::convolution_forward::desc(prop, alg, src_md, weights_md, bias_md,
                                                           dst_md, strides, dilations, pad_l, pad_r)
                         : dnnl::convolution_forward::desc(prop, alg, src_md, weights_md, dst_md,
                                                           strides, dilations, pad_l, pad_r);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd(desc, attr, engine);

    auto kernel = std::make_unique<conv_kernel>();
    kernel->prim = dnnl::convolution_forward(pd);
    kernel->src = cpu::input_adapter(arriving_md(x), pd.src_desc(), engine);
    const memory::desc user_weights_md = cpu::plain_md(s.weights);
    if (w.constant) {
      kernel->weights =
          cpu::pack_weights(bctx.packed, *w.constant, user_weights_md, pd.weights_desc(), bctx.cpu);
    } else {
      kernel->weights_at_run.emplace(user_weights_md, pd.weights_desc(), engine);
    }
    if (has_bias)
      kernel->bias.emplace(in[input_b], bias_md, engine);
    kernel->dst = memory(pd.dst_desc(), engine, DNNL_MEMORY_NONE);
    if (has_sum) {
      const memory::desc sum_md = arriving_md(in[input_sum]);
      if (sum_md == pd.dst_desc()) {
        kernel->sum = sum_mode::copy;
      } else {
        kernel->sum = sum_mode::reorder;
        kernel->sum_src = memory(sum_md, engine, DNNL_MEMORY_NONE);
        kernel->sum_reorder = dnnl::reorder(kernel->sum_src, kernel->dst);
      }
    }
    built_op op;
    op.outputs.push_back(output_desc(pd.dst_desc(), s.out));
    op.kernel = std::move(kernel);
    return op;
  });
}

} // namespace

void register_conv_ops(op_registry& registry) {
  constexpr uint32_t x_and_sum = (1u << input_x) | (1u << input_sum);
  registry.add({.type = "Conv",
                .build = [](const node& n, std::span<const value_desc> in,
                            build_context& bctx) { return build_conv(n, in, bctx, false); },
                .blocked_inputs = 1u << input_x});
  registry.add({.type = "TroupeFusedConv",
                .build = [](const node& n, std::span<const value_desc> in,
                            build_context& bctx) { return build_conv(n, in, bctx, true); },
                .blocked_inputs = x_and_sum});
}

} // namespace troupe
