// Tests for request_queue: priority levels, queue policy, timeouts and the batcher's timer.
#include <doctest/doctest.h>

#include <limits>

#include "runtime/batching/request_queue.hpp"

using namespace troupe;

namespace {

steady_time at(int64_t us) { return steady_time{} + microseconds{us}; }

pending_request req(uint64_t id, uint32_t priority = 0, int64_t rows = 1,
                    std::optional<int64_t> timeout_us = std::nullopt) {
  pending_request r;
  r.id = id;
  r.priority = priority;
  r.rows = rows;
  if (timeout_us)
    r.timeout = microseconds{*timeout_us};
  return r;
}

std::vector<uint64_t> order_of(const request_queue& q) {
  std::vector<uint64_t> ids;
  q.for_each_in_order([&](const pending_request& r) {
    ids.push_back(r.id);
    return true;
  });
  return ids;
}

request_queue make(request_queue_options o) {
  auto q = request_queue::create(std::move(o));
  REQUIRE(q);
  return std::move(*q);
}

} // namespace

TEST_CASE("request_queue serves levels by strict priority and FIFO inside a level") {
  request_queue_options o;
  o.priority_levels = 3;
  o.default_priority_level = 2;
  auto q = make(o);
  CHECK(q.admit(req(1, 3), at(0)).is_ok());
  CHECK(q.admit(req(2, 1), at(1)).is_ok());
  CHECK(q.admit(req(3, 2), at(2)).is_ok());
  CHECK(q.admit(req(4, 1), at(3)).is_ok());
  CHECK(q.admit(req(5, 0), at(4)).is_ok()); // default level 2, behind 3
  CHECK(order_of(q) == std::vector<uint64_t>{2, 4, 3, 5, 1});
  CHECK(q.find(5)->level == 2);
  CHECK(q.size_of_level(1) == 2);
  CHECK(*q.oldest_enqueued() == at(0));
}

TEST_CASE("request_queue without priority levels ignores request priorities") {
  auto q = make({});
  CHECK(q.admit(req(1, 7), at(0)).is_ok());
  CHECK(q.admit(req(2, 1), at(1)).is_ok());
  CHECK(order_of(q) == std::vector<uint64_t>{1, 2});
}

TEST_CASE("request_queue rejects with queue full when a level holds max_queue_size requests") {
  request_queue_options o;
  o.priority_levels = 2;
  o.default_priority_level = 2;
  o.level_policies[1].max_queue_size = 2;
  auto q = make(o);
  CHECK(q.admit(req(1, 1), at(0)).is_ok());
  CHECK(q.admit(req(2, 1), at(0)).is_ok());
  auto full = q.admit(req(3, 1), at(0));
  CHECK(full.code() == errc::resource_exhausted);
  CHECK(full.message().find("queue full") != std::string::npos);
  CHECK(full.message().find("level 1") != std::string::npos);
  CHECK(q.admit(req(4, 2), at(0)).is_ok()); // level 2 is unbounded
  CHECK(q.cancel(1));
  CHECK(q.admit(req(3, 1), at(1)).is_ok()); // room again
  CHECK(q.size() == 3);
}

TEST_CASE("request_queue refuses bad rows, priorities and duplicate ids at admission") {
  request_queue_options o;
  o.priority_levels = 2;
  o.max_rows = 8;
  auto q = make(o);
  auto big = q.admit(req(1, 1, 9), at(0));
  CHECK(big.code() == errc::invalid_argument);
  CHECK(big.message().find("max_batch_size 8") != std::string::npos);
  CHECK(q.admit(req(2, 1, 0), at(0)).code() == errc::invalid_argument);
  CHECK(q.admit(req(3, 3), at(0)).code() == errc::invalid_argument);
  CHECK(q.admit(req(4, 1, 8), at(0)).is_ok());
  CHECK(q.admit(req(4, 1, 1), at(0)).code() == errc::invalid_argument);
  CHECK(q.admit(req(5, 1, 1, -3), at(0)).code() == errc::invalid_argument);
  CHECK(q.size() == 1);
}

TEST_CASE("request_queue::create rejects inconsistent levels and policies") {
  request_queue_options o;
  o.priority_levels = 2;
  o.default_priority_level = 3;
  CHECK(request_queue::create(o).error().code() == errc::invalid_argument);
  o.default_priority_level = 1;
  o.level_policies[3] = {};
  CHECK(!request_queue::create(o));
  o.level_policies.clear();
  o.default_policy.max_queue_size = -1;
  CHECK(!request_queue::create(o));
  o.default_policy.max_queue_size = 0;
  o.priority_levels = max_priority_levels + 1;
  CHECK(!request_queue::create(o));
}

