// gpu_session (CUDA): input validation, per-dims plans inferred through a CPU plan, the
// session's stream and library handles, synchronous and callback-completed runs; exported to
// the loader in libtroupe_runtime.so as the plugin's session table.
#include "runtime/cuda_loader/session_api.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <optional>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "runtime/cuda/channels_last.hpp"
#include "runtime/cuda/gpu_group.hpp"
#include "runtime/cuda/gpu_plan.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/passes/passes.hpp"
#include "runtime/parallel/completion_worker.hpp"
#include "runtime/plan.hpp"
#include "runtime/session.hpp"

namespace troupe {
namespace {

/// Bytes of cuDNN workspace a convolution algorithm may use.
constexpr size_t conv_workspace_limit = size_t{256} << 20;

class cuda_session final : public gpu_session {
public:
  static expected<std::unique_ptr<gpu_session>> create(graph g, gpu_session_options options) {
    TROUPE_TRY_STATUS(gpu::check_group_ticket(options.group));
    TROUPE_TRY_STATUS(gpu::check_group_ticket(options.link_in).with_context("link_in"));
    TROUPE_TRY_STATUS(gpu::check_group_ticket(options.link_out).with_context("link_out"));
    if (options.link_in.size > 1 && options.link_in.rank == 0)
      return make_error(errc::invalid_argument, "link_in: rank 0 is the sending stage's");
    if (options.link_out.size > 1 && (options.link_out.rank != 0 || !options.device_outputs))
      return make_error(errc::invalid_argument, "link_out: the sending stage is rank 0 and "
                        "keeps its outputs on the device");
    auto devices = cuda::device_count(); // its error says "no usable CUDA device: <reason>"
    if (!devices)
      return devices.error();
    if (options.device < 0 || options.device >= *devices)
      return make_error(errc::invalid_argument, "no usable CUDA device: GPU {} does not exist "
                        "({} visible)", options.device, *devices);
    if (options.optimize)
      TROUPE_TRY_STATUS(optimize_graph(g, options.max_value_bytes));
    std::unique_ptr<cuda_session> s(new cuda_session(std::move(g), options));
    s->devices_ = *devices;
    TROUPE_TRY_STATUS(s->init());
    return std::unique_ptr<gpu_session>(std::move(s));
  }

  ~cuda_session() override {
    cuda::device_guard guard(options_.device);
    if (ctx_.stream)
      cudaStreamSynchronize(ctx_.stream);
    // Every callback has run, so every completion is queued: they run before the plans they
    // read go (here, when a completion is what destroys this session). A callback that comes
    // later still (a failed device) finds the worker, which it shares, finished: its run is
    // dropped, and nothing of this session is touched.
    completions_->finish();
    if (link_stream_)
      cudaStreamSynchronize(link_stream_); // the last sends (an aborted link ends them)
    for (auto& held : held_inputs_)
      held.clear(); // their copies are done
    plans_.clear();
    weights_.clear(); // their blocks were allocated for the stream: freed before it goes
    comm_.reset(); // after the plans, before the stream it enqueues on
    link_in_.reset();
    link_out_.reset();
    for (auto* event : sent_)
      if (event)
        cudaEventDestroy(event);
    if (link_stream_)
      cudaStreamDestroy(link_stream_);
    if (ctx_.lt)
      cublasLtDestroy(ctx_.lt);
    if (ctx_.cudnn)
      cudnnDestroy(ctx_.cudnn);
    if (ctx_.stream)
      cudaStreamDestroy(ctx_.stream);
  }

  const std::vector<value_info>& inputs() const override { return graph_.inputs; }
  const std::vector<value_info>& outputs() const override { return graph_.outputs; }
  int device_index() const override { return options_.device; }
  // A stage that sends its outputs over a link keeps them on the device, whatever is asked:
  // it sends from there (create refuses the combination outright).
  void set_device_outputs(bool on) override { options_.device_outputs = on || link_out_; }
  gpu_precision precision() const override { return options_.precision; }

