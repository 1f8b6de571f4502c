// shape_indexing: operators that read elements at computed positions (Gather,
// GatherElements, Pad).
#include <memory>
#include <numeric>

#include "kernels/cpu/gather.hpp"
#include "kernels/cpu/pad.hpp"
#include "runtime/ops/shape_common.hpp"

namespace troupe::shape_ops {
namespace {

// Copies int32/int64 indices into `out`, with negative ones counted from the end of a
// dimension of `size`. Indices are user data: one out of range is an error, never a crash.
template <class T>
status normalize_indices(const T* values, int64_t size, std::vector<int64_t>& out,
                         const std::string& label) {
  for (size_t i = 0; i < out.size(); ++i) {
    const auto v = static_cast<int64_t>(values[i]);
    if (v < -size || v >= size)
      return make_error(errc::out_of_range, "{}: index {} is out of range for a dimension of size {}",
                        label, v, size);
    out[i] = v < 0 ? v + size : v;
  }
  return status::ok();
}

status normalize_indices(const tensor& indices, int64_t size, std::vector<int64_t>& out,
                         const std::string& label) {
  if (indices.type() == dtype::i64)
    return normalize_indices(indices.data<int64_t>(), size, out, label);
  return normalize_indices(indices.data<int32_t>(), size, out, label);
}

status check_indices_input(const node& n, std::span<const value_desc> in) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  TROUPE_TRY_STATUS(require_input(n, in, 1));
  if (in[1].type != dtype::i64 && in[1].type != dtype::i32)
    return invalid(n, "indices must be int64 or int32, got {}", to_string(in[1].type));
  if (in[0].dims.empty())
    return invalid(n, "data must have rank 1 or more");
  return status::ok();
}

expected<built_op> build_gather(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(check_indices_input(n, in));
  const shape& data = in[0].dims;
  auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(data.size()));
  if (!axis)
    return bad_input(n, axis.error().message());
  const auto a = static_cast<size_t>(*axis);
  shape out(data.begin(), data.begin() + *axis);
  out.insert(out.end(), in[1].dims.begin(), in[1].dims.end());
  out.insert(out.end(), data.begin() + *axis + 1, data.end());
  TROUPE_TRY_STATUS(check_output_dims(n, out, in[0].type));
  const int64_t outer = numel_of(std::span{data}.first(a));
  const int64_t axis_dim = data[a];
  const auto block = static_cast<size_t>(numel_of(std::span{data}.subspan(a + 1))) *
                     size_of(in[0].type);
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, std::move(out)));
  op.kernel = make_kernel(
      [=, label = n.label(), normalized = std::vector<int64_t>(
                                 static_cast<size_t>(numel_of(in[1].dims)))](
          exec_context&, std::span<const tensor> inputs, std::span<tensor> outputs) mutable {
        TROUPE_TRY_STATUS(normalize_indices(inputs[1], axis_dim, normalized, label));
        cpu::gather_blocks(inputs[0].raw(), outer, axis_dim, block, normalized, outputs[0].raw());
        return status::ok();
      });
  return op;
}

expected<built_op> build_gather_elements(const node& n, std::span<const value_desc> in,
                                         build_context&) {
  TROUPE_TRY_STATUS(check_indices_input(n, in));
  const shape& data = in[0].dims;
  const shape& index = in[1].dims;
  auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(data.size()));
  if (!axis)
    return bad_input(n, axis.error().message());
  const auto a = static_cast<size_t>(*axis);
  if (index.size() != data.size())
    return invalid(n, "indices of shape {} must have the rank of data {}", to_string(index),
                   to_string(data));
  for (size_t k = 0; k < data.size(); ++k)
    if (k != a && index[k] > data[k])
      return invalid(n, "indices of shape {} exceed data {} on axis {}", to_string(index),
                     to_string(data), k);
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, index));
  op.kernel = make_kernel(
      [=, es = size_of(in[0].type), label = n.label(),
       normalized = std::vector<int64_t>(static_cast<size_t>(numel_of(index)))](
          exec_context&, std::span<const tensor> inputs, std::span<tensor> outputs) mutable {
        TROUPE_TRY_STATUS(normalize_indices(inputs[1], data[a], normalized, label));
        cpu::gather_elements(es, inputs[0].raw(), data, normalized, index, a, outputs[0].raw());
        return status::ok();
      });
  return op;
}

