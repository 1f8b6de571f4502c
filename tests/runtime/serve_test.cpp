// serve_test: the frontend's plain decisions: API key checks, server.yaml, request binding.
#include <doctest/doctest.h>

#include "runtime/serve/api_key.hpp"
#include "runtime/serve/infer_binding.hpp"
#include "runtime/serve/serve_metrics.hpp"
#include "runtime/serve/server_config.hpp"

using namespace troupe;
using namespace troupe::serve;

TEST_CASE("constant_time_equal compares whole keys, lengths included") {
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "abcd"));
  CHECK_FALSE(constant_time_equal("", "a"));
  CHECK(constant_time_equal("", ""));
}

TEST_CASE("the API key comes from Authorization: Bearer or X-API-Key; missing is 401, wrong 403") {
  CHECK(*presented_key(std::string_view{"Bearer  k1 "}, std::nullopt) == "k1");
  CHECK(*presented_key(std::string_view{"bearer k1"}, std::nullopt) == "k1");
  CHECK(*presented_key(std::nullopt, std::string_view{"k2"}) == "k2");
  CHECK(*presented_key(std::string_view{"Basic xyz"}, std::nullopt) == "Basic xyz");
  CHECK_FALSE(presented_key(std::nullopt, std::nullopt));
  CHECK(check_api_key("", std::nullopt) == auth_result::ok);
  CHECK(check_api_key("k", std::nullopt) == auth_result::missing);
  CHECK(check_api_key("k", std::string_view{""}) == auth_result::missing);
  CHECK(check_api_key("k", std::string_view{"x"}) == auth_result::wrong);
  CHECK(check_api_key("k", std::string_view{"k"}) == auth_result::ok);
}

TEST_CASE("server.yaml sets limits and names the key of a bad value") {
  auto c = parse_server_config(R"(model_repository: /m
cpu_devices: 2
exit_timeout_s: 5
max_pending_bytes: 1048576
http:
  port: 0
  threads: 3
  max_body_bytes: 2048
  read_timeout_ms: 250
)", "s.yaml");
  REQUIRE(c);
  CHECK(c->model_repository == "/m");
  CHECK(c->cpu_devices == 2);
  CHECK(c->exit_timeout == std::chrono::seconds(5));
  CHECK(c->max_pending_bytes == 1048576);
  CHECK(server_config{}.max_pending_bytes == uint64_t{2} << 30);
  CHECK(c->http.port == 0);
  CHECK(c->http.io_threads == 3);
  CHECK(c->http.max_body_bytes == 2048);
  CHECK(c->http.read_timeout == std::chrono::milliseconds(250));
  CHECK(c->http.bind_address == "127.0.0.1"); // the default stays loopback

  auto bad = parse_server_config("http:\n  port: 70000\n", "s.yaml");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("s.yaml:2: http.port: expected a whole number from 0 to 65535") !=
        std::string::npos);
  auto unknown = parse_server_config("htp: {}\n", "s.yaml");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message().find("htp: unknown key") != std::string::npos);
  CHECK(server_config{}.http.port == 8000);
}

namespace {

model_signature two_input_model() {
  return {"m", 3, {{"a", dtype::f32, {-1, 4}}, {"b", dtype::i64, {-1, 2}}},
          {{"y", dtype::f32, {-1, 4}}, {"z", dtype::f32, {-1}}}, 8};
}

kserve::infer_input input(std::string name, dtype t, shape dims) {
  kserve::infer_input in;
  in.name = std::move(name);
  in.type = t;
  in.dims = dims;
  in.data = tensor::zeros(t, dims);
  return in;
}

} // namespace

TEST_CASE("bind_request orders inputs as the model does and picks outputs") {
  kserve::infer_request req;
  req.id = "q";
  req.inputs.push_back(input("b", dtype::i64, {3, 2}));
  req.inputs.push_back(input("a", dtype::f32, {3, 4}));
  req.outputs.push_back({"z", true});
  req.parameters.priority = 2;
  req.parameters.timeout_us = 1500;
  auto b = bind_request(std::move(req), two_input_model());
  REQUIRE(b);
  CHECK(b->inputs.at(0).type() == dtype::f32);
  CHECK(b->inputs.at(1).type() == dtype::i64);
  CHECK(b->rows == 3);
  CHECK(b->priority == 2);
  CHECK(b->timeout_us == 1500);
  REQUIRE(b->reply.outputs.size() == 1);
  CHECK(b->reply.outputs[0].index == 1);
  CHECK(b->reply.outputs[0].binary);
  CHECK(b->reply.model_version == "3");
  CHECK(b->reply.id == "q");
}

