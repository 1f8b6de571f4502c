// shard_executor: a detached actor that owns one stage's session (or one tensor-parallel rank
// of it) and runs micro-batches on its thread.
#include <chrono>
#include <memory>

#include "actors/actors.hpp"
#include "actors/executor_setup.hpp"
#include "actors/stage_forward.hpp"
#include "runtime/serve/stage_link.hpp"
#include "runtime/session.hpp"

namespace troupe {

namespace {

struct shard_state {
  static inline const char* name = "troupe.shard_executor";
  shard_spec spec;
  std::unique_ptr<communicator> comm; // before the session that uses it, so it outlives it
  host_links links;                   // exchange links to the previous and next stage
  std::unique_ptr<session> model;
  status load_error;
  int64_t batches = 0;

  bool parallel() const { return spec.group.size > 1; }
  std::string where() const {
    return parallel() ? fmt::format("stage {} rank {}", spec.stage, spec.group.rank)
                      : fmt::format("stage {}", spec.stage);
  }
};

/// Loads the stage on the executor's own thread: the session's plans, oneDNN primitives and
/// core pinning all belong to the thread that runs them.
status load_stage(shard_state& st) {
  auto part = load_executor_graph(st.spec);
  if (!part)
    return part.error();
  session_options options;
  options.limits = st.spec.limits;
  options.optimize = false; // load_stage_graph optimized it before cutting
  if (st.parallel()) {
    auto comm = join_host_group(st.spec.group);
    if (!comm)
      return comm.error();
    st.comm = std::move(*comm);
    options.comm = st.comm.get();
  }
  auto links = join_host_links(st.spec);
  if (!links)
    return links.error();
  st.links = std::move(*links);
  auto s = session::from_graph(std::move(*part), options);
  if (!s)
    return s.error();
  st.model = std::move(*s);
  return status::ok();
}



/// A job's link traffic failed (serve::on_link_failure says what that means).
void link_failed(shard_executor_actor::stateful_pointer<shard_state> self, stage_job&& job,
                 const communicator* link, const status& why, uint32_t rank) {
  auto& st = self->state;
  const status aborted = link ? link->aborted() : status::ok();
  if (serve::on_link_failure(aborted, false) == serve::link_failure::fail_job)
    return fail_job(self, std::move(job), to_error(aborted.with_context(st.where())), rank);
  self->quit(to_error(why.with_context(st.where())));
}

shard_executor_actor::behavior_type
shard_executor(shard_executor_actor::stateful_pointer<shard_state> self, shard_spec spec) {
  self->state.spec = std::move(spec);
  // A throw here would end the executor before it answers anything, and its supervisor would
  // start it again at once, in a loop: it becomes the load error every batch fails with.
  try {
    self->state.load_error = load_stage(self->state);
  } catch (const std::exception& e) {
    self->state.load_error =
        make_error(errc::resource_exhausted, "loading the stage: {}", e.what());
  }
  // A rank that cannot load would leave the others waiting in their first collective: it
  // aborts the group, so every batch fails on every rank (as a stage that cannot load does).
  if (!self->state.load_error)
    abort_rank_group(self->state.spec, self->state.load_error.with_context(self->state.where()));
  return {
    [self](atom::run, stage_job& job) {
      auto& st = self->state;
      count_batch(st.batches, st.spec);
      const uint32_t rank = st.parallel() ? static_cast<uint32_t>(st.spec.group.rank) : 0;
      if (!st.load_error)
        return fail_job(self, std::move(job), to_error(st.load_error.with_context(st.where())),
                        rank);
      if (!job.linked_types.empty() || !job.linked_dims.empty()) {
        const serve::linked_values what{std::move(job.linked_types), std::move(job.linked_dims)};
        job.linked_types.clear();
        job.linked_dims.clear();
        if (!st.links.in) // nothing was sent to this stage: only the job fails
          return fail_job(self, std::move(job),
                          to_error(errc::invalid_argument,
                                   fmt::format("{}: the job's values went over a link, but the "
                                               "stage has none from the previous stage",
                                               st.where())),
                          rank);
        // Values that do not fit this stage are not received: they stay on the link.
        if (auto bad = serve::check_linked_inputs(what, st.model->inputs()); !bad)
          return link_failed(self, std::move(job), st.links.in.get(), bad, rank);
        auto values = serve::receive_values(*st.links.in, what);
        if (!values)
          return link_failed(self, std::move(job), st.links.in.get(), values.error(), rank);
        job.values = std::move(*values);
      }
      const auto started = std::chrono::steady_clock::now();
      auto outputs = st.model->run(job.values);
      if (!outputs) {
        // A rank that fails by itself (its group still runs) stops instead of answering: the
        // resource manager aborts the group, so no other rank stays blocked in a collective,
        // and rebuilds the stage's ranks; the merger and the batcher learn it from the stop,
        // before any batch fails, so they send nothing more to the broken group.
        // (Asked of the communicator: the registry forgets a group once it is released.)
        if (st.parallel() && st.comm && st.comm->aborted().is_ok())
          return self->quit(to_error(outputs.error().with_context(st.where())));
        return fail_job(self, std::move(job), to_error(outputs.error().with_context(st.where())),
                        rank);
      }
      if (rank != 0) { // rank 0's outputs are the stage's; the others only report
        job.values.clear();
        job.rank = rank;
        return self->send(caf::actor_cast<merger_actor>(job.merger), atom::merge_v,
                          std::move(job));
      }
      job.stage_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count());
      job.values = std::move(*outputs);
      if (st.links.out && !job.next_stages.empty()) {
        // Over the link first (buffered: it returns at once), then the message that says
        // what went there.
        if (auto sent = serve::send_values(*st.links.out, job.values); !sent)
          return link_failed(self, std::move(job), st.links.out.get(), sent, rank);
        auto what = serve::describe(job.values);
        job.values.clear();
        job.linked_types = std::move(what.types);
        job.linked_dims = std::move(what.dims);
      }
      pass_on(self, std::move(job));
    },
  };
}

} // namespace

shard_executor_actor spawn_shard_executor(caf::actor_system& sys, shard_spec spec) {
  if (spec.backend != executor_backend::cpu)
    return caf::actor_cast<shard_executor_actor>(spawn_async_executor(sys, std::move(spec)));
  return sys.spawn<caf::detached>(shard_executor, std::move(spec));
}

} // namespace troupe
