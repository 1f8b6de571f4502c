// tp_cost: the planner's view of a tensor-parallel split: which operators run on a slice,
// which stay whole on every rank, the weights each rank holds and the collectives between.
#pragma once

#include <vector>

#include "runtime/planner/cost_model.hpp"

namespace troupe::planner {

/// Analyses the split split_tensor_parallel(g, T) makes for each T in `ways` (> 1) with the
/// same analysis, and maps it onto the ops of `m`, which analyze_model made from `g`: an op
/// is split when the weight/per-slice node it came from is, its weights are held 1/T per
/// rank when sliced, and every AllReduceSum / AllGather the rank graphs hold is one
/// collective. Stores the results in m.cost.tensor_parallel.
status analyze_tensor_parallel(model_analysis& m, const graph& g, const std::vector<int>& ways,
                               int64_t other_dim = 1);

/// Seconds of one ring collective over `ways` ranks moving a tensor of `bytes`: an
/// all-reduce sends 2(T-1)/T x bytes per rank in 2(T-1) steps, an all-gather (T-1)/T x bytes
/// in T-1 steps; each step pays `step_latency_s`.
double collective_seconds(collective_kind kind, double bytes, int ways, double link_bytes_per_s,
                          double step_latency_s);

/// Bytes each rank sends in that collective.
double collective_sent_bytes(collective_kind kind, double bytes, int ways);

} // namespace troupe::planner
