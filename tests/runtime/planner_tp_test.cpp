// planner_tp_test: the planner's tensor-parallel costs follow the split split_tensor_parallel
// makes: weights per rank, split and replicated ops, and the collectives it inserts.
#include <doctest/doctest.h>

#include <filesystem>

#include "runtime/onnx_import.hpp"
#include "runtime/parallel/tensor_parallel.hpp"
#include "runtime/planner/placement.hpp"
#include "runtime/planner/tp_cost.hpp"

using namespace troupe;
using namespace troupe::planner;

namespace {

graph load(const std::string& name) {
  const auto path = std::filesystem::path(TROUPE_TEST_MODELS_DIR) / (name + ".onnx");
  REQUIRE_MESSAGE(std::filesystem::exists(path), "export the models first: tools/export-test-models.sh");
  auto g = load_onnx(path.string());
  REQUIRE(g);
  return std::move(*g);
}

double initializer_bytes(const graph& g) {
  double b = 0;
  for (const auto& [name, t] : g.initializers)
    b += static_cast<double>(t.numel()) * static_cast<double>(size_of(t.type()));
  return b;
}

size_t count_nodes(const graph& g, const std::string& op_type) {
  size_t n = 0;
  for (const auto& node : g.nodes)
    n += node.domain == "troupe" && node.op_type == op_type;
  return n;
}

size_t count_collectives(const tp_cost& t, collective_kind kind) {
  size_t n = 0;
  for (const auto& x : t.collectives)
    n += x.kind == kind;
  return n;
}

device_pool one_node(int devices) {
  device_pool p;
  p.devices_per_node = devices;
  p.device.memory_bytes = 64.0 * (1 << 30);
  p.device.gflops = 100;
  p.device.mem_gbps = 20;
  p.link_gbps = 10;
  return p;
}

} // namespace

TEST_CASE("planned weights per rank and collectives equal those of the rank graphs of the split") {
  for (const std::string name : {"seed_cnn", "resnet18", "mobilenet_v2", "bert_encoder"}) {
    const graph g = load(name);
    auto m = analyze_model(g);
    REQUIRE_MESSAGE(m, m.error().to_string());
    auto st = analyze_tensor_parallel(*m, g, {2, 4});
    REQUIRE_MESSAGE(st.is_ok(), st.to_string());
    for (int t : {2, 4}) {
      CAPTURE(name);
      CAPTURE(t);
      auto split = split_tensor_parallel(g, t);
      REQUIRE_MESSAGE(split, split.error().to_string());
      const graph& rank0 = split->ranks.at(0);
      const tp_cost* planned = m->cost.split_for(t);
      REQUIRE(planned);
      planner_options o;
      o.stages = 1;
      o.tensor_parallel = t;
      o.batch = 2;
      const auto c = evaluate_candidate(m->cost, one_node(t), o, 1, t);
      REQUIRE_MESSAGE(c.stage_list.size() == 1, c.why_not);
      const auto& stage = c.stage_list[0];
      // Within rounding: the rank graphs add a few scalars (Slice bounds, Reshape targets).
      const double rank_bytes = initializer_bytes(rank0);
      CHECK(stage.param_bytes == doctest::Approx(rank_bytes).epsilon(0.002));
      CHECK(stage.param_bytes < m->cost.param_bytes);
      const size_t reduces = count_nodes(rank0, "AllReduceSum");
      const size_t gathers = count_nodes(rank0, "AllGather");
      CHECK(count_collectives(*planned, collective_kind::all_reduce) == reduces);
      CHECK(count_collectives(*planned, collective_kind::all_gather) == gathers);
      CHECK(stage.collectives == reduces + gathers);
      CHECK(stage.collectives > 0);
      size_t running = 0;
      for (const auto& op : m->cost.ops)
        running += !op.folded;
      CHECK(stage.split_ops + stage.replicated_ops == running);
      CHECK(stage.split_ops > 0);
      MESSAGE(name << " T=" << t << ": " << stage.split_ops << " split, " << stage.replicated_ops
                   << " replicated, " << reduces << " all-reduce, " << gathers << " all-gather, "
                   << stage.param_bytes << " vs " << rank_bytes << " weight bytes per rank");
    }
  }
}

TEST_CASE("split ops take 1/T of time and weights, replicated ops all of it, a pair one ring all-reduce") {
  // Four 1 GFLOP/row MatMuls with 1 GiB of weights each: a Megatron pair (0, 1) closed by one
  // all-reduce of 1 MB per row, then two ops every rank runs whole.
  model_cost cost;
  cost.source = "pair";
  for (int i = 0; i < 4; ++i) {
    op_cost op;
    op.name = "mm" + std::to_string(i);
    op.op_type = "MatMul";
    op.flops = linear{0, 1e9};
    op.param_bytes = 1 << 30;
    cost.ops.push_back(op);
    cost.param_bytes += op.param_bytes;
  }
  tp_cost t;
  t.ways = 2;
  t.split = {true, true, false, false};
  t.param_bytes = {0.5 * (1 << 30), 0.5 * (1 << 30), 1 << 30, 1 << 30};
  t.collectives.push_back({collective_kind::all_reduce, "y1", 1, linear{0, 1e6}});
  cost.tensor_parallel.push_back(t);
  auto pool = one_node(2);
  pool.device.gflops = 100;
  pool.link_latency_s = 5e-6;
  planner_options o;
  o.batch = 4;
  const auto c = evaluate_candidate(cost, pool, o, 1, 2);
  REQUIRE_MESSAGE(c.stage_list.size() == 1, c.why_not);
  const double op_s = 4e9 / 100e9 + pool.device.op_overhead_s; // one op, 4 rows, whole
  const double ring = 2.0 * 1 / 2 * 4e6 / 10e9 + 2 * 1 * 5e-6;  // 2(T-1)/T x bytes / bw + steps
  CHECK(c.stage_list[0].seconds == doctest::Approx(2 * op_s / 2 + 2 * op_s + ring));
  CHECK(c.stage_list[0].param_bytes == doctest::Approx(3.0 * (1 << 30)));
  CHECK(c.stage_list[0].split_ops == 2);
  CHECK(c.stage_list[0].replicated_ops == 2);
  CHECK(c.stage_list[0].collectives == 1);
  CHECK(c.stage_list[0].exchange_bytes == doctest::Approx(4e6));
  // Without an analysis for T = 4 the candidate is refused, not guessed.
  const auto four = evaluate_candidate(cost, one_node(4), o, 1, 4);
  CHECK_FALSE(four.fits);
  CHECK(four.why_not.find("4-way") != std::string::npos);
  CHECK(collective_seconds(collective_kind::all_gather, 3e6, 4, 1e9, 1e-6) ==
        doctest::Approx(0.75 * 3e6 / 1e9 + 3e-6));
}
