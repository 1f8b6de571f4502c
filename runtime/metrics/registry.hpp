// registry: Prometheus counters, gauges and histograms with labels, rendered as text format 0.0.4.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/status.hpp"

namespace troupe::metrics {

/// Monotonic value. Updates are one atomic add; keep the reference, lookups take a lock.
class counter {
public:
  void inc(double by = 1.0) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

class gauge {
public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double by = 1.0) { value_.fetch_add(by, std::memory_order_relaxed); }
  void dec(double by = 1.0) { value_.fetch_sub(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

/// Fixed buckets; an observation is a binary search and three relaxed atomic adds.
class histogram {
public:
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double v);

  struct snapshot {
    std::vector<uint64_t> cumulative; // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  snapshot read() const;
  const std::vector<double>& bounds() const { return bounds_; }

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_; // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

/// Bucket bounds start, start*factor, ... (count of them).
std::vector<double> exponential_buckets(double start, double factor, size_t count);

enum class metric_type : uint8_t { counter, gauge, histogram };

/// One metric name with its label names; children are created on first use of a label set
/// and live as long as the registry, so references to them stay valid.
template <class T> class family {
public:
  /// The child for these label values, in label-name order. A wrong count is a programming
  /// error and throws std::invalid_argument.
  T& with(std::initializer_list<std::string_view> values);
  T& with(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }

private:
  friend class registry;
  family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}
  T& child(std::vector<std::string> values);
  void render(std::string& out, std::string_view type) const;

  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_; // histograms only
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_; // sorted: stable output
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

/// The metrics of one process. Registering a name again with the same type and labels
/// returns the existing family; anything else about a name conflict is an error.
class registry {
public:
  expected<counter_family*> add_counter(std::string name, std::string help,
                                        std::vector<std::string> labels = {});
  expected<gauge_family*> add_gauge(std::string name, std::string help,
                                    std::vector<std::string> labels = {});
  expected<histogram_family*> add_histogram(std::string name, std::string help,
                                            std::vector<std::string> labels,
                                            std::vector<double> upper_bounds);

  /// Text exposition format 0.0.4, families in registration order, children sorted by labels.
  std::string render() const;

  /// `Content-Type` of render()'s output.
  static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
  struct entry {
    metric_type type;
    std::unique_ptr<counter_family> counters;
    std::unique_ptr<gauge_family> gauges;
    std::unique_ptr<histogram_family> histograms;
  };
  status check_new(const std::string& name, const std::vector<std::string>& labels,
                   metric_type type, entry*& existing);

  mutable std::mutex mutex_;
  std::vector<entry> families_;
};

/// A sample value as Prometheus writes it: shortest round-trip decimal, NaN, +Inf, -Inf.
std::string format_value(double v);

} // namespace troupe::metrics
