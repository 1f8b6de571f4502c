// batcher_test: batching, priority, timeouts, queue limits and ordering on the deterministic
// CAF scheduler, with a fake replica (standing in for merger and stages) that the test releases
// batch by batch.
#include <doctest/doctest.h>

#include <map>

#include "tests/actors/actor_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// A replica (the merger the batcher sends batches to) that echoes its inputs as outputs. In
/// hold mode it keeps each batch until the test sends `release`, so a batch can be "running"
/// while time passes.
using fake_stage_actor = merger_actor::extend<caf::reacts_to<atom::release>>;

struct fake_log {
  std::vector<std::vector<int64_t>> batches; // rows per request, per batch received
  std::vector<float> first_values;           // first value of each batch's first row
};

struct fake_stage_state {
  std::vector<std::pair<caf::typed_response_promise<batch_done>, batch_job>> held;
};

batch_done echo(batch_job& job) {
  batch_done done{job.batch_id, job.replica, {}, {}, {250}};
  int64_t begin = 0;
  for (int64_t r : job.rows) {
    infer_response resp;
    for (auto& v : job.values)
      resp.outputs.push_back(v.slice_rows(begin, begin + r));
    begin += r;
    done.replies.push_back(std::move(resp));
  }
  return done;
}

/// What the fake does with a batch: answer it, hold it until `release`, or fail it the way a
/// merger does when a stage of its replica stopped.
enum class fake_mode { echo, hold, lose };

fake_stage_actor::behavior_type fake_stage(fake_stage_actor::stateful_pointer<fake_stage_state> self,
                                           std::shared_ptr<fake_log> log, fake_mode mode) {
  return {
    [=](atom::run, batch_job& job) -> caf::result<batch_done> {
      log->batches.push_back(job.rows);
      log->first_values.push_back(job.values.at(0).values<float>()[0]);
      if (mode == fake_mode::lose)
        return batch_done{job.batch_id, job.replica,
                          to_error(errc::unavailable, "a stage stopped"), {}, {}, true};
      if (mode == fake_mode::echo)
        return echo(job);
      auto promise = self->make_response_promise<batch_done>();
      self->state.held.emplace_back(promise, std::move(job));
      return promise;
    },
    [=](atom::release) {
      // Releases the oldest held batch.
      if (self->state.held.empty())
        return;
      auto [promise, job] = std::move(self->state.held.front());
      self->state.held.erase(self->state.held.begin());
      promise.deliver(echo(job));
    },
    [](atom::merge, stage_job&) {}, // no stages behind this fake
  };
}

struct reply_log {
  struct entry {
    int tag;
    std::optional<errc> error;
    float value = 0; // first output value on success
    int64_t rows = 0;
    uint64_t correlation = 0;
    int64_t queue_us = 0;
    int64_t batch_rows = 0;
    int64_t infer_us = 0;
    shape dims{}; // of the first output on success
  };
  std::vector<entry> entries; // in the order replies arrived
  const entry* find(int tag) const {
    for (auto& e : entries)
      if (e.tag == tag)
        return &e;
    return nullptr;
  }
  int count(int tag) const {
    int n = 0;
    for (auto& e : entries)
      n += e.tag == tag;
    return n;
  }
};

model_config batching_config(int64_t max_batch, std::vector<int64_t> preferred,
                             microseconds delay, int64_t credits = 1) {
  model_config c;
  c.max_batch_size = max_batch;
  dynamic_batching_config db;
  db.preferred_batch_size = std::move(preferred);
  db.max_queue_delay = delay;
  c.dynamic_batching = db;
  c.max_batches_in_flight = credits;
  return c;
}

struct fixture : test::deterministic_system {
  std::shared_ptr<fake_log> stage_log = std::make_shared<fake_log>();
  std::shared_ptr<reply_log> replies = std::make_shared<reply_log>();
  batcher_actor batcher;
  std::vector<fake_stage_actor> stages;

  // Everything this test spawned must end, or the actor_system's destructor waits forever.
  ~fixture() {
    caf::anon_send_exit(batcher, caf::exit_reason::user_shutdown);
    for (auto& s : stages)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    run();
  }

