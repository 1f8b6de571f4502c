// tensor_parallel_test: rank graphs of a tensor-parallel split, run on a host group, equal the
// unsharded model; what is split, and how, on small hand-built graphs.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "kernels/cpu/host_communicator.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/parallel/tensor_parallel.hpp"
#include "runtime/planner/cost_model.hpp"
#include "runtime/planner/stage_cutter.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"
#include "runtime/split_graph.hpp"

using namespace troupe;

namespace {

std::string model_path(const std::string& name) {
  return (std::filesystem::path(TROUPE_TEST_MODELS_DIR) / (name + ".onnx")).string();
}

/// Runs rank graph r on thread r (one OpenMP thread each) over one host group; returns every
/// rank's outputs.
std::vector<std::vector<tensor>> run_ranks(const std::vector<graph>& ranks,
                                           const std::vector<tensor>& inputs) {
  auto group = make_host_group(static_cast<int>(ranks.size()));
  std::vector<expected<std::vector<tensor>>> results(ranks.size(), status{errc::internal, "not run"});
  std::vector<std::thread> threads;
  for (size_t r = 0; r < ranks.size(); ++r)
    threads.emplace_back([&, r] {
      session_options options;
      options.limits = cpu::cpu_limits{1, {}};
      options.comm = group[r].get();
      auto s = session::from_graph(ranks[r], options);
      results[r] = s ? (*s)->run(inputs) : expected<std::vector<tensor>>(s.error());
    });
  for (auto& t : threads)
    t.join();
  std::vector<std::vector<tensor>> out;
  for (auto& r : results) {
    REQUIRE_MESSAGE(r, r.error().to_string());
    out.push_back(std::move(*r));
  }
  return out;
}

std::vector<tensor> run_whole(const graph& g, const std::vector<tensor>& inputs) {
  session_options options;
  options.limits = cpu::cpu_limits{1, {}};
  auto s = session::from_graph(g, options);
  REQUIRE_MESSAGE(s, s.error().to_string());
  auto r = (*s)->run(inputs);
  REQUIRE_MESSAGE(r, r.error().to_string());
  return *r;
}

std::vector<tensor> random_inputs(const graph& g, int64_t batch, std::mt19937_64& rng) {
  std::vector<tensor> inputs;
  for (const auto& in : g.inputs) {
    shape d = in.dims;
    for (auto& x : d)
      if (x < 0)
        x = batch;
    inputs.push_back(random_tensor(in.type, d, rng));
  }
  return inputs;
}

size_t weight_bytes(const graph& g) {
  size_t total = 0;
  for (const auto& [_, t] : g.initializers)
    total += t.nbytes();
  return total;
}

size_t count_ops(const graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& x : g.nodes)
    n += x.op_type == op;
  return n;
}

void check_equal(const std::vector<std::vector<tensor>>& ranks, const std::vector<tensor>& ref) {
  for (size_t r = 0; r < ranks.size(); ++r) {
    CAPTURE(r);
    REQUIRE(ranks[r].size() == ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      REQUIRE(ranks[r][i].dims() == ref[i].dims());
      CHECK(relative_error(ranks[r][i], ref[i]) < 1e-5);
    }
  }
}

struct builder {
  graph g;
  std::mt19937 rng{std::random_device{}()};
  void weight(const std::string& name, shape dims) {
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    tensor t = tensor::empty(dtype::f32, dims);
    for (auto& v : t.values<float>())
      v = dist(rng);
    g.initializers[name] = t;
  }
  void ints(const std::string& name, std::vector<int64_t> v) {
    g.initializers[name] = tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v);
  }
  void add(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
           std::map<std::string, attribute> attrs = {}) {
    g.nodes.push_back(node{out[0] + "_node", op, "", std::move(in), std::move(out), std::move(attrs)});
  }
};

/// x[N,8] -> MatMul w1[8,12] + b1 -> Relu -> MatMul w2[12,5] + b2 -> y
graph mlp_pair() {
  builder b;
  b.g.source = "mlp";
  b.g.opset = 13;
  b.weight("w1", {8, 12});
  b.weight("b1", {12});
  b.weight("w2", {12, 5});
  b.weight("b2", {5});
  b.add("MatMul", {"x", "w1"}, {"h0"});
  b.add("Add", {"h0", "b1"}, {"h1"});
  b.add("Relu", {"h1"}, {"h2"});
  b.add("MatMul", {"h2", "w2"}, {"y0"});
  b.add("Add", {"y0", "b2"}, {"y"});
  b.g.inputs.push_back({"x", dtype::f32, {-1, 8}});
  b.g.outputs.push_back({"y", dtype::f32, {-1, 5}});
  return b.g;
}

