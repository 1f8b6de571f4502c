// status_map: errc and frontend conditions to HTTP statuses (see DESIGN.md §3, REFERENCE.md §2).
#include "runtime/kserve/status_map.hpp"

namespace troupe::kserve {

http_status http_status_of(errc code) {
  switch (code) {
    case errc::ok:
      return {200, false};
    case errc::invalid_argument:
    case errc::parse_error:
    case errc::out_of_range:
    // A valid request troupe cannot serve is still the client's to change (Triton answers 400).
    case errc::unsupported:
      return {400, false};
    case errc::not_found:
      return {404, false}; // KServe's own server answers 404 for unknown models; Triton 400
    // Queue full, timed out in the queue and stopping all clear up if the client retries later.
    case errc::resource_exhausted:
    case errc::timeout:
    case errc::unavailable:
      return {503, true};
    case errc::internal:
      return {500, false};
  }
  return {500, false}; // a code added to errc without a row here is our bug
}

http_status http_status_of(frontend_condition condition) {
  switch (condition) {
    case frontend_condition::body_too_large:
    case frontend_condition::too_many_chunks:
      return {413, false};
    case frontend_condition::headers_too_large:
      return {431, false};
    case frontend_condition::read_timeout:
      return {408, false};
    case frontend_condition::method_not_allowed:
      return {405, false};
    case frontend_condition::not_found:
      return {404, false};
    case frontend_condition::unauthenticated:
      return {401, false};
    case frontend_condition::forbidden:
      return {403, false};
    case frontend_condition::malformed_http:
      return {400, false};
  }
  return {500, false};
}

} // namespace troupe::kserve
