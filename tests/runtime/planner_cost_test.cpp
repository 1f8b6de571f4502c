// planner_cost_test: the cost model of the reference models against their exported stats.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "runtime/onnx_import.hpp"
#include "runtime/planner/cost_model.hpp"
#include "runtime/planner/pipeline_measure.hpp"
#include "runtime/planner/stage_cutter.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/split_graph.hpp"

using namespace troupe;
using namespace troupe::planner;

namespace {

expected<model_analysis> analyze(const std::string& name) {
  const auto path = std::filesystem::path(TROUPE_TEST_MODELS_DIR) / (name + ".onnx");
  REQUIRE_MESSAGE(std::filesystem::exists(path), "export the models first: tools/export-test-models.sh");
  auto g = load_onnx(path.string());
  REQUIRE(g);
  return analyze_model(std::move(*g));
}

} // namespace

TEST_CASE("resnet18's cost model counts 3.63 GFLOP and 11.7 M parameters per row") {
  auto m = analyze("resnet18");
  REQUIRE_MESSAGE(m, m.error().to_string());
  const auto& c = m->cost;
  // tools/export_models.py: 3,628,146,688 FLOP per item, 11,689,512 parameters (the BN
  // parameters fold into the convolutions, so a little less is left).
  CHECK(c.total_flops(1) == doctest::Approx(3628146688.0).epsilon(0.001));
  CHECK(c.total_flops(3) == doctest::Approx(3 * 3628146688.0).epsilon(0.001));
  CHECK(c.param_bytes <= 11689512.0 * 4);
  CHECK(c.param_bytes >= 0.99 * 11689512.0 * 4);
  CHECK(c.batched);
  // The input (3x224x224 floats) is read once per row; activations grow with rows.
  CHECK(c.values.at(0).bytes.per_row == doctest::Approx(3 * 224 * 224 * 4));
  CHECK(c.values.at(0).bytes.fixed == doctest::Approx(0));
  CHECK(c.arena_bytes.per_row > 0);
  double activations = 0;
  for (const auto& op : c.ops) {
    CHECK(op.bytes_moved.at(1) >= op.activation_bytes.at(1));
    activations += op.activation_bytes.per_row;
  }
  CHECK(activations > 1e6);
}

TEST_CASE("bert_encoder's Constant nodes are folded and cost nothing, its MatMuls carry the FLOPs") {
  auto m = analyze("bert_encoder");
  REQUIRE_MESSAGE(m, m.error().to_string());
  const auto& c = m->cost;
  CHECK(c.total_flops(1) == doctest::Approx(872415232.0).epsilon(0.001));
  device_spec dev{1e9, 100, 10, 1e-6};
  size_t constants = 0;
  for (const auto& op : c.ops)
    if (op.op_type == "Constant") {
      ++constants;
      CHECK(op.folded);
      CHECK(op_seconds(op, dev, 4) == 0);
    } else if (op.op_type == "MatMul") {
      CHECK_FALSE(op.folded);
      CHECK(op_seconds(op, dev, 4) > 0);
    }
  CHECK(constants > 0);
  // Cuts fall between layers: exactly one tensor crosses each allowed position.
  for (const auto& cand : cut_candidates(c, 1))
    if (cand.allowed)
      CHECK(cand.crossing.size() == 1);
}

TEST_CASE("profiling stores a measured time for every operator that runs") {
  auto m = analyze("seed_cnn");
  REQUIRE(m);
  REQUIRE(profile_model(*m, cpu::cpu_limits{1, {}}, 4, 2).is_ok());
  size_t timed = 0;
  for (const auto& op : m->cost.ops) {
    CHECK(op.measured);
    CHECK(op.seconds.fixed >= 0);
    CHECK(op.seconds.per_row >= 0);
    if (op.seconds.at(4) > 0)
      ++timed;
  }
  CHECK(timed > m->cost.ops.size() / 2);
}

TEST_CASE("a 2-stage pipeline measurement runs every batch through both pinned stages") {
  auto m = analyze("seed_cnn");
  REQUIRE(m);
  std::vector<double> seconds;
  for (const auto& op : m->cost.ops)
    seconds.push_back(op_seconds(op, device_spec{1e9, 50, 10, 1e-6}, 2));
  auto cut = cut_stages(seconds, cut_candidates(m->cost, 2), 2, 0);
  REQUIRE(cut);
  auto stages = split_graph_stages(m->optimized, cut->boundaries);
  REQUIRE(stages);
  std::mt19937_64 rng(1);
  std::vector<tensor> inputs;
  for (const auto& in : m->optimized.inputs)
    inputs.push_back(random_tensor(in.type, concrete_dims(in, 2), rng));
  std::vector<cpu::cpu_limits> devices{cpu::cpu_limits{1, {}}, cpu::cpu_limits{1, {}}};
  auto r = measure_pipeline(*stages, devices, inputs, 5, 1);
  REQUIRE_MESSAGE(r, r.error().to_string());
  CHECK(r->timed_batches == 5);
  CHECK(r->stage_busy.size() == 2);
  CHECK(r->items_per_s > 0);
  // A stage count that does not match the devices is refused.
  std::vector<cpu::cpu_limits> one{cpu::cpu_limits{1, {}}};
  CHECK_FALSE(measure_pipeline(*stages, one, inputs, 1));
}
