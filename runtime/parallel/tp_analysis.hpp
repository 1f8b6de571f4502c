// tp_analysis: decides, node by node, which values of a graph a tensor-parallel split keeps
// sliced across ranks, and which weight operators open and close each sliced region.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/graph.hpp"

namespace troupe::tp {

using shape_map = std::unordered_map<std::string, shape>;

enum class role {
  replicated,  // every rank computes the whole node
  opening,     // weight op on a whole input, split by output columns/channels
  closing,     // weight op on a sliced input, split by input rows/channels, then AllReduceSum
  propagating, // works on each rank's slice (activations, heads, per-channel ops)
};

struct node_plan {
  role kind = role::replicated;
  int region = -1;
  int out_axis = -1;            // sliced axis of output 0 (opening, propagating)
  std::vector<int> gather_axis; // per input: >= 0 when a slice must be gathered first
  std::vector<int> slice_axis;  // per input of a propagating node: whole value to slice locally
};

struct region_info {
  std::vector<size_t> openings, closings;
  std::vector<std::string> notes; // heads per rank, grouped convs
  std::string bad;                // non-empty: cannot be split (the reason)
};

struct analysis {
  std::vector<node_plan> nodes;
  std::vector<region_info> regions;      // indexed by root region id
  std::vector<int> region_root;          // union-find parent
  std::unordered_map<std::string, int> output_gather; // sliced graph outputs -> axis
  std::vector<std::string> replicated_notes;          // weight ops left whole, and why
  int root(int r) const {
    while (region_root[static_cast<size_t>(r)] != r)
      r = region_root[static_cast<size_t>(r)];
    return r;
  }
};

/// What the analysis needs to know about the graph: dims of every value at a probe size and
/// its constants.
struct graph_facts {
  const graph& g;
  shape_map shapes;
  std::unordered_map<std::string, const tensor*> constants; // initializers and Constant nodes
  const tensor* constant(const std::string& name) const {
    auto it = constants.find(name);
    return it == constants.end() ? nullptr : it->second;
  }
  const shape* dims(const std::string& name) const {
    auto it = shapes.find(name);
    return it == shapes.end() ? nullptr : &it->second;
  }
};

/// One pass over the sorted graph for `ways` ranks; weight ops in `forbidden` never open a
/// region. Regions whose `bad` is set must be forbidden and the pass repeated.
analysis analyze(const graph_facts& facts, int ways, const std::set<size_t>& forbidden);

/// The graph a split works on: `g` after the shape-independent passes, sorted, with the
/// dims of its values at a probe size and its constants. Held by pointer: facts refers to
/// prepared.
struct prepared_graph {
  graph prepared;
  graph_facts facts{prepared, {}, {}};
};
expected<std::unique_ptr<prepared_graph>> prepare(const graph& g);

/// The analysis every region of which splits: regions that cannot split have their openings
/// forbidden and the pass repeats. `refused` says which were replicated and why.
struct final_analysis {
  analysis result;
  std::vector<std::string> refused;
};
final_analysis analyze_splittable(const graph_facts& facts, int ways);

/// "name (OpType), ..." for nodes of `g`, for decision lines.
std::string labels(const graph& g, const std::vector<size_t>& nodes);

/// The axis along which each rank holds a slice of constant input `j` of node `i`, or -1
/// when every rank holds that input whole.
int weight_axis(const graph_facts& facts, const analysis& a, size_t i, size_t j);

} // namespace troupe::tp