TEST_CASE("REJECT timeout: expire returns the request exactly when now reaches its deadline") {
  request_queue_options o;
  o.default_policy.default_timeout = microseconds{100};
  o.max_queue_delay = microseconds{1000};
  auto q = make(o);
  REQUIRE(q.admit(req(1), at(10)).is_ok());
  REQUIRE(q.admit(req(2), at(20)).is_ok());
  CHECK(*q.find(1)->deadline == at(110));
  CHECK(*q.next_deadline() == at(110));
  CHECK(q.expire(at(109)).empty());
  CHECK(q.timed_out(*q.find(1), at(110)));
  CHECK(q.expire(at(110)) == std::vector<uint64_t>{1});
  CHECK(q.size() == 1);
  CHECK(*q.next_deadline() == at(120));
  CHECK(q.expire(at(500)) == std::vector<uint64_t>{2});
  CHECK(q.empty());
  CHECK(!q.next_deadline());
}

TEST_CASE("DELAY timeout moves expired requests behind every unexpired request of all levels") {
  request_queue_options o;
  o.priority_levels = 2;
  o.default_priority_level = 2;
  o.level_policies[1].default_timeout = microseconds{50};
  o.level_policies[1].action = timeout_action::delay;
  auto q = make(o);
  REQUIRE(q.admit(req(1, 1), at(0)).is_ok());
  REQUIRE(q.admit(req(2, 1), at(5)).is_ok());
  REQUIRE(q.admit(req(3, 2), at(10)).is_ok());
  REQUIRE(q.admit(req(4, 1), at(40)).is_ok());
  CHECK(order_of(q) == std::vector<uint64_t>{1, 2, 4, 3});
  CHECK(*q.next_deadline(false) == at(50));
  CHECK(q.expire(at(55)).empty()); // DELAY answers nobody
  CHECK(q.size() == 4);
  CHECK(order_of(q) == std::vector<uint64_t>{4, 3, 1, 2});
  CHECK(!q.timed_out(*q.find(1), at(55)));
  CHECK(q.expire(at(90)).empty());
  CHECK(order_of(q) == std::vector<uint64_t>{3, 1, 2, 4}); // delayed keep arrival order
  CHECK(!q.next_deadline(false));
}

TEST_CASE("a request timeout overrides the default only to shorten it, and only when allowed") {
  request_queue_options o;
  o.priority_levels = 3;
  o.default_priority_level = 1;
  o.level_policies[1] = {0, microseconds{100}, true, timeout_action::reject};
  o.level_policies[2] = {0, microseconds{100}, false, timeout_action::reject};
  o.level_policies[3] = {0, microseconds{0}, true, timeout_action::reject};
  auto q = make(o);
  REQUIRE(q.admit(req(1, 1, 1, 50), at(0)).is_ok());
  REQUIRE(q.admit(req(2, 1, 1, 200), at(0)).is_ok());
  REQUIRE(q.admit(req(3, 2, 1, 50), at(0)).is_ok());
  REQUIRE(q.admit(req(4, 3, 1, 30), at(0)).is_ok());
  REQUIRE(q.admit(req(5, 3), at(0)).is_ok());
  CHECK(*q.find(1)->deadline == at(50));  // shortened
  CHECK(*q.find(2)->deadline == at(100)); // not extended
  CHECK(*q.find(3)->deadline == at(100)); // override not allowed
  CHECK(*q.find(4)->deadline == at(30));  // shorter than "no timeout"
  CHECK(!q.find(5)->deadline);
}

TEST_CASE("next_deadline is the earlier of the first timeout and the oldest request's delay") {
  request_queue_options o;
  o.default_policy.default_timeout = microseconds{300};
  o.default_policy.allow_timeout_override = true;
  o.max_queue_delay = microseconds{100};
  auto q = make(o);
  CHECK(!q.next_deadline());
  REQUIRE(q.admit(req(1), at(20)).is_ok());
  CHECK(*q.next_deadline() == at(120));
  CHECK(*q.next_deadline(false) == at(320));
  REQUIRE(q.admit(req(2, 0, 1, 50), at(30)).is_ok());
  CHECK(*q.next_deadline() == at(80));
  CHECK(q.cancel(2));
  CHECK(!q.cancel(2));
  CHECK(*q.next_deadline() == at(120));
  CHECK(q.expire(at(80)).empty()); // the cancelled request is not reported
}

TEST_CASE("a timeout too long for the clock is no deadline, not one in the past") {
  request_queue_options o;
  o.default_policy.allow_timeout_override = true; // no default timeout: the request's counts
  auto q = make(o);
  CHECK(q.admit(req(1, 0, 1, std::numeric_limits<int64_t>::max()), at(5)).is_ok());
  CHECK(q.admit(req(2, 0, 1, 1000), at(5)).is_ok());
  CHECK_FALSE(q.find(1)->deadline);
  REQUIRE(q.find(2)->deadline);
  CHECK(*q.find(2)->deadline == at(1005));
  CHECK(q.expire(at(1005)) == std::vector<uint64_t>{2});
  CHECK(order_of(q) == std::vector<uint64_t>{1});
  request_queue_options d; // the same as a level's default timeout
  d.default_policy.default_timeout = microseconds{std::numeric_limits<int64_t>::max()};
  auto q2 = make(d);
  CHECK(q2.admit(req(3), at(5)).is_ok());
  CHECK_FALSE(q2.find(3)->deadline);
}
