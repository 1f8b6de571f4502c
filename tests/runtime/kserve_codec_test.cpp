// Tests for the KServe v2 codec: round trips (JSON and binary), bad inputs, exact encodings.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "runtime/kserve/codec.hpp"
#include "runtime/kserve/float16.hpp"
#include "runtime/kserve/routes.hpp"
#include "runtime/kserve/status_map.hpp"

using namespace troupe;
using namespace troupe::kserve;

namespace {

/// The error of decoding `body`; fails the test when decoding succeeds.
status decode_error(std::string_view body, std::optional<std::string_view> header = std::nullopt,
                    decode_options options = {}) {
  auto r = decode_infer_request(body, header, options);
  REQUIRE_MESSAGE(!r.has_value(),
                  "decoding unexpectedly succeeded: ", std::string(body.substr(0, 200)));
  return r.error();
}

void check_error(std::string_view body, errc code, std::string_view text,
                 std::optional<std::string_view> header = std::nullopt) {
  const status st = decode_error(body, header);
  CHECK_MESSAGE(st.code() == code, st.message());
  CHECK_MESSAGE(st.message().find(text) != std::string::npos, "message: ", st.message(),
                " lacks: ", std::string(text));
  CHECK(http_status_of(st.code()).code / 100 == 4); // every decoder error is the client's
}

/// Random tensor of `type` whose bytes are all meaningful values of that type.
tensor random_tensor(dtype type, shape dims, std::mt19937& rng) {
  tensor t = tensor::empty(type, std::move(dims));
  auto* bytes = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i)
    bytes[i] = static_cast<uint8_t>(rng());
  const size_t n = static_cast<size_t>(t.numel());
  std::uniform_real_distribution<float> real(-1e6f, 1e6f);
  for (size_t i = 0; i < n; ++i) {
    switch (type) {
      case dtype::boolean:
        t.data<bool>()[i] = rng() % 2;
        break;
      case dtype::f32:
        t.data<float>()[i] = real(rng) / static_cast<float>(1 + rng() % 1000);
        break;
      case dtype::f64:
        t.data<double>()[i] = static_cast<double>(real(rng)) / (1 + rng() % 1000) * 1.000000001;
        break;
      case dtype::f16: // keep finite and not NaN: NaN payloads need not round-trip bit-exactly
        t.data<uint16_t>()[i] = float_to_half(real(rng) / 1e3f);
        break;
      case dtype::bf16:
        t.data<uint16_t>()[i] = float_to_bf16(real(rng));
        break;
      default:
        break; // integers: every bit pattern is a value
    }
  }
  return t;
}

/// A response re-labelled as a request: its outputs become inputs of the same JSON shape.
std::string response_as_request(const encoded_body& enc, std::optional<std::string>& header) {
  const size_t json_len = enc.json_length.value_or(enc.body.size());
  std::string json = enc.body.substr(0, json_len);
  const auto pos = json.find("\"outputs\"");
  REQUIRE(pos != std::string::npos);
  json.replace(pos, 9, "\"inputs\"");
  if (enc.json_length)
    header = std::to_string(json.size());
  return json + enc.body.substr(json_len);
}

} // namespace

TEST_CASE("every dtype round-trips through JSON and binary encoding bit-exactly") {
  std::mt19937 rng(std::random_device{}());
  const dtype types[] = {dtype::f32, dtype::f64, dtype::f16,    dtype::bf16, dtype::i8,
                         dtype::i16, dtype::i32, dtype::i64,    dtype::u8,   dtype::u16,
                         dtype::u32, dtype::u64, dtype::boolean};
  for (bool binary : {false, true}) {
    infer_response resp;
    resp.model_name = "m";
    for (dtype t : types) {
      infer_output o;
      o.name = std::string("out_") + std::string(kserve_name(t));
      o.type = t;
      o.dims = {static_cast<int64_t>(1 + rng() % 3), static_cast<int64_t>(1 + rng() % 7)};
      o.data = random_tensor(t, o.dims, rng);
      o.binary = binary;
      resp.outputs.push_back(std::move(o));
    }
    auto enc = encode_infer_response(resp);
    REQUIRE(enc);
    CHECK(enc->json_length.has_value() == binary);
    std::optional<std::string> header;
    const std::string body = response_as_request(*enc, header);
    auto req = decode_infer_request(body, header);
    REQUIRE_MESSAGE(req, req.error().message());
    REQUIRE(req->inputs.size() == resp.outputs.size());
    for (size_t i = 0; i < resp.outputs.size(); ++i) {
      INFO("binary=", binary, " output ", resp.outputs[i].name);
      CHECK(req->inputs[i].name == resp.outputs[i].name);
      CHECK(req->inputs[i].type == resp.outputs[i].type);
      CHECK(req->inputs[i].dims == resp.outputs[i].dims);
      CHECK(bitwise_equal(req->inputs[i].data, resp.outputs[i].data));
    }
  }
}

