// server: connection state machine (read, pipeline, ordered writes, limits, timeouts, stop).
#include "runtime/http/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "runtime/kserve/codec.hpp"
#include "runtime/kserve/status_map.hpp"

namespace troupe::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using strand_type = asio::strand<asio::io_context::executor_type>;
using socket_type = tcp::socket::rebind_executor<strand_type>::other;
using timer_type = asio::steady_timer::rebind_executor<strand_type>::other;
using error_code = boost::system::error_code;

class session;

namespace detail {

struct request_data {
  bhttp::request<bhttp::string_body> message;
};

/// Shared by a request's responder copies. Holds the session alive until the reply is sent,
/// so a handler may answer long after the connection's own I/O has finished.
class reply_state {
public:
  reply_state(std::shared_ptr<session> owner, uint64_t seq, request_data request)
      : owner_(std::move(owner)), seq_(seq), request_(std::move(request)) {}
  ~reply_state();

  void send(response r);
  bool client_gone() const;
  const request_data& request() const { return request_; }
  void release_body() { std::string().swap(request_.message.body()); }

private:
  std::shared_ptr<session> owner_;
  uint64_t seq_;
  request_data request_;
  std::atomic<bool> done_{false};
};

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Shared server state. Sessions keep it (and with it the io_context) alive: a socket must never
// outlive its io_context, and a responder may outlive the server object.

struct server::impl : std::enable_shared_from_this<server::impl> {
  explicit impl(server_options o, request_handler h)
      : options(std::move(o)), handler(std::move(h)),
        ioc(static_cast<int>(std::max<size_t>(options.io_threads, 1))),
        acceptor(asio::make_strand(ioc)), retry_timer(acceptor.get_executor()) {}

  server_options options;
  request_handler handler;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;

  std::mutex sessions_mutex;
  std::condition_variable sessions_closed;
  std::unordered_map<session*, std::weak_ptr<session>> sessions; // open connections
  std::atomic<bool> stopping{false};
  bool stopped = false; // guarded by stop_mutex
  std::mutex stop_mutex;

  // Replies are posted to session strands from any thread; once the I/O threads are gone
  // nothing may be posted (it would keep sessions and the io_context alive in a cycle).
  std::shared_mutex post_mutex;
  bool posting_allowed = true;

