// tensor_parallel: builds each rank's graph from the analysis: sliced weights, rewritten
// Reshape targets and group counts, and the AllReduceSum / AllGather nodes between.
#include "runtime/parallel/tensor_parallel.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_set>

#include "runtime/parallel/tp_analysis.hpp"

namespace troupe {
namespace {

/// Elements [begin, begin + len) of `axis`, copied.
tensor slice_axis(const tensor& t, int64_t axis, int64_t begin, int64_t len) {
  shape dims = t.dims();
  dims[static_cast<size_t>(axis)] = len;
  tensor out = tensor::empty(t.type(), dims);
  const size_t elem = size_of(t.type());
  const auto& full = t.dims();
  const int64_t outer = numel_of(std::span(full).first(static_cast<size_t>(axis)));
  const size_t inner = static_cast<size_t>(numel_of(std::span(full).subspan(static_cast<size_t>(axis) + 1))) * elem;
  const size_t src_row = static_cast<size_t>(full[static_cast<size_t>(axis)]) * inner;
  const size_t dst_row = static_cast<size_t>(len) * inner;
  const auto* src = static_cast<const std::byte*>(t.raw());
  auto* dst = static_cast<std::byte*>(out.raw());
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + static_cast<size_t>(o) * dst_row,
                src + static_cast<size_t>(o) * src_row + static_cast<size_t>(begin) * inner, dst_row);
  return out;
}

/// Writes one rank's graph.
class rank_writer {
public:
  rank_writer(const tp::graph_facts& facts, const tp::analysis& a, int ways, int rank)
    : f_(facts), a_(a), t_(ways), r_(rank) {}

  graph write() {
    const graph& g = f_.g;
    out_.source = g.source;
    out_.opset = g.opset;
    out_.inputs = g.inputs;
    out_.outputs = g.outputs;
    out_.initializers = g.initializers;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      emit(i);
    for (const auto& [name, axis] : a_.output_gather) {
      const std::string split = name + "/tp_slice";
      for (auto& n : out_.nodes) {
        std::replace(n.inputs.begin(), n.inputs.end(), name, split);
        std::replace(n.outputs.begin(), n.outputs.end(), name, split);
      }
      out_.nodes.push_back(gather_node(split, name, axis));
    }
    drop_unused();
    return std::move(out_);
  }

private:
  node gather_node(const std::string& in, const std::string& out, int axis) {
    node n{in + "/all_gather", "AllGather", "troupe", {in}, {out}, {}};
    n.attrs["axis"] = int64_t{axis};
    n.attrs["ranks"] = int64_t{t_};
    return n;
  }

  /// This rank's share of weight `name` along `axis`, as a new initializer.
  std::string sliced_weight(const std::string& name, int64_t axis) {
    const std::string key = fmt::format("{}/tp_axis{}", name, axis);
    if (!out_.initializers.count(key)) {
      const tensor& w = *f_.constant(name);
      const int64_t len = w.dim(axis) / t_;
      out_.initializers[key] = slice_axis(w, axis, len * r_, len);
    }
    return key;
  }

  /// This rank's share of a whole activation along `axis` (a local Slice, no exchange).
  std::string sliced_value(const std::string& name, int64_t axis) {
    const std::string key = fmt::format("{}/tp_axis{}", name, axis);
    if (done_.insert(key).second) {
      const int64_t len = f_.dims(name)->at(static_cast<size_t>(axis)) / t_;
      auto scalar = [&](const std::string& suffix, int64_t v) {
        out_.initializers[key + suffix] = tensor::from_vector<int64_t>({1}, std::vector<int64_t>{v});
        return key + suffix;
      };
      out_.nodes.push_back(node{key + "/slice", "Slice", "", {name, scalar("/starts", len * r_),
                           scalar("/ends", len * (r_ + 1)), scalar("/axes", axis)}, {key}, {}});
    }
    return key;
  }

  std::string gathered(const std::string& name, int axis) {
    const std::string key = name + "/gathered";
    if (done_.insert(key).second)
      out_.nodes.push_back(gather_node(name, key, axis));
    return key;
  }

  void emit(size_t i) {
    node n = f_.g.nodes[i];
    const tp::node_plan& p = a_.nodes[i];
    for (size_t j = 0; j < n.inputs.size(); ++j)
      if (p.gather_axis[j] >= 0)
        n.inputs[j] = gathered(n.inputs[j], p.gather_axis[j]);
    switch (p.kind) {
    case tp::role::replicated: out_.nodes.push_back(std::move(n)); break;
    case tp::role::opening: emit_opening(std::move(n), i); break;
    case tp::role::closing: emit_closing(std::move(n), i); break;
    case tp::role::propagating: emit_propagating(std::move(n), p); break;
    }
  }

  void emit_opening(node n, size_t i) {
    n.inputs[1] = sliced_weight(n.inputs[1], tp::weight_axis(f_, a_, i, 1));
    if (const int bias_axis = tp::weight_axis(f_, a_, i, 2); bias_axis >= 0)
      n.inputs[2] = sliced_weight(n.inputs[2], bias_axis);
    out_.nodes.push_back(std::move(n));
  }

