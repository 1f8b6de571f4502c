// placement: enumerates (stages, tensor-parallel) plans, scores them, renders the result.
#include "runtime/planner/placement.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "runtime/planner/tp_cost.hpp"

namespace troupe::planner {

expected<double> parse_bytes(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::logic_error&) {
    return make_error(errc::invalid_argument, "'{}' is not a size (like 80G, 512M, 4096)", text);
  }
  std::string unit = text.substr(used);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b'))
    unit.pop_back();
  if (!unit.empty() && unit.back() == 'i')
    unit.pop_back();
  double scale = 1;
  if (unit == "K" || unit == "k")
    scale = 1024.0;
  else if (unit == "M" || unit == "m")
    scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "g")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "t")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty())
    return make_error(errc::invalid_argument, "'{}': unknown unit '{}' (K, M, G or T)", text, unit);
  if (!(value > 0))
    return make_error(errc::invalid_argument, "'{}': a size must be positive", text);
  return value * scale;
}

expected<device_pool> load_device_pool(const std::filesystem::path& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    return make_error(errc::parse_error, "{}: {}", file.string(), e.what());
  }
  if (!root.IsMap())
    return make_error(errc::parse_error, "{}: expected a map of pool keys", file.string());
  device_pool pool;
  bool has_memory = false;
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    const auto text = kv.second.IsScalar() ? kv.second.as<std::string>() : std::string{};
    auto number = [&](double lo) -> expected<double> {
      try {
        size_t used = 0;
        double v = std::stod(text, &used);
        if (used == text.size() && v >= lo)
          return v;
      } catch (const std::logic_error&) {
      }
      return make_error(errc::invalid_argument, "{}: {}: expected a number >= {}, got '{}'",
                        file.string(), key, lo, text);
    };
    expected<double> v = 0.0;
    if (key == "device_memory") {
      v = parse_bytes(text);
      if (!v)
        return v.error().with_context(file.string() + ": device_memory");
      pool.device.memory_bytes = *v;
      has_memory = true;
      continue;
    }
    if (key == "nodes" || key == "devices_per_node") {
      v = number(1);
      if (!v || *v != std::floor(*v))
        return make_error(errc::invalid_argument, "{}: {}: expected a positive integer, got '{}'",
                          file.string(), key, text);
      (key == "nodes" ? pool.nodes : pool.devices_per_node) = static_cast<int>(*v);
      continue;
    }
    if (key == "link_latency") {
      v = number(0);
      if (!v)
        return v.error();
      pool.link_latency_s = *v * 1e-6;
      continue;
    }
    if (key != "device_speed" && key != "device_bandwidth" && key != "link_bandwidth")
      return make_error(errc::invalid_argument,
                        "{}: unknown key '{}' (nodes, devices_per_node, device_memory, "
                        "device_speed, device_bandwidth, link_bandwidth, link_latency)",
                        file.string(), key);
    v = number(1e-9);
    if (!v)
      return v.error();
    if (key == "device_speed")
      pool.device.gflops = *v;
    else if (key == "device_bandwidth")
      pool.device.mem_gbps = *v;
    else
      pool.link_gbps = *v;
  }
  if (!has_memory)
    return make_error(errc::invalid_argument, "{}: device_memory is required", file.string());
  return pool;
}

replica_layout lay_out_replicas(int nodes, int devices_per_node, int devices_per_replica) {
  replica_layout l;
  l.devices_per_replica = devices_per_replica;
  if (nodes <= 0 || devices_per_node <= 0 || devices_per_replica <= 0)
    return l;
  if (devices_per_replica <= devices_per_node) {
    l.nodes_per_replica = 1;
    l.replicas_per_node = devices_per_node / devices_per_replica;
    l.replicas = nodes * l.replicas_per_node;
  } else {
    l.nodes_per_replica = (devices_per_replica + devices_per_node - 1) / devices_per_node;
    l.replicas = nodes / l.nodes_per_replica;
  }
  l.idle_devices = nodes * devices_per_node - l.replicas * devices_per_replica;
  l.idle_nodes = l.replicas_per_node > 0 ? 0 : nodes - l.replicas * l.nodes_per_replica;
  return l;
}

