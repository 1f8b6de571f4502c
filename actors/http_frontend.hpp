// http_frontend: KServe v2 over HTTP in front of troupe's batchers (troupe serve's core).
#pragma once

#include <memory>

#include "actors/embedded_runtime.hpp"
#include "runtime/serve/server_config.hpp"

namespace troupe {

/// The serving frontend: an HTTP server whose I/O threads decode and check requests, bridge
/// actors that carry them to the batchers and complete each reply from the batcher's answer,
/// and one management thread for the blocking repository work (load, unload, index). No
/// scheduler or I/O thread ever blocks. Start and stop it from a plain thread (main, a test).
class http_frontend {
public:
  /// Starts the runtime, loads every model of the repository, then listens. The actor_system's
  /// config must have gone through add_troupe_types().
  static caf::expected<std::unique_ptr<http_frontend>> start(caf::actor_system& sys,
                                                             serve::server_config config);
  ~http_frontend(); // stop()
  http_frontend(const http_frontend&) = delete;
  http_frontend& operator=(const http_frontend&) = delete;

  uint16_t port() const;
  size_t loaded_versions() const;

  /// Graceful stop within the config's exit_timeout: refuse new requests (503), let requests
  /// already admitted finish for half of the time, answer what is still queued with 503, write
  /// the last replies, close. Idempotent.
  void stop();

  struct core;

private:
  explicit http_frontend(std::shared_ptr<core> c) : core_(std::move(c)) {}
  std::shared_ptr<core> core_;
};

} // namespace troupe
