// planner_placement_test: whole-node replica layout, plan choice, memory errors, rendering.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "runtime/planner/device_speed.hpp"
#include "runtime/planner/placement.hpp"

using namespace troupe;
using namespace troupe::planner;

namespace {

constexpr double gib = 1024.0 * 1024 * 1024;

/// A chain of `n` weight operators: op i reads value v{i-1} (v-1 = the input "x") and
/// writes v{i}; each holds `param_gib` of weights and does `gflops_per_row`.
model_cost chain_model(int n, double param_gib, double gflops_per_row,
                       double activation_bytes_per_row = 4096) {
  model_cost c;
  c.source = "chain";
  value_cost x;
  x.name = "x";
  x.bytes = linear{0, activation_bytes_per_row};
  x.producer = -1;
  x.last_use = 0;
  c.values.push_back(x);
  for (int i = 0; i < n; ++i) {
    op_cost op;
    op.name = "mm" + std::to_string(i);
    op.op_type = "MatMul";
    op.flops = linear{0, gflops_per_row * 1e9};
    op.bytes_moved = linear{param_gib * gib, 2 * activation_bytes_per_row};
    op.param_bytes = param_gib * gib;
    op.activation_bytes = linear{0, activation_bytes_per_row};
    c.ops.push_back(op);
    c.param_bytes += op.param_bytes;
    value_cost v;
    v.name = "v" + std::to_string(i);
    v.bytes = linear{0, activation_bytes_per_row};
    v.producer = i;
    v.last_use = i + 1; // the next op, or ops.size() for the graph output
    c.values.push_back(v);
  }
  // Split tensor parallel, each pair (2k, 2k+1) is a Megatron pair: both halves on a 1/T
  // slice, one all-reduce of the pair's output.
  for (int t = 2; t <= 4; t *= 2) {
    tp_cost split;
    split.ways = t;
    split.split.assign(static_cast<size_t>(n), true);
    split.param_bytes.assign(static_cast<size_t>(n), param_gib * gib / t);
    for (int i = 1; i < n; i += 2)
      split.collectives.push_back({collective_kind::all_reduce, "v" + std::to_string(i),
                                   static_cast<size_t>(i), linear{0, activation_bytes_per_row}});
    c.tensor_parallel.push_back(split);
  }
  return c;
}

device_pool gpu_pool(int nodes, int per_node, double memory_gib) {
  device_pool p;
  p.nodes = nodes;
  p.devices_per_node = per_node;
  p.device.memory_bytes = memory_gib * gib;
  p.device.gflops = 300e3;
  p.device.mem_gbps = 2000;
  p.link_gbps = 50;
  return p;
}

} // namespace

TEST_CASE("5 nodes x 4 devices with 8 devices per replica hold 2 replicas on 2 nodes each, 4 idle") {
  const auto l = lay_out_replicas(5, 4, 8);
  CHECK(l.nodes_per_replica == 2);
  CHECK(l.replicas == 2);
  CHECK(l.idle_devices == 4);
  CHECK(l.idle_nodes == 1);
  CHECK(l.replicas_per_node == 0);
  // The seed's C = ceil(N*M/P) would promise 3: the third replica would need a node the
  // pool does not have (5 nodes hold only two pairs).
  CHECK((5 * 4 + 8 - 1) / 8 == 3);
  CHECK(l.replicas != (5 * 4 + 8 - 1) / 8);
}

TEST_CASE("replicas smaller than a node pack floor(M / P) to a node; larger take whole nodes") {
  auto a = lay_out_replicas(3, 4, 3); // one replica per node, one device idle in each
  CHECK(a.replicas_per_node == 1);
  CHECK(a.replicas == 3);
  CHECK(a.idle_devices == 3);
  CHECK(a.idle_nodes == 0);
  auto b = lay_out_replicas(2, 8, 2);
  CHECK(b.replicas == 8);
  CHECK(b.idle_devices == 0);
  auto c = lay_out_replicas(7, 4, 6); // 2 nodes each, the 7th node idle
  CHECK(c.nodes_per_replica == 2);
  CHECK(c.replicas == 3);
  CHECK(c.idle_devices == 10);
  CHECK(c.idle_nodes == 1);
  auto d = lay_out_replicas(1, 4, 8);
  CHECK(d.replicas == 0);
  CHECK(d.idle_devices == 4);
}

