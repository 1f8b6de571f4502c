// elementwise_binary_ops: broadcasting binary ONNX operators (arithmetic, Pow, Mod, PRelu,
// comparisons, logic) and the variadic Max, Min, Sum and Mean.
#include <cstring>
#include <optional>

#include "kernels/cpu/cast.hpp"
#include "kernels/cpu/elementwise.hpp"
#include "runtime/ops/elementwise_ops.hpp"

namespace troupe::elementwise {
namespace {

using cpu::binary_op;

/// A type conversion with its scratch buffer (reused by every run; kernels run one at a
/// time). An input's scratch holds the converted (`to`) values, the output's scratch the
/// computed (`from`) values before they are converted into the output tensor.
struct converted {
  dtype from = dtype::undefined; // undefined: no conversion
  dtype to = dtype::undefined;
  int64_t count = 0;
  std::vector<std::byte> bytes;

  static converted input(dtype from, dtype to, int64_t n) { return {from, to, n, to}; }
  static converted output(dtype from, dtype to, int64_t n) { return {from, to, n, from}; }
  converted() = default;
  bool active() const { return from != dtype::undefined; }

private:
  converted(dtype f, dtype t, int64_t n, dtype stored)
      : from(f), to(t), count(n), bytes(static_cast<size_t>(n) * size_of(stored)) {}
};

/// out = op(a, b), converting operands to the compute type first and the result back when
/// needed (Pow with mixed types).
class binary_node_kernel final : public op_kernel {
public:
  binary_node_kernel(std::string label, cpu::binary_kernel k, cpu::broadcast_plan plan,
                     converted a, converted b, converted out)
      : label_(std::move(label)), kernel_(k), plan_(std::move(plan)), a_(std::move(a)),
        b_(std::move(b)), out_(std::move(out)) {}

  status run(exec_context&, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    const void* a = convert_in(a_, inputs[0]);
    const void* b = convert_in(b_, inputs[1]);
    void* out = out_.active() ? out_.bytes.data() : outputs[0].raw();
    TROUPE_TRY_STATUS(at_node(label_, kernel_.run(plan_, a, b, out)));
    if (out_.active())
      cpu::cast(out_.from, out, out_.to, outputs[0].raw(), out_.count);
    return {};
  }

private:
  static const void* convert_in(converted& c, const tensor& t) {
    if (!c.active())
      return t.raw();
    cpu::cast(c.from, t.raw(), c.to, c.bytes.data(), c.count);
    return c.bytes.data();
  }

