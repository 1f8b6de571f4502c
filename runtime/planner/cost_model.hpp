// cost_model: per-operator FLOPs, bytes, parameter and activation memory of a model, and
// per-device speed, as the inputs of the placement planner and the stage cutter.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/cpu_context.hpp"
#include "runtime/graph.hpp"

namespace troupe::planner {

/// A quantity that grows linearly with the batch: fixed + per_row * rows. Fitted from plans
/// compiled at two batch sizes, because arenas and weights do not scale with the batch but
/// activations do.
struct linear {
  double fixed = 0;
  double per_row = 0;
  double at(double rows) const { return fixed + per_row * rows; }
};

struct op_cost {
  std::string name;
  std::string op_type;
  linear flops;             // 2 x multiply-adds (Conv, Gemm, MatMul)
  linear bytes_moved;       // inputs read + outputs written, weights included
  double param_bytes = 0;   // initializers this node is the first to read
  linear activation_bytes;  // outputs written
  bool folded = false;      // computed when the plan is compiled: costs nothing per run
  bool measured = false;    // `seconds` comes from a profiled run on the real backend
  linear seconds;           // measured time (only when `measured`)
};

/// A value that lives between operators at run time (not a weight, not a constant).
struct value_cost {
  std::string name;
  linear bytes;
  int producer = -1; // op index; -1 for a graph input
  int last_use = -1; // op index of the last reader; ops.size() for a graph output
  /// Folded at compile time from shapes (not from weights alone): a stage after a cut could
  /// not fold it again, so no cut may cross it.
  bool shape_derived = false;
};

enum class collective_kind { all_reduce, all_gather };

/// One AllReduceSum or AllGather a tensor-parallel split inserts.
struct collective_cost {
  collective_kind kind = collective_kind::all_reduce;
  std::string value;   // the tensor exchanged
  size_t after_op = 0; // op the exchange follows: its stage pays for it
  linear bytes;        // the whole tensor
};

/// A model split `ways`-way tensor parallel (split_tensor_parallel's split), per op.
struct tp_cost {
  int ways = 1;
  std::vector<bool> split;          // each rank computes a 1/ways slice; else the whole op
  std::vector<double> param_bytes;  // weights each rank holds for the op
  std::vector<collective_cost> collectives;
};

struct model_cost {
  std::string source;
  std::vector<op_cost> ops;      // in the topological order of the analysed graph
  std::vector<value_cost> values;
  double param_bytes = 0;
  linear arena_bytes;            // the whole model's activation arena on one device
  bool batched = true;           // the first input dim is dynamic (rows scale)
  std::vector<tp_cost> tensor_parallel; // the splits analysed (analyze_tensor_parallel)
  double total_flops(double rows) const;
  const tp_cost* split_for(int ways) const;
};

/// What a device can do: memory and a speed for compute-bound and for memory-bound work.
struct device_spec {
  double memory_bytes = 0;
  double gflops = 0;        // dense fp32 GEMM rate
  double mem_gbps = 10;     // streaming memory bandwidth, GB/s
  double op_overhead_s = 2e-6; // fixed cost of launching one operator
};

/// Estimated seconds of op `i` at `rows` on `dev`: measured time when profiled, else a
/// roofline-style max of compute and memory time plus a per-operator overhead.
double op_seconds(const op_cost& op, const device_spec& dev, double rows);

struct model_analysis {
  graph optimized; // sorted and optimized: the graph the costs and cut names refer to
  model_cost cost;
};

/// Optimizes and sorts `g`, compiles it at batch 1 and 2 (dynamic dims other than the first
/// take `other_dim`), and derives every cost from the two plans.
expected<model_analysis> analyze_model(graph g, int64_t other_dim = 1);

/// Bytes of every value of `g` at `rows` rows (dynamic dims other than the first take
/// `other_dim`), from a compiled plan.
expected<std::unordered_map<std::string, double>> value_bytes(const graph& g, int64_t rows,
                                                              int64_t other_dim);

/// Runs the analysed graph on a CPU backend with per-step profiling at 1 and `rows` rows
/// (`runs` timed runs each after one warm-up) and stores measured seconds per operator.
status profile_model(model_analysis& m, const cpu::cpu_limits& limits, int64_t rows, int runs,
                     int64_t other_dim = 1);

} // namespace troupe::planner
