// serve_e2e_test: the HTTP frontend on a loopback port against a raw socket client: endpoints,
// every bad input of REFERENCE.md §3, limits, API key, repository control, overload and stop.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <simdjson.h>

#include "actors/http_frontend.hpp"
#include "runtime/session.hpp"
#include "tests/actors/actor_test_util.hpp"

using namespace troupe;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

struct reply {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  bool closed = false; // the server closed without a response
  std::string error() const {
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    std::string_view msg;
    if (p.parse(body).get(doc) || doc["error"].get(msg))
      return "<no error field in: " + body + ">";
    return std::string(msg);
  }
};

/// One connection; raw bytes out, Beast-parsed replies in.
struct connection {
  explicit connection(uint16_t port) { socket.connect({asio::ip::make_address("127.0.0.1"), port}); }
  void send(std::string_view raw) { asio::write(socket, asio::buffer(raw.data(), raw.size())); }
  reply read() {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(size_t{1} << 30);
    boost::system::error_code ec;
    bhttp::read(socket, buffer, parser, ec);
    reply r;
    if (ec) {
      r.closed = true;
      return r;
    }
    auto& res = parser.get();
    r.status = res.result_int();
    r.body = res.body();
    for (const auto& f : res)
      r.headers[std::string(f.name_string())] = std::string(f.value());
    return r;
  }
  asio::io_context ioc;
  tcp::socket socket{ioc};
  boost::beast::flat_buffer buffer;
};

std::string request_text(std::string_view method, std::string_view path, std::string_view body,
                         std::string_view extra_headers = {}) {
  std::string s = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n";
  s += extra_headers;
  if (!body.empty() || method == "POST")
    s += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  s += "\r\n";
  s += body;
  return s;
}

std::string json_floats(const std::vector<float>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? "," : "") + fmt::format("{}", v[i]);
  return s + "]";
}

std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = dist(rng);
  return v;
}

const char* fast_config = R"(max_batch_size: 8
dynamic_batching:
  max_queue_delay_microseconds: 100
)";

// Requests wait up to 10 s for a batch of 8, so a test controls exactly what is queued.
const char* slow_config = R"(max_batch_size: 8
dynamic_batching:
  preferred_batch_size: [8]
  max_queue_delay_microseconds: 10000000
  priority_levels: 2
  default_queue_policy:
    max_queue_size: 2
    allow_timeout_override: true
)";

struct server_fixture {
  test::temp_dir repo;
  std::unique_ptr<test::threaded_system> system;
  std::unique_ptr<http_frontend> frontend;
  serve::server_config config;

  server_fixture() {
    add_model("mlp", fast_config);
    add_model("slow", slow_config);
    config.model_repository = repo.path.string();
    config.http.port = 0;
    config.http.max_body_bytes = 1 << 20;
    config.http.max_chunks = 64;
    config.http.read_timeout = std::chrono::milliseconds(300);
    config.max_json_depth = 16;
    config.exit_timeout = std::chrono::seconds(4);
    config.api_key = "s3cret-key";
  }

  void add_model(const std::string& name, const char* yaml) {
    std::filesystem::create_directories(repo.path / name / "1");
    test::write_mlp_onnx(repo.path / name / "1" / "model.onnx");
    std::ofstream(repo.path / name / "config.yaml") << yaml;
  }

  void start() {
    system = std::make_unique<test::threaded_system>();
    auto f = http_frontend::start(system->sys, config);
    REQUIRE_MESSAGE(f, (f ? "" : message_of(f.error())));
    frontend = std::move(*f);
  }

  ~server_fixture() {
    if (frontend)
      frontend->stop();
    frontend.reset();
  }

  reply call(std::string_view method, std::string_view path, std::string_view body = {},
             std::string_view headers = {}) {
    connection c(frontend->port());
    c.send(request_text(method, path, body, headers));
    return c.read();
  }

  bool live() { return call("GET", "/v2/health/live").status == 200; }

