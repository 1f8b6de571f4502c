// troupe plan: cost model, placement plan and pipeline cut of a model over a device pool.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/troupe/commands.hpp"
#include "runtime/config/model_config.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/planner/device_speed.hpp"
#include "runtime/planner/pipeline_measure.hpp"
#include "runtime/planner/tp_cost.hpp"
#include "runtime/planner/placement.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/split_graph.hpp"

namespace troupe::app {
namespace {

struct plan_flags {
  std::string model;
  std::string stages = "auto";
  std::string tensor_parallel = "1";
  int nodes = 1;
  int devices_per_node = 1;
  std::string device_memory;
  double device_speed = 0; // GFLOP/s; 0: calibrate this CPU
  double device_bandwidth = 0;
  double link_bandwidth = 10;
  std::string pool_file;
  std::string goal = "throughput";
  double slo_ms = 0;
  int64_t batch = 1;
  int64_t micro_batch = 0;
  double memory_fraction = 0.9;
  int64_t other_dim = 1;
  bool json = false;
  bool profile = false;
  bool measure = false;
  bool recalibrate = false;
  int measure_batches = 30;
  std::string measure_cores;
  backend_flags backend;
  CLI::App* cmd = nullptr;
  bool given(const char* name) const { return cmd->count(name) > 0; }
};

double physical_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0;
  while (in >> key >> kib)
    if (key == "MemTotal:")
      return kib * 1024;
  return 8.0 * (1 << 30);
}

/// A model file, or a repository entry <repo>/<model> whose config.yaml supplies
/// parallelism and max_batch_size where the flags do not.
expected<std::string> resolve_model(plan_flags& f) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(f.model))
    return f.model;
  const fs::path dir = fs::weakly_canonical(f.model);
  auto entries = scan_repository(dir.parent_path());
  if (!entries)
    return entries.error();
  for (const auto& e : *entries) {
    if (e.name != dir.filename().string())
      continue;
    const auto& p = e.config.parallelism;
    if (!f.given("--stages"))
      f.stages = p.pipeline_stages == parallelism_config::automatic ? "auto" : std::to_string(p.pipeline_stages);
    if (!f.given("--tensor-parallel"))
      f.tensor_parallel = std::to_string(p.tensor_parallel);
    if (!f.given("--micro-batch") && p.micro_batch > 0)
      f.micro_batch = p.micro_batch;
    if (!f.given("--batch") && e.config.max_batch_size > 0)
      f.batch = e.config.max_batch_size;
    return e.model_file(e.serving.front()).string();
  }
  return make_error(errc::not_found, "{} is a folder but not a model of a repository", f.model);
}

expected<int> parse_count(const std::string& text, const char* flag) {
  if (text == "auto")
    return 0;
  try {
    size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size() && v >= 1 && v <= 64)
      return v;
  } catch (const std::logic_error&) {
  }
  return make_error(errc::invalid_argument, "{}: expected auto or 1..64, got '{}'", flag, text);
}

expected<planner::device_pool> build_pool(const plan_flags& f, const cpu::cpu_limits& device) {
  planner::device_pool pool;
  if (!f.pool_file.empty()) {
    auto p = planner::load_device_pool(f.pool_file);
    if (!p)
      return p.error();
    pool = *p;
  }
  if (f.given("--nodes") || f.pool_file.empty())
    pool.nodes = f.nodes;
  if (f.given("--devices-per-node") || f.pool_file.empty())
    pool.devices_per_node = f.devices_per_node;
  if (!f.device_memory.empty()) {
    auto b = planner::parse_bytes(f.device_memory);
    if (!b)
      return b.error().with_context("--device-memory");
    pool.device.memory_bytes = *b;
  } else if (pool.device.memory_bytes <= 0) {
    pool.device.memory_bytes = physical_memory_bytes() / pool.devices_per_node;
  }
  if (f.device_speed > 0)
    pool.device.gflops = f.device_speed;
  if (f.device_bandwidth > 0)
    pool.device.mem_gbps = f.device_bandwidth;
  if (f.given("--link-bandwidth") || f.pool_file.empty())
    pool.link_gbps = f.link_bandwidth;
  if (pool.device.gflops <= 0) { // no speed given: this CPU, as one device of the pool
    auto speed = planner::cpu_device_speed(device, planner::default_speed_cache(), f.recalibrate);
    if (!speed)
      return speed.error();
    pool.device.gflops = speed->gflops;
    if (f.device_bandwidth <= 0)
      pool.device.mem_gbps = speed->mem_gbps;
    if (!f.json)
      std::printf("device speed %s: %.1f GFLOP/s, %.1f GB/s%s\n",
                  planner::cpu_device_key(device).c_str(), speed->gflops, speed->mem_gbps,
                  speed->from_cache ? " (cached)" : " (measured)");
  }
  return pool;
}