  void do_accept();
  /// Runs `action` on the strand of every open connection.
  void each_session(const std::function<void(session&)>& action);
};

namespace {

std::string_view reason_of(unsigned status) {
  const auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return r.empty() ? std::string_view{"Unknown"} : std::string_view{r.data(), r.size()};
}

/// Header text without CR or LF, so a handler cannot split the response.
void append_field_text(std::string& out, std::string_view s) {
  for (char c : s)
    out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

std::string serialize_head(const response& r, size_t body_size, bool close,
                           bool http10_keep_alive) {
  std::string head;
  head.reserve(128 + r.headers.size() * 48);
  head += "HTTP/1.1 ";
  head += std::to_string(r.status);
  head += ' ';
  head += reason_of(r.status);
  head += "\r\nContent-Type: ";
  append_field_text(head, r.content_type);
  head += "\r\nContent-Length: ";
  head += std::to_string(body_size);
  head += "\r\n";
  for (const auto& [name, value] : r.headers) {
    append_field_text(head, name);
    head += ": ";
    append_field_text(head, value);
    head += "\r\n";
  }
  if (close)
    head += "Connection: close\r\n";
  else if (http10_keep_alive)
    head += "Connection: keep-alive\r\n";
  head += "\r\n";
  return head;
}

response error_response(unsigned status, std::string_view message) {
  response r;
  r.status = status;
  r.body = kserve::encode_error(message);
  r.close = true;
  return r;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// One connection. Every member runs on the session's strand except post_reply, gone() and the
// constructor.

class session : public std::enable_shared_from_this<session> {
public:
  session(std::shared_ptr<server::impl> core, socket_type socket)
      : core_(std::move(core)), socket_(std::move(socket)), read_timer_(socket_.get_executor()),
        write_timer_(socket_.get_executor()), buffer_(read_buffer_limit(core_->options)) {
    chunk_callback_ = [this](uint64_t, std::string_view, error_code& ec) {
      if (++chunks_ > core_->options.max_chunks) {
        too_many_chunks_ = true;
        ec = bhttp::error::body_limit;
      }
    };
  }

  ~session() {
    // Normally close() has unregistered already; this covers a session that ended otherwise.
    std::lock_guard lock(core_->sessions_mutex);
    if (core_->sessions.erase(this) > 0)
      core_->sessions_closed.notify_all();
  }

  void start() { wait_for_request(); }
  strand_type executor() { return socket_.get_executor(); }

  /// From any thread: completes the reply with sequence number `seq`. `inline_ok`: when
  /// called on this session's strand (a handler answering at once) run it now rather than
  /// queueing a round trip through the io_context.
  void post_reply(uint64_t seq, response r, bool inline_ok) {
    std::shared_lock lock(core_->post_mutex);
    if (!core_->posting_allowed)
      return;
    auto work = [self = shared_from_this(), seq, r = std::move(r)]() mutable {
      self->complete(seq, std::move(r));
    };
    if (inline_ok)
      asio::dispatch(socket_.get_executor(), std::move(work));
    else
      asio::post(socket_.get_executor(), std::move(work));
  }

  bool gone() const { return gone_.load(std::memory_order_relaxed); }

  /// Graceful stop: no new requests; answer what was received, then close.
  void stop_reading() {
    read_closed_ = true;
    if (reading_)
      wake_reader();
    maybe_close();
  }

  void close() {
    if (closed_)
      return;
    closed_ = true;
    gone_ = true;
    read_timer_.cancel();
    write_timer_.cancel();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    std::lock_guard lock(core_->sessions_mutex);
    core_->sessions.erase(this);
    core_->sessions_closed.notify_all();
  }

private:
  struct slot {
    uint64_t seq = 0;
    bool ready = false;
    bool close = false;
    bool head_only = false;
    bool http10_keep_alive = false;
    std::string head;
    std::string body;
  };

  // -- reading --------------------------------------------------------------------------------

  /// Starts reading the next request when allowed: not closed, and fewer than max_pipelined
  /// answers pending (back-pressure on a client that pipelines without reading).
  void wait_for_request() {
    if (reading_ || read_closed_ || closed_ || queue_.size() >= core_->options.max_pipelined)
      return;
    reading_ = true;
    if (buffer_.size() > 0) // a pipelined request is already here
      return read_header();
    arm_read_timer(core_->options.idle_timeout, /*idle=*/true);
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      self->read_timer_.cancel();
      if (ec || self->read_closed_ || self->timed_out_) {
        self->reading_ = false;
        self->read_closed_ = true; // idle timeout or stop: nothing was started, just close
        return self->maybe_close();
      }
      self->read_header();
    });
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(
        static_cast<uint32_t>(std::min<size_t>(core_->options.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(core_->options.max_body_bytes);
    parser_->on_chunk_header(chunk_callback_);
    chunks_ = 0;
    too_many_chunks_ = false;
    arm_read_timer(core_->options.read_timeout, /*idle=*/false);
    bhttp::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec)
      return on_read_error(ec);
    const auto& msg = parser_->get();
    auto expect = msg.find(bhttp::field::expect);
    if (expect != msg.end() && beast::iequals(expect->value(), "100-continue") &&
        !parser_->is_done()) {
      slot s;
      s.seq = next_seq_++;
      s.ready = true; // an interim answer, written in order like any other
      s.head = "HTTP/1.1 100 Continue\r\n\r\n";
      queue_.push_back(std::move(s));
      flush();
    }
    if (parser_->is_done())
      return on_request();
    bhttp::async_read(socket_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) {
                        if (ec)
                          return self->on_read_error(ec);
                        self->on_request();
                      });
  }

  void on_request() {
    read_timer_.cancel();
    reading_ = false;
    request_data_type data{parser_->release()};
    parser_.reset();
    const bool keep_alive = data.message.keep_alive();
    if (!keep_alive || core_->stopping)
      read_closed_ = true;

    slot s;
    s.seq = next_seq_++;
    s.head_only = data.message.method() == bhttp::verb::head;
    s.http10_keep_alive = keep_alive && data.message.version() < 11;
    s.close = !keep_alive;
    queue_.push_back(std::move(s));

    const uint64_t seq = queue_.back().seq;
    auto state = std::make_shared<detail::reply_state>(shared_from_this(), seq, std::move(data));
    responder reply(state);
    const request_view view(&state->request());
    state.reset(); // the responder owns it now: dropping it answers 500
    // An exception must not escape into io_context::run, which would end the I/O thread. The
    // responder's destructor has queued a generic 500 by now; this more telling one goes first.
    try {
      core_->handler(view, std::move(reply));
    } catch (const std::exception& e) {
      complete(seq, error_response(500, std::string("handler failed: ") + e.what()));
    } catch (...) {
      complete(seq, error_response(500, "handler failed"));
    }
    wait_for_request();
  }

  /// What the read buffer may hold: a whole header, or a chunk-size line or trailer of that
  /// size, plus room for the body bytes the parser consumes as they come.
  static size_t read_buffer_limit(const server_options& o) {
    return o.max_header_bytes + chunk_line_room;
  }
  static constexpr size_t chunk_line_room = size_t{64} << 10;

  void on_read_error(error_code ec) {
    read_timer_.cancel();
    reading_ = false;
    read_closed_ = true;
    const bool got_some = parser_ && parser_->got_some();
    parser_.reset();
    using kserve::frontend_condition;
    auto reject = [&](frontend_condition c, std::string message) {
      enqueue_error(kserve::http_status_of(c).code, message);
    };
    if (core_->stopping) {
      // A request cut off by stop() is dropped; answers already owed still go out.
    } else if (too_many_chunks_) {
      reject(frontend_condition::too_many_chunks,
             "chunked body has more than " + std::to_string(core_->options.max_chunks) + " chunks");
    } else if (timed_out_) {
      if (got_some)
        reject(frontend_condition::read_timeout,
               "request not received within " +
                   std::to_string(core_->options.read_timeout.count()) + " ms");
    } else if (ec == bhttp::error::body_limit) {
      reject(frontend_condition::body_too_large,
             "body larger than " + std::to_string(core_->options.max_body_bytes) + " bytes");
    } else if (ec == bhttp::error::buffer_overflow) {
      reject(frontend_condition::body_too_large,
             "a chunk-size line or trailer longer than " +
                 std::to_string(read_buffer_limit(core_->options)) + " bytes");
    } else if (ec == bhttp::error::header_limit) {
      reject(frontend_condition::headers_too_large,
             "headers larger than " + std::to_string(core_->options.max_header_bytes) + " bytes");
    } else if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
               ec.category() != bhttp::make_error_code(bhttp::error::end_of_stream).category()) {
      // The client closed or reset its side, or a socket error: nobody to answer.
      gone_ = true;
    } else {
      reject(frontend_condition::malformed_http, "malformed HTTP request: " + ec.message());
    }
    flush();
    maybe_close();
  }

  void enqueue_error(unsigned status, const std::string& message) {
    slot s;
    s.seq = next_seq_++;
    queue_.push_back(std::move(s));
    complete(queue_.back().seq, error_response(status, message));
  }

  /// Read timers: on expiry the pending read is woken by shutting the receive side, which
  /// leaves a write in progress undisturbed (socket::cancel would abort it too).
  void arm_read_timer(std::chrono::milliseconds after, bool idle) {
    timed_out_ = false;
    read_timer_.expires_after(after);
    // A timer that expired just as its read finished still runs its handler, with success;
    // the generation tells it apart from the timer of the next read.
    read_timer_.async_wait(
        [self = shared_from_this(), idle, gen = ++read_generation_](error_code ec) {
          if (ec || !self->reading_ || gen != self->read_generation_)
            return;
          self->timed_out_ = true;
          if (idle)
            self->read_closed_ = true;
          self->wake_reader();
        });
  }

  void wake_reader() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_receive, ignored);
  }

