// graph: troupe's graph IR (nodes, attributes, initializers, typed inputs and outputs).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "kernels/tensor.hpp"

namespace troupe {

using attribute = std::variant<int64_t, float, std::string, std::vector<int64_t>,
                               std::vector<float>, std::vector<std::string>, tensor>;

/// One operator application. Inputs and outputs are value names; "" is an absent optional.
struct node {
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<std::string, attribute> attrs;

  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback = {}) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> fallback = {}) const;
  const tensor* attr_tensor(const std::string& key) const;

  /// The i-th input name, or "" when absent.
  const std::string& input(size_t i) const;
  /// "node 'conv1' (Conv)" for messages.
  std::string label() const;
};

/// A graph input or output: name, dtype and dims (-1 where a dimension is dynamic).
struct value_info {
  std::string name;
  dtype type = dtype::undefined;
  std::vector<int64_t> dims;
};

/// The inputs' dims with every dynamic dimension (< 0) set to `size`: the dims a model is
/// compiled for at load time (size 1) or probed with.
std::vector<shape> dims_with_dynamic_as(const std::vector<value_info>& inputs, int64_t size);

struct graph {
  std::string source;   // file the graph came from, for messages
  int64_t opset = 0;    // default-domain opset version
  std::vector<node> nodes;
  std::unordered_map<std::string, tensor> initializers;
  std::vector<value_info> inputs;  // excludes inputs that have an initializer
  std::vector<value_info> outputs;

  /// Nodes sorted so every node follows the producers of its inputs; an error names a cycle
  /// or a value nobody produces.
  status sort_topologically();
};

} // namespace troupe
