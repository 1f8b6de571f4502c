// Tests for the GPU backend's CUDA-agnostic decisions: the precision key and the
// graph-capture policy.
#include <doctest/doctest.h>

#include "runtime/config/model_config.hpp"
#include "runtime/gpu_capture_policy.hpp"
#include "runtime/gpu_precision.hpp"
#include "runtime/gpu_session.hpp"

using namespace troupe;

TEST_CASE("parse_precision accepts fp32, tf32, fp16 and bf16 and rejects anything else") {
  CHECK(*parse_precision("fp32") == gpu_precision::fp32);
  CHECK(*parse_precision("tf32") == gpu_precision::tf32);
  CHECK(*parse_precision("fp16") == gpu_precision::fp16);
  CHECK(*parse_precision("bf16") == gpu_precision::bf16);
  for (const char* bad : {"", "FP32", "fp64", "int8", "half"}) {
    auto p = parse_precision(bad);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error().code() == errc::invalid_argument);
  }
  for (auto p : {gpu_precision::fp32, gpu_precision::tf32, gpu_precision::fp16, gpu_precision::bf16})
    CHECK(*parse_precision(to_string(p)) == p);
}

TEST_CASE("each precision stores floats in its own dtype with its own tolerance") {
  CHECK(storage_type(gpu_precision::fp32) == dtype::f32);
  CHECK(storage_type(gpu_precision::tf32) == dtype::f32);
  CHECK(storage_type(gpu_precision::fp16) == dtype::f16);
  CHECK(storage_type(gpu_precision::bf16) == dtype::bf16);
  CHECK(precision_tolerance(gpu_precision::fp32) == doctest::Approx(1e-5));
  CHECK(precision_tolerance(gpu_precision::tf32) == doctest::Approx(1e-3));
  CHECK(precision_tolerance(gpu_precision::fp16) == doctest::Approx(1e-2));
  CHECK(precision_tolerance(gpu_precision::bf16) == doctest::Approx(1e-2));
}

TEST_CASE("config.yaml's precision key defaults to fp32 and rejects unknown precisions") {
  auto plain = parse_model_config("max_batch_size: 4\n", "m/config.yaml");
  REQUIRE(plain.has_value());
  CHECK(plain->precision == gpu_precision::fp32);
  auto half = parse_model_config("precision: fp16\ninstance_group: [{kind: KIND_GPU}]\n",
                                 "m/config.yaml");
  REQUIRE(half.has_value());
  CHECK(half->precision == gpu_precision::fp16);
  CHECK(half->instance_groups.at(0).kind == instance_kind::gpu);
  auto bad = parse_model_config("precision: fp8\n", "m/config.yaml");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message().find("precision") != std::string::npos);
  CHECK(bad.error().message().find("fp32, tf32, fp16 or bf16") != std::string::npos);
}

TEST_CASE("config.yaml's channels_last key defaults to off and takes a boolean") {
  auto plain = parse_model_config("max_batch_size: 4\n", "m/config.yaml");
  REQUIRE(plain.has_value());
  CHECK_FALSE(plain->channels_last);
  auto nhwc = parse_model_config("precision: fp16\nchannels_last: true\n", "m/config.yaml");
  REQUIRE(nhwc.has_value());
  CHECK(nhwc->channels_last);
  auto bad = parse_model_config("channels_last: sometimes\n", "m/config.yaml");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message().find("channels_last") != std::string::npos);
}

TEST_CASE("GPU executors benchmark convolutions when batches are padded to allowed sizes, or "
          "as config.yaml says") {
  auto plain = parse_model_config("max_batch_size: 64\n", "m/config.yaml");
  REQUIRE(plain.has_value());
  CHECK_FALSE(plain->benchmarks_convolutions()); // every batch size a new shape: heuristics
  auto padded = parse_model_config("max_batch_size: 64\nallowed_batch_sizes: [8, 64]\n",
                                   "m/config.yaml");
  REQUIRE(padded.has_value());
  CHECK(padded->benchmarks_convolutions()); // two shapes, each timed once
  auto off = parse_model_config(
      "max_batch_size: 64\nallowed_batch_sizes: [64]\nbenchmark_convolutions: false\n",
      "m/config.yaml");
  REQUIRE(off.has_value());
  CHECK_FALSE(off->benchmarks_convolutions());
  auto on = parse_model_config("max_batch_size: 64\nbenchmark_convolutions: true\n",
                               "m/config.yaml");
  REQUIRE(on.has_value());
  CHECK(on->benchmarks_convolutions());
  auto bad = parse_model_config("benchmark_convolutions: 3\n", "m/config.yaml");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message().find("benchmark_convolutions") != std::string::npos);
}

TEST_CASE("a plan is captured as a CUDA graph after N eager runs, then replayed") {
  const uint32_t after = 3;
  for (uint64_t runs = 0; runs < after; ++runs)
    CHECK(next_capture_action(runs, false, 0, after) == capture_action::eager);
  CHECK(next_capture_action(after, false, 0, after) == capture_action::capture);
  CHECK(next_capture_action(after + 7, false, 0, after) == capture_action::capture);
  CHECK(next_capture_action(after + 1, true, 0, after) == capture_action::replay);
}

TEST_CASE("capture is never attempted when disabled, and retried once, later, after a failure") {
  for (uint64_t runs : {0u, 1u, 100u})
    CHECK(next_capture_action(runs, false, 0, 0) == capture_action::eager);
  // The first capture (run 3) failed: runs 4 and 5 are eager, run 6 tries again.
  CHECK(next_capture_action(4, false, 1, 3) == capture_action::eager);
  CHECK(next_capture_action(5, false, 1, 3) == capture_action::eager);
  CHECK(next_capture_action(6, false, 1, 3) == capture_action::capture);
  // Two failures: eager for good.
  for (uint64_t runs : {6u, 9u, 1000u})
    CHECK(next_capture_action(runs, false, max_capture_attempts, 3) == capture_action::eager);
}

TEST_CASE("a GPU session without a usable device is an unavailable error saying so") {
  // With a GPU this opens a session instead; the message is what matters without one.
  graph g;
  g.source = "test";
  auto s = gpu_session::from_graph(g);
  if (!s.has_value()) {
    CHECK(s.error().code() == errc::unavailable);
    CHECK(s.error().message().starts_with("no usable CUDA device: "));
  }
}
