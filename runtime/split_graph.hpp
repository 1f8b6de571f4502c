// split_graph: cuts a graph into two stages at named values (a manual pipeline cut).
#pragma once

#include <span>
#include <string>
#include <utility>

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

} // namespace troupe
