// async_model: a loaded model whose runs complete through a callback on another thread, so
// a scheduled actor can serve it without blocking (the GPU session, or a CPU session on a
// thread of its own).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/gpu_session.hpp"
#include "runtime/graph.hpp"
#include "runtime/session.hpp"

namespace troupe {

/// Up to max_in_flight() runs at a time: a caller may start that many before the first
/// completes, so the next run's preparation (copying its inputs in) overlaps the current one.
/// Runs complete in the order they were started.
class async_model {
public:
  using completion = std::function<void(expected<std::vector<tensor>>)>;

  virtual ~async_model() = default;
  virtual const std::vector<value_info>& inputs() const = 0;
  virtual const std::vector<value_info>& outputs() const = 0;
  /// Starts a run and returns; `done` is called exactly once with the outputs or the error
  /// (bad inputs included), from the model's own threads (the GPU model submits from one and
  /// completes on another) or, when the host model's run cannot start, from this call. `done`
  /// should only hand the result on.
  virtual void run_async(std::vector<tensor> inputs, completion done) = 0;
  /// How many runs may be started and not completed yet (at least 1).
  virtual size_t max_in_flight() const = 0;
  /// Starts a run whose inputs the previous stage sent over this stage's link, as `what`
  /// describes them, when the model's session holds the link (the GPU's, which receives and
  /// sends on its streams); others refuse through `done`: their executor moves the values.
  virtual void run_async_received(serve::linked_values what, completion done) {
    (void)what;
    done(make_error(errc::unsupported, "this model takes no inputs over a stage link"));
  }
  /// Why a stage link its session holds was aborted, or ok (also without links).
  virtual status link_status() const { return status::ok(); }
  /// Whether its session's links are still in step with the messages (gpu_session).
  virtual bool links_in_step() const { return true; }
};

/// Opens `g` (a whole model, a pipeline stage or a tensor-parallel rank) on one GPU
/// (gpu_session::from_graph, then plans compiled for batch 1 so an unsupported operator fails
/// here; this may take seconds); `unavailable` ("no usable CUDA device: ...") without a device.
/// The session takes and returns host tensors through its pinned staging; run_async only
/// queues the run for a submit thread of the model's own, which enqueues it on the GPU.
expected<std::unique_ptr<async_model>> open_gpu_model(graph g, gpu_session_options options);

/// A CPU session on a thread of its own that runs each run_async there and calls `done` from
/// it: the asynchronous path without a GPU (tests, baseline). The session is built and always
/// run on that thread (its plans and core pinning belong to it); this returns once it is
/// built, or with the error that stopped it.
expected<std::unique_ptr<async_model>> open_host_model(graph g, session_options options);

} // namespace troupe
