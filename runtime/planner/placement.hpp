// placement: how many devices a replica needs, how it is cut, how many replicas a pool holds.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/planner/cost_model.hpp"
#include "runtime/planner/stage_cutter.hpp"

namespace troupe::planner {

/// A homogeneous pool: `nodes` machines with `devices_per_node` equal devices each.
struct device_pool {
  int nodes = 1;
  int devices_per_node = 1;
  device_spec device;
  double link_gbps = 10; // between the devices of one replica (pipeline sends, allreduce)
  double link_latency_s = 5e-6; // per step of a ring collective
};

/// "80G", "512M", "1.5T", "4096" (bytes); binary units (G = 2^30). Error names the text.
expected<double> parse_bytes(const std::string& text);

/// Reads a pool file:
///   nodes: 5
///   devices_per_node: 4
///   device_memory: 80G
///   device_speed: 300        # GFLOP/s
///   device_bandwidth: 2000   # GB/s (optional)
///   link_bandwidth: 50       # GB/s between devices (optional)
///   link_latency: 5          # microseconds per ring step of a collective (optional)
expected<device_pool> load_device_pool(const std::filesystem::path& file);

/// Replicas of `devices_per_replica` devices in a pool of whole nodes. A replica larger
/// than a node takes whole nodes (its stages talk over the fast intra-node links, and a
/// node shared by two replicas would couple their failures and their bandwidth), so the
/// pool holds floor(nodes / ceil(P / M)) of them; smaller replicas pack floor(M / P) to a
/// node. 5 nodes x 4 devices with P = 8: 2 nodes per replica, 2 replicas, 4 devices idle.
struct replica_layout {
  int devices_per_replica = 0;
  int nodes_per_replica = 0; // 1 when several replicas share a node
  int replicas_per_node = 0; // 0 when a replica spans nodes
  int replicas = 0;
  int idle_devices = 0;
  int idle_nodes = 0; // nodes no replica touches
};
replica_layout lay_out_replicas(int nodes, int devices_per_node, int devices_per_replica);

enum class objective { throughput, latency };

struct planner_options {
  objective goal = objective::throughput;
  double slo_ms = 0;           // latency objective: plans over it are refused (0: none)
  int stages = 0;              // 0: try 1..max_stages
  int max_stages = 8;
  int tensor_parallel = 0;     // 0: try 1, 2, 4, ... up to devices_per_node
  double batch = 1;            // rows per request batch
  double micro_batch = 0;      // rows per pipeline micro-batch; 0: the whole batch
  double memory_fraction = 0.9; // of a device's memory the plan may use
  size_t cut_slack = 0;        // see cut_candidates
};

struct stage_plan {
  size_t first_op = 0, end_op = 0;     // ops [first_op, end_op)
  std::string first_name, last_name;   // node names, for people
  std::vector<std::string> inputs;     // boundary values received (empty for stage 0)
  double seconds = 0;                  // per micro-batch on one device (after tensor split),
                                       // collectives included
  double send_seconds = 0;             // sending its boundary to the next stage
  double param_bytes = 0;              // per device
  double activation_bytes = 0;         // per device, at the micro-batch
  // Tensor parallel (T > 1): ops each rank runs on a 1/T slice, ops every rank runs whole
  // (folded ops not counted), the AllReduceSum/AllGather count and bytes each rank sends in
  // them per batch.
  size_t split_ops = 0, replicated_ops = 0, collectives = 0;
  double exchange_bytes = 0;
};

/// One candidate plan: K stages x T-way tensor parallel per stage.
struct placement_candidate {
  int stages = 1;
  int tensor_parallel = 1;
  replica_layout layout;
  bool fits = false;           // every stage fits its device's memory
  std::string why_not;         // when it does not fit or cannot be cut
  double replica_items_per_s = 0;
  double items_per_s = 0;      // all replicas
  double latency_ms = 0;       // one batch through the pipeline
  double balance = 0;          // slowest stage / mean stage (1 = perfect)
  double max_device_bytes = 0; // the fullest device
  std::vector<stage_plan> stage_list;
  std::vector<std::vector<std::string>> boundaries; // for split_graph_stages
};

struct placement_plan {
  placement_candidate chosen;
  std::vector<placement_candidate> considered; // every (K, T) tried, in order
  device_pool pool;
  planner_options options;
  std::string model;
  bool measured_costs = false; // op times profiled on the real backend, not estimated
};

/// Chooses K and T for `cost` on `pool`. Errors: nothing fits (the message says the
/// memory one replica needs and the fewest devices that could hold it), or no plan meets
/// the SLO (it gives the best latency found).
expected<placement_plan> plan_placement(const model_cost& cost, const device_pool& pool,
                                        const planner_options& options);

/// Evaluates one (K, T) choice. T > 1 is costed from cost.split_for(T): split ops take 1/T
/// of their time and weights, replicated ops all of it on every rank, and each collective a
/// ring all-reduce or all-gather over the pool's links; without that analysis the candidate
/// is refused.
placement_candidate evaluate_candidate(const model_cost& cost, const device_pool& pool,
                                       const planner_options& options, int stages,
                                       int tensor_parallel);

/// The plan as a table for people, and as one JSON object.
std::string format_table(const placement_plan& p);
std::string format_json(const placement_plan& p);

} // namespace troupe::planner
