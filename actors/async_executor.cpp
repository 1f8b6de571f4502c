// async_executor: a scheduled actor that serves one stage through an async_model (a GPU
// session, or a CPU session on a thread of its own). It never waits on the model: each run's
// completion comes back as a message from the model's thread, and jobs that arrive meanwhile
// wait in the actor, in order.
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include "actors/actors.hpp"
#include "actors/stage_forward.hpp"
#include "runtime/serve/async_model.hpp"
#include "runtime/serve/pipeline_plan.hpp"

namespace troupe {

namespace {

/// Where the loader leaves the model for its executor (pointers never go in a message).
struct load_slot {
  std::mutex mutex;
  std::unique_ptr<async_model> model;
  status error;
};

struct async_state {
  static inline const char* name = "troupe.async_executor";
  shard_spec spec;
  std::string where; // the context of this stage's errors
  std::shared_ptr<load_slot> slot = std::make_shared<load_slot>();
  bool loaded = false;
  std::unique_ptr<async_model> model; // null after loading: load_error says why
  status load_error;
  std::deque<stage_job> queue;
  bool running = false;
  std::chrono::steady_clock::time_point started;
  int64_t batches = 0;
};

using async_pointer = async_executor_actor::stateful_pointer<async_state>;

std::string where_of(const shard_spec& spec) {
  if (spec.backend == executor_backend::gpu)
    return fmt::format("stage {} on cuda:{} ({})", spec.stage, spec.gpu, to_string(spec.precision));
  return fmt::format("stage {} on a host thread", spec.stage);
}

expected<std::unique_ptr<async_model>> open_model(const shard_spec& spec) {
  if (spec.group.size > 1)
    return make_error(errc::unsupported, "the asynchronous executor runs no tensor-parallel ranks");
  if (spec.backend == executor_backend::gpu) {
    if (!spec.boundaries.empty())
      return make_error(errc::unsupported, "GPU executors run whole models, not pipeline stages");
    gpu_session_options options;
    options.device = spec.gpu;
    options.precision = spec.precision;
    return open_gpu_model(spec.onnx_path, options);
  }
  auto part = serve::load_stage_graph(spec.onnx_path, spec.boundaries,
                                      static_cast<size_t>(spec.stage));
  if (!part)
    return part.error();
  session_options options;
  options.limits = spec.limits;
  options.optimize = false; // load_stage_graph optimized it before cutting
  return open_host_model(std::move(*part), options);
}

/// The loader: a blocking actor, so opening the model (compiling plans: seconds on a GPU) has
/// a thread of its own and stalls no scheduler thread; the actor system waits for it at exit.
void load(caf::blocking_actor*, shard_spec spec, std::shared_ptr<load_slot> slot,
          caf::weak_actor_ptr executor) {
  auto model = open_model(spec);
  {
    std::lock_guard lock{slot->mutex};
    if (model)
      slot->model = std::move(*model);
    else
      slot->error = model.error();
  }
  if (auto strong = executor.lock())
    caf::anon_send(caf::actor_cast<async_executor_actor>(strong), atom::loaded_v);
}

/// Starts the oldest queued job when the model is idle; fails the queue when it cannot load.
void start_next(async_pointer self) {
  auto& st = self->state;
  if (!st.loaded || st.running)
    return;
  if (!st.model) {
    while (!st.queue.empty()) {
      auto job = std::move(st.queue.front());
      st.queue.pop_front();
      fail_job(self, std::move(job), to_error(st.load_error.with_context(st.where)));
    }
    return;
  }
  if (st.queue.empty())
    return;
  auto job = std::move(st.queue.front());
  st.queue.pop_front();
  auto inputs = std::move(job.values);
  job.values.clear();
  st.running = true;
  st.started = std::chrono::steady_clock::now();
  // Runs on the model's thread (a CUDA callback thread for the GPU): it only hands the
  // result to the actor. The handle is weak so a model never keeps its executor alive.
  caf::weak_actor_ptr me{self->ctrl()};
  st.model->run_async(std::move(inputs), [me, job = std::move(job), where = st.where](
                                             expected<std::vector<tensor>> outputs) mutable {
    if (outputs)
      job.values = std::move(*outputs);
    else
      job.error = to_error(outputs.error().with_context(where));
    if (auto strong = me.lock())
      caf::anon_send(caf::actor_cast<async_executor_actor>(strong), atom::done_v, std::move(job));
  });
}

async_executor_actor::behavior_type async_executor(async_pointer self, shard_spec spec) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.where = where_of(st.spec);
  self->system().spawn(load, st.spec, st.slot, caf::weak_actor_ptr{self->ctrl()});
  return {
    [self](atom::run, stage_job& job) {
      auto& st = self->state;
      count_batch(st.batches, st.spec);
      st.queue.push_back(std::move(job));
      start_next(self);
    },
    [self](atom::loaded) {
      auto& st = self->state;
      {
        std::lock_guard lock{st.slot->mutex};
        st.model = std::move(st.slot->model);
        st.load_error = st.slot->error;
      }
      st.loaded = true;
      start_next(self);
    },
    [self](atom::done, stage_job& job) {
      auto& st = self->state;
      st.running = false;
      if (job.error) {
        self->send(caf::actor_cast<merger_actor>(job.merger), atom::merge_v, std::move(job));
      } else {
        job.stage_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - st.started)
                                   .count());
        pass_on(self, std::move(job));
      }
      start_next(self);
    },
  };
}

} // namespace

async_executor_actor spawn_async_executor(caf::actor_system& sys, shard_spec spec) {
  return sys.spawn(async_executor, std::move(spec));
}

} // namespace troupe