  std::string label_;
  cpu::binary_kernel kernel_;
  cpu::broadcast_plan plan_;
  converted a_, b_, out_;
};

/// Pow with a constant scalar exponent on float32 bases, as a cheaper unary op.
class unary_pow_kernel final : public op_kernel {
public:
  explicit unary_pow_kernel(cpu::unary_op op) : op_(op) {}
  status run(exec_context&, std::span<const tensor> inputs, std::span<tensor> outputs) override {
    cpu::unary(op_, dtype::f32, inputs[0].raw(), outputs[0].raw(), outputs[0].numel());
    return {};
  }

private:
  cpu::unary_op op_;
};

expected<shape> broadcast_inputs(const node& n, std::span<const value_desc> inputs) {
  shape out = inputs[0].dims;
  for (size_t i = 1; i < inputs.size(); ++i) {
    auto b = broadcast_shapes(out, inputs[i].dims);
    if (!b)
      return bad_input(n, b.error().message());
    out = std::move(*b);
  }
  return out;
}

status same_types(const node& n, std::span<const value_desc> inputs) {
  for (size_t i = 1; i < inputs.size(); ++i)
    if (inputs[i].type != inputs[0].type)
      return bad_input(n, fmt::format("input types {} and {} differ", to_string(inputs[0].type),
                                      to_string(inputs[i].type)));
  return {};
}

expected<cpu::binary_kernel> kernel_for(const node& n, binary_op op, dtype t) {
  auto k = cpu::binary_kernel::make(op, t);
  if (!k)
    return at_node(n.label(), k.error());
  return k;
}

expected<built_op> finish_binary(const node& n, binary_op op, dtype compute, const shape& out_dims,
                                 std::span<const value_desc> inputs, dtype out_type) {
  auto kernel = kernel_for(n, op, compute);
  if (!kernel)
    return kernel.error();
  std::vector<shape> in_dims{inputs[0].dims, inputs[1].dims};
  auto plan = cpu::plan_broadcast(out_dims, in_dims);
  if (!plan)
    return bad_input(n, plan.error().message());
  auto convert = [&](dtype from, const shape& dims) {
    return from == compute ? converted{} : converted::input(from, compute, numel_of(dims));
  };
  const dtype result = cpu::binary_result_type(op, compute);
  converted out =
      result == out_type ? converted{} : converted::output(result, out_type, numel_of(out_dims));
  built_op b;
  b.outputs.push_back({out_type, out_dims, {}, nullptr});
  b.kernel = std::make_unique<binary_node_kernel>(
      n.label(), *kernel, std::move(*plan), convert(inputs[0].type, inputs[0].dims),
      convert(inputs[1].type, inputs[1].dims), std::move(out));
  return b;
}

/// The type arithmetic on `t` runs in: float32 for the 16-bit floats, else t itself.
dtype compute_type(dtype t) { return t == dtype::f16 || t == dtype::bf16 ? dtype::f32 : t; }

expected<built_op> build_binary(binary_op op, const node& n, std::span<const value_desc> inputs) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 2, 2));
  TROUPE_TRY_STATUS(same_types(n, inputs));
  auto out_dims = broadcast_inputs(n, inputs);
  if (!out_dims)
    return out_dims.error();
  const dtype t = inputs[0].type;
  return finish_binary(n, op, compute_type(t), *out_dims, inputs, cpu::binary_result_type(op, t));
}

/// The unary op equal to x^e for a constant exponent e, when there is one.
std::optional<cpu::unary_op> pow_as_unary(const value_desc& exponent) {
  if (!exponent.constant || numel_of(exponent.dims) != 1)
    return std::nullopt;
  double e = 0;
  cpu::cast(exponent.type, exponent.constant->raw(), dtype::f64, &e, 1);
  if (e == 1.0)
    return cpu::unary_op::identity;
  if (e == 2.0)
    return cpu::unary_op::square;
  if (e == 3.0)
    return cpu::unary_op::cube;
  if (e == 0.5)
    return cpu::unary_op::sqrt;
  if (e == -1.0)
    return cpu::unary_op::reciprocal;
  return std::nullopt;
}

expected<built_op> build_pow(const node& n, std::span<const value_desc> inputs, build_context&) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 2, 2));
  const dtype base = inputs[0].type, exponent = inputs[1].type;
  auto out_dims = broadcast_inputs(n, inputs);
  if (!out_dims)
    return out_dims.error();
  if (!cpu::cast_supported(exponent) || exponent == dtype::boolean)
    return bad_input(n, fmt::format("exponent type {} is not numeric", to_string(exponent)));
  if (base == dtype::f32 && *out_dims == inputs[0].dims) {
    if (auto op = pow_as_unary(inputs[1])) {
      built_op b;
      b.outputs.push_back({base, *out_dims, {}, nullptr});
      b.kernel = std::make_unique<unary_pow_kernel>(*op);
      return b;
    }
  }
  // The result has the base's type. Float bases compute in their own type (16-bit ones in
  // float32); integer bases in int64 with an integer exponent (exact, wrapping) or in double
  // with a float one.
  dtype compute = compute_type(base);
  if (is_integral(base) && base != exponent)
    compute = is_integral(exponent) ? dtype::i64 : dtype::f64;
  else if (!is_integral(base) && !is_floating(base))
    return make_error(errc::unsupported, "{}: base type {} is not supported", n.label(),
                      to_string(base));
  return finish_binary(n, binary_op::pow, compute, *out_dims, inputs, base);
}

