// overlapped_copier: the two-stream schedule of uploads, compute and downloads over two slots.
#include "kernels/cuda/overlapped_copier.hpp"

#include <cstring>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"

namespace troupe::cuda {

expected<std::unique_ptr<overlapped_copier>>
overlapped_copier::create(int device, size_t input_bytes, size_t output_bytes) {
  device_guard on{device};
  TROUPE_TRY_STATUS(on.status());
  std::unique_ptr<overlapped_copier> c{new overlapped_copier};
  c->device_ = device;
  c->input_bytes_ = input_bytes;
  c->output_bytes_ = output_bytes;
  TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&c->copy_, cudaStreamNonBlocking));
  TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&c->compute_, cudaStreamNonBlocking));
  for (int s = 0; s < 2; ++s) {
    for (cudaEvent_t* e : {&c->uploaded_[s], &c->computed_[s], &c->downloaded_[s]})
      TROUPE_CUDA_TRY(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    auto take = [](expected<std::shared_ptr<storage>> made, std::shared_ptr<storage>& into) {
      if (made)
        into = std::move(*made);
      return made ? status::ok() : made.error();
    };
    TROUPE_TRY_STATUS(take(allocate_pinned(input_bytes, c->copy_), c->host_in_[s]));
    TROUPE_TRY_STATUS(take(allocate_pinned(output_bytes, c->copy_), c->host_out_[s]));
    TROUPE_TRY_STATUS(take(allocate_device(device, input_bytes, c->copy_), c->device_in_[s]));
    TROUPE_TRY_STATUS(take(allocate_device(device, output_bytes, c->copy_), c->device_out_[s]));
  }
  return c;
}

overlapped_copier::~overlapped_copier() {
  device_guard on{device_};
  // The buffers go back to their caches freed on the copy stream: wait for both streams so
  // nothing still reads them when another user takes them.
  for (cudaStream_t s : {copy_, compute_})
    if (s)
      (void)cudaStreamSynchronize(s);
  for (int s = 0; s < 2; ++s)
    for (cudaEvent_t e : {uploaded_[s], computed_[s], downloaded_[s]})
      if (e)
        (void)cudaEventDestroy(e);
  for (int s = 0; s < 2; ++s) {
    host_in_[s].reset();
    host_out_[s].reset();
    device_in_[s].reset();
    device_out_[s].reset();
  }
  for (cudaStream_t s : {copy_, compute_})
    if (s)
      (void)cudaStreamDestroy(s);
}

status overlapped_copier::upload(size_t batch, std::span<const std::byte> input) {
  const size_t s = batch % 2;
  // The staging buffer still feeds the upload of batch-2 until that copy has run.
  if (batch >= 2)
    TROUPE_CUDA_TRY(cudaEventSynchronize(uploaded_[s]));
  std::memcpy(host_in_[s]->data(), input.data(), input.size());
  // The device buffer is free once the compute of batch-2 has read it.
  if (batch >= 2)
    TROUPE_CUDA_TRY(cudaStreamWaitEvent(copy_, computed_[s]));
  TROUPE_CUDA_TRY(cudaMemcpyAsync(device_in_[s]->data(), host_in_[s]->data(), input.size(),
                                  cudaMemcpyHostToDevice, copy_));
  TROUPE_CUDA_TRY(cudaEventRecord(uploaded_[s], copy_));
  return status::ok();
}

status overlapped_copier::download(size_t batch, size_t bytes) {
  const size_t s = batch % 2;
  TROUPE_CUDA_TRY(cudaStreamWaitEvent(copy_, computed_[s]));
  TROUPE_CUDA_TRY(cudaMemcpyAsync(host_out_[s]->data(), device_out_[s]->data(), bytes,
                                  cudaMemcpyDeviceToHost, copy_));
  TROUPE_CUDA_TRY(cudaEventRecord(downloaded_[s], copy_));
  return status::ok();
}

status overlapped_copier::finish(size_t batch, std::span<std::byte> output) {
  const size_t s = batch % 2;
  TROUPE_CUDA_TRY(cudaEventSynchronize(downloaded_[s]));
  std::memcpy(output.data(), host_out_[s]->data(), output.size());
  return status::ok();
}

status overlapped_copier::run(std::span<const std::span<const std::byte>> inputs,
                              std::span<const std::span<std::byte>> outputs,
                              const compute_fn& compute) {
  if (inputs.size() != outputs.size())
    return make_error(errc::invalid_argument, "{} inputs but {} outputs", inputs.size(),
                      outputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].size() > input_bytes_ || outputs[i].size() > output_bytes_)
      return make_error(errc::invalid_argument,
                        "batch {}: {} B in, {} B out exceed the buffers ({} B, {} B)", i,
                        inputs[i].size(), outputs[i].size(), input_bytes_, output_bytes_);
  if (inputs.empty())
    return status::ok();
  device_guard on{device_};
  TROUPE_TRY_STATUS(on.status());
  auto schedule = [&]() -> status {
    TROUPE_TRY_STATUS(upload(0, inputs[0]));
    for (size_t i = 0; i < inputs.size(); ++i) {
      const size_t s = i % 2;
      // Enqueued before compute i, so the copy stream uploads i+1 while i computes.
      if (i + 1 < inputs.size())
        TROUPE_TRY_STATUS(upload(i + 1, inputs[i + 1]));
      TROUPE_CUDA_TRY(cudaStreamWaitEvent(compute_, uploaded_[s]));
      // The output buffer is free once the download of batch i-2 has read it.
      if (i >= 2)
        TROUPE_CUDA_TRY(cudaStreamWaitEvent(compute_, downloaded_[s]));
      TROUPE_TRY_STATUS(compute(i, device_in_[s]->data(), device_out_[s]->data(), compute_));
      TROUPE_CUDA_TRY(cudaEventRecord(computed_[s], compute_));
      TROUPE_TRY_STATUS(download(i, outputs[i].size()));
      // The host hands back batch i-1 while the device computes batch i.
      if (i >= 1)
        TROUPE_TRY_STATUS(finish(i - 1, outputs[i - 1]));
    }
    return finish(inputs.size() - 1, outputs.back());
  };
  status result = schedule();
  if (!result) {
    // Leave no copy in flight that a later run could race with.
    (void)cudaStreamSynchronize(compute_);
    (void)cudaStreamSynchronize(copy_);
  }
  return result;
}

} // namespace troupe::cuda
