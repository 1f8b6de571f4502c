// shard_executor: a detached actor that owns one stage's session and runs batches on its thread.
#include <chrono>
#include <memory>
#include <stdexcept>

#include "actors/actors.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/session.hpp"
#include "runtime/split_graph.hpp"

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
  auto g = load_onnx(st.spec.onnx_path);
  if (!g)
    return g.error();
  graph part = std::move(*g);
  if (!st.spec.cut_values.empty()) {
    auto split = split_graph_at(part, st.spec.cut_values);
    if (!split)
      return split.error();
    part = st.spec.stage == 0 ? std::move(split->first) : std::move(split->second);
  }
  session_options options;
  options.limits = st.spec.limits;
  auto s = session::from_graph(std::move(part), options);
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
    [self](atom::run, batch_job& job) -> caf::result<batch_done> {
      auto& st = self->state;
      ++st.batches;
      if (st.spec.fault_after_batches > 0 && st.batches == st.spec.fault_after_batches)
        throw std::runtime_error("injected executor fault"); // supervision tests
      auto fail = [&](const status& why) {
        return batch_done{job.batch_id, job.replica, to_error(why), {}, {}};
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
      if (!job.next_stages.empty()) {
        auto next = caf::actor_cast<shard_executor_actor>(job.next_stages.front());
        job.next_stages.erase(job.next_stages.begin());
        return self->delegate(next, atom::run_v, std::move(job));
      }
      auto merger = caf::actor_cast<merger_actor>(job.merger);
      return self->delegate(merger, atom::merge_v, std::move(job));
    },
  };
}

} // namespace

shard_executor_actor spawn_shard_executor(caf::actor_system& sys, shard_spec spec) {
  return sys.spawn<caf::detached>(shard_executor, std::move(spec));
}

} // namespace troupe
