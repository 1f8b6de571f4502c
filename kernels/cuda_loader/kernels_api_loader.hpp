// kernels_api_loader: the plugin's kernels-level table, for the forwarding functions.
#pragma once

#include "kernels/cuda_loader/kernels_api.hpp"

namespace troupe {

/// The CUDA backend's table (loading the plugin on first use), or why there is none.
expected<const gpu_kernels_api*> gpu_kernels();

} // namespace troupe