  void start(model_config config, int replicas = 1, bool hold = true,
             shape input_dims = {-1, 2}) {
    batcher_options o;
    o.model = "echo";
    o.config = std::move(config);
    o.inputs = {value_info{"x", dtype::f32, input_dims}};
    o.outputs = {value_info{"y", dtype::f32, input_dims}};
    auto b = spawn_batcher(sys, o);
    REQUIRE(b);
    batcher = *b;
    for (int r = 0; r < replicas; ++r)
      caf::anon_send(batcher, atom::replica_v,
                     route_to(add_stage(hold ? fake_mode::hold : fake_mode::echo), r));
    run();
  }

  fake_stage_actor add_stage(fake_mode mode) {
    stages.push_back(sys.spawn(fake_stage, stage_log, mode));
    return stages.back();
  }

  static replica_route route_to(const fake_stage_actor& stage, int slot) {
    auto handle = caf::actor_cast<caf::actor>(stage);
    return replica_route{static_cast<uint32_t>(slot), {handle}, handle, {0}};
  }

  /// Sends a request of `rows` rows whose values are all `tag`, from its own client actor.
  void send(int tag, int64_t rows = 1, uint32_t priority = 0, int64_t timeout_us = 0) {
    send_shaped(tag, {rows, 2}, priority, timeout_us);
  }

  /// As send, with an input of shape `dims` (its rows first).
  void send_shaped(int tag, shape dims, uint32_t priority = 0, int64_t timeout_us = 0) {
    tensor x = tensor::empty(dtype::f32, dims);
    for (auto& v : x.values<float>())
      v = static_cast<float>(tag);
    infer_request req{{x}, priority, timeout_us, static_cast<uint64_t>(tag)};
    auto log = replies;
    auto b = batcher;
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(b, caf::infinite, atom::infer_v, req)
          .then(
              [=](infer_response& r) {
                log->entries.push_back(
                    {tag, std::nullopt, r.outputs.at(0).values<float>()[0], r.outputs[0].dim(0),
                     r.correlation_id, r.queue_us, r.batch_rows, r.compute_infer_us,
                     r.outputs[0].dims()});
              },
              [=](caf::error& e) { log->entries.push_back({tag, errc_of(e), 0, 0}); });
    });
    run();
  }

  void release(size_t replica = 0) {
    caf::anon_send(stages.at(replica), atom::release_v);
    run();
  }

  model_status status() {
    model_status out;
    auto b = batcher;
    auto result = std::make_shared<model_status>();
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(b, caf::infinite, atom::status_v).then([=](model_status& s) { *result = s; });
    });
    run();
    return *result;
  }

  std::vector<int> tags_in_reply_order() const {
    std::vector<int> tags;
    for (auto& e : replies->entries)
      tags.push_back(e.tag);
    return tags;
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture, "batcher sends a batch at once when the queue holds a preferred size, "
                           "and each request gets its own rows back") {
  start(batching_config(8, {4}, 1000us), 1, false);
  send(1, 1);
  send(2, 2);
  CHECK(stage_log->batches.empty()); // 3 rows: not preferred, the delay has not passed
  send(3, 1);
  REQUIRE(stage_log->batches.size() == 1);
  CHECK(stage_log->batches[0] == std::vector<int64_t>{1, 2, 1});
  REQUIRE(replies->entries.size() == 3);
  for (int tag : {1, 2, 3}) {
    auto* e = replies->find(tag);
    REQUIRE(e);
    CHECK_FALSE(e->error);
    CHECK(e->value == static_cast<float>(tag));
    CHECK(e->rows == (tag == 2 ? 2 : 1));
    CHECK(e->correlation == static_cast<uint64_t>(tag));
  }
}

TEST_CASE_FIXTURE(fixture, "the oldest request waits at most max_queue_delay for a fuller batch") {
  start(batching_config(8, {4}, 1000us), 1, false);
  send(1);
  advance(999us);
  CHECK(stage_log->batches.empty());
  advance(1us);
  REQUIRE(stage_log->batches.size() == 1);
  CHECK(stage_log->batches[0] == std::vector<int64_t>{1});
  CHECK(replies->count(1) == 1);
}