  /// The reference outputs of the MLP for `rows` rows of x, from a session of its own.
  std::vector<float> reference(const std::vector<float>& x, int64_t rows) {
    auto s = session::open((repo.path / "mlp" / "1" / "model.onnx").string());
    REQUIRE(s);
    tensor in = tensor::from_vector<float>({rows, 16}, x);
    auto out = (*s)->run(std::vector<tensor>{in});
    REQUIRE(out);
    auto v = out->at(0).values<float>();
    return {v.begin(), v.end()};
  }

  std::string infer_body(const std::vector<float>& x, int64_t rows, std::string extra = {}) {
    return fmt::format(R"({{"inputs":[{{"name":"x","shape":[{},16],"datatype":"FP32","data":{}}}]{}}})",
                       rows, json_floats(x), extra);
  }
};

std::vector<double> output_data(const std::string& body, std::string* name = nullptr) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  REQUIRE(p.parse(body).get(doc) == simdjson::SUCCESS);
  simdjson::dom::array outputs;
  REQUIRE(doc["outputs"].get(outputs) == simdjson::SUCCESS);
  auto first = outputs.at(0);
  if (name)
    *name = std::string(std::string_view(first["name"]));
  std::vector<double> v;
  for (auto e : first["data"].get_array())
    v.push_back(double(e));
  return v;
}

void check_close(const std::vector<double>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5));
}

/// Polls a condition the server reaches on its own threads (bounded, not a fixed wait).
template <class F> bool eventually(F condition) {
  for (int i = 0; i < 500; ++i) {
    if (condition())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

double metric_value(const std::string& text, const std::string& series) {
  auto at = text.find(series + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(text.substr(at + series.size() + 1));
}

} // namespace

TEST_CASE_FIXTURE(server_fixture, "health, server metadata, model metadata and model ready") {
  start();
  CHECK(call("GET", "/v2/health/live").status == 200);
  CHECK(call("GET", "/v2/health/ready").status == 200);
  auto server = call("GET", "/v2");
  CHECK(server.status == 200);
  CHECK(server.body.find(R"("name":"troupe")") != std::string::npos);
  CHECK(server.body.find("binary_tensor_data") != std::string::npos);
  auto meta = call("GET", "/v2/models/mlp");
  CHECK(meta.status == 200);
  CHECK(meta.body.find(R"("inputs":[{"name":"x","datatype":"FP32","shape":[-1,16]}])") !=
        std::string::npos);
  CHECK(meta.body.find(R"("outputs":[{"name":"y","datatype":"FP32","shape":[-1,8]}])") !=
        std::string::npos);
  CHECK(meta.body.find(R"("parallelism":{"max_batch_size":8)") != std::string::npos);
  CHECK(meta.body.find(R"("replicas":[{"instance":0,"devices":[0]}])") != std::string::npos);
  CHECK(call("GET", "/v2/models/mlp/versions/1").status == 200);
  auto ready = call("GET", "/v2/models/mlp/ready");
  CHECK(ready.status == 200);
  CHECK(ready.body.find(R"("ready":true)") != std::string::npos);
  auto missing = call("GET", "/v2/models/nope/ready");
  CHECK(missing.status == 404);
  CHECK(missing.error() == "unknown model 'nope'");
}

TEST_CASE_FIXTURE(server_fixture, "JSON inference with flat and nested data matches the model") {
  start();
  auto x = random_floats(3 * 16, std::random_device{}());
  auto want = reference(x, 3);
  auto r = call("POST", "/v2/models/mlp/infer", infer_body(x, 3, R"(,"id":"req-7")"));
  REQUIRE(r.status == 200);
  CHECK(r.body.find(R"("model_name":"mlp","model_version":"1","id":"req-7")") !=
        std::string::npos);
  CHECK(r.body.find(R"("shape":[3,8])") != std::string::npos);
  check_close(output_data(r.body), want);

  // Nested rows, versioned path.
  std::string nested = "[";
  for (int row = 0; row < 3; ++row) {
    std::vector<float> part(x.begin() + row * 16, x.begin() + (row + 1) * 16);
    nested += (row ? "," : "") + json_floats(part);
  }
  nested += "]";
  auto n = call("POST", "/v2/models/mlp/versions/1/infer",
                R"({"inputs":[{"name":"x","shape":[3,16],"datatype":"FP32","data":)" + nested +
                    "}]}");
  REQUIRE(n.status == 200);
  check_close(output_data(n.body), want);
}

TEST_CASE_FIXTURE(server_fixture, "binary tensor extension for inputs and outputs") {
  start();
  auto x = random_floats(2 * 16, std::random_device{}());
  auto want = reference(x, 2);
  std::string json =
      R"({"inputs":[{"name":"x","shape":[2,16],"datatype":"FP32","parameters":{"binary_data_size":128}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  std::string body = json + std::string(reinterpret_cast<const char*>(x.data()), 128);
  auto r = call("POST", "/v2/models/mlp/infer", body,
                "Inference-Header-Content-Length: " + std::to_string(json.size()) + "\r\n");
  REQUIRE(r.status == 200);
  REQUIRE(r.headers.count("Inference-Header-Content-Length"));
  const size_t header = std::stoul(r.headers["Inference-Header-Content-Length"]);
  CHECK(r.headers["Content-Type"] == "application/octet-stream");
  CHECK(r.body.substr(0, header).find(R"("binary_data_size":64)") != std::string::npos);
  REQUIRE(r.body.size() == header + 2 * 8 * sizeof(float));
  std::vector<float> got(16);
  std::memcpy(got.data(), r.body.data() + header, 64);
  for (size_t i = 0; i < 16; ++i)
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5));
}