placement_candidate evaluate_candidate(const model_cost& cost, const device_pool& pool,
                                       const planner_options& options, int stages,
                                       int tensor_parallel) {
  placement_candidate c;
  c.stages = stages;
  c.tensor_parallel = tensor_parallel;
  c.layout = lay_out_replicas(pool.nodes, pool.devices_per_node, stages * tensor_parallel);
  const double rows = options.micro_batch > 0 ? std::min(options.micro_batch, options.batch)
                                              : options.batch;
  const double link = pool.link_gbps * 1e9;
  const double t = tensor_parallel;
  const tp_cost* split = tensor_parallel > 1 ? cost.split_for(tensor_parallel) : nullptr;
  if (tensor_parallel > 1 && !split) {
    c.why_not = fmt::format("no {}-way tensor-parallel analysis of the model", tensor_parallel);
    return c;
  }
  auto is_split = [&](size_t i) { return split && split->split[i]; };
  std::vector<double> seconds;
  for (size_t i = 0; i < cost.ops.size(); ++i)
    seconds.push_back(op_seconds(cost.ops[i], pool.device, rows) / (is_split(i) ? t : 1));
  if (split)
    for (const auto& x : split->collectives)
      seconds[x.after_op] += collective_seconds(x.kind, x.bytes.at(rows), tensor_parallel, link,
                                                pool.link_latency_s);
  const auto candidates = cut_candidates(cost, rows, options.cut_slack);
  auto cut = cut_stages(seconds, candidates, static_cast<size_t>(stages), link);
  if (!cut) {
    c.why_not = cut.error().message();
    return c;
  }
  const auto live = live_bytes(cost, rows);
  const double usable = pool.device.memory_bytes * options.memory_fraction;
  c.fits = true;
  double total_compute = 0, slowest_compute = 0;
  for (size_t s = 0; s < static_cast<size_t>(stages); ++s) {
    stage_plan st;
    std::tie(st.first_op, st.end_op) = stage_range(*cut, s, cost.ops.size());
    st.first_name = cost.ops[st.first_op].name;
    st.last_name = cost.ops[st.end_op - 1].name;
    if (s > 0)
      st.inputs = cut->boundaries[s - 1];
    st.seconds = cut->stage_seconds[s];
    st.send_seconds = s < cut->boundary_bytes.size() && link > 0 ? cut->boundary_bytes[s] / link : 0;
    for (size_t i = st.first_op; i < st.end_op; ++i) {
      st.param_bytes += split ? split->param_bytes[i] : cost.ops[i].param_bytes;
      st.activation_bytes = std::max(st.activation_bytes, live[i]);
      if (split && !cost.ops[i].folded)
        ++(is_split(i) ? st.split_ops : st.replicated_ops);
    }
    if (split)
      for (const auto& x : split->collectives)
        if (x.after_op >= st.first_op && x.after_op < st.end_op) {
          ++st.collectives;
          st.exchange_bytes += collective_sent_bytes(x.kind, x.bytes.at(options.batch), tensor_parallel);
        }
    const double device_bytes = st.param_bytes + st.activation_bytes;
    c.max_device_bytes = std::max(c.max_device_bytes, device_bytes);
    if (device_bytes > usable && c.fits) {
      c.fits = false;
      c.why_not = fmt::format("stage {} needs {:.2f} GiB per device, devices hold {:.2f} GiB", s,
                              device_bytes / (1 << 30), usable / (1 << 30));
    }
    total_compute += st.seconds;
    slowest_compute = std::max(slowest_compute, st.seconds);
    c.stage_list.push_back(std::move(st));
  }
  c.boundaries = cut->boundaries;
  c.balance = total_compute > 0 ? slowest_compute * stages / total_compute : 1;
  const double slowest = cut->max_stage_seconds;
  if (slowest > 0) {
    c.replica_items_per_s = rows / slowest;
    c.items_per_s = c.replica_items_per_s * c.layout.replicas;
  }
  const double micro_batches = std::ceil(options.batch / rows);
  double through = 0;
  for (const auto& st : c.stage_list)
    through += st.seconds + st.send_seconds;
  c.latency_ms = (through + (micro_batches - 1) * slowest) * 1e3;
  if (c.fits && c.layout.replicas == 0)
    c.why_not = fmt::format("needs {} devices per replica, the pool has {} x {}",
                            stages * tensor_parallel, pool.nodes, pool.devices_per_node);
  return c;
}

