// scenario: a load test script (phases, arrival processes, model and priority mix, payloads)
// parsed from YAML, with errors that name the file, line and key.
#include "runtime/load/scenario.hpp"
#include "runtime/config/yaml_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>

#include <yaml-cpp/yaml.h>

namespace troupe::load {

const char* to_string(arrival_kind kind) {
  switch (kind) {
    case arrival_kind::constant: return "constant";
    case arrival_kind::poisson: return "poisson";
    case arrival_kind::bursty: return "bursty";
    case arrival_kind::gamma: return "gamma";
    case arrival_kind::ramp: return "ramp";
    case arrival_kind::closed: return "closed";
  }
  return "?";
}

const char* to_string(transport_kind kind) {
  switch (kind) {
    case transport_kind::http_json: return "http_json";
    case transport_kind::http_binary: return "http_binary";
    case transport_kind::in_process: return "in_process";
  }
  return "?";
}

std::vector<std::string> scenario::all_models() const {
  std::vector<std::string> out;
  auto add = [&](const std::vector<weighted_model>& mix) {
    for (const auto& m : mix)
      if (std::find(out.begin(), out.end(), m.name) == out.end())
        out.push_back(m.name);
  };
  add(models);
  for (const auto& p : phases)
    add(p.models);
  return out;
}

namespace {

using yaml::describe;
using yaml::join;

// The shared discipline (runtime/config/yaml_reader.hpp) plus request rates, which may be
// relative to a capacity given on the command line.
class reader : public yaml::reader {
public:
  explicit reader(std::string file) : yaml::reader(std::move(file), empties::refused) {}

  /// A request rate: a number of requests per second, or `P%` of `capacity`. `strict`
  /// excludes 0. The percentage is resolved here so every later stage sees plain rates.
  double rate(const YAML::Node& node, const std::string& path, bool strict,
              std::optional<double> capacity) const {
    const std::string form = fmt::format("a number {} 0 or a percentage of the capacity (40%)",
                                         strict ? ">" : ">=");
    if (!node.IsScalar())
      expected_form(node, path, form);
    std::string_view text = node.Scalar();
    const bool relative = !text.empty() && text.back() == '%';
    if (relative)
      text.remove_suffix(1);
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
        !std::isfinite(value) || value < 0 || (strict && value == 0))
      expected_form(node, path, form);
    if (!relative)
      return value;
    if (!capacity)
      fail(node, path,
           fmt::format("the relative rate {} needs a capacity: pass `troupe load --capacity "
                       "REQ_PER_S` (the measured requests per second)",
                       node.Scalar()));
    return value * *capacity / 100.0;
  }
};

class scenario_parser {
public:
  scenario_parser(const reader& in, std::filesystem::path base, std::optional<double> capacity)
      : in_(in), base_(std::move(base)), capacity_(capacity) {}

  std::string path_of(const std::string& p) const {
    if (p.empty() || base_.empty() || std::filesystem::path(p).is_absolute())
      return p;
    return (base_ / p).string();
  }

  payload_spec payload(const YAML::Node& node, const std::string& path) const {
    payload_spec p;
    bool have_images = false;
    in_.for_each_key(node, path, {"kind", "images", "labels", "mean", "std", "limit"},
                     [&](const std::string& key, const YAML::Node& v, const std::string& kp) {
                       if (key == "kind")
                         p.kind = static_cast<payload_kind>(
                             in_.choice(v, kp, {"random", "fashion_mnist", "npy"}));
                       else if (key == "images") {
                         p.images = path_of(in_.text(v, kp, "a file path"));
                         have_images = true;
                       } else if (key == "labels")
                         p.labels = path_of(in_.text(v, kp, "a file path"));
                       else if (key == "mean")
                         p.mean = in_.number(v, kp, -1e9, false);
                       else if (key == "std")
                         p.stddev = in_.number(v, kp, 0, true);
                       else
                         p.limit = in_.integer(v, kp, 1);
                     });
    if (p.kind != payload_kind::random && !have_images)
      in_.fail(node, path + ".images", "required for a dataset payload");
    if (p.kind == payload_kind::random && (have_images || !p.labels.empty()))
      in_.fail(node, path + ".images", "a random payload takes no dataset files");
    return p;
  }

