// Tests for batch formation, credits, reply ordering and the adaptive batch cap.
#include <doctest/doctest.h>

#include <algorithm>

#include "runtime/batching/aimd_batch_cap.hpp"
#include "runtime/batching/batch_former.hpp"
#include "runtime/batching/batching_options.hpp"
#include "runtime/batching/reorder_buffer.hpp"

using namespace troupe;

namespace {

steady_time at(int64_t us) { return steady_time{} + microseconds{us}; }

pending_request req(uint64_t id, int64_t rows = 1, uint32_t priority = 0) {
  pending_request r;
  r.id = id;
  r.rows = rows;
  r.priority = priority;
  return r;
}

struct fixture {
  request_queue queue;
  batch_former former;
  credit_pool credits;

  fixture(int64_t max_batch, std::vector<int64_t> preferred, int64_t delay_us,
          std::vector<int64_t> allowed = {}, credit_pool pool = credit_pool(1, 100))
      : queue(*request_queue::create({0, 0, {}, {}, microseconds{delay_us}, max_batch})),
        former(*batch_former::create({max_batch, std::move(preferred), std::move(allowed)})),
        credits(std::move(pool)) {}

  void admit(uint64_t id, int64_t rows, int64_t t) {
    REQUIRE(queue.admit(req(id, rows), at(t)).is_ok());
  }
  std::optional<batch_plan> form(int64_t t) { return former.form(queue, at(t), credits); }
};

} // namespace

