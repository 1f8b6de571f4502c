// tp_analysis: forward dataflow over the sorted graph: a value is whole or sliced along one
// axis; weight ops open and close sliced regions, per-slice ops carry them.
#include "runtime/parallel/tp_analysis.hpp"

#include <algorithm>
#include <unordered_set>

#include "kernels/cpu/cpu_context.hpp"
#include "runtime/passes/passes.hpp"
#include "runtime/plan.hpp"

namespace troupe::tp {
namespace {

const std::unordered_set<std::string> unary_ops = {
    "Relu", "Sigmoid", "Tanh", "Erf", "Gelu", "LeakyRelu", "HardSigmoid", "HardSwish", "Elu",
    "Selu", "Softplus", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Identity", "Dropout",
    "Cast", "Clip"};
const std::unordered_set<std::string> binary_ops = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"};
const std::unordered_set<std::string> pool_ops = {"MaxPool", "AveragePool", "GlobalAveragePool",
                                                   "GlobalMaxPool"};

int64_t product(const shape& d, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i)
    p *= d[i];
  return p;
}

class analyzer {
public:
  analyzer(const graph_facts& f, int ways, const std::set<size_t>& forbidden)
    : f_(f), t_(ways), forbidden_(forbidden) {}

  analysis run() {
    const auto& g = f_.g;
    a_.nodes.resize(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i)
      visit(i);
    for (const auto& out : g.outputs) {
      auto it = axis_.find(out.name);
      if (it != axis_.end())
        a_.output_gather[out.name] = it->second;
    }
    return std::move(a_);
  }

private:
  int axis_of(const std::string& v) const {
    auto it = axis_.find(v);
    return it == axis_.end() ? -1 : it->second;
  }
  int64_t rank_of(const std::string& v) const {
    const shape* d = f_.dims(v);
    return d ? static_cast<int64_t>(d->size()) : -1;
  }
  const tensor* weight(const node& n, size_t i) const {
    return i < n.inputs.size() && !n.inputs[i].empty() ? f_.constant(n.inputs[i]) : nullptr;
  }
  int new_region(size_t opening) {
    const int id = static_cast<int>(a_.regions.size());
    a_.regions.emplace_back();
    a_.region_root.push_back(id);
    a_.regions.back().openings.push_back(opening);
    return id;
  }
  int unite(int x, int y) {
    x = a_.root(x);
    y = a_.root(y);
    if (x == y)
      return x;
    auto& rx = a_.regions[static_cast<size_t>(x)];
    auto& ry = a_.regions[static_cast<size_t>(y)];
    rx.openings.insert(rx.openings.end(), ry.openings.begin(), ry.openings.end());
    rx.closings.insert(rx.closings.end(), ry.closings.begin(), ry.closings.end());
    rx.notes.insert(rx.notes.end(), ry.notes.begin(), ry.notes.end());
    if (rx.bad.empty())
      rx.bad = ry.bad;
    a_.region_root[static_cast<size_t>(y)] = x;
    return x;
  }
  void mark_bad(int region, std::string why) {
    auto& r = a_.regions[static_cast<size_t>(a_.root(region))];
    if (r.bad.empty())
      r.bad = std::move(why);
  }

  void visit(size_t i) {
    const node& n = f_.g.nodes[i];
    node_plan& p = a_.nodes[i];
    p.gather_axis.assign(n.inputs.size(), -1);
    p.slice_axis.assign(n.inputs.size(), -1);
    bool any_split = false;
    for (const auto& in : n.inputs)
      any_split = any_split || (!in.empty() && axis_of(in) >= 0);
    if (!any_split) {
      try_open(i);
      return;
    }
    if (try_close(i) || try_propagate(i))
      return;
    // Anything else reads whole values: gather its sliced inputs.
    p = node_plan{};
    p.gather_axis.assign(n.inputs.size(), -1);
    p.slice_axis.assign(n.inputs.size(), -1);
    for (size_t j = 0; j < n.inputs.size(); ++j)
      if (!n.inputs[j].empty())
        p.gather_axis[j] = axis_of(n.inputs[j]);
  }

