// async_executor_test: the asynchronous executor (the GPU executor's actor logic) serving
// models through the host implementation of async_model, and how instance groups choose
// between GPU and CPU, which GPU stages keep their outputs on the device, and how a rank that
// cannot load aborts its NCCL group.
#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <numeric>
#include <set>

#include "actors/embedded_runtime.hpp"
#include "actors/executor_setup.hpp"
#include "kernels/gpu_devices.hpp"
#include "runtime/session.hpp"
#include "tests/actors/actor_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// The seed CNN when it was exported, else an MLP written into `dir`; with one item's dims.
std::pair<std::filesystem::path, shape> reference_model(const test::temp_dir& dir) {
  if (auto onnx = test::seed_cnn_path())
    return {*onnx, shape{1, 1, 28, 28}};
  MESSAGE("seed_cnn.onnx not exported (tools/export_models.py); using an MLP");
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx, 64, 128, 10);
  return {onnx, shape{1, 64}};
}

model_config batching_config(int64_t max_batch) {
  model_config c;
  c.max_batch_size = max_batch;
  dynamic_batching_config db;
  db.max_queue_delay = 200us;
  c.dynamic_batching = db;
  return c;
}

/// The CPU session's outputs for each input, one run per input.
std::vector<tensor> session_outputs(const std::filesystem::path& onnx,
                                    const std::vector<tensor>& inputs) {
  auto s = session::open(onnx.string());
  REQUIRE(s);
  std::vector<tensor> out;
  for (const auto& x : inputs) {
    std::vector<tensor> in{x};
    auto r = (*s)->run(in);
    REQUIRE(r);
    out.push_back(r->at(0));
  }
  return out;
}

std::vector<tensor> random_items(shape item, size_t n, std::mt19937& rng) {
  std::vector<tensor> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back(test::random_rows(item, rng));
  return out;
}

std::vector<infer_request> requests_for(const std::vector<tensor>& inputs) {
  std::vector<infer_request> reqs;
  for (const auto& x : inputs)
    reqs.push_back(infer_request{{x}, 0, 0, 0});
  return reqs;
}

shard_spec host_spec(const std::filesystem::path& onnx) {
  shard_spec spec;
  spec.onnx_path = onnx.string();
  spec.backend = executor_backend::host_async;
  spec.limits.threads = 1;
  return spec;
}

/// Sends the executor one micro-batch per input, in order (batch_id = index), whose merger is
/// `merger`. An actor builds them from copies of the inputs, as the merger does from a batch:
/// TSan cannot see the hand-over inside (uninstrumented) CAF, so data written by the test
/// thread and read on the model's thread would look like a race.
void send_jobs(caf::actor_system& sys, async_executor_actor exec,
               const std::vector<tensor>& inputs, caf::actor merger) {
  sys.spawn([=](caf::event_based_actor* self) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      stage_job job;
      job.batch_id = i;
      job.values = {inputs[i].clone()};
      job.merger = merger;
      self->send(exec, atom::run_v, std::move(job));
    }
  });
}

} // namespace

TEST_CASE("the asynchronous executor answers like the CPU executor and the session") {
  test::temp_dir dir;
  auto [onnx, item] = reference_model(dir);
  std::mt19937 rng(std::random_device{}());
  auto inputs = random_items(item, 24, rng);
  auto expected_out = session_outputs(onnx, inputs);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  load_options async;
  async.host_async = true;
  auto on_async = (*rt)->load_model("m_async", 1, onnx, batching_config(8), async);
  auto on_cpu = (*rt)->load_model("m_cpu", 1, onnx, batching_config(8));
  REQUIRE(on_async);
  REQUIRE(on_cpu);
  auto a = test::infer_all(t.sys, on_async->batcher, requests_for(inputs));
  auto c = test::infer_all(t.sys, on_cpu->batcher, requests_for(inputs));
  for (size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE(a[i]);
    REQUIRE(c[i]);
    CHECK(relative_error(a[i]->outputs.at(0), expected_out[i]) < 1e-5);
    CHECK(relative_error(a[i]->outputs.at(0), c[i]->outputs.at(0)) < 1e-5);
  }
  auto ms = (*rt)->status(*on_async);
  REQUIRE(ms);
  CHECK(ms->completed == inputs.size());
}

