// Tests for the load generator's HTTP side: the KServe v2 client codec and the Beast
// transport against a small Beast server run inside the test.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <latch>
#include <mutex>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <simdjson.h>

#include "runtime/load/dataset.hpp"
#include "runtime/load/http_transport.hpp"
#include "runtime/load/kserve_client.hpp"

using namespace troupe;
using namespace troupe::load;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

/// What the test server saw of one infer request.
struct seen_request {
  std::string model;
  std::string content_type;
  bool binary = false;
  int64_t priority = 0;
  int64_t timeout = 0;
  std::vector<float> input;
};

/// A KServe-ish server for model "m" (input x [-1,4] FP32, output y [-1,10] FP32): the reply's
/// argmax is int(x[0]); priority 2 is answered 503. One thread per keep-alive connection.
class test_server {
public:
  test_server() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~test_server() {
    stop_ = true;
    // Wake the blocking accept with a connection of our own.
    asio::io_context ioc;
    tcp::socket s(ioc);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    accept_thread_.join();
    for (auto& t : connection_threads_)
      t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return accepted_; }
  std::vector<seen_request> seen() {
    std::lock_guard lock{mutex_};
    return seen_;
  }

private:
  void accept_loop() {
    for (;;) {
      tcp::socket socket(ioc_);
      acceptor_.accept(socket);
      if (stop_)
        return;
      ++accepted_;
      connection_threads_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
    }
  }

  void serve(tcp::socket socket) {
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(socket, buf, req, ec);
      if (ec)
        return;
      auto res = handle(req);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !req.keep_alive())
        return;
    }
  }

  static http::response<http::string_body> reply(http::status st, std::string body) {
    http::response<http::string_body> res{st, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    return res;
  }

  http::response<http::string_body> handle(const http::request<http::string_body>& req) {
    const std::string target(req.target());
    if (req.method() == http::verb::get) {
      if (target == "/v2/models/m")
        return reply(http::status::ok,
                     R"({"name":"m","versions":["1"],"platform":"onnx","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,10]}]})");
      return reply(http::status::not_found, R"({"error":"unknown model 'nope'"})");
    }
    seen_request s;
    s.model = target;
    s.content_type = std::string(req[http::field::content_type]);
    const std::string& body = req.body();
    size_t json_len = body.size();
    if (auto it = req.find("Inference-Header-Content-Length"); it != req.end()) {
      s.binary = true;
      json_len = std::stoul(std::string(it->value()));
    }
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(body.data(), json_len).get(doc))
      return reply(http::status::bad_request, R"({"error":"bad json"})");
    // Absent parameters leave the defaults (0, false).
    if (doc["parameters"]["priority"].get_int64().get(s.priority) != simdjson::SUCCESS) {}
    if (doc["parameters"]["timeout"].get_int64().get(s.timeout) != simdjson::SUCCESS) {}
    bool binary_out = false;
    if (doc["parameters"]["binary_data_output"].get_bool().get(binary_out) != simdjson::SUCCESS) {}
    auto input = doc["inputs"].at(0);
    if (s.binary) {
      s.input.resize((body.size() - json_len) / 4);
      std::memcpy(s.input.data(), body.data() + json_len, s.input.size() * 4);
    } else {
      for (auto v : simdjson::dom::array(input["data"]))
        s.input.push_back(static_cast<float>(double(v)));
    }
    {
      std::lock_guard lock{mutex_};
      seen_.push_back(s);
    }
    if (s.priority == 2)
      return reply(http::status::service_unavailable, R"({"error":"queue full"})");
    std::vector<float> logits(10, 0.f);
    logits[static_cast<size_t>(s.input.at(0))] = 1.f;
    if (binary_out) {
      std::string header =
          R"({"model_name":"m","outputs":[{"name":"y","shape":[1,10],"datatype":"FP32","parameters":{"binary_data_size":40}}]})";
      auto res = reply(http::status::ok, header);
      res.set("Inference-Header-Content-Length", std::to_string(header.size()));
      res.set(http::field::content_type, "application/octet-stream");
      res.body().append(reinterpret_cast<const char*>(logits.data()), 40);
      return res;
    }
    std::string data;
    for (size_t i = 0; i < 10; ++i)
      data += (i ? "," : "") + std::to_string(static_cast<int>(logits[i]));
    // Nested data, which KServe allows, to exercise the decoder's flattening.
    return reply(http::status::ok, R"({"model_name":"m","outputs":[{"name":"y","shape":[1,10],"datatype":"FP32","data":[[)" + data + "]]}]}");
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread accept_thread_;
  std::vector<std::thread> connection_threads_;
  std::mutex mutex_;
  std::vector<seen_request> seen_;
};

/// Sends requests for classes 0..n-1 (priority 2 for every fifth) and waits for all replies.
std::vector<load_reply> send_all(transport& t, const model_info& info, int n) {
  std::vector<load_reply> replies(static_cast<size_t>(n));
  std::latch all_done(n);
  for (int i = 0; i < n; ++i) {
    load_request r;
    r.model = &info;
    tensor x = tensor::zeros(dtype::f32, {1, 4});
    x.data<float>()[0] = static_cast<float>(i % 10);
    x.data<float>()[3] = 0.1f; // a value that needs the shortest round-trip float form
    r.inputs.push_back(x);
    r.priority = i % 5 == 4 ? 2 : 1;
    r.timeout_us = 250000;
    t.submit(std::move(r), [&replies, &all_done, i](load_reply reply) {
      replies[static_cast<size_t>(i)] = std::move(reply);
      all_done.count_down();
    });
  }
  all_done.wait();
  return replies;
}

