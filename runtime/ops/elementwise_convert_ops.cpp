// elementwise_convert_ops: Where (broadcasting select), Cast and CastLike.
#include "kernels/cpu/cast.hpp"
#include "kernels/cpu/elementwise.hpp"
#include "runtime/ops/elementwise_ops.hpp"

namespace troupe::elementwise {
namespace {

class where_kernel final : public op_kernel {
public:
  where_kernel(cpu::broadcast_plan plan, size_t elem_size)
      : plan_(std::move(plan)), elem_size_(elem_size) {}

  status run(exec_context&, std::span<const tensor> inputs, std::span<tensor> outputs) override {
    cpu::where(plan_, static_cast<const uint8_t*>(inputs[0].raw()), inputs[1].raw(),
               inputs[2].raw(), outputs[0].raw(), elem_size_);
    return {};
  }

private:
  cpu::broadcast_plan plan_;
  size_t elem_size_;
};

expected<built_op> build_where(const node& n, std::span<const value_desc> inputs,
                               build_context&) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 3, 3));
  if (inputs[0].type != dtype::boolean)
    return bad_input(n, fmt::format("condition must be bool, is {}", to_string(inputs[0].type)));
  const dtype t = inputs[1].type;
  if (inputs[2].type != t)
    return bad_input(n, fmt::format("input types {} and {} differ", to_string(t),
                                    to_string(inputs[2].type)));
  const size_t elem = size_of(t);
  if (elem != 1 && elem != 2 && elem != 4 && elem != 8)
    return make_error(errc::unsupported, "{}: input type {} is not supported", n.label(),
                      to_string(t));
  auto xy = broadcast_shapes(inputs[1].dims, inputs[2].dims);
  if (!xy)
    return bad_input(n, xy.error().message());
  auto out_dims = broadcast_shapes(inputs[0].dims, *xy);
  if (!out_dims)
    return bad_input(n, out_dims.error().message());
  std::vector<shape> operands{inputs[0].dims, inputs[1].dims, inputs[2].dims};
  auto plan = cpu::plan_broadcast(*out_dims, operands);
  if (!plan)
    return bad_input(n, plan.error().message());
  built_op b;
  b.outputs.push_back({t, *out_dims, {}, nullptr});
  b.kernel = std::make_unique<where_kernel>(std::move(*plan), elem);
  return b;
}

class cast_kernel final : public op_kernel {
public:
  cast_kernel(dtype from, dtype to) : from_(from), to_(to) {}

  status run(exec_context&, std::span<const tensor> inputs, std::span<tensor> outputs) override {
    cpu::cast(from_, inputs[0].raw(), to_, outputs[0].raw(), outputs[0].numel());
    return {};
  }

private:
  dtype from_, to_;
};

expected<built_op> build_cast_to(const node& n, const value_desc& in, dtype to) {
  if (!cpu::cast_supported(in.type))
    return make_error(errc::unsupported, "{}: cannot cast from {}", n.label(), to_string(in.type));
  if (!cpu::cast_supported(to))
    return make_error(errc::unsupported, "{}: cannot cast to {}", n.label(), to_string(to));
  built_op b;
  b.outputs.push_back({to, in.dims, {}, nullptr});
  if (to == in.type)
    b.alias_input = 0; // nothing to convert: a view of the input
  else
    b.kernel = std::make_unique<cast_kernel>(in.type, to);
  return b;
}

expected<built_op> build_cast(const node& n, std::span<const value_desc> inputs, build_context&) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 1, 1));
  if (!n.has_attr("to"))
    return bad_input(n, "attribute 'to' is required");
  const int64_t onnx_type = n.attr_int("to", 0);
  auto to = dtype_from_onnx(static_cast<int>(onnx_type));
  if (!to)
    return make_error(errc::unsupported, "{}: unknown target type {}", n.label(), onnx_type);
  return build_cast_to(n, inputs[0], *to);
}

expected<built_op> build_cast_like(const node& n, std::span<const value_desc> inputs,
                                   build_context&) {
  TROUPE_TRY_STATUS(check_inputs(n, inputs, 2, 2));
  return build_cast_to(n, inputs[0], inputs[1].type);
}

} // namespace

void register_convert_ops(op_registry& r) {
  add_op(r, "Where", &build_where);
  add_op(r, "Cast", &build_cast);
  add_op(r, "CastLike", &build_cast_like);
}

} // namespace troupe::elementwise
