// runtime_test: real models through the embedded runtime: pipeline stages, placement,
// supervision of a faulty executor, shutdown, and a 64-requester stress test.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

#include "actors/embedded_runtime.hpp"
#include "runtime/session.hpp"
#include "tests/actors/actor_test_util.hpp"
#include "tests/actors/serving_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

model_config simple_config(int64_t max_batch, bool batching) {
  model_config c;
  c.max_batch_size = max_batch;
  if (batching) {
    dynamic_batching_config db;
    db.max_queue_delay = 200us;
    c.dynamic_batching = db;
  }
  return c;
}

} // namespace

TEST_CASE("a replica cut into two stages answers like the whole model") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  load_options lo;
  lo.boundaries = {{"h"}};
  auto h = (*rt)->load_model("mlp", 1, onnx, simple_config(8, true), lo);
  REQUIRE(h);
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 4; ++i) {
    auto x = test::random_rows({2, 16}, rng);
    auto r = (*rt)->infer(*h, infer_request{{x}, 0, 0, 0});
    REQUIRE(r);
    CHECK(relative_error(r->outputs.at(0), test::session_outputs(onnx, x).at(0)) < 1e-6);
  }
  auto st = (*rt)->status();
  REQUIRE(st);
  REQUIRE(st->replicas.size() == 1);
  CHECK(st->replicas[0].devices.size() == 2);
  CHECK(st->devices.at(0).used_bytes > 0);
}

TEST_CASE("the resource manager refuses a placement that does not fit and says what would") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx, 64, 256, 8);
  test::threaded_system t;
  auto config = simple_config(4, true);
  uint64_t per_replica = 0;
  {
    auto probe = embedded_runtime::start(t.sys);
    REQUIRE(probe);
    REQUIRE((*probe)->load_model("mlp", 1, onnx, config));
    per_replica = (*probe)->status()->devices.at(0).used_bytes;
  }
  REQUIRE(per_replica > 64 * 256 * 4);
  runtime_options ro;
  ro.resources.memory_per_device = per_replica * 2 + per_replica / 2;
  auto rt = embedded_runtime::start(t.sys, ro);
  REQUIRE(rt);
  config.instance_groups.push_back(instance_group{"g", 5, instance_kind::cpu, {}});
  auto h = (*rt)->load_model("mlp", 1, onnx, config);
  REQUIRE_FALSE(h);
  CHECK(errc_of(h.error()) == errc::resource_exhausted);
  auto msg = t.sys.render(h.error());
  CHECK(msg.find("at most 2 would fit") != std::string::npos);
  config.instance_groups[0].count = 2;
  CHECK((*rt)->load_model("mlp", 1, onnx, config));
}

TEST_CASE("the resource manager splits the cores into disjoint devices") {
  test::threaded_system t;
  resource_options o;
  o.cpu_devices = 2;
  o.cores = {0, 1, 2};
  auto rm = spawn_resource_manager(t.sys, o);
  REQUIRE(rm);
  caf::scoped_actor self{t.sys};
  self->request(*rm, caf::infinite, atom::status_v)
      .receive(
          [&](runtime_status& s) {
            // The CPU devices first, then the machine's GPUs if there are any.
            REQUIRE(std::count_if(s.devices.begin(), s.devices.end(),
                                  [](const device_status& d) { return d.kind == "cpu"; }) == 2);
            CHECK(s.devices[0].cores == std::vector<int32_t>{0});
            CHECK(s.devices[1].cores == std::vector<int32_t>{1, 2});
          },
          [&](caf::error& e) { FAIL(t.sys.render(e)); });
  o.cpu_devices = 4;
  CHECK_FALSE(spawn_resource_manager(t.sys, o));
  self->request(*rm, caf::infinite, atom::shutdown_v).receive([](caf::ok_atom) {}, [](caf::error&) {});
}

TEST_CASE("an executor that throws is restarted: only its batch fails, later batches succeed") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  load_options lo;
  lo.fault_after_batches = 2;
  lo.boundaries = {{"h"}};
  auto h = (*rt)->load_model("mlp", 1, onnx, simple_config(4, false), lo);
  REQUIRE(h);
  std::mt19937 rng(1);
  std::vector<int> outcome; // 1 ok, 0 error
  for (int i = 0; i < 6; ++i) {
    auto x = test::random_rows({1, 16}, rng);
    auto r = (*rt)->infer(*h, infer_request{{x}, 0, 0, 0});
    outcome.push_back(r ? 1 : 0);
    if (r)
      CHECK(relative_error(r->outputs.at(0), test::session_outputs(onnx, x).at(0)) < 1e-6);
    else
      CHECK(errc_of(r.error()) == errc::unavailable);
  }
  CHECK(outcome == std::vector<int>{1, 0, 1, 1, 1, 1});
  auto st = (*rt)->status();
  REQUIRE(st);
  CHECK(st->replicas.at(0).restarts == 1);
  auto ms = (*rt)->status(*h);
  REQUIRE(ms);
  CHECK(ms->failed == 1);
  CHECK(ms->completed == 5);
}

TEST_CASE("shutdown with requests queued answers them all with unavailable and returns") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx, 512, 2048, 512);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  auto h = (*rt)->load_model("mlp", 1, onnx, simple_config(1, false));
  REQUIRE(h);
  auto answers = std::make_shared<std::atomic<int>>(0);
  auto unavailable = std::make_shared<std::atomic<int>>(0);
  std::mt19937 rng(2);
  auto x = test::random_rows({1, 512}, rng);
  t.sys.spawn([=, b = h->batcher](caf::event_based_actor* self) {
    for (int i = 0; i < 1000; ++i)
      self->request(b, caf::infinite, atom::infer_v, infer_request{{x}, 0, 0, 0})
          .then([=](infer_response&) { ++*answers; },
                [=](caf::error& e) {
                  ++*answers;
                  if (errc_of(e) == errc::unavailable)
                    ++*unavailable;
                });
  });
  std::this_thread::sleep_for(5ms);
  (*rt)->shutdown();
  for (int i = 0; i < 1000 && *answers < 1000; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK(*answers == 1000);
  CHECK(*unavailable > 0);
}