void check_replies(const std::vector<load_reply>& replies) {
  for (size_t i = 0; i < replies.size(); ++i) {
    CAPTURE(i);
    if (i % 5 == 4) {
      CHECK_FALSE(replies[i].ok);
      CHECK(replies[i].error == "http_503");
      CHECK(replies[i].message == "queue full");
      continue;
    }
    REQUIRE_MESSAGE(replies[i].ok, std::string(replies[i].error + ": " + replies[i].message));
    REQUIRE(replies[i].outputs.size() == 1);
    CHECK(replies[i].outputs[0].dims() == shape{1, 10});
    CHECK(predicted_class(replies[i].outputs[0]) == static_cast<int64_t>(i % 10));
  }
}

} // namespace

TEST_CASE("parse_http_url accepts loopback targets only") {
  auto a = parse_http_url("http://127.0.0.1:8000/");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 8000);
  auto b = parse_http_url("http://[::1]:9000");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == 9000);
  CHECK(parse_http_url("http://localhost")->port == 8000);
  CHECK(parse_http_url("http://10.1.2.3:8000").error().message().find("only targets loopback") !=
        std::string::npos);
  CHECK_FALSE(parse_http_url("http://example.com:80"));
  CHECK_FALSE(parse_http_url("https://127.0.0.1:8000"));
  CHECK_FALSE(parse_http_url("http://127.0.0.1:99999"));
  CHECK_FALSE(parse_http_url("http://127.0.0.1:8000/v2"));
}

TEST_CASE("KServe JSON request body carries shape, datatype, data and scheduling parameters") {
  model_info info{"m", {{"x", dtype::f32, {-1, 3}}}, {}};
  load_request r;
  r.model = &info;
  const float v[] = {1.5f, -2.f, 0.1f};
  r.inputs.push_back(tensor::from_vector<float>({1, 3}, v));
  r.priority = 2;
  r.timeout_us = 5000;
  auto body = encode_json_request(r);
  REQUIRE(body);
  CHECK(*body == R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1.5,-2,0.1]}],"parameters":{"priority":2,"timeout":5000}})");
  size_t header = 0;
  auto bin = encode_binary_request(r, header);
  REQUIRE(bin);
  CHECK(bin->substr(0, header) == R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}],"parameters":{"priority":2,"timeout":5000,"binary_data_output":true}})");
  REQUIRE(bin->size() == header + 12);
  CHECK(std::memcmp(bin->data() + header, v, 12) == 0);
  auto decoded = decode_infer_response(R"({"outputs":[{"name":"y","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4.5]]}]})", std::nullopt);
  REQUIRE(decoded);
  CHECK(decoded->at(0).data<float>()[3] == 4.5f);
  auto mismatch = decode_infer_response(R"({"outputs":[{"name":"y","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]})", std::nullopt);
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().message() == "reply output shape [2,2] holds 4 values, data has 3");
}

TEST_CASE("HTTP JSON transport: metadata, replies, error statuses and connection reuse") {
  test_server server;
  auto t = make_http_transport(server.url(), http_encoding::json, 2);
  REQUIRE(t);
  auto info = (*t)->describe("m");
  REQUIRE_MESSAGE(info, info.error().to_string());
  REQUIRE(info->inputs.size() == 1);
  CHECK(info->inputs[0].name == "x");
  CHECK(info->inputs[0].dims == shape{-1, 4});
  CHECK(info->outputs[0].name == "y");
  auto missing = (*t)->describe("nope");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == errc::not_found);
  CHECK(missing.error().message().find("unknown model 'nope'") != std::string::npos);

  check_replies(send_all(**t, *info, 40));
  auto seen = server.seen();
  REQUIRE(seen.size() == 40);
  for (const auto& s : seen) {
    CHECK(s.model == "/v2/models/m/infer");
    CHECK(s.content_type == "application/json");
    CHECK_FALSE(s.binary);
    CHECK(s.timeout == 250000);
    CHECK(s.input.size() == 4);
    CHECK(s.input[3] == 0.1f); // the float came through exactly
  }
  // Two describe() connections plus at most the pool's two keep-alive connections.
  CHECK(server.connections() <= 4);
}

TEST_CASE("HTTP binary transport sends raw tensors and decodes binary outputs") {
  test_server server;
  auto t = make_http_transport(server.url(), http_encoding::binary, 3);
  REQUIRE(t);
  auto info = (*t)->describe("m");
  REQUIRE(info);
  check_replies(send_all(**t, *info, 30));
  auto seen = server.seen();
  REQUIRE(seen.size() == 30);
  for (const auto& s : seen) {
    CHECK(s.binary);
    CHECK(s.content_type == "application/octet-stream");
    REQUIRE(s.input.size() == 4);
    CHECK(s.input[3] == 0.1f);
  }
  CHECK(server.connections() <= 4);
}

TEST_CASE("HTTP transport reports a refused connection as `connect`") {
  uint16_t port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  } // closed: nothing listens there now
  auto t = make_http_transport("http://127.0.0.1:" + std::to_string(port), http_encoding::json, 1);
  REQUIRE(t);
  CHECK((*t)->describe("m").error().code() == errc::unavailable);
  model_info info{"m", {{"x", dtype::f32, {-1, 4}}}, {}};
  load_request r;
  r.model = &info;
  r.inputs.push_back(tensor::zeros(dtype::f32, {1, 4}));
  std::latch done(1);
  load_reply got;
  (*t)->submit(std::move(r), [&](load_reply reply) {
    got = std::move(reply);
    done.count_down();
  });
  done.wait();
  CHECK_FALSE(got.ok);
  CHECK(got.error == "connect");
}
