// cost: multiply-add counting per operator.
#include "runtime/cost.hpp"

namespace troupe {

double node_flops(const node& n, const shape_map& shapes) {
  auto dims_of = [&](const std::string& name) -> const shape* {
    auto it = shapes.find(name);
    return it == shapes.end() ? nullptr : &it->second;
  };
  if (n.outputs.empty())
    return 0;
  const shape* out = dims_of(n.outputs[0]);
  if (!out)
    return 0;
  if (n.op_type == "Conv" || n.op_type == "TroupeFusedConv") {
    const shape* w = dims_of(n.input(1));
    if (w && !w->empty() && (*w)[0] > 0)
      return 2.0 * static_cast<double>(numel_of(*out)) *
             static_cast<double>(numel_of(*w) / (*w)[0]);
  } else if (n.op_type == "Gemm") {
    const shape* a = dims_of(n.input(0));
    if (a && a->size() == 2)
      return 2.0 * static_cast<double>(numel_of(*out)) *
             static_cast<double>(n.attr_int("transA", 0) ? (*a)[0] : (*a)[1]);
  } else if (n.op_type == "MatMul") {
    const shape* a = dims_of(n.input(0));
    if (a && !a->empty())
      return 2.0 * static_cast<double>(numel_of(*out)) * static_cast<double>(a->back());
  }
  return 0;
}

double count_flops(const graph& g, const shape_map& shapes) {
  double flops = 0;
  for (const auto& n : g.nodes)
    flops += node_flops(n, shapes);
  return flops;
}

} // namespace troupe