  status validate(std::span<const tensor> inputs) const override {
    if (inputs.size() != graph_.inputs.size())
      return make_error(errc::invalid_argument, "{}: expected {} inputs, got {}", graph_.source,
                        graph_.inputs.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto& want = graph_.inputs[i];
      const auto& got = inputs[i];
      if (got.type() != want.type)
        return make_error(errc::invalid_argument, "{}: input '{}' must be {}, got {}",
                          graph_.source, want.name, to_string(want.type), to_string(got.type()));
      bool ok = want.dims.empty() || got.dims().size() == want.dims.size();
      for (size_t d = 0; ok && d < want.dims.size(); ++d)
        ok = want.dims[d] < 0 || want.dims[d] == got.dims()[d];
      if (!ok)
        return make_error(errc::invalid_argument, "{}: input '{}' has shape {}, model expects {}",
                          graph_.source, want.name, to_string(got.dims()), to_string(want.dims));
      if (got.numel() > 0 && !got.raw())
        return make_error(errc::invalid_argument, "{}: input '{}' has no data", graph_.source,
                          want.name);
      if (got.where().type == device::kind::cuda &&
          (got.where().index < 0 || got.where().index >= devices_))
        return make_error(errc::invalid_argument, "{}: input '{}' is on GPU {}, which does not "
                          "exist ({} visible)", graph_.source, want.name, got.where().index,
                          devices_);
    }
    return status::ok();
  }

  status prepare(std::span<const shape> input_dims) override {
    auto p = plan_for(input_dims);
    return p ? status::ok() : p.error();
  }

  expected<std::vector<tensor>> run(std::span<const tensor> inputs) override {
    TROUPE_TRY_STATUS(admit());
    auto run = guarded([&] { return enqueue(inputs); });
    const status synced = cuda::check(cudaStreamSynchronize(ctx_.stream), "cudaStreamSynchronize");
    in_flight_.fetch_sub(1);
    if (!run)
      return run.error();
    TROUPE_TRY_STATUS(synced);
    return outcome(*run->plan, run->slot, comm_.get(), link_in_.get());
  }

  void run_async(std::vector<tensor> inputs, completion done) override {
    if (auto st = admit(); !st)
      return done(st); // nothing was enqueued
    // Even a run that fails while being enqueued completes through the stream: part of it
    // may be enqueued already, and the runs before it must complete first, in order.
    auto run = guarded([&] { return enqueue(inputs); });
    complete_through_stream(std::move(run), std::move(done));
  }

  void run_async_received(serve::linked_values what, completion done) override {
    if (auto st = admit(); !st) {
      // Nothing was received, but the previous stage sent: what waits on the link is this
      // run's, and the next receive would take it for its own.
      links_in_step_ = false;
      return done(st);
    }
    auto received = guarded([&] { return receive_inputs(what); });
    if (!received) { // after the runs before it, in order, as any run's error
      links_in_step_ = false; // some receive may be enqueued, or none: the link is out of step
      return complete_through_stream(received.error(), std::move(done));
    }
    in_flight_.fetch_sub(1); // run_async counts it again
    run_async(std::move(*received), std::move(done));
  }

private:
  /// What `f` returns, or an error for what it threw (no host memory for a new plan, say):
  /// an admitted run must reach its completion, which alone counts it out.
  template <class F>
  static auto guarded(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& e) {
      return make_error(errc::resource_exhausted, "enqueuing a run: {}", e.what());
    }
  }

  /// A run on the stream: its plan and the plan's slot for it.
  struct enqueued {
    gpu::gpu_plan* plan;
    size_t slot;
    size_t ring; // its place among the runs in flight (held_inputs_, recent_, sent_)
  };

  /// Receives the inputs `what` describes from the previous stage, on the stream, into fresh
  /// blocks for it; the run copies them into its arena and the session keeps them until the
  /// run two after this one.
  expected<std::vector<tensor>> receive_inputs(const serve::linked_values& what) {
    if (!link_in_)
      return make_error(errc::invalid_argument,
                        "{}: inputs over a link, but the session has no link_in", graph_.source);
    TROUPE_TRY_STATUS(serve::check_linked(what, static_cast<int64_t>(options_.max_value_bytes)));
    cuda::device_guard guard(options_.device);
    TROUPE_TRY_STATUS(guard.status());
    std::vector<tensor> received;
    for (size_t i = 0; i < what.types.size(); ++i) {
      const auto type = static_cast<dtype>(what.types[i]);
      const size_t bytes = static_cast<size_t>(numel_of(what.dims[i])) * size_of(type);
      auto block = cuda::allocate_device(options_.device, std::max<size_t>(bytes, 1), ctx_.stream);
      if (!block)
        return block.error();
      tensor t = tensor::wrap(type, what.dims[i], std::move(*block));
      TROUPE_TRY_STATUS(
          link_in_->recv(t, 0).with_context(fmt::format("receiving input {} over the link", i)));
      received.push_back(std::move(t));
    }
    return received;
  }

