// Tests for the asynchronous model adapters: the host one against its CPU session, and the GPU
// one's error without a device.
#include <doctest/doctest.h>

#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "kernels/gpu_devices.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/serve/async_model.hpp"

using namespace troupe;

namespace {

const std::string model_file =
    std::string(TROUPE_SOURCE_DIR) + "/tests/fuzz/corpus/onnx_import/conv_relu.onnx";

struct outcome {
  expected<std::vector<tensor>> result = make_error(errc::internal, "not called");
  std::thread::id thread;
};

/// Runs once and waits for the completion.
outcome run_once(async_model& m, std::vector<tensor> inputs) {
  std::promise<outcome> done;
  auto got = done.get_future();
  m.run_async(std::move(inputs), [&done](expected<std::vector<tensor>> r) {
    done.set_value(outcome{std::move(r), std::this_thread::get_id()});
  });
  return got.get();
}

} // namespace

TEST_CASE("the host async model answers like its session, from a thread of its own") {
  auto g = load_onnx(model_file);
  REQUIRE(g);
  auto reference = session::from_graph(*g);
  REQUIRE(reference);
  auto m = open_host_model(*g, session_options{});
  REQUIRE(m);
  CHECK((*m)->inputs().size() == g->inputs.size());
  CHECK((*m)->outputs().size() == g->outputs.size());
  std::mt19937_64 rng{std::random_device{}()};
  for (int64_t batch : {1, 3, 2}) {
    std::vector<tensor> inputs;
    for (const auto& in : g->inputs)
      inputs.push_back(random_tensor(in.type, concrete_dims(in, batch), rng));
    auto want = (*reference)->run(inputs);
    REQUIRE(want);
    auto got = run_once(**m, inputs);
    REQUIRE(got.result);
    CHECK(got.thread != std::this_thread::get_id());
    REQUIRE(got.result->size() == want->size());
    for (size_t i = 0; i < want->size(); ++i)
      CHECK(relative_error(got.result->at(i), want->at(i)) < 1e-6);
  }
}

TEST_CASE("the host async model takes two runs beyond the one completing, completes them in "
          "order and refuses more") {
  auto g = load_onnx(model_file);
  REQUIRE(g);
  auto m = open_host_model(*g, session_options{});
  REQUIRE(m);
  CHECK((*m)->max_in_flight() == 2);
  std::mt19937_64 rng{std::random_device{}()};
  std::vector<tensor> inputs;
  for (const auto& in : g->inputs)
    inputs.push_back(random_tensor(in.type, concrete_dims(in, 1), rng));
  // The first completion holds the model's thread until released; a run counts as completed
  // when its completion is called, so two more may wait meanwhile, and a fourth is refused.
  std::promise<void> first_called, release;
  auto released = release.get_future().share();
  std::mutex mutex;
  std::vector<int> order;
  std::promise<void> last_done;
  (*m)->run_async(inputs, [&](expected<std::vector<tensor>> r) {
    CHECK(r.has_value());
    {
      std::lock_guard lock{mutex};
      order.push_back(1);
    }
    first_called.set_value();
    released.wait();
  });
  first_called.get_future().wait();
  for (int n : {2, 3})
    (*m)->run_async(inputs, [&, n](expected<std::vector<tensor>> r) {
      CHECK(r.has_value());
      std::lock_guard lock{mutex};
      order.push_back(n);
      if (n == 3)
        last_done.set_value();
    });
  auto fourth = run_once(**m, inputs); // refused at once
  REQUIRE_FALSE(fourth.result);
  CHECK(fourth.result.error().code() == errc::internal);
  CHECK(fourth.result.error().message().find("at most 2 in flight") != std::string::npos);
  release.set_value();
  last_done.get_future().wait();
  std::lock_guard lock{mutex};
  CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("the host async model reports bad inputs through its completion and keeps running") {
  auto g = load_onnx(model_file);
  REQUIRE(g);
  auto m = open_host_model(*g, session_options{});
  REQUIRE(m);
  auto bad = run_once(**m, {});
  REQUIRE_FALSE(bad.result);
  CHECK(bad.result.error().code() == errc::invalid_argument);
  std::mt19937_64 rng{std::random_device{}()};
  std::vector<tensor> inputs;
  for (const auto& in : g->inputs)
    inputs.push_back(random_tensor(in.type, concrete_dims(in, 1), rng));
  CHECK(run_once(**m, inputs).result);
}

TEST_CASE("a host async model whose session cannot be built returns the session's error") {
  auto g = load_onnx(model_file);
  REQUIRE(g);
  REQUIRE_FALSE(g->nodes.empty());
  g->nodes.front().op_type = "NoSuchOperator";
  auto m = open_host_model(*g, session_options{});
  REQUIRE_FALSE(m);
  CHECK(m.error().message().find("NoSuchOperator") != std::string::npos);
}

TEST_CASE("the GPU async model without a usable device is unavailable and says why") {
  if (list_gpus()) {
    MESSAGE("a GPU is listed here; the no-GPU error cannot be checked");
    return;
  }
  auto g = load_onnx(model_file);
  REQUIRE(g);
  auto m = open_gpu_model(std::move(*g), gpu_session_options{});
  REQUIRE_FALSE(m);
  CHECK(m.error().code() == errc::unavailable);
  CHECK(m.error().message().starts_with("no usable CUDA device: "));
}
