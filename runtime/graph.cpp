// graph: attribute accessors and topological ordering.
#include "runtime/graph.hpp"

#include <unordered_set>

namespace troupe {

int64_t node::attr_int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end())
    return fallback;
  if (auto* v = std::get_if<int64_t>(&it->second))
    return *v;
  if (auto* f = std::get_if<float>(&it->second))
    return static_cast<int64_t>(*f);
  return fallback;
}

float node::attr_float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end())
    return fallback;
  if (auto* v = std::get_if<float>(&it->second))
    return *v;
  if (auto* i = std::get_if<int64_t>(&it->second))
    return static_cast<float>(*i);
  return fallback;
}

std::vector<shape> dims_with_dynamic_as(const std::vector<value_info>& inputs, int64_t size) {
  std::vector<shape> dims;
  dims.reserve(inputs.size());
  for (const auto& in : inputs) {
    shape d = in.dims;
    for (auto& x : d)
      if (x < 0)
        x = size;
    dims.push_back(std::move(d));
  }
  return dims;
}

std::string node::attr_string(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end())
    return fallback;
  if (auto* v = std::get_if<std::string>(&it->second))
    return *v;
  return fallback;
}

std::vector<int64_t> node::attr_ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end())
    return fallback;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second))
    return *v;
  if (auto* i = std::get_if<int64_t>(&it->second))
    return {*i};
  return fallback;
}

std::vector<float> node::attr_floats(const std::string& key, std::vector<float> fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end())
    return fallback;
  if (auto* v = std::get_if<std::vector<float>>(&it->second))
    return *v;
  return fallback;
}

const tensor* node::attr_tensor(const std::string& key) const {
  auto it = attrs.find(key);
  if (it == attrs.end())
    return nullptr;
  return std::get_if<tensor>(&it->second);
}

const std::string& node::input(size_t i) const {
  static const std::string none;
  return i < inputs.size() ? inputs[i] : none;
}

std::string node::label() const {
  return "node '" + (name.empty() ? (outputs.empty() ? std::string{"?"} : outputs[0]) : name) +
         "' (" + op_type + ")";
}

status graph::sort_topologically() {
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& out : nodes[i].outputs)
      if (!out.empty())
        producer[out] = i;
  std::unordered_set<std::string> available;
  for (const auto& in : inputs)
    available.insert(in.name);
  for (const auto& [name, _] : initializers)
    available.insert(name);

  // Depth-first post-order; state 1 = on the stack (a cycle when seen again), 2 = done.
  std::vector<int> state(nodes.size(), 0);
  std::vector<size_t> order;
  order.reserve(nodes.size());
  std::vector<std::pair<size_t, size_t>> stack; // (node, next input to visit)
  for (size_t root = 0; root < nodes.size(); ++root) {
    if (state[root])
      continue;
    stack.push_back({root, 0});
    state[root] = 1;
    while (!stack.empty()) {
      auto& [n, next] = stack.back();
      if (next < nodes[n].inputs.size()) {
        const std::string& in = nodes[n].inputs[next++];
        if (in.empty() || available.count(in))
          continue;
        auto it = producer.find(in);
        if (it == producer.end())
          return make_error(errc::invalid_argument, "{}: {}: input '{}' is produced by no node",
                            source, nodes[n].label(), in);
        if (state[it->second] == 1)
          return make_error(errc::invalid_argument, "{}: {} is part of a cycle", source,
                            nodes[n].label());
        if (state[it->second] == 0) {
          state[it->second] = 1;
          stack.push_back({it->second, 0});
        }
        continue;
      }
      state[n] = 2;
      order.push_back(n);
      stack.pop_back();
    }
  }
  std::vector<node> sorted;
  sorted.reserve(nodes.size());
  for (size_t i : order)
    sorted.push_back(std::move(nodes[i]));
  nodes = std::move(sorted);
  return status::ok();
}

} // namespace troupe