  /// Hands an admitted run (or the error that stopped it) to `done` once the stream has got
  /// there: after every run enqueued before it.
  void complete_through_stream(expected<enqueued> run, completion done) {
    // The callback runs on CUDA's callback thread once the stream got there, or with the
    // error once the device failed (a host function, cudaLaunchHostFunc, would then never
    // run, and the run would never complete). That thread must not call CUDA and holds up
    // every other callback of the process while it runs, so it only queues the run for this
    // session's completion worker, which copies
    // the outputs out of pinned staging (or references the device outputs the plan keeps)
    // and hands the result on. The run counts as completed before `done`, which may start
    // the next, or destroy this session (the worker then finishes on the spot).
    // A stage with a link to the next stage sends a run's outputs from its completion, once
    // the run has succeeded (a run that fails sends nothing, so the link stays in step with
    // the messages), and before `done`, which passes on the message telling the next stage
    // to receive them.
    struct pending {
      expected<enqueued> run;
      const communicator* comm;
      const communicator* link_in;
      cuda_session* sender; // with a link to the next stage
      std::atomic<size_t>* in_flight;
      completion done;
      std::shared_ptr<completion_worker> worker;
      cudaError_t device = cudaSuccess; // what the stream reported to the callback
    };
    auto* ctx = new pending{std::move(run), comm_.get(), link_in_.get(),
                            link_out_ ? this : nullptr, &in_flight_, std::move(done),
                            completions_};
    const auto fn = [](cudaStream_t, cudaError_t device, void* data) {
      std::shared_ptr<pending> c(static_cast<pending*>(data));
      c->device = device;
      // The job holds the only reference: what `done` captured is released on the worker,
      // never here (releasing device blocks calls CUDA).
      auto worker = c->worker;
      worker->post([c = std::move(c)] {
        expected<std::vector<tensor>> result = make_error(errc::internal, "not collected");
        try {
          if (c->device != cudaSuccess)
            result = make_error(errc::unavailable, "the GPU failed while the run was in "
                                "flight: {}", cudaGetErrorString(c->device));
          else
            result = c->run ? outcome(*c->run->plan, c->run->slot, c->comm, c->link_in)
                            : expected<std::vector<tensor>>(c->run.error());
          if (result && c->sender)
            if (auto sent = c->sender->send_outputs(*c->run); !sent) {
              c->sender->links_in_step_ = false;
              result = sent.with_context("sending the outputs over the link to the next stage");
            }
        } catch (const std::exception& e) { // e.g. no host memory for the outputs
          result = make_error(errc::resource_exhausted, "collecting a run's outputs: {}",
                              e.what());
        }
        c->in_flight->fetch_sub(1); // after the sends: the run two later waits for them
        c->done(std::move(result));
      });
    };
    if (auto st = cuda::check(cudaStreamAddCallback(ctx_.stream, fn, ctx, 0),
                              "cudaStreamAddCallback");
        !st) {
      std::shared_ptr<pending> c(ctx);
      // What was enqueued is done, and the completions before this one are queued: this one
      // goes behind them, in order.
      (void)cudaStreamSynchronize(ctx_.stream);
      completions_->post([c, st] {
        c->in_flight->fetch_sub(1);
        c->done(st);
      });
    }
  }

  /// A finished run's outputs, or why they are garbage: the group was aborted (a rank is
  /// gone), which releases collectives that would otherwise wait for it forever, or so was the
  /// link its inputs came over. No CUDA call.
  static expected<std::vector<tensor>> outcome(const gpu::gpu_plan& plan, size_t slot,
                                               const communicator* comm,
                                               const communicator* link_in) {
    if (comm)
      if (auto why = comm->aborted(); !why)
        return why.with_context("the run's tensor-parallel group was aborted");
    if (link_in)
      if (auto why = link_in->aborted(); !why)
        return why.with_context("the link from the previous stage was aborted");
    return plan.collect(slot);
  }

public:
  bool links_in_step() const override { return links_in_step_; }
  status link_status() const override {
    for (const auto* link : {link_in_.get(), link_out_.get()})
      if (link)
        if (auto why = link->aborted(); !why)
          return why;
    return status::ok();
  }

private:


