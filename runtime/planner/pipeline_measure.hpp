// pipeline_measure: runs pipeline stages concurrently, one pinned CPU device each, and
// measures the items per second that come out (the check of the planner's prediction).
#pragma once

#include <span>
#include <vector>

#include "kernels/cpu/cpu_context.hpp"
#include "runtime/graph.hpp"

namespace troupe::planner {

struct pipeline_measurement {
  double items_per_s = 0;
  double seconds = 0;             // of the timed part
  int timed_batches = 0;
  std::vector<double> stage_busy; // fraction of the timed part each stage spent running
};

/// Feeds `warmup + batches` copies of `inputs` (the first stage's inputs, or the graph
/// inputs when the stages come from split_graph_stages) through `stages`, each on its own
/// thread with its own session on `devices[i]`, joined by queues of `queue_depth` batches.
/// Values are handed on by name, so a value a stage only passes through arrives too. The
/// clock runs from the warm-up's last result to the last result.
expected<pipeline_measurement> measure_pipeline(std::span<const graph> stages,
                                                std::span<const cpu::cpu_limits> devices,
                                                std::span<const tensor> inputs, int batches,
                                                int warmup = 2, size_t queue_depth = 2);

} // namespace troupe::planner
