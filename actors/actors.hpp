// actors: every typed actor interface of troupe, and the factories that spawn them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/expected.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"
#include "kernels/cpu/cpu_context.hpp"
#include "runtime/config/model_config.hpp"
#include "runtime/gpu_precision.hpp"
#include "runtime/graph.hpp"
#include "runtime/serve/restart_backoff.hpp"

namespace troupe {

/// One per model version: admits, queues and batches requests and owns every reply.
using batcher_actor = caf::typed_actor<
    // Admits a request; the reply (outputs or an error) comes exactly once.
    caf::replies_to<atom::infer, infer_request>::with<infer_response>,
    // Adds a replica (its stage chain and merger) whose credits batches may use.
    caf::reacts_to<atom::replica, replica_route>,
    // A supervised replica lost an executor (slot, why): fail what it holds and send it nothing
    // until `restarted` brings its new route.
    caf::reacts_to<atom::lost, uint32_t, std::string>,
    // A supervised replica was restarted: swap in its new route, fail what the old one held.
    caf::reacts_to<atom::restarted, replica_route>,
    // A supervised replica will not come back (slot, why: its restart gave up). Once no
    // replica is left, what is queued and what comes is answered `unavailable` with why.
    caf::reacts_to<atom::gone, uint32_t, std::string>,
    // The batcher's one timer (queue delay, request deadlines); stale generations are ignored.
    caf::reacts_to<atom::tick, uint64_t>,
    // Queue length, batches in flight and the reply counters.
    caf::replies_to<atom::status>::with<model_status>,
    // Refuses new requests (unavailable), serves everything admitted, then replies (unload).
    caf::replies_to<atom::drain>::with<model_status>,
    // Answers everything queued or running with `unavailable`, replies its final counters, quits.
    caf::replies_to<atom::shutdown>::with<model_status>>;

/// One stage of one replica, on one device; runs its sub-graph on its own thread (detached).
using shard_executor_actor = caf::typed_actor<
    // Runs the stage on a micro-batch and sends it on to the next stage, or to the merger when
    // it is the last stage or the run failed.
    caf::reacts_to<atom::run, stage_job>>;

/// An executor whose model runs asynchronously (a GPU session, or a CPU session on a thread of
/// its own); a scheduled actor that queues jobs while a run is in flight (async_executor.cpp).
using async_executor_actor = shard_executor_actor::extend<
    // The loader has left the model (or why it failed) where the executor finds it.
    caf::reacts_to<atom::loaded>,
    // A run completed: the job with its outputs as values, or with its error set.
    caf::reacts_to<atom::done, stage_job>>;

/// The ends of a replica's pipeline: cuts a batch into micro-batches for stage 0, reassembles
/// what the last stage returns and splits it into per-request replies.
using merger_actor = caf::typed_actor<
    // Sends the batch through the stages as micro-batches; replies once, when all are back
    // or the first failed (a stage that stops fails every batch it may hold).
    caf::replies_to<atom::run, batch_job>::with<batch_done>,
    // A micro-batch back from the last stage, or from the stage that failed it.
    caf::reacts_to<atom::merge, stage_job>>;

/// Sets up the collective groups tensor-parallel ranks join and hands out their tickets
/// (exchange.cpp); host groups live in the process's group_registry, found by id.
using exchange_actor = caf::typed_actor<
    // Creates `count` groups of `size` ranks; replies one ticket per rank, group by group.
    caf::replies_to<atom::group, group_request>::with<group_tickets>,
    // Aborts a group: its ranks' waiting and later collectives fail with this reason.
    caf::reacts_to<atom::abort, uint64_t, std::string>,
    // Forgets a group whose ranks are gone.
    caf::reacts_to<atom::release, uint64_t>>;

/// Knows the devices, places replicas on them and supervises their executors.
using resource_manager_actor = caf::typed_actor<
    // Places and spawns every replica of a model version, or says what would fit.
    caf::replies_to<atom::place, placement_request>::with<placement>,
    // Retires the replicas of a model version (stops their actors, frees device memory).
    caf::reacts_to<atom::retire, std::string, int64_t>,
    // Devices (cores, memory used) and replicas (placement, restarts).
    caf::replies_to<atom::status>::with<runtime_status>,
    // Internal (its own delayed message): tries again to get the groups of a restart
    // (model, version, slot, stage or 0 for a linked replica, the restart's epoch).
    caf::reacts_to<atom::restart, std::string, int64_t, uint32_t, uint32_t, uint64_t>,
    // Stops every executor and merger it spawned, then quits.
    caf::replies_to<atom::shutdown>::with<caf::ok_atom>>;

/// Carries HTTP frontend requests to batchers with a bounded number outstanding and completes
/// each HTTP reply from the batcher's answer (http_frontend.cpp).
using http_bridge_actor = caf::typed_actor<
    // A request whose reply context is `ticket` in the frontend's pending table, for a batcher.
    caf::reacts_to<atom::infer, uint64_t, caf::actor, infer_request>>;

// -- factories -------------------------------------------------------------------------------

struct batcher_options {
  std::string model;
  int64_t version = 1;
  model_config config;
  std::vector<value_info> inputs;  // from the ONNX file
  std::vector<value_info> outputs;
};

/// Checks the batching settings of the config and spawns the batcher (no replicas yet).
caf::expected<batcher_actor> spawn_batcher(caf::actor_system& sys, batcher_options options);

/// What runs a shard: `cpu` a session on the detached executor's thread; `host_async` and
/// `gpu` the asynchronous executor over a CPU session on its own thread or a gpu_session.
enum class executor_backend : uint8_t { cpu, host_async, gpu };

struct shard_spec {
  std::string onnx_path;
  std::vector<std::vector<std::string>> boundaries; // empty: the whole model is this one stage
  int stage = 0;                                    // index into the boundaries' stages
  cpu::cpu_limits limits;
  int64_t fault_after_batches = -1; // test only: throw while handling this (1-based) batch
  group_ticket group; // tensor parallelism: this executor is rank group.rank of group.size
  executor_backend backend = executor_backend::cpu;
  int32_t gpu = 0; // backend gpu: the CUDA device
  gpu_precision precision = gpu_precision::fp32;
  bool channels_last = false; // backend gpu: NHWC plans
  bool benchmark_convolutions = false; // backend gpu: time cuDNN's algorithms per shape
  // Exchange links (stage_transport: exchange): this executor receives its stage's inputs from
  // the previous stage's rank 0 (link_in, its rank >= 1) and, as rank 0, sends its outputs to
  // every rank of the next stage (link_out, its rank 0). Size 1: no link.
  group_ticket link_in;
  group_ticket link_out;
};

/// Spawns the executor spec.backend asks for: for `cpu` a detached one that loads its stage on
/// its own thread, else spawn_async_executor's.
shard_executor_actor spawn_shard_executor(caf::actor_system& sys, shard_spec spec);

/// Spawns a scheduled executor for the `host_async` or `gpu` backend (one stage, or one
/// tensor-parallel rank of it); a loader on a thread of its own opens the model, jobs queue
/// until it is there.
async_executor_actor spawn_async_executor(caf::actor_system& sys, shard_spec spec);

merger_actor spawn_merger(caf::actor_system& sys);

/// Spawns an exchange; it aborts and releases the host groups it created when it stops.
exchange_actor spawn_exchange(caf::actor_system& sys);

struct resource_options {
  int cpu_devices = 1;            // disjoint core sets over `cores`
  std::vector<int> cores;         // empty: every core this process may use
  uint64_t memory_per_device = 0; // 0: physical memory divided by the devices
  /// A restart whose groups the exchange refuses is tried again after these waits, then the
  /// replica is reported down (status, and its batcher answers `unavailable`).
  serve::restart_backoff restart_backoff;
  uint32_t refuse_restart_groups = 0; // test only: refuse this many restarts' group requests
};

/// Errors when the devices cannot be built (more devices than cores).
caf::expected<resource_manager_actor> spawn_resource_manager(caf::actor_system& sys,
                                                             resource_options options);

} // namespace troupe
