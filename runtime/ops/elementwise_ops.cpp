// elementwise_ops: unary ONNX operators (activations, math, Clip, Not) and the group's
// registration; float32 activations on oneDNN blocked layouts run as oneDNN eltwise primitives.
#include "runtime/ops/elementwise_ops.hpp"

#include <cstring>
#include <limits>
#include <optional>

#include "kernels/cpu/cast.hpp"
#include "kernels/cpu/elementwise.hpp"

namespace troupe {
namespace elementwise {

status check_inputs(const node& n, std::span<const value_desc> inputs, size_t min, size_t max) {
  if (inputs.size() < min || inputs.size() > max)
    return bad_input(n, min == max ? fmt::format("expects {} inputs, got {}", min, inputs.size())
                                   : fmt::format("expects {} to {} inputs, got {}", min, max,
                                                 inputs.size()));
  for (size_t i = 0; i < min; ++i)
    if (!inputs[i].present())
      return bad_input(n, fmt::format("input {} is required", i));
  return {};
}

void add_op(op_registry& r, std::string type, build_fn build, uint32_t blocked_inputs) {
  op_def def;
  def.type = std::move(type);
  def.build = std::move(build);
  def.blocked_inputs = blocked_inputs;
  r.add(std::move(def));
}

status at_node(const std::string& label, const status& st) {
  return st.is_ok() ? st : status{st.code(), label + ": " + st.message()};
}

namespace {

using cpu::unary_op;

/// oneDNN eltwise equivalent of an op, for blocked inputs.
struct dnnl_eltwise {
  dnnl::algorithm alg;
  float alpha = 0.0f, beta = 0.0f;
};

/// Runs a oneDNN eltwise primitive on a blocked float32 input; the output has the same layout.
class blocked_eltwise_kernel final : public op_kernel {
public:
  blocked_eltwise_kernel(dnnl::engine& engine, const dnnl::memory::desc& md, dnnl_eltwise e)
      : prim_(dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, e.alg, md, e.alpha,
                                        e.beta),
            engine)),
        src_(md, engine, DNNL_MEMORY_NONE), dst_(md, engine, DNNL_MEMORY_NONE) {}

  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    src_.set_data_handle(inputs[0].raw());
    dst_.set_data_handle(outputs[0].raw());
    prim_.execute(ctx.cpu.stream(), {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
    ctx.cpu.stream().wait();
    return {};
  }

private:
  dnnl::eltwise_forward prim_;
  dnnl::memory src_, dst_;
};

/// Reorders a blocked input to a plain output; the op then runs in place on the output.
class to_plain {
public:
  to_plain(dnnl::engine& engine, const dnnl::memory::desc& blocked, const shape& dims)
      : plain_md_(dims, blocked.data_type(), strides_of(dims)),
        reorder_(dnnl::reorder::primitive_desc(engine, blocked, engine, plain_md_)),
        src_(blocked, engine, DNNL_MEMORY_NONE), dst_(plain_md_, engine, DNNL_MEMORY_NONE) {}

