// model_config: a model's config.yaml (Triton's keys plus troupe's) and the repository scan.
#include "runtime/config/model_config.hpp"
#include "runtime/config/yaml_reader.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace troupe {

namespace {

using yaml::describe;
using yaml::join;

using yaml::reader;

constexpr int64_t max_sane_batch = int64_t{1} << 24;
constexpr int64_t max_microseconds = int64_t{1} << 50; // ~35 years; keeps time_point math safe

std::optional<dtype> parse_data_type(std::string name) {
  if (name.rfind("TYPE_", 0) == 0)
    name = name.substr(5);
  if (name == "STRING")
    return dtype::string;
  return dtype_from_kserve(name);
}

queue_policy parse_queue_policy(const reader& in, const YAML::Node& node, const std::string& path) {
  queue_policy p;
  in.for_each_key(node, path,
                  {"max_queue_size", "default_timeout_microseconds", "allow_timeout_override",
                   "timeout_action"},
                  [&](const std::string& key, const YAML::Node& v, const std::string& key_path) {
                    if (key == "max_queue_size") {
                      p.max_queue_size = in.integer(v, key_path, 0, max_sane_batch * 1024,
                                                    "an integer >= 0 (0 = unbounded)");
                    } else if (key == "default_timeout_microseconds") {
                      p.default_timeout = microseconds{in.integer(
                          v, key_path, 0, max_microseconds, "an integer >= 0 (0 = no timeout)")};
                    } else if (key == "allow_timeout_override") {
                      p.allow_timeout_override = in.boolean(v, key_path);
                    } else {
                      const std::string s = v.IsScalar() ? v.Scalar() : "";
                      if (s == "REJECT")
                        p.action = timeout_action::reject;
                      else if (s == "DELAY")
                        p.action = timeout_action::delay;
                      else
                        in.expected_form(v, key_path, "REJECT or DELAY");
                    }
                  });
  return p;
}

std::vector<tensor_restriction> parse_tensors(const reader& in, const YAML::Node& node,
                                              const std::string& path) {
  std::vector<tensor_restriction> out;
  std::set<std::string> names;
  in.for_each_item(
      node, path, "a list of {name, data_type, dims}",
      [&](const YAML::Node& item, const std::string& item_path) {
        tensor_restriction t;
        in.for_each_key(
            item, item_path, {"name", "data_type", "dims"},
            [&](const std::string& key, const YAML::Node& v, const std::string& key_path) {
              if (key == "name") {
                t.name = in.text(v, key_path, "a tensor name");
              } else if (key == "data_type") {
                const std::string form = "a data type such as TYPE_FP32 or FP32";
                auto type = parse_data_type(in.text(v, key_path, form));
                if (!type)
                  in.expected_form(v, key_path, form);
                t.type = *type;
              } else {
                std::vector<int64_t> dims;
                if (!v.IsSequence())
                  in.expected_form(v, key_path, "a list of dimensions (-1 = any size)");
                for (size_t i = 0; i < v.size(); ++i) {
                  const auto dim_path = fmt::format("{}[{}]", key_path, i);
                  const int64_t d = in.integer(v[i], dim_path, -1, max_sane_batch * 1024,
                                               "a positive dimension or -1 (any size)");
                  if (d == 0)
                    in.expected_form(v[i], dim_path, "a positive dimension or -1 (any size)");
                  dims.push_back(d);
                }
                t.dims = std::move(dims);
              }
            });
        if (t.name.empty())
          in.fail(item, item_path + ".name", "missing, expected a tensor name");
        if (!names.insert(t.name).second)
          in.fail(item, item_path + ".name", fmt::format("'{}' is listed twice", t.name));
        out.push_back(std::move(t));
      });
  return out;
}

void parse_dynamic_batching(const reader& in, const YAML::Node& node, dynamic_batching_config& db,
                            std::map<uint32_t, YAML::Node>& level_nodes, YAML::Node& preferred_node,
                            YAML::Node& default_level_node) {
  const std::string path = "dynamic_batching";
  in.for_each_key(
      node, path,
      {"preferred_batch_size", "max_queue_delay_microseconds", "preserve_ordering",
       "priority_levels", "default_priority_level", "default_queue_policy",
       "priority_queue_policy"},
      [&](const std::string& key, const YAML::Node& v, const std::string& key_path) {
        if (key == "preferred_batch_size") {
          db.preferred_batch_size = in.integers(v, key_path, 1);
          preferred_node = v;
        } else if (key == "max_queue_delay_microseconds") {
          db.max_queue_delay =
              microseconds{in.integer(v, key_path, 0, max_microseconds, "an integer >= 0")};
        } else if (key == "preserve_ordering") {
          db.preserve_ordering = in.boolean(v, key_path);
        } else if (key == "priority_levels") {
          db.priority_levels = static_cast<uint32_t>(
              in.integer(v, key_path, 0, 1000, "an integer in 0..1000 (0 = no priorities)"));
        } else if (key == "default_priority_level") {
          db.default_priority_level =
              static_cast<uint32_t>(in.integer(v, key_path, 1, 1000, "a priority level >= 1"));
          default_level_node = v;
        } else if (key == "default_queue_policy") {
          db.default_queue_policy = parse_queue_policy(in, v, key_path);
        } else {
          if (!v.IsMap())
            in.expected_form(v, key_path, "a map from priority level to queue policy");
          for (auto it = v.begin(); it != v.end(); ++it) {
            const YAML::Node k = it->first;
            const std::string level_path =
                key_path + "." + (k.IsScalar() ? k.Scalar() : std::string("?"));
            const auto level = static_cast<uint32_t>(
                in.integer(k, level_path, 1, 1000, "a priority level >= 1 as the key"));
            if (level_nodes.count(level))
              in.fail(k, level_path, "level given twice");
            level_nodes[level] = k;
            db.priority_queue_policy[level] = parse_queue_policy(in, it->second, level_path);
          }
        }
      });
}

model_config parse(const reader& in, const YAML::Node& root) {
  model_config c;
  YAML::Node max_batch_node, db_node, preferred_node, default_level_node, allowed_node, micro_node;
  std::map<uint32_t, YAML::Node> level_nodes;
  in.for_each_key(
      root, "",
      {"name", "max_batch_size", "input", "output", "dynamic_batching", "allowed_batch_sizes",
       "max_batches_in_flight", "instance_group", "parallelism", "version_policy", "precision",
       "channels_last", "benchmark_convolutions"},
      [&](const std::string& key, const YAML::Node& v, const std::string& path) {
        if (key == "name") {
          c.name = in.text(v, path, "a model name");
          if (!is_valid_model_name(c.name))
            in.expected_form(v, path, "a name of [A-Za-z0-9_.-], not '.' or '..'");
        } else if (key == "max_batch_size") {
          c.max_batch_size = in.integer(
              v, path, 0, max_sane_batch,
              fmt::format("an integer in 0..{} (0 = no batch dimension)", max_sane_batch));
          max_batch_node = v;
        } else if (key == "input") {
          c.inputs = parse_tensors(in, v, path);
        } else if (key == "output") {
          c.outputs = parse_tensors(in, v, path);
        } else if (key == "dynamic_batching") {
          c.dynamic_batching.emplace();
          db_node = v;
          parse_dynamic_batching(in, v, *c.dynamic_batching, level_nodes, preferred_node,
                                 default_level_node);
        } else if (key == "allowed_batch_sizes") {
          c.allowed_batch_sizes = in.integers(v, path, 1);
          allowed_node = v;
        } else if (key == "precision") {
          auto p = parse_precision(in.text(v, path, "fp32, tf32, fp16 or bf16"));
          if (!p)
            in.expected_form(v, path, "fp32, tf32, fp16 or bf16");
          else
            c.precision = *p;
        } else if (key == "channels_last") {
          c.channels_last = in.boolean(v, path);
        } else if (key == "benchmark_convolutions") {
          c.benchmark_convolutions = in.boolean(v, path);
        } else if (key == "max_batches_in_flight") {
          c.max_batches_in_flight = in.integer(v, path, 1, 1 << 20, "an integer >= 1");
        } else if (key == "instance_group") {
          in.for_each_item(
              v, path, "a list of {count, kind, gpus}",
              [&](const YAML::Node& item, const std::string& item_path) {
                instance_group g;
                YAML::Node gpus_node;
                in.for_each_key(
                    item, item_path, {"name", "count", "kind", "gpus"},
                    [&](const std::string& k, const YAML::Node& x, const std::string& p) {
                      if (k == "name") {
                        g.name = in.text(x, p, "a group name");
                      } else if (k == "count") {
                        g.count = in.integer(x, p, 1, 1 << 16, "an integer >= 1");
                      } else if (k == "kind") {
                        const std::string s = x.IsScalar() ? x.Scalar() : "";
                        if (s == "KIND_CPU" || s == "CPU")
                          g.kind = instance_kind::cpu;
                        else if (s == "KIND_GPU" || s == "GPU")
                          g.kind = instance_kind::gpu;
                        else if (s == "KIND_AUTO" || s == "AUTO")
                          g.kind = instance_kind::automatic;
                        else
                          in.expected_form(x, p,
                                           "KIND_CPU, KIND_GPU or KIND_AUTO (or CPU, GPU, AUTO)");
                      } else {
                        g.gpus = in.integers(x, p, 0);
                        gpus_node = x;
                      }
                    });
                if (g.kind == instance_kind::cpu && !g.gpus.empty())
                  in.fail(gpus_node, item_path + ".gpus", "expected no gpus for kind KIND_CPU");
                c.instance_groups.push_back(std::move(g));
              });
        } else if (key == "parallelism") {
          in.for_each_key(v, path,
                          {"pipeline_stages", "tensor_parallel", "micro_batch", "stage_transport"},
                          [&](const std::string& k, const YAML::Node& x, const std::string& p) {
                            if (k == "pipeline_stages") {
                              if (x.IsScalar() && x.Scalar() == "auto")
                                c.parallelism.pipeline_stages = parallelism_config::automatic;
                              else
                                c.parallelism.pipeline_stages =
                                    in.integer(x, p, 1, 1024, "an integer >= 1 or auto");
                            } else if (k == "stage_transport") {
                              const auto t = in.text(x, p, "message or exchange");
                              if (t != "message" && t != "exchange")
                                in.expected_form(x, p, "message or exchange");
                              c.parallelism.exchange_links = t == "exchange";
                            } else if (k == "tensor_parallel") {
                              c.parallelism.tensor_parallel =
                                  in.integer(x, p, 1, 1024, "an integer >= 1");
                            } else {
                              c.parallelism.micro_batch = in.integer(x, p, 1);
                              micro_node = x;
                            }
                          });
        } else {
          in.for_each_key(v, path, {"latest", "all", "specific"},
                          [&](const std::string& k, const YAML::Node& x, const std::string& p) {
                            if (k == "latest") {
                              c.versions.which = version_policy::kind::latest;
                              in.for_each_key(x, p, {"num_versions"},
                                              [&](const std::string&, const YAML::Node& n,
                                                  const std::string& np) {
                                                c.versions.num_versions = in.integer(n, np, 1);
                                              });
                            } else if (k == "all") {
                              c.versions.which = version_policy::kind::all;
                              in.for_each_key(x, p, {}, [](auto&&...) {});
                            } else {
                              c.versions.which = version_policy::kind::specific;
                              bool listed = false;
                              in.for_each_key(x, p, {"versions"},
                                              [&](const std::string&, const YAML::Node& n,
                                                  const std::string& np) {
                                                c.versions.versions = in.integers(n, np, 1);
                                                listed = !c.versions.versions.empty();
                                              });
                              if (!listed)
                                in.fail(x, p + ".versions",
                                        "missing, expected a list of versions >= 1");
                            }
                          });
          if (v.IsMap() && v.size() != 1)
            in.expected_form(v, path, "exactly one of latest, all, specific");
        }
      });

  // Checks that span keys.
  if (c.dynamic_batching) {
    auto& db = *c.dynamic_batching;
    if (c.max_batch_size == 0)
      in.fail(db_node, "dynamic_batching",
              "expected max_batch_size > 0: a model without a batch dimension is not batched");
    std::sort(db.preferred_batch_size.begin(), db.preferred_batch_size.end());
    for (size_t i = 0; i < db.preferred_batch_size.size(); ++i) {
      if (db.preferred_batch_size[i] > c.max_batch_size)
        in.fail(preferred_node, "dynamic_batching.preferred_batch_size",
                fmt::format("expected sizes in 1..{} (max_batch_size), got {}", c.max_batch_size,
                            db.preferred_batch_size[i]));
      if (i > 0 && db.preferred_batch_size[i] == db.preferred_batch_size[i - 1])
        in.fail(preferred_node, "dynamic_batching.preferred_batch_size",
                fmt::format("size {} is listed twice", db.preferred_batch_size[i]));
    }
    if (db.default_priority_level != 0 && db.default_priority_level > db.priority_levels)
      in.fail(default_level_node, "dynamic_batching.default_priority_level",
              fmt::format("expected a level in 1..{} (priority_levels), got {}", db.priority_levels,
                          db.default_priority_level));
    for (const auto& [level, node] : level_nodes)
      if (level > db.priority_levels)
        in.fail(node, fmt::format("dynamic_batching.priority_queue_policy.{}", level),
                fmt::format("expected a level in 1..{} (priority_levels)", db.priority_levels));
  }
  if (!c.allowed_batch_sizes.empty()) {
    auto& allowed = c.allowed_batch_sizes;
    if (c.max_batch_size == 0)
      in.fail(allowed_node, "allowed_batch_sizes", "expected max_batch_size > 0 to pad batches");
    std::sort(allowed.begin(), allowed.end());
    for (size_t i = 0; i < allowed.size(); ++i) {
      if (allowed[i] > c.max_batch_size)
        in.fail(allowed_node, "allowed_batch_sizes",
                fmt::format("expected sizes in 1..{} (max_batch_size), got {}", c.max_batch_size,
                            allowed[i]));
      if (i > 0 && allowed[i] == allowed[i - 1])
        in.fail(allowed_node, "allowed_batch_sizes",
                fmt::format("size {} is listed twice", allowed[i]));
    }
    if (allowed.back() != c.max_batch_size)
      in.fail(allowed_node, "allowed_batch_sizes",
              fmt::format("expected the largest size to be max_batch_size {} so every batch can "
                          "be padded, got {}",
                          c.max_batch_size, allowed.back()));
  }
  if (c.parallelism.micro_batch > 0 && c.max_batch_size == 0)
    in.fail(micro_node, "parallelism.micro_batch",
            "expected no micro_batch when max_batch_size is 0 (no batch dimension to cut)");
  if (c.parallelism.micro_batch > 0 && c.max_batch_size > 0 &&
      c.parallelism.micro_batch > c.max_batch_size)
    in.fail(micro_node, "parallelism.micro_batch",
            fmt::format("expected at most max_batch_size {}, got {}", c.max_batch_size,
                        c.parallelism.micro_batch));
  return c;
}

} // namespace

