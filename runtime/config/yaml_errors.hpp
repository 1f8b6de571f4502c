// yaml_errors: the error discipline shared by troupe's YAML readers (config.yaml, scenarios).
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "kernels/status.hpp"

namespace troupe::yaml {

/// Thrown inside a parser only; the parser's entry point turns it into a status.
struct yaml_error {
  status error;
};

inline std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : ", ") + items[i];
  return out;
}

/// What a node holds, for "expected X, got Y" messages.
inline std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

/// Throws "file:line: key.path: message" (the line when the node has one).
[[noreturn]] inline void fail_at(const std::string& file, const YAML::Node& at,
                                 const std::string& path, const std::string& message) {
  std::string where = file;
  if (at.IsDefined() && at.Mark().line >= 0)
    where += fmt::format(":{}", at.Mark().line + 1);
  throw yaml_error{make_error(errc::invalid_argument, "{}: {}: {}", where, path, message)};
}

} // namespace troupe::yaml
