// gpu_plan: uploading, arena binding and the dispatch of each lowered step to its kernel.
#include "runtime/cuda/gpu_plan.hpp"

#include <cstring>

#include "kernels/cpu/cast.hpp"
#include "kernels/cpu/copy_strided.hpp"
#include "kernels/cpu/parallel_copy.hpp"
#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "kernels/cuda/elementwise.hpp"
#include "kernels/cuda/normalization.hpp"
#include "kernels/cuda/reduce.hpp"
#include "kernels/cuda/shape_ops.hpp"
#include "runtime/gpu_capture_policy.hpp"

namespace troupe::gpu {
namespace {

/// cuBLASLt's workspace: enough for its best Hopper kernels.
constexpr size_t gemm_workspace_bytes = size_t{32} << 20;

size_t bytes_of(const gpu_value& v) {
  return static_cast<size_t>(numel_of(v.dims)) * size_of(v.type);
}

/// Value `v` at `data` on GPU `device` as a tensor for the communicator (borrows the bytes).
tensor device_tensor(const gpu_value& v, void* data, int index) {
  return tensor::wrap(v.type, v.dims,
                      storage::borrow(data, bytes_of(v), device{device::kind::cuda, index}));
}

} // namespace

expected<std::shared_ptr<storage>> weight_store::upload(const gpu_context& ctx, const tensor& host,
                                                        dtype type,
                                                        const std::vector<int64_t>& perm) {
  const std::tuple<const void*, dtype, std::vector<int64_t>> key{host.raw(), type, perm};
  const bool cacheable = cacheable_.count(host.raw()) != 0;
  if (cacheable)
    if (auto it = cached_.find(key); it != cached_.end())
      return it->second;
  const size_t bytes = static_cast<size_t>(host.numel()) * size_of(type);
  auto device = cuda::allocate_device(ctx.device, std::max<size_t>(bytes, 1), ctx.stream);
  if (!device)
    return device.error();
  std::vector<std::byte> converted, reordered;
  const void* source = host.raw();
  if (!perm.empty()) {
    if (perm.size() != host.dims().size())
      return make_error(errc::internal, "a permutation of {} dims for a constant of {}",
                        perm.size(), to_string(host.dims()));
    reordered.resize(host.nbytes());
    cpu::transpose(size_of(host.type()), host.dims(), perm, host.raw(), reordered.data());
    source = reordered.data();
  }
  if (type != host.type()) {
    if (!cpu::cast_supported(host.type()) || !cpu::cast_supported(type))
      return make_error(errc::unsupported, "constant of {} cannot be converted to {}",
                        to_string(host.type()), to_string(type));
    converted.resize(bytes);
    cpu::cast(host.type(), source, type, converted.data(), host.numel());
    source = converted.data();
  }
  if (bytes > 0) {
    TROUPE_CUDA_TRY(cudaMemcpyAsync((*device)->data(), source, bytes, cudaMemcpyHostToDevice,
                                    ctx.stream));
    // The host buffer (converted or not) must outlive the copy.
    TROUPE_CUDA_TRY(cudaStreamSynchronize(ctx.stream));
  }
  if (cacheable)
    cached_[key] = *device;
  return *device;
}

gpu_plan::~gpu_plan() {
  if (graph_exec_)
    cudaGraphExecDestroy(graph_exec_);
}

expected<std::unique_ptr<gpu_plan>> gpu_plan::create(lowered_graph lowered, const gpu_context& ctx,
                                                     weight_store& weights) {
  std::unique_ptr<gpu_plan> p(new gpu_plan());
  p->lowered_ = std::move(lowered);
  const auto& l = p->lowered_;
  p->constants_.resize(l.values.size());
  for (const auto& s : l.steps)
    for (int id : s.inputs) {
      if (id < 0)
        continue;
      const int root = root_of(l, id);
      const auto& v = l.values[static_cast<size_t>(root)];
      if (v.kind != value_kind::constant || p->constants_[static_cast<size_t>(root)])
        continue;
      auto uploaded = weights.upload(ctx, *v.host, v.type, v.upload_perm);
      if (!uploaded)
        return uploaded.error().with_context("constant '" + v.name + "'");
      p->constants_[static_cast<size_t>(root)] = std::move(*uploaded);
    }

  const auto layout = plan_arena(l);
  p->offsets_ = layout.offsets;
  p->arena_bytes_ = layout.bytes;
  auto arena = cuda::allocate_device(ctx.device, std::max<size_t>(layout.bytes, 1), ctx.stream);
  if (!arena)
    return arena.error();
  p->arena_ = std::move(*arena);

  size_t workspace = 0;
  for (const auto& s : l.steps) {
    if (s.kind == step_kind::gemm)
      workspace = std::max(workspace, gemm_workspace_bytes);
    if (s.kind == step_kind::conv) {
      auto need = cuda::conv_workspace_size(ctx.cudnn, *ctx.conv_cache, s.conv);
      if (!need)
        return need.error().with_context(s.label);
      workspace = std::max(workspace, *need);
    }
    p->has_gather_ = p->has_gather_ || s.kind == step_kind::gather;
  }
  p->capturable_ = capturable(l);
  p->workspace_bytes_ = workspace;
  auto ws = cuda::allocate_device(ctx.device, std::max<size_t>(workspace, 1), ctx.stream);
  if (!ws)
    return ws.error();
  p->workspace_ = std::move(*ws);
  auto flag = cuda::allocate_device(ctx.device, sizeof(int), ctx.stream);
  if (!flag)
    return flag.error();
  p->flag_ = std::move(*flag);
  const auto pinned = [&](size_t bytes) {
    return cuda::allocate_pinned(std::max<size_t>(bytes, 1), ctx.stream);
  };
  for (auto& slot : p->slots_) {
    auto flag_host = pinned(sizeof(int));
    if (!flag_host)
      return flag_host.error();
    slot.flag_host = std::move(*flag_host);
    for (int id : l.inputs) {
      auto s = pinned(bytes_of(l.values[static_cast<size_t>(id)]));
      if (!s)
        return s.error();
      slot.staging_in.push_back(std::move(*s));
    }
    for (int id : l.outputs) {
      auto s = pinned(bytes_of(l.values[static_cast<size_t>(id)]));
      if (!s)
        return s.error();
      slot.staging_out.push_back(std::move(*s));
    }
  }
  return p;
}

void* gpu_plan::pointer(int value) const {
  const int root = root_of(lowered_, value);
  const auto r = static_cast<size_t>(root);
  if (constants_[r])
    return constants_[r]->data();
  if (offsets_[r] < 0)
    return nullptr;
  return static_cast<std::byte*>(arena_->data()) + offsets_[r];
}

status gpu_plan::run_step(const gpu_context& ctx, const gpu_step& s) {
  const auto& vals = lowered_.values;
  const auto in = [&](size_t i) -> const void* {
    return i < s.inputs.size() && s.inputs[i] >= 0 ? pointer(s.inputs[i]) : nullptr;
  };
  const auto& x = vals[static_cast<size_t>(s.inputs.empty() || s.inputs[0] < 0 ? s.outputs[0]
                                                                               : s.inputs[0])];
  const auto& y = vals[static_cast<size_t>(s.outputs[0])];
  void* out = pointer(s.outputs[0]);
  cudaStream_t stream = ctx.stream;
  switch (s.kind) {
  case step_kind::conv:
    return cuda::conv_forward(ctx.cudnn, *ctx.conv_cache, s.conv, in(0), in(1), in(2), out,
                              workspace_->data(), workspace_bytes_, stream, in(3));
  case step_kind::gemm:
    return cuda::gemm(ctx.lt, *ctx.gemm_cache, s.gemm, in(0), in(1), in(2), out,
                      workspace_->data(), workspace_bytes_, stream);
  case step_kind::pool:
    return cuda::pool_forward(ctx.cudnn, s.pool, in(0), out, stream);
  case step_kind::binary:
    return cuda::binary(s.binary, y.type, x.dims, in(0), vals[static_cast<size_t>(s.inputs[1])].dims,
                        in(1), out, stream);
  case step_kind::unary:
    return cuda::unary(s.unary, y.type, in(0), out, numel_of(y.dims), stream, s.lo, s.hi);
  case step_kind::cast:
    return cuda::cast(x.type, in(0), y.type, out, numel_of(y.dims), stream);
  case step_kind::layer_norm:
    return cuda::layer_norm(y.type, x.dims, s.axis, in(0), in(1), in(2), out, s.epsilon, stream);
  case step_kind::softmax:
    return cuda::softmax(y.type, x.dims, in(0), out, stream);
  case step_kind::reduce:
    return cuda::reduce(s.reduce, y.type, x.dims, s.axes, in(0), out, stream);
  case step_kind::transpose:
    return cuda::transpose(y.type, x.dims, s.perm, in(0), out, stream);
  case step_kind::slice:
    return cuda::slice(y.type, x.dims, s.starts, s.ends, s.axes, s.steps, in(0), out, stream);
  case step_kind::split: {
    std::vector<void*> outs;
    for (int id : s.outputs)
      outs.push_back(pointer(id));
    return cuda::split(y.type, x.dims, s.axis, s.sizes, in(0), outs, stream);
  }
  case step_kind::concat: {
    std::vector<shape> dims;
    std::vector<const void*> ins;
    for (int id : s.inputs) {
      dims.push_back(vals[static_cast<size_t>(id)].dims);
      ins.push_back(pointer(id));
    }
    return cuda::concat(y.type, dims, ins, s.axis, out, stream);
  }
  case step_kind::gather: {
    const auto& idx = vals[static_cast<size_t>(s.inputs[1])];
    return cuda::gather(y.type, x.dims, in(0), idx.type, idx.dims, in(1), s.axis, out,
                        static_cast<int*>(flag_->data()), stream);
  }
  case step_kind::copy:
    return cuda::check(cudaMemcpyAsync(out, in(0), bytes_of(y), cudaMemcpyDeviceToDevice, stream),
                       "cudaMemcpyAsync");
  case step_kind::all_reduce: {
    if (!ctx.comm)
      return make_error(errc::internal, "the plan has a collective step and no communicator");
    // The communicator sums in place, so the partial values are copied to the output first.
    if (out != in(0) && bytes_of(y) > 0)
      TROUPE_CUDA_TRY(cudaMemcpyAsync(out, in(0), bytes_of(y), cudaMemcpyDeviceToDevice, stream));
    tensor values = device_tensor(y, out, ctx.device);
    return ctx.comm->all_reduce_sum(values);
  }
  case step_kind::all_gather: {
    if (!ctx.comm)
      return make_error(errc::internal, "the plan has a collective step and no communicator");
    const tensor part = device_tensor(x, const_cast<void*>(in(0)), ctx.device);
    tensor whole = device_tensor(y, out, ctx.device);
    return ctx.comm->all_gather(part, whole, static_cast<int>(s.axis));
  }
  }
  return make_error(errc::internal, "unknown step kind");
}

status gpu_plan::run_steps(const gpu_context& ctx) {
  if (has_gather_)
    TROUPE_CUDA_TRY(cudaMemsetAsync(flag_->data(), 0, sizeof(int), ctx.stream));
  for (const auto& s : lowered_.steps)
    TROUPE_TRY_STATUS(run_step(ctx, s).with_context(s.label));
  return status::ok();
}

status gpu_plan::capture(const gpu_context& ctx) {
  TROUPE_CUDA_TRY(cudaStreamBeginCapture(ctx.stream, cudaStreamCaptureModeThreadLocal));
  const status recorded = run_steps(ctx);
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(ctx.stream, &graph); // always leave capture
  if (!recorded || ended != cudaSuccess) {
    if (graph)
      cudaGraphDestroy(graph);
    TROUPE_TRY_STATUS(recorded);
    return cuda::check(ended, "cudaStreamEndCapture");
  }
  const cudaError_t made = cudaGraphInstantiate(&graph_exec_, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess)
    graph_exec_ = nullptr;
  return cuda::check(made, "cudaGraphInstantiate");
}

status gpu_plan::copy_in(const gpu_context& ctx, run_slot& slot, size_t i, const tensor& input) {
  const auto& v = lowered_.values[static_cast<size_t>(lowered_.inputs[i])];
  const size_t bytes = bytes_of(v);
  if (bytes == 0)
    return status::ok();
  void* to = pointer(lowered_.inputs[i]);
  const device from = input.where();
  if (from.type == device::kind::cpu) {
    cpu::copy_bytes(slot.staging_in[i]->data(), input.raw(), bytes); // on several cores
    TROUPE_CUDA_TRY(cudaMemcpyAsync(to, slot.staging_in[i]->data(), bytes, cudaMemcpyHostToDevice,
                                    ctx.stream));
    return status::ok();
  }
  if (from.index == ctx.device) {
    TROUPE_CUDA_TRY(cudaMemcpyAsync(to, input.raw(), bytes, cudaMemcpyDeviceToDevice, ctx.stream));
    return status::ok();
  }
  // Another GPU's tensor (the previous pipeline stage's outputs): a peer copy, direct over
  // NVLink or PCIe where the pair allows it.
  TROUPE_TRY_STATUS(cuda::enable_peer_access(ctx.device, from.index));
  TROUPE_CUDA_TRY(cudaMemcpyPeerAsync(to, ctx.device, input.raw(), from.index, bytes, ctx.stream));
  return status::ok();
}

status gpu_plan::copy_out(const gpu_context& ctx, run_slot& slot, bool device_outputs) {
  const auto& l = lowered_;
  slot.device_outputs.clear(); // of the run two before: it is over (two in flight at most)
  slot.outputs_on_device = device_outputs;
  for (size_t i = 0; i < l.outputs.size(); ++i) {
    const auto& v = l.values[static_cast<size_t>(l.outputs[i])];
    const size_t bytes = bytes_of(v);
    if (!device_outputs) {
      if (bytes > 0)
        TROUPE_CUDA_TRY(cudaMemcpyAsync(slot.staging_out[i]->data(), pointer(l.outputs[i]), bytes,
                                        cudaMemcpyDeviceToHost, ctx.stream));
      continue;
    }
    // For no stream: the block outlives this run and may be released by whichever session
    // read it last, after this session's stream is gone; by then nothing uses it.
    auto block = cuda::allocate_device(ctx.device, std::max<size_t>(bytes, 1), nullptr);
    if (!block)
      return block.error();
    if (bytes > 0)
      TROUPE_CUDA_TRY(cudaMemcpyAsync((*block)->data(), pointer(l.outputs[i]), bytes,
                                      cudaMemcpyDeviceToDevice, ctx.stream));
    slot.device_outputs.push_back(tensor::wrap(v.type, v.dims, std::move(*block)));
  }
  return status::ok();
}

expected<size_t> gpu_plan::enqueue(const gpu_context& ctx, std::span<const tensor> inputs,
                                   uint32_t capture_after, bool poison, bool device_outputs) {
  const auto& l = lowered_;
  if (inputs.size() != l.inputs.size())
    return make_error(errc::invalid_argument, "plan expects {} inputs, got {}", l.inputs.size(),
                      inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& v = l.values[static_cast<size_t>(l.inputs[i])];
    if (inputs[i].type() != v.type || inputs[i].dims() != v.dims)
      return make_error(errc::invalid_argument, "input {} is {}{}, plan compiled for {}{}", i,
                        to_string(inputs[i].type()), to_string(inputs[i].dims()),
                        to_string(v.type), to_string(v.dims));
  }
  // The slot of the run two before is free: that run is over (two in flight at most), and
  // the stream runs the runs in order, so this one's copies land after its reads.
  const size_t used = next_slot_;
  next_slot_ = (next_slot_ + 1) % slots_.size();
  auto& slot = slots_[used];
  if (poison)
    TROUPE_CUDA_TRY(cudaMemsetAsync(arena_->data(), 0xff, arena_bytes_, ctx.stream));
  for (size_t i = 0; i < inputs.size(); ++i)
    TROUPE_TRY_STATUS(copy_in(ctx, slot, i, inputs[i]));

  const uint32_t capture_runs = capturable_ ? capture_after : 0; // see capturable()
  switch (next_capture_action(runs_, graph_exec_ != nullptr, failed_captures_, capture_runs)) {
  case capture_action::eager:
    TROUPE_TRY_STATUS(run_steps(ctx));
    break;
  case capture_action::capture:
    if (!capture(ctx)) {
      ++failed_captures_; // eager now; see next_capture_action for another try
      (void)cudaGetLastError();
      TROUPE_TRY_STATUS(run_steps(ctx));
      break;
    }
    [[fallthrough]];
  case capture_action::replay:
    TROUPE_CUDA_TRY(cudaGraphLaunch(graph_exec_, ctx.stream));
    break;
  }
  ++runs_;

  TROUPE_TRY_STATUS(copy_out(ctx, slot, device_outputs));
  if (has_gather_)
    TROUPE_CUDA_TRY(cudaMemcpyAsync(slot.flag_host->data(), flag_->data(), sizeof(int),
                                    cudaMemcpyDeviceToHost, ctx.stream));
  return used;
}

expected<std::vector<tensor>> gpu_plan::collect(size_t which) const {
  const auto& slot = slots_.at(which);
  if (has_gather_ && *static_cast<const int*>(slot.flag_host->data()) != 0)
    return make_error(errc::out_of_range, "a Gather index is out of range");
  if (slot.outputs_on_device)
    return slot.device_outputs;
  std::vector<tensor> out;
  for (size_t i = 0; i < lowered_.outputs.size(); ++i) {
    const auto& v = lowered_.values[static_cast<size_t>(lowered_.outputs[i])];
    tensor t = tensor::empty(v.type, v.dims);
    if (t.nbytes() > 0)
      cpu::copy_bytes(t.raw(), slot.staging_out[i]->data(), t.nbytes());
    out.push_back(std::move(t));
  }
  return out;
}

} // namespace troupe::gpu
