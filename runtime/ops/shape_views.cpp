// shape_views: operators whose output is input 0 seen with other dims (Reshape, Flatten,
// Squeeze, Unsqueeze, Identity, Dropout at inference).
#include <cstring>

#include "runtime/ops/shape_common.hpp"

namespace troupe::shape_ops {
namespace {

expected<built_op> build_reshape(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  auto target = constant_ints(n, in, 1, "shape");
  if (!target)
    return target.error();
  const bool allow_zero = n.attr_int("allowzero", 0) != 0;
  const shape& src = in[0].dims;
  shape out(target->size());
  std::optional<size_t> inferred;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t d = (*target)[i];
    if (d == 0 && !allow_zero) {
      if (i >= src.size())
        return invalid(n, "shape {} copies dimension {} of an input of shape {}",
                       to_string(*target), i, to_string(src));
      d = src[i];
    }
    if (d == -1) {
      if (inferred)
        return invalid(n, "shape {} has more than one -1", to_string(*target));
      inferred = i;
      continue;
    }
    if (d < 0)
      return invalid(n, "shape {} has a negative dimension", to_string(*target));
    if (__builtin_mul_overflow(known, d, &known))
      return invalid(n, "shape {} is too large", to_string(*target));
    out[i] = d;
  }
  const int64_t count = numel_of(src);
  if (inferred) {
    if (known == 0 || count % known != 0)
      return invalid(n, "cannot reshape {} to {}: the -1 dimension has no integer size",
                     to_string(src), to_string(*target));
    out[*inferred] = count / known;
  } else if (known != count) {
    return invalid(n, "cannot reshape {} ({} elements) to {} ({} elements)", to_string(src),
                   count, to_string(out), known);
  }
  return view_of_input(in[0].type, std::move(out));
}

expected<built_op> build_flatten(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  const auto rank = static_cast<int64_t>(src.size());
  int64_t axis = n.attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    return invalid(n, "axis {} out of range for rank {}", axis, rank);
  if (axis < 0)
    axis += rank;
  const auto split = src.begin() + axis;
  shape out{numel_of(std::span{src.begin(), split}), numel_of(std::span{split, src.end()})};
  return view_of_input(in[0].type, std::move(out));
}

// Normalized, duplicate-free axes for a tensor of `rank` dims, as a mask.
expected<std::vector<bool>> axes_mask(const node& n, std::span<const int64_t> axes, int64_t rank) {
  std::vector<bool> mask(static_cast<size_t>(rank));
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return invalid(n, "axis {} out of range for rank {}", a, rank);
    const auto k = static_cast<size_t>(a < 0 ? a + rank : a);
    if (mask[k])
      return invalid(n, "axis {} is repeated", a);
    mask[k] = true;
  }
  return mask;
}

expected<built_op> build_squeeze(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  auto axes = ints_from_attr_or_input(n, in, "axes", 1);
  if (!axes)
    return axes.error();
  shape out;
  if (!*axes) {
    for (int64_t d : src)
      if (d != 1)
        out.push_back(d);
    return view_of_input(in[0].type, std::move(out));
  }
  auto mask = axes_mask(n, **axes, static_cast<int64_t>(src.size()));
  if (!mask)
    return mask.error();
  for (size_t k = 0; k < src.size(); ++k) {
    if (!(*mask)[k])
      out.push_back(src[k]);
    else if (src[k] != 1)
      return invalid(n, "cannot squeeze axis {} of shape {}: its size is not 1", k, to_string(src));
  }
  return view_of_input(in[0].type, std::move(out));
}

expected<built_op> build_unsqueeze(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  auto axes = ints_from_attr_or_input(n, in, "axes", 1);
  if (!axes)
    return axes.error();
  if (!*axes)
    return invalid(n, "axes are required");
  const auto rank = static_cast<int64_t>(src.size() + (*axes)->size());
  auto mask = axes_mask(n, **axes, rank);
  if (!mask)
    return mask.error();
  shape out;
  auto next = src.begin();
  for (size_t k = 0; k < mask->size(); ++k)
    out.push_back((*mask)[k] ? 1 : *next++);
  return view_of_input(in[0].type, std::move(out));
}

expected<built_op> build_identity(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  return view_of_input(in[0].type, in[0].dims);
}

expected<built_op> build_dropout(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  if (in.size() > 2 && in[2].present()) {
    if (!in[2].constant)
      return unsupported(n, "training_mode must be a constant");
    if (in[2].type != dtype::boolean || *in[2].constant->data<uint8_t>() != 0)
      return unsupported(n, "only inference (training_mode false) is supported");
  }
  const bool wants_mask = n.outputs.size() > 1 && !n.outputs[1].empty();
  if (!wants_mask)
    return view_of_input(in[0].type, in[0].dims);
  // With a mask output the op has two results, so it cannot be a view: copy and fill.
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, in[0].dims));
  op.outputs.push_back(plain_desc(dtype::boolean, in[0].dims));
  op.kernel = make_kernel([](exec_context&, std::span<const tensor> inputs,
                             std::span<tensor> outputs) {
    if (outputs[0].nbytes() != 0)
      std::memcpy(outputs[0].raw(), inputs[0].raw(), outputs[0].nbytes());
    if (outputs[1].nbytes() != 0)
      std::memset(outputs[1].raw(), 1, outputs[1].nbytes());
    return status::ok();
  });
  return op;
}

} // namespace

void register_views(op_registry& r) {
  r.add({.type = "Reshape", .build = build_reshape});
  r.add({.type = "Flatten", .build = build_flatten});
  r.add({.type = "Squeeze", .build = build_squeeze});
  r.add({.type = "Unsqueeze", .build = build_unsqueeze});
  r.add({.type = "Identity", .build = build_identity});
  r.add({.type = "Dropout", .build = build_dropout});
}

} // namespace troupe::shape_ops
