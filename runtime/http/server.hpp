// server: an HTTP/1.1 server core (Boost.Beast + Asio) whose handlers answer asynchronously.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/status.hpp"

namespace troupe::http {

struct server_options {
  std::string bind_address = "127.0.0.1"; // never all interfaces unless told
  uint16_t port = 0;                      // 0: an ephemeral port, see server::port()
  size_t io_threads = 1;
  size_t max_body_bytes = size_t{64} << 20;   // larger: 413
  size_t max_header_bytes = size_t{16} << 10; // request line + fields; larger: 431
  size_t max_chunks = 4096;                   // chunks of one chunked body; more: 413
  /// From the first byte of a request to its last; a slower client gets 408 and a close.
  std::chrono::milliseconds read_timeout{30'000};
  /// How long a keep-alive connection may sit idle between requests before it is closed.
  std::chrono::milliseconds idle_timeout{60'000};
  /// A client that does not read its responses for this long is disconnected.
  std::chrono::milliseconds write_timeout{30'000};
  /// Requests read ahead of their responses on one connection (pipelining); when reached the
  /// server stops reading from that connection until responses go out.
  size_t max_pipelined = 32;
};

enum class method : uint8_t { get, head, post, put, delete_, options, other };

namespace detail {
struct request_data;
class reply_state;
} // namespace detail

/// A received request. Valid while the responder it came with (or a copy) is alive.
class request_view {
public:
  explicit request_view(const detail::request_data* data) : data_(data) {}

  http::method verb() const;
  std::string_view method_name() const;
  std::string_view target() const; // path plus query, as sent
  std::string_view path() const;   // before '?'
  std::string_view query() const;  // after '?', empty when none
  std::string_view body() const;
  /// A header's value (names compare case-insensitively); nullopt when absent.
  std::optional<std::string_view> header(std::string_view name) const;

private:
  const detail::request_data* data_;
};

struct response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; // extra fields
  bool close = false; // close the connection after this response
};

/// Answers one request, from any thread, at any later time. The first send wins; later ones
/// do nothing. When the client has gone, send does nothing either. When the last copy is
/// destroyed without a send, the client gets a 500: every request gets exactly one answer.
class responder {
public:
  responder() = default;
  explicit responder(std::shared_ptr<detail::reply_state> state) : state_(std::move(state)) {}

  void send(response r) const;
  /// True once the client disconnected (work for it may be dropped; send stays safe).
  bool client_gone() const;
  /// The request this responder answers; valid while this responder lives.
  request_view request() const;
  /// Frees the request's body now (it was decoded and is not needed for the answer) rather
  /// than when the answer goes: a request waiting in a queue holds only its decoded form.
  /// On the thread that handles the request; its body reads empty afterwards.
  void release_body() const;

private:
  std::shared_ptr<detail::reply_state> state_;
};

/// Called on an I/O thread for each request. Must not block: hand work elsewhere and send
/// later. An exception escaping it becomes a 500.
using request_handler = std::function<void(const request_view&, responder)>;

class server {
public:
  /// Binds, listens and starts the I/O threads. Errors: unavailable when the address cannot
  /// be bound, invalid_argument for a bad address or zero threads.
  static expected<std::unique_ptr<server>> start(server_options options, request_handler handler);

  ~server(); // stop(0): connections are closed at once
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The bound port (the ephemeral one when options.port was 0).
  uint16_t port() const;

  /// The graceful start of a stop, returning at once: stop accepting, stop reading new
  /// requests, close idle keep-alive connections; answers owed still go out. Lets a caller
  /// hand in its last answers before stop() starts counting down. Idempotent.
  void begin_stop();

  /// Graceful stop: begin_stop(), let requests already received be answered and written;
  /// whatever is still open after `timeout` is closed (answers sent before this call are
  /// written first). Returns when the I/O threads have ended. Idempotent.
  void stop(std::chrono::milliseconds timeout);

  /// Connections currently open.
  size_t open_connections() const;

  struct impl;

private:
  explicit server(std::shared_ptr<impl> state);
  std::shared_ptr<impl> impl_;
};

} // namespace troupe::http
