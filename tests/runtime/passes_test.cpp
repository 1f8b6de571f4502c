// Tests for graph passes: identity removal, BatchNormalization folding, conv epilogue fusion.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "runtime/passes/passes.hpp"
#include "runtime/session.hpp"

using namespace troupe;

namespace {

node make(std::string op, std::vector<std::string> ins, std::vector<std::string> outs) {
  node n;
  n.op_type = std::move(op);
  n.name = outs.empty() ? n.op_type : outs[0];
  n.inputs = std::move(ins);
  n.outputs = std::move(outs);
  return n;
}

tensor vec(std::vector<float> v) {
  return tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v);
}

} // namespace

TEST_CASE("remove_identities rewires consumers and keeps identities that feed graph outputs") {
  graph g;
  g.inputs = {{"x", dtype::f32, {2}}};
  g.nodes = {make("Identity", {"x"}, {"a"}), make("Dropout", {"a"}, {"b"}),
             make("Relu", {"b"}, {"c"}), make("Identity", {"c"}, {"y"})};
  g.outputs = {{"y", dtype::f32, {2}}};
  CHECK(remove_identities(g) == 2);
  REQUIRE(g.nodes.size() == 2);
  CHECK(g.nodes[0].op_type == "Relu");
  CHECK(g.nodes[0].inputs[0] == "x");
  CHECK(g.nodes[1].op_type == "Identity");
}

TEST_CASE("fold_batchnorm_into_conv rescales weights and bias per output channel") {
  graph g;
  g.inputs = {{"x", dtype::f32, {1, 1, 4, 4}}};
  // Two output channels, one input channel, 1x1 kernel: w = [2, 3], b = [1, -1].
  g.initializers["w"] = tensor::from_vector<float>({2, 1, 1, 1}, std::vector<float>{2.f, 3.f});
  g.initializers["b"] = vec({1.f, -1.f});
  g.initializers["scale"] = vec({0.5f, 2.f});
  g.initializers["shift"] = vec({0.1f, 0.2f});
  g.initializers["mean"] = vec({1.f, 2.f});
  g.initializers["var"] = vec({4.f, 0.25f});
  g.nodes = {make("Conv", {"x", "w", "b"}, {"c"}),
             make("BatchNormalization", {"c", "scale", "shift", "mean", "var"}, {"y"})};
  g.nodes[1].attrs["epsilon"] = 0.f;
  g.outputs = {{"y", dtype::f32, {1, 2, 4, 4}}};
  CHECK(fold_batchnorm_into_conv(g) == 1);
  REQUIRE(g.nodes.size() == 1);
  const node& conv = g.nodes[0];
  CHECK(conv.outputs[0] == "y");
  const tensor& w = g.initializers.at(conv.inputs[1]);
  const tensor& b = g.initializers.at(conv.inputs[2]);
  // factor = scale / sqrt(var): [0.25, 4]
  CHECK(w.data<float>()[0] == doctest::Approx(0.5f));
  CHECK(w.data<float>()[1] == doctest::Approx(12.f));
  // bias = (b - mean) * factor + shift: [0*0.25+0.1, -3*4+0.2]
  CHECK(b.data<float>()[0] == doctest::Approx(0.1f));
  CHECK(b.data<float>()[1] == doctest::Approx(-11.8f));
  // The original weights are untouched (they may be shared).
  CHECK(g.initializers.at("w").data<float>()[0] == 2.f);
}

TEST_CASE("fuse_conv_epilogues fuses a residual Add and Relu only when shapes match") {
  auto build = [] {
    graph g;
    g.inputs = {{"x", dtype::f32, {-1, 4, 8, 8}}};
    g.initializers["w"] = tensor::zeros(dtype::f32, {4, 4, 3, 3});
    g.nodes = {make("Relu", {"x"}, {"r"}), make("Conv", {"r", "w"}, {"c"}),
               make("Add", {"c", "r"}, {"s"}), make("Relu", {"s"}, {"y"})};
    g.outputs = {{"y", dtype::f32, {-1, 4, 8, 8}}};
    return g;
  };
  graph g = build();
  shape_map shapes{{"x", {2, 4, 8, 8}}, {"r", {2, 4, 8, 8}}, {"c", {2, 4, 8, 8}}, {"s", {2, 4, 8, 8}}};
  CHECK(fuse_conv_epilogues(g, shapes) == 2);
  REQUIRE(g.nodes.size() == 2);
  const node& fused = g.nodes[1];
  CHECK(fused.op_type == "TroupeFusedConv");
  CHECK(fused.inputs == std::vector<std::string>{"r", "w", "", "r"});
  CHECK(fused.attr_string("activation") == "Relu");
  CHECK(fused.outputs[0] == "y");

  graph h = build();
  shapes["r"] = {1, 4, 8, 8}; // a broadcast summand: the post-op sum cannot express it
  CHECK(fuse_conv_epilogues(h, shapes) == 0);
  CHECK(h.nodes.size() == 4);
}