  // -- writing --------------------------------------------------------------------------------

  void complete(uint64_t seq, response r) {
    if (closed_ || queue_.empty() || seq < queue_.front().seq)
      return;
    const size_t index = static_cast<size_t>(seq - queue_.front().seq);
    if (index >= queue_.size() || queue_[index].ready)
      return;
    slot& s = queue_[index];
    // Stopping with reading closed: the connection ends after the last answer it owes, not
    // after whichever is completed first (the answers behind that one would be lost).
    const bool last_owed = core_->stopping && read_closed_ && index + 1 == queue_.size();
    s.close = s.close || r.close || last_owed;
    s.head = serialize_head(r, r.body.size(), s.close, s.http10_keep_alive);
    if (!s.head_only)
      s.body = std::move(r.body);
    s.ready = true;
    flush();
  }

  /// Writes the ready answers at the front of the queue in one gather write: answers leave in
  /// request order whatever order handlers finished in.
  void flush() {
    if (writing_ || closed_)
      return;
    buffers_.clear();
    size_t count = 0;
    bool close_after = false;
    for (const slot& s : queue_) {
      if (!s.ready)
        break;
      buffers_.emplace_back(s.head.data(), s.head.size());
      if (!s.body.empty())
        buffers_.emplace_back(s.body.data(), s.body.size());
      ++count;
      if (s.close) {
        close_after = true;
        break;
      }
    }
    if (count == 0)
      return maybe_close();
    writing_ = true;
    write_timer_.expires_after(core_->options.write_timeout);
    write_timer_.async_wait([self = shared_from_this(), gen = ++write_generation_](error_code ec) {
      if (!ec && self->writing_ && gen == self->write_generation_)
        self->close(); // the client stopped reading
    });
    asio::async_write(socket_, buffers_,
                      [self = shared_from_this(), count, close_after](error_code ec, size_t) {
                        self->on_written(ec, count, close_after);
                      });
  }

