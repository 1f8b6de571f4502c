// gather: row gathers as memcpys split across threads, element gathers with an odometer walk.
#include "kernels/cpu/gather.hpp"

#include <cstring>
#include <vector>

#include "kernels/cpu/parallel_copy.hpp"
#include "kernels/shape.hpp"

namespace troupe::cpu {
namespace {

// A fixed-size memcpy is one load and one store; used when a row is a single element.
template <size_t N>
void gather_small(const std::byte* data, int64_t outer, int64_t axis_dim,
                  std::span<const int64_t> indices, std::byte* out) {
  const auto count = static_cast<int64_t>(indices.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < count; ++j)
      std::memcpy(out + (o * count + j) * int64_t{N},
                  data + (o * axis_dim + indices[static_cast<size_t>(j)]) * int64_t{N}, N);
}

template <size_t N>
void copy_element(std::byte* dst, const std::byte* src) {
  std::memcpy(dst, src, N);
}

} // namespace

void gather_blocks(const void* data, int64_t outer, int64_t axis_dim, size_t block_bytes,
                   std::span<const int64_t> indices, void* out) {
  if (block_bytes == 0)
    return; // empty rows: the buffers may be null
  const auto* src = static_cast<const std::byte*>(data);
  auto* dst = static_cast<std::byte*>(out);
  switch (block_bytes) {
  case 1: gather_small<1>(src, outer, axis_dim, indices, dst); return;
  case 2: gather_small<2>(src, outer, axis_dim, indices, dst); return;
  case 4: gather_small<4>(src, outer, axis_dim, indices, dst); return;
  case 8: gather_small<8>(src, outer, axis_dim, indices, dst); return;
  default: break;
  }
  const auto count = static_cast<int64_t>(indices.size());
  const int64_t rows = outer * count;
  const auto block = static_cast<int64_t>(block_bytes);
#pragma omp parallel for if (rows * block >= parallel_min_bytes && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r / count;
    const int64_t i = indices[static_cast<size_t>(r - o * count)];
    std::memcpy(dst + r * block, src + (o * axis_dim + i) * block, block_bytes);
  }
}

void gather_elements(size_t elem_size, const void* data, std::span<const int64_t> data_dims,
                     std::span<const int64_t> indices, std::span<const int64_t> index_dims,
                     size_t axis, void* out) {
  const auto* src = static_cast<const std::byte*>(data);
  auto* dst = static_cast<std::byte*>(out);
  const std::vector<int64_t> strides = strides_of(data_dims);
  const auto es = static_cast<int64_t>(elem_size);
  const size_t rank = index_dims.size();
  void (*copy)(std::byte*, const std::byte*) = elem_size == 1   ? copy_element<1>
                                               : elem_size == 2 ? copy_element<2>
                                               : elem_size == 4 ? copy_element<4>
                                                                : copy_element<8>;
  // Odometer over index_dims; `base` is the data offset of all coordinates but `axis`.
  std::vector<int64_t> at(rank);
  int64_t base = 0;
  for (size_t i = 0; i < indices.size(); ++i) {
    copy(dst + static_cast<int64_t>(i) * es, src + (base + indices[i] * strides[axis]) * es);
    for (size_t k = rank; k-- > 0;) {
      if (k != axis)
        base += strides[k];
      if (++at[k] < index_dims[k])
        break;
      if (k != axis)
        base -= strides[k] * index_dims[k];
      at[k] = 0;
    }
  }
}

} // namespace troupe::cpu
