// embedded_runtime: starts troupe inside a CAF program's own actor_system and loads models.
#include "actors/embedded_runtime.hpp"

#include "kernels/gpu_devices.hpp"
#include "runtime/gpu_session.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/planner/device_speed.hpp"
#include "runtime/serve/instance_plan.hpp"

namespace troupe {

namespace {

template <class T>
caf::expected<T> ask(caf::actor_system& sys, const auto& dest, auto... xs) {
  caf::scoped_actor self{sys};
  caf::expected<T> result = caf::sec::request_timeout;
  self->request(dest, caf::infinite, xs...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
  return result;
}

} // namespace

caf::expected<std::unique_ptr<embedded_runtime>> embedded_runtime::start(caf::actor_system& sys,
                                                                         runtime_options options) {
  auto manager = spawn_resource_manager(sys, options.resources);
  if (!manager)
    return manager.error();
  return std::unique_ptr<embedded_runtime>(new embedded_runtime(sys, std::move(*manager)));
}

embedded_runtime::~embedded_runtime() { shutdown(); }

caf::expected<std::vector<model_handle>>
embedded_runtime::load_repository(const std::filesystem::path& dir, const load_options& options) {
  auto entries = scan_repository(dir);
  if (!entries)
    return to_error(entries.error());
  std::vector<model_handle> loaded;
  for (const auto& entry : *entries)
    for (int64_t version : entry.serving) {
      auto h = load_model(entry.name, version, entry.model_file(version), entry.config, options);
      if (!h)
        return h.error();
      loaded.push_back(*h);
    }
  return loaded;
}

caf::expected<model_handle> embedded_runtime::load_model(const std::string& name, int64_t version,
                                                         const std::filesystem::path& onnx_file,
                                                         model_config config,
                                                         const load_options& options) {
  if (stopped_)
    return to_error(errc::unavailable, "the runtime is shut down");
  if (models_.count({name, version}))
    return to_error(errc::invalid_argument,
                    fmt::format("model {} version {} is already loaded", name, version));
  auto g = load_onnx(onnx_file.string());
  if (!g)
    return to_error(g.error());
  serve::gpu_probes probes;
  probes.list_gpus = [] { return list_gpus(); };
  probes.runs_model = [&] {
    gpu_session_options o;
    o.precision = config.precision;
    return gpu_session::check(*g, o);
  };
  auto where = serve::plan_instances(name, config, probes);
  if (!where)
    return to_error(where.error());

  const int64_t instances = where->instances;

  // The stages and their memory, planned on this (non-actor) thread.
  auto devices = status();
  if (!devices)
    return devices.error();
  // Stages run on CPU devices (core sets); devices without cores are listed, not served on.
  std::vector<device_status> cpus;
  for (const auto& d : devices->devices)
    if (!d.cores.empty())
      cpus.push_back(d);
  if (cpus.empty())
    return to_error(errc::internal, "the resource manager has no CPU devices");
  const auto& device0 = cpus.front();
  serve::pipeline_request plan_req;
  plan_req.parallelism = config.parallelism;
  // The planner models CPU devices only: on GPUs, `auto` serves one stage per replica.
  if (where->gpu && plan_req.parallelism.pipeline_stages == parallelism_config::automatic)
    plan_req.parallelism.pipeline_stages = 1;
  plan_req.max_batch_size = config.max_batch_size;
  // pipeline_stages: auto plans over the devices left for the stages of one replica once
  // every stage has its tensor_parallel ranks.
  plan_req.devices = std::max<int>(
      1, static_cast<int>(cpus.size() / static_cast<size_t>(instances) /
                          static_cast<size_t>(std::max<int64_t>(config.parallelism.tensor_parallel, 1))));
  plan_req.device_memory = static_cast<double>(device0.memory_bytes);
  plan_req.boundaries = options.boundaries;
  plan_req.device_speed = [&]() -> expected<planner::device_spec> {
    cpu::cpu_limits limits;
    limits.threads = static_cast<int>(device0.cores.size());
    limits.cores.assign(device0.cores.begin(), device0.cores.end());
    auto speed = planner::cpu_device_speed(limits, planner::default_speed_cache());
    if (!speed)
      return speed.error();
    planner::device_spec spec;
    spec.memory_bytes = static_cast<double>(device0.memory_bytes);
    spec.gflops = speed->gflops;
    spec.mem_gbps = speed->mem_gbps;
    return spec;
  };
  auto plan = serve::choose_pipeline(*g, plan_req);
  if (!plan)
    return to_error(plan.error().with_context(fmt::format("model {}", name)));
  const gpu_precision precision = config.precision;
  // Read now: the batcher takes the config below.
  const bool channels_last = config.channels_last;
  const bool benchmark_convolutions = config.benchmarks_convolutions();
  const bool exchange_links = config.parallelism.exchange_links;
  if (where->gpu) // the CPU plan's bytes, with floats stored in the precision's type
    for (auto& bytes : plan->stage_bytes)
      bytes = bytes * size_of(storage_type(precision)) / size_of(dtype::f32);

  model_handle handle;
  handle.name = name;
  handle.version = version;
  handle.inputs = g->inputs;
  handle.outputs = g->outputs;
  handle.max_batch_size = config.max_batch_size;
  handle.plan = *plan;
  handle.plan.gpu_declined = where->gpu_declined; // in the metadata: why not on the GPU
  batcher_options bo;
  bo.model = name;
  bo.version = version;
  bo.config = std::move(config);
  bo.inputs = g->inputs;
  bo.outputs = g->outputs;
  auto batcher = spawn_batcher(sys_, std::move(bo));
  if (!batcher)
    return batcher.error();
  handle.batcher = *batcher;

  placement_request req;
  req.model = name;
  req.version = version;
  req.onnx_path = onnx_file.string();
  req.boundaries = plan->boundaries;
  req.stage_bytes = plan->stage_bytes;
  req.instances = instances;
  req.max_batch_size = handle.max_batch_size;
  req.owner = caf::actor_cast<caf::actor>(handle.batcher);
  req.fault_after_batches = options.fault_after_batches;
  req.tensor_parallel = plan->tensor_parallel;
  req.fault_rank = options.fault_rank;
  req.backend = where->gpu ? "gpu" : options.host_async ? "host_async" : "cpu";
  req.instance_gpus = std::move(where->gpus);
  req.precision = to_string(precision);
  req.channels_last = channels_last;
  req.benchmark_convolutions = benchmark_convolutions;
  req.exchange_links = exchange_links;
  auto placed = ask<placement>(sys_, manager_, atom::place_v, req);
  if (!placed) {
    caf::anon_send_exit(handle.batcher, caf::exit_reason::user_shutdown);
    return placed.error();
  }
  for (auto& route : placed->replicas)
    caf::anon_send(handle.batcher, atom::replica_v, std::move(route));
  models_.emplace(std::make_pair(name, version), handle);
  return handle;
}

caf::expected<model_status> embedded_runtime::unload_model(const std::string& name,
                                                          int64_t version) {
  auto it = models_.find({name, version});
  if (it == models_.end())
    return to_error(errc::not_found,
                    fmt::format("model {} version {} is not loaded", name, version));
  auto handle = it->second;
  models_.erase(it);
  auto drained = ask<model_status>(sys_, handle.batcher, atom::drain_v);
  auto final_status = ask<model_status>(sys_, handle.batcher, atom::shutdown_v);
  caf::anon_send(manager_, atom::retire_v, name, version);
  if (!drained)
    return drained.error();
  return final_status ? final_status : drained;
}

std::vector<model_handle> embedded_runtime::models() const {
  std::vector<model_handle> out;
  for (const auto& [key, h] : models_)
    out.push_back(h);
  return out;
}

std::optional<model_handle> embedded_runtime::model(const std::string& name,
                                                    int64_t version) const {
  std::optional<model_handle> found;
  for (const auto& [key, h] : models_)
    if (key.first == name && (version == 0 || key.second == version))
      found = h; // map order: the last match is the latest version
  return found;
}

caf::expected<runtime_status> embedded_runtime::status() {
  return ask<runtime_status>(sys_, manager_, atom::status_v);
}

caf::expected<model_status> embedded_runtime::status(const model_handle& model) {
  return ask<model_status>(sys_, model.batcher, atom::status_v);
}

caf::expected<infer_response> embedded_runtime::infer(const model_handle& model,
                                                      infer_request request) {
  return ask<infer_response>(sys_, model.batcher, atom::infer_v, std::move(request));
}

void embedded_runtime::shutdown() {
  if (stopped_)
    return;
  stopped_ = true;
  // Batchers first: they answer everything queued or running with `unavailable` and quit;
  // then the resource manager stops every executor and merger, so the actor_system's
  // destructor finds nothing of troupe's left running.
  for (auto& [key, h] : models_)
    (void)ask<model_status>(sys_, h.batcher, atom::shutdown_v);
  models_.clear();
  (void)ask<caf::ok_atom>(sys_, manager_, atom::shutdown_v);
}

} // namespace troupe
