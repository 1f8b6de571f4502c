// pipeline_plan: stage choice for serving (config, planner or manual) and stage graphs.
#include "runtime/serve/pipeline_plan.hpp"

#include <algorithm>

#include "runtime/onnx_import.hpp"
#include "runtime/parallel/tensor_parallel.hpp"
#include "runtime/passes/passes.hpp"
#include "runtime/planner/placement.hpp"
#include "runtime/session.hpp"
#include "runtime/split_graph.hpp"

namespace troupe::serve {

namespace {

/// The optimized, sorted graph the planner's names refer to.
status prepare(graph& g) {
  TROUPE_TRY_STATUS(optimize_graph(g));
  return g.sort_topologically();
}

/// The pool of one replica of `stages` devices, as the planner models it.
planner::device_pool pool_of(int stages, const pipeline_request& req,
                             const planner::device_spec& speed) {
  planner::device_pool pool;
  pool.nodes = 1;
  pool.devices_per_node = stages;
  pool.device = speed;
  pool.device.memory_bytes = req.device_memory > 0 ? req.device_memory : 1e18;
  // Stages of one process hand tensors over by reference: the link costs next to nothing.
  pool.link_gbps = 1e3;
  return pool;
}

} // namespace

expected<uint64_t> rank_memory(graph g, int64_t rows, int64_t tensor_parallel) {
  if (tensor_parallel <= 1)
    return stage_memory(std::move(g), rows, false);
  auto split = split_tensor_parallel(g, static_cast<int>(tensor_parallel));
  if (!split)
    return split.error();
  uint64_t most = 0;
  for (auto& rank : split->ranks) {
    auto bytes = stage_memory(std::move(rank), rows, false);
    if (!bytes)
      return bytes.error();
    most = std::max(most, *bytes);
  }
  return most;
}

expected<uint64_t> stage_memory(graph g, int64_t rows, bool optimize) {
  uint64_t weights = 0;
  for (const auto& [name, t] : g.initializers)
    weights += t.nbytes();
  const auto dims = dims_with_dynamic_as(g.inputs, rows);
  session_options options;
  options.limits.threads = 1;
  options.optimize = optimize;
  auto s = session::from_graph(std::move(g), options);
  if (!s)
    return s.error();
  auto p = (*s)->plan_for(dims);
  if (!p)
    return p.error();
  return weights + (*p)->arena_bytes();
}

expected<graph> load_stage_graph(const std::string& onnx_path,
                                 std::span<const std::vector<std::string>> boundaries,
                                 size_t stage) {
  auto g = load_onnx(onnx_path);
  if (!g)
    return g.error();
  TROUPE_TRY_STATUS(prepare(*g));
  if (boundaries.empty())
    return std::move(*g);
  if (stage > boundaries.size())
    return make_error(errc::invalid_argument, "stage {} of a {}-stage cut", stage,
                      boundaries.size() + 1);
  auto parts = split_graph_stages(*g, boundaries);
  if (!parts)
    return parts.error();
  return std::move((*parts)[stage]);
}

expected<graph> load_rank_graph(const std::string& onnx_path,
                                std::span<const std::vector<std::string>> boundaries,
                                size_t stage, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks)
    return make_error(errc::invalid_argument, "rank {} of a {}-rank group", rank, ranks);
  auto part = load_stage_graph(onnx_path, boundaries, stage);
  if (!part || ranks == 1)
    return part;
  auto split = split_tensor_parallel(*part, ranks);
  if (!split)
    return split.error();
  return std::move(split->ranks.at(static_cast<size_t>(rank)));
}