TEST_CASE("BYTES round-trips as JSON strings and as length-prefixed binary") {
  const std::vector<std::string> words = {"", "a", std::string("nul\0in", 6), "quote\"back\\slash",
                                          "ünïcode"};
  for (bool binary : {false, true}) {
    infer_response resp;
    resp.model_name = "m";
    infer_output o;
    o.name = "s";
    o.type = dtype::string;
    o.dims = {static_cast<int64_t>(words.size())};
    o.strings = words;
    o.binary = binary;
    resp.outputs.push_back(o);
    auto enc = encode_infer_response(resp);
    REQUIRE(enc);
    std::optional<std::string> header;
    const std::string body = response_as_request(*enc, header);
    auto req = decode_infer_request(body, header);
    REQUIRE_MESSAGE(req, req.error().message());
    CHECK(req->inputs[0].type == dtype::string);
    CHECK(req->inputs[0].strings == words);
  }
}

TEST_CASE("a binary request decodes JSON inputs and raw tensors in input order") {
  const std::string json =
      R"({"id":"r7","parameters":{"priority":2,"timeout":1500,"binary_data_output":true},)"
      R"("inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"b","datatype":"INT64","shape":[1],"data":[42]},)"
      R"({"name":"c","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":11}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":false}},{"name":"z"}]})";
  std::string body = json;
  const float a[2] = {1.5f, -0.25f};
  body.append(reinterpret_cast<const char*>(a), 8);
  const uint32_t l1 = 2, l2 = 1;
  body.append(reinterpret_cast<const char*>(&l1), 4).append("hi");
  body.append(reinterpret_cast<const char*>(&l2), 4).append("!");
  const std::string header = std::to_string(json.size());
  auto req = decode_infer_request(body, header);
  REQUIRE_MESSAGE(req, req.error().message());
  CHECK(req->id == "r7");
  CHECK(req->parameters == request_parameters{2, 1500, true});
  REQUIRE(req->inputs.size() == 3);
  CHECK(req->inputs[0].data.data<float>()[0] == 1.5f);
  CHECK(req->inputs[0].data.data<float>()[1] == -0.25f);
  CHECK(req->inputs[1].data.data<int64_t>()[0] == 42);
  CHECK(req->inputs[2].strings == std::vector<std::string>{"hi", "!"});
  REQUIRE(req->outputs.size() == 2);
  CHECK(!wants_binary(*req, "y"));
  CHECK(wants_binary(*req, "z"));
}

TEST_CASE("binary BYTES with more elements than the shape are refused before the rest are "
          "built") {
  const std::string json =
      R"({"inputs":[{"name":"c","datatype":"BYTES","shape":[1],)"
      R"("parameters":{"binary_data_size":12}}]})";
  std::string body = json;
  const uint32_t empty = 0;
  for (int i = 0; i < 3; ++i)
    body.append(reinterpret_cast<const char*>(&empty), 4);
  auto req = decode_infer_request(body, std::to_string(json.size()));
  REQUIRE_FALSE(req);
  CHECK(req.error().code() == errc::invalid_argument);
  CHECK(req.error().message().find("needs 1 elements, data has more") != std::string::npos);
}

TEST_CASE("an object with very many keys decodes (unknown keys ignored), and a duplicate among "
          "them is still refused") {
  std::string junk;
  for (int i = 0; i < 100000; ++i)
    junk += fmt::format(R"(,"k{}":0)", i);
  const std::string request =
      R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[7])" + junk + "}]" +
      junk + "}";
  auto req = decode_infer_request(request, {});
  REQUIRE_MESSAGE(req, req.error().message());
  REQUIRE(req->inputs.size() == 1);
  CHECK(req->inputs[0].data.data<int32_t>()[0] == 7);
  auto twice = decode_infer_request(
      R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[7])" + junk + "}]" +
          junk + R"(,"k99999":1})",
      {});
  REQUIRE_FALSE(twice);
  CHECK(twice.error().message().find("duplicate key 'k99999'") != std::string::npos);
}