  /// Counts a run in, or refuses it when max_in_flight are not completed yet (their slots
  /// would be overwritten).
  status admit() {
    if (in_flight_.fetch_add(1) < max_in_flight)
      return status::ok();
    in_flight_.fetch_sub(1);
    return make_error(errc::internal, "{}: a run while {} are not completed (at most {} in flight)",
                      graph_.source, max_in_flight, max_in_flight);
  }

  cuda_session(graph g, gpu_session_options options)
    : graph_(std::move(g)), options_(options), cpu_(cpu::cpu_limits{1, {}}),
      conv_cache_(conv_workspace_limit, options.benchmark_convolutions
                                            ? cuda::conv_search::exhaustive
                                            : cuda::conv_search::heuristic),
      weights_(initializer_buffers(graph_)) {}

  static std::vector<const void*> initializer_buffers(const graph& g) {
    std::vector<const void*> out;
    for (const auto& [name, t] : g.initializers)
      out.push_back(t.raw());
    return out;
  }

  status init() {
    cuda::device_guard guard(options_.device);
    TROUPE_TRY_STATUS(guard.status());
    TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&ctx_.stream, cudaStreamNonBlocking));
    TROUPE_CUDA_TRY(cudnnCreate(&ctx_.cudnn));
    TROUPE_CUDA_TRY(cublasLtCreate(&ctx_.lt));
    ctx_.device = options_.device;
    ctx_.conv_cache = &conv_cache_;
    ctx_.gemm_cache = &gemm_cache_;
    // Joining blocks until every rank of the group has created its session.
    auto comm = gpu::join_group(options_.group, options_.device, ctx_.stream);
    if (!comm)
      return comm.error();
    comm_ = std::move(*comm);
    ctx_.comm = comm_.get();
    // The links after the stage's group, the one from the previous stage first: every stage
    // joins in that order, so the joins resolve from the first stage on.
    auto in = gpu::join_group(options_.link_in, options_.device, ctx_.stream);
    if (!in)
      return in.error().with_context("joining the link from the previous stage");
    link_in_ = std::move(*in);
    if (options_.link_out.size > 1) {
      TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&link_stream_, cudaStreamNonBlocking));
      for (auto& event : sent_)
        TROUPE_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    }
    auto out = gpu::join_group(options_.link_out, options_.device, link_stream_);
    if (!out)
      return out.error().with_context("joining the link to the next stage");
    link_out_ = std::move(*out);
    return status::ok();
  }

  expected<gpu::gpu_plan*> plan_for(std::span<const shape> input_dims) {
    std::vector<shape> key(input_dims.begin(), input_dims.end());
    if (auto it = plans_.find(key); it != plans_.end())
      return it->second.get();
    cuda::device_guard guard(options_.device);
    TROUPE_TRY_STATUS(guard.status());
    // Not from a completion (a run started by `done`): completions queued behind it still
    // read the plans, so the cache grows past its bound there rather than freeing them.
    if (plans_.size() >= options_.max_cached_plans && !completions_->on_worker_thread()) {
      TROUPE_CUDA_TRY(cudaStreamSynchronize(ctx_.stream));
      // The runs are done on the device, but their completions (which read the plans and
      // send the outputs) may still be queued for the completion thread.
      completions_->drain();
      TROUPE_TRY_STATUS(wait_for_sends()); // their device outputs go with the plans
      recent_ = {}; // their slots go with them
      plans_.clear();
    }
    // The CPU plan infers every value's dims and folds the constants; the GPU plan is
    // lowered from what it found and uploads its constants before it goes away.
    auto cpu_plan = plan::compile(graph_, input_dims, cpu_,
                                  plan_options{false, options_.max_value_bytes, nullptr, nullptr});
    if (!cpu_plan)
      return cpu_plan.error();
    auto lowered = gpu::lower_graph(graph_, (*cpu_plan)->value_descs(), input_dims,
                                    options_.precision, options_.group.size);
    if (!lowered)
      return lowered.error();
    if (options_.channels_last)
      gpu::to_channels_last(*lowered);
    auto p = gpu::gpu_plan::create(std::move(*lowered), ctx_, weights_);
    if (!p)
      return p.error().with_context(graph_.source);
    gpu::gpu_plan* raw = p->get();
    plans_.emplace(std::move(key), std::move(*p));
    return raw;
  }

  expected<enqueued> enqueue(std::span<const tensor> inputs) {
    TROUPE_TRY_STATUS(validate(inputs));
    std::vector<shape> dims;
    for (const auto& t : inputs)
      dims.push_back(t.dims());
    auto p = plan_for(dims);
    if (!p)
      return p.error();
    cuda::device_guard guard(options_.device);
    TROUPE_TRY_STATUS(guard.status());
    // The run two before is over (two in flight at most): its device inputs and device
    // outputs may go, whichever plan it ran. This run's stay referenced until then, as their
    // copies are enqueued now and run later.
    const size_t ring = runs_++ % held_inputs_.size();
    auto& held = held_inputs_[ring];
    held.clear();
    // The run two before may still be sending its outputs to the next stage (on the link's
    // stream, which waits for that stage to receive): they go only once sent.
    TROUPE_TRY_STATUS(wait_for_send(ring));
    if (auto& before = recent_[ring]) {
      before->plan->release(before->slot);
      before.reset();
    }
    for (const auto& t : inputs)
      if (t.where().type == device::kind::cuda)
        held.push_back(t);
    auto slot = (*p)->enqueue(ctx_, inputs, options_.capture_after, options_.poison,
                              options_.device_outputs);
    if (!slot)
      return slot.error();
    recent_[ring] = enqueued{*p, *slot, ring};
    return *recent_[ring];
  }

  /// Waits until the run at `ring` has sent its outputs over the link, if it sent any (the
  /// completion thread marks the sends before the run counts as completed).
  status wait_for_send(size_t ring) {
    if (!sending_[ring].exchange(false))
      return status::ok();
    return cuda::check(cudaEventSynchronize(sent_[ring]), "cudaEventSynchronize");
  }
  status wait_for_sends() {
    for (size_t ring = 0; ring < sending_.size(); ++ring)
      TROUPE_TRY_STATUS(wait_for_send(ring));
    return status::ok();
  }

  /// Sends a finished run's device outputs to every rank of the next stage, from its
  /// completion, on the link's stream: not on the compute stream, where a send that waits for
  /// the next stage to receive would hold up the runs behind it and their completions, one of
  /// which tells that stage to receive (deadlock).
  status send_outputs(const enqueued& run) {
    cuda::device_guard guard(options_.device);
    TROUPE_TRY_STATUS(guard.status());
    const status sent = serve::send_values(*link_out_, run.plan->device_outputs_of(run.slot));
    // Marked even when a later value failed: the sends enqueued before it still read the
    // outputs, which go only once they are done.
    TROUPE_CUDA_TRY(cudaEventRecord(sent_[run.ring], link_stream_));
    sending_[run.ring] = true;
    return sent;
  }

  graph graph_;
  gpu_session_options options_;
  cpu::cpu_context cpu_;
  cuda::conv_algo_cache conv_cache_;
  cuda::gemm_algo_cache gemm_cache_;
  gpu::weight_store weights_;
  gpu::gpu_context ctx_;
  std::unique_ptr<cuda::nccl_communicator> comm_; // null without a group
  std::unique_ptr<cuda::nccl_communicator> link_in_, link_out_; // null without links
  cudaStream_t link_stream_ = nullptr; // link_out_'s sends (with link_out only)
  std::array<cudaEvent_t, gpu_session::max_in_flight> sent_{}; // per ring place
  std::array<std::atomic<bool>, gpu_session::max_in_flight> sending_{};
  std::atomic<bool> links_in_step_{true}; // false once a send or receive failed
  int devices_ = 0;                               // visible GPUs
  std::array<std::vector<tensor>, gpu_session::max_in_flight> held_inputs_; // device inputs
  uint64_t runs_ = 0;                             // enqueued so far
  std::array<std::optional<enqueued>, gpu_session::max_in_flight> recent_; // the latest runs
  std::atomic<size_t> in_flight_{0};              // runs admitted and not completed
  std::map<std::vector<shape>, std::unique_ptr<gpu::gpu_plan>> plans_;
  // run_async's completions, in order; shared with the callbacks in flight
  std::shared_ptr<completion_worker> completions_ = std::make_shared<completion_worker>();
};

