// overlapped_copier: double-buffered host↔device copies that overlap the next batch's copy with
// compute.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>

#include <cuda_runtime_api.h>

#include "kernels/status.hpp"
#include "kernels/tensor.hpp"

namespace troupe::cuda {

/// Runs a sequence of batches through a device computation: two pinned staging buffers and
/// two device buffers per direction alternate, so the copy stream uploads batch i+1 (and
/// downloads batch i-1's result) while the compute stream works on batch i. Events order the
/// reuse of each buffer; the host waits only to refill a staging buffer or to hand a result
/// back. Not thread-safe: one run at a time.
class overlapped_copier {
public:
  /// The device computation of one batch: reads `input` (device memory, as many bytes as the
  /// host input had) and writes `output` (device memory of the host output's size), enqueued
  /// on `stream`.
  using compute_fn =
      std::function<status(size_t batch, const void* input, void* output, cudaStream_t stream)>;

  /// Buffers for inputs of up to `input_bytes` and outputs of up to `output_bytes` on GPU
  /// `device`.
  static expected<std::unique_ptr<overlapped_copier>> create(int device, size_t input_bytes,
                                                             size_t output_bytes);
  ~overlapped_copier();
  overlapped_copier(const overlapped_copier&) = delete;
  overlapped_copier& operator=(const overlapped_copier&) = delete;

  /// Feeds inputs[i] through `compute` into outputs[i] for every i (host memory of any kind);
  /// returns after the last output is written, or at the first error.
  status run(std::span<const std::span<const std::byte>> inputs,
             std::span<const std::span<std::byte>> outputs, const compute_fn& compute);

  cudaStream_t copy_stream() const { return copy_; }
  cudaStream_t compute_stream() const { return compute_; }

private:
  overlapped_copier() = default;
  status upload(size_t batch, std::span<const std::byte> input);
  status download(size_t batch, size_t bytes);
  status finish(size_t batch, std::span<std::byte> output);

  int device_ = 0;
  size_t input_bytes_ = 0;
  size_t output_bytes_ = 0;
  cudaStream_t copy_ = nullptr;
  cudaStream_t compute_ = nullptr;
  // Per slot (batch % 2): staging and device buffers, and the events that end each step.
  std::shared_ptr<storage> host_in_[2], host_out_[2], device_in_[2], device_out_[2];
  cudaEvent_t uploaded_[2] = {}, computed_[2] = {}, downloaded_[2] = {};
};

} // namespace troupe::cuda
