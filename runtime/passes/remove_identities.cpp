// remove_identities: Identity and inference Dropout are rewired away.
#include "runtime/passes/graph_uses.hpp"
#include "runtime/passes/passes.hpp"

namespace troupe {

size_t remove_identities(graph& g) {
  graph_uses uses(g);
  std::unordered_map<std::string, std::string> rename;
  std::vector<node> kept;
  for (auto& n : g.nodes) {
    const bool identity = n.op_type == "Identity" ||
                          (n.op_type == "Dropout" && (n.outputs.size() < 2 || n.outputs[1].empty()));
    if (identity && n.domain.empty() && !n.inputs.empty() && !n.outputs.empty() &&
        !uses.graph_outputs.count(n.outputs[0])) {
      auto it = rename.find(n.inputs[0]);
      rename[n.outputs[0]] = it == rename.end() ? n.inputs[0] : it->second;
      continue;
    }
    for (auto& in : n.inputs)
      if (auto it = rename.find(in); it != rename.end())
        in = it->second;
    kept.push_back(std::move(n));
  }
  const size_t removed = g.nodes.size() - kept.size();
  g.nodes = std::move(kept);
  return removed;
}

} // namespace troupe
