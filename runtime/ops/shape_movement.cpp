// shape_movement: operators that rearrange elements without computing on them (Transpose,
// Concat, Split, Slice, Expand, Tile), all built on strided copies.
#include <algorithm>
#include <limits>
#include <numeric>

#include "kernels/cpu/copy_strided.hpp"
#include "runtime/ops/shape_common.hpp"

namespace troupe::shape_ops {
namespace {

// One strided copy fixed at build time: output dims, strides in elements, and where the
// copy starts in each buffer (elements).
struct copy_plan {
  shape dims;
  std::vector<int64_t> dst_strides, src_strides;
  int64_t dst_offset = 0, src_offset = 0;

  void run(size_t elem_size, const tensor& src, const tensor& dst) const {
    cpu::copy_strided(elem_size, dims,
                      static_cast<std::byte*>(dst.raw()) + dst_offset * int64_t(elem_size),
                      dst_strides,
                      static_cast<const std::byte*>(src.raw()) + src_offset * int64_t(elem_size),
                      src_strides);
  }
};

// A kernel that copies input 0 to output 0 with one plan.
std::unique_ptr<op_kernel> single_copy_kernel(size_t elem_size, copy_plan plan) {
  return make_kernel([elem_size, plan = std::move(plan)](exec_context&,
                                                         std::span<const tensor> inputs,
                                                         std::span<tensor> outputs) {
    plan.run(elem_size, inputs[0], outputs[0]);
    return status::ok();
  });
}

expected<built_op> build_transpose(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  const auto rank = static_cast<int64_t>(src.size());
  std::vector<int64_t> perm(src.size());
  std::iota(perm.rbegin(), perm.rend(), int64_t{0});
  if (n.has_attr("perm")) {
    perm = n.attr_ints("perm");
    if (static_cast<int64_t>(perm.size()) != rank)
      return invalid(n, "perm {} has {} entries for an input of rank {}", to_string(perm),
                     perm.size(), rank);
    std::vector<bool> seen(src.size());
    for (int64_t& p : perm) {
      if (p < -rank || p >= rank || seen[static_cast<size_t>(p < 0 ? p + rank : p)])
        return invalid(n, "perm {} is not a permutation of 0..{}", to_string(perm), rank - 1);
      if (p < 0)
        p += rank;
      seen[static_cast<size_t>(p)] = true;
    }
  }
  shape out(src.size());
  std::vector<int64_t> moved; // input dims of size > 1 in output order
  for (size_t k = 0; k < perm.size(); ++k) {
    out[k] = src[static_cast<size_t>(perm[k])];
    if (out[k] != 1)
      moved.push_back(perm[k]);
  }
  // Moving only size-1 dims leaves the bytes in place: a view.
  if (std::is_sorted(moved.begin(), moved.end()))
    return view_of_input(in[0].type, std::move(out));
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, out));
  const std::vector<int64_t> in_strides = strides_of(src);
  copy_plan plan{out, strides_of(out), {}};
  for (int64_t p : perm)
    plan.src_strides.push_back(in_strides[static_cast<size_t>(p)]);
  op.kernel = single_copy_kernel(size_of(in[0].type), std::move(plan));
  return op;
}

expected<built_op> build_concat(const node& n, std::span<const value_desc> in, build_context&) {
  if (in.empty())
    return invalid(n, "needs at least one input");
  for (size_t i = 0; i < in.size(); ++i)
    TROUPE_TRY_STATUS(require_input(n, in, i));
  if (!n.has_attr("axis"))
    return invalid(n, "attribute 'axis' is required");
  const shape& first = in[0].dims;
  const auto rank = static_cast<int64_t>(first.size());
  if (rank == 0)
    return invalid(n, "cannot concatenate scalars");
  auto axis = normalize_axis(n.attr_int("axis", 0), rank);
  if (!axis)
    return bad_input(n, axis.error().message());
  const auto a = static_cast<size_t>(*axis);
  shape out = first;
  out[a] = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const shape& d = in[i].dims;
    if (in[i].type != in[0].type)
      return invalid(n, "input {} has dtype {}, input 0 has {}", i, to_string(in[i].type),
                     to_string(in[0].type));
    bool match = d.size() == first.size();
    for (size_t k = 0; match && k < d.size(); ++k)
      match = k == a || d[k] == first[k];
    if (!match)
      return invalid(n, "input {} has shape {}, incompatible with {} on axis {}", i, to_string(d),
                     to_string(first), a);
    out[a] += d[a];
  }
  TROUPE_TRY_STATUS(check_output_dims(n, out, in[0].type));
  const std::vector<int64_t> out_strides = strides_of(out);
  std::vector<copy_plan> plans;
  int64_t offset = 0;
  for (const value_desc& d : in) {
    plans.push_back({d.dims, out_strides, strides_of(d.dims), offset * out_strides[a], 0});
    offset += d.dims[a];
  }
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, out));
  op.kernel = make_kernel([es = size_of(in[0].type), plans = std::move(plans)](
                              exec_context&, std::span<const tensor> inputs,
                              std::span<tensor> outputs) {
    for (size_t i = 0; i < plans.size(); ++i)
      plans[i].run(es, inputs[i], outputs[0]);
    return status::ok();
  });
  return op;
}