  void run(exec_context& ctx, const tensor& in, tensor& out) {
    src_.set_data_handle(in.raw());
    dst_.set_data_handle(out.raw());
    reorder_.execute(ctx.cpu.stream(), src_, dst_);
    ctx.cpu.stream().wait();
  }

private:
  dnnl::memory::desc plain_md_;
  dnnl::reorder reorder_;
  dnnl::memory src_, dst_;
};

class unary_kernel final : public op_kernel {
public:
  unary_kernel(unary_op op, dtype type, cpu::unary_params params, std::optional<to_plain> pre)
      : op_(op), type_(type), params_(params), pre_(std::move(pre)) {}

  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    const void* x = inputs[0].raw();
    if (pre_) {
      pre_->run(ctx, inputs[0], outputs[0]);
      x = outputs[0].raw();
    }
    cpu::unary(op_, type_, x, outputs[0].raw(), outputs[0].numel(), params_);
    return {};
  }

private:
  unary_op op_;
  dtype type_;
  cpu::unary_params params_;
  std::optional<to_plain> pre_;
};

/// How an ONNX unary op maps to a kernel op, with its attribute defaults.
struct unary_spec {
  const char* type;
  unary_op op;
  float alpha = 0.0f, beta = 0.0f, gamma = 0.0f; // defaults of the attributes the op has
  bool has_alpha = false, has_beta = false, has_gamma = false;
  bool blockable = false; // has a oneDNN eltwise equivalent (see eltwise_of)
};

std::optional<dnnl_eltwise> eltwise_of(unary_op op, const cpu::unary_params& p) {
  switch (op) {
    case unary_op::relu: return dnnl_eltwise{dnnl::algorithm::eltwise_relu};
    case unary_op::leaky_relu: return dnnl_eltwise{dnnl::algorithm::eltwise_relu, p.alpha};
    case unary_op::sigmoid: return dnnl_eltwise{dnnl::algorithm::eltwise_logistic};
    case unary_op::tanh: return dnnl_eltwise{dnnl::algorithm::eltwise_tanh};
    default: return std::nullopt;
  }
}

/// The output desc and kernel of an op on input `in`: blocked inputs stay blocked through a
/// oneDNN primitive when the plan allows it and `eltwise` exists, else become plain.
expected<built_op> build_elementwise(const node& n, const value_desc& in, build_context& bctx,
                                     std::optional<dnnl_eltwise> eltwise,
                                     std::unique_ptr<op_kernel> (*plain)(
                                         std::optional<to_plain> pre, const void* arg),
                                     const void* arg) {
  built_op b;
  b.outputs.push_back({in.type, in.dims, {}, nullptr});
  if (in.layout.is_plain()) {
    b.kernel = plain(std::nullopt, arg);
    return b;
  }
  if (in.type != dtype::f32)
    return make_error(errc::unsupported, "{}: blocked input of type {}", n.label(),
                      to_string(in.type));
  if (bctx.allow_blocked && eltwise) {
    b.outputs[0].layout = in.layout;
    b.kernel = std::make_unique<blocked_eltwise_kernel>(bctx.cpu.engine(), *in.layout.blocked,
                                                        *eltwise);
    return b;
  }
  b.kernel = plain(to_plain(bctx.cpu.engine(), *in.layout.blocked, in.dims), arg);
  return b;
}

struct unary_build_args {
  unary_op op;
  dtype type;
  cpu::unary_params params;
};

std::unique_ptr<op_kernel> make_unary_kernel(std::optional<to_plain> pre, const void* arg) {
  const auto& a = *static_cast<const unary_build_args*>(arg);
  return std::make_unique<unary_kernel>(a.op, a.type, a.params, std::move(pre));
}

expected<built_op> build_unary(const unary_spec& spec, const node& n,
                               std::span<const value_desc> inputs, build_context& bctx) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 1, 1));
  const value_desc& in = inputs[0];
  if (!cpu::unary_supported(spec.op, in.type))
    return make_error(errc::unsupported, "{}: input type {} is not supported", n.label(),
                      to_string(in.type));
  unary_build_args args{spec.op, in.type, {}};
  args.params.alpha = spec.has_alpha ? n.attr_float("alpha", spec.alpha) : 0.0f;
  args.params.beta = spec.has_beta ? n.attr_float("beta", spec.beta) : 0.0f;
  args.params.gamma = spec.has_gamma ? n.attr_float("gamma", spec.gamma) : 0.0f;
  if (spec.op == unary_op::celu && args.params.alpha == 0.0f)
    return bad_input(n, "alpha must not be 0");
  std::optional<dnnl_eltwise> eltwise;
  if (spec.blockable)
    eltwise = eltwise_of(spec.op, args.params);
  return build_elementwise(n, in, bctx, eltwise, &make_unary_kernel, &args);
}

