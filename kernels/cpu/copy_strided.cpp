// copy_strided: strided copies with dimension merging, memcpy runs and tiled transposes.
#include "kernels/cpu/copy_strided.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

#include "kernels/cpu/parallel_copy.hpp"
#include "kernels/shape.hpp"

namespace troupe::cpu {
namespace {

// Edge of a transpose tile in elements: 16 floats are one cache line, so a tile reads and
// writes whole lines and stays in L1.
constexpr int64_t tile = 16;

// Dimensions with their strides in both views, in bytes.
struct strided_dims {
  std::vector<int64_t> dims, dst, src;

  void push(int64_t d, int64_t dst_stride, int64_t src_stride) {
    dims.push_back(d);
    dst.push_back(dst_stride);
    src.push_back(src_stride);
  }
};

// Drops size-1 dimensions and merges neighbours whose strides chain in both views, so a
// concat becomes rows of one contiguous run and a transpose keeps only the dims it swaps.
strided_dims simplify(std::span<const int64_t> dims, std::span<const int64_t> dst,
                      std::span<const int64_t> src) {
  strided_dims s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1)
      continue;
    if (!s.dims.empty() && s.dst.back() == dst[i] * dims[i] && s.src.back() == src[i] * dims[i]) {
      s.dims.back() *= dims[i];
      s.dst.back() = dst[i];
      s.src.back() = src[i];
    } else {
      s.push(dims[i], dst[i], src[i]);
    }
  }
  return s;
}

// Calls body(dst, src, index) for the outer iterations [begin, end) of `outer` (strides in
// bytes), walking the index like an odometer instead of dividing per iteration.
template <class Body>
void walk(const strided_dims& outer, std::byte* dst, const std::byte* src, int64_t begin,
          int64_t end, Body& body) {
  const size_t rank = outer.dims.size();
  std::vector<int64_t> index(rank);
  int64_t rest = begin;
  for (size_t k = rank; k-- > 0;) {
    index[k] = rest % outer.dims[k];
    rest /= outer.dims[k];
    dst += index[k] * outer.dst[k];
    src += index[k] * outer.src[k];
  }
  for (int64_t it = begin; it < end; ++it) {
    body(dst, src, index);
    for (size_t k = rank; k-- > 0;) {
      dst += outer.dst[k];
      src += outer.src[k];
      if (++index[k] < outer.dims[k])
        break;
      dst -= outer.dst[k] * outer.dims[k];
      src -= outer.src[k] * outer.dims[k];
      index[k] = 0;
    }
  }
}

// Runs `walk` over all outer iterations, split across the OpenMP team when the copy is big.
template <class Body>
void walk_all(const strided_dims& outer, std::byte* dst, const std::byte* src,
              int64_t total_bytes, Body body) {
  const int64_t count = numel_of(outer.dims);
  if (total_bytes < parallel_min_bytes || count < 2 || omp_in_parallel() ||
      omp_get_max_threads() == 1) {
    walk(outer, dst, src, 0, count, body);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t t = omp_get_thread_num();
    walk(outer, dst, src, count * t / threads, count * (t + 1) / threads, body);
  }
}

// Fixed-size memcpy compiles to one load and one store, without aliasing concerns.
template <size_t N>
void copy_elements(std::byte* dst, int64_t dst_stride, const std::byte* src, int64_t src_stride,
                   int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * dst_stride, src + i * src_stride, N);
}

// One run of `n` elements with byte strides.
void copy_run(size_t elem_size, std::byte* dst, int64_t dst_stride, const std::byte* src,
              int64_t src_stride, int64_t n) {
  const auto es = static_cast<int64_t>(elem_size);
  if (dst_stride == es && src_stride == es) {
    std::memcpy(dst, src, static_cast<size_t>(n) * elem_size);
    return;
  }
  if (dst_stride == es && src_stride == 0) {
    fill_elements(dst, n, src, elem_size);
    return;
  }
  switch (elem_size) {
  case 1: copy_elements<1>(dst, dst_stride, src, src_stride, n); return;
  case 2: copy_elements<2>(dst, dst_stride, src, src_stride, n); return;
  case 4: copy_elements<4>(dst, dst_stride, src, src_stride, n); return;
  case 8: copy_elements<8>(dst, dst_stride, src, src_stride, n); return;
  default:
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(dst + i * dst_stride, src + i * src_stride, elem_size);
  }
}

// A rows x cols tile where rows are contiguous in src and cols are contiguous in dst.
template <size_t N>
void copy_tile(std::byte* dst, int64_t dst_row, const std::byte* src, int64_t src_col,
               int64_t rows, int64_t cols) {
  for (int64_t c0 = 0; c0 < cols; c0 += tile) {
    const int64_t c1 = std::min(cols, c0 + tile);
    if (rows == tile && c1 - c0 == tile) {
      // Constant trip counts let the compiler unroll full tiles (about 1.5x faster).
      std::byte* d = dst + c0 * int64_t{N};
      const std::byte* s = src + c0 * src_col;
      for (int64_t r = 0; r < tile; ++r)
        for (int64_t c = 0; c < tile; ++c)
          std::memcpy(d + r * dst_row + c * int64_t{N}, s + r * int64_t{N} + c * src_col, N);
      continue;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c)
        std::memcpy(dst + r * dst_row + c * int64_t{N}, src + r * int64_t{N} + c * src_col, N);
  }
}