TEST_CASE("a model needing 8 devices of memory is planned as 2 replicas over 5 nodes x 4 devices") {
  // 8 x 60 GiB of weights; an 80 GiB device may use 72 GiB, so one device holds one op
  // (or T devices hold T ops' shares): every plan that fits has 8 devices per replica.
  const auto cost = chain_model(8, 60, 1);
  planner_options o;
  o.batch = 8;
  o.tensor_parallel = 0; // try 1, 2, 4
  auto plan = plan_placement(cost, gpu_pool(5, 4, 80), o);
  REQUIRE_MESSAGE(plan, plan.error().to_string());
  const auto& c = plan->chosen;
  CHECK(c.stages * c.tensor_parallel == 8);
  CHECK(c.layout.devices_per_replica == 8);
  CHECK(c.layout.nodes_per_replica == 2);
  CHECK(c.layout.replicas == 2);
  CHECK(c.layout.idle_devices == 4);
  CHECK(c.max_device_bytes <= 72 * gib);
  CHECK(c.items_per_s == doctest::Approx(2 * c.replica_items_per_s));
  for (const auto& k : plan->considered)
    if (k.stages * k.tensor_parallel < 8)
      CHECK_FALSE(k.fits);
}

TEST_CASE("stages are balanced: 8 equal ops in 4 stages get 2 ops each") {
  const auto cost = chain_model(8, 1, 1);
  planner_options o;
  o.stages = 4;
  o.tensor_parallel = 1;
  auto plan = plan_placement(cost, gpu_pool(1, 4, 80), o);
  REQUIRE_MESSAGE(plan, plan.error().to_string());
  REQUIRE(plan->chosen.stage_list.size() == 4);
  for (size_t s = 0; s < 4; ++s) {
    CHECK(plan->chosen.stage_list[s].first_op == 2 * s);
    CHECK(plan->chosen.stage_list[s].end_op == 2 * s + 2);
  }
  CHECK(plan->chosen.balance == doctest::Approx(1.0));
  REQUIRE(plan->chosen.boundaries.size() == 3);
  CHECK(plan->chosen.boundaries[0] == std::vector<std::string>{"v1"});
  CHECK(plan->chosen.boundaries[2] == std::vector<std::string>{"v5"});
}

TEST_CASE("the cutter minimizes the slowest stage and prefers the cut with fewer bytes on a tie") {
  // ops 0..3 cost 3,1,1,3: the two-stage optimum is 4 | 4 after op 1.
  std::vector<double> seconds{3, 1, 1, 3};
  std::vector<cut_candidate> cands(3);
  for (size_t i = 0; i < 3; ++i) {
    cands[i].after = i;
    cands[i].crossing = {"c" + std::to_string(i)};
    cands[i].crossing_bytes = 100;
    cands[i].allowed = true;
  }
  auto cut = cut_stages(seconds, cands, 2, 0);
  REQUIRE(cut);
  CHECK(cut->after == std::vector<size_t>{1});
  CHECK(cut->max_stage_seconds == doctest::Approx(4));
  // With sending costed, a big tensor at the balanced cut moves the cut.
  cands[1].crossing_bytes = 3000;
  cut = cut_stages(seconds, cands, 2, 1000); // 3 s to send 3000 bytes
  REQUIRE(cut);
  // after op 0: 3 (+0.1 to send) | 5 beats after op 2: 5 (+0.1) | 3
  CHECK(cut->after == std::vector<size_t>{0});
  CHECK(cut->max_stage_seconds == doctest::Approx(5));
  // A disallowed position is never used.
  cands[0].allowed = cands[2].allowed = false;
  cands[1].crossing_bytes = 100;
  cut = cut_stages(seconds, cands, 3, 0);
  REQUIRE_FALSE(cut);
  CHECK(cut.error().message().find("only 1 places") != std::string::npos);
}