TEST_CASE("many concurrent requests through asynchronous replicas are all answered correctly") {
  test::temp_dir dir;
  auto [onnx, item] = reference_model(dir);
  std::mt19937 rng(std::random_device{}());
  auto inputs = random_items(item, 200, rng);
  auto expected_out = session_outputs(onnx, inputs);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  auto config = batching_config(4);
  config.instance_groups.push_back(instance_group{"g", 3, instance_kind::cpu, {}});
  load_options async;
  async.host_async = true;
  auto h = (*rt)->load_model("m", 1, onnx, config, async);
  REQUIRE(h);
  auto replies = test::infer_all(t.sys, h->batcher, requests_for(inputs));
  size_t correct = 0;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (replies[i] && relative_error(replies[i]->outputs.at(0), expected_out[i]) < 1e-5)
      ++correct;
  CHECK(correct == inputs.size());
  // Each replica is an executor of its own with its own model (and thread).
  auto st = (*rt)->status();
  REQUIRE(st);
  REQUIRE(st->replicas.size() == 3);
  std::set<uint32_t> slots;
  for (const auto& r : st->replicas) {
    slots.insert(r.slot);
    CHECK(r.kind == "cpu");
  }
  CHECK(slots == std::set<uint32_t>{0, 1, 2});
  auto ms = (*rt)->status(*h);
  REQUIRE(ms);
  CHECK(ms->replicas == 3);
  CHECK(ms->completed == inputs.size());
}

TEST_CASE("jobs sent while runs are in flight complete in FIFO order") {
  test::temp_dir dir;
  auto [onnx, item] = reference_model(dir);
  std::mt19937 rng(std::random_device{}());
  auto inputs = random_items(item, 32, rng);
  auto expected_out = session_outputs(onnx, inputs);
  test::threaded_system t;
  caf::scoped_actor self{t.sys};
  auto exec = spawn_async_executor(t.sys, host_spec(onnx));
  // Sent at once, before the model is even loaded: they all wait in the executor.
  send_jobs(t.sys, exec, inputs, caf::actor{self});
  std::vector<uint64_t> order;
  for (size_t n = 0; n < inputs.size(); ++n)
    self->receive(
        [&](atom::merge, stage_job& job) {
          REQUIRE_FALSE(job.error);
          REQUIRE(job.values.size() == 1);
          CHECK(relative_error(job.values[0], expected_out.at(job.batch_id)) < 1e-6);
          CHECK(job.stage_us.size() == 1);
          order.push_back(job.batch_id);
        },
        caf::after(60s) >> [&] { FAIL("the executor did not answer"); });
  std::vector<uint64_t> sent(inputs.size());
  std::iota(sent.begin(), sent.end(), uint64_t{0});
  CHECK(order == sent);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
}

TEST_CASE("a failing run fails its batch with the stage's context and the executor keeps serving") {
  test::temp_dir dir;
  auto [onnx, item] = reference_model(dir);
  std::mt19937 rng(std::random_device{}());
  auto good = random_items(item, 2, rng);
  auto expected_out = session_outputs(onnx, good);
  auto bad_dims = item;
  bad_dims.back() += 1; // the session refuses it when the run starts
  test::threaded_system t;
  caf::scoped_actor self{t.sys};
  auto exec = spawn_async_executor(t.sys, host_spec(onnx));
  send_jobs(t.sys, exec, {good[0], test::random_rows(bad_dims, rng), good[1]},
            caf::actor{self});
  // What each reply says, read inside the receive (see send_jobs: TSan and CAF).
  struct reply {
    std::optional<errc> code;
    std::string message;
    size_t values = 0;
    double error = 1;
  };
  std::map<uint64_t, reply> got;
  for (int n = 0; n < 3; ++n)
    self->receive(
        [&](atom::merge, stage_job& job) {
          auto& r = got[job.batch_id];
          r.code = errc_of(job.error);
          r.message = job.error ? message_of(job.error) : "";
          r.values = job.values.size();
          if (!job.error && job.values.size() == 1)
            r.error = relative_error(job.values[0], expected_out.at(job.batch_id == 0 ? 0 : 1));
        },
        caf::after(60s) >> [&] { FAIL("the executor did not answer"); });
  REQUIRE(got.size() == 3);
  CHECK_FALSE(got[0].code);
  CHECK(got[0].error < 1e-6);
  CHECK(got[1].code == errc::invalid_argument);
  CHECK(got[1].values == 0);
  CHECK(got[1].message.starts_with("stage 0 on a host thread: "));
  CHECK_FALSE(got[2].code);
  CHECK(got[2].error < 1e-6);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
}