expected<pipeline_choice> choose_pipeline(const graph& source, const pipeline_request& req) {
  const auto& p = req.parallelism;
  if (p.tensor_parallel < 1)
    return make_error(errc::invalid_argument,
                      "parallelism.tensor_parallel: {}: expected an integer >= 1",
                      p.tensor_parallel);
  if (p.micro_batch > 0 && req.max_batch_size <= 0)
    return make_error(errc::invalid_argument,
                      "parallelism.micro_batch: {}: needs a batch dimension (max_batch_size > 0)",
                      p.micro_batch);
  pipeline_choice choice;
  choice.micro_batch = p.micro_batch;
  choice.tensor_parallel = p.tensor_parallel;
  const int64_t batch = std::max<int64_t>(1, req.max_batch_size);
  // A stage never runs more rows than a micro-batch, so its arena is sized for one.
  const int64_t rows = p.micro_batch > 0 ? std::min(p.micro_batch, batch) : batch;

  if (req.boundaries.empty() && p.pipeline_stages == 1) {
    choice.chosen_by = "config";
    expected<uint64_t> bytes = uint64_t{0};
    if (p.tensor_parallel == 1) {
      bytes = stage_memory(source, rows, true);
    } else {
      graph g = source;
      TROUPE_TRY_STATUS(prepare(g));
      bytes = rank_memory(std::move(g), rows, p.tensor_parallel);
    }
    if (!bytes)
      return bytes.error();
    choice.stage_bytes = {*bytes};
    return choice;
  }

  graph g = source;
  if (!req.boundaries.empty()) {
    TROUPE_TRY_STATUS(prepare(g));
    choice.chosen_by = "manual";
    choice.boundaries = req.boundaries;
  } else {
    if (!req.device_speed)
      return make_error(errc::internal, "choose_pipeline: no device speed to plan with");
    auto speed = req.device_speed();
    if (!speed)
      return speed.error();
    // analyze_model optimizes and sorts as prepare() does: its names are the executors'.
    auto analysis = planner::analyze_model(std::move(g));
    if (!analysis)
      return analysis.error();
    g = analysis->optimized;
    planner::planner_options options;
    options.batch = static_cast<double>(batch);
    options.micro_batch = static_cast<double>(p.micro_batch);
    options.tensor_parallel = 1;
    const bool automatic = p.pipeline_stages == parallelism_config::automatic;
    const int first = automatic ? 1 : static_cast<int>(p.pipeline_stages);
    const int last = automatic ? std::max(1, req.devices) : first;
    std::optional<planner::placement_candidate> best;
    std::string why_not;
    for (int k = first; k <= last; ++k) {
      options.stages = k;
      auto c = planner::evaluate_candidate(analysis->cost, pool_of(k, req, *speed), options, k, 1);
      // A fixed K is served even where the planner thinks it does not fit: the resource
      // manager checks the measured stage sizes against the devices.
      const bool usable = !c.stage_list.empty() && (c.fits || !automatic);
      if (!usable) {
        why_not = c.why_not;
        continue;
      }
      if (!best || c.replica_items_per_s > best->replica_items_per_s * 1.01)
        best = std::move(c);
    }
    if (!best)
      return make_error(errc::invalid_argument, "parallelism.pipeline_stages: {}: {}",
                        automatic ? std::string("auto") : std::to_string(p.pipeline_stages),
                        why_not);
    choice.chosen_by = automatic ? "planner" : "config";
    choice.boundaries = best->boundaries;
    choice.predicted_items_per_s = best->replica_items_per_s;
    choice.predicted_latency_ms = best->latency_ms;
  }
  choice.stages = static_cast<int64_t>(choice.boundaries.size()) + 1;
  if (choice.boundaries.empty()) {
    auto bytes = rank_memory(std::move(g), rows, p.tensor_parallel);
    if (!bytes)
      return bytes.error();
    choice.stage_bytes = {*bytes};
    return choice;
  }
  auto parts = split_graph_stages(g, choice.boundaries);
  if (!parts)
    return parts.error();
  for (auto& part : *parts) {
    auto bytes = rank_memory(std::move(part), rows, p.tensor_parallel);
    if (!bytes)
      return bytes.error();
    choice.stage_bytes.push_back(*bytes);
  }
  return choice;
}

} // namespace troupe::serve
