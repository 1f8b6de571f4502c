// http_transport: KServe v2 over HTTP/1.1 (JSON or binary tensors) with a keep-alive
// connection pool on one Boost.Asio I/O thread; loopback targets only.
#pragma once

#include <memory>
#include <string>

#include "runtime/load/transport.hpp"

namespace troupe::load {

enum class http_encoding : uint8_t { json, binary };

struct http_target {
  std::string host; // as given ("127.0.0.1", "localhost", "[::1]")
  uint16_t port = 8000;
};

/// Parses "http://HOST:PORT[/]"; HOST must be a loopback name or address, because the load
/// generator is meant to measure a server on the same machine, not to send traffic elsewhere.
expected<http_target> parse_http_url(const std::string& url);

/// Creates the transport; nothing connects until the first request (or describe()).
/// `connections` bounds the pool: more concurrent requests wait in the client, and since
/// latency counts from the scheduled time, that wait shows in the results.
expected<std::unique_ptr<transport>> make_http_transport(const std::string& url,
                                                         http_encoding encoding,
                                                         int connections);

} // namespace troupe::load
