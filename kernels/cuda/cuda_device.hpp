// cuda_device: enumerating CUDA devices and switching the calling thread's current device.
#pragma once

#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/gpu_devices.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

/// The visible devices (name, sm version, memory); `unavailable` naming the cause when the
/// driver is missing or too old, the library is the toolkit's stub, or there is no device.
expected<std::vector<gpu_device>> list_devices(bool measure_free);

/// Number of visible devices, or `unavailable` as for list_devices.
expected<int> device_count();

/// Lets kernels and copies on GPU `reader` access GPU `owner`'s memory directly (NVLink or
/// PCIe peer to peer) where the hardware allows it, once per pair for the process; copies
/// between GPUs without it still work, staged by the driver. Errors only for bad indices.
status enable_peer_access(int reader, int owner);

/// Whether the calling thread has a current CUDA context. A thread that never used CUDA has
/// none, and making any device current would create that device's context (since CUDA 12,
/// hundreds of MB on it). True when the driver cannot be asked.
bool thread_has_context();

/// Makes `index` the calling thread's current device for its scope and restores the previous
/// one after, if the thread had one (a thread without a context keeps `index`: restoring the
/// default device 0 would open a context there); check `status()` before relying on it.
class device_guard {
public:
  explicit device_guard(int index);
  ~device_guard();
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;
  const troupe::status& status() const { return status_; }

private:
  int previous_ = -1;
  bool restore_ = false;
  troupe::status status_;
};

} // namespace troupe::cuda
