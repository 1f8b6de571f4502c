// yaml_reader: the reading discipline shared by troupe's YAML files (config.yaml, scenarios):
// every value is checked where it is read and every failure names file:line and the key path.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
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

/// Typed reads of YAML nodes; each failure throws yaml_error with file:line, the key path and
/// the expected form. Only the parsers' entry points catch it.
class reader {
public:
  /// Whether `key:` with nothing (null) counts as an empty map or list (config.yaml, where
  /// `dynamic_batching:` alone turns batching on with defaults) or is refused, along with
  /// empty lists (scenarios, where an empty `phases` list is a mistake).
  enum class empties : bool { allowed, refused };

  reader(std::string file, empties rule) : file_(std::move(file)), rule_(rule) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& path,
                         const std::string& message) const {
    fail_at(file_, at, path, message);
  }

  [[noreturn]] void expected_form(const YAML::Node& at, const std::string& path,
                                  const std::string& form) const {
    fail(at, path, fmt::format("expected {}, got {}", form, describe(at)));
  }

  /// Calls handle(key, value, key_path) for every entry; unknown and repeated keys fail.
  template <class F>
  void for_each_key(const YAML::Node& map, const std::string& path,
                    const std::vector<std::string>& allowed, F&& handle) const {
    if (map.IsNull() && rule_ == empties::allowed)
      return;
    if (!map.IsMap())
      expected_form(map, path.empty() ? "(top level)" : path, "a map");
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar())
        expected_form(key, path, "scalar keys");
      const std::string& name = key.Scalar();
      const std::string key_path = path.empty() ? name : path + "." + name;
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        fail(key, key_path, fmt::format("unknown key, expected one of {}", join(allowed)));
      if (!seen.insert(name).second)
        fail(key, key_path, "key given twice");
      handle(name, it->second, key_path);
    }
  }

  /// Calls handle(item, item_path) for every element of a list.
  template <class F>
  void for_each_item(const YAML::Node& node, const std::string& path, const std::string& form,
                     F&& handle) const {
    if (node.IsNull() && rule_ == empties::allowed)
      return;
    if (!node.IsSequence() || (node.size() == 0 && rule_ == empties::refused))
      expected_form(node, path, form);
    for (size_t i = 0; i < node.size(); ++i)
      handle(node[i], fmt::format("{}[{}]", path, i));
  }

  /// An integer in [min, max]; `form` says what was expected (default: the range).
  int64_t integer(const YAML::Node& node, const std::string& path, int64_t min,
                  int64_t max = std::numeric_limits<int64_t>::max(), std::string form = {}) const {
    if (form.empty())
      form = max == std::numeric_limits<int64_t>::max()
                 ? fmt::format("an integer >= {}", min)
                 : fmt::format("an integer in [{}, {}]", min, max);
    if (!node.IsScalar())
      expected_form(node, path, form);
    const std::string& text = node.Scalar();
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
      expected_form(node, path, form);
    return value;
  }

  /// A list of integers >= min; a single scalar counts as a list of one.
  std::vector<int64_t> integers(const YAML::Node& node, const std::string& path,
                                int64_t min) const {
    std::vector<int64_t> out;
    if (node.IsScalar()) {
      out.push_back(integer(node, path, min));
      return out;
    }
    if (!node.IsSequence())
      expected_form(node, path, fmt::format("a list of integers >= {}", min));
    for (size_t i = 0; i < node.size(); ++i)
      out.push_back(integer(node[i], fmt::format("{}[{}]", path, i), min));
    return out;
  }

  /// A finite number; `strict` excludes `min` itself.
  double number(const YAML::Node& node, const std::string& path, double min, bool strict) const {
    const std::string form = fmt::format("a number {} {}", strict ? ">" : ">=", min);
    if (!node.IsScalar())
      expected_form(node, path, form);
    const std::string& text = node.Scalar();
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) ||
        value < min || (strict && value == min))
      expected_form(node, path, form);
    return value;
  }

  bool boolean(const YAML::Node& node, const std::string& path) const {
    static const std::vector<std::string> truths{"true", "True", "TRUE"};
    static const std::vector<std::string> lies{"false", "False", "FALSE"};
    if (node.IsScalar()) {
      if (std::find(truths.begin(), truths.end(), node.Scalar()) != truths.end())
        return true;
      if (std::find(lies.begin(), lies.end(), node.Scalar()) != lies.end())
        return false;
    }
    expected_form(node, path, "true or false");
  }

  /// A non-empty scalar.
  std::string text(const YAML::Node& node, const std::string& path, const std::string& form) const {
    if (!node.IsScalar() || node.Scalar().empty())
      expected_form(node, path, form);
    return node.Scalar();
  }

  /// One of `choices`, as its index.
  size_t choice(const YAML::Node& node, const std::string& path,
                const std::vector<std::string>& choices) const {
    if (node.IsScalar())
      for (size_t i = 0; i < choices.size(); ++i)
        if (node.Scalar() == choices[i])
          return i;
    expected_form(node, path, "one of " + join(choices));
  }

private:
  std::string file_;
  empties rule_;
};

} // namespace troupe::yaml
