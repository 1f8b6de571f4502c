// routes: maps KServe v2 request paths to endpoints, model names and versions (REFERENCE.md §1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kernels/status.hpp"
#include "runtime/http/server.hpp"

namespace troupe::kserve {

enum class endpoint : uint8_t {
  health_live,       // GET /v2/health/live
  health_ready,      // GET /v2/health/ready
  server_metadata,   // GET /v2
  model_metadata,    // GET /v2/models/{m}[/versions/{v}]
  model_ready,       // GET /v2/models/{m}[/versions/{v}]/ready
  model_infer,       // POST /v2/models/{m}[/versions/{v}]/infer
  repository_index,  // POST /v2/repository/index
  repository_load,   // POST /v2/repository/models/{m}/load
  repository_unload, // POST /v2/repository/models/{m}/unload
  metrics,           // GET /metrics
};

struct route {
  kserve::endpoint endpoint = endpoint::health_live;
  std::string model;
  std::optional<int64_t> version;          // absent: the model's default (latest) version
  http::method method = http::method::get; // the one method the endpoint takes
  bool management = false;                 // repository API: needs the API key when set
};

/// Matches a request path (no query). Errors: not_found for a path that is no endpoint;
/// invalid_argument for a model name outside [A-Za-z0-9_.-]+ (or "." / "..") and for a
/// version that is not a positive decimal integer. Names are never percent-decoded, so no
/// encoding reaches a '/' or ".." into a repository path.
expected<route> match_route(std::string_view path);

/// Whether `m` may be used on `r` (HEAD counts as GET). Otherwise: 405 with `Allow`.
bool method_allowed(const route& r, http::method m);

/// The `Allow` header value for `r`.
std::string_view allowed_methods(const route& r);

} // namespace troupe::kserve