TEST_CASE("bind_request names what is wrong with a request") {
  auto fails_with = [](std::vector<kserve::infer_input> inputs, std::string part) {
    kserve::infer_request req;
    req.inputs = std::move(inputs);
    auto b = bind_request(std::move(req), two_input_model());
    REQUIRE_FALSE(b);
    CHECK(b.error().code() == errc::invalid_argument);
    CHECK_MESSAGE(b.error().message().find(part) != std::string::npos, b.error().message());
  };
  fails_with({input("a", dtype::f32, {1, 4})}, "model 'm' expects input 'b'");
  fails_with({input("a", dtype::f32, {1, 4}), input("b", dtype::i64, {1, 2}),
              input("c", dtype::f32, {1})},
             "model 'm' has no input 'c'");
  fails_with({input("a", dtype::f64, {1, 4}), input("b", dtype::i64, {1, 2})},
             "input 'a' must be FP32, got FP64");
  fails_with({input("a", dtype::f32, {1, 5}), input("b", dtype::i64, {1, 2})},
             "input 'a' has shape [1,5]");
  fails_with({input("a", dtype::f32, {9, 4}), input("b", dtype::i64, {9, 2})},
             "batch of 9 rows is larger than max_batch_size 8");
  fails_with({input("a", dtype::f32, {2, 4}), input("b", dtype::i64, {3, 2})},
             "input 'b' has 3 rows, another input has 2");
}

TEST_CASE("an input of unknown rank takes any shape, but a batched model's needs a batch "
          "dimension") {
  const model_signature m{"u", 1, {{"s", dtype::f32, {}}}, {{"y", dtype::f32, {}}}, 8};
  kserve::infer_request scalar;
  scalar.inputs.push_back(input("s", dtype::f32, {}));
  auto refused = bind_request(std::move(scalar), m);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::invalid_argument);
  CHECK(refused.error().message().find("need a batch dimension") != std::string::npos);
  kserve::infer_request rows;
  rows.inputs.push_back(input("s", dtype::f32, {2, 3}));
  auto bound = bind_request(std::move(rows), m);
  REQUIRE_MESSAGE(bound, bound.error().message());
  CHECK(bound->rows == 2);
}

TEST_CASE("error_response maps codes to statuses and adds Retry-After to 503") {
  auto busy = error_response(errc::resource_exhausted, "queue full");
  CHECK(busy.status == 503);
  REQUIRE(busy.headers.size() == 1);
  CHECK(busy.headers[0] == std::pair<std::string, std::string>{"Retry-After", "1"});
  CHECK(busy.body == R"({"error":"queue full"})");
  CHECK(error_response(errc::not_found, "x").status == 404);
  CHECK(error_response(errc::invalid_argument, "x").headers.empty());
}

TEST_CASE("serve_metrics counts requests, batches and device utilization") {
  serve_metrics m;
  auto& mm = m.model("net", 2);
  request_timing t{10, 2, 300, 5, 400};
  m.succeeded(mm, 4, t);
  m.succeeded(mm, 1, t);
  m.failed("net", "2", "timeout");
  m.batch(mm, 5, {0}, {300});
  m.set_device_memory(0, 1000, 250);
  auto text = m.render();
  CHECK(text.find("nv_inference_request_success{model=\"net\",version=\"2\"} 2\n") != std::string::npos);
  CHECK(text.find("nv_inference_count{model=\"net\",version=\"2\"} 5\n") != std::string::npos);
  CHECK(text.find("nv_inference_queue_duration_us{model=\"net\",version=\"2\"} 20\n") != std::string::npos);
  CHECK(text.find("nv_inference_request_failure{model=\"net\",version=\"2\",reason=\"timeout\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("nv_inference_exec_count{model=\"net\",version=\"2\"} 1\n") != std::string::npos);
  CHECK(text.find("troupe_device_memory_used_bytes{device=\"0\"} 250\n") != std::string::npos);
  CHECK(text.find("troupe_batch_size_bucket{model=\"net\",version=\"2\",le=\"8\"} 1\n") !=
        std::string::npos);
}
