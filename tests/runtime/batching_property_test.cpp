// Randomized schedules over simulated time: the queue and batch former lose no request.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "runtime/batching/batch_former.hpp"

using namespace troupe;

namespace {

steady_time at(int64_t us) { return steady_time{} + microseconds{us}; }

struct sim_result {
  size_t admitted = 0, batched = 0, timed_out = 0, cancelled = 0, refused_full = 0;
};

// Plays the batcher actor: one timer at next_deadline, expire then form on every event.
sim_result simulate(uint32_t seed, bool ample_credits) {
  std::mt19937 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const int64_t max_batch = 8;
  request_queue_options qo;
  qo.priority_levels = static_cast<uint32_t>(pick(0, 3));
  qo.default_priority_level =
      qo.priority_levels == 0 ? 0 : static_cast<uint32_t>(pick(1, qo.priority_levels));
  qo.max_queue_delay = microseconds{std::vector<int64_t>{0, 30, 100}[pick(0, 2)]};
  qo.max_rows = max_batch;
  for (uint32_t l = 1; l <= std::max<uint32_t>(1, qo.priority_levels); ++l) {
    queue_policy p;
    p.max_queue_size = std::vector<int64_t>{0, 3, 10}[pick(0, 2)];
    p.default_timeout = microseconds{std::vector<int64_t>{0, 50, 200}[pick(0, 2)]};
    p.allow_timeout_override = pick(0, 1) == 1;
    p.action = pick(0, 1) == 1 ? timeout_action::delay : timeout_action::reject;
    qo.level_policies[l] = p;
  }
  auto queue = *request_queue::create(qo);
  batch_former_options fo;
  fo.max_batch_size = max_batch;
  if (pick(0, 1))
    fo.preferred_batch_sizes = {4, 6};
  if (pick(0, 1))
    fo.allowed_batch_sizes = {2, 4, 8};
  auto former = *batch_former::create(fo);
  credit_pool credits = ample_credits ? credit_pool(1, 100000)
                                      : credit_pool(static_cast<size_t>(pick(1, 2)), pick(1, 2));

  sim_result res;
  std::map<uint64_t, pending_request> live; // admitted, not yet answered
  std::set<uint64_t> done;                  // answered: batched, timed out or cancelled
  std::vector<std::pair<size_t, std::vector<uint64_t>>> in_flight; // replica, ids
  int64_t now = 0;
  uint64_t next_id = 1;

  auto answer = [&](uint64_t id) {
    CHECK(live.erase(id) == 1);
    CHECK(done.insert(id).second);
  };
  auto process = [&] {
    for (uint64_t id : queue.expire(at(now))) {
      REQUIRE(live.count(id) == 1);
      CHECK(live[id].deadline == at(now)); // answered at its deadline, not later
      ++res.timed_out;
      answer(id);
    }
    while (auto plan = former.form(queue, at(now), credits)) {
      int64_t rows = 0;
      steady_time oldest = at(now);
      std::tuple<bool, uint32_t, uint64_t> previous{false, 0, 0};
      for (uint64_t id : plan->ids) {
        REQUIRE(live.count(id) == 1);
        const auto& r = live[id];
        const bool delayed = r.deadline && *r.deadline <= at(now);
        if (delayed)
          CHECK(queue.policy_of(r.level).action == timeout_action::delay);
        std::tuple<bool, uint32_t, uint64_t> key{delayed, r.level, r.sequence};
        INFO("previous ", std::get<0>(previous), " ", std::get<1>(previous), " ",
             std::get<2>(previous), " key ", delayed, " ", r.level, " ", r.sequence, " now ", now,
             " trigger ", int(plan->trigger));
        CHECK(previous <= key); // serving order: unexpired first, then level, then arrival
        previous = key;
        rows += r.rows;
        oldest = std::min(oldest, r.enqueued);
        if (ample_credits)
          CHECK(at(now) - r.enqueued <= qo.max_queue_delay);
      }
      CHECK(rows == plan->rows);
      CHECK(rows <= max_batch);
      CHECK(plan->padded_rows == former.padded(rows));
      if (plan->trigger == batch_trigger::delay)
        CHECK(oldest + qo.max_queue_delay <= at(now));
      if (plan->trigger == batch_trigger::preferred)
        CHECK(std::count(fo.preferred_batch_sizes.begin(), fo.preferred_batch_sizes.end(), rows) ==
              1);
      for (uint64_t id : plan->ids) {
        ++res.batched;
        answer(id);
      }
      in_flight.emplace_back(plan->replica, plan->ids);
    }
  };

  for (int step = 0; step < 400; ++step) {
    const int64_t event_time = now + pick(0, 40);
    const auto wake = queue.next_deadline(credits.any_available());
    if (wake)
      REQUIRE(*wake > at(now)); // the timer never spins
    if (wake && *wake <= at(event_time)) {
      now = std::chrono::duration_cast<microseconds>(*wake - steady_time{}).count();
      process();
      continue;
    }
    now = event_time;
    const int64_t what = pick(0, 99);
    if (what < 65) {
      pending_request r;
      r.id = next_id++;
      r.priority = static_cast<uint32_t>(pick(0, std::max<uint32_t>(1, qo.priority_levels)));
      r.rows = pick(1, max_batch);
      if (pick(0, 2) == 0)
        r.timeout = microseconds{pick(1, 150)};
      const size_t level_size_before =
          queue.size_of_level(qo.priority_levels == 0 ? 1
                              : r.priority == 0       ? qo.default_priority_level
                                                      : r.priority);
      auto st = queue.admit(r, at(now));
      if (st.is_ok()) {
        ++res.admitted;
        live[r.id] = *queue.find(r.id);
      } else {
        CHECK(st.code() == errc::resource_exhausted);
        const auto level = qo.priority_levels == 0 ? 1u
                           : r.priority == 0       ? qo.default_priority_level
                                                   : r.priority;
        CHECK(static_cast<int64_t>(level_size_before) == queue.policy_of(level).max_queue_size);
        ++res.refused_full;
      }
    } else if (what < 90 && !in_flight.empty()) {
      const size_t i = static_cast<size_t>(pick(0, static_cast<int64_t>(in_flight.size()) - 1));
      CHECK(credits.release(in_flight[i].first));
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (what < 95 && !live.empty()) {
      auto it = live.begin();
      std::advance(it, pick(0, static_cast<int64_t>(live.size()) - 1));
      const uint64_t id = it->first;
      CHECK(queue.cancel(id));
      ++res.cancelled;
      answer(id);
    }
    process();
  }

  // Drain: finish every batch and follow the timer until the queue is empty.
  for (int guard = 0; guard < 10000; ++guard) {
    for (auto& [replica, ids] : in_flight)
      CHECK(credits.release(replica));
    in_flight.clear();
    process(); // the actor forms on every release
    if (queue.empty())
      break;
    if (!in_flight.empty())
      continue;
    const auto wake = queue.next_deadline(credits.any_available());
    REQUIRE(wake);
    REQUIRE(*wake > at(now));
    now = std::chrono::duration_cast<microseconds>(*wake - steady_time{}).count();
  }
  CHECK(queue.empty());
  CHECK(live.empty());
  CHECK(done.size() == res.admitted);
  CHECK(res.batched + res.timed_out + res.cancelled == res.admitted);
  return res;
}

} // namespace

TEST_CASE("random schedules: every admitted request ends exactly once in a batch, a timeout or a "
          "cancel") {
  sim_result total;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    CAPTURE(seed);
    auto r = simulate(seed, false);
    total.admitted += r.admitted;
    total.batched += r.batched;
    total.timed_out += r.timed_out;
    total.refused_full += r.refused_full;
  }
  // The schedules exercise every outcome.
  CHECK(total.batched > 1000);
  CHECK(total.timed_out > 100);
  CHECK(total.refused_full > 100);
}

TEST_CASE("random schedules with free credits: no request waits longer than max_queue_delay") {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    CAPTURE(seed);
    auto r = simulate(seed, true);
    CHECK(r.admitted == r.batched + r.timed_out + r.cancelled);
  }
}
