// gpu_plan: a lowered graph bound to device memory (constants uploaded, one activation arena)
// and run on a stream, eagerly or as a captured CUDA graph.
#pragma once

#include <cstdint>
#include <array>
#include <map>
#include <set>
#include <tuple>
#include <memory>
#include <vector>

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "kernels/cuda/cublas_gemm.hpp"
#include "kernels/communicator.hpp"
#include "kernels/cuda/cudnn_conv.hpp"
#include "runtime/cuda/gpu_lowering.hpp"

namespace troupe::gpu {

/// What the steps of a session's plans share: the device, the session's stream, library
/// handles, algorithm caches and, for a tensor-parallel rank, the group's communicator (which
/// enqueues on the same stream).
struct gpu_context {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasLtHandle_t lt = nullptr;
  cuda::conv_algo_cache* conv_cache = nullptr;
  cuda::gemm_algo_cache* gemm_cache = nullptr;
  communicator* comm = nullptr;
};

/// Device copies of the model's initializers, shared by every plan of a session (keyed by
/// the host buffer, which the session's graph keeps alive). Folded constants, which differ
/// per plan, are not cached here.
class weight_store {
public:
  /// `initializers` are the host buffers that may be cached (the graph's initializers).
  explicit weight_store(std::vector<const void*> initializers)
    : cacheable_(initializers.begin(), initializers.end()) {}
  /// The device copy of `host` converted to `type` and, when `perm` is not empty, with its
  /// dims permuted (see gpu_value::upload_perm), uploaded now if new.
  expected<std::shared_ptr<storage>> upload(const gpu_context& ctx, const tensor& host,
                                            dtype type, const std::vector<int64_t>& perm = {});
  /// Releases every uploaded weight (to the caching allocator, on the stream it was uploaded
  /// for): the owner calls it while that stream still exists.
  void clear() { cached_.clear(); }

private:
  std::set<const void*> cacheable_;
  std::map<std::tuple<const void*, dtype, std::vector<int64_t>>, std::shared_ptr<storage>> cached_;
};

class gpu_plan {
public:
  /// Uploads the constants (host data must be alive during the call), allocates the arena,
  /// the workspace and the pinned staging buffers, and settles every algorithm choice.
  static expected<std::unique_ptr<gpu_plan>> create(lowered_graph lowered,
                                                    const gpu_context& ctx,
                                                    weight_store& weights);
  ~gpu_plan();
  gpu_plan(const gpu_plan&) = delete;
  gpu_plan& operator=(const gpu_plan&) = delete;

  /// Enqueues the input copies, the steps (per the capture policy after `capture_after`
  /// runs; never captured with a collective step) and the output copies on ctx.stream, and
  /// returns the run's slot for `collect`. At most two runs in flight: each has a slot of its
  /// own (pinned staging, output blocks), so the next run's inputs are copied into staging
  /// while the current one runs. Host inputs are read now; device inputs, on any GPU and
  /// complete, are copied on the stream and must stay alive until it has passed this run.
  /// `poison` first fills the whole arena with NaN bytes. `device_outputs`: the outputs are
  /// copied into fresh device blocks (released only once idle, so allocated for no stream)
  /// rather than to the host; the slot holds them until it is used again.
  expected<size_t> enqueue(const gpu_context& ctx, std::span<const tensor> inputs,
                           uint32_t capture_after, bool poison, bool device_outputs);
  /// After the stream has passed the run of `slot`: its outputs (host tensors, or the device
  /// ones of an enqueue with `device_outputs`), or the error a Gather's out-of-range index
  /// raised. Makes no CUDA call and releases no device memory.
  expected<std::vector<tensor>> collect(size_t slot) const;
  /// Drops the device outputs `slot` holds, once its run is over and collected (the session
  /// does when a later run no longer needs them kept).
  void release(size_t slot) { slots_.at(slot).device_outputs.clear(); }
  /// The device outputs of an enqueue with `device_outputs`, right after it (written once the
  /// stream has passed the run): what a stage sends over its link, on the same stream.
  const std::vector<tensor>& device_outputs_of(size_t slot) const {
    return slots_.at(slot).device_outputs;
  }

  const lowered_graph& lowered() const { return lowered_; }
  size_t arena_bytes() const { return arena_bytes_; }
  bool captured() const { return graph_exec_ != nullptr; }
  uint64_t runs() const { return runs_; }

private:
  gpu_plan() = default;
  void* pointer(int value) const;
  status run_steps(const gpu_context& ctx);
  status run_step(const gpu_context& ctx, const gpu_step& s);
  status capture(const gpu_context& ctx);
  /// What one of the (at most two) runs in flight owns.
  struct run_slot {
    std::vector<std::shared_ptr<storage>> staging_in, staging_out; // pinned
    std::shared_ptr<storage> flag_host;                            // pinned
    std::vector<tensor> device_outputs; // with device outputs: until the slot is used again
    bool outputs_on_device = false;
  };
  status copy_in(const gpu_context& ctx, run_slot& slot, size_t i, const tensor& input);
  status copy_out(const gpu_context& ctx, run_slot& slot, bool device_outputs);

  lowered_graph lowered_;
  std::vector<std::shared_ptr<storage>> constants_; // per value (null unless constant)
  std::shared_ptr<storage> arena_, workspace_, flag_;
  std::vector<int64_t> offsets_;
  size_t arena_bytes_ = 0, workspace_bytes_ = 0;
  std::array<run_slot, 2> slots_;
  size_t next_slot_ = 0;
  bool has_gather_ = false;
  bool capturable_ = true;
  uint64_t runs_ = 0;
  uint32_t failed_captures_ = 0;
  cudaGraphExec_t graph_exec_ = nullptr;
};

} // namespace troupe::gpu
