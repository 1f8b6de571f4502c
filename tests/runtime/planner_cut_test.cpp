// planner_cut_test: K-stage cuts of the reference models chain to the unsharded outputs.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <random>

#include "runtime/onnx_import.hpp"
#include "runtime/planner/cost_model.hpp"
#include "runtime/planner/stage_cutter.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"
#include "runtime/split_graph.hpp"

using namespace troupe;
using namespace troupe::planner;

namespace {

std::string model_path(const std::string& name) {
  return (std::filesystem::path(TROUPE_TEST_MODELS_DIR) / (name + ".onnx")).string();
}

/// Runs the stages one after the other, handing values on by name as a pipeline does.
std::vector<tensor> run_chain(const std::vector<graph>& stages, const graph& whole,
                              const std::vector<tensor>& inputs) {
  std::map<std::string, tensor> live;
  for (size_t i = 0; i < whole.inputs.size(); ++i)
    live[whole.inputs[i].name] = inputs[i];
  std::vector<tensor> out;
  for (const auto& st : stages) {
    session_options options;
    options.optimize = false;
    auto s = session::from_graph(st, options);
    REQUIRE_MESSAGE(s, s.error().to_string());
    std::vector<tensor> in;
    for (const auto& info : st.inputs)
      in.push_back(live.at(info.name));
    auto r = (*s)->run(in);
    REQUIRE_MESSAGE(r, r.error().to_string());
    for (size_t i = 0; i < st.outputs.size(); ++i)
      live[st.outputs[i].name] = (*r)[i];
    out = *r;
  }
  return out;
}

} // namespace

TEST_CASE("cutting each reference model into 1..4 balanced stages keeps its outputs within 1e-5") {
  std::mt19937_64 rng(std::random_device{}());
  for (const std::string name : {"seed_cnn", "resnet18", "mobilenet_v2", "bert_encoder"}) {
    CAPTURE(name);
    REQUIRE_MESSAGE(std::filesystem::exists(model_path(name)),
                    "export the models first: tools/export-test-models.sh");
    auto g = load_onnx(model_path(name));
    REQUIRE(g);
    auto m = analyze_model(*g);
    REQUIRE_MESSAGE(m, m.error().to_string());
    CHECK(m->cost.param_bytes > 0);
    CHECK(m->cost.total_flops(1) > 0);

    std::vector<tensor> inputs;
    for (const auto& in : g->inputs)
      inputs.push_back(random_tensor(in.type, concrete_dims(in, 2), rng));
    auto whole = session::from_graph(*g);
    REQUIRE(whole);
    auto ref = (*whole)->run(inputs);
    REQUIRE(ref);

    device_spec dev{8e9, 50, 10, 2e-6};
    std::vector<double> seconds;
    for (const auto& op : m->cost.ops)
      seconds.push_back(op_seconds(op, dev, 2));
    const auto candidates = cut_candidates(m->cost, 2);
    for (size_t k = 1; k <= 4; ++k) {
      CAPTURE(k);
      auto cut = cut_stages(seconds, candidates, k, 0);
      REQUIRE_MESSAGE(cut, cut.error().to_string());
      REQUIRE(cut->stage_seconds.size() == k);
      REQUIRE(cut->boundaries.size() == k - 1);
      double total = 0;
      for (double s : cut->stage_seconds)
        total += s;
      // The slowest stage is at least the mean and at most the whole model.
      CHECK(cut->max_stage_seconds >= total / static_cast<double>(k) * (1 - 1e-9));
      CHECK(cut->max_stage_seconds <= total * (1 + 1e-9));
      auto stages = split_graph_stages(m->optimized, cut->boundaries);
      REQUIRE_MESSAGE(stages, stages.error().to_string());
      REQUIRE(stages->size() == k);
      auto out = run_chain(*stages, m->optimized, inputs);
      REQUIRE(out.size() == ref->size());
      for (size_t i = 0; i < out.size(); ++i)
        CHECK(relative_error(out[i], (*ref)[i]) < 1e-5);
    }
  }
}