TEST_CASE_FIXTURE(server_fixture, "every bad input gets its status and message and the server "
                                  "stays live") {
  start();
  const std::string x16 = json_floats(random_floats(16, 1));
  auto input = [&](std::string name, std::string shape, std::string type, std::string data) {
    return fmt::format(R"({{"name":"{}","shape":{},"datatype":"{}","data":{}}})", name, shape, type,
                       data);
  };
  const std::string good = input("x", "[1,16]", "FP32", x16);
  struct bad_case {
    std::string what, path, body, headers;
    unsigned status;
    std::string message; // a part of the error message
  };
  std::string deep(40, '[');
  deep += std::string(40, ']');
  const std::string json_header = R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}]})";
  std::vector<bad_case> cases = {
      {"malformed JSON", "/v2/models/mlp/infer", R"({"inputs":[)", "", 400, "malformed JSON"},
      {"nesting over the limit", "/v2/models/mlp/infer", R"({"inputs":)" + deep + "}", "", 400,
       "nested deeper than the limit of 16"},
      {"unknown model", "/v2/models/nope/infer", "{\"inputs\":[" + good + "]}", "", 404,
       "unknown model 'nope'"},
      {"unknown version", "/v2/models/mlp/versions/9/infer", "{\"inputs\":[" + good + "]}", "",
       404, "model 'mlp' has no version 9 loaded"},
      {"bad model name", "/v2/models/..%2Fetc/infer", "{}", "", 400, "model name"},
      {"missing input", "/v2/models/mlp/infer", R"({"inputs":[]})", "", 400, "no inputs"},
      {"extra input", "/v2/models/mlp/infer",
       "{\"inputs\":[" + good + "," + input("z", "[1,16]", "FP32", x16) + "]}", "", 400,
       "model 'mlp' has no input 'z'"},
      {"duplicate input", "/v2/models/mlp/infer", "{\"inputs\":[" + good + "," + good + "]}", "",
       400, "duplicate input name 'x'"},
      {"duplicate output", "/v2/models/mlp/infer",
       "{\"inputs\":[" + good + R"(],"outputs":[{"name":"y"},{"name":"y"}]})", "", 400,
       "duplicate output name 'y'"},
      {"unknown output", "/v2/models/mlp/infer",
       "{\"inputs\":[" + good + R"(],"outputs":[{"name":"q"}]})", "", 400,
       "model 'mlp' has no output 'q'"},
      {"wrong datatype", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[1,16]", "INT32", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]") + "]}",
       "", 400, "input 'x' must be FP32, got INT32"},
      {"shape not the model's", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[2,8]", "FP32", x16) + "]}", "", 400,
       "input 'x' has shape [2,8], model 'mlp' expects [-1,16]"},
      {"negative dimension", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[-1,16]", "FP32", x16) + "]}", "", 400,
       "negative dimension in shape [-1,16]"},
      {"zero dimension", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[0,16]", "FP32", "[]") + "]}", "", 400,
       "dimensions must be at least 1"},
      {"element count not the shape's", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[2,16]", "FP32", x16) + "]}", "", 400,
       "needs 32 elements, data has 16"},
      {"shape product over 64 bits", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[4294967296,4294967296,16]", "FP32", x16) + "]}", "", 400,
       "64 bits"},
      {"batch over max_batch_size", "/v2/models/mlp/infer",
       "{\"inputs\":[" + input("x", "[9,16]", "FP32", json_floats(random_floats(144, 2))) + "]}",
       "", 400, "batch of 9 rows is larger than max_batch_size 8"},
      {"header length over the body", "/v2/models/mlp/infer", json_header,
       "Inference-Header-Content-Length: 99999\r\n", 400, "larger than the body"},
      {"negative header length", "/v2/models/mlp/infer", json_header,
       "Inference-Header-Content-Length: -5\r\n", 400, "must not be negative"},
      {"header length not a number", "/v2/models/mlp/infer", json_header,
       "Inference-Header-Content-Length: 12abc\r\n", 400, "not a decimal number"},
      {"binary_data_size not the bytes sent", "/v2/models/mlp/infer",
       json_header + std::string(60, '\0'),
       fmt::format("Inference-Header-Content-Length: {}\r\n", json_header.size()), 400,
       "binary"},
      {"priority level that does not exist", "/v2/models/slow/infer",
       "{\"inputs\":[" + good + R"(],"parameters":{"priority":5}})", "", 400, "priority"},
      {"unknown path", "/v3/things", "", "", 404, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto r = call("POST", c.path, c.body, c.headers);
    CHECK(r.status == c.status);
    CHECK(r.error().find(c.message) != std::string::npos);
    CHECK(r.headers["Content-Type"] == "application/json");
    CHECK(live());
  }
}