expected<built_op> build_mod(const node& n, std::span<const value_desc> inputs, build_context&) {
  const int64_t fmod = n.attr_int("fmod", 0);
  if (fmod != 0 && fmod != 1)
    return bad_input(n, fmt::format("fmod must be 0 or 1, is {}", fmod));
  if (fmod == 0 && inputs.size() == 2 && is_floating(inputs[0].type))
    return bad_input(n, "fmod must be 1 for floating-point inputs");
  return build_binary(fmod ? binary_op::fmod : binary_op::mod, n, inputs);
}

expected<built_op> build_prelu(const node& n, std::span<const value_desc> given,
                               build_context& ctx) {
  TROUPE_TRY_STATUS(check_inputs(n, given, 2, 2));
  std::vector<value_desc> inputs(given.begin(), given.end());
  // Before opset 7 a 1-D slope of size C applied per channel (dimension 1), not numpy-style:
  // the same bytes seen as [C, 1, ..., 1] broadcast that way.
  if (ctx.opset < 7 && inputs[1].dims.size() == 1 && inputs[0].dims.size() >= 2 &&
      inputs[1].dims[0] == inputs[0].dims[1] && inputs[1].dims[0] != 1) {
    inputs[1].dims.resize(inputs[0].dims.size() - 1, 1);
  }
  // The slope broadcasts to X, never the other way (unidirectional broadcasting).
  auto out_dims = broadcast_inputs(n, inputs);
  if (out_dims && *out_dims != inputs[0].dims)
    return bad_input(n, fmt::format("slope shape {} does not broadcast to input shape {}",
                                    to_string(inputs[1].dims), to_string(inputs[0].dims)));
  return build_binary(binary_op::prelu, n, inputs);
}

// ---- variadic ----------------------------------------------------------------------------

/// out = in0 op in1 op ... folded left to right into the output; Mean divides at the end.
/// 16-bit float inputs are converted to float32 and the float32 result back.
class variadic_kernel final : public op_kernel {
public:
  variadic_kernel(std::string label, cpu::binary_kernel k, std::vector<cpu::broadcast_plan> plans,
                  std::vector<converted> ins, converted out, dtype compute, bool mean)
      : label_(std::move(label)), kernel_(k), plans_(std::move(plans)), ins_(std::move(ins)),
        out_(std::move(out)), compute_(compute), mean_(mean) {}

  status run(exec_context&, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    std::vector<const void*> in(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      in[i] = inputs[i].raw();
      if (ins_[i].active()) {
        cpu::cast(ins_[i].from, in[i], ins_[i].to, ins_[i].bytes.data(), ins_[i].count);
        in[i] = ins_[i].bytes.data();
      }
    }
    void* out = out_.active() ? out_.bytes.data() : outputs[0].raw();
    if (inputs.size() == 1) {
      cpu::broadcast_copy(plans_[0], in[0], out, size_of(compute_));
    } else {
      TROUPE_TRY_STATUS(at_node(label_, kernel_.run(plans_[0], in[0], in[1], out)));
      for (size_t i = 2; i < inputs.size(); ++i)
        TROUPE_TRY_STATUS(at_node(label_, kernel_.run(plans_[i - 1], out, in[i], out)));
    }
    const int64_t count = outputs[0].numel();
    if (mean_)
      divide(out, count, static_cast<double>(inputs.size()));
    if (out_.active())
      cpu::cast(out_.from, out, out_.to, outputs[0].raw(), count);
    return {};
  }

private:
  void divide(void* data, int64_t count, double n) const {
    if (compute_ == dtype::f32) {
      auto* v = static_cast<float*>(data);
      const auto nf = static_cast<float>(n);
      for (int64_t i = 0; i < count; ++i)
        v[i] /= nf;
    } else {
      auto* v = static_cast<double*>(data);
      for (int64_t i = 0; i < count; ++i)
        v[i] /= n;
    }
  }

