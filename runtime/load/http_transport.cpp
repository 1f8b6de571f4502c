// http_transport: KServe v2 over HTTP/1.1 (JSON or binary tensors) with a keep-alive
// connection pool on one Boost.Asio I/O thread; loopback targets only.
#include "runtime/load/http_transport.hpp"

#include <charconv>
#include <chrono>
#include <deque>
#include <optional>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "runtime/load/kserve_client.hpp"

namespace troupe::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

expected<http_target> parse_http_url(const std::string& url) {
  std::string_view rest = url;
  if (rest.rfind("http://", 0) != 0)
    return make_error(errc::invalid_argument, "URL {}: expected http://HOST:PORT", url);
  rest.remove_prefix(7);
  while (!rest.empty() && rest.back() == '/')
    rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos)
    return make_error(errc::invalid_argument, "URL {}: give the server root, no path", url);
  http_target t;
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos)
      return make_error(errc::invalid_argument, "URL {}: unterminated [IPv6] host", url);
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':')
      port = rest.substr(close + 2);
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (!port.empty()) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc{} || end != port.data() + port.size() || v == 0 || v > 65535)
      return make_error(errc::invalid_argument, "URL {}: bad port '{}'", url, port);
    t.port = static_cast<uint16_t>(v);
  }
  t.host = std::string(host);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(t.host, ec);
  if (t.host != "localhost" && (ec || !address.is_loopback()))
    return make_error(errc::invalid_argument,
                      "URL {}: the load generator only targets loopback (127.0.0.1, ::1, "
                      "localhost)",
                      url);
  return t;
}

namespace {

struct job {
  load_request request;
  reply_callback done;
  std::string body;
  std::optional<size_t> header_length; // binary requests
  steady::time_point deadline;
};

class http_transport_impl;

/// One keep-alive connection; every member runs on the I/O thread.
class connection : public std::enable_shared_from_this<connection> {
public:
  connection(http_transport_impl& owner, asio::io_context& ioc) : owner_(owner), stream_(ioc) {}
  void start(job j);
  void close() {
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    connected_ = false;
  }

private:
  void send();
  void fail(const std::string& label, const std::string& message);
  void finish(load_reply reply);