TEST_CASE("nested data and flat data give the same row-major tensor") {
  auto flat = decode_infer_request(
      R"({"inputs":[{"name":"x","datatype":"INT32","shape":[2,3],"data":[1,2,3,4,5,6]}]})", {});
  auto nested = decode_infer_request(
      R"({"inputs":[{"name":"x","datatype":"INT32","shape":[2,3],"data":[[1,2,3],[4,5,6]]}]})", {});
  REQUIRE(flat);
  REQUIRE(nested);
  CHECK(bitwise_equal(flat->inputs[0].data, nested->inputs[0].data));
  CHECK(nested->inputs[0].data.data<int32_t>()[4] == 5);
}

TEST_CASE("NaN and infinities are accepted as bare tokens and as strings, strings elsewhere kept") {
  auto req = decode_infer_request(
      R"({"id":"NaN Infinity","inputs":[{"name":"x","datatype":"FP32","shape":[6],)"
      R"("data":[NaN,Infinity,-Infinity,"NaN","-Infinity",-Inf]}]})",
      {});
  REQUIRE_MESSAGE(req, req.error().message());
  CHECK(req->id == "NaN Infinity");
  const float* v = req->inputs[0].data.data<float>();
  CHECK(std::isnan(v[0]));
  CHECK(v[1] == std::numeric_limits<float>::infinity());
  CHECK(v[2] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(v[3]));
  CHECK(v[4] == -std::numeric_limits<float>::infinity());
  CHECK(v[5] == -std::numeric_limits<float>::infinity());
  // A non-finite word is not an integer.
  check_error(R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[NaN]}]})",
              errc::invalid_argument, "data element 0 is a string, not a INT32 value");
}

TEST_CASE("responses are encoded exactly, with shortest floats and bare non-finite tokens") {
  infer_response resp;
  resp.model_name = "m\"1";
  resp.model_version = "1";
  resp.id = "r1";
  infer_output o;
  o.name = "y";
  o.type = dtype::f32;
  o.dims = {4};
  const float values[] = {1.0f, 0.1f, std::nanf(""), -std::numeric_limits<float>::infinity()};
  o.data = tensor::from_vector<float>({4}, values);
  resp.outputs.push_back(o);
  infer_output b;
  b.name = "flag";
  b.type = dtype::boolean;
  b.dims = {2};
  const bool flags[] = {true, false};
  b.data = tensor::from_vector<bool>({2}, flags);
  resp.outputs.push_back(b);
  auto enc = encode_infer_response(resp);
  REQUIRE(enc);
  CHECK(!enc->json_length);
  CHECK(enc->body == R"({"model_name":"m\"1","model_version":"1","id":"r1","outputs":[)"
                     R"({"name":"y","datatype":"FP32","shape":[4],"data":[1,0.1,NaN,-Infinity]},)"
                     R"({"name":"flag","datatype":"BOOL","shape":[2],"data":[true,false]}]})");

  resp.outputs[0].binary = true;
  resp.outputs.pop_back();
  auto bin = encode_infer_response(resp);
  REQUIRE(bin);
  const std::string json =
      R"({"model_name":"m\"1","model_version":"1","id":"r1","outputs":[)"
      R"({"name":"y","datatype":"FP32","shape":[4],"parameters":{"binary_data_size":16}}]})";
  REQUIRE(bin->json_length == json.size());
  CHECK(bin->body.substr(0, json.size()) == json);
  REQUIRE(bin->body.size() == json.size() + 16);
  CHECK(std::memcmp(bin->body.data() + json.size(), values, 8) == 0);
}

TEST_CASE("an output whose tensor does not match its dtype or shape is refused") {
  infer_response resp;
  infer_output o;
  o.name = "y";
  o.type = dtype::f32;
  o.dims = {3};
  o.data = tensor::zeros(dtype::f32, {2});
  resp.outputs.push_back(o);
  auto enc = encode_infer_response(resp);
  REQUIRE(!enc);
  CHECK(enc.error().message().find("output 'y'") != std::string::npos);
}