// ---- Clip --------------------------------------------------------------------------------

/// A Clip bound: its bytes in the input's type when known at build time, else the input that
/// holds it at run time, else absent.
struct clip_bound {
  std::optional<std::array<std::byte, 8>> fixed;
  int input = -1;

  const void* get(std::span<const tensor> inputs) const {
    if (fixed)
      return fixed->data();
    return input >= 0 ? inputs[static_cast<size_t>(input)].raw() : nullptr;
  }
};

struct clip_build_args {
  dtype type;
  clip_bound lo, hi;
};

class clip_kernel final : public op_kernel {
public:
  clip_kernel(const clip_build_args& args, std::optional<to_plain> pre)
      : args_(args), pre_(std::move(pre)) {}

  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    const void* x = inputs[0].raw();
    if (pre_) {
      pre_->run(ctx, inputs[0], outputs[0]);
      x = outputs[0].raw();
    }
    cpu::clip(args_.type, x, outputs[0].raw(), outputs[0].numel(), args_.lo.get(inputs),
              args_.hi.get(inputs));
    return {};
  }

private:
  clip_build_args args_;
  std::optional<to_plain> pre_;
};

std::unique_ptr<op_kernel> make_clip_kernel(std::optional<to_plain> pre, const void* arg) {
  return std::make_unique<clip_kernel>(*static_cast<const clip_build_args*>(arg), std::move(pre));
}

expected<built_op> build_clip(const node& n, std::span<const value_desc> inputs,
                              build_context& bctx) {
  const bool bounds_are_inputs = bctx.opset >= 11;
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 1, bounds_are_inputs ? 3 : 1));
  const value_desc& in = inputs[0];
  if (!cpu::clip_supported(in.type))
    return make_error(errc::unsupported, "{}: input type {} is not supported", n.label(),
                      to_string(in.type));
  clip_build_args args{in.type, {}, {}};
  auto from_attr = [&](const char* key, clip_bound& b) {
    if (!n.has_attr(key))
      return;
    const float v = n.attr_float(key, 0.0f);
    std::array<std::byte, 8> bytes{};
    cpu::cast(dtype::f32, &v, in.type, bytes.data(), 1);
    b.fixed = bytes;
  };
  auto from_input = [&](size_t i, clip_bound& b) -> status {
    if (i >= inputs.size() || !inputs[i].present())
      return {};
    const value_desc& d = inputs[i];
    if (d.type != in.type)
      return bad_input(n, fmt::format("bound input {} has type {}, the input has {}", i,
                                      to_string(d.type), to_string(in.type)));
    if (numel_of(d.dims) != 1)
      return bad_input(n, fmt::format("bound input {} must be a scalar, has shape {}", i,
                                      to_string(d.dims)));
    if (d.constant) {
      std::array<std::byte, 8> bytes{};
      std::memcpy(bytes.data(), d.constant->raw(), size_of(in.type));
      b.fixed = bytes;
    } else {
      b.input = static_cast<int>(i);
    }
    return {};
  };
  if (bounds_are_inputs) {
    TROUPE_TRY_STATUS(from_input(1, args.lo));
    TROUPE_TRY_STATUS(from_input(2, args.hi));
  } else {
    from_attr("min", args.lo);
    from_attr("max", args.hi);
  }
  // oneDNN's clip_v2 takes the bounds as primitive parameters, so they must be known now.
  std::optional<dnnl_eltwise> eltwise;
  if (in.type == dtype::f32 && args.lo.input < 0 && args.hi.input < 0) {
    auto value = [](const clip_bound& b, float absent) {
      float v = absent;
      if (b.fixed)
        std::memcpy(&v, b.fixed->data(), sizeof v);
      return v;
    };
    eltwise = dnnl_eltwise{dnnl::algorithm::eltwise_clip_v2,
                           value(args.lo, -std::numeric_limits<float>::infinity()),
                           value(args.hi, std::numeric_limits<float>::infinity())};
  }
  return build_elementwise(n, in, bctx, eltwise, &make_clip_kernel, &args);
}