  void on_written(error_code ec, size_t count, bool close_after) {
    writing_ = false;
    write_timer_.cancel();
    for (size_t i = 0; i < count && !queue_.empty(); ++i)
      queue_.pop_front();
    if (ec) {
      gone_ = true;
      return close();
    }
    if (close_after) {
      read_closed_ = true;
      return linger_then_close();
    }
    flush();
    wait_for_request();
  }

  /// After an error answer the client may still be sending the body we refused; closing with
  /// unread data makes the kernel send RST, which can destroy our answer before the client
  /// reads it. So: send FIN, drain for a short while, then close.
  void linger_then_close() {
    if (closed_)
      return;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (reading_) // a read still pending (the stop path): it ends with the socket
      return close();
    read_timer_.expires_after(
        std::min<std::chrono::milliseconds>(core_->options.read_timeout, std::chrono::seconds(2)));
    read_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec)
        self->close();
    });
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](error_code ec, size_t) {
                              if (ec)
                                return self->close();
                              self->drain();
                            });
  }

  void maybe_close() {
    if (!closed_ && read_closed_ && !reading_ && !writing_ && queue_.empty())
      close();
  }

  using request_data_type = detail::request_data;

  std::shared_ptr<server::impl> core_;
  socket_type socket_;
  timer_type read_timer_;
  timer_type write_timer_;
  // Bounded: the parser charges a chunk-size line, its extensions and the trailer to no limit
  // until the line is complete, so a line that never ends would grow the buffer unbounded.
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::function<void(uint64_t, std::string_view, error_code&)> chunk_callback_;
  size_t chunks_ = 0;
  bool too_many_chunks_ = false;
  std::deque<slot> queue_;
  std::vector<asio::const_buffer> buffers_;
  std::array<char, 4096> drain_buffer_;
  uint64_t next_seq_ = 0;
  uint64_t read_generation_ = 0;
  uint64_t write_generation_ = 0;
  bool reading_ = false;     // a wait or read for a request is outstanding
  bool read_closed_ = false; // no more requests will be read
  bool writing_ = false;
  bool closed_ = false;
  bool timed_out_ = false;
  std::atomic<bool> gone_{false};
};

// ---------------------------------------------------------------------------------------------

namespace detail {

reply_state::~reply_state() {
  if (!done_.load(std::memory_order_acquire))
    // Queued, not inline: when a throwing handler drops its responder, the handler's own
    // error (written by on_request's catch) goes first.
    owner_->post_reply(seq_, error_response(500, "the request was dropped without an answer"),
                       false);
}

void reply_state::send(response r) {
  if (done_.exchange(true, std::memory_order_acq_rel))
    return;
  owner_->post_reply(seq_, std::move(r), true);
}

bool reply_state::client_gone() const { return owner_->gone(); }

} // namespace detail

void responder::send(response r) const {
  if (state_)
    state_->send(std::move(r));
}

bool responder::client_gone() const { return !state_ || state_->client_gone(); }

void responder::release_body() const {
  if (state_)
    state_->release_body();
}

request_view responder::request() const {
  return request_view(state_ ? &state_->request() : nullptr);
}

http::method request_view::verb() const {
  switch (data_->message.method()) {
    case bhttp::verb::get:
      return method::get;
    case bhttp::verb::head:
      return method::head;
    case bhttp::verb::post:
      return method::post;
    case bhttp::verb::put:
      return method::put;
    case bhttp::verb::delete_:
      return method::delete_;
    case bhttp::verb::options:
      return method::options;
    default:
      return method::other;
  }
}

std::string_view request_view::method_name() const {
  const auto s = data_->message.method_string();
  return {s.data(), s.size()};
}

std::string_view request_view::target() const {
  const auto s = data_->message.target();
  return {s.data(), s.size()};
}

std::string_view request_view::path() const {
  const auto t = target();
  return t.substr(0, t.find('?'));
}

