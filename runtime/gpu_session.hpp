// gpu_session: a model compiled for one CUDA device, behind a CUDA-agnostic interface so code
// above runtime/ builds the same with or without the CUDA backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/gpu_precision.hpp"
#include "runtime/graph.hpp"
#include "runtime/serve/stage_link.hpp"

namespace troupe {

/// A session's rank in a tensor-parallel group of GPUs: the collective nodes of its rank graph
/// (split_tensor_parallel) run as NCCL calls on the session's stream. size 1: no group.
struct gpu_group_ticket {
  std::vector<std::byte> nccl_id; // make_nccl_unique_id's bytes, the same for every rank
  int rank = 0;
  int size = 1;
};

struct gpu_session_options {
  int device = 0;
  gpu_precision precision = gpu_precision::fp32;
  bool optimize = true; // run the graph passes (BN folding, fusions) first
  size_t max_cached_plans = 16;
  /// Eager runs of a plan before it is captured as a CUDA graph (0: never capture).
  uint32_t capture_after = 3;
  size_t max_value_bytes = size_t{8} << 30; // largest tensor a plan may create
  /// Fill every plan's activation arena with NaN bytes before each run, so a kernel that
  /// leaves an element unwritten shows up (the correctness tests use it).
  bool poison = false;
  /// run and run_async return the outputs as tensors on this GPU, in fresh blocks of its
  /// caching allocator, instead of host tensors: what a pipeline stage hands to a next stage
  /// that also runs on a GPU of this process, without a device-host-device round trip.
  bool device_outputs = false;
  /// Runs convolutions and the activations between them in NHWC memory (channels-last, as
  /// PyTorch's channels_last models do), inserting transposes where other operators need NCHW:
  /// cuDNN's tensor-core kernels then need no per-convolution transposes. Off by default until
  /// measured on a GPU; a plan with collectives stays NCHW.
  bool channels_last = false;
  /// How each convolution shape's cuDNN algorithm is chosen, once: by timing cuDNN's
  /// candidates on the shape's first run (true, as PyTorch's cudnn.benchmark; that first run
  /// takes longer) or from cuDNN's heuristics (false: no trial runs). Either way a candidate
  /// that refuses the case on its first run gives way to the next.
  bool benchmark_convolutions = true;
  /// Joining the group blocks the session's creation until every rank has joined.
  gpu_group_ticket group;
  /// Exchange links of a pipeline stage (size 1: none), joined after `group`: from the
  /// previous stage's rank 0 (this session is rank >= 1; run_async_received takes its inputs
  /// from it) and to every rank of the next stage (this session is rank 0, and sends each
  /// run's outputs, which must be device outputs, to ranks 1.. on its stream).
  gpu_group_ticket link_in, link_out;
};

/// A model ready to run on one GPU: plans per input dims (weights uploaded once per session,
/// activations in one device arena per plan), its own stream, pinned staging for the copies.
/// Up to `max_in_flight` (two) runs at a time: `run_async` may be called again before the first
/// completes, so the next batch's inputs are copied into pinned staging while the device runs
/// the current one; completions come from the session's completion thread in the order of the
/// calls. Inputs may be host tensors (copied in through pinned staging) or tensors on any GPU
/// of this process, e.g. another session's device outputs (copied device to device, across
/// GPUs as peer copies). The session keeps the device inputs and outputs of a run referenced
/// until the run two after it is enqueued (and, over a stage link, until they are sent) or the
/// session is destroyed, so their blocks are never reused while a copy or send of them is
/// pending.
class gpu_session {
public:
  using completion = std::function<void(expected<std::vector<tensor>>)>;
  static constexpr size_t max_in_flight = 2;

  /// Loads and compiles the model for batch 1 so unsupported operators fail at load;
  /// `unavailable` ("no usable CUDA device: <reason>") without a device or CUDA backend.
  static expected<std::unique_ptr<gpu_session>> open(const std::string& onnx_path,
                                                     gpu_session_options options = {});
  static expected<std::unique_ptr<gpu_session>> from_graph(graph g,
                                                           gpu_session_options options = {});
  /// ok when the backend lowers every node of `g` at `options.precision` for batch 1, as a
  /// session's first plan would be (host-side: no device needed, but the CUDA backend is);
  /// else the error that names the node. `g` is taken as given to from_graph.
  static status check(graph g, const gpu_session_options& options = {});
  /// `host` copied to GPU `device` (a block of its caching allocator, for no stream), once
  /// the copy is done: inputs that already live on the GPU (benchmarks, embedding programs).
  /// `unavailable` without a device or the CUDA backend.
  static expected<tensor> to_gpu(const tensor& host, int device);
  /// A GPU tensor copied to the host once the copy is done; a host tensor as it is.
  static expected<tensor> to_host(const tensor& t);
  virtual ~gpu_session() = default;

  virtual const std::vector<value_info>& inputs() const = 0;
  virtual const std::vector<value_info>& outputs() const = 0;
  /// Errors for inputs that do not match the model; ok otherwise.
  virtual status validate(std::span<const tensor> inputs) const = 0;
  /// Compiles (or finds) the plan for these dims; a compile error names the node.
  virtual status prepare(std::span<const shape> input_dims) = 0;
  /// Runs the inputs and returns the outputs (host ones unless `device_outputs`), blocking
  /// until the device is done.
  virtual expected<std::vector<tensor>> run(std::span<const tensor> inputs) = 0;
  /// Enqueues the run and returns; `done` is called once, with the outputs or the error, from
  /// the session's completion thread (it should only hand the result on; it may destroy the
  /// session), in the order of the calls, errors found while enqueuing included. Only a run beyond
  /// max_in_flight not yet completed is refused at once, from this call (`internal`).
  virtual void run_async(std::vector<tensor> inputs, completion done) = 0;
  /// run_async of the inputs the previous stage sends over `link_in`, as `what` describes
  /// them (ncclRecv on this session's stream into fresh device blocks, then the run); with
  /// `link_out`, the run's outputs are also sent to the next stage, on the stream.
  virtual void run_async_received(serve::linked_values what, completion done) {
    (void)what;
    done(make_error(errc::unsupported, "this session takes no inputs over a stage link"));
  }
  /// Why one of its stage links was aborted (a stage of the replica cannot load, or the
  /// replica is being dropped), or ok.
  virtual status link_status() const { return status::ok(); }
  /// Whether every send and receive over its links so far was enqueued: false once one failed,
  /// which leaves a link out of step with the messages (the stage must restart).
  virtual bool links_in_step() const { return true; }
  /// Whether the runs enqueued from now on return device outputs (gpu_session_options::
  /// device_outputs), e.g. to time the same plans with and without the copy out.
  virtual void set_device_outputs(bool on) = 0;
  virtual int device_index() const = 0;
  virtual gpu_precision precision() const = 0;
};

} // namespace troupe
