// graph_uses: who reads each value (for rewrites that must know a value has one consumer), and
// which values the graph's outputs need at all.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>

#include "runtime/graph.hpp"

namespace troupe {

struct graph_uses {
  std::unordered_map<std::string, int> readers; // node inputs reading the value
  std::unordered_set<std::string> graph_outputs;
  std::unordered_map<std::string, size_t> producer; // node index producing the value

  explicit graph_uses(const graph& g) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (const auto& in : g.nodes[i].inputs)
        if (!in.empty())
          ++readers[in];
      for (const auto& out : g.nodes[i].outputs)
        if (!out.empty())
          producer[out] = i;
    }
    for (const auto& out : g.outputs)
      graph_outputs.insert(out.name);
  }

  /// True when `value` is read by exactly one node input and is no graph output.
  bool single_use(const std::string& value) const {
    auto it = readers.find(value);
    return it != readers.end() && it->second == 1 && !graph_outputs.count(value);
  }

  /// The node producing `value`, or nullptr.
  const node* producer_of(const graph& g, const std::string& value) const {
    auto it = producer.find(value);
    return it == producer.end() ? nullptr : &g.nodes[it->second];
  }
};

/// Names of the values some graph output depends on (the graph's outputs and every input of a
/// node that computes one of them, transitively); the rest is dead code.
inline std::unordered_set<std::string> live_values(const graph& g) {
  std::unordered_set<std::string> live;
  for (const auto& out : g.outputs)
    live.insert(out.name);
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    bool needed = false;
    for (const auto& out : it->outputs)
      needed = needed || (!out.empty() && live.count(out));
    if (needed)
      for (const auto& in : it->inputs)
        if (!in.empty())
          live.insert(in);
  }
  return live;
}

} // namespace troupe