TEST_CASE("an asynchronous executor that cannot load fails every job with the load error") {
  test::temp_dir dir;
  test::threaded_system t;
  caf::scoped_actor self{t.sys};
  auto exec = spawn_async_executor(t.sys, host_spec(dir.path / "missing.onnx"));
  std::mt19937 rng(std::random_device{}());
  send_jobs(t.sys, exec, random_items({1, 4}, 3, rng), caf::actor{self});
  for (int n = 0; n < 3; ++n)
    self->receive(
        [&](atom::merge, stage_job& job) {
          REQUIRE(job.error);
          CHECK(message_of(job.error).find("missing.onnx") != std::string::npos);
        },
        caf::after(60s) >> [&] { FAIL("the executor did not answer"); });
  self->send_exit(exec, caf::exit_reason::user_shutdown);
}

TEST_CASE("an asynchronous executor that throws is restarted and later batches succeed") {
  test::temp_dir dir;
  auto [onnx, item] = reference_model(dir);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  load_options lo;
  lo.host_async = true;
  lo.fault_after_batches = 2;
  model_config config;
  config.max_batch_size = 4;
  auto h = (*rt)->load_model("m", 1, onnx, config, lo);
  REQUIRE(h);
  std::mt19937 rng(std::random_device{}());
  auto inputs = random_items(item, 5, rng);
  auto expected_out = session_outputs(onnx, inputs);
  std::vector<int> outcome; // 1 ok, 0 error
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto r = (*rt)->infer(*h, infer_request{{inputs[i]}, 0, 0, 0});
    outcome.push_back(r ? 1 : 0);
    if (r)
      CHECK(relative_error(r->outputs.at(0), expected_out[i]) < 1e-6);
    else
      CHECK(errc_of(r.error()) == errc::unavailable);
  }
  CHECK(outcome == std::vector<int>{1, 0, 1, 1, 1});
  auto st = (*rt)->status();
  REQUIRE(st);
  CHECK(st->replicas.at(0).restarts == 1);
}

TEST_CASE("shutdown with asynchronous runs in flight answers every request once") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx, 256, 1024, 256);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  load_options lo;
  lo.host_async = true;
  auto config = batching_config(2);
  config.instance_groups.push_back(instance_group{"g", 2, instance_kind::cpu, {}});
  auto h = (*rt)->load_model("m", 1, onnx, config, lo);
  REQUIRE(h);
  std::mt19937 rng(std::random_device{}());
  auto x = test::random_rows({1, 256}, rng);
  constexpr int requests = 300;
  caf::scoped_actor self{t.sys};
  auto sink = caf::actor{self};
  t.sys.spawn([=, b = h->batcher](caf::event_based_actor* a) {
    for (int i = 0; i < requests; ++i)
      a->request(b, caf::infinite, atom::infer_v, infer_request{{x}, 0, 0, 0})
          .then([=](infer_response&) { a->send(sink, i, true); },
                [=](caf::error& e) { a->send(sink, i, errc_of(e) == errc::unavailable); });
  });
  std::vector<int> answers(requests, 0);
  int settled = 0;
  auto receive_one = [&] {
    self->receive(
        [&](int i, bool ok_or_unavailable) {
          ++answers.at(static_cast<size_t>(i));
          settled += ok_or_unavailable ? 1 : 0;
        },
        caf::after(60s) >> [&] { FAIL("a request was not answered"); });
  };
  receive_one(); // runs are going: shut down with the rest queued or in flight
  (*rt)->shutdown();
  for (int n = 1; n < requests; ++n)
    receive_one();
  CHECK(std::all_of(answers.begin(), answers.end(), [](int n) { return n == 1; }));
  CHECK(settled == requests); // each one succeeded or was told `unavailable`
}