TEST_CASE_FIXTURE(server_fixture, "HTTP-level limits: 413, 405, 408 and very many chunks") {
  start();
  auto big = call("POST", "/v2/models/mlp/infer", std::string((1 << 20) + 10, ' '));
  CHECK(big.status == 413);
  CHECK(live());

  auto wrong = call("GET", "/v2/models/mlp/infer");
  CHECK(wrong.status == 405);
  CHECK(wrong.headers["Allow"] == "POST");
  CHECK(wrong.error().find("method GET is not allowed") != std::string::npos);
  CHECK(live());

  {
    connection c(frontend->port());
    std::string chunked = "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 100; ++i)
      chunked += "1\r\n \r\n";
    chunked += "0\r\n\r\n";
    c.send(chunked);
    auto r = c.read();
    CHECK(r.status == 413);
  }
  CHECK(live());

  {
    connection c(frontend->port());
    c.send("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"in");
    auto r = c.read(); // the body never completes: 408 at the read timeout
    CHECK(r.status == 408);
  }
  {
    connection c(frontend->port());
    c.send("GET /v2/health/li"); // the header never completes
    auto r = c.read();
    CHECK(r.status == 408);
  }
  CHECK(live());
}

TEST_CASE_FIXTURE(server_fixture, "NaN and Infinity pass through inference") {
  start();
  std::string data = "[NaN,Infinity,-Infinity";
  for (int i = 3; i < 16; ++i)
    data += ",0.5";
  data += "]";
  auto r = call("POST", "/v2/models/mlp/infer",
                R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + data + "}]}");
  CHECK(r.status == 200);
  CHECK(r.body.find("NaN") != std::string::npos); // softmax of a NaN row is NaN
  CHECK(live());
}

TEST_CASE_FIXTURE(server_fixture, "repository endpoints need the API key: 401 without, 403 wrong") {
  start();
  auto none = call("POST", "/v2/repository/index", "{}");
  CHECK(none.status == 401);
  CHECK(none.headers["WWW-Authenticate"] == "Bearer");
  auto wrong = call("POST", "/v2/repository/index", "{}", "Authorization: Bearer guess\r\n");
  CHECK(wrong.status == 403);
  CHECK(wrong.error() == "the API key is not valid");
  auto right = call("POST", "/v2/repository/index", "{}", "Authorization: Bearer s3cret-key\r\n");
  CHECK(right.status == 200);
  CHECK(right.body == R"([{"name":"mlp","version":"1","state":"READY"},)"
                      R"({"name":"slow","version":"1","state":"READY"}])");
  auto header = call("POST", "/v2/repository/index", "", "X-API-Key: s3cret-key\r\n");
  CHECK(header.status == 200);
  CHECK(call("GET", "/v2/health/live").status == 200); // inference endpoints stay open
}

TEST_CASE_FIXTURE(server_fixture, "unload drains, load brings the model back, a failed reload "
                                  "keeps the old version serving") {
  start();
  const std::string key = "X-API-Key: s3cret-key\r\n";
  auto x = random_floats(16, 3);
  CHECK(call("POST", "/v2/models/mlp/infer", infer_body(x, 1)).status == 200);
  auto unload = call("POST", "/v2/repository/models/mlp/unload", "", key);
  CHECK(unload.status == 200);
  auto gone = call("POST", "/v2/models/mlp/infer", infer_body(x, 1));
  CHECK(gone.status == 404);
  auto index = call("POST", "/v2/repository/index", "", key);
  CHECK(index.body.find(R"({"name":"mlp","state":"UNAVAILABLE","reason":"unloaded"})") !=
        std::string::npos);
  CHECK(call("POST", "/v2/repository/models/mlp/load", "", key).status == 200);
  auto back = call("POST", "/v2/models/mlp/infer", infer_body(x, 1));
  CHECK(back.status == 200);
  check_close(output_data(back.body), reference(x, 1));

  // A broken config: the reload fails and version 1 keeps answering.
  std::ofstream(repo.path / "mlp" / "config.yaml") << "max_batch_size: lots\n";
  auto failed = call("POST", "/v2/repository/models/mlp/load", "", key);
  CHECK(failed.status == 400);
  CHECK(failed.error().find("max_batch_size") != std::string::npos);
  CHECK(call("POST", "/v2/models/mlp/infer", infer_body(x, 1)).status == 200);

  auto unknown = call("POST", "/v2/repository/models/nothere/load", "", key);
  CHECK(unknown.status == 404);
  CHECK(unknown.error() == "model 'nothere' is not in the model repository");
  auto url = call("POST", "/v2/repository/models/mlp/load",
                  R"({"parameters":{"config":"{}","file:1/model.onnx":"aGk="}})", key);
  CHECK(url.status == 400);
  CHECK(url.error().find("only from its repository folder") != std::string::npos);
  CHECK(live());
}

TEST_CASE_FIXTURE(server_fixture, "requests during a reload get their answer or 503 with "
                                  "Retry-After, never 404") {
  start();
  const std::string key = "X-API-Key: s3cret-key\r\n";
  const std::string body = infer_body(random_floats(16, 5), 1);
  std::atomic<bool> reloaded{false};
  std::map<int, int> statuses; // status -> count
  std::thread client([&] {
    while (!reloaded.load())
      ++statuses[call("POST", "/v2/models/mlp/infer", body).status];
  });
  for (int i = 0; i < 3; ++i)
    CHECK(call("POST", "/v2/repository/models/mlp/load", "", key).status == 200);
  reloaded = true;
  client.join();
  CHECK(statuses.count(404) == 0);
  int answered = 0;
  for (auto [status, n] : statuses) {
    CHECK_MESSAGE((status == 200 || status == 503), "status " << status);
    answered += n;
  }
  CHECK(answered > 0);
  CHECK(call("POST", "/v2/models/mlp/infer", body).status == 200);
}

TEST_CASE_FIXTURE(server_fixture, "queue full and timed-out requests get 503 with Retry-After") {
  start();
  const std::string body = infer_body(random_floats(16, 4), 1);
  connection a(frontend->port()), b(frontend->port());
  a.send(request_text("POST", "/v2/models/slow/infer", body));
  b.send(request_text("POST", "/v2/models/slow/infer", body));
  // Both wait for a batch of 8 (10 s); once both are queued, a third is refused at once.
  auto pending = [&] {
    return metric_value(call("GET", "/metrics").body,
                        R"(nv_inference_pending_request_count{model="slow",version="1"})");
  };
  REQUIRE(eventually([&] { return pending() == 2; }));
  auto full = call("POST", "/v2/models/slow/infer", body);
  CHECK(full.status == 503);
  CHECK(full.headers["Retry-After"] == "1");
  CHECK(full.error().find("queue") != std::string::npos);
  CHECK(live());
}

TEST_CASE_FIXTURE(server_fixture, "a request that would pass max_pending_bytes gets 503 with "
                                  "Retry-After; once the held request is answered, it goes in") {
  config.max_pending_bytes = 100; // one request of 16 floats (64 bytes) fits, two do not
  start();
  const std::string body = infer_body(random_floats(16, 6), 1);
  connection held(frontend->port()); // waits for a batch of 8 until its 2 s timeout
  held.send(request_text(
      "POST", "/v2/models/slow/infer",
      infer_body(random_floats(16, 6), 1, R"(,"parameters":{"timeout":2000000,"priority":1})")));
  auto pending = [&] {
    return metric_value(call("GET", "/metrics").body,
                        R"(nv_inference_pending_request_count{model="slow",version="1"})");
  };
  REQUIRE(eventually([&] { return pending() == 1; }));
  auto refused = call("POST", "/v2/models/mlp/infer", body);
  CHECK(refused.status == 503);
  CHECK(refused.headers["Retry-After"] == "1");
  CHECK(refused.error().find("would pass max_pending_bytes 100") != std::string::npos);
  auto timed_out = held.read(); // answered at its deadline, which frees its bytes
  CHECK(timed_out.status == 503);
  CHECK(timed_out.error().find("timed out") != std::string::npos);
  CHECK(call("POST", "/v2/models/mlp/infer", body).status == 200);
}

TEST_CASE_FIXTURE(server_fixture, "a request timeout is answered at its deadline with 503") {
  start();
  auto r = call("POST", "/v2/models/slow/infer",
                infer_body(random_floats(16, 5), 1, R"(,"parameters":{"timeout":20000,"priority":1})"));
  CHECK(r.status == 503);
  CHECK(r.headers["Retry-After"] == "1");
  CHECK(r.error().find("timed out") != std::string::npos);
  auto metrics = call("GET", "/metrics").body;
  CHECK(metric_value(metrics,
                     R"(nv_inference_request_failure{model="slow",version="1",reason="timeout"})") ==
        1);
}

TEST_CASE_FIXTURE(server_fixture, "a client that disconnects while queued does not disturb its "
                                  "batch, and nothing stays pending") {
  start();
  {
    connection gone(frontend->port());
    gone.send(request_text("POST", "/v2/models/slow/infer", infer_body(random_floats(16, 6), 1)));
    auto pending = [&] {
      return metric_value(call("GET", "/metrics").body,
                          R"(nv_inference_pending_request_count{model="slow",version="1"})");
    };
    REQUIRE(eventually([&] { return pending() == 1; }));
  } // closed while queued
  auto x = random_floats(7 * 16, 7);
  auto r = call("POST", "/v2/models/slow/infer", infer_body(x, 7)); // fills the batch of 8
  REQUIRE(r.status == 200);
  check_close(output_data(r.body), reference(x, 7));
  auto metrics = [&] { return call("GET", "/metrics").body; };
  CHECK(eventually([&] {
    return metric_value(metrics(),
                        R"(nv_inference_pending_request_count{model="slow",version="1"})") == 0;
  }));
  auto text = metrics();
  CHECK(metric_value(text, R"(nv_inference_exec_count{model="slow",version="1"})") == 1);
  CHECK(metric_value(text, R"(nv_inference_count{model="slow",version="1"})") == 8);
  CHECK(metric_value(text, R"(troupe_batch_size_bucket{model="slow",version="1",le="8"})") == 1);
  CHECK(live());
}

TEST_CASE_FIXTURE(server_fixture, "metrics count successes, failures by reason and durations") {
  start();
  for (int i = 0; i < 3; ++i)
    REQUIRE(call("POST", "/v2/models/mlp/infer", infer_body(random_floats(32, i), 2)).status == 200);
  CHECK(call("POST", "/v2/models/mlp/infer", "{").status == 400);
  auto m = call("GET", "/metrics");
  REQUIRE(m.status == 200);
  CHECK(m.headers["Content-Type"].find("text/plain; version=0.0.4") == 0);
  const auto& t = m.body;
  CHECK(metric_value(t, R"(nv_inference_request_success{model="mlp",version="1"})") == 3);
  CHECK(metric_value(t, R"(nv_inference_count{model="mlp",version="1"})") == 6);
  CHECK(metric_value(t, R"(nv_inference_request_failure{model="mlp",version="1",reason="parse_error"})") == 1);
  CHECK(metric_value(t, R"(nv_inference_exec_count{model="mlp",version="1"})") >= 1);
  CHECK(metric_value(t, R"(nv_inference_compute_infer_duration_us{model="mlp",version="1"})") > 0);
  CHECK(metric_value(t, R"(nv_inference_request_duration_us{model="mlp",version="1"})") > 0);
  CHECK(metric_value(t, R"(nv_inference_pending_request_count{model="mlp",version="1"})") == 0);
  CHECK(metric_value(t, R"(troupe_device_memory_used_bytes{device="0"})") > 0);
  CHECK(metric_value(t, R"(troupe_device_busy_us{device="0"})") > 0);
  CHECK(t.find("troupe_device_utilization{device=\"0\"}") != std::string::npos);
}

TEST_CASE_FIXTURE(server_fixture, "a model configured as a 2-stage micro-batched pipeline shows "
                                  "its plan in metadata and metrics and answers like the model") {
  add_model("piped", "max_batch_size: 4\nparallelism: {pipeline_stages: 2, micro_batch: 1}\n");
  start();
  auto meta = call("GET", "/v2/models/piped");
  REQUIRE(meta.status == 200);
  CHECK(meta.body.find(R"("pipeline_stages":2,"tensor_parallel":1,"micro_batch":1,)"
                       R"("chosen_by":"config","cuts":[[")") != std::string::npos);
  CHECK(meta.body.find(R"("predicted":{"items_per_s":)") != std::string::npos);
  const auto x = random_floats(48, std::random_device{}());
  auto r = call("POST", "/v2/models/piped/infer", infer_body(x, 3));
  REQUIRE(r.status == 200);
  check_close(output_data(r.body), reference(x, 3)); // same weights as mlp (same seed)
  const auto t = call("GET", "/metrics").body;
  CHECK(metric_value(t, R"(troupe_model_pipeline_stages{model="piped",version="1"})") == 2);
  CHECK(metric_value(t, R"(troupe_model_micro_batch{model="piped",version="1"})") == 1);
  CHECK(metric_value(t, R"(troupe_model_tensor_parallel{model="piped",version="1"})") == 1);
  CHECK(metric_value(t, R"(troupe_stage_batches{model="piped",version="1",stage="1"})") == 1);
  CHECK(metric_value(t, R"(troupe_stage_busy_us{model="piped",version="1",stage="0"})") > 0);
}

TEST_CASE_FIXTURE(server_fixture, "a model served with tensor_parallel 2 shows T and the devices "
                                  "of its ranks in metadata and metrics and answers like the model") {
  add_model("split", "max_batch_size: 4\nparallelism: {tensor_parallel: 2}\n");
  start();
  auto meta = call("GET", "/v2/models/split");
  REQUIRE(meta.status == 200);
  CHECK(meta.body.find(R"("pipeline_stages":1,"tensor_parallel":2,)") != std::string::npos);
  CHECK(meta.body.find(R"("stage_ranks":[[)") != std::string::npos);
  const auto x = random_floats(48, std::random_device{}());
  auto r = call("POST", "/v2/models/split/infer", infer_body(x, 3));
  REQUIRE(r.status == 200);
  check_close(output_data(r.body), reference(x, 3)); // same weights as mlp (same seed)
  const auto t = call("GET", "/metrics").body;
  CHECK(metric_value(t, R"(troupe_model_tensor_parallel{model="split",version="1"})") == 2);
}

namespace {

/// A connection whose inference request on the slow model has been admitted: the server counts
/// `pending` requests of it then.
std::unique_ptr<connection> admitted_to_slow(server_fixture& f, unsigned seed, int pending) {
  auto c = std::make_unique<connection>(f.frontend->port());
  c->send(
      request_text("POST", "/v2/models/slow/infer", f.infer_body(random_floats(16, seed), 1)));
  REQUIRE(eventually([&] {
    return metric_value(f.call("GET", "/metrics").body,
                        R"(nv_inference_pending_request_count{model="slow",version="1"})") ==
           pending;
  }));
  return c;
}

} // namespace

TEST_CASE_FIXTURE(server_fixture, "stop answers queued requests with 503 and refuses new ones") {
  config.exit_timeout = std::chrono::seconds(2);
  start();
  auto queued = admitted_to_slow(*this, 8, 1);
  // No wall-clock bound here (timing belongs to benchmarks; 3 s was missed on a loaded
  // machine): a stop that hangs fails through the test's CTest timeout instead.
  std::thread stopper([&] { frontend->stop(); });
  auto r = queued->read();
  stopper.join();
  CHECK(r.status == 503);
  CHECK(r.error().find("shutting down") != std::string::npos);
}

TEST_CASE_FIXTURE(server_fixture, "stop with no exit time at all still answers a queued request "
                                  "with 503 before it closes the connection") {
  // The load-independent form of a stop on a busy machine: the deadline has passed before the
  // batchers answer, yet the answer owed goes out before the forced close.
  config.exit_timeout = std::chrono::seconds(0);
  start();
  auto queued = admitted_to_slow(*this, 8, 1);
  frontend->stop();
  auto r = queued->read();
  CHECK(r.status == 503);
  CHECK(r.error() == "model slow is shutting down");
}

TEST_CASE_FIXTURE(server_fixture, "stop answers with 503 the requests still waiting in a bridge "
                                  "for room at their batcher") {
  // One bridge with room for one request at the batcher: the second admitted request waits in
  // the bridge's own queue when stop() shuts the batchers down.
  config.exit_timeout = std::chrono::seconds(2);
  config.bridges = 1;
  config.max_outstanding_per_bridge = 1;
  start();
  // Admitted first, so the bridge (one I/O thread, one bridge) takes it first.
  auto at_batcher = admitted_to_slow(*this, 8, 1);
  auto in_bridge = admitted_to_slow(*this, 9, 2);
  std::thread stopper([&] { frontend->stop(); });
  auto first = at_batcher->read();
  auto second = in_bridge->read();
  stopper.join();
  for (const reply* r : {&first, &second}) {
    INFO(r->body);
    CHECK(r->status == 503);
    CHECK(r->error() == "model slow is shutting down");
  }
}