expected<built_op> build_pad(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  const auto rank = static_cast<int64_t>(src.size());
  const std::string mode_name = n.attr_string("mode", "constant");
  cpu::pad_mode mode = cpu::pad_mode::constant;
  if (mode_name == "reflect")
    mode = cpu::pad_mode::reflect;
  else if (mode_name == "edge")
    mode = cpu::pad_mode::edge;
  else if (mode_name != "constant")
    return unsupported(n, "mode '{}' is not supported", mode_name);

  auto pads = ints_from_attr_or_input(n, in, "pads", 1);
  if (!pads)
    return pads.error();
  if (!*pads)
    return invalid(n, "pads are required");
  // opset 18: pads may cover only the listed axes.
  std::vector<int64_t> axes(static_cast<size_t>(rank));
  std::iota(axes.begin(), axes.end(), int64_t{0});
  if (in.size() > 3 && in[3].present()) {
    auto given = constant_ints(n, in, 3, "axes");
    if (!given)
      return given.error();
    axes = std::move(*given);
  }
  if ((*pads)->size() != 2 * axes.size())
    return invalid(n, "pads {} must have 2 entries per padded axis ({})", to_string(**pads),
                   axes.size());
  std::vector<int64_t> begins(src.size()), ends(src.size());
  std::vector<bool> seen(src.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    auto axis = normalize_axis(axes[i], rank);
    if (!axis || rank == 0 || seen[static_cast<size_t>(*axis)])
      return invalid(n, "axes {} are not distinct axes of rank {}", to_string(axes), rank);
    const auto k = static_cast<size_t>(*axis);
    seen[k] = true;
    begins[k] = (**pads)[i];
    ends[k] = (**pads)[i + axes.size()];
  }
  shape out(src.size());
  for (size_t k = 0; k < src.size(); ++k) {
    if (__builtin_add_overflow(src[k], begins[k], &out[k]) ||
        __builtin_add_overflow(out[k], ends[k], &out[k]) || out[k] < 0)
      return invalid(n, "pads {} do not fit an input of shape {}", to_string(**pads),
                     to_string(src));
    if (mode != cpu::pad_mode::constant && src[k] == 0 && out[k] > 0)
      return invalid(n, "mode '{}' cannot pad an empty dimension", mode_name);
  }
  TROUPE_TRY_STATUS(check_output_dims(n, out, in[0].type));

  const bool value_input = in.size() > 2 && in[2].present();
  if (value_input && (in[2].type != in[0].type || numel_of(in[2].dims) != 1))
    return invalid(n, "constant_value must be one element of the input's dtype");
  const std::vector<std::byte> attr_value = scalar_bytes(in[0].type, n.attr_float("value", 0.0f));
  auto plan = std::make_shared<const cpu::pad_plan>(size_of(in[0].type), src, out, begins, mode);
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, std::move(out)));
  op.kernel = make_kernel([=](exec_context&, std::span<const tensor> inputs,
                              std::span<tensor> outputs) {
    const void* value = value_input ? inputs[2].raw() : attr_value.data();
    plan->run(inputs[0].raw(), outputs[0].raw(), value);
    return status::ok();
  });
  return op;
}

} // namespace

void register_indexing(op_registry& r) {
  r.add({.type = "Gather", .build = build_gather});
  r.add({.type = "GatherElements", .build = build_gather_elements});
  r.add({.type = "Pad", .build = build_pad});
}

} // namespace troupe::shape_ops
