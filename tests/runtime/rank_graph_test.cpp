// rank_graph_test: the graph each executor of a served replica loads (serve::load_rank_graph):
// a stage's tensor-parallel ranks over one host group compute what the stage computes.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "kernels/cpu/host_communicator.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/serve/pipeline_plan.hpp"
#include "runtime/session.hpp"

using namespace troupe;

namespace {

std::optional<std::string> seed_cnn_file() {
  const auto file = std::filesystem::path(TROUPE_TEST_MODELS_DIR) / "seed_cnn.onnx";
  if (!std::filesystem::exists(file)) {
    MESSAGE("seed_cnn.onnx not exported (tools/export_models.py); skipped");
    return std::nullopt;
  }
  return file.string();
}

session_options unoptimized(communicator* comm) {
  session_options options;
  options.limits = cpu::cpu_limits{1, {}};
  options.optimize = false; // the stage and rank graphs come optimized
  options.comm = comm;
  return options;
}

} // namespace

TEST_CASE("each stage of a 2-stage cut, split into 2 ranks over a host group, answers like the "
          "stage itself") {
  auto file = seed_cnn_file();
  if (!file)
    return;
  // The cut at the middle of the optimized graph (names as load_stage_graph sees them).
  auto whole = serve::load_stage_graph(*file, {}, 0);
  REQUIRE(whole);
  const auto& middle = whole->nodes.at(whole->nodes.size() / 2);
  const std::vector<std::vector<std::string>> cut{{middle.outputs.at(0)}};
  std::mt19937_64 rng{std::random_device{}()};
  tensor x = random_tensor(dtype::f32, concrete_dims(whole->inputs.at(0), 3), rng);
  std::vector<tensor> inputs{x};
  for (size_t stage = 0; stage < 2; ++stage) {
    CAPTURE(stage);
    auto part = serve::load_stage_graph(*file, cut, stage);
    REQUIRE(part);
    auto reference = session::from_graph(*part, unoptimized(nullptr));
    REQUIRE(reference);
    auto want = (*reference)->run(inputs);
    REQUIRE(want);
    auto group = make_host_group(2);
    std::vector<expected<std::vector<tensor>>> got(2, status{errc::internal, "not run"});
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        auto g = serve::load_rank_graph(*file, cut, stage, r, 2);
        if (!g) {
          got[static_cast<size_t>(r)] = g.error();
          return;
        }
        auto s =
            session::from_graph(std::move(*g), unoptimized(group[static_cast<size_t>(r)].get()));
        got[static_cast<size_t>(r)] =
            s ? (*s)->run(inputs) : expected<std::vector<tensor>>(s.error());
      });
    for (auto& t : ranks)
      t.join();
    for (auto& r : got) {
      REQUIRE_MESSAGE(r, r.error().to_string());
      REQUIRE(r->size() == want->size());
      for (size_t o = 0; o < want->size(); ++o)
        CHECK(relative_error((*r)[o], (*want)[o]) < 1e-5);
    }
    inputs = *want; // the next stage's inputs
  }
}

TEST_CASE("load_rank_graph with one rank is the stage graph; a rank outside its group is "
          "invalid_argument") {
  auto file = seed_cnn_file();
  if (!file)
    return;
  auto stage = serve::load_stage_graph(*file, {}, 0);
  auto rank = serve::load_rank_graph(*file, {}, 0, 0, 1);
  REQUIRE(stage);
  REQUIRE(rank);
  CHECK(rank->nodes.size() == stage->nodes.size());
  CHECK(rank->initializers.size() == stage->initializers.size());
  for (auto [r, size] : {std::pair{2, 2}, std::pair{-1, 2}, std::pair{0, 0}}) {
    auto bad = serve::load_rank_graph(*file, {}, 0, r, size);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == errc::invalid_argument);
  }
}