  http_transport_impl& owner_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::optional<job> job_;
  bool connected_ = false;
  bool reused_ = false;  // the request went out on a connection that served one before
  bool retried_ = false;
};

class http_transport_impl final : public transport {
public:
  http_transport_impl(http_target target, tcp::endpoint endpoint, http_encoding encoding,
                      int connections)
      : target_(std::move(target)), endpoint_(endpoint), encoding_(encoding),
        work_(asio::make_work_guard(ioc_)) {
    for (int i = 0; i < connections; ++i)
      idle_.push_back(std::make_shared<connection>(*this, ioc_));
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~http_transport_impl() override {
    asio::post(ioc_, [this] {
      for (auto& c : all_)
        c->close();
      for (auto& c : idle_)
        c->close();
    });
    work_.reset();
    ioc_.stop();
    thread_.join();
    // Exactly one callback per request, even for those the shutdown cut off.
    for (auto& j : queue_) {
      load_reply r;
      r.error = "cancelled";
      r.message = "the load generator stopped";
      j.done(std::move(r));
    }
  }

  std::string target() const override {
    return fmt::format("http://{}:{}", target_.host, target_.port);
  }

  expected<model_info> describe(const std::string& model) override {
    // Blocking, before the run: a plain synchronous request on its own socket.
    try {
      asio::io_context ioc;
      beast::tcp_stream stream(ioc);
      stream.expires_after(std::chrono::seconds(10));
      stream.connect(endpoint_);
      http::request<http::empty_body> req{http::verb::get, "/v2/models/" + model, 11};
      req.set(http::field::host, target_.host);
      http::write(stream, req);
      beast::flat_buffer buf;
      http::response<http::string_body> res;
      http::read(stream, buf, res);
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      if (res.result() != http::status::ok)
        return make_error(res.result() == http::status::not_found ? errc::not_found
                                                                  : errc::unavailable,
                          "{}: model {}: HTTP {}: {}", target(), model, res.result_int(),
                          error_message_of(res.body()));
      auto info = decode_model_metadata(res.body());
      if (!info)
        return info.error().with_context(fmt::format("{}: model {}", target(), model));
      if (info->name.empty())
        info->name = model;
      return info;
    } catch (const boost::system::system_error& e) {
      return make_error(errc::unavailable, "{}: {}", target(), e.code().message());
    }
  }

  void prepare(load_request& request) override {
    if (!request.wire.empty())
      return;
    // A failure leaves the request unprepared: submit encodes it again and reports the error.
    if (auto body = encode(request, request.wire_header_length))
      request.wire = std::move(*body);
  }

  void submit(load_request request, reply_callback done) override {
    job j;
    j.deadline = steady::now() + std::chrono::microseconds(
                                     request.timeout_us > 0 ? request.timeout_us + 1000000
                                                            : int64_t{3600} * 1000000);
    if (request.wire.empty()) {
      auto body = encode(request, request.wire_header_length);
      if (!body) {
        load_reply r;
        r.error = "encode";
        r.message = body.error().message();
        done(std::move(r));
        return;
      }
      request.wire = std::move(*body);
    }
    j.body = std::move(request.wire);
    if (encoding_ == http_encoding::binary)
      j.header_length = request.wire_header_length;
    j.request = std::move(request);
    j.done = std::move(done);
    asio::post(ioc_, [this, j = std::move(j)]() mutable { dispatch(std::move(j)); });
  }

  // -- on the I/O thread ------------------------------------------------------------------

  void dispatch(job j) {
    if (idle_.empty()) {
      queue_.push_back(std::move(j));
      return;
    }
    auto c = std::move(idle_.back());
    idle_.pop_back();
    all_.push_back(c);
    c->start(std::move(j));
  }

  void release(const std::shared_ptr<connection>& c) {
    all_.erase(std::find(all_.begin(), all_.end(), c));
    if (!queue_.empty()) {
      job j = std::move(queue_.front());
      queue_.pop_front();
      all_.push_back(c);
      c->start(std::move(j));
      return;
    }
    idle_.push_back(c);
  }

  const http_target& host() const { return target_; }
  const tcp::endpoint& endpoint() const { return endpoint_; }
  http_encoding encoding() const { return encoding_; }

private:
  expected<std::string> encode(const load_request& r, size_t& header_length) const {
    return encoding_ == http_encoding::binary ? encode_binary_request(r, header_length)
                                              : encode_json_request(r);
  }

  http_target target_;
  tcp::endpoint endpoint_;
  http_encoding encoding_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<connection>> idle_;
  std::vector<std::shared_ptr<connection>> all_; // busy ones
  std::deque<job> queue_;
  std::thread thread_;
};

void connection::start(job j) {
  job_ = std::move(j);
  retried_ = false;
  const auto left = job_->deadline - steady::now();
  if (left <= steady::duration::zero()) {
    // It waited in the client past its deadline: the pool was the bottleneck.
    fail("client_timeout", "no free connection before the deadline");
    return;
  }
  const auto& r = job_->request;
  req_ = {};
  req_.method(http::verb::post);
  req_.target("/v2/models/" + r.model->name + "/infer");
  req_.version(11);
  req_.set(http::field::host, owner_.host().host);
  req_.set(http::field::content_type, job_->header_length ? "application/octet-stream"
                                                          : "application/json");
  if (job_->header_length)
    req_.set("Inference-Header-Content-Length", std::to_string(*job_->header_length));
  req_.keep_alive(true);
  req_.body() = job_->body;
  req_.prepare_payload();
  send();
}

void connection::send() {
  stream_.expires_at(job_->deadline);
  auto self = shared_from_this();
  auto write = [this, self] {
    http::async_write(stream_, req_, [this, self](beast::error_code ec, size_t) {
      if (ec)
        return fail(ec == beast::error::timeout ? "client_timeout" : "io", ec.message());
      parser_.emplace();
      parser_->body_limit(size_t{1} << 30);
      http::async_read(stream_, buffer_, *parser_, [this, self](beast::error_code ec, size_t) {
        if (ec) {
          // A keep-alive connection the server closed while idle: send again, once, fresh.
          if (reused_ && !retried_ &&
              (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
               ec == asio::error::broken_pipe)) {
            retried_ = true;
            close();
            return send();
          }
          return fail(ec == beast::error::timeout ? "client_timeout" : "io", ec.message());
        }
        auto res = parser_->release();
        if (!res.keep_alive())
          close();
        load_reply reply;
        if (res.result() != http::status::ok) {
          reply.error = fmt::format("http_{}", res.result_int());
          reply.message = error_message_of(res.body());
          return finish(std::move(reply));
        }
        std::optional<size_t> header;
        if (auto it = res.find("Inference-Header-Content-Length"); it != res.end()) {
          size_t v = 0;
          auto sv = it->value();
          auto [end, e] = std::from_chars(sv.data(), sv.data() + sv.size(), v);
          if (e != std::errc{} || end != sv.data() + sv.size()) {
            reply.error = "bad_reply";
            reply.message = "bad Inference-Header-Content-Length";
            return finish(std::move(reply));
          }
          header = v;
        }
        auto outputs = decode_infer_response(res.body(), header);
        if (!outputs) {
          reply.error = "bad_reply";
          reply.message = outputs.error().message();
        } else {
          reply.ok = true;
          reply.outputs = std::move(*outputs);
        }
        finish(std::move(reply));
      });
    });
  };
  if (connected_) {
    reused_ = true;
    write();
    return;
  }
  reused_ = false;
  stream_.async_connect(owner_.endpoint(), [this, self, write](beast::error_code ec) {
    if (ec)
      return fail(ec == beast::error::timeout ? "client_timeout" : "connect", ec.message());
    stream_.socket().set_option(tcp::no_delay(true));
    connected_ = true;
    write();
  });
}

void connection::fail(const std::string& label, const std::string& message) {
  close();
  load_reply r;
  r.error = label;
  r.message = message;
  finish(std::move(r));
}

void connection::finish(load_reply reply) {
  auto done = std::move(job_->done);
  job_.reset();
  buffer_.consume(buffer_.size());
  done(std::move(reply));
  owner_.release(shared_from_this());
}

} // namespace

expected<std::unique_ptr<transport>> make_http_transport(const std::string& url,
                                                         http_encoding encoding,
                                                         int connections) {
  auto target = parse_http_url(url);
  if (!target)
    return target.error();
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  if (target->host == "localhost")
    endpoint = tcp::endpoint(asio::ip::address_v4::loopback(), target->port);
  else
    endpoint = tcp::endpoint(asio::ip::make_address(target->host, ec), target->port);
  return std::unique_ptr<transport>(std::make_unique<http_transport_impl>(
      std::move(*target), endpoint, encoding, std::max(connections, 1)));
}

} // namespace troupe::load