// ---- Not ---------------------------------------------------------------------------------

class not_kernel final : public op_kernel {
public:
  status run(exec_context&, std::span<const tensor> inputs, std::span<tensor> outputs) override {
    const auto* x = static_cast<const uint8_t*>(inputs[0].raw());
    auto* y = static_cast<uint8_t*>(outputs[0].raw());
    const int64_t count = outputs[0].numel();
    for (int64_t i = 0; i < count; ++i)
      y[i] = x[i] == 0;
    return {};
  }
};

expected<built_op> build_not(const node& n, std::span<const value_desc> inputs,
                             build_context&) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 1, 1));
  if (inputs[0].type != dtype::boolean)
    return bad_input(n, fmt::format("input must be bool, is {}", to_string(inputs[0].type)));
  built_op b;
  b.outputs.push_back({dtype::boolean, inputs[0].dims, {}, nullptr});
  b.kernel = std::make_unique<not_kernel>();
  return b;
}

} // namespace

void register_unary_ops(op_registry& r) {
  // ONNX attribute defaults (Selu's are the float32 values of its defining constants).
  static const unary_spec specs[] = {
      {.type = "Relu", .op = unary_op::relu, .blockable = true},
      {.type = "LeakyRelu", .op = unary_op::leaky_relu, .alpha = 0.01f, .has_alpha = true,
       .blockable = true},
      {.type = "Sigmoid", .op = unary_op::sigmoid, .blockable = true},
      {.type = "Tanh", .op = unary_op::tanh, .blockable = true},
      {.type = "Sqrt", .op = unary_op::sqrt},
      {.type = "Erf", .op = unary_op::erf},
      {.type = "Exp", .op = unary_op::exp},
      {.type = "Log", .op = unary_op::log},
      {.type = "Neg", .op = unary_op::neg},
      {.type = "Abs", .op = unary_op::abs},
      {.type = "Reciprocal", .op = unary_op::reciprocal},
      {.type = "Floor", .op = unary_op::floor},
      {.type = "Ceil", .op = unary_op::ceil},
      {.type = "Round", .op = unary_op::round},
      {.type = "Sign", .op = unary_op::sign},
      {.type = "HardSigmoid", .op = unary_op::hard_sigmoid, .alpha = 0.2f, .beta = 0.5f,
       .has_alpha = true, .has_beta = true},
      {.type = "HardSwish", .op = unary_op::hard_swish},
      {.type = "Softplus", .op = unary_op::softplus},
      {.type = "Softsign", .op = unary_op::softsign},
      {.type = "Elu", .op = unary_op::elu, .alpha = 1.0f, .has_alpha = true},
      {.type = "Selu", .op = unary_op::selu, .alpha = 1.67326319217681884765625f,
       .gamma = 1.05070102214813232421875f, .has_alpha = true, .has_gamma = true},
      {.type = "Celu", .op = unary_op::celu, .alpha = 1.0f, .has_alpha = true},
      {.type = "ThresholdedRelu", .op = unary_op::thresholded_relu, .alpha = 1.0f,
       .has_alpha = true},
  };
  for (const unary_spec& spec : specs) {
    auto build = [&spec](const node& n, std::span<const value_desc> inputs,
                         build_context& bctx) { return build_unary(spec, n, inputs, bctx); };
    add_op(r, spec.type, build, spec.blockable ? 1u : 0u);
  }
  add_op(r, "Clip", &build_clip, 1u);
  add_op(r, "Not", &build_not);
}

} // namespace elementwise

void register_elementwise_ops(op_registry& r) {
  elementwise::register_unary_ops(r);
  elementwise::register_binary_ops(r);
  elementwise::register_convert_ops(r);
}

} // namespace troupe