expected<built_op> build_split(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(src.size()));
  if (!axis || src.empty())
    return invalid(n, "axis {} out of range for rank {}", n.attr_int("axis", 0), src.size());
  const auto a = static_cast<size_t>(*axis);
  const int64_t outputs = static_cast<int64_t>(n.outputs.size());
  auto given = ints_from_attr_or_input(n, in, "split", 1);
  if (!given)
    return given.error();
  std::vector<int64_t> sizes;
  if (*given) {
    sizes = **given;
  } else if (n.has_attr("num_outputs")) {
    // opset 18: equal parts of ceil(dim / num_outputs), the last one smaller.
    const int64_t parts = n.attr_int("num_outputs", 0);
    if (parts != outputs || parts < 1)
      return invalid(n, "num_outputs {} does not match the {} outputs", parts, outputs);
    const int64_t each = (src[a] + parts - 1) / parts;
    for (int64_t i = 0, left = src[a]; i < parts; ++i, left -= each)
      sizes.push_back(std::clamp(left, int64_t{0}, each));
  } else {
    if (outputs < 1 || src[a] % outputs != 0)
      return invalid(n, "dimension {} of size {} does not split into {} equal parts", a, src[a],
                     outputs);
    sizes.assign(static_cast<size_t>(outputs), src[a] / outputs);
  }
  if (static_cast<int64_t>(sizes.size()) != outputs)
    return invalid(n, "split {} has {} entries for {} outputs", to_string(sizes), sizes.size(),
                   outputs);
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0)
      return invalid(n, "split {} has a negative size", to_string(sizes));
    total += s;
  }
  if (total != src[a])
    return invalid(n, "split {} does not add up to dimension {} of size {}", to_string(sizes), a,
                   src[a]);
  const std::vector<int64_t> in_strides = strides_of(src);
  built_op op;
  std::vector<copy_plan> plans;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    shape part = src;
    part[a] = s;
    op.outputs.push_back(plain_desc(in[0].type, part));
    plans.push_back({part, strides_of(part), in_strides, 0, offset * in_strides[a]});
    offset += s;
  }
  op.kernel = make_kernel([es = size_of(in[0].type), plans = std::move(plans)](
                              exec_context&, std::span<const tensor> inputs,
                              std::span<tensor> outs) {
    for (size_t i = 0; i < plans.size(); ++i)
      plans[i].run(es, inputs[0], outs[i]);
    return status::ok();
  });
  return op;
}

