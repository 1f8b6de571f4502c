// tp_cost: maps tp_analysis's node roles and collectives onto the cost model's operators.
#include "runtime/planner/tp_cost.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "runtime/parallel/tp_analysis.hpp"

namespace troupe::planner {
namespace {

using bytes_map = std::unordered_map<std::string, double>;

/// Where each node of the prepared graph ended up among the analysed ops: the op of the same
/// name, else (a node a fusion absorbed) the op that writes its output; -1 when none does.
std::vector<int> map_nodes(const graph& prepared, const graph& optimized) {
  std::unordered_map<std::string, int> by_name, by_output;
  for (size_t i = 0; i < optimized.nodes.size(); ++i) {
    const node& n = optimized.nodes[i];
    if (!n.name.empty())
      by_name.emplace(n.name, static_cast<int>(i));
    for (const auto& o : n.outputs)
      if (!o.empty())
        by_output.emplace(o, static_cast<int>(i));
  }
  std::vector<int> out;
  for (const node& n : prepared.nodes) {
    int at = -1;
    if (auto it = by_name.find(n.name); !n.name.empty() && it != by_name.end())
      at = it->second;
    else
      for (const auto& o : n.outputs)
        if (auto jt = by_output.find(o); at < 0 && !o.empty() && jt != by_output.end())
          at = jt->second;
    out.push_back(at);
  }
  return out;
}

tp_cost cost_split(const tp::prepared_graph& prep, const model_analysis& m, int ways,
                   const bytes_map& at1, const bytes_map& at2) {
  const graph& g = prep.prepared;
  const tp::analysis a = tp::analyze_splittable(prep.facts, ways).result;
  const auto where = map_nodes(g, m.optimized);
  const size_t ops = m.cost.ops.size();
  tp_cost t;
  t.ways = ways;
  t.split.assign(ops, false);
  t.param_bytes.assign(ops, 0.0);
  auto bytes = [&](const std::string& v) {
    auto b1 = at1.find(v), b2 = at2.find(v);
    const double x1 = b1 == at1.end() ? 0 : b1->second, x2 = b2 == at2.end() ? 0 : b2->second;
    return linear{2 * x1 - x2, x2 - x1};
  };
  auto op_of = [&](size_t node) { return static_cast<size_t>(std::max(where[node], 0)); };
  std::unordered_map<std::string, size_t> producer;
  std::set<std::pair<std::string, int>> held; // (initializer, slice axis) a rank holds
  std::set<std::string> gathered;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const node& n = g.nodes[i];
    for (const auto& o : n.outputs)
      producer[o] = i;
    const auto& p = a.nodes[i];
    if (where[i] >= 0 && m.optimized.nodes[static_cast<size_t>(where[i])].name == n.name)
      t.split[op_of(i)] = p.kind != tp::role::replicated;
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      const std::string& in = n.inputs[j];
      auto w = g.initializers.find(in);
      const int axis = tp::weight_axis(prep.facts, a, i, j);
      if (w != g.initializers.end() && held.emplace(in, axis).second)
        t.param_bytes[op_of(i)] += static_cast<double>(w->second.numel()) *
                                   static_cast<double>(size_of(w->second.type())) /
                                   (axis >= 0 ? ways : 1);
      if (p.gather_axis[j] >= 0 && gathered.insert(in).second)
        t.collectives.push_back({collective_kind::all_gather, in, op_of(i), bytes(in)});
    }
    if (p.kind == tp::role::closing)
      t.collectives.push_back({collective_kind::all_reduce, n.outputs[0], op_of(i), bytes(n.outputs[0])});
  }
  for (const auto& [name, axis] : a.output_gather)
    t.collectives.push_back({collective_kind::all_gather, name, op_of(producer.at(name)), bytes(name)});
  return t;
}

} // namespace

status analyze_tensor_parallel(model_analysis& m, const graph& g, const std::vector<int>& ways,
                               int64_t other_dim) {
  auto prep = tp::prepare(g);
  if (!prep)
    return prep.error();
  auto at1 = value_bytes((*prep)->prepared, 1, other_dim);
  if (!at1)
    return at1.error();
  auto at2 = value_bytes((*prep)->prepared, 2, other_dim);
  if (!at2)
    return at2.error();
  for (int t : ways) {
    if (t < 2 || m.cost.split_for(t))
      continue;
    m.cost.tensor_parallel.push_back(cost_split(**prep, m, t, *at1, *at2));
  }
  return status::ok();
}

double collective_sent_bytes(collective_kind kind, double bytes, int ways) {
  const double t = ways;
  return (kind == collective_kind::all_reduce ? 2 : 1) * (t - 1) / t * bytes;
}

double collective_seconds(collective_kind kind, double bytes, int ways, double link_bytes_per_s,
                          double step_latency_s) {
  if (ways < 2)
    return 0;
  const double steps = (kind == collective_kind::all_reduce ? 2 : 1) * (ways - 1);
  const double wire = link_bytes_per_s > 0 ? collective_sent_bytes(kind, bytes, ways) / link_bytes_per_s : 0;
  return wire + steps * step_latency_s;
}

} // namespace troupe::planner