  std::vector<weighted_model> models(const YAML::Node& node, const std::string& path) const {
    std::vector<weighted_model> out;
    in_.for_each_item(node, path, "a non-empty list of models ({name, weight, payload})",
                      [&](const YAML::Node& item, const std::string& ip) {
                        weighted_model m;
                        if (item.IsScalar()) {
                          m.name = in_.text(item, ip, "a model name");
                        } else {
                          in_.for_each_key(item, ip, {"name", "weight", "payload"},
                                           [&](const std::string& key, const YAML::Node& v,
                                               const std::string& kp) {
                                             if (key == "name")
                                               m.name = in_.text(v, kp, "a model name");
                                             else if (key == "weight")
                                               m.weight = in_.number(v, kp, 0, true);
                                             else
                                               m.payload = payload(v, kp);
                                           });
                          if (m.name.empty())
                            in_.fail(item, ip + ".name", "required");
                        }
                        out.push_back(std::move(m));
                      });
    return out;
  }

  std::vector<weighted_priority> priorities(const YAML::Node& node, const std::string& path) const {
    std::vector<weighted_priority> out;
    in_.for_each_item(node, path, "a non-empty list of {level, weight}",
                      [&](const YAML::Node& item, const std::string& ip) {
                        weighted_priority p;
                        bool have_level = false;
                        in_.for_each_key(item, ip, {"level", "weight"},
                                         [&](const std::string& key, const YAML::Node& v,
                                             const std::string& kp) {
                                           if (key == "level") {
                                             p.level = static_cast<uint32_t>(
                                                 in_.integer(v, kp, 0, 1 << 20));
                                             have_level = true;
                                           } else {
                                             p.weight = in_.number(v, kp, 0, true);
                                           }
                                         });
                        if (!have_level)
                          in_.fail(item, ip + ".level", "required (0 = the model's default)");
                        out.push_back(p);
                      });
    return out;
  }

  arrival_spec arrival(const YAML::Node& node, const std::string& path) const {
    arrival_spec a;
    if (!node.IsMap())
      in_.expected_form(node, path, "a map with `process`");
    const YAML::Node process = node["process"];
    if (!process.IsDefined())
      in_.fail(node, path + ".process", "required: constant, poisson, bursty, gamma, ramp or closed");
    a.kind = static_cast<arrival_kind>(in_.choice(
        process, path + ".process", {"constant", "poisson", "bursty", "gamma", "ramp", "closed"}));
    // The keys each process understands; anything else is a mistake worth reporting.
    std::vector<std::string> allowed{"process"};
    switch (a.kind) {
      case arrival_kind::constant:
      case arrival_kind::poisson: allowed.push_back("rate"); break;
      case arrival_kind::bursty: allowed.insert(allowed.end(), {"rate", "on_s", "off_s"}); break;
      case arrival_kind::gamma: allowed.insert(allowed.end(), {"rate", "cv"}); break;
      case arrival_kind::ramp: allowed.insert(allowed.end(), {"rate", "to_rate"}); break;
      case arrival_kind::closed: allowed.insert(allowed.end(), {"concurrency", "think_ms"}); break;
    }
    std::set<std::string> given;
    in_.for_each_key(node, path, allowed,
                     [&](const std::string& key, const YAML::Node& v, const std::string& kp) {
                       given.insert(key);
                       const bool ramp = a.kind == arrival_kind::ramp;
                       if (key == "rate")
                         a.rate = in_.rate(v, kp, !ramp, capacity_);
                       else if (key == "to_rate")
                         a.to_rate = in_.rate(v, kp, false, capacity_);
                       else if (key == "cv")
                         a.cv = in_.number(v, kp, 0, true);
                       else if (key == "on_s")
                         a.on_s = in_.number(v, kp, 0, true);
                       else if (key == "off_s")
                         a.off_s = in_.number(v, kp, 0, false);
                       else if (key == "concurrency")
                         a.concurrency = in_.integer(v, kp, 1, 1 << 16);
                       else if (key == "think_ms")
                         a.think_ms = in_.number(v, kp, 0, false);
                     });
    auto require = [&](const char* key) {
      if (!given.count(key))
        in_.fail(node, fmt::format("{}.{}", path, key),
                 fmt::format("required for process {}", to_string(a.kind)));
    };
    if (a.kind == arrival_kind::closed) {
      require("concurrency");
    } else {
      require("rate");
      if (a.kind == arrival_kind::ramp) {
        require("to_rate");
        if (a.rate == 0 && a.to_rate == 0)
          in_.fail(node, path + ".to_rate", "a ramp from 0 to 0 sends nothing");
      }
      if (a.kind == arrival_kind::gamma)
        require("cv");
    }
    return a;
  }

