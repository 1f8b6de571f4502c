// latency_histogram: an HDR-style log-linear histogram of microsecond latencies (1 µs .. 1 h).
#include "runtime/load/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace troupe::load {

namespace {
// 128 sub-buckets per power of two: bucket width / lower bound <= 1/128.
constexpr int sub_bits = 7;
constexpr int64_t sub_count = int64_t{1} << sub_bits; // 128
constexpr int64_t exact_limit = 2 * sub_count;        // 0..255 get a bucket each
} // namespace

size_t latency_histogram::index_of(int64_t v) {
  if (v < exact_limit)
    return static_cast<size_t>(std::max<int64_t>(v, 0));
  const int msb = std::bit_width(static_cast<uint64_t>(v)) - 1; // >= 8
  const int shift = msb - sub_bits;                            // >= 1
  const int64_t sub = (v >> shift) - sub_count;                // 0..127
  return static_cast<size_t>(exact_limit + (shift - 1) * sub_count + sub);
}

int64_t latency_histogram::lower_of(size_t index) {
  const auto i = static_cast<int64_t>(index);
  if (i < exact_limit)
    return i;
  const int64_t shift = (i - exact_limit) / sub_count + 1;
  const int64_t sub = (i - exact_limit) % sub_count;
  return (sub_count + sub) << shift;
}

int64_t latency_histogram::upper_of(size_t index) {
  const auto i = static_cast<int64_t>(index);
  if (i < exact_limit)
    return i;
  const int64_t shift = (i - exact_limit) / sub_count + 1;
  return lower_of(index) + (int64_t{1} << shift) - 1;
}

void latency_histogram::record(int64_t value_us, uint64_t count) {
  if (count == 0)
    return;
  if (value_us < 0)
    value_us = 0;
  if (value_us > max_trackable_us) {
    value_us = max_trackable_us;
    saturated_ += count;
  }
  const size_t i = index_of(value_us);
  if (i >= counts_.size())
    counts_.resize(i + 1, 0);
  counts_[i] += count;
  if (total_ == 0 || value_us < min_)
    min_ = value_us;
  max_ = std::max(max_, value_us);
  total_ += count;
  sum_ += static_cast<double>(value_us) * static_cast<double>(count);
}

void latency_histogram::merge(const latency_histogram& other) {
  if (other.total_ == 0)
    return;
  if (other.counts_.size() > counts_.size())
    counts_.resize(other.counts_.size(), 0);
  for (size_t i = 0; i < other.counts_.size(); ++i)
    counts_[i] += other.counts_[i];
  min_ = total_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  total_ += other.total_;
  saturated_ += other.saturated_;
  sum_ += other.sum_;
}

void latency_histogram::clear() { *this = latency_histogram{}; }

int64_t latency_histogram::percentile(double q) const {
  if (total_ == 0)
    return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the q-quantile, at least the first value (q = 0 means the minimum).
  const auto rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_) - 1e-9)));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank)
      return std::clamp(upper_of(i), min_, max_);
  }
  return max_;
}

std::vector<latency_histogram::bucket> latency_histogram::buckets() const {
  std::vector<bucket> out;
  for (size_t i = 0; i < counts_.size(); ++i)
    if (counts_[i])
      out.push_back({lower_of(i), upper_of(i), counts_[i]});
  return out;
}

} // namespace troupe::load
