// cuda_device: device enumeration through the CUDA runtime, with the reason when there is none.
#include "kernels/cuda/cuda_device.hpp"

#include <mutex>
#include <set>
#include <utility>

#include "kernels/cuda/cuda_error.hpp"

namespace troupe::cuda {

expected<int> device_count() {
  int count = 0;
  if (auto st = check(cudaGetDeviceCount(&count), "cudaGetDeviceCount"); !st)
    return st.with_context("no usable CUDA device");
  if (count == 0)
    return make_error(errc::unavailable, "no usable CUDA device: the driver sees none "
                                         "(check CUDA_VISIBLE_DEVICES)");
  return count;
}

expected<std::vector<gpu_device>> list_devices(bool measure_free) {
  auto count = device_count();
  if (!count)
    return count.error();
  std::vector<gpu_device> devices;
  for (int i = 0; i < *count; ++i) {
    cudaDeviceProp prop{};
    TROUPE_TRY_STATUS(check(cudaGetDeviceProperties(&prop, i), "cudaGetDeviceProperties"));
    gpu_device d;
    d.index = i;
    d.name = prop.name;
    d.sm = prop.major * 10 + prop.minor;
    d.total_bytes = prop.totalGlobalMem;
    if (measure_free) {
      device_guard on{i};
      TROUPE_TRY_STATUS(on.status());
      size_t free = 0, total = 0;
      TROUPE_TRY_STATUS(check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo"));
      d.free_bytes = free;
    }
    devices.push_back(std::move(d));
  }
  return devices;
}

status enable_peer_access(int reader, int owner) {
  if (reader == owner)
    return status::ok();
  static std::mutex mutex;
  static std::set<std::pair<int, int>> tried;
  std::lock_guard lock{mutex};
  if (!tried.insert({reader, owner}).second)
    return status::ok();
  int possible = 0;
  TROUPE_TRY_STATUS(
      check(cudaDeviceCanAccessPeer(&possible, reader, owner), "cudaDeviceCanAccessPeer"));
  if (!possible)
    return status::ok();
  device_guard on{reader};
  TROUPE_TRY_STATUS(on.status());
  // Any failure (already enabled, too many peers) leaves copies staged by the driver, which
  // work all the same: not an error. Such errors are not sticky; clear it for the next check.
  if (cudaDeviceEnablePeerAccess(owner, 0) != cudaSuccess)
    (void)cudaGetLastError();
  return status::ok();
}

bool thread_has_context() {
  // The driver's cuCtxGetCurrent, found through the runtime, so nothing links libcuda.
  using get_current_fn = int (*)(void**);
  static const get_current_fn get_current = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return get_current_fn{nullptr};
    }
    return reinterpret_cast<get_current_fn>(fn);
  }();
  void* context = nullptr;
  return !get_current || get_current(&context) != 0 || context != nullptr;
}

device_guard::device_guard(int index) {
  status_ = check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (!status_ || previous_ == index)
    return;
  restore_ = thread_has_context();
  status_ = check(cudaSetDevice(index), "cudaSetDevice");
}

device_guard::~device_guard() {
  int now = -1;
  if (restore_ && status_ && cudaGetDevice(&now) == cudaSuccess && now != previous_)
    (void)cudaSetDevice(previous_);
}

} // namespace troupe::cuda
