// Tests for plan compilation (folding, views, memory reuse) with a small test registry.
#include <doctest/doctest.h>

#include "runtime/plan.hpp"

using namespace troupe;

namespace {

/// out = in * factor (float), counting runs so tests can see what was folded.
class scale_kernel final : public op_kernel {
public:
  scale_kernel(float factor, int* runs) : factor_(factor), runs_(runs) {}
  status run(exec_context&, std::span<const tensor> in, std::span<tensor> out) override {
    ++*runs_;
    for (int64_t i = 0; i < in[0].numel(); ++i)
      out[0].data<float>()[i] = in[0].data<float>()[i] * factor_;
    return status::ok();
  }

private:
  float factor_;
  int* runs_;
};

class add_kernel final : public op_kernel {
public:
  status run(exec_context&, std::span<const tensor> in, std::span<tensor> out) override {
    for (int64_t i = 0; i < in[0].numel(); ++i)
      out[0].data<float>()[i] = in[0].data<float>()[i] + in[1].data<float>()[i];
    return status::ok();
  }
};

int scale_runs = 0;

op_registry test_registry() {
  op_registry r;
  r.add({"Scale", [](const node& n, std::span<const value_desc> in, build_context&) -> expected<built_op> {
           built_op b;
           b.outputs.push_back({in[0].type, in[0].dims, {}, nullptr});
           b.kernel = std::make_unique<scale_kernel>(n.attr_float("factor", 2.f), &scale_runs);
           return b;
         }});
  r.add({"Plus", [](const node& n, std::span<const value_desc> in, build_context&) -> expected<built_op> {
           if (in[0].dims != in[1].dims)
             return bad_input(n, "shapes differ");
           built_op b;
           b.outputs.push_back({in[0].type, in[0].dims, {}, nullptr});
           b.kernel = std::make_unique<add_kernel>();
           return b;
         }});
  r.add({"Flat", [](const node&, std::span<const value_desc> in, build_context&) -> expected<built_op> {
           built_op b;
           b.outputs.push_back({in[0].type, {numel_of(in[0].dims)}, {}, nullptr});
           b.alias_input = 0;
           return b;
         }});
  return r;
}

node make(std::string op, std::vector<std::string> ins, std::string out, float factor = 2.f) {
  node n;
  n.op_type = std::move(op);
  n.name = out;
  n.inputs = std::move(ins);
  n.outputs = {std::move(out)};
  n.attrs["factor"] = factor;
  return n;
}

graph chain_graph(int length) {
  graph g;
  g.source = "chain.onnx";
  g.opset = 13;
  g.inputs = {{"x", dtype::f32, {-1, 3}}};
  std::string prev = "x";
  for (int i = 0; i < length; ++i) {
    std::string out = "v" + std::to_string(i);
    g.nodes.push_back(make("Scale", {prev}, out));
    prev = out;
  }
  g.nodes.push_back(make("Flat", {prev}, "y"));
  g.outputs = {{"y", dtype::f32, {-1}}};
  return g;
}

tensor iota(shape dims) {
  tensor t = tensor::empty(dtype::f32, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(i);
  return t;
}

} // namespace

TEST_CASE("plan runs a chain, reuses arena memory and returns outputs that outlive the next run") {
  const auto registry = test_registry();
  cpu::cpu_context cpu{{1, {}}};
  graph g = chain_graph(6);
  std::vector<shape> dims{{4, 3}};
  auto p = plan::compile(g, dims, cpu, {}, registry);
  REQUIRE(p);
  CHECK((*p)->step_count() == 6);
  // Six 48-byte intermediates, only two alive at a time (the last one is the output).
  CHECK((*p)->arena_bytes() <= 2 * 64);
  CHECK((*p)->outputs()[0].dims == shape{12});

  std::vector<tensor> in{iota({4, 3})};
  auto first = (*p)->run(in);
  REQUIRE(first);
  std::vector<tensor> in2{tensor::zeros(dtype::f32, {4, 3})};
  auto second = (*p)->run(in2);
  REQUIRE(second);
  for (int64_t i = 0; i < 12; ++i) {
    CHECK((*first)[0].data<float>()[i] == doctest::Approx(64.0 * static_cast<double>(i)));
    CHECK((*second)[0].data<float>()[i] == 0.f);
  }
}

TEST_CASE("plan folds nodes whose inputs are all constant and skips dead nodes") {
  const auto registry = test_registry();
  cpu::cpu_context cpu{{1, {}}};
  graph g;
  g.source = "fold.onnx";
  g.inputs = {{"x", dtype::f32, {2}}};
  g.initializers["c"] = tensor::from_vector<float>({2}, std::vector<float>{1.f, 2.f});
  g.nodes.push_back(make("Scale", {"c"}, "c3", 3.f));     // folded
  g.nodes.push_back(make("Plus", {"x", "c3"}, "y"));
  g.nodes.push_back(make("Scale", {"x"}, "unused", 5.f)); // dead
  g.outputs = {{"y", dtype::f32, {2}}};
  scale_runs = 0;
  std::vector<shape> dims{{2}};
  auto p = plan::compile(g, dims, cpu, {}, registry);
  REQUIRE(p);
  CHECK((*p)->folded_node_count() == 1);
  CHECK((*p)->step_count() == 1);
  CHECK(scale_runs == 1); // run once, at compile time
  std::vector<tensor> in{tensor::from_vector<float>({2}, std::vector<float>{10.f, 20.f})};
  auto out = (*p)->run(in);
  REQUIRE(out);
  CHECK((*out)[0].data<float>()[0] == 13.f);
  CHECK((*out)[0].data<float>()[1] == 26.f);
  CHECK(scale_runs == 1);
}

TEST_CASE("plan reports an unsupported operator with file, node and operator") {
  const auto registry = test_registry();
  cpu::cpu_context cpu{{1, {}}};
  graph g = chain_graph(1);
  g.nodes[0].op_type = "Frobnicate";
  std::vector<shape> dims{{1, 3}};
  auto p = plan::compile(g, dims, cpu, {}, registry);
  REQUIRE(!p);
  CHECK(p.error().code() == errc::unsupported);
  const auto& msg = p.error().message();
  CHECK(msg.find("chain.onnx") != std::string::npos);
  CHECK(msg.find("'v0'") != std::string::npos);
  CHECK(msg.find("Frobnicate") != std::string::npos);
}

TEST_CASE("plan rejects inputs whose shape differs from the compiled one") {
  const auto registry = test_registry();
  cpu::cpu_context cpu{{1, {}}};
  graph g = chain_graph(2);
  std::vector<shape> dims{{2, 3}};
  auto p = plan::compile(g, dims, cpu, {}, registry);
  REQUIRE(p);
  std::vector<tensor> in{iota({3, 3})};
  auto out = (*p)->run(in);
  REQUIRE(!out);
  CHECK(out.error().code() == errc::invalid_argument);
}

TEST_CASE("a graph whose output is a view of its input returns a copy, not the caller's buffer") {
  const auto registry = test_registry();
  cpu::cpu_context cpu{{1, {}}};
  graph g = chain_graph(0);
  std::vector<shape> dims{{2, 3}};
  auto p = plan::compile(g, dims, cpu, {}, registry);
  REQUIRE(p);
  std::vector<tensor> in{iota({2, 3})};
  auto out = (*p)->run(in);
  REQUIRE(out);
  CHECK((*out)[0].dims() == shape{6});
  CHECK((*out)[0].raw() != in[0].raw());
  CHECK((*out)[0].data<float>()[5] == 5.f);
}
