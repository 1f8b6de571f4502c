// cuda_plans: shape checks and index-space collapsing for the CUDA kernels, on the host.
#include "kernels/cuda/cuda_plans.hpp"

#include <algorithm>
#include <numeric>

namespace troupe::cuda {

namespace {

/// dims plus per-operand strides before collapsing, outermost first.
struct walk_builder {
  shape dims;
  std::vector<int64_t> strides[2];

  void push(int64_t dim, int64_t s0, int64_t s1 = 0) {
    dims.push_back(dim);
    strides[0].push_back(s0);
    strides[1].push_back(s1);
  }

  /// Drops size-1 dims and merges neighbours that one stride walks for both operands, so
  /// the kernel decodes as few dims as possible; an error past max_rank.
  expected<strided_walk> collapse(const char* op) const {
    strided_walk w;
    w.total = numel_of(dims);
    shape d;
    std::vector<int64_t> s[2];
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == 1 && w.total != 0)
        continue;
      if (!d.empty() && s[0].back() == strides[0][i] * dims[i] &&
          s[1].back() == strides[1][i] * dims[i]) {
        d.back() *= dims[i];
        s[0].back() = strides[0][i];
        s[1].back() = strides[1][i];
        continue;
      }
      d.push_back(dims[i]);
      s[0].push_back(strides[0][i]);
      s[1].push_back(strides[1][i]);
    }
    if (d.size() > static_cast<size_t>(max_rank))
      return make_error(errc::unsupported, "{}: {} dims after collapsing, the CUDA kernels walk at most {}",
                        op, d.size(), max_rank);
    w.rank = static_cast<int>(d.size());
    for (size_t i = 0; i < d.size(); ++i) {
      w.dims[i] = d[i];
      w.strides[0][i] = s[0][i];
      w.strides[1][i] = s[1][i];
    }
    return w;
  }
};

status check_dims(std::span<const int64_t> dims, const char* op) {
  if (auto n = checked_numel(dims); !n)
    return n.error().with_context(op);
  return status::ok();
}

/// A normalized axis of a rank >= 1 tensor (normalize_axis lets scalars take axis 0, which
/// would index past the dims here).
expected<int64_t> axis_of(int64_t axis, size_t rank, const char* op) {
  if (rank == 0)
    return make_error(errc::invalid_argument, "{}: axis {} of a scalar", op, axis);
  auto a = normalize_axis(axis, static_cast<int64_t>(rank));
  if (!a)
    return a.error().with_context(op);
  return a;
}

int64_t product(std::span<const int64_t> dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i)
    p *= dims[i];
  return p;
}

} // namespace

bool is_gpu_float(dtype t) { return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16; }

status require_gpu_float(dtype t, const char* op) {
  if (is_gpu_float(t))
    return status::ok();
  return make_error(errc::unsupported, "{}: the CUDA kernel takes float32, float16 or bfloat16, not {}",
                    op, to_string(t));
}

expected<binary_plan> plan_binary(std::span<const int64_t> a, std::span<const int64_t> b) {
  TROUPE_TRY_STATUS(check_dims(a, "binary"));
  TROUPE_TRY_STATUS(check_dims(b, "binary"));
  auto out = broadcast_shapes(a, b);
  if (!out)
    return out.error();
  binary_plan p;
  p.out_dims = std::move(*out);
  const size_t rank = p.out_dims.size();
  const auto sa = strides_of(a), sb = strides_of(b);
  walk_builder wb;
  for (size_t d = 0; d < rank; ++d) {
    // Right-aligned operand dims; a missing or size-1 dim under a larger one repeats.
    auto stride_of = [&](std::span<const int64_t> dims, const std::vector<int64_t>& s) -> int64_t {
      const size_t lead = rank - dims.size();
      if (d < lead || dims[d - lead] == 1)
        return 0;
      return s[d - lead];
    };
    wb.push(p.out_dims[d], stride_of(a, sa), stride_of(b, sb));
  }
  auto w = wb.collapse("binary");
  if (!w)
    return w.error();
  p.walk = *w;
  p.same = std::ranges::equal(a, p.out_dims) && std::ranges::equal(b, p.out_dims);
  return p;
}

