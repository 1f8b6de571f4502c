// aimd_batch_cap: Clipper's adaptive batch-size cap (additive increase, multiplicative decrease).
#pragma once

#include <cstdint>

#include "kernels/status.hpp"
#include "runtime/batching/queue_policy.hpp"

namespace troupe {

struct aimd_options {
  microseconds slo{0}; // latency objective of one batch
  int64_t min_cap = 1;
  int64_t max_cap = 1;     // usually max_batch_size
  int64_t initial_cap = 0; // 0 = start at min_cap
  int64_t additive_step = 1;
  double decrease_factor = 0.9; // the cap shrinks by ~10% on a miss
};

/// Feeds on the latency of each finished batch and keeps a cap the batch_former applies.
class aimd_batch_cap {
public:
  static expected<aimd_batch_cap> create(aimd_options options);

  /// A batch of `rows` took `latency`. Over the SLO: cap = floor(cap * factor) (at least
  /// one less, never below min_cap). Within it: cap += step, but only when the batch used
  /// the whole cap; smaller batches say nothing about a larger cap.
  void observe(int64_t rows, microseconds latency);

  int64_t cap() const { return cap_; }
  const aimd_options& options() const { return options_; }

private:
  explicit aimd_batch_cap(aimd_options options);

  aimd_options options_;
  int64_t cap_;
};

} // namespace troupe
