// Tests for sessions: loading errors that name the file, node and operator; input validation.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "runtime/onnx_import.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"

using namespace troupe;

namespace {

const std::string corpus = std::string(TROUPE_SOURCE_DIR) + "/tests/fuzz/corpus/onnx_import/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  auto path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

} // namespace

TEST_CASE("every truncation of a valid model is an error naming the file, never a crash") {
  const std::string bytes = read_bytes(corpus + "conv_relu.onnx");
  REQUIRE(bytes.size() > 100);
  int errors = 0;
  for (size_t len = 0; len < bytes.size(); len += 7) {
    auto g = parse_onnx(bytes.data(), len, "cut.onnx");
    if (g) {
      auto s = session::from_graph(std::move(*g));
      if (!s) {
        CHECK(s.error().message().find("cut.onnx") != std::string::npos);
        ++errors;
      }
      continue;
    }
    CHECK(g.error().message().find("cut.onnx") != std::string::npos);
    ++errors;
  }
  CHECK(errors > 0);
}

TEST_CASE("a missing file and a corrupt file are errors that name the path") {
  auto missing = session::open("/nonexistent/model.onnx");
  REQUIRE(!missing);
  CHECK(missing.error().code() == errc::not_found);
  CHECK(missing.error().message().find("/nonexistent/model.onnx") != std::string::npos);

  const auto path = write_temp("troupe_corrupt.onnx", "\x08\x07garbage\xff\xff\xff\xff");
  auto corrupt = session::open(path);
  REQUIRE(!corrupt);
  CHECK(corrupt.error().code() == errc::parse_error);
  CHECK(corrupt.error().message().find(path) != std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("an unsupported operator is reported at load with the file, node and operator") {
  auto g = load_onnx(corpus + "add_mul_broadcast.onnx");
  REQUIRE(g);
  g->nodes[0].op_type = "NonMaxSuppressionX";
  g->nodes[0].name = "nms";
  g->source = "custom.onnx";
  session_options options;
  options.optimize = false;
  auto s = session::from_graph(std::move(*g), options);
  REQUIRE(s);
  std::vector<shape> dims{{2, 3}};
  auto p = (*s)->plan_for(dims);
  REQUIRE(!p);
  CHECK(p.error().code() == errc::unsupported);
  CHECK(p.error().message().find("custom.onnx") != std::string::npos);
  CHECK(p.error().message().find("'nms'") != std::string::npos);
  CHECK(p.error().message().find("NonMaxSuppressionX") != std::string::npos);
}

TEST_CASE("session rejects inputs of the wrong dtype, rank or fixed dimension by name") {
  auto s = session::open(corpus + "conv_relu.onnx");
  REQUIRE(s);
  std::vector<tensor> wrong_type{tensor::zeros(dtype::f64, {1, 2, 5, 5})};
  auto r1 = (*s)->run(wrong_type);
  REQUIRE(!r1);
  CHECK(r1.error().message().find("'x'") != std::string::npos);
  CHECK(r1.error().message().find("float32") != std::string::npos);
  std::vector<tensor> wrong_dim{tensor::zeros(dtype::f32, {1, 3, 5, 5})};
  auto r2 = (*s)->run(wrong_dim);
  REQUIRE(!r2);
  CHECK(r2.error().code() == errc::invalid_argument);
  CHECK(r2.error().message().find("[1,3,5,5]") != std::string::npos);
  std::vector<tensor> ok{tensor::zeros(dtype::f32, {3, 2, 5, 5})};
  auto r3 = (*s)->run(ok);
  REQUIRE(r3);
  CHECK((*r3)[0].dims() == shape{3, 3, 5, 5});
}

TEST_CASE("a model asking for a tensor over the size limit is refused, not allocated") {
  auto g = load_onnx(corpus + "conv_relu.onnx");
  REQUIRE(g);
  session_options options;
  options.max_value_bytes = 1024;
  auto s = session::from_graph(std::move(*g), options);
  REQUIRE(s);
  std::vector<shape> dims{{64, 2, 5, 5}};
  auto p = (*s)->plan_for(dims);
  REQUIRE(!p);
  CHECK(p.error().code() == errc::resource_exhausted);
}

TEST_CASE("infer_outputs marks output dims that follow the dynamic batch as -1") {
  auto s = session::open(corpus + "shape_gather_concat.onnx");
  REQUIRE(s);
  auto outs = (*s)->infer_outputs();
  REQUIRE(outs);
  REQUIRE(outs->size() == 1);
  CHECK((*outs)[0].type == dtype::f32);
  CHECK((*outs)[0].dims == shape{-1, 6});

  auto fixed = session::open(corpus + "reshape_transpose.onnx");
  REQUIRE(fixed);
  auto fixed_outs = (*fixed)->infer_outputs();
  REQUIRE(fixed_outs);
  CHECK((*fixed_outs)[0].dims == shape{2, 3, 2});
}

TEST_CASE("plans for several batch sizes share one packed copy of the weights and agree row by row") {
  for (const std::string name : {"seed_cnn", "bert_encoder"}) {
    CAPTURE(name);
    auto s = session::open(std::string(TROUPE_TEST_MODELS_DIR) + "/" + name + ".onnx");
    REQUIRE(s);
    std::mt19937_64 rng(std::random_device{}());
    auto batch_of = [&](int64_t rows) {
      std::vector<tensor> inputs;
      for (const auto& in : (*s)->inputs()) {
        shape dims = in.dims;
        for (size_t d = 0; d < dims.size(); ++d)
          if (dims[d] < 0)
            dims[d] = d == 0 ? rows : 16; // the batch, then any other dynamic dim (a sequence)
        inputs.push_back(random_tensor(in.type, dims, rng));
      }
      return inputs;
    };
    auto four = batch_of(4);
    auto r4 = (*s)->run(four);
    REQUIRE(r4);
    const size_t entries = (*s)->packed_weights().entries();
    const size_t bytes = (*s)->packed_weights().bytes();
    CHECK(entries > 0);
    // Batch 1 and batch 3 compile new plans; their weights must come from the same cache.
    for (int64_t rows : {1, 3}) {
      std::vector<tensor> part;
      for (const auto& t : four)
        part.push_back(t.slice_rows(0, rows).clone());
      auto r = (*s)->run(part);
      REQUIRE(r);
      for (size_t i = 0; i < r->size(); ++i)
        CHECK(relative_error((*r)[i], (*r4)[i].slice_rows(0, rows).clone()) < 1e-5);
    }
    CHECK((*s)->packed_weights().entries() == entries);
    CHECK((*s)->packed_weights().bytes() == bytes);
  }
}