TEST_CASE_FIXTURE(fixture, "a batch goes when max_batch_size is reached and the rest waits for a "
                           "credit") {
  start(batching_config(4, {}, 1000us));
  for (int tag = 1; tag <= 6; ++tag)
    send(tag);
  REQUIRE(stage_log->batches.size() == 1);
  CHECK(stage_log->batches[0].size() == 4);
  advance(5000us); // no credit: the remaining two wait however long it takes
  CHECK(stage_log->batches.size() == 1);
  release();
  REQUIRE(stage_log->batches.size() == 2);
  CHECK(stage_log->batches[1].size() == 2);
  release();
  CHECK(replies->entries.size() == 6);
}

TEST_CASE_FIXTURE(fixture, "higher priority levels are served first, FIFO inside a level") {
  auto config = batching_config(1, {}, 0us);
  config.dynamic_batching->priority_levels = 3;
  start(config);
  send(10, 1, 3); // runs at once, held
  send(11, 1, 3);
  send(12, 1, 2);
  send(13, 1, 1);
  send(14, 1, 2);
  for (int i = 0; i < 5; ++i)
    release();
  CHECK(tags_in_reply_order() == std::vector<int>{10, 13, 12, 14, 11});
}

TEST_CASE_FIXTURE(fixture, "a REJECT timeout is answered at its deadline while a batch is "
                           "running") {
  auto config = batching_config(1, {}, 0us);
  config.dynamic_batching->default_queue_policy.allow_timeout_override = true;
  start(config);
  send(1);              // running, held
  send(2, 1, 0, 1000);  // 1 ms timeout
  send(3);              // no timeout
  advance(999us);
  CHECK(replies->entries.empty());
  advance(1us);
  REQUIRE(replies->entries.size() == 1);
  CHECK(replies->entries[0].tag == 2);
  CHECK(replies->entries[0].error == errc::timeout);
  release();
  release();
  CHECK(tags_in_reply_order() == std::vector<int>{2, 1, 3});
  CHECK(replies->find(1)->error == std::nullopt);
  auto s = status();
  CHECK(s.accepted == 3);
  CHECK(s.timed_out == 1);
  CHECK(s.completed == 2);
}

TEST_CASE_FIXTURE(fixture, "a DELAY timeout moves the request behind those that have not timed "
                           "out, and it is still served") {
  auto config = batching_config(1, {}, 0us);
  config.dynamic_batching->default_queue_policy.default_timeout = 500us;
  config.dynamic_batching->default_queue_policy.action = timeout_action::delay;
  start(config);
  send(1); // running, held
  send(2); // will time out while queued
  advance(600us);
  send(3); // arrived later, but 2 has timed out
  release();
  release();
  release();
  CHECK(tags_in_reply_order() == std::vector<int>{1, 3, 2});
  for (auto& e : replies->entries)
    CHECK_FALSE(e.error);
}

TEST_CASE_FIXTURE(fixture, "batcher rejects with resource_exhausted when max_queue_size is "
                           "reached") {
  auto config = batching_config(1, {}, 0us);
  config.dynamic_batching->default_queue_policy.max_queue_size = 2;
  start(config);
  send(1); // running
  send(2);
  send(3);
  send(4); // the level already holds two
  REQUIRE(replies->entries.size() == 1);
  CHECK(replies->entries[0].tag == 4);
  CHECK(replies->entries[0].error == errc::resource_exhausted);
  release();
  send(5); // room again
  release();
  release();
  release();
  CHECK(tags_in_reply_order() == std::vector<int>{4, 1, 2, 3, 5});
  CHECK(status().rejected == 1);
}

TEST_CASE_FIXTURE(fixture, "a request that does not match the model is refused at once") {
  start(batching_config(4, {}, 0us));
  tensor bad = tensor::zeros(dtype::f32, {1, 3});
  auto log = replies;
  sys.spawn([=, b = batcher](caf::event_based_actor* self) {
    self->request(b, caf::infinite, atom::infer_v, infer_request{{bad}, 0, 0, 0})
        .then([=](infer_response&) { log->entries.push_back({0, std::nullopt}); },
              [=](caf::error& e) { log->entries.push_back({0, errc_of(e)}); });
  });
  run();
  send(9, 5); // more rows than max_batch_size
  REQUIRE(replies->entries.size() == 2);
  CHECK(replies->entries[0].error == errc::invalid_argument);
  CHECK(replies->entries[1].error == errc::invalid_argument);
}