TEST_CASE("metadata, ready and error bodies are exact JSON") {
  model_metadata m{"seed_cnn",
                   {"1", "2"},
                   "onnxruntime_onnx",
                   {{"x", dtype::f32, {-1, 1, 28, 28}}},
                   {{"y", dtype::f32, {-1, 10}}}};
  CHECK(encode_model_metadata(m) ==
        R"({"name":"seed_cnn","versions":["1","2"],"platform":"onnxruntime_onnx",)"
        R"("inputs":[{"name":"x","datatype":"FP32","shape":[-1,1,28,28]}],)"
        R"("outputs":[{"name":"y","datatype":"FP32","shape":[-1,10]}]})");
  CHECK(encode_server_metadata({"troupe", "0.1.0", {"binary_tensor_data"}}) ==
        R"({"name":"troupe","version":"0.1.0","extensions":["binary_tensor_data"]})");
  CHECK(encode_model_ready("m", "3", false) == R"({"name":"m","version":"3","ready":false})");
  CHECK(encode_error("bad \"x\"\\\n\t\x01") == R"({"error":"bad \"x\"\\\n\t\u0001"})");
  // Bytes that are not UTF-8 (say, from a header) must not make the body invalid JSON.
  CHECK(encode_error("caf\xe9!") == R"({"error":"caf?!"})");
  CHECK(encode_error("café") == "{\"error\":\"café\"}");
}

TEST_CASE("half and bfloat16 conversions round to nearest even and keep specials") {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65520.0f) == 0x7c00); // halfway to the next: rounds to even = inf
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(5.9604645e-8f) == 0x0001); // smallest subnormal
  CHECK(float_to_half(2.9802322e-8f) == 0x0000); // exactly half of it: ties to even (zero)
  CHECK(half_to_float(0x0001) == 5.9604645e-8f);
  CHECK(half_to_float(0x3555) == 0.333251953125f);
  CHECK(std::isnan(half_to_float(float_to_half(std::nanf("")))));
  for (uint32_t h = 0; h < 0x7c00; ++h) // every finite half survives float and back
    REQUIRE(float_to_half(half_to_float(static_cast<uint16_t>(h))) == h);
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(float_to_bf16(1.00390625f) == 0x3f80); // halfway between 0x3f80 and 0x3f81: even
}

TEST_CASE("malformed JSON and nesting past the depth limit are rejected") {
  check_error(R"({"inputs":[{"name":"x",)", errc::parse_error, "malformed JSON");
  check_error(R"({"inputs": nope})", errc::parse_error, "malformed JSON");
  check_error("[1,2]", errc::invalid_argument, "request: expected a JSON object, got array");
  std::string deep = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":)";
  for (int i = 0; i < 100; ++i)
    deep += '[';
  deep += '1';
  for (int i = 0; i < 100; ++i)
    deep += ']';
  deep += "}]}";
  decode_options options;
  options.max_json_depth = 32;
  const status st = decode_error(deep, std::nullopt, options);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(st.message() == "JSON is nested deeper than the limit of 32 levels");
}

TEST_CASE("structural mistakes name the input and what is wrong") {
  check_error(R"({"id":"x"})", errc::invalid_argument, "request has no 'inputs'");
  check_error(R"({"inputs":[]})", errc::invalid_argument, "request has no inputs");
  check_error(R"({"inputs":{}})", errc::invalid_argument, "inputs: expected an array, got object");
  check_error(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})", errc::invalid_argument,
              "inputs[0]: missing 'name'");
  check_error(R"({"inputs":[{"name":"x","shape":[1],"data":[1]}]})", errc::invalid_argument,
              "input 'x': missing 'datatype'");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})", errc::invalid_argument,
              "input 'x': missing 'shape'");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})", errc::invalid_argument,
              "input 'x': has neither 'data' nor binary_data_size");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP33","shape":[1],"data":[1]}]})",
              errc::invalid_argument, "unknown datatype 'FP33'");
  check_error(R"({"inputs":[{"name":"x","name":"y","datatype":"FP32","shape":[1],"data":[1]}]})",
              errc::invalid_argument, "duplicate key 'name'");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"inputs":[]})",
              errc::invalid_argument, "duplicate key 'inputs'");
  check_error(R"({"id":5,"inputs":[]})", errc::invalid_argument,
              "id: expected a string, got number");
  check_error(R"({"parameters":{"priority":-1},"inputs":[]})", errc::invalid_argument,
              "parameters.priority: must not be negative, got -1");
  check_error(R"({"parameters":{"timeout":"soon"},"inputs":[]})", errc::invalid_argument,
              "parameters.timeout: expected a non-negative integer, got string");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
              R"("outputs":[{"name":"y","parameters":{"classification":2}}]})",
              errc::unsupported, "classification extension is not supported");
}

TEST_CASE("duplicate input or output names are rejected") {
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},)"
              R"({"name":"x","datatype":"FP32","shape":[1],"data":[2]}]})",
              errc::invalid_argument, "duplicate input name 'x'");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
              R"("outputs":[{"name":"y"},{"name":"y"}]})",
              errc::invalid_argument, "duplicate output name 'y'");
}

