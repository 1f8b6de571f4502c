// pipeline_plan_test: how serving turns parallelism settings into stages (serve::choose_pipeline).
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "runtime/onnx_import.hpp"
#include "runtime/serve/pipeline_plan.hpp"
#include "runtime/session.hpp"

using namespace troupe;

namespace {

std::optional<graph> seed_cnn() {
  const auto file = std::filesystem::path(TROUPE_TEST_MODELS_DIR) / "seed_cnn.onnx";
  if (!std::filesystem::exists(file))
    return std::nullopt;
  auto g = load_onnx(file.string());
  REQUIRE(g);
  return std::move(*g);
}

serve::pipeline_request request(int64_t stages, int64_t micro, int devices, int* speed_calls) {
  serve::pipeline_request r;
  r.parallelism.pipeline_stages = stages;
  r.parallelism.micro_batch = micro;
  r.max_batch_size = 8;
  r.devices = devices;
  r.device_memory = 1e9;
  r.device_speed = [speed_calls]() -> expected<planner::device_spec> {
    ++*speed_calls;
    planner::device_spec d;
    d.gflops = 50;
    d.mem_gbps = 10;
    return d;
  };
  return r;
}

} // namespace

TEST_CASE("pipeline_stages 1 serves the whole model without asking for the device speed") {
  auto g = seed_cnn();
  if (!g)
    return;
  int calls = 0;
  auto c = serve::choose_pipeline(*g, request(1, 0, 2, &calls));
  REQUIRE(c);
  CHECK(c->stages == 1);
  CHECK(c->boundaries.empty());
  CHECK(c->stage_bytes.size() == 1);
  CHECK(c->chosen_by == "config");
  CHECK(calls == 0);
}

TEST_CASE("pipeline_stages K cuts the model into K stages whose chain computes the model") {
  auto g = seed_cnn();
  if (!g)
    return;
  int calls = 0;
  auto c = serve::choose_pipeline(*g, request(3, 2, 3, &calls));
  REQUIRE(c);
  CHECK(calls == 1);
  CHECK(c->stages == 3);
  REQUIRE(c->boundaries.size() == 2);
  CHECK(c->stage_bytes.size() == 3);
  CHECK(c->micro_batch == 2);
  CHECK(c->predicted_items_per_s > 0);
  CHECK(c->predicted_latency_ms > 0);
  // The stages the executors load, chained, give the whole model's output.
  const auto file = (std::filesystem::path(TROUPE_TEST_MODELS_DIR) / "seed_cnn.onnx").string();
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1, 1);
  tensor x = tensor::empty(dtype::f32, {2, 1, 28, 28});
  for (auto& v : x.values<float>())
    v = dist(rng);
  std::vector<tensor> values{x};
  for (size_t s = 0; s < 3; ++s) {
    auto part = serve::load_stage_graph(file, c->boundaries, s);
    REQUIRE(part);
    session_options o;
    o.optimize = false;
    auto sess = session::from_graph(std::move(*part), o);
    REQUIRE(sess);
    auto out = (*sess)->run(values);
    REQUIRE(out);
    values = std::move(*out);
  }
  auto whole = session::open(file);
  REQUIRE(whole);
  std::vector<tensor> in{x};
  auto want = (*whole)->run(in);
  REQUIRE(want);
  CHECK(relative_error(values.at(0), want->at(0)) < 1e-5);
}

TEST_CASE("pipeline_stages auto plans within the devices a replica may use") {
  auto g = seed_cnn();
  if (!g)
    return;
  int calls = 0;
  auto one = serve::choose_pipeline(*g, request(parallelism_config::automatic, 0, 1, &calls));
  REQUIRE(one);
  CHECK(one->stages == 1); // one device: nothing to pipeline over
  CHECK(one->chosen_by == "planner");
  auto four = serve::choose_pipeline(*g, request(parallelism_config::automatic, 0, 4, &calls));
  REQUIRE(four);
  CHECK(four->stages >= 1);
  CHECK(four->stages <= 4);
  CHECK(four->predicted_items_per_s >= one->predicted_items_per_s);
}

TEST_CASE("choose_pipeline refuses what serving cannot do, naming the parallelism key") {
  auto g = seed_cnn();
  if (!g)
    return;
  int calls = 0;
  auto r = request(1, 0, 2, &calls);
  r.parallelism.tensor_parallel = 0;
  auto tp = serve::choose_pipeline(*g, r);
  REQUIRE_FALSE(tp);
  CHECK(tp.error().code() == errc::invalid_argument);
  CHECK(tp.error().message().find("parallelism.tensor_parallel: 0") != std::string::npos);
  r = request(1, 2, 2, &calls);
  r.max_batch_size = 0;
  auto micro = serve::choose_pipeline(*g, r);
  REQUIRE_FALSE(micro);
  CHECK(micro.error().message().find("parallelism.micro_batch") != std::string::npos);
  auto many = serve::choose_pipeline(*g, request(200, 0, 2, &calls));
  REQUIRE_FALSE(many);
  CHECK(many.error().message().find("parallelism.pipeline_stages: 200") != std::string::npos);
}

TEST_CASE("tensor_parallel T keeps the stages of T = 1 and sizes each stage by its largest rank") {
  auto g = seed_cnn();
  if (!g)
    return;
  int calls = 0;
  auto one = serve::choose_pipeline(*g, request(1, 0, 2, &calls));
  REQUIRE_MESSAGE(one, one.error().to_string());
  auto r = request(1, 0, 2, &calls);
  r.parallelism.tensor_parallel = 2;
  auto two = serve::choose_pipeline(*g, r);
  REQUIRE_MESSAGE(two, two.error().to_string());
  CHECK(two->tensor_parallel == 2);
  CHECK(two->stages == 1);
  REQUIRE(two->stage_bytes.size() == 1);
  // A rank holds half of each split weight (and the replicated rest): less than the model.
  CHECK(two->stage_bytes[0] < one->stage_bytes[0]);
  CHECK(two->stage_bytes[0] > 0);
}
