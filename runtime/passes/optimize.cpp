// optimize: the pass pipeline a session runs when a model is loaded.
#include <algorithm>
#include <unordered_set>

#include "kernels/cpu/cpu_context.hpp"
#include "runtime/passes/passes.hpp"
#include "runtime/plan.hpp"

namespace troupe {
namespace {

void prune_unused_initializers(graph& g) {
  std::unordered_set<std::string> used;
  for (const auto& n : g.nodes)
    used.insert(n.inputs.begin(), n.inputs.end());
  for (const auto& out : g.outputs)
    used.insert(out.name);
  std::erase_if(g.initializers, [&](const auto& kv) { return !used.count(kv.first); });
}

/// Drops nodes none of whose outputs is read or a graph output (Constants left behind by
/// fusions), until none is left, so cost models and plans never see them.
void remove_dead_nodes(graph& g) {
  for (bool changed = true; changed;) {
    std::unordered_set<std::string> used;
    for (const auto& n : g.nodes)
      used.insert(n.inputs.begin(), n.inputs.end());
    for (const auto& out : g.outputs)
      used.insert(out.name);
    const size_t before = g.nodes.size();
    std::erase_if(g.nodes, [&](const node& n) {
      return std::none_of(n.outputs.begin(), n.outputs.end(),
                          [&](const std::string& o) { return !o.empty() && used.count(o); });
    });
    changed = g.nodes.size() != before;
  }
}

/// Concrete dims of every value at a probe size (dynamic dims = 2, so that a dimension that
/// depends on the batch is not mistaken for a broadcast of size 1).
expected<shape_map> probe_shapes(const graph& g, size_t max_value_bytes) {
  const auto dims = dims_with_dynamic_as(g.inputs, 2);
  cpu::cpu_context cpu{cpu::cpu_limits{1, {}}};
  auto p = plan::compile(g, dims, cpu, plan_options{false, max_value_bytes});
  if (!p)
    return p.error();
  return (*p)->value_shapes();
}

} // namespace

status optimize_graph(graph& g, size_t max_value_bytes) {
  remove_identities(g);
  fold_batchnorm_into_conv(g);
  fuse_layer_norm(g);
  remove_dead_nodes(g);
  prune_unused_initializers(g);
  bool has_conv = false;
  for (const auto& n : g.nodes)
    has_conv = has_conv || n.op_type == "Conv";
  if (has_conv) {
    auto shapes = probe_shapes(g, max_value_bytes);
    if (!shapes)
      return shapes.error();
    fuse_conv_epilogues(g, *shapes);
  }
  return g.sort_topologically();
}

} // namespace troupe
