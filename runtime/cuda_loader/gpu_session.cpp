// gpu_session factories in a build with the CUDA backend: forwarded to the plugin, which is
// loaded on the first GPU session.
#include "kernels/cuda_loader/gpu_plugin.hpp"
#include "runtime/cuda_loader/session_api.hpp"

namespace troupe {

namespace {

expected<const gpu_session_api*> sessions() {
  static const auto table =
      gpu_plugin_table<gpu_session_api>(gpu_session_api_symbol, gpu_session_api_version);
  return table;
}

} // namespace

expected<std::unique_ptr<gpu_session>> gpu_session::open(const std::string& onnx_path,
                                                         gpu_session_options options) {
  auto api = sessions();
  if (!api)
    return api.error();
  return (*api)->open(onnx_path, options);
}

expected<std::unique_ptr<gpu_session>> gpu_session::from_graph(graph g,
                                                               gpu_session_options options) {
  auto api = sessions();
  if (!api)
    return api.error();
  return (*api)->from_graph(std::move(g), options);
}

status gpu_session::check(graph g, const gpu_session_options& options) {
  auto api = sessions();
  if (!api)
    return api.error();
  return (*api)->check(std::move(g), options);
}

expected<tensor> gpu_session::to_gpu(const tensor& host, int device) {
  auto api = sessions();
  if (!api)
    return api.error();
  return (*api)->to_gpu(host, device);
}

expected<tensor> gpu_session::to_host(const tensor& t) {
  if (t.where().type == device::kind::cpu)
    return t;
  auto api = sessions();
  if (!api)
    return api.error();
  return (*api)->to_host(t);
}

} // namespace troupe