TEST_CASE("fuse_conv_epilogues turns Conv followed by Clip into a clipped fused conv") {
  graph g;
  g.inputs = {{"x", dtype::f32, {1, 2, 4, 4}}};
  g.initializers["w"] = tensor::zeros(dtype::f32, {2, 2, 1, 1});
  g.initializers["lo"] = tensor::scalar(0.f);
  g.initializers["hi"] = tensor::scalar(6.f);
  g.nodes = {make("Conv", {"x", "w"}, {"c"}), make("Clip", {"c", "lo", "hi"}, {"y"})};
  g.outputs = {{"y", dtype::f32, {1, 2, 4, 4}}};
  CHECK(fuse_conv_epilogues(g, {}) == 1);
  REQUIRE(g.nodes.size() == 1);
  CHECK(g.nodes[0].attr_string("activation") == "Clip");
  CHECK(g.nodes[0].attr_float("max", 0) == 6.f);
}

TEST_CASE("fuse_layer_norm turns the exported decomposition into LayerNormalization") {
  graph g;
  g.source = "ln.onnx";
  g.opset = 13;
  g.inputs = {{"x", dtype::f32, {-1, 5, 8}}};
  g.initializers["two"] = tensor::scalar(2.f);
  g.initializers["eps"] = tensor::scalar(1e-5f);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  tensor gamma = tensor::empty(dtype::f32, {8}), beta = tensor::empty(dtype::f32, {8});
  for (int i = 0; i < 8; ++i) {
    gamma.data<float>()[i] = dist(rng);
    beta.data<float>()[i] = dist(rng);
  }
  g.initializers["gamma"] = gamma;
  g.initializers["beta"] = beta;
  g.nodes = {make("ReduceMean", {"x"}, {"mean"}), make("Sub", {"x", "mean"}, {"d"}),
             make("Pow", {"d", "two"}, {"sq"}), make("ReduceMean", {"sq"}, {"var"}),
             make("Add", {"var", "eps"}, {"ve"}), make("Sqrt", {"ve"}, {"sd"}),
             make("Div", {"d", "sd"}, {"n"}), make("Mul", {"n", "gamma"}, {"m"}),
             make("Add", {"m", "beta"}, {"y"})};
  g.nodes[0].attrs["axes"] = std::vector<int64_t>{-1};
  g.nodes[3].attrs["axes"] = std::vector<int64_t>{-1};
  g.outputs = {{"y", dtype::f32, {-1, 5, 8}}};

  graph fused = g;
  CHECK(fuse_layer_norm(fused) == 1);
  REQUIRE(fused.nodes.size() == 1);
  CHECK(fused.nodes[0].op_type == "LayerNormalization");
  CHECK(fused.nodes[0].inputs == std::vector<std::string>{"x", "gamma", "beta"});

  tensor x = tensor::empty(dtype::f32, {3, 5, 8});
  for (auto& v : x.values<float>())
    v = 3.f * dist(rng) + 1.f;
  session_options plain;
  plain.optimize = false;
  auto reference = session::from_graph(g, plain);
  auto optimized = session::from_graph(g);
  REQUIRE(reference);
  REQUIRE(optimized);
  std::vector<tensor> in{x};
  auto a = (*reference)->run(in);
  auto b = (*optimized)->run(in);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(relative_error((*b)[0], (*a)[0]) < 1e-5);
  bool has_ln = false;
  for (const auto& n : (*optimized)->model().nodes)
    has_ln = has_ln || n.op_type == "LayerNormalization";
  CHECK(has_ln);
}