void copy_tile(size_t elem_size, std::byte* dst, int64_t dst_row, const std::byte* src,
               int64_t src_col, int64_t rows, int64_t cols) {
  switch (elem_size) {
  case 1: copy_tile<1>(dst, dst_row, src, src_col, rows, cols); return;
  case 2: copy_tile<2>(dst, dst_row, src, src_col, rows, cols); return;
  case 4: copy_tile<4>(dst, dst_row, src, src_col, rows, cols); return;
  default: copy_tile<8>(dst, dst_row, src, src_col, rows, cols); return;
  }
}

// The innermost output dimension `last` is contiguous in dst and dimension `inner` is
// contiguous in src: copying along either alone touches a new cache line per element, so
// both are walked in tiles. The tile rows along `inner` become the last outer dimension.
void copy_transposed(size_t elem_size, const strided_dims& s, size_t inner, std::byte* dst,
                     const std::byte* src, int64_t total_bytes) {
  const size_t last = s.dims.size() - 1;
  strided_dims outer;
  for (size_t k = 0; k < last; ++k)
    if (k != inner)
      outer.push(s.dims[k], s.dst[k], s.src[k]);
  const int64_t rows = s.dims[inner];
  outer.push((rows + tile - 1) / tile, s.dst[inner] * tile, s.src[inner] * tile);
  walk_all(outer, dst, src, total_bytes,
           [&](std::byte* d, const std::byte* sp, const std::vector<int64_t>& index) {
             const int64_t r = std::min(tile, rows - index.back() * tile);
             copy_tile(elem_size, d, s.dst[inner], sp, s.src[last], r, s.dims[last]);
           });
}

} // namespace

void fill_elements(void* dst, int64_t count, const void* value, size_t elem_size) {
  if (count <= 0)
    return;
  auto* d = static_cast<std::byte*>(dst);
  if (elem_size == 1) {
    std::memset(d, std::to_integer<int>(*static_cast<const std::byte*>(value)),
                static_cast<size_t>(count));
    return;
  }
  // Doubling the filled prefix needs log2(count) memcpys of growing size.
  std::memcpy(d, value, elem_size);
  const auto total = static_cast<size_t>(count) * elem_size;
  for (size_t done = elem_size; done < total;) {
    const size_t n = std::min(done, total - done);
    std::memcpy(d + done, d, n);
    done += n;
  }
}

void copy_strided(size_t elem_size, std::span<const int64_t> dims, void* dst,
                  std::span<const int64_t> dst_strides, const void* src,
                  std::span<const int64_t> src_strides) {
  if (std::find(dims.begin(), dims.end(), 0) != dims.end())
    return;
  const auto es = static_cast<int64_t>(elem_size);
  strided_dims s = simplify(dims, dst_strides, src_strides);
  for (size_t k = 0; k < s.dims.size(); ++k) {
    s.dst[k] *= es;
    s.src[k] *= es;
  }
  auto* d = static_cast<std::byte*>(dst);
  const auto* sp = static_cast<const std::byte*>(src);
  if (s.dims.empty()) {
    std::memcpy(d, sp, elem_size);
    return;
  }
  const int64_t total_bytes = numel_of(s.dims) * es;
  const size_t last = s.dims.size() - 1;
  const bool tileable = elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8;
  if (tileable && s.dst[last] == es && s.src[last] != es && s.src[last] != 0 &&
      s.dims[last] >= 4) {
    for (size_t k = 0; k < last; ++k)
      if (s.src[k] == es && s.dims[k] >= 4) {
        copy_transposed(elem_size, s, k, d, sp, total_bytes);
        return;
      }
  }
  strided_dims outer;
  for (size_t k = 0; k < last; ++k)
    outer.push(s.dims[k], s.dst[k], s.src[k]);
  walk_all(outer, d, sp, total_bytes,
           [&](std::byte* dp, const std::byte* srcp, const std::vector<int64_t>&) {
             copy_run(elem_size, dp, s.dst[last], srcp, s.src[last], s.dims[last]);
           });
}

void transpose(size_t elem_size, std::span<const int64_t> in_dims, std::span<const int64_t> perm,
               const void* in, void* out) {
  const std::vector<int64_t> in_strides = strides_of(in_dims);
  shape out_dims(perm.size());
  std::vector<int64_t> src_strides(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) {
    out_dims[k] = in_dims[static_cast<size_t>(perm[k])];
    src_strides[k] = in_strides[static_cast<size_t>(perm[k])];
  }
  copy_strided(elem_size, out_dims, out, strides_of(out_dims), in, src_strides);
}

} // namespace troupe::cpu
