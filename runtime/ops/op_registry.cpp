// op_registry: the table of supported operators.
#include "runtime/ops/op_registry.hpp"

#include <algorithm>

namespace troupe {

size_t value_desc::buffer_bytes() const {
  if (!layout.is_plain())
    return layout.blocked->get_size();
  return static_cast<size_t>(numel_of(dims)) * size_of(type);
}

void op_registry::add(op_def def) {
  std::string key = def.type;
  defs_.insert_or_assign(std::move(key), std::move(def));
}

const op_def* op_registry::find(std::string_view type) const {
  auto it = defs_.find(std::string{type});
  return it == defs_.end() ? nullptr : &it->second;
}

std::vector<std::string> op_registry::types() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : defs_)
    out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

const op_registry& cpu_registry() {
  static const op_registry registry = [] {
    op_registry r;
    register_conv_pool_ops(r);
    register_matmul_ops(r);
    register_normalize_ops(r);
    register_elementwise_ops(r);
    register_shape_ops(r);
    register_collective_ops(r);
    return r;
  }();
  return registry;
}

status bad_input(const node& n, std::string_view message) {
  return make_error(errc::invalid_argument, "{}: {}", n.label(), message);
}

} // namespace troupe