std::string_view request_view::query() const {
  const auto t = target();
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::string_view request_view::body() const { return data_->message.body(); }

std::optional<std::string_view> request_view::header(std::string_view name) const {
  auto it = data_->message.find(name);
  if (it == data_->message.end())
    return std::nullopt;
  const auto v = it->value();
  return std::string_view{v.data(), v.size()};
}

// ---------------------------------------------------------------------------------------------

void server::impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, socket_type socket) {
    if (stopping)
      return;
    if (ec) {
      if (ec == asio::error::operation_aborted)
        return;
      // Out of descriptors and the like: try again shortly instead of spinning.
      retry_timer.expires_after(std::chrono::milliseconds(20));
      retry_timer.async_wait([this](error_code wait_ec) {
        if (!wait_ec && !stopping)
          do_accept();
      });
      return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto s = std::make_shared<session>(shared_from_this(), std::move(socket));
    {
      std::lock_guard lock(sessions_mutex);
      sessions.emplace(s.get(), s);
    }
    asio::dispatch(s->executor(), [s] { s->start(); });
    do_accept();
  });
}

void server::impl::each_session(const std::function<void(session&)>& action) {
  std::vector<std::shared_ptr<session>> open;
  {
    std::lock_guard lock(sessions_mutex);
    for (auto& [ptr, weak] : sessions)
      if (auto s = weak.lock())
        open.push_back(std::move(s));
  }
  for (auto& s : open)
    asio::post(s->executor(), [s, action] { action(*s); });
}

expected<std::unique_ptr<server>> server::start(server_options options, request_handler handler) {
  if (options.io_threads == 0)
    return make_error(errc::invalid_argument, "http server: io_threads must be at least 1");
  if (!handler)
    return make_error(errc::invalid_argument, "http server: no request handler");
  error_code ec;
  const auto address = asio::ip::make_address(options.bind_address, ec);
  if (ec)
    return make_error(errc::invalid_argument, "http server: bad bind address '{}': {}",
                      options.bind_address, ec.message());
  auto core = std::make_shared<impl>(std::move(options), std::move(handler));
  const tcp::endpoint endpoint(address, core->options.port);
  auto fail = [&](const char* what) {
    return make_error(errc::unavailable, "http server: cannot {} {}:{}: {}", what,
                      core->options.bind_address, core->options.port, ec.message());
  };
  if (core->acceptor.open(endpoint.protocol(), ec); ec)
    return fail("open");
  // Lets a restarted server bind while old connections sit in TIME_WAIT.
  if (core->acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec)
    return fail("configure");
  if (core->acceptor.bind(endpoint, ec); ec)
    return fail("bind");
  if (core->acceptor.listen(asio::socket_base::max_listen_connections, ec); ec)
    return fail("listen on");
  core->bound_port = core->acceptor.local_endpoint().port();
  asio::dispatch(core->acceptor.get_executor(), [core] { core->do_accept(); });
  for (size_t i = 0; i < core->options.io_threads; ++i)
    core->threads.emplace_back([core = core.get()] { core->ioc.run(); });
  return std::unique_ptr<server>(new server(std::move(core)));
}

server::server(std::shared_ptr<impl> state) : impl_(std::move(state)) {}

server::~server() { stop(std::chrono::milliseconds(0)); }

uint16_t server::port() const { return impl_->bound_port; }

size_t server::open_connections() const {
  std::lock_guard lock(impl_->sessions_mutex);
  return impl_->sessions.size();
}

void server::begin_stop() {
  impl& core = *impl_;
  if (core.stopping.exchange(true))
    return;
  asio::post(core.acceptor.get_executor(), [&core] {
    error_code ignored;
    core.acceptor.close(ignored);
    core.retry_timer.cancel();
  });
  core.each_session([](session& s) { s.stop_reading(); });
}

void server::stop(std::chrono::milliseconds timeout) {
  impl& core = *impl_;
  std::lock_guard stop_lock(core.stop_mutex);
  if (core.stopped)
    return;
  // Graceful part: no new requests; answers already owed go out, then each connection closes.
  begin_stop();
  {
    std::unique_lock lock(core.sessions_mutex);
    core.sessions_closed.wait_for(lock, timeout, [&core] { return core.sessions.empty(); });
  }
  // Whatever is left is closed now. Posted after every answer handed in before this call, so
  // on each connection's strand the writes of those answers start first.
  core.each_session([](session& s) { s.close(); });
  {
    std::unique_lock lock(core.sessions_mutex);
    core.sessions_closed.wait_for(lock, std::chrono::seconds(1),
                                  [&core] { return core.sessions.empty(); });
  }
  {
    std::unique_lock lock(core.post_mutex);
    core.posting_allowed = false;
  }
  core.ioc.stop();
  for (auto& t : core.threads)
    t.join();
  core.threads.clear();
  // Run what the threads left queued (completions of closed sockets), so no queued handler
  // keeps a session, and through it this state, alive after the server is gone.
  core.ioc.restart();
  while (core.ioc.poll() > 0) {
  }
  core.stopped = true;
}

} // namespace troupe::http