TEST_CASE("KIND_GPU without a usable GPU fails at load and says why") {
  if (list_gpus()) {
    MESSAGE("a GPU is listed here; the no-GPU error cannot be checked");
    return;
  }
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  auto config = batching_config(4);
  config.instance_groups.push_back(instance_group{"gpus", 2, instance_kind::gpu, {0}});
  auto h = (*rt)->load_model("m", 1, onnx, config);
  REQUIRE_FALSE(h);
  CHECK(errc_of(h.error()) == errc::unavailable);
  CHECK(message_of(h.error()).starts_with("model m: instance_group 'gpus' asks for KIND_GPU: "
                                          "no usable CUDA device: "));
  CHECK((*rt)->models().empty());
}

TEST_CASE("KIND_AUTO serves on the CPU when no GPU is listed") {
  if (list_gpus()) {
    MESSAGE("a GPU is listed here; KIND_AUTO would place on it");
    return;
  }
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  auto config = batching_config(4);
  config.instance_groups.push_back(instance_group{"any", 2, instance_kind::automatic, {}});
  auto h = (*rt)->load_model("m", 1, onnx, config);
  REQUIRE(h);
  std::mt19937 rng(std::random_device{}());
  auto x = test::random_rows({3, 16}, rng);
  auto r = (*rt)->infer(*h, infer_request{{x}, 0, 0, 0});
  REQUIRE(r);
  CHECK(relative_error(r->outputs.at(0), session_outputs(onnx, {x}).at(0)) < 1e-6);
  auto st = (*rt)->status();
  REQUIRE(st);
  REQUIRE(st->replicas.size() == 2);
  for (const auto& rep : st->replicas)
    CHECK(rep.kind == "cpu");
}

TEST_CASE("GPU stages before the last keep their outputs on the device; the last, CPU stages "
          "and whole models hand host tensors on") {
  shard_spec spec;
  spec.boundaries = {{"a"}, {"b"}}; // three stages
  spec.backend = executor_backend::gpu;
  std::vector<bool> on_device;
  for (int stage : {0, 1, 2}) {
    spec.stage = stage;
    on_device.push_back(hands_on_device(spec));
  }
  CHECK(on_device == std::vector<bool>{true, true, false});
  spec.stage = 0;
  spec.backend = executor_backend::host_async;
  CHECK_FALSE(hands_on_device(spec));
  spec.backend = executor_backend::cpu;
  CHECK_FALSE(hands_on_device(spec));
  spec.backend = executor_backend::gpu;
  spec.boundaries.clear(); // one stage: the merger gets its outputs
  CHECK_FALSE(hands_on_device(spec));
}

TEST_CASE("a rank that cannot load aborts its NCCL group on the abort board: a rank waiting to "
          "join is told, a rank coming later is refused") {
  shard_spec spec;
  spec.backend = executor_backend::gpu;
  spec.group.kind = "nccl";
  spec.group.size = 2;
  spec.group.rank = 1;
  for (int b = 0; b < 128; ++b) // a unique id no other test uses
    spec.group.unique_id.push_back(static_cast<uint8_t>(0xA0 ^ b));
  std::vector<std::byte> id;
  for (uint8_t b : spec.group.unique_id)
    id.push_back(static_cast<std::byte>(b));
  auto& board = group_aborts::global();
  std::string told;
  auto waiting = board.enlist(id, [&](const status& why) { told = why.message(); });
  REQUIRE(waiting.has_value());
  abort_rank_group(spec, status{errc::unavailable, "stage 0 rank 1 on cuda:1: out of memory"});
  CHECK(told == "stage 0 rank 1 on cuda:1: out of memory");
  auto later = board.enlist(id, nullptr);
  REQUIRE_FALSE(later.has_value());
  CHECK(later.error().message() == told);
  // A whole stage (no group) aborts nothing.
  shard_spec whole;
  whole.backend = executor_backend::gpu;
  const size_t remembered = board.aborted_groups();
  abort_rank_group(whole, status{errc::unavailable, "no group"});
  CHECK(board.aborted_groups() == remembered);
}
