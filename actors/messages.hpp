// messages: the wire structs the actors exchange, with CAF 0.17 `inspect` overloads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "actors/type_ids.hpp"
#include "kernels/status.hpp"
#include "kernels/tensor.hpp"

namespace troupe {

// -- tensors ---------------------------------------------------------------------------------

/// A tensor goes on the wire as dtype, shape and its raw bytes (little-endian, the host order
/// of every platform troupe builds on). Between local actors the message holds the tensor
/// itself, so the buffer is shared, never copied. Loading checks that the byte count matches
/// dtype and shape before it allocates anything the peer did not send.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tensor& x) {
  uint8_t type = 0;
  shape dims;
  std::vector<char> bytes;
  if constexpr (Inspector::reads_state) {
    type = static_cast<uint8_t>(x.type());
    dims = x.dims();
    if (x.defined()) {
      const auto* p = static_cast<const char*>(x.raw());
      bytes.assign(p, p + x.nbytes());
    }
  }
  auto load = caf::meta::load_callback([&]() -> caf::error {
    if (type == static_cast<uint8_t>(dtype::undefined)) {
      x = tensor{};
      return caf::none;
    }
    if (type > static_cast<uint8_t>(dtype::boolean))
      return caf::make_error(caf::sec::invalid_argument, "tensor with unknown dtype");
    auto t = static_cast<dtype>(type);
    auto n = checked_bytes(dims, size_of(t));
    if (!n || static_cast<size_t>(*n) != bytes.size())
      return caf::make_error(caf::sec::invalid_argument,
                             "tensor bytes do not match its dtype and shape");
    x = tensor::empty(t, dims);
    std::copy(bytes.begin(), bytes.end(), static_cast<char*>(x.raw()));
    return caf::none;
  });
  return f(caf::meta::type_name("tensor"), type, dims, bytes, load);
}

// -- requests and replies --------------------------------------------------------------------

/// One inference request: inputs in the model's input order, each with the request's rows
/// as its first dimension (when the model batches).
struct infer_request {
  std::vector<tensor> inputs;
  uint32_t priority = 0;  // 1 is the highest; 0 = the model's default level
  int64_t timeout_us = 0; // 0 = the level's default; only shortens it where allowed
  uint64_t correlation_id = 0; // the client's own id, echoed in the response
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, infer_request& x) {
  return f(caf::meta::type_name("infer_request"), x.inputs, x.priority, x.timeout_us,
           x.correlation_id);
}

/// The outputs of one request, in the model's output order (views into the batch output).
/// The timing split is what frontends report as queue, compute-input and compute-infer
/// durations; the batch fields are set on the first reply of a batch only, so a frontend
/// counts each execution once without tracking batch ids.
struct infer_response {
  std::vector<tensor> outputs;
  uint64_t correlation_id = 0;
  int64_t queue_us = 0;         // admission to dispatch
  int64_t compute_input_us = 0; // concatenating the batch's input rows
  int64_t compute_infer_us = 0; // every stage's run time of the batch
  int64_t batch_rows = 0;       // rows of the batch (0 on all but the batch's first reply)
  std::vector<int32_t> stage_devices; // device of each stage (first reply only)
  std::vector<int64_t> stage_us;      // run time of each stage (first reply only)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, infer_response& x) {
  return f(caf::meta::type_name("infer_response"), x.outputs, x.correlation_id, x.queue_us,
           x.compute_input_us, x.compute_infer_us, x.batch_rows, x.stage_devices, x.stage_us);
}

// -- the batch path --------------------------------------------------------------------------

/// A batch for a replica: the batcher sends it to the replica's merger, which cuts it into
/// micro-batches, sends them through the stages and answers with the per-request replies.
struct batch_job {
  uint64_t batch_id = 0;
  uint64_t replica = 0;            // the batcher's credit index of the replica
  std::vector<tensor> values;      // the batch's inputs, rows concatenated
  std::vector<int64_t> rows;       // rows of each request, in the batcher's order
  std::vector<caf::actor> stages;  // shard_executor_actor handles, in pipeline order
  bool batched = true;             // false: the model has no batch dimension (one request)
  int64_t micro_rows = 0;          // rows per micro-batch; 0 = the whole batch at once
  uint32_t ranks = 1; // tensor-parallel ranks per stage: stages[s * ranks + r] is rank r of s
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_job& x) {
  return f(caf::meta::type_name("batch_job"), x.batch_id, x.replica, x.values, x.rows,
           x.stages, x.batched, x.micro_rows, x.ranks);
}