int run(plan_flags& f) {
  auto path = resolve_model(f);
  if (!path)
    return fail(path.error());
  auto stages = parse_count(f.stages, "--stages");
  auto tp = parse_count(f.tensor_parallel, "--tensor-parallel");
  if (!stages)
    return fail(stages.error());
  if (!tp)
    return fail(tp.error());
  if (f.goal != "throughput" && f.goal != "latency")
    return fail(make_error(errc::invalid_argument, "--objective: throughput or latency, got '{}'", f.goal));
  auto g = load_onnx(*path);
  if (!g)
    return fail(g.error());
  auto analysis = planner::analyze_model(*g, f.other_dim);
  if (!analysis)
    return fail(analysis.error());

  // One device of the pool, when it is this CPU: --threads/--cores, or one core for
  // --measure (the pipeline there runs one single-threaded stage per core).
  std::vector<int> measure_cores;
  if (f.measure)
    measure_cores = f.measure_cores.empty() ? std::vector<int>{0, 1} : parse_core_list(f.measure_cores);
  cpu::cpu_limits device = f.backend.limits();
  if (f.measure)
    device = cpu::cpu_limits{1, {measure_cores.at(0)}};
  if (f.profile || f.measure)
    if (auto st = planner::profile_model(*analysis, device, f.batch, 5, f.other_dim); !st.is_ok())
      return fail(st);

  auto pool = build_pool(f, device);
  if (!pool)
    return fail(pool.error());
  // Tensor parallelism is costed from the split the model would really get, for every T
  // the planner will try.
  std::vector<int> ways;
  if (*tp > 1)
    ways.push_back(*tp);
  for (int t = 2; *tp == 0 && t <= pool->devices_per_node; t *= 2)
    ways.push_back(t);
  if (auto st = planner::analyze_tensor_parallel(*analysis, *g, ways, f.other_dim); !st.is_ok())
    return fail(st);
  planner::planner_options options;
  options.goal = f.goal == "latency" ? planner::objective::latency : planner::objective::throughput;
  options.slo_ms = f.slo_ms;
  options.stages = *stages;
  options.tensor_parallel = *tp;
  options.batch = static_cast<double>(f.batch);
  options.micro_batch = static_cast<double>(f.micro_batch);
  options.memory_fraction = f.memory_fraction;
  if (f.measure && options.stages == 0)
    options.stages = static_cast<int>(measure_cores.size());
  auto plan = planner::plan_placement(analysis->cost, *pool, options);
  if (!plan)
    return fail(plan.error());

  std::string measured_json;
  if (f.measure) {
    const auto& chosen = plan->chosen;
    if (chosen.tensor_parallel != 1)
      return fail(make_error(errc::unsupported, "--measure runs pipeline stages only; use "
                             "--tensor-parallel 1"));
    if (measure_cores.size() < static_cast<size_t>(chosen.stages))
      return fail(make_error(errc::invalid_argument, "--measure-cores: {} stages need {} cores",
                             chosen.stages, chosen.stages));
    auto parts = split_graph_stages(analysis->optimized, chosen.boundaries);
    if (!parts)
      return fail(parts.error());
    std::mt19937_64 rng(7);
    std::vector<tensor> inputs;
    for (const auto& in : analysis->optimized.inputs) {
      shape d = in.dims;
      for (size_t i = 0; i < d.size(); ++i)
        if (d[i] < 0)
          d[i] = i == 0 ? f.batch : f.other_dim;
      inputs.push_back(random_tensor(in.type, d, rng));
    }
    std::vector<cpu::cpu_limits> devices;
    for (int s = 0; s < chosen.stages; ++s)
      devices.push_back(cpu::cpu_limits{1, {measure_cores[static_cast<size_t>(s)]}});
    auto piped = planner::measure_pipeline(*parts, devices, inputs, f.measure_batches);
    if (!piped)
      return fail(piped.error());
    std::vector<graph> whole{analysis->optimized};
    std::vector<cpu::cpu_limits> one{devices[0]};
    auto single = planner::measure_pipeline(whole, one, inputs, f.measure_batches, 2, 1);
    if (!single)
      return fail(single.error());
    const auto single_pred = planner::evaluate_candidate(analysis->cost, *pool, options, 1, 1);
    const double predicted = chosen.replica_items_per_s;
    const double error_pct = 100.0 * (predicted - piped->items_per_s) / piped->items_per_s;
    if (f.json) {
      measured_json = fmt::format(
          ",\"measurement\":{{\"cores\":[{}],\"batches\":{},\"pipeline_items_per_s\":{:.3f},"
          "\"predicted_items_per_s\":{:.3f},\"prediction_error_pct\":{:.2f},"
          "\"single_device_items_per_s\":{:.3f},\"single_device_predicted_items_per_s\":{:.3f},"
          "\"speedup\":{:.3f}}}",
          fmt::join(measure_cores, ","), f.measure_batches, piped->items_per_s, predicted,
          error_pct, single->items_per_s, single_pred.replica_items_per_s,
          piped->items_per_s / single->items_per_s);
    } else {
      std::printf("%s\n", planner::format_table(*plan).c_str());
      std::printf("measured on cores %s, one thread each, %d timed batches of %lld\n",
                  fmt::format("{}", fmt::join(measure_cores, ",")).c_str(), f.measure_batches,
                  static_cast<long long>(f.batch));
      std::printf("  %d-stage pipeline   predicted %10.2f items/s   measured %10.2f items/s   "
                  "(prediction %+.1f%%)\n", chosen.stages, predicted, piped->items_per_s, error_pct);
      std::string busy;
      for (double b : piped->stage_busy)
        busy += fmt::format("{}{:.0f}%", busy.empty() ? "" : " ", 100 * b);
      std::printf("  stage busy          %s\n", busy.c_str());
      std::printf("  one device          predicted %10.2f items/s   measured %10.2f items/s\n",
                  single_pred.replica_items_per_s, single->items_per_s);
      std::printf("  pipeline speedup    %.2fx measured, %.2fx predicted\n",
                  piped->items_per_s / single->items_per_s,
                  predicted / single_pred.replica_items_per_s);
      return 0;
    }
  }
  if (f.json) {
    std::string json = planner::format_json(*plan);
    json.insert(json.size() - 1, measured_json);
    std::printf("%s\n", json.c_str());
  } else {
    std::printf("%s", planner::format_table(*plan).c_str());
  }
  return 0;
}

} // namespace

