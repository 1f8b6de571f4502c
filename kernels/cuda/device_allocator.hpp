// device_allocator: the process-wide caching allocators for GPU memory and pinned host memory.
#pragma once

#include <memory>

#include <cuda_runtime_api.h>

#include "kernels/cuda/block_cache.hpp"
#include "kernels/status.hpp"
#include "kernels/tensor.hpp"

namespace troupe::cuda {

/// The caching allocator of GPU `index` (cudaMalloc underneath), created on first use and
/// kept until the process exits; `invalid_argument` for an index that is not a device.
expected<block_cache*> device_cache(int index);

/// The cache of GPU `index` if something allocated there already, else nullptr (creates
/// nothing, so status queries do not start the CUDA runtime).
block_cache* existing_device_cache(int index);

/// `bytes` of device memory on GPU `index` for work on `stream`, as storage with
/// device{cuda, index} whose release returns the block to the cache in stream order.
expected<std::shared_ptr<storage>> allocate_device(int index, size_t bytes, cudaStream_t stream);

/// The pool of page-locked host staging buffers (cudaHostAlloc), reused in stream order like
/// device blocks: a buffer freed after an asynchronous copy on `stream` waits for that copy.
expected<block_cache*> pinned_cache();

/// A pinned host buffer (storage on device{cpu}) for asynchronous copies on `stream`.
expected<std::shared_ptr<storage>> allocate_pinned(size_t bytes, cudaStream_t stream);

/// A backend over cudaMalloc on device `index`, or cudaHostAlloc when `pinned_host`; exposed so
/// tests can build a private cache over real memory.
std::unique_ptr<memory_backend> make_cuda_backend(int index, bool pinned_host);

} // namespace troupe::cuda
