// Tests for the HTTP/1.1 server core over loopback with a real socket client (Beast).
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "runtime/http/server.hpp"

using namespace troupe;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

/// A blocking client on one connection.
struct client {
  explicit client(uint16_t port) { socket.connect({asio::ip::make_address("127.0.0.1"), port}); }

  void send(std::string_view raw) { asio::write(socket, asio::buffer(raw.data(), raw.size())); }

  bhttp::response<bhttp::string_body> read() {
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket, buffer, res);
    return res;
  }

  /// True when the server closed the connection (no further response arrives).
  bool closed_by_server() {
    bhttp::response<bhttp::string_body> res;
    boost::system::error_code ec;
    bhttp::read(socket, buffer, res, ec);
    return ec == bhttp::error::end_of_stream || ec == asio::error::connection_reset ||
           ec == asio::error::eof;
  }

  asio::io_context ioc;
  tcp::socket socket{ioc};
  boost::beast::flat_buffer buffer;
};

std::string get(std::string_view path, std::string_view extra = {}) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n";
}

/// Handler that answers at once with the method, path and body size.
http::request_handler echo_handler() {
  return [](const http::request_view& req, http::responder reply) {
    http::response r;
    r.content_type = "text/plain";
    r.body = std::string(req.method_name()) + " " + std::string(req.path()) + " " +
             std::to_string(req.body().size());
    reply.send(std::move(r));
  };
}

/// Collects responders for the test thread to complete: the stand-in for the actor pipeline.
struct parked {
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<std::pair<std::string, http::responder>> replies;

  http::request_handler handler() {
    return [this](const http::request_view& req, http::responder reply) {
      std::lock_guard lock(mutex);
      replies.emplace_back(std::string(req.path()), std::move(reply));
      arrived.notify_all();
    };
  }
  void wait_for(size_t n) {
    std::unique_lock lock(mutex);
    REQUIRE(arrived.wait_for(lock, std::chrono::seconds(10), [&] { return replies.size() >= n; }));
  }
};