bool is_valid_model_name(std::string_view name) {
  if (name.empty() || name == "." || name == "..")
    return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
  });
}

expected<model_config> parse_model_config(const std::string& yaml_text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return make_error(errc::parse_error, "{}:{}:{}: not valid YAML: {}", file, e.mark.line + 1,
                      e.mark.column + 1, e.msg);
  }
  try {
    return parse(reader{file, reader::empties::allowed}, root);
  } catch (const yaml::yaml_error& e) {
    return e.error;
  } catch (const YAML::Exception& e) {
    return make_error(errc::parse_error, "{}: {}", file, e.what());
  }
}

expected<model_config> load_model_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return make_error(errc::not_found, "{}: cannot open", file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return parse_model_config(text.str(), file.string());
}

std::filesystem::path model_entry::model_file(int64_t version) const {
  return dir / std::to_string(version) / "model.onnx";
}

expected<model_entry> scan_model(const std::filesystem::path& dir, const std::string& name) {
  namespace fs = std::filesystem;
  model_entry entry;
  entry.name = name;
  entry.dir = dir;
  const fs::path config_file = dir / "config.yaml";
  std::error_code ec;
  if (fs::exists(config_file, ec)) {
    auto config = load_model_config(config_file);
    if (!config)
      return config.error();
    entry.config = std::move(*config);
    if (!entry.config.name.empty() && entry.config.name != name)
      return make_error(errc::invalid_argument, "{}: name: expected the folder name '{}', got '{}'",
                        config_file.string(), name, entry.config.name);
  }
  entry.config.name = name;

  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string v = item.path().filename().string();
    if (!item.is_directory() || v.empty() || v[0] == '.')
      continue;
    int64_t version = 0;
    auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), version);
    if (err != std::errc{} || end != v.data() + v.size() || version < 1 || v[0] == '+')
      return make_error(errc::invalid_argument, "{}: version folder '{}' is not a positive integer",
                        dir.string(), v);
    if (!fs::is_regular_file(item.path() / "model.onnx"))
      return make_error(errc::not_found, "{}: missing model.onnx", item.path().string());
    entry.versions.push_back(version);
  }
  if (ec)
    return make_error(errc::not_found, "{}: cannot list: {}", dir.string(), ec.message());
  if (entry.versions.empty())
    return make_error(errc::not_found, "{}: no version folder <n>/model.onnx", dir.string());
  std::sort(entry.versions.rbegin(), entry.versions.rend());
  if (std::adjacent_find(entry.versions.begin(), entry.versions.end()) != entry.versions.end())
    return make_error(errc::invalid_argument, "{}: a version appears twice (leading zeros?)",
                      dir.string());

  const auto& policy = entry.config.versions;
  switch (policy.which) {
    case version_policy::kind::all:
      entry.serving = entry.versions;
      break;
    case version_policy::kind::latest: {
      const auto n = std::min<size_t>(entry.versions.size(), policy.num_versions);
      entry.serving.assign(entry.versions.begin(), entry.versions.begin() + n);
      break;
    }
    case version_policy::kind::specific:
      for (int64_t v : policy.versions) {
        if (std::find(entry.versions.begin(), entry.versions.end(), v) == entry.versions.end())
          return make_error(errc::not_found,
                            "{}: version_policy.specific.versions: version {} has no folder",
                            config_file.string(), v);
        entry.serving.push_back(v);
      }
      std::sort(entry.serving.rbegin(), entry.serving.rend());
      entry.serving.erase(std::unique(entry.serving.begin(), entry.serving.end()),
                          entry.serving.end());
      break;
  }
  return entry;
}

expected<std::vector<model_entry>> scan_repository(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error(errc::not_found, "{}: model repository is not a folder", dir.string());
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string name = item.path().filename().string();
    if (!item.is_directory() || name.empty() || name[0] == '.')
      continue;
    if (!is_valid_model_name(name))
      return make_error(errc::invalid_argument,
                        "{}: model folder '{}': expected a name of [A-Za-z0-9_.-]", dir.string(),
                        name);
    names.push_back(name);
  }
  if (ec)
    return make_error(errc::not_found, "{}: cannot list: {}", dir.string(), ec.message());
  std::sort(names.begin(), names.end());
  std::vector<model_entry> entries;
  for (const auto& name : names) {
    auto entry = scan_model(dir / name, name);
    if (!entry)
      return entry.error();
    entries.push_back(std::move(*entry));
  }
  return entries;
}

} // namespace troupe
