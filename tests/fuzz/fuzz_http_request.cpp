// fuzz_http_request: libFuzzer target sending raw bytes to the HTTP server over loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/http/server.hpp"
#include "runtime/kserve/codec.hpp"
#include "runtime/kserve/status_map.hpp"

namespace {

/// Decodes infer requests like the real frontend will, so request bytes reach the codec too.
void handle(const troupe::http::request_view& req, troupe::http::responder reply) {
  troupe::http::response r;
  if (req.verb() == troupe::http::method::post && req.path().ends_with("/infer")) {
    auto decoded = troupe::kserve::decode_infer_request(
        req.body(), req.header(troupe::kserve::header_length_field));
    if (!decoded) {
      r.status = troupe::kserve::http_status_of(decoded.error().code()).code;
      r.body = troupe::kserve::encode_error(decoded.error().message());
    } else {
      r.body = "{}";
    }
  } else {
    r.body = "{\"live\":true}";
  }
  reply.send(std::move(r));
}

troupe::http::server& the_server() {
  static std::unique_ptr<troupe::http::server> server = [] {
    troupe::http::server_options options;
    options.io_threads = 1;
    options.max_body_bytes = 1 << 16;
    options.max_header_bytes = 2048;
    options.max_chunks = 64;
    options.read_timeout = std::chrono::milliseconds(500);
    options.max_pipelined = 4;
    auto s = troupe::http::server::start(options, handle);
    if (!s)
      std::abort();
    return std::move(*s);
  }();
  return *server;
}

/// connect() that survives libFuzzer's SIGALRM watchdog: an interrupted connect goes on in the
/// background, so wait for it to finish instead of calling the server unreachable (EINTR).
bool connect_within(int fd, const sockaddr_in& addr, int timeout_ms) {
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    return true;
  if (errno != EINTR && errno != EINPROGRESS)
    return false;
  pollfd p{fd, POLLOUT, 0};
  int ready;
  do
    ready = ::poll(&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready <= 0)
    return false;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return false;
  errno = err;
  return err == 0;
}

} // namespace

// Each input is one connection: the bytes are sent, the write side is closed, and every
// answer is read until the server closes. Sanitizers watch the server threads meanwhile.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint16_t port = the_server().port();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    std::abort();
  timeval tv{5, 0}; // a hang here is a server bug: the read timeout is 500 ms
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!connect_within(fd, addr, 5000)) {
    std::fprintf(stderr, "fuzz_http_request: connect failed: %s\n", std::strerror(errno));
    std::abort();
  }
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; // the server may close early (413, 400): fine
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        std::abort(); // the server neither answered nor closed within 5 s
      break;          // reset: fine
    }
  }
  ::close(fd);
  return 0;
}