expected<std::unique_ptr<gpu_session>> session_from_graph(graph g, gpu_session_options options) {
  return cuda_session::create(std::move(g), options);
}

expected<std::unique_ptr<gpu_session>> open_session(const std::string& onnx_path,
                                                    gpu_session_options options) {
  TROUPE_TRY_STATUS(gpu::check_group_ticket(options.group));
  auto devices = cuda::device_count(); // before parsing: the common failure is cheap
  if (!devices)
    return devices.error();
  auto g = load_onnx(onnx_path);
  if (!g)
    return g.error();
  auto s = session_from_graph(std::move(*g), options);
  if (!s)
    return s.error();
  TROUPE_TRY_STATUS((*s)->prepare(dims_with_dynamic_as((*s)->inputs(), 1)));
  return s;
}

status check_lowering(graph g, const gpu_session_options& options) {
  if (options.optimize)
    TROUPE_TRY_STATUS(optimize_graph(g, options.max_value_bytes)); // passes never write in place
  cpu::cpu_context cpu{cpu::cpu_limits{1, {}}};
  const auto dims = dims_with_dynamic_as(g.inputs, 1);
  auto cpu_plan =
      plan::compile(g, dims, cpu, plan_options{false, options.max_value_bytes, nullptr, nullptr});
  if (!cpu_plan)
    return cpu_plan.error();
  auto lowered = gpu::lower_graph(g, (*cpu_plan)->value_descs(), dims, options.precision,
                                  options.group.size);
  return lowered ? status::ok() : lowered.error(); // it names the source and the node
}