namespace {

std::string gib(double bytes) {
  if (bytes >= 0.5 * (1 << 30) || bytes == 0)
    return fmt::format("{:.2f} GiB", bytes / (1 << 30));
  if (bytes >= 0.5 * (1 << 20))
    return fmt::format("{:.2f} MiB", bytes / (1 << 20));
  return fmt::format("{:.2f} KiB", bytes / 1024);
}

bool usable(const placement_candidate& c, const planner_options& o) {
  return c.fits && c.layout.replicas > 0 && (o.slo_ms <= 0 || c.latency_ms <= o.slo_ms);
}

/// Is `a` a better choice than `b` for the objective?
bool preferred(const placement_candidate& a, const placement_candidate& b, const planner_options& o) {
  auto close = [](double x, double y) { return std::abs(x - y) <= 1e-9 * std::max(std::abs(x), std::abs(y)); };
  if (o.goal == objective::latency && o.slo_ms <= 0) {
    if (!close(a.latency_ms, b.latency_ms))
      return a.latency_ms < b.latency_ms;
    return a.items_per_s > b.items_per_s;
  }
  if (!close(a.items_per_s, b.items_per_s))
    return a.items_per_s > b.items_per_s;
  if (a.layout.devices_per_replica != b.layout.devices_per_replica)
    return a.layout.devices_per_replica < b.layout.devices_per_replica;
  return a.latency_ms < b.latency_ms;
}

} // namespace

expected<placement_plan> plan_placement(const model_cost& cost, const device_pool& pool,
                                        const planner_options& options) {
  if (pool.nodes < 1 || pool.devices_per_node < 1 || pool.device.memory_bytes <= 0)
    return make_error(errc::invalid_argument, "the device pool needs nodes, devices and memory");
  if (pool.device.gflops <= 0 && !std::all_of(cost.ops.begin(), cost.ops.end(),
                                              [](const op_cost& op) { return op.measured || op.folded; }))
    return make_error(errc::invalid_argument, "the device pool needs a speed (GFLOP/s)");
  placement_plan plan;
  plan.pool = pool;
  plan.options = options;
  plan.model = cost.source;
  plan.measured_costs = std::any_of(cost.ops.begin(), cost.ops.end(),
                                    [](const op_cost& op) { return op.measured; });
  std::vector<int> ks, ts;
  if (options.stages > 0)
    ks = {options.stages};
  else
    for (int k = 1; k <= options.max_stages; ++k)
      ks.push_back(k);
  if (options.tensor_parallel > 0)
    ts = {options.tensor_parallel};
  else
    for (int t = 1; t <= pool.devices_per_node; t *= 2)
      ts.push_back(t);
  const placement_candidate* best = nullptr;
  for (int k : ks)
    for (int t : ts) {
      plan.considered.push_back(evaluate_candidate(cost, pool, options, k, t));
      if (t > pool.devices_per_node) {
        plan.considered.back().fits = false;
        plan.considered.back().why_not = fmt::format(
            "tensor parallelism stays inside a node of {} devices", pool.devices_per_node);
      }
    }
  for (const auto& c : plan.considered)
    if (usable(c, options) && (!best || preferred(c, *best, options)))
      best = &c;
  if (best) {
    plan.chosen = *best;
    return plan;
  }

  // Nothing is usable: say what would be.
  const placement_candidate* smallest_fit = nullptr;
  const placement_candidate* fastest = nullptr;
  for (const auto& c : plan.considered) {
    if (c.fits && (!smallest_fit || c.layout.devices_per_replica < smallest_fit->layout.devices_per_replica))
      smallest_fit = &c;
    if (c.fits && c.layout.replicas > 0 && (!fastest || c.latency_ms < fastest->latency_ms))
      fastest = &c;
  }
  const double rows = options.micro_batch > 0 ? std::min(options.micro_batch, options.batch) : options.batch;
  const auto live = live_bytes(cost, rows);
  const double peak = live.empty() ? 0 : *std::max_element(live.begin(), live.end());
  const double need = cost.param_bytes + peak;
  const double per_device = pool.device.memory_bytes * options.memory_fraction;
  const int min_devices = static_cast<int>(std::ceil(need / per_device));
  if (fastest)
    return make_error(errc::resource_exhausted,
                      "{}: no plan meets the {} ms latency SLO; the fastest that fits is {} "
                      "stage(s) x {}-way tensor parallel at {:.3f} ms",
                      cost.source, options.slo_ms, fastest->stages, fastest->tensor_parallel,
                      fastest->latency_ms);
  if (smallest_fit)
    return make_error(errc::resource_exhausted,
                      "{}: a replica needs {} devices ({} stage(s) x {}-way tensor parallel) but "
                      "the pool has {} node(s) x {} devices",
                      cost.source, smallest_fit->layout.devices_per_replica, smallest_fit->stages,
                      smallest_fit->tensor_parallel, pool.nodes, pool.devices_per_node);
  return make_error(errc::resource_exhausted,
                    "{}: does not fit: one replica needs {} ({} parameters + {} activations at "
                    "{} rows) and a device may use {} ({:.0f}% of {}), so at least {} devices "
                    "per replica{}; no plan tried (up to {} stages, tensor parallel up to {}) "
                    "fits",
                    cost.source, gib(need), gib(cost.param_bytes), gib(peak), rows, gib(per_device),
                    options.memory_fraction * 100, gib(pool.device.memory_bytes), min_devices,
                    min_devices > pool.nodes * pool.devices_per_node
                        ? fmt::format(" (the pool has {})", pool.nodes * pool.devices_per_node)
                        : std::string{},
                    ks.back(), ts.back());
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += {'\\', c};
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    else
      out += c;
  }
  return out + "\"";
}

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null"; }

