// pipeline_plan: how a served model is cut into pipeline stages (from its config or the
// planner) and the stage graph each shard executor loads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/config/model_config.hpp"
#include "runtime/graph.hpp"
#include "runtime/planner/cost_model.hpp"

namespace troupe::serve {

/// What the serving runtime knows when it plans one model's replicas.
struct pipeline_request {
  parallelism_config parallelism;
  int64_t max_batch_size = 0;
  int devices = 1;           // devices one replica may use (pipeline_stages: auto tries 1..this)
  double device_memory = 0;  // bytes per device
  /// The device speed for cost estimates; called only when a cut must be chosen (K > 1 or
  /// auto), because calibrating a device the first time takes about a second.
  std::function<expected<planner::device_spec>()> device_speed;
  /// A manual cut (tests, benchmarks): boundaries[k] as split_graph_stages takes them, in the
  /// optimized graph's names. Overrides pipeline_stages.
  std::vector<std::vector<std::string>> boundaries;
};

/// The plan a model is served with.
struct pipeline_choice {
  int64_t stages = 1;
  int64_t tensor_parallel = 1;
  int64_t micro_batch = 0;    // rows per micro-batch; 0 = the whole batch
  std::string chosen_by;      // "config", "planner" or "manual"
  std::vector<std::vector<std::string>> boundaries; // stages - 1 cuts
  std::vector<uint64_t> stage_bytes; // weights + activation arena of each stage (of its
                                     // largest rank when tensor_parallel > 1)
  double predicted_items_per_s = 0;  // one replica; 0 when nothing was predicted
  double predicted_latency_ms = 0;   // one full batch through the pipeline
  /// KIND_AUTO with GPUs listed, served on the CPU: why the GPU backend could not run it.
  std::string gpu_declined;
};

/// Chooses the stages of a model: pipeline_stages K cuts it into K stages balanced by the
/// cost model (stage_cutter), `auto` asks the planner for the K in 1..devices with the best
/// predicted replica throughput (a larger K only when it is more than 1% faster), and a
/// manual cut is taken as given. tensor_parallel T splits every stage into T ranks
/// (split_tensor_parallel); the stages are chosen as for T = 1. Errors name the config key:
/// tensor_parallel < 1, micro_batch without a batch dimension, a K the model cannot be cut into.
expected<pipeline_choice> choose_pipeline(const graph& g, const pipeline_request& req);

/// The graph stage `stage` of `boundaries` runs: the model optimized and sorted as the
/// planner analysed it, then cut (the whole optimized model when boundaries are empty).
/// Sessions built from it must not optimize again.
expected<graph> load_stage_graph(const std::string& onnx_path,
                                 std::span<const std::vector<std::string>> boundaries,
                                 size_t stage);

/// The graph one executor of a served replica runs: stage `stage` of load_stage_graph and, with
/// tensor parallelism (ranks > 1), rank `rank` of its split_tensor_parallel rank graphs (whose
/// collective nodes need the rank's communicator). Shared by every kind of executor so that
/// all ranks of a group cut and split the model alike. Must not be optimized again.
expected<graph> load_rank_graph(const std::string& onnx_path,
                                std::span<const std::vector<std::string>> boundaries,
                                size_t stage, int rank, int ranks);

/// Weights plus the activation arena of `g` at `rows` rows (dynamic dims take `rows`).
expected<uint64_t> stage_memory(graph g, int64_t rows, bool optimize);

/// stage_memory of the largest of the `tensor_parallel` rank graphs of the optimized `g`
/// (of `g` itself for 1).
expected<uint64_t> rank_memory(graph g, int64_t rows, int64_t tensor_parallel);

} // namespace troupe::serve