TEST_CASE_FIXTURE(fixture, "preserve_ordering holds a finished reply until earlier ones are out") {
  auto config = batching_config(1, {}, 0us);
  config.dynamic_batching->preserve_ordering = true;
  start(config, 2);
  send(1); // replica 0
  send(2); // replica 1
  release(1);
  CHECK(replies->entries.empty()); // 2 is done but 1 is not
  release(0);
  CHECK(tags_in_reply_order() == std::vector<int>{1, 2});
}

TEST_CASE_FIXTURE(fixture, "without preserve_ordering replies leave as batches finish") {
  start(batching_config(1, {}, 0us), 2);
  send(1);
  send(2);
  release(1);
  release(0);
  CHECK(tags_in_reply_order() == std::vector<int>{2, 1});
}

TEST_CASE_FIXTURE(fixture, "allowed_batch_sizes pads the batch and replies carry only real rows") {
  auto config = batching_config(4, {}, 100us, 1);
  config.allowed_batch_sizes = {2, 4};
  start(config, 1, false);
  send(1, 3);
  advance(100us);
  REQUIRE(stage_log->batches.size() == 1);
  REQUIRE(replies->entries.size() == 1);
  CHECK(replies->entries[0].rows == 3);
}

TEST_CASE_FIXTURE(fixture, "shutdown answers queued and running requests with unavailable") {
  start(batching_config(1, {}, 0us));
  send(1); // running
  send(2);
  send(3);
  auto result = std::make_shared<model_status>();
  sys.spawn([=, b = batcher](caf::event_based_actor* self) {
    self->request(b, caf::infinite, atom::shutdown_v).then([=](model_status& s) { *result = s; });
  });
  run();
  REQUIRE(replies->entries.size() == 3);
  for (auto& e : replies->entries)
    CHECK(e.error == errc::unavailable);
  CHECK(result->cancelled == 3);
  send(4); // the batcher is gone: the request fails, it does not hang
  CHECK(replies->count(4) == 1);
}

TEST_CASE_FIXTURE(fixture, "replies carry their queue time, and the first of a batch its rows "
                           "and stage times") {
  start(batching_config(8, {4}, 1000us), 1, false);
  send(1, 2);
  advance(400us);
  send(2, 1);
  advance(600us); // the oldest request's delay is up: one batch of 3 rows
  REQUIRE(replies->entries.size() == 2);
  const auto* first = replies->find(1);
  const auto* second = replies->find(2);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->queue_us == 1000);
  CHECK(second->queue_us == 600);
  CHECK(first->batch_rows == 3);
  CHECK(second->batch_rows == 0); // counted once per batch
  CHECK(first->infer_us == 250);  // the fake stage reports 250 µs
  CHECK(second->infer_us == 250);
}

TEST_CASE_FIXTURE(fixture, "drain refuses new requests, serves every admitted one, then replies") {
  start(batching_config(1, {}, 0us));
  send(1); // running
  send(2); // queued
  auto result = std::make_shared<std::optional<model_status>>();
  sys.spawn([=, b = batcher](caf::event_based_actor* self) {
    self->request(b, caf::infinite, atom::drain_v).then([=](model_status& s) { *result = s; });
  });
  run();
  CHECK_FALSE(result->has_value());
  send(3); // refused while draining
  REQUIRE(replies->find(3));
  CHECK(replies->find(3)->error == errc::unavailable);
  release();
  CHECK_FALSE(result->has_value()); // request 2 is still running
  release();
  REQUIRE(result->has_value());
  CHECK((*result)->completed == 2);
  REQUIRE(replies->find(1));
  REQUIRE(replies->find(2));
  CHECK_FALSE(replies->find(1)->error);
  CHECK_FALSE(replies->find(2)->error);
}

