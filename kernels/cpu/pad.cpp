// pad: per-dimension coordinate maps; each output row is a few memcpy runs and fills.
#include "kernels/cpu/pad.hpp"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/copy_strided.hpp"
#include "kernels/cpu/parallel_copy.hpp"
#include "kernels/shape.hpp"

namespace troupe::cpu {
namespace {

// The input coordinate an output coordinate reads, or -1 for the pad value.
int64_t source_of(int64_t x, int64_t size, pad_mode mode) {
  if (x >= 0 && x < size)
    return x;
  switch (mode) {
  case pad_mode::constant: return -1;
  case pad_mode::edge: return std::clamp(x, int64_t{0}, size - 1);
  case pad_mode::reflect: {
    if (size == 1)
      return 0;
    // Reflection without repeating the edge has period 2 * (size - 1).
    const int64_t period = 2 * (size - 1);
    x %= period;
    if (x < 0)
      x += period;
    return x < size ? x : period - x;
  }
  }
  return -1;
}

} // namespace

pad_plan::pad_plan(size_t elem_size, std::span<const int64_t> in_dims,
                   std::span<const int64_t> out_dims, std::span<const int64_t> begins,
                   pad_mode mode)
    : elem_size_(elem_size), out_dims_(out_dims.begin(), out_dims.end()),
      in_strides_(strides_of(in_dims)) {
  const size_t rank = in_dims.size();
  for (size_t k = 0; k < rank; ++k) {
    std::vector<int64_t> map(static_cast<size_t>(out_dims[k]));
    for (int64_t x = 0; x < out_dims[k]; ++x)
      map[static_cast<size_t>(x)] = source_of(x - begins[k], in_dims[k], mode);
    if (k + 1 < rank) {
      maps_.push_back(std::move(map));
      continue;
    }
    // Runs of consecutive input columns become one memcpy; pad columns one fill.
    row_length_ = out_dims[k];
    for (int64_t from : map) {
      if (!row_.empty()) {
        segment& s = row_.back();
        if ((from < 0 && s.from < 0) || (from >= 0 && s.from >= 0 && from == s.from + s.length)) {
          ++s.length;
          continue;
        }
      }
      row_.push_back({from, 1});
    }
  }
}

void pad_plan::run(const void* in, void* out, const void* value) const {
  const auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  const auto es = static_cast<int64_t>(elem_size_);
  if (out_dims_.empty()) {
    std::memcpy(dst, src, elem_size_);
    return;
  }
  const int64_t rows = numel_of(std::span{out_dims_}.first(maps_.size()));
  if (rows == 0 || row_length_ == 0)
    return;
  const size_t outer_rank = maps_.size();
#pragma omp parallel for if (rows * row_length_ * es >= parallel_min_bytes && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    std::byte* row = dst + r * row_length_ * es;
    int64_t offset = 0;
    bool padded = false;
    int64_t rest = r;
    for (size_t k = outer_rank; k-- > 0 && !padded;) {
      const int64_t x = rest % out_dims_[k];
      rest /= out_dims_[k];
      const int64_t from = maps_[k][static_cast<size_t>(x)];
      padded = from < 0;
      offset += from * in_strides_[k];
    }
    if (padded) {
      fill_elements(row, row_length_, value, elem_size_);
      continue;
    }
    for (const segment& s : row_) {
      if (s.from < 0)
        fill_elements(row, s.length, value, elem_size_);
      else
        std::memcpy(row, src + (offset + s.from) * es, static_cast<size_t>(s.length * es));
      row += s.length * es;
    }
  }
}

} // namespace troupe::cpu
