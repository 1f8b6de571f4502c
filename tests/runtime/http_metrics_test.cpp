// Tests for the Prometheus metrics registry served at /metrics: exact exposition text.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

#include "runtime/metrics/registry.hpp"

using namespace troupe;
using namespace troupe::metrics;

TEST_CASE("registry renders counters, gauges and histograms in text format 0.0.4") {
  registry r;
  auto requests = r.add_counter("troupe_requests_total", "Requests by model and outcome.",
                                {"model", "outcome"});
  REQUIRE(requests);
  auto pending = r.add_gauge("troupe_pending_requests", "Requests queued.\nPer model.", {"model"});
  REQUIRE(pending);
  auto latency =
      r.add_histogram("troupe_request_seconds", "Request time.", {"model"}, {0.001, 0.01, 0.1});
  REQUIRE(latency);

  (*requests)->with({"resnet", "success"}).inc();
  (*requests)->with({"resnet", "success"}).inc(2);
  (*requests)->with({"cnn", "queue_full"}).inc();
  (*pending)->with({"we\"ird\\na\nme"}).set(3);
  auto& h = (*latency)->with({"cnn"});
  h.observe(0.0005);
  h.observe(0.01); // on a bound: "le" means less than or equal
  h.observe(5.0);

  CHECK(r.render() == "# HELP troupe_requests_total Requests by model and outcome.\n"
                      "# TYPE troupe_requests_total counter\n"
                      "troupe_requests_total{model=\"cnn\",outcome=\"queue_full\"} 1\n"
                      "troupe_requests_total{model=\"resnet\",outcome=\"success\"} 3\n"
                      "# HELP troupe_pending_requests Requests queued.\\nPer model.\n"
                      "# TYPE troupe_pending_requests gauge\n"
                      "troupe_pending_requests{model=\"we\\\"ird\\\\na\\nme\"} 3\n"
                      "# HELP troupe_request_seconds Request time.\n"
                      "# TYPE troupe_request_seconds histogram\n"
                      "troupe_request_seconds_bucket{model=\"cnn\",le=\"0.001\"} 1\n"
                      "troupe_request_seconds_bucket{model=\"cnn\",le=\"0.01\"} 2\n"
                      "troupe_request_seconds_bucket{model=\"cnn\",le=\"0.1\"} 2\n"
                      "troupe_request_seconds_bucket{model=\"cnn\",le=\"+Inf\"} 3\n"
                      "troupe_request_seconds_sum{model=\"cnn\"} 5.0105\n"
                      "troupe_request_seconds_count{model=\"cnn\"} 3\n");
}

TEST_CASE("metrics without labels render without braces; special values use Prometheus spelling") {
  registry r;
  auto g = r.add_gauge("up", "Whether it runs.");
  REQUIRE(g);
  (*g)->with({}).set(1);
  auto nan = r.add_gauge("odd_value", "x");
  (*nan)->with({}).set(std::nan(""));
  auto inf = r.add_gauge("big_value", "x");
  (*inf)->with({}).set(-std::numeric_limits<double>::infinity());
  CHECK(r.render() == "# HELP up Whether it runs.\n# TYPE up gauge\nup 1\n"
                      "# HELP odd_value x\n# TYPE odd_value gauge\nodd_value NaN\n"
                      "# HELP big_value x\n# TYPE big_value gauge\nbig_value -Inf\n");
  CHECK(format_value(0.1) == "0.1");
  CHECK(format_value(1e21) == "1e+21");
}

TEST_CASE("registering a name again returns the same family, conflicts are errors") {
  registry r;
  auto a = r.add_counter("c_total", "help", {"model"});
  auto b = r.add_counter("c_total", "help", {"model"});
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == *b);
  auto wrong_type = r.add_gauge("c_total", "help", {"model"});
  REQUIRE(!wrong_type);
  CHECK(wrong_type.error().message().find("already registered") != std::string::npos);
  CHECK(!r.add_counter("c_total", "help", {"other"}));
  CHECK(!r.add_counter("9starts_with_digit", "help"));
  CHECK(!r.add_counter("ok_name", "help", {"bad-label"}));
  CHECK(!r.add_counter("ok_name", "help", {"__reserved"}));
  CHECK(!r.add_histogram("h", "help", {"le"}, {1.0}));
  CHECK(!r.add_histogram("h", "help", {}, {2.0, 1.0}));
  CHECK(!r.add_histogram("h", "help", {}, {}));
  CHECK_THROWS_AS((*a)->with({"x", "y"}), std::invalid_argument);
}

TEST_CASE("concurrent increments from several threads are all counted") {
  registry r;
  auto c = r.add_counter("hits_total", "h", {"t"});
  auto hist = r.add_histogram("lat", "h", {}, exponential_buckets(1, 2, 4));
  REQUIRE(c);
  REQUIRE(hist);
  auto& child = (*c)->with({"a"});
  auto& hc = (*hist)->with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        child.inc();
        hc.observe(static_cast<double>(i % 10));
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(child.value() == 40000);
  const auto snap = hc.read();
  CHECK(snap.count == 40000);
  // bounds 1,2,4,8: values 0..9 each 4000 times; <=1: {0,1}, <=2: +{2}, <=4: +{3,4}, <=8: +{5..8}
  CHECK(snap.cumulative == std::vector<uint64_t>{8000, 12000, 20000, 36000, 40000});
  CHECK(snap.sum == 4 * 1000 * 45);
}