expected<transpose_plan> plan_transpose(std::span<const int64_t> dims,
                                        std::span<const int64_t> perm_in) {
  TROUPE_TRY_STATUS(check_dims(dims, "transpose"));
  const size_t rank = dims.size();
  std::vector<int64_t> perm(perm_in.begin(), perm_in.end());
  if (perm.empty()) {
    perm.resize(rank);
    std::iota(perm.rbegin(), perm.rend(), int64_t{0});
  }
  std::vector<bool> seen(rank, false);
  bool valid = perm.size() == rank;
  for (int64_t axis : perm) {
    if (!valid || axis < 0 || axis >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(axis)]) {
      valid = false;
      break;
    }
    seen[static_cast<size_t>(axis)] = true;
  }
  if (!valid)
    return make_error(errc::invalid_argument, "transpose: perm {} is not a permutation of {} axes",
                      to_string(perm), rank);
  transpose_plan p;
  const auto s = strides_of(dims);
  walk_builder wb;
  for (int64_t axis : perm) {
    p.out_dims.push_back(dims[static_cast<size_t>(axis)]);
    wb.push(dims[static_cast<size_t>(axis)], s[static_cast<size_t>(axis)]);
  }
  auto w = wb.collapse("transpose");
  if (!w)
    return w.error();
  p.walk = *w;
  const auto& c = p.walk;
  if (c.rank == 2 && c.strides[0][0] == 1 && c.strides[0][1] == c.dims[0]) {
    p.tiled = true;
    p.rows = c.dims[1];
    p.cols = c.dims[0];
  } else if (c.rank == 3 && c.strides[0][1] == 1 && c.strides[0][2] == c.dims[1] &&
             c.strides[0][0] == c.dims[1] * c.dims[2]) {
    p.tiled = true;
    p.batch = c.dims[0];
    p.rows = c.dims[2];
    p.cols = c.dims[1];
  }
  return p;
}

expected<slice_plan> plan_slice(std::span<const int64_t> dims, std::span<const int64_t> starts,
                                std::span<const int64_t> ends, std::span<const int64_t> axes_in,
                                std::span<const int64_t> steps) {
  TROUPE_TRY_STATUS(check_dims(dims, "slice"));
  if (starts.size() != ends.size() || (!axes_in.empty() && axes_in.size() != starts.size()) ||
      (!steps.empty() && steps.size() != starts.size()))
    return make_error(errc::invalid_argument,
                      "slice: starts, ends, axes and steps differ in length ({}, {}, {}, {})",
                      starts.size(), ends.size(), axes_in.size(), steps.size());
  shape out(dims.begin(), dims.end());
  const auto s = strides_of(dims);
  std::vector<int64_t> step_of(dims.size(), 1);
  std::vector<bool> seen(dims.size(), false);
  slice_plan p;
  for (size_t i = 0; i < starts.size(); ++i) {
    auto axis = axis_of(axes_in.empty() ? static_cast<int64_t>(i) : axes_in[i], dims.size(), "slice");
    if (!axis)
      return axis.error();
    const auto a = static_cast<size_t>(*axis);
    if (seen[a])
      return make_error(errc::invalid_argument, "slice: axis {} appears twice", *axis);
    seen[a] = true;
    int64_t step = steps.empty() ? 1 : steps[i];
    if (step == 0)
      return make_error(errc::invalid_argument, "slice: step 0 on axis {}", *axis);
    const int64_t dim = dims[a];
    // A step as long as the axis takes at most one element whatever its size: bounded, so the
    // arithmetic below (and the stride times the step) cannot overflow for INT64_MAX/MIN.
    const int64_t longest = std::max<int64_t>(dim, 1);
    step = std::clamp<int64_t>(step, -longest, longest);
    int64_t start = starts[i], end = ends[i];
    if (start < 0)
      start += dim;
    if (end < 0)
      end += dim;
    int64_t count = 0;
    if (dim == 0) {
      count = 0;
    } else if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    out[a] = count;
    step_of[a] = step;
    if (count > 0)
      p.in_offset += start * s[a];
  }
  walk_builder wb;
  for (size_t d = 0; d < dims.size(); ++d)
    wb.push(out[d], s[d] * step_of[d]);
  auto w = wb.collapse("slice");
  if (!w)
    return w.error();
  p.walk = *w;
  p.out_dims = std::move(out);
  if (p.walk.total == 0)
    p.in_offset = 0;
  return p;
}

expected<std::vector<slice_plan>> plan_split(std::span<const int64_t> dims, int64_t axis,
                                             std::span<const int64_t> sizes) {
  auto a = axis_of(axis, dims.size(), "split");
  if (!a)
    return a.error();
  int64_t sum = 0;
  for (int64_t size : sizes) {
    if (size < 0)
      return make_error(errc::invalid_argument, "split: negative part size {}", size);
    sum += size;
  }
  if (sum != dims[static_cast<size_t>(*a)])
    return make_error(errc::invalid_argument, "split: parts {} do not add up to axis {} of {}",
                      to_string(sizes), *a, to_string(dims));
  std::vector<slice_plan> parts;
  int64_t begin = 0;
  for (int64_t size : sizes) {
    const int64_t start[] = {begin}, end[] = {begin + size}, axes[] = {*a};
    auto part = plan_slice(dims, start, end, axes, {});
    if (!part)
      return part.error();
    parts.push_back(std::move(*part));
    begin += size;
  }
  return parts;
}