TEST_CASE("negative dims, overflowing shapes and count mismatches are rejected") {
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,-3],"data":[1]}]})",
              errc::invalid_argument, "input 'x': negative dimension in shape [2,-3]");
  check_error(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[4294967296,4294967296],"data":[1]}]})",
      errc::out_of_range, "more elements than fit in 64 bits");
  check_error(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[18446744073709551615],"data":[1]}]})",
      errc::out_of_range, "does not fit in 64 bits");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5]}]})",
              errc::invalid_argument, "input 'x': shape [2,3] needs 6 elements, data has 5");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,2,3]}]})",
              errc::invalid_argument, "shape [2] needs 2 elements, data has 3");
  // A huge shape with tiny data fails on the count, before allocating for the shape.
  check_error(
      R"({"inputs":[{"name":"x","datatype":"FP64","shape":[1000000000000],"data":[[1],[2]]}]})",
      errc::invalid_argument, "needs 1000000000000 elements, data has 2");
  check_error(R"({"inputs":[{"name":"x","datatype":"BYTES","shape":[3],"data":["a","b"]}]})",
              errc::invalid_argument, "needs 3 elements, data has 2");
}

TEST_CASE("values of the wrong kind or out of the dtype's range are rejected") {
  check_error(R"({"inputs":[{"name":"x","datatype":"UINT8","shape":[2],"data":[1,300]}]})",
              errc::invalid_argument, "input 'x': data element 1 is a number, not a UINT8 value");
  check_error(R"({"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[-129]}]})",
              errc::invalid_argument, "not a INT8 value");
  check_error(R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}]})",
              errc::invalid_argument, "not a INT32 value");
  check_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,"two"]}]})",
              errc::invalid_argument, "data element 1 is a string, not a FP32 value");
  check_error(R"({"inputs":[{"name":"x","datatype":"BOOL","shape":[1],"data":[1]}]})",
              errc::invalid_argument, "not a BOOL value");
  check_error(R"({"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":[1]}]})",
              errc::invalid_argument, "not a BYTES string");
  auto big = decode_infer_request(
      R"({"inputs":[{"name":"x","datatype":"UINT64","shape":[1],"data":[18446744073709551615]}]})",
      {});
  REQUIRE(big);
  CHECK(big->inputs[0].data.data<uint64_t>()[0] == std::numeric_limits<uint64_t>::max());
}

TEST_CASE("Inference-Header-Content-Length must be a decimal no larger than the body") {
  const std::string json = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})";
  check_error(json, errc::invalid_argument, "is larger than the body", std::string_view{"9999"});
  check_error(json, errc::invalid_argument, "must not be negative", std::string_view{"-5"});
  for (std::string_view bad : {"abc", "12abc", "+5", " 5", "0x10", "5 ", ""})
    check_error(json, errc::invalid_argument, "Inference-Header-Content-Length", bad);
  check_error(json, errc::invalid_argument, "too large",
              std::string_view{"99999999999999999999999"});
  CHECK(parse_header_length("0", 0).value() == 0);
  CHECK(parse_header_length("17", 17).value() == 17);
}

TEST_CASE("binary_data_size must match the shape and the bytes actually sent") {
  const std::string json =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[3],"parameters":{"binary_data_size":8}}]})";
  const std::string h = std::to_string(json.size());
  check_error(json + std::string(8, '\0'), errc::invalid_argument,
              "input 'x': binary_data_size is 8 but shape [3] of FP32 needs 12 bytes", h);
  const std::string json12 =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[3],"parameters":{"binary_data_size":12}}]})";
  const std::string h12 = std::to_string(json12.size());
  check_error(json12 + std::string(4, '\0'), errc::invalid_argument,
              "binary_data_size 12 runs past the body (4 bytes left)", h12);
  check_error(json12 + std::string(16, '\0'), errc::invalid_argument,
              "4 bytes after the JSON header are not claimed", h12);
  check_error(json12, errc::invalid_argument,
              "binary_data_size without an Inference-Header-Content-Length");
  const std::string both =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}]})";
  check_error(both + std::string(4, '\0'), errc::invalid_argument,
              "has both 'data' and binary_data_size", std::to_string(both.size()));
  const std::string bytes =
      R"({"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]})";
  std::string tail;
  const uint32_t len = 100;
  tail.append(reinterpret_cast<const char*>(&len), 4).append("ab");
  check_error(bytes + tail, errc::invalid_argument, "BYTES element 0 claims 100 bytes, 2 are left",
              std::to_string(bytes.size()));
  check_error(bytes + std::string("\x01\0\0\0xy", 6), errc::invalid_argument,
              "BYTES element 1 has a truncated 4-byte length", std::to_string(bytes.size()));
}

