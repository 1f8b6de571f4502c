// reduce: reductions of row-major tensors over any set of axes (hand kernel, OpenMP).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace troupe::cpu {

enum class reduce_kind { sum, mean, max, min, prod, sum_square, l1, l2, log_sum, log_sum_exp };

/// Whether `kind` makes sense on integers (sum, mean, max, min, prod).
bool reduce_supports_integers(reduce_kind kind);

/// A reduction of one fixed shape over fixed axes. An empty reduction yields the identity
/// (0 for sums, 1 for prod, lowest/highest for max/min, -inf for log-sum-exp).
class reduce_op {
public:
  /// `reduced[i]` marks the axes of `dims` to reduce; the result holds the kept dims in
  /// order (keepdims only changes the shape, not the bytes).
  reduce_op(std::span<const int64_t> dims, const std::vector<bool>& reduced, reduce_kind kind);

  /// Instantiated for float, double, int32_t and int64_t.
  template <class T>
  void run(const T* src, T* dst);

private:
  reduce_kind kind_;
  std::vector<int64_t> groups_;       // dims with neighbours of the same kind merged
  std::vector<bool> group_reduced_;
  int64_t count_ = 1;                 // elements folded into each output
  int64_t out_numel_ = 1;
  std::vector<std::byte> scratch_;    // two ping-pong buffers for multi-pass reductions
  size_t scratch_half_ = 0;           // bytes of each buffer
};

} // namespace troupe::cpu
