// session_api: the table of runtime-level entry points (GPU sessions) the CUDA backend plugin
// exports, shared by the plugin and the forwarding gpu_session factories.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/gpu_session.hpp"

namespace troupe {

/// Bumped whenever the table or gpu_session's interface changes (see gpu_kernels_api_version).
// 2: group, check; 3: device_outputs, channels_last, to_gpu, to_host;
// 4: benchmark_convolutions, link_in, link_out, run_async_received.
inline constexpr uint32_t gpu_session_api_version = 4;

struct gpu_session_api {
  uint32_t version = gpu_session_api_version;
  expected<std::unique_ptr<gpu_session>> (*open)(const std::string& onnx_path,
                                                 gpu_session_options options) = nullptr;
  expected<std::unique_ptr<gpu_session>> (*from_graph)(graph g,
                                                       gpu_session_options options) = nullptr;
  status (*check)(graph g, const gpu_session_options& options) = nullptr;
  expected<tensor> (*to_gpu)(const tensor& host, int device) = nullptr;
  expected<tensor> (*to_host)(const tensor& t) = nullptr;
};

/// The name of the plugin's `extern "C" const gpu_session_api* NAME()`.
inline constexpr const char* gpu_session_api_symbol = "troupe_cuda_session_api";

} // namespace troupe