expected<tensor> tensor_to_gpu(const tensor& host, int index) {
  if (host.where().type != device::kind::cpu)
    return make_error(errc::invalid_argument, "to_gpu: the tensor is not in host memory");
  if (host.numel() > 0 && !host.raw())
    return make_error(errc::invalid_argument, "to_gpu: the tensor has no data");
  auto block = cuda::allocate_device(index, std::max<size_t>(host.nbytes(), 1), nullptr);
  if (!block)
    return block.error();
  cuda::device_guard on{index};
  TROUPE_TRY_STATUS(on.status());
  if (host.nbytes() > 0) {
    TROUPE_CUDA_TRY(cudaMemcpy((*block)->data(), host.raw(), host.nbytes(), cudaMemcpyHostToDevice));
    // From pageable memory cudaMemcpy may return once the bytes are staged, before the DMA
    // lands; sessions' non-blocking streams would not wait for it. The copy ran on the legacy
    // default stream: waiting for that one alone leaves other threads' streams (a capture in
    // progress, a collective waiting for its peers) alone.
    TROUPE_CUDA_TRY(cudaStreamSynchronize(nullptr));
  }
  return tensor::wrap(host.type(), host.dims(), std::move(*block));
}

expected<tensor> tensor_to_host(const tensor& t) {
  if (t.where().type == device::kind::cpu)
    return t;
  if (t.numel() > 0 && !t.raw())
    return make_error(errc::invalid_argument, "to_host: the tensor has no data");
  tensor host = tensor::empty(t.type(), t.dims());
  cuda::device_guard on{t.where().index};
  TROUPE_TRY_STATUS(on.status());
  if (host.nbytes() > 0)
    TROUPE_CUDA_TRY(cudaMemcpy(host.raw(), t.raw(), host.nbytes(), cudaMemcpyDeviceToHost));
  return host;
}

} // namespace

} // namespace troupe

extern "C" const troupe::gpu_session_api* troupe_cuda_session_api() {
  static const troupe::gpu_session_api api{
      troupe::gpu_session_api_version,
      &troupe::open_session,
      &troupe::session_from_graph,
      &troupe::check_lowering,
      &troupe::tensor_to_gpu,
      &troupe::tensor_to_host,
  };
  return &api;
}