  void set_output(size_t i, int axis, int region) {
    const node& n = f_.g.nodes[i];
    a_.nodes[i].out_axis = axis;
    a_.nodes[i].region = region;
    axis_[n.outputs[0]] = axis;
    producer_region_[n.outputs[0]] = region;
  }

  /// Columns (MatMul/Gemm) or output channels (Conv) of a weight op reading a whole input.
  void try_open(size_t i) {
    const node& n = f_.g.nodes[i];
    const tensor* w = weight(n, 1);
    if (!w || f_.constant(n.inputs[0]) || n.outputs.size() != 1)
      return;
    int64_t cols = 0;
    int axis = 0;
    if (n.op_type == "MatMul" && w->rank() == 2) {
      cols = w->dim(1);
      axis = static_cast<int>(rank_of(n.outputs[0])) - 1;
    } else if (n.op_type == "Gemm" && w->rank() == 2 && n.attr_int("transA", 0) == 0) {
      cols = n.attr_int("transB", 0) ? w->dim(0) : w->dim(1);
      axis = 1;
      if (const tensor* c = weight(n, 2)) {
        const bool per_column = c->rank() >= 1 && c->dim(-1) == cols && c->numel() == cols;
        if (!per_column && c->numel() != 1)
          return;
      } else if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        return;
      }
    } else if (n.op_type == "Conv" && n.attr_int("group", 1) == 1 && w->rank() >= 3) {
      cols = w->dim(0);
      axis = 1;
      if (n.inputs.size() > 2 && !n.inputs[2].empty() && !weight(n, 2))
        return;
    } else {
      return;
    }
    if (axis < 0)
      return;
    const std::string what = n.op_type == "Conv" ? "output channels" : "columns";
    if (forbidden_.count(i))
      return;
    if (cols % t_ != 0) {
      a_.replicated_notes.push_back(fmt::format("replicated {}: {} {} do not divide by {}",
                                                n.label(), cols, what, t_));
      return;
    }
    a_.nodes[i].kind = role::opening;
    set_output(i, axis, new_region(i));
  }

  /// Rows (MatMul/Gemm) or input channels (Conv) of a weight op reading a sliced input.
  bool try_close(size_t i) {
    const node& n = f_.g.nodes[i];
    const tensor* w = weight(n, 1);
    const int a = axis_of(n.inputs[0]);
    if (!w || a < 0 || n.outputs.size() != 1)
      return false;
    for (size_t j = 1; j < n.inputs.size(); ++j)
      if (!n.inputs[j].empty() && (axis_of(n.inputs[j]) >= 0 || !weight(n, j)))
        return false;
    bool ok = false;
    if (n.op_type == "MatMul" && w->rank() == 2)
      ok = a == rank_of(n.inputs[0]) - 1;
    else if (n.op_type == "Gemm" && w->rank() == 2 && n.attr_int("transA", 0) == 0)
      ok = a == 1;
    else if (n.op_type == "Conv" && n.attr_int("group", 1) == 1 && w->rank() >= 3)
      ok = a == 1;
    if (!ok)
      return false;
    auto& p = a_.nodes[i];
    p.kind = role::closing;
    p.region = a_.root(region_of(n.inputs[0]));
    a_.regions[static_cast<size_t>(p.region)].closings.push_back(i);
    return true;
  }

  int region_of(const std::string& v) const {
    auto it = producer_region_.find(v);
    return it == producer_region_.end() ? -1 : it->second;
  }

