// pad: constant, reflect and edge padding (negative pads crop), row by row with memcpy runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace troupe::cpu {

enum class pad_mode { constant, reflect, edge };

/// Padding of one input shape, planned once and run on many buffers. Output coordinate x of
/// dimension k reads input coordinate x - begins[k], mapped back into the input by
/// reflection or clamping, or takes the pad value (constant mode) when outside.
class pad_plan {
public:
  /// out_dims[k] = in_dims[k] + begins[k] + ends[k] >= 0, computed by the caller. In reflect
  /// and edge modes every input dimension whose output is not empty must be non-empty.
  pad_plan(size_t elem_size, std::span<const int64_t> in_dims, std::span<const int64_t> out_dims,
           std::span<const int64_t> begins, pad_mode mode);

  /// `value` is one element (constant mode only; ignored otherwise).
  void run(const void* in, void* out, const void* value) const;

private:
  // A piece of an output row: `length` elements read from input column `from` onwards, or
  // the pad value when from < 0.
  struct segment {
    int64_t from;
    int64_t length;
  };

  size_t elem_size_;
  std::vector<int64_t> out_dims_;
  std::vector<int64_t> in_strides_;
  std::vector<std::vector<int64_t>> maps_; // per outer dim: input coordinate or -1
  std::vector<segment> row_;               // the innermost dimension
  int64_t row_length_ = 1;
};

} // namespace troupe::cpu
