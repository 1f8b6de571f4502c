// kernels_api_loader: the plugin's kernels-level table, found once.
#include "kernels/cuda_loader/kernels_api_loader.hpp"

#include "kernels/cuda_loader/gpu_plugin.hpp"

namespace troupe {

expected<const gpu_kernels_api*> gpu_kernels() {
  static const auto table =
      gpu_plugin_table<gpu_kernels_api>(gpu_kernels_api_symbol, gpu_kernels_api_version);
  return table;
}

} // namespace troupe