  /// Per-slice work: the output is sliced along the returned axis, or -1 when the node does
  /// not work on slices.
  bool try_propagate(size_t i) {
    const node& n = f_.g.nodes[i];
    auto& p = a_.nodes[i];
    size_t named_outputs = 0;
    for (const auto& o : n.outputs)
      named_outputs += !o.empty();
    if (named_outputs != 1 || n.outputs[0].empty())
      return false;
    const shape* out = f_.dims(n.outputs[0]);
    if (!out)
      return false;
    const int64_t rank = static_cast<int64_t>(out->size());
    const int a0 = axis_of(n.inputs[0]);
    int axis = -1;
    const std::string& op = n.op_type;

    if (unary_ops.count(op)) {
      for (size_t j = 1; j < n.inputs.size(); ++j) {
        const tensor* c = weight(n, j);
        if (!n.inputs[j].empty() && (!c || c->numel() != 1))
          return false;
      }
      axis = a0;
    } else if (binary_ops.count(op) && n.inputs.size() == 2) {
      if (!propagate_binary(n, p, *out, axis))
        return false;
    } else if (op == "BatchNormalization") {
      if (a0 != 1)
        return false;
      for (size_t j = 1; j < n.inputs.size(); ++j) {
        if (!weight(n, j))
          return false;
        p.slice_axis[j] = 0;
      }
      axis = 1;
    } else if (pool_ops.count(op)) {
      if (a0 != 1)
        return false;
      axis = 1;
    } else if (op == "Conv") {
      // Grouped/depthwise conv on sliced channels: each rank runs group/T of the groups.
      const int64_t groups = n.attr_int("group", 1);
      const tensor* w = weight(n, 1);
      if (a0 != 1 || groups <= 1 || !w || groups % t_ != 0)
        return false;
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        if (!weight(n, 2))
          return false;
        p.slice_axis[2] = 0;
      }
      p.slice_axis[1] = 0;
      axis = 1;
    } else if (op == "Transpose") {
      const auto perm = n.attr_ints("perm");
      for (size_t k = 0; k < perm.size(); ++k)
        if (perm[k] == a0)
          axis = static_cast<int>(k);
    } else if (op == "Reshape") {
      axis = propagate_reshape(n, *out);
    } else if (op == "Flatten") {
      const int64_t in_rank = rank_of(n.inputs[0]);
      int64_t f = n.attr_int("axis", 1);
      if (f < 0)
        f += in_rank;
      axis = f == a0 ? 1 : -1;
    } else if (op == "Softmax" || op == "LogSoftmax") {
      int64_t s = n.attr_int("axis", f_.g.opset >= 13 ? -1 : 1);
      if (s < 0)
        s += rank;
      const bool ok = f_.g.opset >= 13 ? s != a0 : a0 < s;
      axis = ok ? a0 : -1;
    } else if (op == "MatMul" && n.inputs.size() == 2) {
      axis = propagate_matmul(n, rank);
    }
    if (axis < 0 || axis >= rank)
      return false;
    if ((*out)[static_cast<size_t>(axis)] % t_ != 0)
      return false;
    int region = -1;
    for (const auto& in : n.inputs)
      if (!in.empty() && axis_of(in) >= 0)
        region = region < 0 ? region_of(in) : unite(region, region_of(in));
    region = a_.root(region);
    p.kind = role::propagating;
    set_output(i, axis, region);
    if (op == "Conv")
      a_.regions[static_cast<size_t>(region)].notes.push_back(
          fmt::format("{} runs {} of its {} groups per rank", n.label(), n.attr_int("group", 1) / t_,
                      n.attr_int("group", 1)));
    return true;
  }

  bool propagate_binary(const node& n, node_plan& p, const shape& out, int& axis) {
    const int64_t rank = static_cast<int64_t>(out.size());
    axis = -1;
    for (const auto& in : n.inputs) {
      const int a = axis_of(in);
      if (a < 0)
        continue;
      const int aligned = static_cast<int>(a + rank - rank_of(in));
      if (axis >= 0 && aligned != axis)
        return false;
      axis = aligned;
    }
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      const auto& in = n.inputs[j];
      if (axis_of(in) >= 0)
        continue;
      const shape* d = f_.dims(in);
      if (!d)
        return false;
      const int64_t k = axis - (rank - static_cast<int64_t>(d->size()));
      if (k < 0 || (*d)[static_cast<size_t>(k)] == 1)
        continue; // broadcast along the sliced axis: the same on every rank
      if ((*d)[static_cast<size_t>(k)] != out[static_cast<size_t>(axis)])
        return false;
      p.slice_axis[j] = static_cast<int>(k); // a weight is sliced, a whole value cut locally
    }
    return true;
  }

  /// A Reshape keeps a slice when the sliced axis and everything after it map onto output
  /// dims whose first is divisible: [N,S,D] sliced on D -> [N,S,H,d] sliced on H (heads),
  /// and back.
  int propagate_reshape(const node& n, const shape& out) {
    const int a = axis_of(n.inputs[0]);
    const shape* in = f_.dims(n.inputs[0]);
    const tensor* target = weight(n, 1);
    if (!in || !target || target->type() != dtype::i64)
      return -1;
    const int64_t before = product(*in, 0, static_cast<size_t>(a));
    for (size_t b = 0; b < out.size(); ++b) {
      if (product(out, 0, b) != before || out[b] == 1)
        continue;
      if (out[b] % t_ != 0) {
        mark_bad(region_of(n.inputs[0]),
                 fmt::format("{}: {} heads/groups do not divide by {}", n.label(), out[b], t_));
        return -1;
      }
      const auto values = target->values<int64_t>();
      for (size_t k = 0; k < values.size(); ++k)
        if (values[k] == 0 && (static_cast<int64_t>(k) == a) != (k == b))
          return -1; // 0 copies an input dim: the sliced one must land on the sliced output dim
      if (out[b] != (*in)[static_cast<size_t>(a)])
        a_.regions[static_cast<size_t>(a_.root(region_of(n.inputs[0])))].notes.push_back(
            fmt::format("{}: output dim {} ({}) -> {} per rank", n.label(), b, out[b], out[b] / t_));
      return static_cast<int>(b);
    }
    return -1;
  }

  /// Batched products (attention): sliced along the same batch axis (heads) on both sides, or
  /// on one side where the other broadcasts.
  int propagate_matmul(const node& n, int64_t rank) {
    const int64_t r0 = rank_of(n.inputs[0]), r1 = rank_of(n.inputs[1]);
    const int a0 = axis_of(n.inputs[0]), a1 = axis_of(n.inputs[1]);
    if (r0 < 2 || r1 < 2)
      return -1;
    const int al0 = a0 < 0 ? -1 : static_cast<int>(a0 + rank - r0);
    const int al1 = a1 < 0 ? -1 : static_cast<int>(a1 + rank - r1);
    if (a0 >= 0 && a1 >= 0)
      return a0 < r0 - 2 && a1 < r1 - 2 && al0 == al1 ? al0 : -1;
    if (a0 >= 0 && a0 == r0 - 2)
      return al0; // rows of A
    if (a1 >= 0 && a1 == r1 - 1)
      return al1; // columns of B
    const int al = a0 >= 0 ? al0 : al1;
    if (al >= rank - 2)
      return -1;
    const std::string& other = a0 >= 0 ? n.inputs[1] : n.inputs[0];
    const shape* d = f_.dims(other);
    const int64_t k = al - (rank - static_cast<int64_t>(d ? d->size() : 0));
    if (!d || (k >= 0 && (*d)[static_cast<size_t>(k)] != 1))
      return -1;
    return al;
  }

  const graph_facts& f_;
  const int t_;
  const std::set<size_t>& forbidden_;
  analysis a_;
  std::unordered_map<std::string, int> axis_;            // sliced values -> axis
  std::unordered_map<std::string, int> producer_region_; // sliced values -> region
};

} // namespace