TEST_CASE_FIXTURE(fixture, "a batch failed by a stopped stage keeps the next request off its "
                           "replica until the restarted route comes") {
  start(batching_config(1, {}, 0us), 0);
  caf::anon_send(batcher, atom::replica_v, route_to(add_stage(fake_mode::lose), 0));
  run();
  send(1);
  REQUIRE(stage_log->batches.size() == 1);
  REQUIRE(replies->count(1) == 1);
  CHECK(replies->find(1)->error == errc::unavailable);
  send(2); // sent on the failure, before the batcher saw any stop: it must wait
  CHECK(stage_log->batches.size() == 1);
  CHECK(replies->count(2) == 0);
  caf::anon_send(batcher, atom::restarted_v, route_to(add_stage(fake_mode::echo), 0));
  run();
  REQUIRE(replies->count(2) == 1);
  CHECK_FALSE(replies->find(2)->error);
  CHECK(replies->find(2)->value == 2.0f);
  CHECK(stage_log->batches.size() == 2);
}

TEST_CASE_FIXTURE(fixture, "lost fails the batch its replica held and holds new requests until "
                           "restarted") {
  start(batching_config(1, {}, 0us));
  send(1); // held by the replica
  REQUIRE(stage_log->batches.size() == 1);
  caf::anon_send(batcher, atom::lost_v, uint32_t{0}, std::string{"executor 0 stopped: test"});
  run();
  REQUIRE(replies->count(1) == 1);
  CHECK(replies->find(1)->error == errc::unavailable);
  send(2);
  CHECK(stage_log->batches.size() == 1);
  caf::anon_send(batcher, atom::restarted_v, route_to(add_stage(fake_mode::echo), 0));
  run();
  REQUIRE(replies->count(2) == 1);
  CHECK(replies->find(2)->value == 2.0f);
  release(); // the old replica's late answer to batch 1 is ignored: one reply per request
  CHECK(replies->count(1) == 1);
}

TEST_CASE_FIXTURE(fixture, "requests whose dynamic non-batch dims differ never share a batch: "
                           "another shape closes the batch, and each reply has its own shape") {
  start(batching_config(8, {4}, 1000us), 1, false, {-1, -1});
  send_shaped(1, {1, 2});
  send_shaped(2, {2, 2});
  CHECK(stage_log->batches.empty()); // 3 rows of one shape: waits for a fuller batch
  send_shaped(3, {1, 64});           // another shape: the first batch goes as it is
  REQUIRE(stage_log->batches.size() == 1);
  CHECK(stage_log->batches[0] == std::vector<int64_t>{1, 2});
  send_shaped(4, {1, 2}); // behind 3, which now heads the queue with its own shape
  advance(1000us);
  REQUIRE(stage_log->batches.size() == 3);
  CHECK(stage_log->batches[1] == std::vector<int64_t>{1});
  CHECK(stage_log->batches[2] == std::vector<int64_t>{1});
  for (auto [tag, dims] : {std::pair{1, shape{1, 2}}, std::pair{2, shape{2, 2}},
                           std::pair{3, shape{1, 64}}, std::pair{4, shape{1, 2}}}) {
    CAPTURE(tag);
    auto* e = replies->find(tag);
    REQUIRE(e);
    REQUIRE_FALSE(e->error);
    CHECK(e->dims == dims);
    CHECK(e->value == static_cast<float>(tag));
  }
}

TEST_CASE_FIXTURE(fixture, "an input in device memory is refused at admission: the batcher "
                           "builds batches in host memory") {
  start(batching_config(8, {4}, 1000us), 1, false);
  std::vector<float> data(4, 1.0f);
  auto on_gpu = storage::borrow(data.data(), data.size() * sizeof(float),
                                device{device::kind::cuda, 0});
  infer_request req{{tensor::wrap(dtype::f32, {2, 2}, on_gpu)}, 0, 0, 9};
  auto log = replies;
  auto b = batcher;
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(b, caf::infinite, atom::infer_v, req)
        .then([=](infer_response&) { log->entries.push_back({9, std::nullopt}); },
              [=](caf::error& e) { log->entries.push_back({9, errc_of(e)}); });
  });
  run();
  REQUIRE(replies->entries.size() == 1);
  CHECK(replies->entries[0].error == errc::invalid_argument);
  CHECK(stage_log->batches.empty());
  CHECK(status().rejected == 1);
}
