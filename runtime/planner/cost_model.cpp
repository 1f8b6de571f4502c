// cost_model: costs derived from plans compiled at two batch sizes, and profiled op times.
#include "runtime/planner/cost_model.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "runtime/cost.hpp"
#include "runtime/plan.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"

namespace troupe::planner {

namespace {

using desc_map = std::unordered_map<std::string, value_desc>;

double bytes_of(const desc_map& descs, const std::string& name) {
  auto it = descs.find(name);
  if (it == descs.end() || !it->second.present())
    return 0;
  return static_cast<double>(numel_of(it->second.dims)) *
         static_cast<double>(size_of(it->second.type));
}

linear fit(double at1, double at2) { return linear{2 * at1 - at2, at2 - at1}; }

std::vector<shape> probe_dims(const graph& g, int64_t rows, int64_t other_dim) {
  std::vector<shape> dims;
  for (const auto& in : g.inputs) {
    shape d = in.dims;
    for (size_t i = 0; i < d.size(); ++i)
      if (d[i] < 0)
        d[i] = i == 0 ? rows : other_dim;
    dims.push_back(std::move(d));
  }
  return dims;
}

struct probe {
  desc_map descs;
  shape_map shapes;
  double arena = 0;
};

expected<probe> compile_probe(const graph& g, int64_t rows, int64_t other_dim) {
  cpu::cpu_context cpu{cpu::cpu_limits{1, {}}};
  auto dims = probe_dims(g, rows, other_dim);
  auto p = plan::compile(g, dims, cpu);
  if (!p)
    return p.error();
  probe out;
  out.descs = (*p)->value_descs();
  for (const auto& [name, d] : out.descs)
    out.shapes[name] = d.dims;
  out.arena = static_cast<double>((*p)->arena_bytes());
  return out;
}

} // namespace

double model_cost::total_flops(double rows) const {
  double f = 0;
  for (const auto& op : ops)
    f += op.flops.at(rows);
  return f;
}

const tp_cost* model_cost::split_for(int ways) const {
  for (const auto& t : tensor_parallel)
    if (t.ways == ways)
      return &t;
  return nullptr;
}

expected<std::unordered_map<std::string, double>> value_bytes(const graph& g, int64_t rows,
                                                              int64_t other_dim) {
  auto p = compile_probe(g, rows, other_dim);
  if (!p)
    return p.error();
  std::unordered_map<std::string, double> out;
  for (const auto& [name, d] : p->descs)
    out[name] = bytes_of(p->descs, name);
  return out;
}

double op_seconds(const op_cost& op, const device_spec& dev, double rows) {
  if (op.folded)
    return 0;
  if (op.measured)
    return std::max(0.0, op.seconds.at(rows));
  const double compute = dev.gflops > 0 ? op.flops.at(rows) / (dev.gflops * 1e9) : 0;
  const double memory = dev.mem_gbps > 0 ? op.bytes_moved.at(rows) / (dev.mem_gbps * 1e9) : 0;
  return std::max(compute, memory) + dev.op_overhead_s;
}

expected<model_analysis> analyze_model(graph g, int64_t other_dim) {
  TROUPE_TRY_STATUS(optimize_graph(g));
  TROUPE_TRY_STATUS(g.sort_topologically());
  auto p1 = compile_probe(g, 1, other_dim);
  if (!p1)
    return p1.error().with_context(g.source);
  auto p2 = compile_probe(g, 2, other_dim);
  if (!p2)
    return p2.error().with_context(g.source);

  model_analysis m;
  model_cost& c = m.cost;
  c.source = g.source;
  c.batched = !g.inputs.empty() && !g.inputs[0].dims.empty() && g.inputs[0].dims[0] < 0;
  c.arena_bytes = fit(p1->arena, p2->arena);

  // Values computable from weights alone are duplicated into every stage that reads them
  // (split_graph_stages does the same), so they never cross a cut and are left out here.
  std::unordered_set<std::string> weight_only;
  for (const auto& [name, t] : g.initializers)
    weight_only.insert(name);
  std::unordered_set<std::string> seen_params;
  std::unordered_map<std::string, size_t> value_index;
  auto add_value = [&](const std::string& name, int producer) {
    value_index[name] = c.values.size();
    value_cost v;
    v.name = name;
    v.bytes = fit(bytes_of(p1->descs, name), bytes_of(p2->descs, name));
    v.producer = producer;
    auto it = p1->descs.find(name);
    v.shape_derived = it != p1->descs.end() && it->second.constant != nullptr;
    c.values.push_back(std::move(v));
  };
  for (const auto& in : g.inputs)
    add_value(in.name, -1);

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const node& n = g.nodes[i];
    op_cost op;
    op.name = n.name;
    op.op_type = n.op_type;
    op.flops = fit(node_flops(n, p1->shapes), node_flops(n, p2->shapes));
    bool all_weight_only = true;
    double read1 = 0, read2 = 0, wrote1 = 0, wrote2 = 0;
    for (const auto& in : n.inputs) {
      if (in.empty())
        continue;
      read1 += bytes_of(p1->descs, in);
      read2 += bytes_of(p2->descs, in);
      if (!weight_only.count(in))
        all_weight_only = false;
      if (auto it = g.initializers.find(in);
          it != g.initializers.end() && seen_params.insert(in).second)
        op.param_bytes += static_cast<double>(it->second.numel()) *
                          static_cast<double>(size_of(it->second.type()));
      if (auto it = value_index.find(in); it != value_index.end())
        c.values[it->second].last_use = static_cast<int>(i);
    }
    bool all_folded = true;
    for (const auto& out : n.outputs) {
      if (out.empty())
        continue;
      wrote1 += bytes_of(p1->descs, out);
      wrote2 += bytes_of(p2->descs, out);
      auto it = p1->descs.find(out);
      if (it == p1->descs.end() || it->second.constant == nullptr)
        all_folded = false;
      if (all_weight_only)
        weight_only.insert(out);
      else
        add_value(out, static_cast<int>(i));
    }
    op.folded = all_folded;
    op.bytes_moved = fit(read1 + wrote1, read2 + wrote2);
    op.activation_bytes = fit(wrote1, wrote2);
    c.param_bytes += op.param_bytes;
    c.ops.push_back(std::move(op));
  }
  for (const auto& out : g.outputs)
    if (auto it = value_index.find(out.name); it != value_index.end())
      c.values[it->second].last_use = static_cast<int>(c.ops.size());
  // A value nobody reads dies where it is made.
  for (auto& v : c.values)
    if (v.last_use < v.producer)
      v.last_use = std::max(v.producer, 0);
  m.optimized = std::move(g);
  return m;
}

