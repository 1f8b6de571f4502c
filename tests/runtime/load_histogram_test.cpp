// Tests for the load generator's log-linear latency histogram.
#include <doctest/doctest.h>

#include <algorithm>

#include <random>

#include "runtime/load/histogram.hpp"

using troupe::load::latency_histogram;

TEST_CASE("histogram keeps values below 256 us exactly and reports exact percentiles") {
  latency_histogram h;
  for (int v = 1; v <= 100; ++v)
    h.record(v);
  CHECK(h.count() == 100);
  CHECK(h.min() == 1);
  CHECK(h.max() == 100);
  CHECK(h.percentile(0.5) == 50);
  CHECK(h.percentile(0.9) == 90);
  CHECK(h.percentile(0.99) == 99);
  CHECK(h.percentile(0.999) == 100);
  CHECK(h.percentile(1.0) == 100);
  CHECK(h.percentile(0.0) == 1);
  CHECK(h.mean() == doctest::Approx(50.5));
}

TEST_CASE("histogram bucket bounds tile the range with under 1 % relative width") {
  // Consecutive buckets touch, and every bucket is narrower than 1/128 of its lower bound.
  const size_t last = latency_histogram::index_of(latency_histogram::max_trackable_us);
  for (size_t i = 1; i <= last; ++i) {
    CHECK(latency_histogram::lower_of(i) == latency_histogram::upper_of(i - 1) + 1);
    const double width = static_cast<double>(latency_histogram::upper_of(i) -
                                              latency_histogram::lower_of(i) + 1);
    CHECK(width <= std::max(1.0, latency_histogram::lower_of(i) / 128.0));
  }
  // Every value lands in the bucket whose bounds contain it.
  for (int64_t v : {int64_t{0}, int64_t{255}, int64_t{256}, int64_t{257}, int64_t{1000},
                    int64_t{123456}, int64_t{999999999}, latency_histogram::max_trackable_us}) {
    const size_t i = latency_histogram::index_of(v);
    CHECK(latency_histogram::lower_of(i) <= v);
    CHECK(latency_histogram::upper_of(i) >= v);
  }
  CHECK(last < 4000); // 1 µs .. 1 h in a few thousand counters
}

TEST_CASE("histogram percentiles of large values are within 1 % of the exact ones") {
  std::mt19937_64 rng(std::random_device{}());
  std::lognormal_distribution<double> dist(std::log(20000.0), 1.0); // ~20 ms median
  latency_histogram h;
  std::vector<int64_t> values;
  for (int i = 0; i < 20000; ++i) {
    values.push_back(static_cast<int64_t>(dist(rng)) + 1);
    h.record(values.back());
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto rank = static_cast<size_t>(std::ceil(q * values.size())) - 1;
    const double exact = static_cast<double>(values[rank]);
    CHECK(std::abs(h.percentile(q) - exact) <= exact / 100);
    CHECK(h.percentile(q) >= exact); // reported as the bucket's highest equivalent value
  }
  CHECK(h.max() == values.back());
  CHECK(h.percentile(1.0) == values.back());
}

TEST_CASE("merging histograms equals recording everything into one") {
  latency_histogram a, b, all;
  for (int64_t v = 1; v < 5000000; v = v * 3 / 2 + 1) {
    (v % 2 ? a : b).record(v, static_cast<uint64_t>(v % 5 + 1));
    all.record(v, static_cast<uint64_t>(v % 5 + 1));
  }
  a.merge(b);
  CHECK(a.count() == all.count());
  CHECK(a.min() == all.min());
  CHECK(a.max() == all.max());
  CHECK(a.mean() == doctest::Approx(all.mean()));
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999})
    CHECK(a.percentile(q) == all.percentile(q));
  CHECK(a.buckets().size() == all.buckets().size());
}

TEST_CASE("histogram clamps values above one hour and counts them as saturated") {
  latency_histogram h;
  h.record(latency_histogram::max_trackable_us * 2);
  h.record(10);
  CHECK(h.saturated() == 1);
  CHECK(h.max() == latency_histogram::max_trackable_us);
  CHECK(h.percentile(1.0) == latency_histogram::max_trackable_us);
  CHECK(h.percentile(0.5) == 10);
  latency_histogram empty;
  CHECK(empty.percentile(0.99) == 0);
  CHECK(empty.count() == 0);
}
