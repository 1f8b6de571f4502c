// async_executor: a scheduled actor that serves one stage, or one tensor-parallel rank of it,
// through an async_model (a GPU session, or a CPU session on a thread of its own). It never
// waits on the model: each run's completion comes back as a message from the model's thread.
// It keeps up to the model's max_in_flight() runs started (two: the next batch's inputs are
// copied in while the current one runs), and the jobs beyond wait in the actor, in order.
#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include "actors/actors.hpp"
#include "actors/executor_setup.hpp"
#include "actors/stage_forward.hpp"
#include "runtime/serve/async_model.hpp"
#include "runtime/serve/run_timeline.hpp"

namespace troupe {

namespace {

/// An opened model and, for a rank of a host group, the communicator its session uses.
struct opened_model {
  std::unique_ptr<communicator> comm; // before the model, so it outlives the model's session
  host_links links; // a host stage's exchange links (a GPU session holds its own)
  std::unique_ptr<async_model> model;
};

/// Where the loader leaves the model for its executor (pointers never go in a message).
struct load_slot {
  std::mutex mutex;
  opened_model opened;
  status error;
};

struct async_state {
  static inline const char* name = "troupe.async_executor";
  shard_spec spec;
  std::string where; // the context of this stage's errors
  std::shared_ptr<load_slot> slot = std::make_shared<load_slot>();
  bool loaded = false;
  opened_model opened; // no model after loading: load_error says why
  status load_error;
  std::deque<stage_job> queue;
  serve::run_timeline runs; // started and not completed
  bool stopping = false;     // quit: no further run starts
  int64_t batches = 0;

  caf::actor_system* system = nullptr; // spawns the disposer of a rank's model

  bool parallel() const { return spec.group.size > 1; }
  bool linked() const { return spec.link_in.size > 1 || spec.link_out.size > 1; }
  uint32_t rank() const { return parallel() ? static_cast<uint32_t>(spec.group.rank) : 0; }

