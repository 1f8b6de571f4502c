// gpu_session (no CUDA): a build without the CUDA backend has no GPU sessions.
#include "runtime/gpu_session.hpp"

namespace troupe {

expected<std::unique_ptr<gpu_session>> gpu_session::open(const std::string&, gpu_session_options) {
  return make_error(errc::unavailable,
                    "no usable CUDA device: troupe was built without the CUDA backend");
}

expected<std::unique_ptr<gpu_session>> gpu_session::from_graph(graph, gpu_session_options) {
  return make_error(errc::unavailable,
                    "no usable CUDA device: troupe was built without the CUDA backend");
}

status gpu_session::check(graph, const gpu_session_options&) {
  return make_error(errc::unavailable,
                    "no usable CUDA device: troupe was built without the CUDA backend");
}

expected<tensor> gpu_session::to_gpu(const tensor&, int) {
  return make_error(errc::unavailable,
                    "no usable CUDA device: troupe was built without the CUDA backend");
}

expected<tensor> gpu_session::to_host(const tensor& t) {
  if (t.where().type == device::kind::cpu)
    return t;
  return make_error(errc::unavailable, "a GPU tensor in a build without the CUDA backend");
}

} // namespace troupe