TEST_CASE("cut candidates allow only positions where the fewest tensors cross") {
  // x -> a -> b, with a skip from a to c: positions inside the skip cross two tensors.
  model_cost c;
  auto add_op = [&](const std::string& name) {
    op_cost op;
    op.name = name;
    op.flops = linear{0, 1e9};
    c.ops.push_back(op);
  };
  for (auto n : {"a", "b", "c", "d"})
    add_op(n);
  auto add_value = [&](const std::string& name, int producer, int last_use, bool shape = false) {
    value_cost v;
    v.name = name;
    v.bytes = linear{0, 10};
    v.producer = producer;
    v.last_use = last_use;
    v.shape_derived = shape;
    c.values.push_back(v);
  };
  add_value("x", -1, 0);
  add_value("ya", 0, 2); // skip over b
  add_value("yb", 1, 2);
  add_value("yc", 2, 3);
  add_value("yd", 3, 4);
  auto cands = cut_candidates(c, 1);
  REQUIRE(cands.size() == 3);
  CHECK(cands[0].allowed);       // ya alone (x died at op a)
  CHECK_FALSE(cands[1].allowed); // ya and yb: inside the skip
  CHECK(cands[1].crossing == std::vector<std::string>{"ya", "yb"});
  CHECK(cands[1].crossing_bytes == doctest::Approx(20));
  CHECK(cands[2].allowed);       // yc alone
  CHECK(cands[2].crossing == std::vector<std::string>{"yc"});
  CHECK(cut_candidates(c, 1, 1)[1].allowed); // with slack for one more tensor
  // A shape-derived value crossing blocks the position whatever the slack.
  add_value("shape", 1, 2, true);
  cands = cut_candidates(c, 1, 5);
  CHECK_FALSE(cands[1].allowed);
  CHECK(cands[0].allowed);
  CHECK(cands[2].allowed);
}

TEST_CASE("a model that fits nowhere gets an error naming the memory and the devices it needs") {
  const auto cost = chain_model(4, 100, 1); // 400 GiB of weights
  planner_options o;
  o.tensor_parallel = 1;
  o.max_stages = 2;
  auto plan = plan_placement(cost, gpu_pool(1, 2, 80), o);
  REQUIRE_FALSE(plan);
  const auto& msg = plan.error().message();
  CHECK(msg.find("at least 6 devices") != std::string::npos); // 400 GiB / 72 GiB
  CHECK(msg.find("400.00 GiB parameters") != std::string::npos);
  // Enough memory in a plan larger than the pool: the error names that plan's size.
  o.max_stages = 8;
  auto small = plan_placement(chain_model(8, 60, 1), gpu_pool(1, 4, 80), o);
  REQUIRE_FALSE(small);
  CHECK(small.error().message().find("needs 8 devices") != std::string::npos);
}

TEST_CASE("the latency objective under an SLO picks the most throughput that meets it") {
  const auto cost = chain_model(8, 1, 1); // 1 GFLOP per row per op
  planner_options o;
  o.batch = 8;
  o.micro_batch = 1;
  o.tensor_parallel = 1;
  o.goal = objective::latency;
  auto pool = gpu_pool(1, 8, 80);
  pool.device.gflops = 100; // 10 ms per op per row
  auto fastest = plan_placement(cost, pool, o);
  REQUIRE(fastest);
  // Micro-batches overlap only across stages: the 8-stage pipeline has the least latency.
  CHECK(fastest->chosen.stages == 8);
  o.slo_ms = 1e9;
  o.goal = objective::throughput;
  auto roomy = plan_placement(cost, pool, o);
  REQUIRE(roomy);
  CHECK(roomy->chosen.stages == 1); // 8 single-device replicas: no send cost
  CHECK(roomy->chosen.layout.replicas == 8);
  o.slo_ms = 1; // below any plan
  auto none = plan_placement(cost, pool, o);
  REQUIRE_FALSE(none);
  CHECK(none.error().message().find("SLO") != std::string::npos);
}

