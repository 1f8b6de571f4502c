// fuse_conv: Conv [+ Add] [+ activation] -> TroupeFusedConv, run as one oneDNN primitive.
#include "runtime/passes/graph_uses.hpp"
#include "runtime/passes/passes.hpp"

namespace troupe {
namespace {

bool is_conv(const node& n) {
  return n.domain.empty() && n.op_type == "Conv";
}

/// Copies a scalar float initializer (Clip's min/max inputs), if that is what `name` is.
std::optional<float> scalar_constant(const graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end() || it->second.type() != dtype::f32 || it->second.numel() != 1)
    return std::nullopt;
  return it->second.data<float>()[0];
}

/// Moves an activation node's settings onto `fused`; false when it cannot be fused.
bool absorb_activation(const graph& g, const node& act, node& fused) {
  if (!act.domain.empty() || act.outputs.size() != 1)
    return false;
  if (act.op_type == "Relu" || act.op_type == "Sigmoid") {
    fused.attrs["activation"] = act.op_type;
    return true;
  }
  if (act.op_type == "LeakyRelu") {
    fused.attrs["activation"] = std::string{"LeakyRelu"};
    fused.attrs["alpha"] = act.attr_float("alpha", 0.01f);
    return true;
  }
  if (act.op_type == "Clip") {
    float lo = act.attr_float("min", std::numeric_limits<float>::lowest());
    float hi = act.attr_float("max", std::numeric_limits<float>::max());
    if (act.inputs.size() > 1 && !act.inputs[1].empty()) {
      auto v = scalar_constant(g, act.inputs[1]);
      if (!v)
        return false;
      lo = *v;
    }
    if (act.inputs.size() > 2 && !act.inputs[2].empty()) {
      auto v = scalar_constant(g, act.inputs[2]);
      if (!v)
        return false;
      hi = *v;
    }
    fused.attrs["activation"] = std::string{"Clip"};
    fused.attrs["min"] = lo;
    fused.attrs["max"] = hi;
    return true;
  }
  return false;
}

node make_fused(const node& conv) {
  node fused = conv;
  fused.op_type = "TroupeFusedConv";
  fused.domain = "troupe";
  fused.inputs.resize(3);
  fused.attrs["activation"] = std::string{};
  return fused;
}

/// The single node reading `value`, when there is exactly one.
node* sole_reader(graph& g, const graph_uses& uses, const std::string& value) {
  if (!uses.single_use(value))
    return nullptr;
  for (auto& n : g.nodes)
    for (const auto& in : n.inputs)
      if (in == value)
        return &n;
  return nullptr;
}

} // namespace

size_t fuse_conv_epilogues(graph& g, const shape_map& shapes) {
  size_t fused_away = 0;
  // Each rewrite leaves a consistent graph; repeat until nothing changes.
  for (bool changed = true; changed;) {
    changed = false;
    graph_uses uses(g);
    for (size_t i = 0; i < g.nodes.size() && !changed; ++i) {
      if (!is_conv(g.nodes[i]) || g.nodes[i].outputs.size() != 1)
        continue;
      const std::string conv_out = g.nodes[i].outputs[0];
      node* next = sole_reader(g, uses, conv_out);
      if (!next)
        continue;
      node fused = make_fused(g.nodes[i]);
      node* tail = nullptr; // last node absorbed; the fused node takes its place
      if (next->op_type == "Add" && next->domain.empty() && next->inputs.size() == 2) {
        const std::string& other = next->inputs[0] == conv_out ? next->inputs[1] : next->inputs[0];
        auto a = shapes.find(other), c = shapes.find(conv_out);
        if (other == conv_out || a == shapes.end() || c == shapes.end() || a->second != c->second)
          continue;
        fused.inputs.push_back(other);
        tail = next;
        if (node* act = sole_reader(g, uses, next->outputs[0]); act && absorb_activation(g, *act, fused))
          tail = act;
      } else if (absorb_activation(g, *next, fused)) {
        tail = next;
      } else {
        continue;
      }
      fused.outputs = {tail->outputs[0]};
      const size_t absorbed = tail == next ? 1 : 2;
      // Place the fused node where the tail was: every input (the summand too) exists there.
      const node* conv_ptr = &g.nodes[i];
      const node* add_ptr = next;
      *tail = std::move(fused);
      std::vector<node> kept;
      for (auto& n : g.nodes)
        if (&n != conv_ptr && (&n != add_ptr || add_ptr == tail))
          kept.push_back(std::move(n));
      g.nodes = std::move(kept);
      fused_away += absorbed;
      changed = true;
    }
  }
  return fused_away;
}

} // namespace troupe
