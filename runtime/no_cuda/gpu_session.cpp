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

} // namespace troupe
