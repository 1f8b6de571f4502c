// split_graph: cuts a graph into pipeline stages at named values (two-way and K-way).
#include "runtime/split_graph.hpp"

#include <fmt/format.h>

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

namespace troupe {

namespace {

/// Compiles `stage` on `dims` and returns the dims of its outputs.
expected<std::vector<value_info>> probe_outputs(const graph& stage, const std::vector<shape>& dims) {
  cpu::cpu_context cpu{cpu::cpu_limits{1, {}}};
  auto compiled = plan::compile(stage, dims, cpu);
  if (!compiled)
    return compiled.error().with_context(stage.source);
  return (*compiled)->outputs();
}

} // namespace

expected<std::vector<graph>> split_graph_stages(const graph& source,
                                                std::span<const std::vector<std::string>> boundaries) {
  graph g = source;
  TROUPE_TRY_STATUS(g.sort_topologically());
  const size_t stage_count = boundaries.size() + 1;
  if (stage_count == 1)
    return std::vector<graph>{g};

  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& out : g.nodes[i].outputs)
      if (!out.empty())
        producer.emplace(out, i);
  std::unordered_set<std::string> graph_inputs;
  for (const auto& in : g.inputs)
    graph_inputs.insert(in.name);

  // Weight-only nodes (Constant, shape arithmetic on weights) are copied wherever needed so
  // their outputs never have to cross a cut.
  std::unordered_set<std::string> weight_only;
  for (const auto& [name, t] : g.initializers)
    weight_only.insert(name);
  std::vector<bool> is_const(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    bool all = true;
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty() && !weight_only.count(in))
        all = false;
    if (!all)
      continue;
    is_const[i] = true;
    for (const auto& out : g.nodes[i].outputs)
      if (!out.empty())
        weight_only.insert(out);
  }

  std::vector<int> stage_of(g.nodes.size(), -1);
  for (size_t k = 0; k + 1 < stage_count; ++k) {
    std::vector<size_t> work;
    for (const auto& v : boundaries[k]) {
      if (graph_inputs.count(v) || weight_only.count(v))
        continue;
      auto it = producer.find(v);
      if (it == producer.end())
        return make_error(errc::invalid_argument,
                          "{}: boundary {}: value '{}' is neither computed by a node nor a graph "
                          "input", g.source, k, v);
      work.push_back(it->second);
    }
    while (!work.empty()) {
      size_t i = work.back();
      work.pop_back();
      if (stage_of[i] >= 0 || is_const[i])
        continue;
      stage_of[i] = static_cast<int>(k);
      for (const auto& in : g.nodes[i].inputs)
        if (auto it = producer.find(in); it != producer.end())
          work.push_back(it->second);
    }
  }

  std::vector<graph> stages(stage_count);
  for (size_t k = 0; k < stage_count; ++k) {
    graph& s = stages[k];
    s.source = fmt::format("{} [stage {}]", g.source, k);
    s.opset = g.opset;
    std::vector<bool> take(g.nodes.size(), false);
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (!is_const[i] && (stage_of[i] == static_cast<int>(k) ||
                           (stage_of[i] < 0 && k + 1 == stage_count)))
        take[i] = true;
    // Copy in the weight-only nodes this stage reads, transitively.
    std::vector<size_t> work;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (take[i])
        for (const auto& in : g.nodes[i].inputs)
          if (auto it = producer.find(in); it != producer.end() && is_const[it->second])
            work.push_back(it->second);
    const std::vector<std::string> out_names = [&] {
      std::vector<std::string> names;
      if (k + 1 < stage_count)
        return boundaries[k];
      for (const auto& out : g.outputs)
        names.push_back(out.name);
      return names;
    }();
    for (const auto& v : out_names)
      if (auto it = producer.find(v); it != producer.end() && is_const[it->second])
        work.push_back(it->second);
    while (!work.empty()) {
      size_t i = work.back();
      work.pop_back();
      if (take[i])
        continue;
      take[i] = true;
      for (const auto& in : g.nodes[i].inputs)
        if (auto it = producer.find(in); it != producer.end())
          work.push_back(it->second);
    }

    std::unordered_set<std::string> available(weight_only.begin(), weight_only.end());
    if (k == 0)
      available.insert(graph_inputs.begin(), graph_inputs.end());
    else
      available.insert(boundaries[k - 1].begin(), boundaries[k - 1].end());
    std::unordered_set<std::string> reads;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (!take[i])
        continue;
      for (const auto& in : g.nodes[i].inputs) {
        if (in.empty())
          continue;
        if (!available.count(in))
          return make_error(errc::invalid_argument,
                            "{}: value '{}' read by {} in stage {} crosses boundary {} but is not "
                            "listed in it", g.source, in, g.nodes[i].label(), k,
                            k == 0 ? 0 : k - 1);
        reads.insert(in);
      }
      for (const auto& out : g.nodes[i].outputs)
        if (!out.empty())
          available.insert(out);
      s.nodes.push_back(g.nodes[i]);
    }
    for (const auto& v : out_names)
      if (!available.count(v))
        return make_error(errc::invalid_argument,
                          "{}: stage {} must pass on '{}' but neither computes nor receives it",
                          g.source, k, v);
    if (s.nodes.empty() && k + 1 == stage_count)
      return make_error(errc::invalid_argument, "{}: nothing is left for the last stage", g.source);
    if (k == 0) {
      std::unordered_set<std::string> wanted(reads);
      wanted.insert(out_names.begin(), out_names.end());
      for (const auto& in : g.inputs)
        if (wanted.count(in.name))
          s.inputs.push_back(in);
    }
    take_initializers(g, s);
    if (k + 1 == stage_count)
      s.outputs = g.outputs;
    else
      for (const auto& v : out_names)
        s.outputs.push_back(value_info{v, dtype::undefined, {}});
  }

  // Types of the boundary values: run the compile chain at two probe sizes.
  std::vector<shape> dims[2] = {dims_with_dynamic_as(stages[0].inputs, 2),
                                dims_with_dynamic_as(stages[0].inputs, 3)};
  for (size_t k = 0; k + 1 < stage_count; ++k) {
    std::vector<value_info> outs[2];
    for (int p = 0; p < 2; ++p) {
      auto probed = probe_outputs(stages[k], dims[p]);
      if (!probed)
        return probed.error();
      outs[p] = std::move(*probed);
      dims[p].clear();
      for (const auto& o : outs[p])
        dims[p].push_back(o.dims);
    }
    for (size_t i = 0; i < outs[0].size(); ++i) {
      value_info info = outs[0][i];
      const auto& other = outs[1][i].dims;
      for (size_t d = 0; d < info.dims.size() && d < other.size(); ++d)
        if (info.dims[d] != other[d])
          info.dims[d] = -1;
      stages[k].outputs[i] = info;
    }
    stages[k + 1].inputs = stages[k].outputs;
  }
  return stages;
}

} // namespace troupe
