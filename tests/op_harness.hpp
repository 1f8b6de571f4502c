// op_harness: builds and runs one operator on concrete tensors, for operator unit tests.
#pragma once

#include <vector>

#include "runtime/ops/op_registry.hpp"

namespace troupe::testing {

/// Runs `n` on `inputs` (an undefined tensor marks an absent optional input) with plain
/// layouts. When `inputs_constant` is true the builder sees the values (as when folding).
inline expected<std::vector<tensor>> run_op(const node& n, const std::vector<tensor>& inputs,
                                            bool inputs_constant = true, int64_t opset = 17) {
  const op_def* def = cpu_registry().find(n.op_type);
  if (!def)
    return make_error(errc::unsupported, "no operator {}", n.op_type);
  static cpu::cpu_context cpu;
  std::vector<value_desc> descs;
  for (const auto& t : inputs) {
    value_desc d;
    if (t.defined()) {
      d.type = t.type();
      d.dims = t.dims();
      if (inputs_constant)
        d.constant = &t;
    }
    descs.push_back(d);
  }
  build_context bctx{cpu, opset, false};
  auto built = def->build(n, descs, bctx);
  if (!built)
    return built.error();
  std::vector<tensor> outs;
  if (built->alias_input >= 0) {
    outs.push_back(inputs[static_cast<size_t>(built->alias_input)].reshaped(built->outputs[0].dims));
    return outs;
  }
  for (const auto& o : built->outputs)
    outs.push_back(tensor::empty(o.type, o.dims));
  exec_context ectx{cpu};
  auto st = built->kernel->run(ectx, inputs, outs);
  if (!st.is_ok())
    return st;
  return outs;
}

/// A node with the given type, inputs named in0.., outputs out0.., and attributes.
inline node make_node(std::string op_type, size_t inputs, size_t outputs,
                      std::map<std::string, attribute> attrs = {}) {
  node n;
  n.op_type = std::move(op_type);
  n.name = n.op_type + "_test";
  for (size_t i = 0; i < inputs; ++i)
    n.inputs.push_back("in" + std::to_string(i));
  for (size_t i = 0; i < outputs; ++i)
    n.outputs.push_back("out" + std::to_string(i));
  n.attrs = std::move(attrs);
  return n;
}

} // namespace troupe::testing
