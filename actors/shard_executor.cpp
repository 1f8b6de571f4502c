// shard_executor: a detached actor that owns one stage's session and runs micro-batches on its
// thread.
#include <chrono>
#include <memory>
#include <stdexcept>

#include "actors/actors.hpp"
#include "runtime/serve/pipeline_plan.hpp"
#include "runtime/session.hpp"

namespace troupe {

namespace {

struct shard_state {
  static inline const char* name = "troupe.shard_executor";
  shard_spec spec;
  std::unique_ptr<session> model;
  status load_error;
  int64_t batches = 0;
};

/// Loads the stage on the executor's own thread: the session's plans, oneDNN primitives and
/// core pinning all belong to the thread that runs them.
status load_stage(shard_state& st) {
  auto part = serve::load_stage_graph(st.spec.onnx_path, st.spec.boundaries,
                                      static_cast<size_t>(st.spec.stage));
  if (!part)
    return part.error();
  session_options options;
  options.limits = st.spec.limits;
  options.optimize = false; // load_stage_graph optimized it before cutting
  auto s = session::from_graph(std::move(*part), options);
  if (!s)
    return s.error();
  st.model = std::move(*s);
  return status::ok();
}

shard_executor_actor::behavior_type
shard_executor(shard_executor_actor::stateful_pointer<shard_state> self, shard_spec spec) {
  self->state.spec = std::move(spec);
  self->state.load_error = load_stage(self->state);
  return {
    [self](atom::run, stage_job& job) {
      auto& st = self->state;
      ++st.batches;
      if (st.spec.fault_after_batches > 0 && st.batches == st.spec.fault_after_batches)
        throw std::runtime_error("injected executor fault"); // supervision tests
      auto merger = caf::actor_cast<merger_actor>(job.merger);
      auto fail = [&](const status& why) {
        job.error = to_error(why.with_context(fmt::format("stage {}", st.spec.stage)));
        job.values.clear();
        self->send(merger, atom::merge_v, std::move(job));
      };
      if (!st.load_error)
        return fail(st.load_error);
      const auto started = std::chrono::steady_clock::now();
      auto outputs = st.model->run(job.values);
      if (!outputs)
        return fail(outputs.error());
      job.stage_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count());
      job.values = std::move(*outputs);
      if (job.next_stages.empty())
        return self->send(merger, atom::merge_v, std::move(job));
      auto next = caf::actor_cast<shard_executor_actor>(job.next_stages.front());
      job.next_stages.erase(job.next_stages.begin());
      self->send(next, atom::run_v, std::move(job));
    },
  };
}

} // namespace

shard_executor_actor spawn_shard_executor(caf::actor_system& sys, shard_spec spec) {
  return sys.spawn<caf::detached>(shard_executor, std::move(spec));
}

} // namespace troupe