/// Self-attention over x[N,S=3,D=8] with 2 heads of 4, as the BERT exporter writes it.
graph attention_block() {
  builder b;
  b.g.source = "attention";
  b.g.opset = 13;
  for (const std::string p : {"q", "k", "v", "o"}) {
    b.weight("w" + p, {8, 8});
    b.weight("b" + p, {8});
  }
  b.ints("heads_shape", {-1, 3, 2, 4});
  b.ints("merged_shape", {-1, 3, 8});
  for (const std::string p : {"q", "k", "v"}) {
    b.add("MatMul", {"x", "w" + p}, {p + "0"});
    b.add("Add", {p + "0", "b" + p}, {p + "1"});
    b.add("Reshape", {p + "1", "heads_shape"}, {p + "2"});
  }
  b.add("Transpose", {"q2"}, {"q3"}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  b.add("Transpose", {"k2"}, {"k3"}, {{"perm", std::vector<int64_t>{0, 2, 3, 1}}});
  b.add("Transpose", {"v2"}, {"v3"}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  b.add("MatMul", {"q3", "k3"}, {"scores"});
  b.add("Softmax", {"scores"}, {"probs"}, {{"axis", int64_t{-1}}});
  b.add("MatMul", {"probs", "v3"}, {"ctx0"});
  b.add("Transpose", {"ctx0"}, {"ctx1"}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  b.add("Reshape", {"ctx1", "merged_shape"}, {"ctx2"});
  b.add("MatMul", {"ctx2", "wo"}, {"o0"});
  b.add("Add", {"o0", "bo"}, {"y"});
  b.g.inputs.push_back({"x", dtype::f32, {-1, 3, 8}});
  b.g.outputs.push_back({"y", dtype::f32, {-1, 3, 8}});
  return b.g;
}

/// x[N,3,6,6] -> Conv 3->4 (+bias) -> Relu -> Conv 4->6 (+bias) -> y;  the Relu is an output too.
graph conv_pair() {
  builder b;
  b.g.source = "convs";
  b.g.opset = 13;
  b.weight("c1", {4, 3, 3, 3});
  b.weight("c1b", {4});
  b.weight("c2", {6, 4, 1, 1});
  b.weight("c2b", {6});
  b.add("Conv", {"x", "c1", "c1b"}, {"a"}, {{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
  b.add("Relu", {"a"}, {"r"});
  b.add("Conv", {"r", "c2", "c2b"}, {"y"});
  b.g.inputs.push_back({"x", dtype::f32, {-1, 3, 6, 6}});
  b.g.outputs.push_back({"y", dtype::f32, {-1, 6, 6, 6}});
  b.g.outputs.push_back({"r", dtype::f32, {-1, 4, 6, 6}});
  return b.g;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

} // namespace

TEST_CASE("tensor parallel: an MLP pair splits w1 by columns, w2 by rows, one AllReduceSum") {
  std::mt19937_64 rng(std::random_device{}());
  const graph g = mlp_pair();
  const auto inputs = random_inputs(g, 3, rng);
  const auto ref = run_whole(g, inputs);
  for (int t : {2, 4}) {
    CAPTURE(t);
    auto split = split_tensor_parallel(g, t);
    REQUIRE_MESSAGE(split, split.error().to_string());
    REQUIRE(split->ranks.size() == static_cast<size_t>(t));
    INFO(joined(split->decisions));
    for (const auto& rg : split->ranks) {
      CHECK(count_ops(rg, "AllReduceSum") == 1);
      CHECK(count_ops(rg, "AllGather") == 0);
      CHECK(rg.initializers.count("w1") == 0);
      CHECK(rg.initializers.count("w2") == 0);
      CHECK(rg.initializers.at("w1/tp_axis1").dims() == shape{8, 12 / t});
      CHECK(rg.initializers.at("b1/tp_axis0").dims() == shape{12 / t});
      CHECK(rg.initializers.at("w2/tp_axis0").dims() == shape{12 / t, 5});
      CHECK(rg.initializers.at("b2").dims() == shape{5}); // added once, after the sum
    }
    REQUIRE(split->decisions.size() == 1);
    CHECK(split->decisions[0].find("split h0_node (MatMul)") != std::string::npos);
    CHECK(split->decisions[0].find("closed by y0_node (MatMul)") != std::string::npos);
    check_equal(run_ranks(split->ranks, inputs), ref);
  }
  SUBCASE("12 columns over 8 ranks do not divide: replicated, said so") {
    auto split = split_tensor_parallel(g, 8);
    REQUIRE(split);
    CHECK(count_ops(split->ranks[0], "AllReduceSum") == 0);
    CHECK(split->ranks[0].initializers.at("w1").dims() == shape{8, 12});
    CHECK(joined(split->decisions).find("12 columns do not divide by 8") != std::string::npos);
  }
}

TEST_CASE("tensor parallel: attention splits heads, rewrites the head Reshapes, one AllReduceSum") {
  std::mt19937_64 rng(std::random_device{}());
  const graph g = attention_block();
  const auto inputs = random_inputs(g, 2, rng);
  const auto ref = run_whole(g, inputs);
  auto split = split_tensor_parallel(g, 2);
  REQUIRE_MESSAGE(split, split.error().to_string());
  INFO(joined(split->decisions));
  for (const auto& rg : split->ranks) {
    CHECK(count_ops(rg, "AllReduceSum") == 1);
    CHECK(count_ops(rg, "AllGather") == 0);
    CHECK(rg.initializers.at("wq/tp_axis1").dims() == shape{8, 4});
    CHECK(rg.initializers.at("wo/tp_axis0").dims() == shape{4, 8});
    CHECK(rg.initializers.at("bo").dims() == shape{8});
    const auto& heads = rg.initializers.at("heads_shape/tp_q2_node");
    CHECK(std::vector<int64_t>(heads.values<int64_t>().begin(), heads.values<int64_t>().end()) ==
          std::vector<int64_t>{-1, 3, 1, 4});
    const auto& merged = rg.initializers.at("merged_shape/tp_ctx2_node");
    CHECK(merged.data<int64_t>()[2] == 4);
  }
  REQUIRE(split->decisions.size() == 1);
  CHECK(split->decisions[0].find("q0_node (MatMul), k0_node (MatMul), v0_node (MatMul)") !=
        std::string::npos);
  check_equal(run_ranks(split->ranks, inputs), ref);

  SUBCASE("2 heads over 4 ranks: replicated with the reason") {
    auto four = split_tensor_parallel(g, 4);
    REQUIRE(four);
    CHECK(count_ops(four->ranks[0], "AllReduceSum") == 0);
    CHECK(four->ranks[0].initializers.at("wq").dims() == shape{8, 8});
    CHECK(joined(four->decisions).find("2 heads/groups do not divide by 4") != std::string::npos);
    check_equal(run_ranks(four->ranks, inputs), ref);
  }
}

TEST_CASE("tensor parallel: convs split by output then input channels; a sliced output is gathered") {
  std::mt19937_64 rng(std::random_device{}());
  const graph g = conv_pair();
  const auto inputs = random_inputs(g, 2, rng);
  const auto ref = run_whole(g, inputs);
  auto split = split_tensor_parallel(g, 2);
  REQUIRE_MESSAGE(split, split.error().to_string());
  INFO(joined(split->decisions));
  for (const auto& rg : split->ranks) {
    CHECK(rg.initializers.at("c1/tp_axis0").dims() == shape{2, 3, 3, 3});
    CHECK(rg.initializers.at("c1b/tp_axis0").dims() == shape{2});
    CHECK(rg.initializers.at("c2/tp_axis1").dims() == shape{6, 2, 1, 1});
    CHECK(rg.initializers.at("c2b/tp_bias").dims() == shape{1, 6, 1, 1});
    CHECK(count_ops(rg, "AllReduceSum") == 1);
    CHECK(count_ops(rg, "AllGather") == 1); // the graph output r
  }
  CHECK(joined(split->decisions).find("AllGather graph output 'r' (axis 1)") != std::string::npos);
  check_equal(run_ranks(split->ranks, inputs), ref);
}

TEST_CASE("tensor parallel: ways < 1 is invalid_argument, 1 returns the graph unchanged") {
  const graph g = mlp_pair();
  for (int t : {0, -2}) {
    auto split = split_tensor_parallel(g, t);
    REQUIRE_FALSE(split);
    CHECK(split.error().code() == errc::invalid_argument);
  }
  auto one = split_tensor_parallel(g, 1);
  REQUIRE(one);
  REQUIRE(one->ranks.size() == 1);
  CHECK(one->ranks[0].nodes.size() == g.nodes.size());
  CHECK(weight_bytes(one->ranks[0]) == weight_bytes(g));
}

TEST_CASE("tensor parallel: a rank graph run without a communicator fails with a clear error") {
  auto split = split_tensor_parallel(mlp_pair(), 2);
  REQUIRE(split);
  auto s = session::from_graph(split->ranks[0]);
  REQUIRE(s);
  std::mt19937_64 rng(std::random_device{}());
  auto r = (*s)->run(random_inputs(split->ranks[0], 1, rng));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::invalid_argument);
  CHECK(r.error().message().find("needs a communicator") != std::string::npos);
}

TEST_CASE("tensor parallel: every reference model at T = 1, 2, 4 equals the unsharded run") {
  std::mt19937_64 rng(std::random_device{}());
  // AllReduceSums per rank at T = 2 and 4: one per closed pair (2 per BERT layer, one per
  // residual block pair in the CNNs); seed_cnn's 10 channels/columns do not divide by 4.
  const std::map<std::string, std::pair<size_t, size_t>> reductions = {
      {"seed_cnn", {2, 1}}, {"resnet18", {12, 12}}, {"mobilenet_v2", {18, 18}},
      {"bert_encoder", {8, 8}}};
  for (const std::string name : {"seed_cnn", "resnet18", "mobilenet_v2", "bert_encoder"}) {
    CAPTURE(name);
    REQUIRE_MESSAGE(std::filesystem::exists(model_path(name)),
                    "export the models first: tools/export-test-models.sh");
    auto g = load_onnx(model_path(name));
    REQUIRE(g);
    const auto inputs = random_inputs(*g, name == "seed_cnn" ? 3 : 1, rng);
    const auto ref = run_whole(*g, inputs);
    for (int t : {1, 2, 4}) {
      CAPTURE(t);
      auto split = split_tensor_parallel(*g, t);
      REQUIRE_MESSAGE(split, split.error().to_string());
      INFO(joined(split->decisions));
      if (t > 1) { // each rank holds less than the whole model
        const auto& [at2, at4] = reductions.at(name);
        CHECK(count_ops(split->ranks[0], "AllReduceSum") == (t == 2 ? at2 : at4));
        CHECK(count_ops(split->ranks[0], "AllGather") == 0);
        // About 1/T of the weights (seed_cnn at 4 keeps conv1 and fc2 whole: at most half).
        const size_t whole = weight_bytes(*g);
        const size_t bound = name == "seed_cnn" && t == 4 ? whole / 2 : whole / static_cast<size_t>(t) * 11 / 10;
        CHECK(weight_bytes(split->ranks[0]) < bound);
      }
      check_equal(run_ranks(split->ranks, inputs), ref);
    }
  }
}

TEST_CASE("tensor parallel: 2 pipeline stages x 2 ranks each equal the unsharded run") {
  std::mt19937_64 rng(std::random_device{}());
  for (const std::string name : {"seed_cnn", "bert_encoder"}) {
    CAPTURE(name);
    auto g = load_onnx(model_path(name));
    REQUIRE(g);
    auto m = planner::analyze_model(*g);
    REQUIRE_MESSAGE(m, m.error().to_string());
    std::vector<double> seconds;
    for (const auto& op : m->cost.ops)
      seconds.push_back(planner::op_seconds(op, planner::device_spec{8e9, 50, 10, 2e-6}, 1));
    auto cut = planner::cut_stages(seconds, planner::cut_candidates(m->cost, 1), 2, 0);
    REQUIRE_MESSAGE(cut, cut.error().to_string());
    auto stages = split_graph_stages(m->optimized, cut->boundaries);
    REQUIRE_MESSAGE(stages, stages.error().to_string());
    REQUIRE(stages->size() == 2);

    const auto inputs = random_inputs(*g, 2, rng);
    const auto ref = run_whole(*g, inputs);
    std::map<std::string, tensor> live;
    for (size_t i = 0; i < g->inputs.size(); ++i)
      live[g->inputs[i].name] = inputs[i];
    std::vector<tensor> out;
    size_t collectives = 0;
    for (const auto& stage : *stages) {
      auto split = split_tensor_parallel(stage, 2);
      REQUIRE_MESSAGE(split, split.error().to_string());
      collectives += count_ops(split->ranks[0], "AllReduceSum");
      std::vector<tensor> in;
      for (const auto& info : stage.inputs)
        in.push_back(live.at(info.name));
      auto ranks = run_ranks(split->ranks, in);
      for (size_t r = 1; r < ranks.size(); ++r)
        for (size_t i = 0; i < ranks[r].size(); ++i)
          CHECK(bitwise_equal(ranks[r][i], ranks[0][i]));
      for (size_t i = 0; i < stage.outputs.size(); ++i)
        live[stage.outputs[i].name] = ranks[0][i];
      out = ranks[0];
    }
    CHECK(collectives > 0);
    REQUIRE(out.size() == ref.size());
    for (size_t i = 0; i < out.size(); ++i)
      CHECK(relative_error(out[i], ref[i]) < 1e-5);
  }
}