TEST_CASE("status table maps every errc and frontend condition") {
  CHECK(http_status_of(errc::invalid_argument) == http_status{400, false});
  CHECK(http_status_of(errc::parse_error) == http_status{400, false});
  CHECK(http_status_of(errc::out_of_range) == http_status{400, false});
  CHECK(http_status_of(errc::unsupported) == http_status{400, false});
  CHECK(http_status_of(errc::not_found) == http_status{404, false});
  CHECK(http_status_of(errc::resource_exhausted) == http_status{503, true});
  CHECK(http_status_of(errc::timeout) == http_status{503, true});
  CHECK(http_status_of(errc::unavailable) == http_status{503, true});
  CHECK(http_status_of(errc::internal) == http_status{500, false});
  CHECK(http_status_of(errc::ok) == http_status{200, false});
  CHECK(http_status_of(frontend_condition::body_too_large).code == 413);
  CHECK(http_status_of(frontend_condition::too_many_chunks).code == 413);
  CHECK(http_status_of(frontend_condition::headers_too_large).code == 431);
  CHECK(http_status_of(frontend_condition::read_timeout).code == 408);
  CHECK(http_status_of(frontend_condition::method_not_allowed).code == 405);
  CHECK(http_status_of(frontend_condition::not_found).code == 404);
  CHECK(http_status_of(frontend_condition::unauthenticated).code == 401);
  CHECK(http_status_of(frontend_condition::forbidden).code == 403);
  CHECK(http_status_of(frontend_condition::malformed_http).code == 400);
}

TEST_CASE("KServe paths map to endpoints with model, version and method") {
  auto infer = match_route("/v2/models/seed_cnn/versions/3/infer");
  REQUIRE(infer);
  CHECK(infer->endpoint == endpoint::model_infer);
  CHECK(infer->model == "seed_cnn");
  CHECK(infer->version == 3);
  CHECK(method_allowed(*infer, http::method::post));
  CHECK(!method_allowed(*infer, http::method::get));
  CHECK(allowed_methods(*infer) == "POST");
  auto meta = match_route("/v2/models/m.v2");
  REQUIRE(meta);
  CHECK(meta->endpoint == endpoint::model_metadata);
  CHECK(!meta->version);
  CHECK(method_allowed(*meta, http::method::head));
  CHECK(match_route("/v2/models/m/ready")->endpoint == endpoint::model_ready);
  CHECK(match_route("/v2/health/live")->endpoint == endpoint::health_live);
  CHECK(match_route("/v2/health/ready")->endpoint == endpoint::health_ready);
  CHECK(match_route("/v2")->endpoint == endpoint::server_metadata);
  CHECK(match_route("/metrics")->endpoint == endpoint::metrics);
  auto load = match_route("/v2/repository/models/m/load");
  REQUIRE(load);
  CHECK(load->endpoint == endpoint::repository_load);
  CHECK(load->management);
  CHECK(match_route("/v2/repository/index")->management);
}

TEST_CASE("unknown paths are not_found, unsafe names and bad versions invalid_argument") {
  for (std::string_view p : {"/", "/v2/models/", "/v2/models/m/explain", "/v2/health", "/v3",
                             "/v2/repository/models/m/delete", "/v2/models/m/versions/1/x"})
    CHECK_MESSAGE(match_route(p).error().code() == errc::not_found, p);
  for (std::string_view p : {"/v2/models/../infer", "/v2/models/%2e%2e/infer",
                             "/v2/repository/models/../load", "/v2/models/a b/ready"}) {
    auto r = match_route(p);
    REQUIRE_MESSAGE(!r, p);
    CHECK_MESSAGE(r.error().code() == errc::invalid_argument, p);
    CHECK(r.error().message().find("invalid model name") != std::string::npos);
  }
  for (std::string_view p : {"/v2/models/m/versions/0/infer", "/v2/models/m/versions/-1",
                             "/v2/models/m/versions/1x/ready", "/v2/models/m/versions//infer"}) {
    auto r = match_route(p);
    REQUIRE_MESSAGE(!r, p);
    CHECK(r.error().message().find("invalid model version") != std::string::npos);
  }
}