TEST_CASE("plans render as a table and as JSON with the layout numbers") {
  auto plan = plan_placement(chain_model(8, 60, 1), gpu_pool(5, 4, 80), planner_options{});
  REQUIRE(plan);
  const auto json = format_json(*plan);
  CHECK(json.find("\"replicas\":2") != std::string::npos);
  CHECK(json.find("\"nodes_per_replica\":2") != std::string::npos);
  CHECK(json.find("\"idle_devices\":4") != std::string::npos);
  CHECK(json.front() == '{');
  CHECK(json.back() == '}');
  const auto table = format_table(*plan);
  CHECK(table.find("2 replica(s); idle: 4 device(s), 1 whole node(s)") != std::string::npos);
}

TEST_CASE("device pools parse from YAML with binary sizes; bad keys are named") {
  CHECK(*parse_bytes("80G") == doctest::Approx(80 * gib));
  CHECK(*parse_bytes("512MiB") == doctest::Approx(512.0 * 1024 * 1024));
  CHECK(*parse_bytes("4096") == doctest::Approx(4096));
  CHECK_FALSE(parse_bytes("80X"));
  CHECK_FALSE(parse_bytes("-1G"));
  const auto dir = std::filesystem::temp_directory_path() / "troupe_pool_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "pool.yaml") << "nodes: 5\ndevices_per_node: 4\ndevice_memory: 80G\n"
                                        "device_speed: 300\nlink_bandwidth: 50\n";
    std::ofstream(dir / "bad.yaml") << "nodes: 5\ndevice_memroy: 80G\n";
  }
  auto pool = load_device_pool(dir / "pool.yaml");
  REQUIRE_MESSAGE(pool, pool.error().to_string());
  CHECK(pool->nodes == 5);
  CHECK(pool->devices_per_node == 4);
  CHECK(pool->device.memory_bytes == doctest::Approx(80 * gib));
  CHECK(pool->device.gflops == doctest::Approx(300));
  CHECK(pool->link_gbps == doctest::Approx(50));
  auto bad = load_device_pool(dir / "bad.yaml");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("device_memroy") != std::string::npos);
}

TEST_CASE("the device speed cache keeps one line per device key and replaces it") {
  const auto file = std::filesystem::temp_directory_path() / "troupe_speed_test" / "speed.txt";
  std::filesystem::remove(file);
  CHECK_FALSE(read_cached_speed(file, "cpuA/threads=1/cores=0"));
  REQUIRE(write_cached_speed(file, "cpuA/threads=1/cores=0", {50, 10, false}).is_ok());
  REQUIRE(write_cached_speed(file, "cpuA/threads=2/cores=", {90, 12, false}).is_ok());
  REQUIRE(write_cached_speed(file, "cpuA/threads=1/cores=0", {55, 11, false}).is_ok());
  auto a = read_cached_speed(file, "cpuA/threads=1/cores=0");
  REQUIRE(a);
  CHECK(a->gflops == doctest::Approx(55));
  CHECK(a->mem_gbps == doctest::Approx(11));
  CHECK(a->from_cache);
  auto b = read_cached_speed(file, "cpuA/threads=2/cores=");
  REQUIRE(b);
  CHECK(b->gflops == doctest::Approx(90));
  std::ifstream in(file);
  int lines = 0;
  for (std::string l; std::getline(in, l);)
    ++lines;
  CHECK(lines == 2);
  CHECK(cpu_device_key(cpu::cpu_limits{1, {0}}).find("/threads=1/cores=0") != std::string::npos);
}
