// split_graph: cuts a graph into pipeline stages at named values (two-way and K-way).
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/graph.hpp"

namespace troupe {

struct graph_split {
  graph first;  // the graph's inputs -> the cut values
  graph second; // the cut values -> the graph's outputs
};

/// Cuts `g` so the first part computes exactly what the cut values need and the second part
/// computes the rest from the cut values alone. The dtypes and dims of the cut values come
/// from compiling the first part once with every dynamic dim set to `probe_dim` (a dim that
/// follows a dynamic first input dim stays dynamic). Errors name the value at fault: a cut value
/// nobody computes, a value other than a cut value that crosses the cut, a graph input the
/// second part needs, a graph output computed before the cut.
expected<graph_split> split_graph_at(const graph& g, std::span<const std::string> cut_values,
                                     int64_t probe_dim = 1);

/// Cuts `g` into boundaries.size() + 1 stages. boundaries[k] lists every value that crosses
/// from stages 0..k to stages k+1..: stage k computes what boundaries[k] needs (stopping at
/// what earlier stages computed), its inputs are boundaries[k-1] (the graph inputs for stage
/// 0) and its outputs boundaries[k] (the graph outputs for the last stage). Unlike
/// split_graph_at, a boundary may list a graph input or a value made several stages earlier:
/// the stages in between pass it through, as a pipeline must (an attention mask, a skip).
/// Nodes computable from weights alone are copied into every stage that reads them. Dtypes
/// and dims of boundary values come from compiling the stages in turn at two probe sizes of
/// the dynamic dims; a dim that differs between the probes stays dynamic. Errors name the
/// value and the boundary at fault.
expected<std::vector<graph>> split_graph_stages(const graph& g,
                                                std::span<const std::vector<std::string>> boundaries);

} // namespace troupe