expected<concat_plan> plan_concat(std::span<const shape> inputs, int64_t axis) {
  if (inputs.empty())
    return make_error(errc::invalid_argument, "concat: no inputs");
  const auto& first = inputs.front();
  auto a = axis_of(axis, first.size(), "concat");
  if (!a)
    return a.error();
  const auto ax = static_cast<size_t>(*a);
  concat_plan p;
  p.out_dims = first;
  p.out_dims[ax] = 0;
  for (const auto& in : inputs) {
    TROUPE_TRY_STATUS(check_dims(in, "concat"));
    bool fits = in.size() == first.size();
    for (size_t d = 0; fits && d < in.size(); ++d)
      fits = d == ax || in[d] == first[d];
    if (!fits)
      return make_error(errc::invalid_argument, "concat: {} does not match {} outside axis {}",
                        to_string(in), to_string(first), *a);
    p.out_dims[ax] += in[ax];
  }
  TROUPE_TRY_STATUS(check_dims(p.out_dims, "concat"));
  p.outer = product(first, 0, ax);
  const int64_t inner = product(first, ax + 1, first.size());
  int64_t offset = 0;
  for (const auto& in : inputs) {
    p.in_columns.push_back(in[ax] * inner);
    p.column_offset.push_back(offset);
    offset += in[ax] * inner;
  }
  p.out_columns = offset;
  return p;
}

expected<reduce_plan> plan_reduce(std::span<const int64_t> dims, std::span<const int64_t> axes,
                                  bool keepdims) {
  TROUPE_TRY_STATUS(check_dims(dims, "reduce"));
  std::vector<bool> reduced(dims.size(), axes.empty());
  for (int64_t axis : axes) {
    auto a = axis_of(axis, dims.size(), "reduce");
    if (!a)
      return a.error();
    if (reduced[static_cast<size_t>(*a)])
      return make_error(errc::invalid_argument, "reduce: axis {} appears twice", *a);
    reduced[static_cast<size_t>(*a)] = true;
  }
  reduce_plan p;
  const auto s = strides_of(dims);
  walk_builder kept, red;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (reduced[d]) {
      red.push(dims[d], s[d]);
      if (keepdims)
        p.out_dims.push_back(1);
    } else {
      kept.push(dims[d], s[d]);
      p.out_dims.push_back(dims[d]);
    }
  }
  auto k = kept.collapse("reduce");
  if (!k)
    return k.error();
  auto r = red.collapse("reduce");
  if (!r)
    return r.error();
  p.kept = *k;
  p.reduced = *r;
  p.inner_contiguous = p.reduced.rank == 0 || (p.reduced.rank == 1 && p.reduced.strides[0][0] == 1);
  return p;
}

expected<gather_plan> plan_gather(std::span<const int64_t> data, std::span<const int64_t> indices,
                                  int64_t axis) {
  TROUPE_TRY_STATUS(check_dims(data, "gather"));
  TROUPE_TRY_STATUS(check_dims(indices, "gather"));
  auto a = axis_of(axis, data.size(), "gather");
  if (!a)
    return a.error();
  const auto ax = static_cast<size_t>(*a);
  gather_plan p;
  p.out_dims.assign(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(ax));
  p.out_dims.insert(p.out_dims.end(), indices.begin(), indices.end());
  p.out_dims.insert(p.out_dims.end(), data.begin() + static_cast<std::ptrdiff_t>(ax) + 1, data.end());
  TROUPE_TRY_STATUS(check_dims(p.out_dims, "gather"));
  p.outer = product(data, 0, ax);
  p.axis_dim = data[ax];
  p.inner = product(data, ax + 1, data.size());
  p.indices = numel_of(indices);
  return p;
}

expected<row_plan> plan_rows(std::span<const int64_t> dims, int64_t axis) {
  TROUPE_TRY_STATUS(check_dims(dims, "row kernel"));
  if (dims.empty())
    return make_error(errc::invalid_argument, "the row kernels need rank >= 1, not a scalar");
  auto a = axis_of(axis, dims.size(), "row kernel");
  if (!a)
    return a.error();
  const auto ax = static_cast<size_t>(*a);
  return row_plan{product(dims, 0, ax), product(dims, ax, dims.size())};
}

row_blocks row_blocks_for(int64_t cols) {
  const int threads = group_threads(cols);
  return {threads, std::max(1, 256 / threads)};
}

int group_threads(int64_t n) {
  // About four elements per thread keeps loads in flight without idling threads.
  int threads = 32;
  while (threads < 512 && static_cast<int64_t>(threads) * 4 < n)
    threads *= 2;
  return threads;
}

} // namespace troupe::cuda
