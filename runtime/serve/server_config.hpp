// server_config: `troupe serve` settings from server.yaml, with safe defaults for every limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "kernels/status.hpp"
#include "runtime/http/server.hpp"

namespace troupe::serve {

struct server_config {
  std::string model_repository;
  http::server_options http; // bind 127.0.0.1, port 8000 here (set below), limits
  int cpu_devices = 1;
  std::chrono::seconds exit_timeout{30};
  std::string api_key;      // empty: management endpoints are open (loopback default)
  std::string api_key_file; // read at start; the key is its first line
  size_t max_json_depth = 64;
  /// Requests admitted by the frontend and not yet answered; more get 503 at once, so a
  /// flood cannot grow memory without bound while batchers are full.
  size_t max_pending_requests = 4096;
  /// Bytes of decoded input tensors those requests may hold together; a request that would
  /// pass it gets 503 at once (large requests fill memory long before the count does).
  uint64_t max_pending_bytes = uint64_t{2} << 30;
  /// Requests one bridge actor keeps outstanding at the batchers (REFERENCE.md §4); the rest
  /// wait in the bridge's own queue.
  size_t max_outstanding_per_bridge = 256;
  size_t bridges = 2;

  server_config() { http.port = 8000; }
};

/// Parses server.yaml text onto `base` (keys absent from the file keep base's values).
/// Unknown keys and bad values are errors naming the file, the key and the expected form.
expected<server_config> parse_server_config(const std::string& yaml_text, const std::string& file,
                                            server_config base = {});
expected<server_config> load_server_config(const std::filesystem::path& file,
                                           server_config base = {});

/// Reads an API key file: its first line, without surrounding whitespace; empty is an error.
expected<std::string> read_api_key_file(const std::filesystem::path& file);

} // namespace troupe::serve
