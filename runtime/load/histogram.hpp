// latency_histogram: an HDR-style log-linear histogram of microsecond latencies (1 µs .. 1 h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace troupe::load {

/// Counts values in buckets whose width is at most 1/128 of their lower bound (< 1 % relative
/// error), so percentiles of millions of latencies cost a fixed 26 KiB and merging is adding
/// counts. Values below 256 µs are kept exactly; values above one hour count as one hour.
class latency_histogram {
public:
  static constexpr int64_t max_trackable_us = int64_t{3600} * 1000 * 1000;

  void record(int64_t value_us, uint64_t count = 1);
  void merge(const latency_histogram& other);
  void clear();

  uint64_t count() const { return total_; }
  int64_t min() const { return total_ ? min_ : 0; }
  int64_t max() const { return max_; }
  double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }
  /// Values recorded above max_trackable_us (clamped to it).
  uint64_t saturated() const { return saturated_; }

  /// The smallest bucket value v such that at least q (0..1) of the values are <= v, reported
  /// as the bucket's highest equivalent value and never above the largest value recorded.
  /// 0 when empty.
  int64_t percentile(double q) const;

  struct bucket {
    int64_t lower_us = 0; // inclusive
    int64_t upper_us = 0; // inclusive
    uint64_t count = 0;
  };
  /// The non-empty buckets in increasing order (for the report's histogram chart).
  std::vector<bucket> buckets() const;

  static size_t index_of(int64_t value_us);
  static int64_t lower_of(size_t index);
  static int64_t upper_of(size_t index);

private:
  std::vector<uint64_t> counts_; // grown on demand: short latencies need few buckets
  uint64_t total_ = 0;
  uint64_t saturated_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  double sum_ = 0;
};

} // namespace troupe::load