std::string json_candidate(const placement_candidate& c, bool with_stages) {
  std::string out = fmt::format(
      "{{\"stages\":{},\"tensor_parallel\":{},\"devices_per_replica\":{},\"nodes_per_replica\":{},"
      "\"replicas_per_node\":{},\"replicas\":{},\"idle_devices\":{},\"idle_nodes\":{},"
      "\"fits\":{},\"items_per_s\":{},\"replica_items_per_s\":{},\"latency_ms\":{},"
      "\"balance\":{},\"max_device_bytes\":{}",
      c.stages, c.tensor_parallel, c.layout.devices_per_replica, c.layout.nodes_per_replica,
      c.layout.replicas_per_node, c.layout.replicas, c.layout.idle_devices, c.layout.idle_nodes,
      c.fits ? "true" : "false", json_number(c.items_per_s), json_number(c.replica_items_per_s),
      json_number(c.latency_ms), json_number(c.balance), json_number(c.max_device_bytes));
  if (!c.why_not.empty())
    out += ",\"why_not\":" + json_string(c.why_not);
  if (with_stages) {
    out += ",\"cuts\":[";
    for (size_t i = 0; i < c.boundaries.size(); ++i) {
      out += i ? ",[" : "[";
      for (size_t j = 0; j < c.boundaries[i].size(); ++j)
        out += (j ? "," : "") + json_string(c.boundaries[i][j]);
      out += "]";
    }
    out += "],\"stage_list\":[";
    for (size_t i = 0; i < c.stage_list.size(); ++i) {
      const auto& s = c.stage_list[i];
      out += fmt::format("{}{{\"first_op\":{},\"end_op\":{},\"first\":{},\"last\":{},\"ms\":{},"
                         "\"send_ms\":{},\"param_bytes\":{},\"activation_bytes\":{},"
                         "\"split_ops\":{},\"replicated_ops\":{},\"collectives\":{},"
                         "\"exchange_bytes\":{}}}",
                         i ? "," : "", s.first_op, s.end_op, json_string(s.first_name),
                         json_string(s.last_name), json_number(s.seconds * 1e3),
                         json_number(s.send_seconds * 1e3), json_number(s.param_bytes),
                         json_number(s.activation_bytes), s.split_ops, s.replicated_ops,
                         s.collectives, json_number(s.exchange_bytes));
    }
    out += "]";
  }
  return out + "}";
}

} // namespace

std::string format_json(const placement_plan& p) {
  return fmt::format(
      "{{\"model\":{},\"costs\":{},\"pool\":{{\"nodes\":{},\"devices_per_node\":{},"
      "\"device_memory_bytes\":{},\"device_gflops\":{},\"device_gbps\":{},\"link_gbps\":{}}},"
      "\"objective\":{},\"slo_ms\":{},\"batch\":{},\"micro_batch\":{},\"chosen\":{},"
      "\"considered\":[{}]}}",
      json_string(p.model), p.measured_costs ? "\"measured\"" : "\"estimated\"", p.pool.nodes,
      p.pool.devices_per_node, json_number(p.pool.device.memory_bytes),
      json_number(p.pool.device.gflops), json_number(p.pool.device.mem_gbps),
      json_number(p.pool.link_gbps),
      p.options.goal == objective::throughput ? "\"throughput\"" : "\"latency\"",
      json_number(p.options.slo_ms), json_number(p.options.batch),
      json_number(p.options.micro_batch > 0 ? p.options.micro_batch : p.options.batch),
      json_candidate(p.chosen, true), [&] {
        std::string all;
        for (size_t i = 0; i < p.considered.size(); ++i)
          all += (i ? "," : "") + json_candidate(p.considered[i], false);
        return all;
      }());
}