expected<built_op> build_slice(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  const shape& src = in[0].dims;
  const auto rank = static_cast<int64_t>(src.size());
  auto starts = ints_from_attr_or_input(n, in, "starts", 1);
  if (!starts)
    return starts.error();
  auto ends = ints_from_attr_or_input(n, in, "ends", 2);
  if (!ends)
    return ends.error();
  auto axes = ints_from_attr_or_input(n, in, "axes", 3);
  if (!axes)
    return axes.error();
  std::optional<std::vector<int64_t>> steps;
  if (in.size() > 4 && in[4].present()) {
    auto v = constant_ints(n, in, 4, "steps");
    if (!v)
      return v.error();
    steps = std::move(*v);
  }
  if (!*starts || !*ends)
    return invalid(n, "starts and ends are required");
  const size_t count = (*starts)->size();
  if ((*ends)->size() != count || (*axes && (*axes)->size() != count) ||
      (steps && steps->size() != count))
    return invalid(n, "starts, ends, axes and steps must have the same length");

  const std::vector<int64_t> in_strides = strides_of(src);
  copy_plan plan{src, strides_of(src), in_strides};
  std::vector<bool> seen(src.size());
  for (size_t i = 0; i < count; ++i) {
    int64_t axis = *axes ? (**axes)[i] : static_cast<int64_t>(i);
    if (axis < -rank || axis >= rank)
      return invalid(n, "axis {} out of range for rank {}", axis, rank);
    const auto a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
    if (seen[a])
      return invalid(n, "axis {} is repeated", axis);
    seen[a] = true;
    const int64_t step = steps ? (*steps)[i] : 1;
    if (step == 0)
      return invalid(n, "steps must not be zero");
    // ONNX clamping: negative values count from the end; a negative step may stop at -1,
    // before the first element. Lengths are computed without forming end - start + step,
    // which overflows for huge steps.
    const int64_t dim = src[a];
    int64_t start = (**starts)[i], end = (**ends)[i];
    if (start < 0)
      start += dim;
    if (end < 0)
      end += dim;
    int64_t length = 0;
    if (step > 0) {
      start = std::clamp(start, int64_t{0}, dim);
      end = std::clamp(end, int64_t{0}, dim);
      length = end > start ? (end - start - 1) / step + 1 : 0;
    } else {
      start = std::clamp(start, int64_t{0}, dim - 1);
      end = std::clamp(end, int64_t{-1}, dim - 1);
      const int64_t back = step == std::numeric_limits<int64_t>::min()
                               ? std::numeric_limits<int64_t>::max()
                               : -step;
      length = start > end ? (start - end - 1) / back + 1 : 0;
    }
    plan.dims[a] = length;
    plan.src_offset += length > 0 ? start * in_strides[a] : 0;
    // A stride only matters when more than one element is read; skipping it avoids overflow.
    plan.src_strides[a] = length > 1 ? in_strides[a] * step : in_strides[a];
  }
  plan.dst_strides = strides_of(plan.dims);
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, plan.dims));
  op.kernel = single_copy_kernel(size_of(in[0].type), std::move(plan));
  return op;
}

expected<built_op> build_expand(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  auto target = constant_ints(n, in, 1, "shape");
  if (!target)
    return target.error();
  const shape& src = in[0].dims;
  auto out = broadcast_shapes(src, *target);
  if (!out)
    return bad_input(n, out.error().message());
  TROUPE_TRY_STATUS(check_output_dims(n, *out, in[0].type));
  // Broadcast dims read the same element again: stride 0.
  const std::vector<int64_t> in_strides = strides_of(src);
  const size_t lead = out->size() - src.size();
  copy_plan plan{*out, strides_of(*out), std::vector<int64_t>(out->size(), 0)};
  for (size_t k = 0; k < src.size(); ++k)
    plan.src_strides[lead + k] = src[k] == 1 ? 0 : in_strides[k];
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, *out));
  op.kernel = single_copy_kernel(size_of(in[0].type), std::move(plan));
  return op;
}

expected<built_op> build_tile(const node& n, std::span<const value_desc> in, build_context&) {
  TROUPE_TRY_STATUS(require_input(n, in, 0));
  auto repeats = constant_ints(n, in, 1, "repeats");
  if (!repeats)
    return repeats.error();
  const shape& src = in[0].dims;
  if (repeats->size() != src.size())
    return invalid(n, "repeats {} has {} entries for an input of rank {}", to_string(*repeats),
                   repeats->size(), src.size());
  // The output seen as [r0, d0, r1, d1, ...] reads the input with stride 0 on each r.
  const std::vector<int64_t> in_strides = strides_of(src);
  shape out(src.size()), split_dims;
  std::vector<int64_t> split_src;
  for (size_t k = 0; k < src.size(); ++k) {
    const int64_t r = (*repeats)[k];
    if (r < 0)
      return invalid(n, "repeats {} has a negative entry", to_string(*repeats));
    if (__builtin_mul_overflow(r, src[k], &out[k]))
      return invalid(n, "repeats {} make the output too large", to_string(*repeats));
    split_dims.insert(split_dims.end(), {r, src[k]});
    split_src.insert(split_src.end(), {0, in_strides[k]});
  }
  TROUPE_TRY_STATUS(check_output_dims(n, out, in[0].type));
  copy_plan plan{split_dims, strides_of(split_dims), std::move(split_src)};
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, std::move(out)));
  op.kernel = single_copy_kernel(size_of(in[0].type), std::move(plan));
  return op;
}

} // namespace

void register_movement(op_registry& r) {
  r.add({.type = "Transpose", .build = build_transpose});
  r.add({.type = "Concat", .build = build_concat});
  r.add({.type = "Split", .build = build_split});
  r.add({.type = "Slice", .build = build_slice});
  r.add({.type = "Expand", .build = build_expand});
  r.add({.type = "Tile", .build = build_tile});
}

} // namespace troupe::shape_ops
