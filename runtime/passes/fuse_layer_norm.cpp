// fuse_layer_norm: the exported decomposition of LayerNorm becomes one LayerNormalization.
#include <cmath>

#include "runtime/passes/graph_uses.hpp"
#include "runtime/passes/passes.hpp"

namespace troupe {
namespace {

/// The float scalar held by an initializer or a Constant node's output, if `name` is one.
std::optional<float> scalar_value(const graph& g, const graph_uses& uses, const std::string& name) {
  const tensor* t = nullptr;
  if (auto it = g.initializers.find(name); it != g.initializers.end())
    t = &it->second;
  else if (const node* c = uses.producer_of(g, name); c && c->op_type == "Constant")
    t = c->attr_tensor("value");
  if (!t || t->type() != dtype::f32 || t->numel() != 1)
    return std::nullopt;
  return t->data<float>()[0];
}

bool reduces_last_axis(const node& n) {
  return n.op_type == "ReduceMean" && n.domain.empty() && n.inputs.size() == 1 &&
         n.attr_ints("axes") == std::vector<int64_t>{-1} && n.attr_int("keepdims", 1) == 1;
}

/// The other input of a binary node, given one of them.
const std::string& other_input(const node& n, const std::string& one) {
  return n.inputs[0] == one ? n.inputs[1] : n.inputs[0];
}

/// Readers of `value`, in graph order.
std::vector<node*> readers_of(graph& g, const std::string& value) {
  std::vector<node*> out;
  for (auto& n : g.nodes)
    for (const auto& in : n.inputs)
      if (in == value) {
        out.push_back(&n);
        break;
      }
  return out;
}

node* sole(graph& g, const graph_uses& uses, const std::string& value, const char* op_type) {
  if (!uses.single_use(value))
    return nullptr;
  auto r = readers_of(g, value);
  return r.size() == 1 && r[0]->op_type == op_type && r[0]->domain.empty() ? r[0] : nullptr;
}

} // namespace

size_t fuse_layer_norm(graph& g) {
  size_t fused = 0;
  for (bool changed = true; changed;) {
    changed = false;
    graph_uses uses(g);
    for (auto& mean : g.nodes) {
      // x -> ReduceMean -> Sub(x, mean) -> {Pow(., 2) -> ReduceMean -> Add(eps) -> Sqrt, Div}
      if (!reduces_last_axis(mean) || uses.graph_outputs.count(mean.outputs[0]))
        continue;
      const std::string x = mean.inputs[0];
      node* sub = sole(g, uses, mean.outputs[0], "Sub");
      if (!sub || sub->inputs[0] != x || sub->inputs[1] != mean.outputs[0])
        continue;
      auto centered = readers_of(g, sub->outputs[0]);
      if (centered.size() != 2 || uses.readers.at(sub->outputs[0]) != 2 ||
          uses.graph_outputs.count(sub->outputs[0]))
        continue;
      node* pow = centered[0]->op_type == "Pow" ? centered[0] : centered[1];
      node* div = centered[0]->op_type == "Div" ? centered[0] : centered[1];
      if (pow->op_type != "Pow" || div->op_type != "Div" || pow->inputs[0] != sub->outputs[0] ||
          div->inputs[0] != sub->outputs[0] || scalar_value(g, uses, pow->inputs[1]) != 2.f)
        continue;
      node* var = sole(g, uses, pow->outputs[0], "ReduceMean");
      if (!var || !reduces_last_axis(*var))
        continue;
      node* add_eps = sole(g, uses, var->outputs[0], "Add");
      if (!add_eps)
        continue;
      auto eps = scalar_value(g, uses, other_input(*add_eps, var->outputs[0]));
      node* sqrt = eps ? sole(g, uses, add_eps->outputs[0], "Sqrt") : nullptr;
      if (!sqrt || div->inputs[1] != sqrt->outputs[0] || !uses.single_use(sqrt->outputs[0]))
        continue;

      // Optional affine tail: Mul(., gamma) -> Add(., beta) with initializers.
      std::string scale, bias;
      node* tail = div;
      if (node* mul = sole(g, uses, div->outputs[0], "Mul")) {
        const std::string& gamma = other_input(*mul, div->outputs[0]);
        if (g.initializers.count(gamma)) {
          scale = gamma;
          tail = mul;
          if (node* add = sole(g, uses, mul->outputs[0], "Add")) {
            const std::string& beta = other_input(*add, mul->outputs[0]);
            if (g.initializers.count(beta)) {
              bias = beta;
              tail = add;
            }
          }
        }
      }
      if (scale.empty()) {
        // LayerNormalization needs a scale: ones over the last axis are not known without
        // shapes here, so only the affine form (what exporters emit) is fused.
        continue;
      }
      node ln;
      ln.op_type = "LayerNormalization";
      ln.name = (mean.name.empty() ? mean.outputs[0] : mean.name) + "/fused";
      ln.inputs = {x, scale, bias};
      if (bias.empty())
        ln.inputs.resize(2);
      ln.outputs = {tail->outputs[0]};
      ln.attrs["axis"] = int64_t{-1};
      ln.attrs["epsilon"] = *eps;
      const std::vector<const node*> removed{&mean, sub, pow, var, add_eps, sqrt, div};
      const node* tail_ptr = tail;
      std::vector<node> kept;
      for (auto& n : g.nodes) {
        if (&n == tail_ptr) {
          kept.push_back(ln);
          continue;
        }
        bool drop = false;
        for (const node* r : removed)
          drop = drop || &n == r;
        if (tail_ptr != div && &n != tail_ptr) {
          // The Mul between Div and the tail Add goes too.
          for (const auto& in : n.inputs)
            drop = drop || (in == div->outputs[0] && n.op_type == "Mul");
        }
        if (!drop)
          kept.push_back(std::move(n));
      }
      g.nodes = std::move(kept);
      ++fused;
      changed = true;
      break;
    }
  }
  return fused;
}

} // namespace troupe
