// stage_cutter: cuts a topologically ordered model into K pipeline stages balanced by cost.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "runtime/planner/cost_model.hpp"

namespace troupe::planner {

/// A place to cut: after op `after`, with the values that are live across it.
struct cut_candidate {
  size_t after = 0;
  std::vector<std::string> crossing; // every value made before and read after the cut
  double crossing_bytes = 0;         // at the planning rows
  bool allowed = false;              // few and cuttable tensors cross (see cut_candidates)
};

/// Every position between ops (after op 0 .. after op n-2). A position is allowed when no
/// shape-derived value crosses it, both sides run at least one operator, and at most
/// `min + slack` tensors cross it, where min is the fewest that cross any cuttable position:
/// pipelines cut at bottlenecks (between residual blocks, between transformer layers),
/// never inside them, because every crossing tensor is a copy between devices.
std::vector<cut_candidate> cut_candidates(const model_cost& cost, double rows, size_t slack = 0);

/// Bytes live at each op (values made at or before it and read at or after it): the
/// activation memory a device running that op must hold.
std::vector<double> live_bytes(const model_cost& cost, double rows);

struct stage_cut {
  std::vector<size_t> after;                          // K-1 cut positions (op indices)
  std::vector<std::vector<std::string>> boundaries;   // for split_graph_stages
  std::vector<double> stage_seconds;                  // compute of each stage
  std::vector<double> boundary_bytes;                 // sent after each stage but the last
  double max_stage_seconds = 0;                       // compute + send of the slowest stage
};

/// Chooses K-1 allowed positions minimizing the slowest stage, a stage's time being the sum
/// of its ops' seconds plus sending its boundary at `link_bytes_per_s` (0: free). Ties go to
/// the cut with fewer bytes crossing. Error when fewer than K-1 allowed positions exist.
expected<stage_cut> cut_stages(std::span<const double> op_seconds,
                               std::span<const cut_candidate> candidates, size_t stages,
                               double link_bytes_per_s);

/// The ops of stage s of `cut` as a half-open range [first, last).
std::pair<size_t, size_t> stage_range(const stage_cut& cut, size_t stage, size_t op_count);

} // namespace troupe::planner