  ~async_state();
};

/// Destroys a rank's (or a linked stage's) model on a thread of its own: its run may wait in a
/// collective, a send or a recv for a peer that is gone until the resource manager has the
/// group aborted, and a scheduler thread blocked on it could be the one the exchange needs for
/// that abort.
void dispose(caf::blocking_actor*, std::shared_ptr<load_slot> slot) {
  std::lock_guard lock{slot->mutex};
  slot->opened.model.reset(); // first: its session uses the communicator
  slot->opened.comm.reset();
  slot->opened.links = {};
}

async_state::~async_state() {
  if (!(parallel() || linked()) || !opened.model || !system)
    return;
  {
    std::lock_guard lock{slot->mutex};
    slot->opened = std::move(opened);
  }
  system->spawn(dispose, slot);
}

using async_pointer = async_executor_actor::stateful_pointer<async_state>;

std::string where_of(const shard_spec& spec) {
  const auto rank =
      spec.group.size > 1 ? fmt::format("stage {} rank {}", spec.stage, spec.group.rank)
                          : fmt::format("stage {}", spec.stage);
  if (spec.backend == executor_backend::gpu)
    return fmt::format("{} on cuda:{} ({})", rank, spec.gpu, to_string(spec.precision));
  return rank + " on a host thread";
}

expected<opened_model> open_model(const shard_spec& spec) {
  auto part = load_executor_graph(spec);
  if (!part)
    return part.error();
  opened_model out;
  if (spec.backend == executor_backend::gpu) {
    // Activations between GPU stages stay on the GPUs: a stage's outputs are device tensors
    // that the next stage's session copies in device to device (peer copies across GPUs);
    // the first stage's inputs and the last stage's outputs go through pinned staging.
    gpu_session_options options;
    options.device = spec.gpu;
    options.precision = spec.precision;
    options.optimize = false; // load_stage_graph optimized it before cutting
    options.device_outputs = hands_on_device(spec);
    options.channels_last = spec.channels_last;
    options.benchmark_convolutions = spec.benchmark_convolutions;
    // Its group, and its links: the session receives its inputs and sends its outputs on
    // its streams.
    TROUPE_TRY_STATUS(nccl_groups_of(spec, options));
    auto model = open_gpu_model(std::move(*part), std::move(options));
    if (!model)
      return model.error();
    out.model = std::move(*model);
    return out;
  }
  session_options options;
  options.limits = spec.limits;
  options.optimize = false;
  if (spec.group.size > 1) {
    auto comm = join_host_group(spec.group);
    if (!comm)
      return comm.error();
    out.comm = std::move(*comm);
    options.comm = out.comm.get();
  }
  auto links = join_host_links(spec);
  if (!links)
    return links.error();
  out.links = std::move(*links);
  auto model = open_host_model(std::move(*part), options);
  if (!model)
    return model.error();
  out.model = std::move(*model);
  return out;
}

/// The loader: a blocking actor, so opening the model (compiling plans: seconds on a GPU) has
/// a thread of its own and stalls no scheduler thread; the actor system waits for it at exit.
void load(caf::blocking_actor*, shard_spec spec, std::shared_ptr<load_slot> slot,
          caf::weak_actor_ptr executor) {
  // A throw would end this actor without a word, and the executor would wait for `loaded`
  // forever: it becomes the load error.
  expected<opened_model> opened = make_error(errc::internal, "not opened");
  try {
    opened = open_model(spec);
  } catch (const std::exception& e) {
    opened = make_error(errc::resource_exhausted, "opening the model: {}", e.what());
  }
  // A rank that cannot load would leave the others waiting in their first collective (a host
  // group) or in joining (an NCCL group): it aborts its group, so every batch fails on every
  // rank (as a stage that cannot load does).
  if (!opened)
    abort_rank_group(spec, opened.error().with_context(where_of(spec)));
  {
    std::lock_guard lock{slot->mutex};
    if (opened)
      slot->opened = std::move(*opened);
    else
      slot->error = opened.error();
  }
  if (auto strong = executor.lock())
    caf::anon_send(caf::actor_cast<async_executor_actor>(strong), atom::loaded_v);
}

/// A job's link traffic failed (serve::on_link_failure says what that means). `link` is null
/// for a GPU session's links, whose abort the session reports.
void link_failed(async_pointer self, stage_job&& job, const communicator* link,
                 const status& why) {
  auto& st = self->state;
  const status aborted = link ? link->aborted() : st.opened.model->link_status();
  if (serve::on_link_failure(aborted, false) == serve::link_failure::fail_job)
    return fail_job(self, std::move(job), to_error(aborted.with_context(st.where)), st.rank());
  st.stopping = true;
  self->quit(to_error(why.with_context(st.where)));
}

/// Starts one run: the oldest queued job. Its inputs come in the job, or over the stage's
/// link: a host link's from the actor (the sender put them there before its message, so
/// receiving does not wait), a GPU link's from the session, on its stream.
void start_one(async_pointer self) {
  auto& st = self->state;
  auto job = std::move(st.queue.front());
  st.queue.pop_front();
  auto inputs = std::move(job.values);
  job.values.clear();
  serve::linked_values linked{std::move(job.linked_types), std::move(job.linked_dims)};
  job.linked_types.clear();
  job.linked_dims.clear();
  // What the message says went over the link must fit this stage before anything is received
  // (host) or enqueued (GPU). Values that do not fit stay on the link, out of step.
  if (!linked.empty() || !linked.dims.empty()) {
    if (!st.opened.links.in && st.spec.link_in.size <= 1) // nothing was sent to this stage
      return fail_job(self, std::move(job),
                      to_error(errc::invalid_argument,
                               fmt::format("{}: the job's values went over a link, but the stage "
                                           "has none from the previous stage", st.where)),
                      st.rank());
    if (auto bad = serve::check_linked_inputs(linked, st.opened.model->inputs()); !bad)
      return link_failed(self, std::move(job), st.opened.links.in.get(), bad);
  }
  if (!linked.empty() && st.opened.links.in) {
    auto received = serve::receive_values(*st.opened.links.in, linked);
    if (!received)
      return link_failed(self, std::move(job), st.opened.links.in.get(), received.error());
    inputs = std::move(*received);
    linked = {};
  }
  st.runs.started(std::chrono::steady_clock::now());
  // Runs on the model's thread (the GPU session's completion thread): it only hands the
  // result to the actor. The handle is weak so a model never keeps its executor alive.
  caf::weak_actor_ptr me{self->ctrl()};
  auto done = [me, job = std::move(job),
               where = st.where](expected<std::vector<tensor>> outputs) mutable {
    if (outputs)
      job.values = std::move(*outputs);
    else
      job.error = to_error(outputs.error().with_context(where));
    if (auto strong = me.lock())
      caf::anon_send(caf::actor_cast<async_executor_actor>(strong), atom::done_v, std::move(job));
  };
  if (!linked.empty())
    st.opened.model->run_async_received(std::move(linked), std::move(done));
  else
    st.opened.model->run_async(std::move(inputs), std::move(done));
}

/// Starts the oldest queued jobs while the model takes more runs; fails the queue when it
/// cannot load.
void start_next(async_pointer self) {
  auto& st = self->state;
  if (!st.loaded || st.stopping)
    return;
  if (!st.opened.model) {
    while (!st.queue.empty()) {
      auto job = std::move(st.queue.front());
      st.queue.pop_front();
      fail_job(self, std::move(job), to_error(st.load_error.with_context(st.where)), st.rank());
    }
    return;
  }
  const size_t most = std::max<size_t>(st.opened.model->max_in_flight(), 1);
  while (!st.queue.empty() && st.runs.in_flight() < most && !st.stopping)
    start_one(self);
}

/// A run's outcome (`took`: its own time, the stage's reported time): an error goes to the
/// merger, rank 0's outputs on to the next stage, the other ranks only report.
void finish(async_pointer self, stage_job&& job, std::chrono::steady_clock::duration took) {
  auto& st = self->state;
  if (job.error) {
    auto why = std::move(job.error);
    // As the CPU executor does: a rank that fails by itself (its group still runs) stops, and
    // the resource manager aborts the group and rebuilds the stage's ranks; one whose host
    // group was aborted fails the batch. A GPU rank always stops: its NCCL group's abort shows
    // only in its session's error, and the resource manager rebuilds every rank of the stage.
    if (st.parallel() && !(st.opened.comm && !st.opened.comm->aborted().is_ok())) {
      st.stopping = true;
      return self->quit(std::move(why));
    }
    // A GPU stage whose send or receive failed stops too: its link is out of step with the
    // messages, and its replica restarts with fresh links. An aborted link (a stage that
    // cannot load) fails every batch instead, as with a group; any other failed run (a data
    // error) sent and received in step, and fails only its batch.
    if (st.linked() && st.spec.backend == executor_backend::gpu) {
      const status aborted = st.opened.model->link_status();
      if (!aborted.is_ok())
        why = to_error(aborted.with_context(st.where));
      if (serve::on_link_failure(aborted, st.opened.model->links_in_step()) ==
          serve::link_failure::restart_replica) {
        st.stopping = true;
        return self->quit(std::move(why));
      }
    }
    return fail_job(self, std::move(job), std::move(why), st.rank());
  }
  if (st.rank() != 0) { // rank 0's outputs are the stage's
    job.values.clear();
    job.rank = st.rank();
    return self->send(caf::actor_cast<merger_actor>(job.merger), atom::merge_v, std::move(job));
  }
  job.stage_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(took).count());
  if (st.spec.link_out.size > 1 && !job.next_stages.empty()) {
    // The values go over the link (a GPU session already sent them, on its link's stream; a
    // host link takes them now, buffered), the message says what went there.
    if (st.opened.links.out)
      if (auto sent = serve::send_values(*st.opened.links.out, job.values); !sent)
        return link_failed(self, std::move(job), st.opened.links.out.get(), sent);
    auto what = serve::describe(job.values);
    job.values.clear();
    job.linked_types = std::move(what.types);
    job.linked_dims = std::move(what.dims);
  }
  pass_on(self, std::move(job));
}

async_executor_actor::behavior_type async_executor(async_pointer self, shard_spec spec) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.where = where_of(st.spec);
  st.system = &self->system();
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
        st.opened = std::move(st.slot->opened);
        st.load_error = st.slot->error;
      }
      st.loaded = true;
      start_next(self);
    },
    [self](atom::done, stage_job& job) {
      // Runs complete in the order they started.
      const auto took = self->state.runs.completed(std::chrono::steady_clock::now());
      finish(self, std::move(job), took);
      start_next(self);
    },
  };
}

} // namespace

async_executor_actor spawn_async_executor(caf::actor_system& sys, shard_spec spec) {
  return sys.spawn(async_executor, std::move(spec));
}

} // namespace troupe