  /// Partial products on every rank, summed once; the bias is added after the sum so that it
  /// counts once.
  void emit_closing(node n, size_t i) {
    const std::string result = n.outputs[0];
    const std::string partial = result + "/tp_partial";
    std::string bias;
    n.inputs[1] = sliced_weight(n.inputs[1], tp::weight_axis(f_, a_, i, 1));
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      const tensor& b = *f_.constant(n.inputs[2]);
      tensor moved = b.clone();
      if (n.op_type == "Conv") { // [C] -> [1, C, 1, ...] to broadcast over the output
        shape d(f_.dims(result)->size(), 1);
        d[1] = b.numel();
        moved = moved.reshaped(d);
      } else { // Gemm: beta * C
        const float beta = n.attr_float("beta", 1.f);
        if (moved.type() == dtype::f32)
          for (auto& v : moved.values<float>())
            v *= beta;
        n.attrs.erase("beta");
      }
      bias = n.inputs[2] + "/tp_bias";
      out_.initializers[bias] = moved;
      n.inputs.resize(2);
    }
    n.outputs[0] = partial;
    const std::string label = n.name;
    out_.nodes.push_back(std::move(n));
    const std::string reduced = bias.empty() ? result : result + "/tp_reduced";
    out_.nodes.push_back(node{label + "/all_reduce", "AllReduceSum", "troupe", {partial}, {reduced}, {}});
    if (!bias.empty())
      out_.nodes.push_back(node{label + "/bias", "Add", "", {reduced, bias}, {result}, {}});
  }

  void emit_propagating(node n, const tp::node_plan& p) {
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      if (p.slice_axis[j] < 0)
        continue;
      n.inputs[j] = f_.constant(n.inputs[j]) ? sliced_weight(n.inputs[j], p.slice_axis[j])
                                             : sliced_value(n.inputs[j], p.slice_axis[j]);
    }
    if (n.op_type == "Conv")
      n.attrs["group"] = n.attr_int("group", 1) / t_;
    if (n.op_type == "Reshape") {
      tensor target = f_.constant(n.inputs[1])->clone();
      auto v = target.values<int64_t>();
      auto& d = v[static_cast<size_t>(p.out_axis)];
      if (d > 0)
        d /= t_;
      const std::string name = n.inputs[1] + "/tp_" + n.name;
      out_.initializers[name] = target;
      n.inputs[1] = name;
    }
    out_.nodes.push_back(std::move(n));
  }

  /// Whole weights every slice replaced, and Constant nodes nobody reads any more, go: a
  /// rank must not hold what it does not use.
  void drop_unused() {
    for (bool changed = true; changed;) {
      std::unordered_set<std::string> used;
      for (const auto& n : out_.nodes)
        used.insert(n.inputs.begin(), n.inputs.end());
      for (const auto& o : out_.outputs)
        used.insert(o.name);
      const size_t before = out_.nodes.size();
      std::erase_if(out_.nodes, [&](const node& n) {
        return n.op_type == "Constant" && !used.count(n.outputs[0]);
      });
      std::erase_if(out_.initializers, [&](const auto& kv) { return !used.count(kv.first); });
      changed = out_.nodes.size() != before;
    }
  }

  const tp::graph_facts& f_;
  const tp::analysis& a_;
  const int t_, r_;
  graph out_;
  std::unordered_set<std::string> done_; // slices and gathers already emitted
};

std::vector<std::string> describe(const graph& g, const tp::analysis& a, int ways) {
  std::vector<std::string> lines = a.replicated_notes;
  for (size_t r = 0; r < a.regions.size(); ++r) {
    if (a.root(static_cast<int>(r)) != static_cast<int>(r))
      continue;
    const auto& reg = a.regions[r];
    std::string line = fmt::format("split {} by output columns/channels into {}", tp::labels(g, reg.openings), ways);
    for (const auto& note : reg.notes)
      line += "; " + note;
    if (!reg.closings.empty())
      line += fmt::format("; closed by {} split by input rows/channels + AllReduceSum each",
                          tp::labels(g, reg.closings));
    lines.push_back(std::move(line));
  }
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (size_t j = 0; j < g.nodes[i].inputs.size(); ++j)
      if (a.nodes[i].gather_axis[j] >= 0)
        lines.push_back(fmt::format("AllGather '{}' (axis {}) before {}", g.nodes[i].inputs[j],
                                    a.nodes[i].gather_axis[j], g.nodes[i].label()));
  for (const auto& [name, axis] : a.output_gather)
    lines.push_back(fmt::format("AllGather graph output '{}' (axis {})", name, axis));
  return lines;
}

} // namespace

expected<tensor_parallel_split> split_tensor_parallel(const graph& g, int ways) {
  if (ways < 1)
    return make_error(errc::invalid_argument, "{}: tensor parallelism needs at least 1 rank, got {}",
                      g.source, ways);
  tensor_parallel_split split;
  if (ways == 1) {
    split.ranks.push_back(g);
    return split;
  }
  auto prep = tp::prepare(g);
  if (!prep)
    return prep.error();
  const tp::graph_facts& facts = (*prep)->facts;
  auto [a, refused] = tp::analyze_splittable(facts, ways);
  split.decisions = std::move(refused);
  for (auto& line : describe(facts.g, a, ways))
    split.decisions.push_back(std::move(line));
  for (int r = 0; r < ways; ++r) {
    graph rank_graph = rank_writer(facts, a, ways, r).write();
    TROUPE_TRY_STATUS(rank_graph.sort_topologically());
    split.ranks.push_back(std::move(rank_graph));
  }
  return split;
}

} // namespace troupe
