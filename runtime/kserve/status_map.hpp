// status_map: the one table from troupe error codes and frontend conditions to HTTP statuses.
#pragma once

#include <cstdint>
#include <string_view>

#include "kernels/status.hpp"

namespace troupe::kserve {

/// Conditions the HTTP frontend detects itself, outside any troupe::errc.
enum class frontend_condition : uint8_t {
  body_too_large,     // over the configured body limit
  headers_too_large,  // over the configured header limit
  too_many_chunks,    // a chunked body with more chunks than allowed
  read_timeout,       // the client did not finish its request in time
  method_not_allowed, // the path exists, the method does not
  not_found,          // no such endpoint
  unauthenticated,    // management endpoint without an API key
  forbidden,          // management endpoint with a wrong API key
  malformed_http,     // the request line or headers do not parse
};

/// An HTTP status and whether the reply carries `Retry-After` (overload that clears by itself).
struct http_status {
  unsigned code = 200;
  bool retry_after = false;
  friend bool operator==(const http_status&, const http_status&) = default;
};

/// Client mistakes are 4xx, overload and stopping 503 with Retry-After, troupe's bugs 500.
http_status http_status_of(errc code);
http_status http_status_of(frontend_condition condition);

/// Seconds suggested in `Retry-After`; short because queues drain in milliseconds.
inline constexpr std::string_view retry_after_seconds = "1";

} // namespace troupe::kserve