TEST_CASE("a preferred batch size reached goes at once, the largest preferred prefix first") {
  fixture f(8, {2, 4}, 1000);
  f.admit(1, 1, 0);
  CHECK(!f.form(0));
  for (uint64_t id = 2; id <= 5; ++id)
    f.admit(id, 1, 1);
  auto b = f.form(1);
  REQUIRE(b);
  CHECK(b->trigger == batch_trigger::preferred);
  CHECK(b->ids == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(b->rows == 4);
  CHECK(b->padded_rows == 4);
  CHECK(f.queue.size() == 1);
  CHECK(!f.form(2)); // one row left: waits for the delay
}

TEST_CASE("a batch goes at once at max_batch_size or when the next request does not fit") {
  fixture f(4, {}, 1000);
  f.admit(1, 2, 0);
  CHECK(!f.form(0));
  f.admit(2, 2, 1);
  auto b = f.form(1);
  REQUIRE(b);
  CHECK(b->trigger == batch_trigger::full);
  CHECK(b->rows == 4);
  // 3 + 3 > 4: requests are never split, and the first 3 cannot grow, so it goes.
  f.admit(3, 3, 2);
  f.admit(4, 3, 2);
  auto c = f.form(2);
  REQUIRE(c);
  CHECK(c->ids == std::vector<uint64_t>{3});
  CHECK(c->trigger == batch_trigger::full);
  CHECK(!f.form(2));
  CHECK(f.queue.find(4)->rows == 3);
}

TEST_CASE(
    "without a preferred size the batch goes exactly when the oldest waited max_queue_delay") {
  fixture f(8, {4}, 100);
  f.admit(1, 1, 10);
  f.admit(2, 2, 50);
  CHECK(*f.queue.next_deadline() == at(110));
  CHECK(!f.form(109));
  auto b = f.form(110);
  REQUIRE(b);
  CHECK(b->trigger == batch_trigger::delay);
  CHECK(b->ids == std::vector<uint64_t>{1, 2});
  CHECK(b->rows == 3);
  CHECK(f.queue.empty());
}

TEST_CASE("zero max_queue_delay sends whatever is queued at once") {
  fixture f(8, {}, 0);
  f.admit(1, 3, 5);
  auto b = f.form(5);
  REQUIRE(b);
  CHECK(b->rows == 3);
  CHECK(b->trigger == batch_trigger::delay);
}

TEST_CASE("allowed_batch_sizes pad a batch up to the next allowed size") {
  fixture f(8, {}, 0, {2, 4, 8});
  f.admit(1, 3, 0);
  CHECK(f.form(0)->padded_rows == 4);
  f.admit(2, 5, 1);
  CHECK(f.form(1)->padded_rows == 8);
  f.admit(3, 1, 2);
  CHECK(f.form(2)->padded_rows == 2);
  f.admit(4, 8, 3);
  auto b = f.form(3);
  CHECK(b->rows == 8);
  CHECK(b->padded_rows == 8);
}

TEST_CASE("no credit, no batch; a released credit lets the waiting batch go") {
  fixture f(2, {}, 0, {}, credit_pool(1, 1));
  f.admit(1, 2, 0);
  f.admit(2, 2, 0);
  auto b = f.form(0);
  REQUIRE(b);
  CHECK(b->replica == 0);
  CHECK(!f.form(1));
  CHECK(f.credits.total_available() == 0);
  CHECK(f.queue.size() == 1);
  // The actor arms no timer now: only a release can start the next batch.
  CHECK(*f.queue.next_deadline() == at(0));
  CHECK(!f.queue.next_deadline(f.credits.any_available()));
  CHECK(f.credits.release(0));
  auto c = f.form(1);
  REQUIRE(c);
  CHECK(c->ids == std::vector<uint64_t>{2});
}

TEST_CASE("credit_pool hands out the replica with the most free credits") {
  credit_pool pool(2, 2);
  CHECK(*pool.acquire() == 0);
  CHECK(*pool.acquire() == 1);
  CHECK(*pool.acquire() == 0);
  CHECK(*pool.acquire() == 1);
  CHECK(!pool.acquire());
  CHECK(pool.release(1));
  CHECK(*pool.acquire() == 1);
  const size_t r = pool.add_replica(3);
  CHECK(r == 2);
  CHECK(*pool.acquire() == 2);
  pool.retire(2);
  CHECK(pool.available(2) == 0);
  CHECK(!pool.acquire());
  CHECK(pool.release(2));
  CHECK(!pool.release(2)); // nothing out
  CHECK(pool.in_flight(0) == 2);
}

TEST_CASE("batch_former skips REJECT requests whose deadline passed, leaving them to expire") {
  request_queue_options o;
  o.default_policy.default_timeout = microseconds{10};
  o.max_rows = 8;
  auto q = *request_queue::create(o);
  auto former = *batch_former::create({8, {}, {}});
  credit_pool credits(1, 1);
  REQUIRE(q.admit(req(1), at(0)).is_ok());
  REQUIRE(q.admit(req(2), at(5)).is_ok());
  auto b = former.form(q, at(10), credits);
  REQUIRE(b);
  CHECK(b->ids == std::vector<uint64_t>{2});
  CHECK(q.expire(at(10)) == std::vector<uint64_t>{1});
}

TEST_CASE("a model without a batch dimension runs each request alone") {
  fixture f(0, {}, 500);
  f.admit(1, 1, 0);
  f.admit(2, 1, 0);
  CHECK(f.form(0)->ids == std::vector<uint64_t>{1});
  CHECK(f.form(0)->ids == std::vector<uint64_t>{2});
}

TEST_CASE("the adaptive cap limits batch rows; a request above the cap still goes alone") {
  fixture f(8, {}, 0);
  f.former.set_cap(2);
  for (uint64_t id = 1; id <= 3; ++id)
    f.admit(id, 1, 0);
  f.admit(4, 5, 0);
  CHECK(f.form(0)->ids == std::vector<uint64_t>{1, 2});
  CHECK(f.form(0)->ids == std::vector<uint64_t>{3});
  CHECK(f.form(0)->ids == std::vector<uint64_t>{4});
  f.former.set_cap(100);
  CHECK(f.former.cap() == 8);
}

TEST_CASE("batch_former::create rejects preferred or allowed sizes it cannot honour") {
  CHECK(batch_former::create({8, {16}, {}}).error().code() == errc::invalid_argument);
  CHECK(!batch_former::create({8, {0}, {}}));
  CHECK(!batch_former::create({0, {1}, {}}));
  auto padded = batch_former::create({8, {}, {2, 4}});
  REQUIRE(!padded);
  CHECK(padded.error().message().find("max_batch_size 8") != std::string::npos);
  CHECK(batch_former::create({8, {4, 2, 4}, {8, 2}}));
}

TEST_CASE("reorder_buffer releases completions in arrival order, skipping dropped requests") {
  reorder_buffer buf;
  for (uint64_t id : {10, 11, 12, 13})
    REQUIRE(buf.expect(id).is_ok());
  CHECK(buf.expect(11).code() == errc::invalid_argument);
  CHECK(buf.complete(12).empty());
  CHECK(buf.drop(10).empty()); // 11 still running
  CHECK(buf.complete(11) == std::vector<uint64_t>{11, 12});
  CHECK(buf.complete(11).empty()); // already released
  CHECK(buf.complete(99).empty());
  CHECK(buf.complete(13) == std::vector<uint64_t>{13});
  CHECK(buf.empty());
}

TEST_CASE("aimd_batch_cap grows by one while the SLO holds and shrinks ~10% on a miss") {
  auto cap = *aimd_batch_cap::create({microseconds{100}, 1, 32, 20, 1, 0.9});
  cap.observe(20, microseconds{90});
  CHECK(cap.cap() == 21);
  cap.observe(5, microseconds{10}); // an unsaturated batch says nothing about a larger cap
  CHECK(cap.cap() == 21);
  cap.observe(21, microseconds{150});
  CHECK(cap.cap() == 18); // floor(21 * 0.9)
  cap.observe(18, microseconds{101});
  CHECK(cap.cap() == 16);
  auto small = *aimd_batch_cap::create({microseconds{100}, 1, 32, 2, 1, 0.9});
  small.observe(2, microseconds{200});
  CHECK(small.cap() == 1); // at least one less
  small.observe(1, microseconds{200});
  CHECK(small.cap() == 1); // never below min_cap
}

TEST_CASE("aimd_batch_cap settles around the largest batch that meets the SLO") {
  // Synthetic device: a batch of b rows takes 10*b us; the SLO of 100 us allows 10 rows.
  auto cap = *aimd_batch_cap::create({microseconds{100}, 1, 64, 0, 1, 0.9});
  CHECK(cap.cap() == 1);
  std::vector<int64_t> seen;
  for (int step = 0; step < 200; ++step) {
    const int64_t b = cap.cap();
    cap.observe(b, microseconds{10 * b});
    if (step >= 20)
      seen.push_back(cap.cap());
  }
  CHECK(*std::min_element(seen.begin(), seen.end()) == 9);
  CHECK(*std::max_element(seen.begin(), seen.end()) == 11);
}

TEST_CASE("aimd_batch_cap::create rejects an SLO of zero and bad bounds") {
  CHECK(!aimd_batch_cap::create({microseconds{0}, 1, 8, 0, 1, 0.9}));
  CHECK(!aimd_batch_cap::create({microseconds{10}, 4, 2, 0, 1, 0.9}));
  CHECK(!aimd_batch_cap::create({microseconds{10}, 1, 8, 0, 1, 1.0}));
  CHECK(!aimd_batch_cap::create({microseconds{10}, 1, 8, 9, 1, 0.9}));
}

TEST_CASE("queue and former options built from a config batch as the config says") {
  auto config = parse_model_config("max_batch_size: 8\n"
                                   "allowed_batch_sizes: [4, 8]\n"
                                   "dynamic_batching:\n"
                                   "  preferred_batch_size: [4]\n"
                                   "  max_queue_delay_microseconds: 100\n"
                                   "  priority_levels: 2\n"
                                   "  priority_queue_policy: {1: {max_queue_size: 1}}\n",
                                   "m/config.yaml");
  REQUIRE(config.has_value());
  auto q = request_queue::create(queue_options_from(*config));
  auto former = batch_former::create(former_options_from(*config));
  REQUIRE(q.has_value());
  REQUIRE(former.has_value());
  credit_pool credits(1, config->max_batches_in_flight);
  CHECK(q->levels() == 2);
  CHECK(q->admit(req(1, 1, 1), at(0)).is_ok());
  CHECK(q->admit(req(2, 1, 1), at(0)).code() == errc::resource_exhausted);
  CHECK(q->admit(req(3, 9), at(0)).code() == errc::invalid_argument);
  CHECK(q->admit(req(4, 2), at(0)).is_ok()); // lowest level by default
  CHECK(!former->form(*q, at(99), credits));
  auto b = former->form(*q, at(100), credits);
  REQUIRE(b);
  CHECK(b->ids == std::vector<uint64_t>{1, 4});
  CHECK(b->padded_rows == 4);
}

TEST_CASE("without a dynamic_batching block requests queue but are never combined") {
  auto config = parse_model_config("max_batch_size: 8\n", "m/config.yaml");
  REQUIRE(config.has_value());
  auto q = *request_queue::create(queue_options_from(*config));
  auto former = *batch_former::create(former_options_from(*config));
  credit_pool credits(1, 2);
  REQUIRE(q.admit(req(1, 3), at(0)).is_ok());
  REQUIRE(q.admit(req(2, 3), at(0)).is_ok());
  CHECK(former.form(q, at(0), credits)->ids == std::vector<uint64_t>{1});
  CHECK(former.form(q, at(0), credits)->ids == std::vector<uint64_t>{2});
}
