// cuda_tensor_parallel_test: tensor-parallel rank graphs on the GPU backend: their collectives
// lowered as plan steps and the group tickets checked (host side), and two ranks on two GPUs
// against the unsplit model on the CPU (suite "gpu").
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/gpu_collectives.hpp"
#include "runtime/cuda/gpu_group.hpp"
#include "runtime/gpu_session.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/parallel/tensor_parallel.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"
#include "tests/cuda_backend/backend_test_util.hpp"

namespace troupe {
namespace {

using namespace backend_test;
using sk = gpu::step_kind;

const gpu_precision every_precision[] = {gpu_precision::fp32, gpu_precision::tf32,
                                         gpu_precision::fp16, gpu_precision::bf16};

/// The reference models that split_tensor_parallel splits with collectives.
const char* const split_models[] = {"seed_cnn", "bert_encoder"};

/// Reference model `name` with its dynamic dims set to `batch`; nullopt (said once) when the
/// exported model is missing.
std::optional<graph> load_model(const std::string& name, int64_t batch) {
  const auto path = std::filesystem::path(models_dir()) / (name + ".onnx");
  if (!std::filesystem::exists(path)) {
    MESSAGE("skipping " << name << ": " << path.string() << " is missing");
    return std::nullopt;
  }
  auto g = load_onnx(path.string());
  REQUIRE_MESSAGE(g.has_value(), (g ? "" : g.error().to_string()));
  for (auto& in : g->inputs)
    for (auto& d : in.dims)
      d = d < 0 ? batch : d;
  return std::move(*g);
}

tensor_parallel_split split_in_two(const graph& g) {
  auto split = split_tensor_parallel(g, 2);
  REQUIRE_MESSAGE(split.has_value(), (split ? "" : split.error().to_string()));
  REQUIRE(split->ranks.size() == 2);
  return std::move(*split);
}

size_t count_nodes(const graph& g, const std::string& op) {
  return static_cast<size_t>(std::count_if(g.nodes.begin(), g.nodes.end(), [&](const node& n) {
    return n.op_type == op && n.domain == "troupe";
  }));
}

size_t count_steps(const gpu::lowered_graph& l, sk kind) {
  return static_cast<size_t>(std::count_if(l.steps.begin(), l.steps.end(),
                                           [&](const gpu::gpu_step& s) { return s.kind == kind; }));
}

/// x (float32 `dims`) through one collective node `op` of domain "troupe" into y.
graph collective_graph(const std::string& op, shape dims, std::map<std::string, attribute> attrs) {
  graph g;
  g.source = "test";
  g.opset = 17;
  g.inputs.push_back({"x", dtype::f32, std::move(dims)});
  g.outputs.push_back({"y", dtype::f32, {}});
  node n;
  n.name = op + "_y";
  n.op_type = op;
  n.domain = "troupe";
  n.inputs = {"x"};
  n.outputs = {"y"};
  n.attrs = std::move(attrs);
  g.nodes.push_back(std::move(n));
  return g;
}

/// An NCCL id's worth of random bytes (the checks look only at the length).
std::vector<std::byte> random_id_bytes(size_t count) {
  std::vector<std::byte> id(count);
  for (auto& b : id)
    b = static_cast<std::byte>(rng()() & 0xff);
  return id;
}

// ---- host-side -----------------------------------------------------------------------------

TEST_CASE("the rank graphs of seed_cnn and bert_encoder split in two lower one collective step "
          "per collective node, in the compute dtype, never captured, at every precision") {
  for (const std::string name : split_models) {
    CAPTURE(name);
    auto g = load_model(name, 2);
    if (!g)
      continue;
    const auto split = split_in_two(*g);
    {
      graph whole = *g;
      auto l = lower(whole);
      REQUIRE(l.lowered.has_value());
      CHECK(gpu::capturable(*l.lowered)); // the unsplit model has no collective to keep it eager
    }
    for (size_t r = 0; r < split.ranks.size(); ++r) {
      CAPTURE(r);
      const size_t reduces = count_nodes(split.ranks[r], "AllReduceSum");
      const size_t gathers = count_nodes(split.ranks[r], "AllGather");
      CAPTURE(reduces);
      CAPTURE(gathers);
      CHECK(reduces + gathers > 0); // the split exchanges, so the counts below mean something
      for (auto precision : every_precision) {
        CAPTURE(to_string(precision));
        graph rank = split.ranks[r];
        auto l = lower(rank, precision, 2);
        REQUIRE_MESSAGE(l.lowered.has_value(), (l.lowered ? "" : l.lowered.error().to_string()));
        CHECK(count_steps(*l.lowered, sk::all_reduce) == reduces);
        CHECK(count_steps(*l.lowered, sk::all_gather) == gathers);
        CHECK_FALSE(gpu::capturable(*l.lowered)); // ranks run their plans eagerly
        for (const auto& s : l.lowered->steps)
          if (gpu::is_collective(s)) {
            CAPTURE(s.label);
            CHECK(l.lowered->values[static_cast<size_t>(s.outputs[0])].type == l.lowered->compute);
            CHECK(l.lowered->values[static_cast<size_t>(s.inputs[0])].type == l.lowered->compute);
          }
      }
    }
  }
}

TEST_CASE("a rank graph lowered without a group is an invalid_argument error naming its first "
          "collective node") {
  auto g = load_model("seed_cnn", 2);
  if (!g)
    return;
  graph rank = split_in_two(*g).ranks[0];
  auto l = lower(rank, gpu_precision::fp32, 1);
  REQUIRE_FALSE(l.lowered.has_value());
  CHECK(l.lowered.error().code() == errc::invalid_argument);
  // `rank` is the optimized graph the lowering walked; its first collective is the one named.
  auto first = std::find_if(rank.nodes.begin(), rank.nodes.end(), [](const node& n) {
    return n.domain == "troupe" && (n.op_type == "AllReduceSum" || n.op_type == "AllGather");
  });
  REQUIRE(first != rank.nodes.end());
  const std::string message = l.lowered.error().message();
  CHECK_MESSAGE(message.find(first->label()) != std::string::npos, message);
  CHECK_MESSAGE(message.find("needs a group") != std::string::npos, message);
}

TEST_CASE("AllReduceSum and AllGather of hand-built graphs lower to one collective step each") {
  SUBCASE("AllReduceSum keeps the dims") {
    graph g = collective_graph("AllReduceSum", {3, 5}, {});
    auto l = lower(g, gpu_precision::fp16, 2);
    REQUIRE_MESSAGE(l.lowered.has_value(), (l.lowered ? "" : l.lowered.error().to_string()));
    CHECK(count_steps(*l.lowered, sk::all_reduce) == 1);
    CHECK(count_steps(*l.lowered, sk::all_gather) == 0);
  }
  SUBCASE("AllGather on axis -1 gathers the last axis, size times") {
    graph g = collective_graph("AllGather", {2, 3}, {{"axis", int64_t{-1}}, {"ranks", int64_t{4}}});
    auto l = lower(g, gpu_precision::fp32, 4);
    REQUIRE_MESSAGE(l.lowered.has_value(), (l.lowered ? "" : l.lowered.error().to_string()));
    REQUIRE(count_steps(*l.lowered, sk::all_gather) == 1);
    const auto& s = *std::find_if(l.lowered->steps.begin(), l.lowered->steps.end(),
                                  [](const gpu::gpu_step& x) { return gpu::is_collective(x); });
    CHECK(s.axis == 1);
    CHECK(l.lowered->values[static_cast<size_t>(s.outputs[0])].dims == shape{2, 12});
  }
}

TEST_CASE("an AllGather split for 2 ranks in a group of 3 is an invalid_argument error naming "
          "the node") {
  graph g = collective_graph("AllGather", {2, 3}, {{"axis", int64_t{1}}, {"ranks", int64_t{2}}});
  auto l = lower(g, gpu_precision::fp32, 3);
  REQUIRE_FALSE(l.lowered.has_value());
  CHECK(l.lowered.error().code() == errc::invalid_argument);
  const std::string message = l.lowered.error().message();
  CHECK_MESSAGE(message.find("AllGather_y") != std::string::npos, message);
  CHECK_MESSAGE(message.find("split for 2 ranks, the group has 3") != std::string::npos, message);
}

TEST_CASE("a GPU group ticket with a bad NCCL id, rank or size is refused as invalid_argument") {
  CHECK(gpu::check_group_ticket({}).is_ok()); // no group
  CHECK(gpu::check_group_ticket({random_id_bytes(NCCL_UNIQUE_ID_BYTES), 1, 2}).is_ok());
  const gpu_group_ticket bad[] = {
      {random_id_bytes(NCCL_UNIQUE_ID_BYTES - 1), 0, 2}, // short id
      {random_id_bytes(NCCL_UNIQUE_ID_BYTES + 1), 0, 2}, // long id
      {{}, 0, 2},                                        // no id
      {random_id_bytes(NCCL_UNIQUE_ID_BYTES), 2, 2},     // rank past the end
      {random_id_bytes(NCCL_UNIQUE_ID_BYTES), -1, 2},    // negative rank
      {{}, 1, 1},                                        // rank 1 of 1
      {{}, 0, 0},                                        // empty group
  };
  for (size_t i = 0; i < std::size(bad); ++i) {
    CAPTURE(i);
    const auto st = gpu::check_group_ticket(bad[i]);
    CHECK(st.code() == errc::invalid_argument);
    CHECK(st.message().find("GPU group") != std::string::npos);
  }
}

// ---- GPU -----------------------------------------------------------------------------------

/// How many GPUs there are; 0 with the reason said when the count fails.
int gpu_count() {
  auto count = cuda::device_count();
  if (!count) {
    MESSAGE(count.error().to_string());
    return 0;
  }
  return *count;
}

/// Outputs of rank graph r on GPU r for each input set, the ranks one thread each in one fresh
/// NCCL group; a rank's failure stays in its slot (doctest assertions are not thread-safe).
std::vector<expected<std::vector<std::vector<tensor>>>>
run_gpu_ranks(const std::vector<graph>& ranks, gpu_precision precision,
              const std::vector<std::vector<tensor>>& input_sets) {
  auto id = make_nccl_unique_id();
  REQUIRE_MESSAGE(id.has_value(), (id ? "" : id.error().to_string()));
  const int size = static_cast<int>(ranks.size());
  std::vector<expected<std::vector<std::vector<tensor>>>> results(
      ranks.size(), make_error(errc::internal, "not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      gpu_session_options options;
      options.device = r;
      options.precision = precision;
      options.poison = true;
      options.capture_after = 1; // a plan with collectives must stay eager all the same
      options.group = {*id, r, size};
      auto& result = results[static_cast<size_t>(r)];
      auto s = gpu_session::from_graph(ranks[static_cast<size_t>(r)], options);
      if (!s) {
        result = s.error();
        return;
      }
      std::vector<std::vector<tensor>> outputs;
      for (const auto& inputs : input_sets) {
        auto out = (*s)->run(inputs);
        if (!out) {
          result = out.error();
          return;
        }
        outputs.push_back(std::move(*out));
      }
      result = std::move(outputs);
    });
  for (auto& t : threads)
    t.join();
  return results;
}

TEST_CASE("two ranks of seed_cnn and bert_encoder split in two on two GPUs each give the "
          "unsplit model's CPU outputs" *
          doctest::test_suite("gpu")) {
  if (const int gpus = gpu_count(); gpus < 2) {
    MESSAGE("skipped: two tensor-parallel ranks need two GPUs (NCCL puts one rank on each), "
            "this machine has "
            << gpus);
    return;
  }
  for (const std::string name : split_models) {
    CAPTURE(name);
    auto g = load_model(name, 3);
    if (!g)
      continue;
    const auto split = split_in_two(*g);
    auto cpu = session::from_graph(*g);
    REQUIRE_MESSAGE(cpu.has_value(), (cpu ? "" : cpu.error().to_string()));
    for (auto precision : every_precision) {
      CAPTURE(to_string(precision));
      // A sum split over ranks adds in another order: fp32 needs more room than 1e-5.
      const double tolerance = std::max(1e-4, precision_tolerance(precision));
      std::vector<std::vector<tensor>> input_sets(3);
      for (auto& inputs : input_sets)
        for (const auto& in : g->inputs)
          inputs.push_back(random_tensor(in.type, in.dims, rng()));
      const auto got = run_gpu_ranks(split.ranks, precision, input_sets);
      for (size_t r = 0; r < got.size(); ++r) {
        CAPTURE(r);
        REQUIRE_MESSAGE(got[r].has_value(), (got[r] ? "" : got[r].error().to_string()));
        for (size_t run = 0; run < input_sets.size(); ++run) {
          CAPTURE(run);
          auto want = (*cpu)->run(input_sets[run]);
          REQUIRE_MESSAGE(want.has_value(), (want ? "" : want.error().to_string()));
          const auto& outputs = (*got[r])[run];
          REQUIRE(outputs.size() == want->size());
          for (size_t i = 0; i < outputs.size(); ++i) {
            CAPTURE(i);
            REQUIRE(outputs[i].dims() == (*want)[i].dims());
            REQUIRE(outputs[i].type() == (*want)[i].type());
            if ((*want)[i].type() != dtype::f32)
              CHECK(bitwise_equal(outputs[i], (*want)[i]));
            else
              CHECK(relative_error(outputs[i], (*want)[i]) <= tolerance);
          }
        }
      }
    }
  }
}

TEST_CASE("a GPU session of a rank graph without a group fails at prepare, and one with a bad "
          "ticket at creation" *
          doctest::test_suite("gpu")) {
  auto g = load_model("seed_cnn", 2);
  if (!g)
    return;
  const graph rank = split_in_two(*g).ranks[0];
  auto s = gpu_session::from_graph(rank);
  REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().to_string()));
  std::vector<shape> dims;
  for (const auto& in : rank.inputs)
    dims.push_back(in.dims);
  const auto st = (*s)->prepare(dims);
  CHECK(st.code() == errc::invalid_argument);
  CHECK_MESSAGE(st.message().find("needs a group") != std::string::npos, st.message());

  gpu_session_options options;
  options.group = {random_id_bytes(3), 0, 2};
  auto bad = gpu_session::from_graph(rank, options);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == errc::invalid_argument);
}

} // namespace
} // namespace troupe
