// split_graph_test: a two-stage cut computes the same outputs as the whole graph.
#include <doctest/doctest.h>

#include <random>

#include "runtime/session.hpp"
#include "runtime/split_graph.hpp"

using namespace troupe;

namespace {

/// x[N,4] -> Gemm -> h -> Gemm -> logits -> Softmax -> y[N,3]
graph small_mlp() {
  graph g;
  g.source = "mlp";
  g.opset = 13;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  auto init = [&](const std::string& name, shape dims) {
    tensor t = tensor::empty(dtype::f32, dims);
    for (auto& v : t.values<float>())
      v = dist(rng);
    g.initializers[name] = t;
  };
  init("w1", {4, 6});
  init("b1", {6});
  init("w2", {6, 3});
  init("b2", {3});
  g.nodes.push_back(node{"g1", "Gemm", "", {"x", "w1", "b1"}, {"h"}, {}});
  g.nodes.push_back(node{"g2", "Gemm", "", {"h", "w2", "b2"}, {"logits"}, {}});
  g.nodes.push_back(node{"sm", "Softmax", "", {"logits"}, {"y"}, {}});
  g.inputs.push_back(value_info{"x", dtype::f32, {-1, 4}});
  g.outputs.push_back(value_info{"y", dtype::f32, {-1, 3}});
  return g;
}

} // namespace

TEST_CASE("split_graph_at cuts an MLP in two whose chain equals the whole model") {
  auto g = small_mlp();
  std::vector<std::string> cut{"h"};
  auto split = split_graph_at(g, cut);
  REQUIRE(split);
  CHECK(split->first.nodes.size() == 1);
  CHECK(split->second.nodes.size() == 2);
  REQUIRE(split->first.outputs.size() == 1);
  CHECK(split->first.outputs[0].name == "h");
  CHECK(split->first.outputs[0].type == dtype::f32);
  CHECK(split->first.outputs[0].dims == shape{-1, 6});
  CHECK(split->second.inputs.at(0).name == "h");
  CHECK(split->first.initializers.count("w1") == 1);
  CHECK(split->first.initializers.count("w2") == 0);
  CHECK(split->second.initializers.count("w2") == 1);

  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  tensor x = tensor::empty(dtype::f32, {5, 4});
  for (auto& v : x.values<float>())
    v = dist(rng);
  auto whole = session::from_graph(g);
  auto s0 = session::from_graph(split->first);
  auto s1 = session::from_graph(split->second);
  REQUIRE(whole);
  REQUIRE(s0);
  REQUIRE(s1);
  std::vector<tensor> in{x};
  auto ref = (*whole)->run(in);
  auto mid = (*s0)->run(in);
  REQUIRE(ref);
  REQUIRE(mid);
  auto out = (*s1)->run(*mid);
  REQUIRE(out);
  CHECK(relative_error(out->at(0), ref->at(0)) < 1e-6);
}

TEST_CASE("split_graph_at names a value that crosses the cut and a cut nobody computes") {
  auto g = small_mlp();
  std::vector<std::string> missing{"nope"};
  auto a = split_graph_at(g, missing);
  REQUIRE_FALSE(a);
  CHECK(a.error().message().find("'nope'") != std::string::npos);
  // Cutting at "logits" alone leaves nothing that reads h across it: fine. Cutting at "h"
  // while Softmax reads logits is fine too; but a graph where the second part reads the
  // input is refused.
  g.nodes.push_back(node{"g3", "Gemm", "", {"x", "w1", "b1"}, {"h2"}, {}});
  g.nodes.push_back(node{"g4", "Gemm", "", {"h2", "w2", "b2"}, {"z"}, {}});
  g.outputs.push_back(value_info{"z", dtype::f32, {-1, 3}});
  std::vector<std::string> cut{"h"};
  auto b = split_graph_at(g, cut);
  REQUIRE_FALSE(b);
  CHECK(b.error().message().find("'x'") != std::string::npos);
  std::vector<std::string> last{"y"};
  auto c = split_graph_at(small_mlp(), last);
  REQUIRE_FALSE(c);
}