analysis analyze(const graph_facts& facts, int ways, const std::set<size_t>& forbidden) {
  return analyzer(facts, ways, forbidden).run();
}

expected<std::unique_ptr<prepared_graph>> prepare(const graph& g) {
  // Split after the passes that change which weights exist (BatchNorm folded into the conv
  // weights, LayerNorm fused) and before the conv epilogue fusion: a folded conv splits as
  // one weight op and its bias is added once after the AllReduceSum, while each rank graph
  // still fuses its own conv + add + activation when its session optimizes it (a fused conv
  // could not take an AllReduceSum between its convolution and its epilogue).
  auto out = std::make_unique<prepared_graph>();
  out->prepared = g;
  graph& p = out->prepared;
  remove_identities(p);
  fold_batchnorm_into_conv(p);
  fuse_layer_norm(p);
  TROUPE_TRY_STATUS(p.sort_topologically());
  // 2, not 1: a batch-sized dim must not look like a broadcast.
  const auto dims = dims_with_dynamic_as(p.inputs, 2);
  cpu::cpu_context cpu{cpu::cpu_limits{1, {}}};
  auto probe = plan::compile(p, dims, cpu, plan_options{false});
  if (!probe)
    return probe.error().with_context("tensor-parallel split");
  out->facts.shapes = (*probe)->value_shapes();
  for (const auto& [name, t] : p.initializers)
    out->facts.constants[name] = &t;
  for (const auto& n : p.nodes)
    if (n.op_type == "Constant" && n.outputs.size() == 1)
      if (const tensor* t = n.attr_tensor("value"))
        out->facts.constants[n.outputs[0]] = t;
  return out;
}