  phase_spec phase(const YAML::Node& node, const std::string& path, size_t index) const {
    phase_spec p;
    p.name = fmt::format("phase{}", index + 1);
    bool have_arrival = false;
    in_.for_each_key(node, path,
                     {"name", "duration_s", "requests", "arrival", "models", "priorities",
                      "timeout_ms", "slo_ms"},
                     [&](const std::string& key, const YAML::Node& v, const std::string& kp) {
                       if (key == "name")
                         p.name = in_.text(v, kp, "a phase name");
                       else if (key == "duration_s")
                         p.duration_s = in_.number(v, kp, 0, true);
                       else if (key == "requests")
                         p.requests = in_.integer(v, kp, 1);
                       else if (key == "arrival") {
                         p.arrival = arrival(v, kp);
                         have_arrival = true;
                       } else if (key == "models")
                         p.models = models(v, kp);
                       else if (key == "priorities")
                         p.priorities = priorities(v, kp);
                       else if (key == "timeout_ms")
                         p.timeout_ms = in_.number(v, kp, 0, true);
                       else
                         p.slo_ms = in_.number(v, kp, 0, true);
                     });
    if (!have_arrival)
      in_.fail(node, path + ".arrival", "required");
    if (!p.duration_s && !p.requests)
      in_.fail(node, path, "needs duration_s or requests (or both: whichever comes first)");
    if (p.arrival.kind == arrival_kind::ramp && !p.duration_s)
      in_.fail(node, path + ".duration_s", "required for a ramp (the rate changes over time)");
    return p;
  }

  scenario top(const YAML::Node& root) const {
    scenario s;
    bool have_phases = false;
    YAML::Node models_node;
    in_.for_each_key(
        root, "",
        {"name", "seed", "transport", "connections", "timeout_ms", "slo_ms", "payload", "models",
         "priorities", "phases"},
        [&](const std::string& key, const YAML::Node& v, const std::string& kp) {
          if (key == "name")
            s.name = in_.text(v, kp, "a scenario name");
          else if (key == "seed")
            s.seed = static_cast<uint64_t>(in_.integer(v, kp, 0));
          else if (key == "transport")
            s.transport = static_cast<transport_kind>(
                in_.choice(v, kp, {"http_json", "http_binary", "in_process"}));
          else if (key == "connections")
            s.connections = in_.integer(v, kp, 1, 4096);
          else if (key == "timeout_ms")
            s.timeout_ms = in_.number(v, kp, 0, true);
          else if (key == "slo_ms")
            s.slo_ms = in_.number(v, kp, 0, true);
          else if (key == "payload")
            s.payload = payload(v, kp);
          else if (key == "models")
            s.models = models(v, kp);
          else if (key == "priorities")
            s.priorities = priorities(v, kp);
          else {
            size_t i = 0;
            in_.for_each_item(v, kp, "a non-empty list of phases",
                              [&](const YAML::Node& item, const std::string& ip) {
                                s.phases.push_back(phase(item, ip, i++));
                              });
            have_phases = true;
          }
        });
    if (!have_phases)
      in_.fail(root, "phases", "required");
    for (size_t i = 0; i < s.phases.size(); ++i)
      if (s.models_of(s.phases[i]).empty())
        in_.fail(root, fmt::format("phases[{}].models", i),
                 "no model to send to: give `models` at the top or in the phase");
    return s;
  }

private:
  const reader& in_;
  std::filesystem::path base_;
  std::optional<double> capacity_;
};

} // namespace

expected<scenario> parse_scenario(const std::string& yaml_text, const std::string& file,
                                  const std::filesystem::path& base_dir,
                                  std::optional<double> capacity) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return make_error(errc::parse_error, "{}:{}: {}", file, e.mark.line + 1, e.msg);
  }
  reader in{file};
  try {
    if (capacity && (!std::isfinite(*capacity) || *capacity <= 0))
      return make_error(errc::invalid_argument, "{}: capacity must be a number > 0, got {}", file,
                        *capacity);
    return scenario_parser{in, base_dir, capacity}.top(root);
  } catch (const yaml::yaml_error& e) {
    return e.error;
  } catch (const YAML::Exception& e) {
    return make_error(errc::parse_error, "{}:{}: {}", file, e.mark.line + 1, e.msg);
  }
}

expected<scenario> load_scenario(const std::filesystem::path& file,
                                 std::optional<double> capacity) {
  std::ifstream f(file, std::ios::binary);
  if (!f)
    return make_error(errc::not_found, "{}: cannot open", file.string());
  std::stringstream text;
  text << f.rdbuf();
  auto s = parse_scenario(text.str(), file.string(), file.parent_path(), capacity);
  if (s && s->name.empty())
    s->name = file.stem().string();
  return s;
}

} // namespace troupe::load
