// split_graph: cuts a graph into two stages at named values (a manual pipeline cut).
#include "runtime/split_graph.hpp"

#include <set>
#include <unordered_map>
#include <unordered_set>

#include "runtime/plan.hpp"

namespace troupe {

namespace {

/// Copies into `part` the initializers its nodes read.
void take_initializers(const graph& g, graph& part) {
  for (const auto& n : part.nodes)
    for (const auto& in : n.inputs)
      if (auto it = g.initializers.find(in); it != g.initializers.end())
        part.initializers.emplace(in, it->second);
}

} // namespace

expected<graph_split> split_graph_at(const graph& source, std::span<const std::string> cut_values,
                                     int64_t probe_dim) {
  if (cut_values.empty())
    return make_error(errc::invalid_argument, "{}: a cut needs at least one value", source.source);
  graph g = source;
  TROUPE_TRY_STATUS(g.sort_topologically());

  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& out : g.nodes[i].outputs)
      if (!out.empty())
        producer.emplace(out, i);

  // The first part: every node a cut value depends on.
  std::vector<bool> in_first(g.nodes.size(), false);
  std::vector<size_t> work;
  for (const auto& v : cut_values) {
    auto it = producer.find(v);
    if (it == producer.end())
      return make_error(errc::invalid_argument, "{}: cut value '{}' is not computed by any node",
                        g.source, v);
    work.push_back(it->second);
  }
  while (!work.empty()) {
    size_t i = work.back();
    work.pop_back();
    if (in_first[i])
      continue;
    in_first[i] = true;
    for (const auto& in : g.nodes[i].inputs)
      if (auto it = producer.find(in); it != producer.end())
        work.push_back(it->second);
  }

  const std::set<std::string> cut(cut_values.begin(), cut_values.end());
  std::unordered_set<std::string> graph_inputs;
  for (const auto& in : g.inputs)
    graph_inputs.insert(in.name);

  graph_split split;
  split.first.source = g.source + " [stage 0]";
  split.second.source = g.source + " [stage 1]";
  split.first.opset = split.second.opset = g.opset;
  std::unordered_set<std::string> first_reads;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (in_first[i]) {
      split.first.nodes.push_back(g.nodes[i]);
      for (const auto& in : g.nodes[i].inputs)
        first_reads.insert(in);
      continue;
    }
    for (const auto& in : g.nodes[i].inputs) {
      if (in.empty() || cut.count(in))
        continue;
      if (graph_inputs.count(in))
        return make_error(errc::unsupported,
                          "{}: {} after the cut reads graph input '{}'; only cut values cross "
                          "the cut",
                          g.source, g.nodes[i].label(), in);
      if (auto it = producer.find(in); it != producer.end() && in_first[it->second])
        return make_error(errc::invalid_argument,
                          "{}: value '{}' crosses the cut (read by {}); add it to the cut values",
                          g.source, in, g.nodes[i].label());
    }
    split.second.nodes.push_back(g.nodes[i]);
  }
  for (const auto& out : g.outputs) {
    auto it = producer.find(out.name);
    if (it == producer.end() || in_first[it->second]) {
      if (!cut.count(out.name))
        return make_error(errc::unsupported,
                          "{}: graph output '{}' is computed before the cut", g.source, out.name);
    }
  }
  if (split.second.nodes.empty())
    return make_error(errc::invalid_argument, "{}: nothing is left after the cut", g.source);

  for (const auto& in : g.inputs)
    if (first_reads.count(in.name))
      split.first.inputs.push_back(in);
  take_initializers(g, split.first);
  take_initializers(g, split.second);
  split.second.outputs = g.outputs;

  // Types of the cut values: compile the first part once on probe dims.
  std::vector<shape> probe;
  bool dynamic_batch = false;
  for (const auto& in : split.first.inputs) {
    shape dims = in.dims;
    for (auto& d : dims)
      if (d < 0)
        d = probe_dim;
    if (!in.dims.empty() && in.dims[0] < 0)
      dynamic_batch = true;
    probe.push_back(std::move(dims));
  }
  for (const auto& v : cut_values)
    split.first.outputs.push_back(value_info{v, dtype::undefined, {}});
  cpu::cpu_context cpu{cpu::cpu_limits{1, {}}};
  auto compiled = plan::compile(split.first, probe, cpu);
  if (!compiled)
    return compiled.error().with_context(split.first.source);
  const auto& infos = (*compiled)->outputs();
  for (size_t i = 0; i < infos.size(); ++i) {
    value_info info = infos[i];
    if (dynamic_batch && !info.dims.empty())
      info.dims[0] = -1;
    split.first.outputs[i] = info;
    split.second.inputs.push_back(info);
  }
  return split;
}

} // namespace troupe