std::string format_table(const placement_plan& p) {
  const auto& c = p.chosen;
  std::string out;
  out += fmt::format("model {}\n", p.model);
  out += fmt::format("pool  {} node(s) x {} device(s): {} memory, {:.1f} GFLOP/s, {:.1f} GB/s, "
                     "links {:.1f} GB/s\n",
                     p.pool.nodes, p.pool.devices_per_node, gib(p.pool.device.memory_bytes),
                     p.pool.device.gflops, p.pool.device.mem_gbps, p.pool.link_gbps);
  out += fmt::format("goal  {}{}, batch {}, micro-batch {}; operator times {}\n\n",
                     p.options.goal == objective::throughput ? "throughput" : "latency",
                     p.options.slo_ms > 0 ? fmt::format(" under {} ms", p.options.slo_ms) : "",
                     p.options.batch, p.options.micro_batch > 0 ? p.options.micro_batch : p.options.batch,
                     p.measured_costs ? "measured (--profile)" : "estimated");
  out += fmt::format("plan  {} stage(s) x {}-way tensor parallel = {} device(s) per replica", c.stages,
                     c.tensor_parallel, c.layout.devices_per_replica);
  if (c.layout.replicas_per_node > 0)
    out += fmt::format(", {} replica(s) per node", c.layout.replicas_per_node);
  else
    out += fmt::format(", {} node(s) per replica", c.layout.nodes_per_replica);
  out += fmt::format("\n      {} replica(s); idle: {} device(s), {} whole node(s)\n",
                     c.layout.replicas, c.layout.idle_devices, c.layout.idle_nodes);
  out += fmt::format("      predicted {:.1f} items/s ({:.1f} per replica), latency {:.3f} ms, "
                     "stage balance {:.3f} (slowest / mean)\n\n",
                     c.items_per_s, c.replica_items_per_s, c.latency_ms, c.balance);
  out += fmt::format("{:>5} {:>11} {:>10} {:>9} {:>11} {:>11}  {}\n", "stage", "ops", "ms", "send ms",
                     "params", "activations", "first .. last / cut values in");
  for (size_t i = 0; i < c.stage_list.size(); ++i) {
    const auto& s = c.stage_list[i];
    std::string in;
    for (const auto& v : s.inputs)
      in += (in.empty() ? "" : ",") + v;
    out += fmt::format("{:>5} {:>11} {:>10.3f} {:>9.3f} {:>11} {:>11}  {} .. {}{}\n", i,
                       fmt::format("{}-{}", s.first_op, s.end_op - 1), s.seconds * 1e3,
                       s.send_seconds * 1e3, gib(s.param_bytes), gib(s.activation_bytes),
                       s.first_name, s.last_name, in.empty() ? "" : " / in: " + in);
  }
  if (c.tensor_parallel > 1) {
    out += fmt::format("\n{:>5} {:>9} {:>10} {:>11} {:>13}  ({}-way tensor parallel, per rank, "
                       "per batch of {})\n", "stage", "split ops", "replicated", "collectives",
                       "sent", c.tensor_parallel, p.options.batch);
    for (size_t i = 0; i < c.stage_list.size(); ++i) {
      const auto& s = c.stage_list[i];
      out += fmt::format("{:>5} {:>9} {:>10} {:>11} {:>13}\n", i, s.split_ops, s.replicated_ops,
                         s.collectives, gib(s.exchange_bytes));
    }
  }
  out += fmt::format("\nconsidered\n{:>3} {:>3} {:>8} {:>9} {:>8} {:>5} {:>12} {:>11} {:>8}  {}\n",
                     "K", "T", "devices", "nodes/rep", "replicas", "idle", "items/s", "latency ms",
                     "balance", "");
  for (const auto& k : p.considered)
    out += fmt::format("{:>3} {:>3} {:>8} {:>9} {:>8} {:>5} {:>12.1f} {:>11.3f} {:>8.3f}  {}\n",
                       k.stages, k.tensor_parallel, k.layout.devices_per_replica,
                       k.layout.nodes_per_replica, k.layout.replicas, k.layout.idle_devices,
                       k.items_per_s, k.latency_ms, k.balance,
                       k.why_not.empty() ? (k.stages == c.stages && k.tensor_parallel == c.tensor_parallel ? "<- chosen" : "")
                                         : k.why_not);
  return out;
}

} // namespace troupe::planner