status profile_model(model_analysis& m, const cpu::cpu_limits& limits, int64_t rows, int runs,
                     int64_t other_dim) {
  session_options options;
  options.limits = limits;
  options.optimize = false; // the analysed graph is optimized already; names must not change
  auto s = session::from_graph(m.optimized, options);
  if (!s)
    return s.error();
  TROUPE_TRY_STATUS((*s)->context().enter());
  std::unordered_map<std::string, size_t> by_label;
  for (size_t i = 0; i < m.optimized.nodes.size(); ++i)
    by_label[m.optimized.nodes[i].label()] = i;

  auto measure = [&](int64_t batch) -> expected<std::vector<double>> {
    std::vector<double> seconds(m.cost.ops.size(), 0.0);
    std::mt19937_64 rng(static_cast<uint64_t>(batch));
    std::vector<tensor> inputs;
    for (const auto& in : m.optimized.inputs) {
      shape d = in.dims;
      for (size_t i = 0; i < d.size(); ++i)
        if (d[i] < 0)
          d[i] = i == 0 ? batch : other_dim;
      inputs.push_back(random_tensor(in.type, d, rng));
    }
    for (int r = -1; r < runs; ++r) {
      std::vector<step_profile> prof;
      auto out = (*s)->run(inputs, &prof);
      if (!out)
        return out.error();
      if (r < 0)
        continue; // warm-up: oneDNN JIT and first-touch page faults
      // A reorder step belongs to the operator that needed it: the next named step.
      double pending = 0;
      for (const auto& step : prof) {
        auto it = by_label.find(step.label);
        if (it == by_label.end()) {
          pending += step.seconds;
          continue;
        }
        seconds[it->second] += (step.seconds + pending) / runs;
        pending = 0;
      }
    }
    return seconds;
  };
  auto at1 = measure(1);
  if (!at1)
    return at1.error();
  std::vector<double> at_rows = *at1;
  if (rows > 1) {
    auto r = measure(rows);
    if (!r)
      return r.error();
    at_rows = *r;
  }
  for (size_t i = 0; i < m.cost.ops.size(); ++i) {
    auto& op = m.cost.ops[i];
    op.measured = true;
    if (rows > 1) {
      const double per_row = std::max(0.0, (at_rows[i] - (*at1)[i]) / static_cast<double>(rows - 1));
      op.seconds = linear{std::max(0.0, (*at1)[i] - per_row), per_row};
      // Keep the fit exact at the planning batch where timing noise made it non-linear.
      if (op.seconds.at(static_cast<double>(rows)) <= 0)
        op.seconds = linear{0, at_rows[i] / static_cast<double>(rows)};
    } else {
      op.seconds = linear{0, (*at1)[i]};
    }
  }
  return status::ok();
}

} // namespace troupe::planner