http::response text(std::string body) {
  http::response r;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

std::unique_ptr<http::server> start(http::server_options options, http::request_handler handler) {
  auto s = http::server::start(std::move(options), std::move(handler));
  REQUIRE_MESSAGE(s, s.error().message());
  return std::move(*s);
}

/// Polls `condition` for up to 10 s: for effects of another thread that has no event to wait on.
template <class F> bool eventually(F condition) {
  for (int i = 0; i < 10000; ++i) {
    if (condition())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

} // namespace

TEST_CASE("server binds an ephemeral port on 127.0.0.1 and rejects bad addresses and taken ports") {
  auto s = start({}, echo_handler());
  CHECK(s->port() != 0);
  http::server_options same;
  same.port = s->port();
  auto again = http::server::start(same, echo_handler());
  REQUIRE(!again);
  CHECK(again.error().code() == errc::unavailable);
  http::server_options bad;
  bad.bind_address = "not-an-address";
  auto b = http::server::start(bad, echo_handler());
  REQUIRE(!b);
  CHECK(b.error().code() == errc::invalid_argument);
}

TEST_CASE("keep-alive: three requests on one connection get three answers") {
  http::server_options o;
  o.io_threads = 2;
  auto s = start(o, echo_handler());
  client c(s->port());
  for (const char* path : {"/v2/health/live", "/v2", "/metrics"}) {
    c.send(get(path));
    auto res = c.read();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == std::string("GET ") + path + " 0");
    CHECK(res.keep_alive());
  }
  CHECK(s->open_connections() == 1);
  c.send("POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(c.read().body() == "POST /v2/models/m/infer 5");
}

TEST_CASE("pipelined requests are answered in request order when handlers finish out of order") {
  parked p;
  auto s = start({}, p.handler());
  client c(s->port());
  c.send(get("/a") + get("/b") + get("/c")); // one write: all three arrive together
  p.wait_for(3);
  {
    std::lock_guard lock(p.mutex);
    CHECK(p.replies[0].first == "/a");
    CHECK(p.replies[2].first == "/c");
    // Finish in reverse, each from its own thread.
    std::vector<std::thread> finishers;
    for (size_t i = 3; i-- > 0;)
      finishers.emplace_back([&, i] { p.replies[i].second.send(text(p.replies[i].first)); });
    for (auto& t : finishers)
      t.join();
  }
  CHECK(c.read().body() == "/a");
  CHECK(c.read().body() == "/b");
  CHECK(c.read().body() == "/c");
}

TEST_CASE("a responder completed later on a worker thread answers the request") {
  std::vector<std::thread> workers;
  std::mutex m;
  auto s = start({}, [&](const http::request_view& req, http::responder reply) {
    std::string path(req.path());
    std::lock_guard lock(m);
    workers.emplace_back([reply = std::move(reply), path] { reply.send(text("late " + path)); });
  });
  client c(s->port());
  c.send(get("/slow"));
  auto res = c.read();
  CHECK(res.result_int() == 200);
  CHECK(res.body() == "late /slow");
  std::lock_guard lock(m);
  for (auto& w : workers)
    w.join();
}

TEST_CASE("only the first send counts, and a dropped responder answers 500") {
  auto s = start({}, [](const http::request_view& req, http::responder reply) {
    if (req.path() == "/drop")
      return; // the responder dies here without an answer
    if (req.path() == "/throw")
      throw std::runtime_error("boom");
    reply.send(text("first"));
    reply.send(text("second"));
  });
  client c(s->port());
  c.send(get("/twice"));
  CHECK(c.read().body() == "first");
  c.send(get("/drop"));
  auto dropped = c.read();
  CHECK(dropped.result_int() == 500);
  CHECK(dropped.body() == R"({"error":"the request was dropped without an answer"})");
  client c2(s->port());
  c2.send(get("/throw"));
  auto thrown = c2.read();
  CHECK(thrown.result_int() == 500);
  CHECK(thrown.body() == R"({"error":"handler failed: boom"})");
}

TEST_CASE("a body over the limit gets 413 and the server keeps serving") {
  http::server_options o;
  o.max_body_bytes = 1024;
  auto s = start(o, echo_handler());
  {
    client c(s->port());
    c.send("POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" +
           std::string(4096, 'x'));
    auto res = c.read();
    CHECK(res.result_int() == 413);
    CHECK(res.body() == R"({"error":"body larger than 1024 bytes"})");
    CHECK(!res.keep_alive());
    CHECK(c.closed_by_server());
  }
  client c(s->port());
  c.send(get("/v2/health/live"));
  CHECK(c.read().result_int() == 200);
}

TEST_CASE("headers over the limit get 431, a garbled request line 400") {
  http::server_options o;
  o.max_header_bytes = 512;
  auto s = start(o, echo_handler());
  client c(s->port());
  c.send(get("/", "X-Big: " + std::string(1000, 'a') + "\r\n"));
  CHECK(c.read().result_int() == 431);
  client c2(s->port());
  c2.send("NOT HTTP AT ALL\r\n\r\n");
  auto res = c2.read();
  CHECK(res.result_int() == 400);
  CHECK(res.body().find("malformed HTTP request") != std::string::npos);
}

TEST_CASE("a client that sends its header too slowly gets 408 and a close") {
  http::server_options o;
  o.read_timeout = std::chrono::milliseconds(200);
  auto s = start(o, echo_handler());
  client c(s->port());
  c.send("GET /v2/health/live HTTP/1.1\r\nHost: t\r\n"); // never finishes the header
  auto res = c.read();
  CHECK(res.result_int() == 408);
  CHECK(res.body() == R"({"error":"request not received within 200 ms"})");
  CHECK(c.closed_by_server());
}

TEST_CASE("a client that never finishes its body gets 408 and a close") {
  http::server_options o;
  o.read_timeout = std::chrono::milliseconds(200);
  auto s = start(o, echo_handler());
  client c(s->port());
  c.send("POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this");
  auto res = c.read();
  CHECK(res.result_int() == 408);
  CHECK(c.closed_by_server());
}

TEST_CASE("an idle keep-alive connection is closed without an answer") {
  http::server_options o;
  o.idle_timeout = std::chrono::milliseconds(100);
  auto s = start(o, echo_handler());
  client c(s->port());
  c.send(get("/x"));
  CHECK(c.read().result_int() == 200);
  CHECK(c.closed_by_server()); // nothing more sent: the server hangs up after idle_timeout
  CHECK(eventually([&] { return s->open_connections() == 0; }));
}

TEST_CASE("chunked bodies are read, and very many tiny chunks are refused with 413") {
  http::server_options o;
  o.max_chunks = 16;
  auto s = start(o, echo_handler());
  auto chunked = [](int chunks) {
    std::string r = "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < chunks; ++i)
      r += "1\r\nx\r\n";
    return r + "0\r\n\r\n";
  };
  client ok(s->port());
  ok.send(chunked(10));
  CHECK(ok.read().body() == "POST /up 10");
  client many(s->port());
  many.send(chunked(10000));
  auto res = many.read();
  CHECK(res.result_int() == 413);
  CHECK(res.body() == R"({"error":"chunked body has more than 16 chunks"})");
}

TEST_CASE("a chunk-size line that never ends is refused with 413, not buffered until the read "
          "timeout") {
  http::server_options o;
  o.max_header_bytes = 512;
  o.read_timeout = std::chrono::seconds(60); // the answer must not be this timeout's 408
  auto s = start(o, echo_handler());
  client c(s->port());
  c.send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;" +
         std::string(200000, 'a'));
  auto res = c.read();
  CHECK(res.result_int() == 413);
  CHECK(res.body().find("a chunk-size line or trailer longer than") != std::string::npos);
  CHECK(c.closed_by_server());
  client after(s->port()); // a request of normal size still goes through
  after.send(get("/v2/health/live"));
  CHECK(after.read().result_int() == 200);
}

TEST_CASE("Expect: 100-continue gets an interim answer before the body is sent") {
  auto s = start({}, echo_handler());
  client c(s->port());
  c.send("POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: "
         "100-continue\r\n\r\n");
  CHECK(c.read().result_int() == 100);
  c.send("abc");
  CHECK(c.read().body() == "POST /v2/models/m/infer 3");
}

TEST_CASE(
    "a client that disconnects while its request is pending leaks nothing and crashes nothing") {
  parked p;
  auto s = start({}, p.handler());
  {
    client c(s->port());
    c.send(get("/pending"));
    p.wait_for(1);
  } // the client goes away
  http::responder reply;
  {
    std::lock_guard lock(p.mutex);
    reply = p.replies[0].second;
    p.replies.clear();
  }
  CHECK(eventually([&] { return reply.client_gone(); }));
  CHECK(reply.request().path() == "/pending"); // still valid while the responder lives
  reply.send(text("nobody listens"));          // a no-op, not a crash
  reply = {};
  CHECK(eventually([&] { return s->open_connections() == 0; }));
  client again(s->port());
  again.send(get("/next"));
  p.wait_for(1);
  std::lock_guard lock(p.mutex);
  p.replies[0].second.send(text("fine"));
  CHECK(again.read().body() == "fine");
}

TEST_CASE("graceful stop answers requests in flight, closes idle connections and ends") {
  parked p;
  auto s = start({}, p.handler());
  client idle(s->port());
  idle.send(get("/first"));
  p.wait_for(1);
  {
    std::lock_guard lock(p.mutex);
    p.replies[0].second.send(text("done"));
  }
  CHECK(idle.read().body() == "done"); // now an idle keep-alive connection
  client busy(s->port());
  busy.send(get("/in-flight"));
  p.wait_for(2);
  std::thread stopper([&] { s->stop(std::chrono::seconds(10)); });
  CHECK(idle.closed_by_server());
  {
    std::lock_guard lock(p.mutex);
    p.replies[1].second.send(text("answered during stop"));
  }
  auto res = busy.read();
  CHECK(res.body() == "answered during stop");
  CHECK(busy.closed_by_server());
  stopper.join();
  CHECK(s->open_connections() == 0);
  tcp::socket late(idle.ioc);
  boost::system::error_code ec;
  late.connect({asio::ip::make_address("127.0.0.1"), s->port()}, ec);
  CHECK(ec); // no longer accepting
}

TEST_CASE("begin_stop closes idle connections at once, and a stop with no time left still "
          "writes the answers sent before it") {
  parked p;
  auto s = start({}, p.handler());
  client idle(s->port());
  client busy(s->port());
  busy.send(get("/owed"));
  p.wait_for(1);
  s->begin_stop(); // returns at once: the owed answer may come later
  CHECK(idle.closed_by_server());
  {
    std::lock_guard lock(p.mutex);
    p.replies[0].second.send(text("last answer"));
  }
  s->stop(std::chrono::milliseconds(0)); // the forced close comes after that answer
  CHECK(busy.read().body() == "last answer");
  CHECK(busy.closed_by_server());
  CHECK(s->open_connections() == 0);
}

TEST_CASE("a stop answers every pipelined request already read on a connection, then closes "
          "it") {
  parked p;
  auto s = start({}, p.handler());
  client c(s->port());
  c.send(get("/one") + get("/two")); // pipelined: both read before either is answered
  p.wait_for(2);
  s->begin_stop();
  {
    std::lock_guard lock(p.mutex);
    p.replies[0].second.send(text("first"));
    p.replies[1].second.send(text("second"));
  }
  CHECK(c.read().body() == "first");
  auto last = c.read();
  CHECK(last.body() == "second");
  CHECK(!last.keep_alive());
  CHECK(c.closed_by_server());
  s->stop(std::chrono::seconds(10));
}

TEST_CASE("a released request body reads empty and the answer still goes out") {
  auto s = start({}, [](const http::request_view& req, http::responder reply) {
    const size_t before = req.body().size();
    reply.release_body();
    reply.send(text(std::to_string(before) + " then " + std::to_string(req.body().size())));
  });
  client c(s->port());
  c.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(c.read().body() == "5 then 0");
}

TEST_CASE("a responder that outlives its server is harmless") {
  parked p;
  auto s = start({}, p.handler());
  client c(s->port());
  c.send(get("/x"));
  p.wait_for(1);
  s.reset(); // stop(0) and destroy with the reply still owed
  std::lock_guard lock(p.mutex);
  CHECK(p.replies[0].second.client_gone());
  p.replies[0].second.send(text("too late"));
  p.replies.clear();
}