void add_plan_command(CLI::App& app) {
  auto flags = std::make_shared<plan_flags>();
  auto* cmd = app.add_subcommand("plan", "plan placement, pipeline stages and replicas over a device pool");
  flags->cmd = cmd;
  cmd->add_option("model", flags->model, "model.onnx, or a repository entry <repo>/<model>")
    ->required()->check(CLI::ExistingPath);
  cmd->add_option("--stages", flags->stages, "pipeline stages: K or auto (default: auto)");
  cmd->add_option("--tensor-parallel", flags->tensor_parallel, "tensor-parallel degree: T or auto (default: 1)");
  cmd->add_option("--nodes", flags->nodes, "nodes in the pool")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--devices-per-node", flags->devices_per_node, "devices per node")->check(CLI::Range(1, 1024));
  cmd->add_option("--device-memory", flags->device_memory, "memory per device, e.g. 80G (default: this machine's / devices)");
  cmd->add_option("--device-speed", flags->device_speed, "GFLOP/s per device (default: measured on this CPU)")
    ->check(CLI::PositiveNumber);
  cmd->add_option("--device-bandwidth", flags->device_bandwidth, "memory GB/s per device (default: measured)")
    ->check(CLI::PositiveNumber);
  cmd->add_option("--link-bandwidth", flags->link_bandwidth, "GB/s between the devices of a replica")
    ->check(CLI::PositiveNumber);
  cmd->add_option("--pool", flags->pool_file, "YAML pool file (nodes, devices_per_node, device_memory, device_speed, ...)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--objective", flags->goal, "throughput or latency");
  cmd->add_option("--slo-ms", flags->slo_ms, "latency limit of a batch in ms")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", flags->batch, "rows per batch")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--micro-batch", flags->micro_batch, "rows per pipeline micro-batch (default: the batch)")
    ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--memory-fraction", flags->memory_fraction, "share of device memory a plan may use")
    ->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--dynamic-dim", flags->other_dim, "size of dynamic dims other than the batch")
    ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_flag("--json", flags->json, "print JSON instead of a table");
  cmd->add_flag("--profile", flags->profile, "time every operator on this CPU (--threads/--cores) instead of estimating");
  cmd->add_flag("--measure", flags->measure,
                "run the planned pipeline, one single-threaded stage per core, and compare with the prediction");
  cmd->add_option("--measure-cores", flags->measure_cores, "cores for --measure (default 0,1)");
  cmd->add_option("--measure-batches", flags->measure_batches, "timed batches for --measure")
    ->check(CLI::Range(1, 100000));
  cmd->add_flag("--recalibrate", flags->recalibrate, "measure the device speed even when cached");
  flags->backend.add_to(*cmd);
  cmd->callback([flags] {
    if (int rc = run(*flags); rc != 0)
      throw CLI::RuntimeError(rc);
  });
}

} // namespace troupe::app