  std::string label_;
  cpu::binary_kernel kernel_;
  std::vector<cpu::broadcast_plan> plans_;
  std::vector<converted> ins_;
  converted out_;
  dtype compute_;
  bool mean_;
};

expected<built_op> build_variadic(binary_op op, bool mean, const node& n,
                                  std::span<const value_desc> inputs) {
  if (inputs.empty())
    return bad_input(n, "expects at least 1 input");
  TROUPE_TRY_STATUS(check_inputs(n, inputs, inputs.size(), inputs.size()));
  TROUPE_TRY_STATUS(same_types(n, inputs));
  const dtype t = inputs[0].type, compute = compute_type(t);
  if (mean && !is_floating(t))
    return make_error(errc::unsupported, "{}: input type {} is not supported", n.label(),
                      to_string(t));
  auto kernel = kernel_for(n, op, compute);
  if (!kernel)
    return kernel.error();
  auto out_dims = broadcast_inputs(n, inputs);
  if (!out_dims)
    return out_dims.error();
  // The first step combines inputs 0 and 1 (or copies input 0); later ones fold into out.
  std::vector<cpu::broadcast_plan> plans;
  for (size_t i = 0; i < std::max<size_t>(inputs.size() - 1, 1); ++i) {
    std::vector<shape> operands;
    if (i == 0) {
      operands.push_back(inputs[0].dims);
      if (inputs.size() > 1)
        operands.push_back(inputs[1].dims);
    } else {
      operands = {*out_dims, inputs[i + 1].dims};
    }
    auto plan = cpu::plan_broadcast(*out_dims, operands);
    if (!plan)
      return bad_input(n, plan.error().message());
    plans.push_back(std::move(*plan));
  }
  std::vector<converted> ins(inputs.size());
  converted out;
  if (compute != t) {
    for (size_t i = 0; i < inputs.size(); ++i)
      ins[i] = converted::input(t, compute, numel_of(inputs[i].dims));
    out = converted::output(compute, t, numel_of(*out_dims));
  }
  built_op b;
  b.outputs.push_back({t, *out_dims, {}, nullptr});
  b.kernel = std::make_unique<variadic_kernel>(n.label(), *kernel, std::move(plans),
                                               std::move(ins), std::move(out), compute, mean);
  return b;
}

} // namespace

void register_binary_ops(op_registry& r) {
  static const std::pair<const char*, binary_op> plain[] = {
      {"Add", binary_op::add},
      {"Sub", binary_op::sub},
      {"Mul", binary_op::mul},
      {"Div", binary_op::div},
      {"Equal", binary_op::equal},
      {"Less", binary_op::less},
      {"Greater", binary_op::greater},
      {"LessOrEqual", binary_op::less_equal},
      {"GreaterOrEqual", binary_op::greater_equal},
      {"And", binary_op::logical_and},
      {"Or", binary_op::logical_or},
      {"Xor", binary_op::logical_xor},
  };
  for (const auto& [type, op] : plain)
    add_op(r, type, [op](const node& n, std::span<const value_desc> inputs, build_context&) {
      return build_binary(op, n, inputs);
    });
  static const std::tuple<const char*, binary_op, bool> variadic[] = {
      {"Max", binary_op::max, false},
      {"Min", binary_op::min, false},
      {"Sum", binary_op::add, false},
      {"Mean", binary_op::add, true},
  };
  for (const auto& [type, op, mean] : variadic)
    add_op(r, type, [op, mean](const node& n, std::span<const value_desc> inputs, build_context&) {
      return build_variadic(op, mean, n, inputs);
    });
  add_op(r, "Pow", &build_pow);
  add_op(r, "Mod", &build_mod);
  add_op(r, "PRelu", &build_prelu);
}

} // namespace troupe::elementwise
