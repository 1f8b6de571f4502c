// gpu_plugin: dlopen of the CUDA backend, once, from next to libtroupe_kernels.so.
#include "kernels/cuda_loader/gpu_plugin.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace troupe {

namespace {

bool exists(const char* path) {
  struct stat st{};
  return ::stat(path, &st) == 0;
}

status no_device(const std::string& why) {
  return make_error(errc::unavailable, "no usable CUDA device: {}", why);
}

} // namespace

std::optional<std::string> missing_nvidia_driver() {
  if (exists("/dev/nvidiactl") || exists("/proc/driver/nvidia"))
    return std::nullopt;
  return std::string("no NVIDIA driver on this machine (no /dev/nvidiactl, no /proc/driver/nvidia)");
}

std::string default_gpu_plugin_path() {
  if (const char* set = std::getenv("TROUPE_CUDA_PLUGIN"); set && *set)
    return set;
  Dl_info info{};
  // The library this function is in: the plugin is built and bundled beside it.
  if (::dladdr(reinterpret_cast<void*>(&default_gpu_plugin_path), &info) == 0 || !info.dli_fname)
    return "libtroupe_cuda.so";
  return (std::filesystem::path(info.dli_fname).parent_path() / "libtroupe_cuda.so").string();
}

expected<void*> gpu_plugin_symbol_at(const std::string& path, const char* symbol) {
  if (!exists(path.c_str()))
    return no_device(fmt::format("the CUDA backend plugin {} is not there (build the "
                                 "troupe_cuda target, or set TROUPE_CUDA_PLUGIN)",
                                 path));
  // dlopen and dlerror share per-thread state: one loader at a time keeps the message ours.
  static std::mutex loading;
  std::lock_guard lock(loading);
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return no_device(fmt::format("the CUDA backend plugin {} could not be loaded: {}", path,
                                 ::dlerror()));
  void* address = ::dlsym(handle, symbol);
  if (!address)
    return no_device(fmt::format("the CUDA backend plugin {} has no {}", path, symbol));
  return address;
}

expected<void*> gpu_plugin_symbol(const char* symbol) {
  if (auto why = missing_nvidia_driver())
    return no_device(*why);
  static const std::string path = default_gpu_plugin_path();
  return gpu_plugin_symbol_at(path, symbol);
}

status stale_gpu_plugin(const char* what, uint32_t found, uint32_t wanted) {
  return no_device(fmt::format("the CUDA backend plugin {} is from another build ({} is "
                               "version {}, this library wants {})",
                               default_gpu_plugin_path(), what, found, wanted));
}

} // namespace troupe