final_analysis analyze_splittable(const graph_facts& facts, int ways) {
  // A region that cannot be split (heads that do not divide) is replicated: forbid its
  // openings and analyse again until every region splits.
  std::set<size_t> forbidden;
  final_analysis out;
  for (;;) {
    out.result = analyze(facts, ways, forbidden);
    bool again = false;
    for (size_t r = 0; r < out.result.regions.size(); ++r) {
      const auto& reg = out.result.regions[r];
      if (out.result.root(static_cast<int>(r)) != static_cast<int>(r) || reg.bad.empty())
        continue;
      forbidden.insert(reg.openings.begin(), reg.openings.end());
      out.refused.push_back(fmt::format("replicated {}: {}", labels(facts.g, reg.openings), reg.bad));
      again = true;
    }
    if (!again)
      return out;
  }
}

std::string labels(const graph& g, const std::vector<size_t>& nodes) {
  std::string out;
  for (size_t i : nodes)
    out += (out.empty() ? "" : ", ") + g.nodes[i].name + " (" + g.nodes[i].op_type + ")";
  return out;
}

int weight_axis(const graph_facts& facts, const analysis& a, size_t i, size_t j) {
  const node& n = facts.g.nodes[i];
  const node_plan& p = a.nodes[i];
  if (j >= n.inputs.size() || n.inputs[j].empty() || !facts.constant(n.inputs[j]))
    return -1;
  const bool trans_b = n.op_type == "Gemm" && n.attr_int("transB", 0) != 0;
  switch (p.kind) {
  case role::opening: // output columns/channels: the weight's and the bias's
    if (j == 1)
      return n.op_type == "Conv" ? 0 : n.op_type == "Gemm" && trans_b ? 0 : 1;
    if (j == 2 && n.op_type == "Conv")
      return 0;
    if (j == 2 && n.op_type == "Gemm" && facts.constant(n.inputs[2])->numel() > 1)
      return static_cast<int>(facts.constant(n.inputs[2])->rank()) - 1;
    return -1;
  case role::closing: // input rows/channels; the bias is added whole after the sum
    if (j == 1)
      return n.op_type == "Conv" ? 1 : trans_b ? 1 : 0;
    return -1;
  case role::propagating:
    return p.slice_axis[j];
  case role::replicated: return -1;
  }
  return -1;
}

} // namespace troupe::tp
