// Tests for ONNX import of tensors and attributes from hostile or malformed protobufs.
#include <doctest/doctest.h>

#include <onnx/onnx_pb.h>

#include "runtime/onnx_import.hpp"

using namespace troupe;

TEST_CASE("a TensorProto declaring huge dims with little data is refused before allocating") {
  onnx::TensorProto proto;
  proto.set_name("w");
  proto.set_data_type(onnx::TensorProto::FLOAT);
  proto.add_dims(int64_t{1} << 20);
  proto.add_dims(int64_t{1} << 20); // 4 TiB if it were allocated
  proto.set_raw_data(std::string(4, '\0'));
  auto t = tensor_from_onnx(proto);
  REQUIRE(!t);
  CHECK(t.error().code() == errc::parse_error);
  CHECK(t.error().message().find("'w'") != std::string::npos);

  proto.clear_raw_data();
  proto.add_float_data(1.f);
  auto typed = tensor_from_onnx(proto);
  REQUIRE(!typed);
  CHECK(typed.error().code() == errc::parse_error);
}

TEST_CASE("tensor_from_onnx reads raw and typed data into the declared shape") {
  onnx::TensorProto proto;
  proto.set_data_type(onnx::TensorProto::INT64);
  proto.add_dims(3);
  for (int64_t v : {7, -2, 40})
    proto.add_int64_data(v);
  auto t = tensor_from_onnx(proto);
  REQUIRE(t);
  CHECK(t->dims() == shape{3});
  CHECK(t->data<int64_t>()[1] == -2);

  onnx::TensorProto raw;
  raw.set_data_type(onnx::TensorProto::FLOAT);
  raw.add_dims(2);
  const float values[2] = {1.5f, -3.f};
  raw.set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof values));
  auto r = tensor_from_onnx(raw);
  REQUIRE(r);
  CHECK(r->data<float>()[1] == -3.f);
}

TEST_CASE("negative dims in a TensorProto are an error") {
  onnx::TensorProto proto;
  proto.set_data_type(onnx::TensorProto::FLOAT);
  proto.add_dims(-4);
  auto t = tensor_from_onnx(proto);
  REQUIRE(!t);
  CHECK(t.error().code() == errc::invalid_argument);
}