/// One micro-batch on its way through the stages: each stage replaces `values` by its outputs
/// and passes it on; the last one (or a failing one, with `error` set) sends it to the merger.
/// With tensor parallelism every rank of a stage gets the same job; rank 0 passes its outputs
/// on, the other ranks send the merger only a report (no values; `rank` set, `error` if any).
struct stage_job {
  uint64_t batch_id = 0;
  uint32_t micro = 0;                  // index of the micro-batch within its batch
  std::vector<tensor> values;          // the stage's inputs, its outputs after it ran
  std::vector<caf::actor> next_stages; // stages after the receiver (shard_executor_actor)
  caf::actor merger;                   // merger_actor of the replica
  std::vector<int64_t> stage_us;       // each stage appends its run time (µs)
  caf::error error;                    // set by the stage that failed
  uint32_t ranks = 1; // ranks per stage: next_stages hold groups of this many
  uint32_t rank = 0;  // set by the rank that reports to the merger (0: it carries the values)
  // With exchange links: `values` is empty and these describe what went over the link
  // (serve::linked_values: dtype codes and dims), which the receiving stage takes from it.
  std::vector<uint8_t> linked_types{};
  std::vector<std::vector<int64_t>> linked_dims{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_job& x) {
  return f(caf::meta::type_name("stage_job"), x.batch_id, x.micro, x.values, x.next_stages,
           x.merger, x.stage_us, x.error, x.ranks, x.rank, x.linked_types, x.linked_dims);
}

/// The outcome of a batch: one response per request in the batch's order, or an error that
/// answers all of them.
struct batch_done {
  uint64_t batch_id = 0;
  uint64_t replica = 0;
  caf::error error;
  std::vector<infer_response> replies;
  std::vector<int64_t> stage_us; // run time of each stage, summed over the micro-batches
  /// The error came from a stage that stopped: the replica is broken until its supervisor
  /// restarts it, so the batcher sends it nothing more (it may learn of the stop later).
  bool replica_lost = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_done& x) {
  return f(caf::meta::type_name("batch_done"), x.batch_id, x.replica, x.error, x.replies,
           x.stage_us, x.replica_lost);
}

// -- placement -------------------------------------------------------------------------------

/// The actors of one replica: its stages in order and its merger. With tensor parallelism
/// stages and devices hold every rank, stage by stage: [s * tensor_parallel + r].
struct replica_route {
  uint32_t slot = 0;               // which instance of the model (stable across restarts)
  std::vector<caf::actor> stages;  // shard_executor_actor handles
  caf::actor merger;               // merger_actor
  std::vector<int32_t> devices;    // device of each stage (rank)
  uint32_t tensor_parallel = 1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_route& x) {
  return f(caf::meta::type_name("replica_route"), x.slot, x.stages, x.merger, x.devices,
           x.tensor_parallel);
}

/// What the resource manager needs to place the replicas of one model version.
struct placement_request {
  std::string model;
  int64_t version = 1;
  std::string onnx_path;
  std::vector<std::vector<std::string>> boundaries; // split_graph_stages cuts: empty = one stage
  std::vector<uint64_t> stage_bytes;   // weights + activation arena of each stage (one rank)
  int64_t instances = 1;
  int64_t max_batch_size = 0;
  caf::actor owner; // the batcher told about restarted replicas
  int64_t fault_after_batches = -1; // test only: stage 0 of replica 0 throws on this batch
  int64_t tensor_parallel = 1;      // ranks per stage, each on a device of its own if possible
  int32_t fault_rank = 0;           // test only: the rank of stage 0 that throws
  // "cpu" (detached executors on CPU devices), "host_async" (asynchronous executors over CPU
  // sessions, on CPU devices) or "gpu" (asynchronous executors over GPU sessions).
  std::string backend = "cpu";
  std::vector<std::vector<int32_t>> instance_gpus{}; // gpu: per instance, its GPUs (empty: any)
  std::string precision = "fp32";                  // gpu: fp32, tf32, fp16 or bf16
  bool channels_last = false;                      // gpu: NHWC plans
  bool benchmark_convolutions = false;             // gpu: time cuDNN's algorithms per shape
  bool exchange_links = false; // activations between stages over exchange links (send/recv)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, placement_request& x) {
  return f(caf::meta::type_name("placement_request"), x.model, x.version, x.onnx_path,
           x.boundaries, x.stage_bytes, x.instances, x.max_batch_size, x.owner,
           x.fault_after_batches, x.tensor_parallel, x.fault_rank, x.backend, x.instance_gpus,
           x.precision, x.channels_last, x.benchmark_convolutions, x.exchange_links);
}

struct placement {
  std::vector<replica_route> replicas;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, placement& x) {
  return f(caf::meta::type_name("placement"), x.replicas);
}

// -- tensor-parallel groups ------------------------------------------------------------------

/// What the exchange actor is asked for: `count` groups of `size` ranks each, of `kind`.
struct group_request {
  std::string kind = "host"; // "host" (threads of this process) or "nccl" (GPUs)
  int32_t size = 1;
  uint32_t count = 1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, group_request& x) {
  return f(caf::meta::type_name("group_request"), x.kind, x.size, x.count);
}

/// How one rank joins its group: ids and bytes, never pointers. "host": the executor takes its
/// communicator from its process's group_registry by `group`, on its own thread; "nccl": it
/// joins with `unique_id`, the NCCL unique id's bytes (the same for every rank of the group).
struct group_ticket {
  uint64_t group = 0;
  int32_t rank = 0;
  int32_t size = 1;
  std::string kind = "host";
  std::vector<uint8_t> unique_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, group_ticket& x) {
  return f(caf::meta::type_name("group_ticket"), x.group, x.rank, x.size, x.kind, x.unique_id);
}

/// The groups of one group_request: tickets[g * size + r] is rank r of group g.
struct group_tickets {
  std::vector<group_ticket> tickets;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, group_tickets& x) {
  return f(caf::meta::type_name("group_tickets"), x.tickets);
}

// -- status ----------------------------------------------------------------------------------

struct device_status {
  int32_t index = 0;
  std::vector<int32_t> cores;
  uint64_t memory_bytes = 0;
  uint64_t used_bytes = 0;
  uint32_t stages = 0; // shard executors placed here
  // "cpu" (a core set) or "cuda" (index is the CUDA ordinal; used_bytes is what troupe's
  // caching allocator holds there, in use or cached).
  std::string kind = "cpu";
  std::string name; // the GPU's model; empty for CPU devices
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, device_status& x) {
  return f(caf::meta::type_name("device_status"), x.index, x.cores, x.memory_bytes,
           x.used_bytes, x.stages, x.kind, x.name);
}

struct replica_status {
  std::string model;
  int64_t version = 0;
  uint32_t slot = 0;
  std::vector<int32_t> devices; // per stage, or per rank: [s * tensor_parallel + r]
  uint64_t restarts = 0;
  uint32_t tensor_parallel = 1;
  std::string kind = "cpu"; // "cuda": devices are CUDA ordinals
  uint32_t links = 0;       // exchange links between its stages (stage_transport: exchange)
  std::string state = "serving"; // or "restarting" (an executor is down), "down" (for good)
  std::string error = {};        // why it is down
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_status& x) {
  return f(caf::meta::type_name("replica_status"), x.model, x.version, x.slot, x.devices,
           x.restarts, x.tensor_parallel, x.kind, x.links, x.state, x.error);
}

/// A batcher's counters: every accepted request ends in exactly one of completed,
/// timed_out, failed or (at shutdown) cancelled.
struct model_status {
  std::string model;
  int64_t version = 0;
  uint64_t queued = 0;
  uint64_t batches_in_flight = 0;
  uint64_t accepted = 0;
  uint64_t rejected = 0; // refused at admission (queue full, bad input)
  uint64_t completed = 0;
  uint64_t timed_out = 0;
  uint64_t failed = 0;
  uint64_t cancelled = 0;
  uint64_t batches = 0;
  uint32_t replicas = 0;
  std::string unavailable = {}; // why no replica can serve any more (their restarts gave up)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, model_status& x) {
  return f(caf::meta::type_name("model_status"), x.model, x.version, x.queued,
           x.batches_in_flight, x.accepted, x.rejected, x.completed, x.timed_out, x.failed,
           x.cancelled, x.batches, x.replicas, x.unavailable);
}

struct runtime_status {
  std::vector<device_status> devices;
  std::vector<replica_status> replicas;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, runtime_status& x) {
  return f(caf::meta::type_name("runtime_status"), x.devices, x.replicas);
}

// -- errors ----------------------------------------------------------------------------------

/// The CAF error category of troupe::errc.
caf::atom_value error_category();
caf::error to_error(errc code, std::string message);
caf::error to_error(const status& st);
/// The troupe code of an error: its own code for troupe errors, unavailable for CAF's
/// "actor down" errors, internal for the rest; nullopt for no error.
std::optional<errc> errc_of(const caf::error& err);

/// The message of an error for a client: the text a troupe error carries, or CAF's rendering.
std::string message_of(const caf::error& err);

/// Registers troupe's type-ID block and error category; call on the config before the
/// actor_system is constructed.
void add_troupe_types(caf::actor_system_config& cfg);

} // namespace troupe
