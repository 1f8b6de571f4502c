// shape: checked arithmetic and broadcasting.
#include "kernels/shape.hpp"

#include <algorithm>

namespace troupe {

expected<int64_t> checked_numel(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0)
      return make_error(errc::invalid_argument, "negative dimension in shape {}", to_string(dims));
    if (__builtin_mul_overflow(n, d, &n))
      return make_error(errc::out_of_range, "shape {} has more elements than fit in 64 bits",
                        to_string(dims));
  }
  return n;
}

expected<int64_t> checked_bytes(std::span<const int64_t> dims, size_t element_size) {
  auto n = checked_numel(dims);
  if (!n)
    return n.error();
  int64_t bytes = 0;
  if (__builtin_mul_overflow(*n, static_cast<int64_t>(element_size), &bytes))
    return make_error(errc::out_of_range, "shape {} is too large in bytes", to_string(dims));
  return bytes;
}

int64_t numel_of(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

std::string to_string(std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i)
      s += ',';
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

std::vector<int64_t> strides_of(std::span<const int64_t> dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;)
    // Only a tensor with a zero dimension can have valid dims whose strides overflow; it has
    // no elements to address, so 0 is as good a stride as any.
    if (__builtin_mul_overflow(strides[i], dims[i], &strides[i - 1]))
      strides[i - 1] = 0;
  return strides;
}

expected<shape> broadcast_shapes(std::span<const int64_t> a, std::span<const int64_t> b) {
  const size_t rank = std::max(a.size(), b.size());
  shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return make_error(errc::invalid_argument, "shapes {} and {} do not broadcast",
                        to_string(a), to_string(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

expected<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    return make_error(errc::invalid_argument, "axis {} out of range for rank {}", axis, rank);
  return axis < 0 ? axis + rank : axis;
}

} // namespace troupe
