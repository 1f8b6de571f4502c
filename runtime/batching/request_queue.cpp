// request_queue: per-priority-level queues of pending requests with Triton's queue policy.
#include "runtime/batching/request_queue.hpp"

#include <algorithm>

namespace troupe {

namespace {

status check_policy(const queue_policy& p, const std::string& where) {
  if (p.max_queue_size < 0)
    return make_error(errc::invalid_argument, "{}: max_queue_size is {}, expected >= 0", where,
                      p.max_queue_size);
  if (p.default_timeout.count() < 0)
    return make_error(errc::invalid_argument, "{}: default timeout is {} us, expected >= 0", where,
                      p.default_timeout.count());
  return {};
}

} // namespace

expected<request_queue> request_queue::create(request_queue_options options) {
  if (options.priority_levels > max_priority_levels)
    return make_error(errc::invalid_argument, "priority_levels is {}, expected at most {}",
                      options.priority_levels, max_priority_levels);
  const uint32_t levels = std::max<uint32_t>(1, options.priority_levels);
  if (options.default_priority_level > options.priority_levels)
    return make_error(errc::invalid_argument,
                      "default_priority_level {} is outside the levels 1..{}",
                      options.default_priority_level, options.priority_levels);
  TROUPE_TRY_STATUS(check_policy(options.default_policy, "default queue policy"));
  for (const auto& [level, policy] : options.level_policies) {
    if (level < 1 || level > levels)
      return make_error(errc::invalid_argument,
                        "queue policy for priority level {} is outside the levels 1..{}", level,
                        levels);
    TROUPE_TRY_STATUS(check_policy(policy, fmt::format("queue policy of level {}", level)));
  }
  if (options.max_queue_delay.count() < 0)
    return make_error(errc::invalid_argument, "max_queue_delay is {} us, expected >= 0",
                      options.max_queue_delay.count());
  if (options.max_rows < 0)
    return make_error(errc::invalid_argument, "max_rows is {}, expected >= 0", options.max_rows);
  return request_queue{std::move(options)};
}

request_queue::request_queue(request_queue_options options) : options_(std::move(options)) {
  const uint32_t levels = std::max<uint32_t>(1, options_.priority_levels);
  levels_.resize(levels);
  for (uint32_t l = 1; l <= levels; ++l) {
    auto it = options_.level_policies.find(l);
    levels_[l - 1].policy =
        it != options_.level_policies.end() ? it->second : options_.default_policy;
  }
}

status request_queue::admit(pending_request r, steady_time now) {
  if (r.rows < 1)
    return make_error(errc::invalid_argument, "request {} has {} rows, expected at least 1", r.id,
                      r.rows);
  if (options_.max_rows > 0 && r.rows > options_.max_rows)
    return make_error(errc::invalid_argument, "request {} has {} rows, more than max_batch_size {}",
                      r.id, r.rows, options_.max_rows);
  if (index_.count(r.id) != 0)
    return make_error(errc::invalid_argument, "request id {} is already queued", r.id);
  if (options_.priority_levels == 0) {
    r.level = 1;
  } else if (r.priority == 0) {
    r.level = options_.default_priority_level != 0 ? options_.default_priority_level
                                                   : options_.priority_levels;
  } else if (r.priority > options_.priority_levels) {
    return make_error(errc::invalid_argument,
                      "request {} has priority {}, expected 1..{} (or 0 for the default)", r.id,
                      r.priority, options_.priority_levels);
  } else {
    r.level = r.priority;
  }
  auto& level = levels_[r.level - 1];
  const auto& policy = level.policy;
  const size_t queued = level.waiting.size() + level.delayed.size();
  if (policy.max_queue_size > 0 && queued >= static_cast<size_t>(policy.max_queue_size))
    return make_error(errc::resource_exhausted,
                      "queue full: priority level {} holds {} requests (max_queue_size {})",
                      r.level, queued, policy.max_queue_size);
  if (r.timeout && r.timeout->count() < 0)
    return make_error(errc::invalid_argument, "request {} has a negative timeout", r.id);

  microseconds timeout = policy.default_timeout;
  if (policy.allow_timeout_override && r.timeout && r.timeout->count() > 0 &&
      (timeout.count() == 0 || *r.timeout < timeout))
    timeout = *r.timeout;
  r.enqueued = now;
  // A timeout past what the clock can count (INT64_MAX us, a client's "no limit") is no
  // deadline: `now + timeout` would wrap into the past and time the request out at once.
  const auto room = std::chrono::duration_cast<microseconds>(steady_time::max() - now);
  r.deadline = timeout.count() > 0 && timeout < room ? std::optional<steady_time>(now + timeout)
                                                     : std::nullopt;
  r.sequence = next_sequence_++;
  if (r.deadline) {
    auto& deadlines =
        policy.action == timeout_action::reject ? reject_deadlines_ : delay_deadlines_;
    deadlines.emplace(*r.deadline, r.id);
  }
  index_.emplace(r.id, location{r.level, false});
  level.waiting.push_back(std::move(r));
  return {};
}

std::deque<pending_request>& request_queue::part_of(const location& loc) {
  auto& level = levels_[loc.level - 1];
  return loc.delayed ? level.delayed : level.waiting;
}

std::optional<pending_request> request_queue::take(uint64_t id, const location& loc) {
  auto& part = part_of(loc);
  // Requests are almost always taken from the front, so the scan is short.
  auto it = std::find_if(part.begin(), part.end(), [&](const auto& r) { return r.id == id; });
  if (it == part.end())
    return std::nullopt;
  pending_request r = std::move(*it);
  part.erase(it);
  return r;
}

std::vector<uint64_t> request_queue::expire(steady_time now) {
  apply_delays(now);
  std::vector<uint64_t> expired;
  while (!reject_deadlines_.empty() && reject_deadlines_.begin()->first <= now) {
    const uint64_t id = reject_deadlines_.begin()->second;
    reject_deadlines_.erase(reject_deadlines_.begin());
    auto it = index_.find(id);
    take(id, it->second);
    index_.erase(it);
    expired.push_back(id);
  }
  return expired;
}

void request_queue::apply_delays(steady_time now) {
  while (!delay_deadlines_.empty() && delay_deadlines_.begin()->first <= now) {
    const uint64_t id = delay_deadlines_.begin()->second;
    delay_deadlines_.erase(delay_deadlines_.begin());
    move_to_delayed(id);
  }
}

void request_queue::move_to_delayed(uint64_t id) {
  auto& loc = index_.at(id);
  auto r = take(id, loc);
  loc.delayed = true;
  auto& delayed = part_of(loc);
  // Keep arrival order among delayed requests, whatever order their timeouts passed in.
  auto pos = std::upper_bound(delayed.begin(), delayed.end(), r->sequence,
                              [](uint64_t seq, const auto& q) { return seq < q.sequence; });
  delayed.insert(pos, std::move(*r));
}

std::optional<pending_request> request_queue::remove(uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end())
    return std::nullopt;
  auto r = take(id, it->second);
  if (r && r->deadline && !it->second.delayed) {
    auto& deadlines = levels_[r->level - 1].policy.action == timeout_action::reject
                          ? reject_deadlines_
                          : delay_deadlines_;
    deadlines.erase({*r->deadline, id});
  }
  index_.erase(it);
  return r;
}

std::optional<steady_time> request_queue::oldest_enqueued() const {
  std::optional<steady_time> oldest;
  for (const auto& level : levels_)
    for (const auto* part : {&level.waiting, &level.delayed})
      if (!part->empty() && (!oldest || part->front().enqueued < *oldest))
        oldest = part->front().enqueued;
  return oldest;
}

std::optional<steady_time> request_queue::next_deadline(bool include_batch_delay) const {
  std::optional<steady_time> next;
  auto consider = [&](steady_time t) {
    if (!next || t < *next)
      next = t;
  };
  if (!reject_deadlines_.empty())
    consider(reject_deadlines_.begin()->first);
  if (!delay_deadlines_.empty())
    consider(delay_deadlines_.begin()->first);
  if (include_batch_delay)
    if (auto oldest = oldest_enqueued())
      consider(*oldest + options_.max_queue_delay);
  return next;
}

bool request_queue::timed_out(const pending_request& r, steady_time now) const {
  return r.deadline && *r.deadline <= now &&
         levels_[r.level - 1].policy.action == timeout_action::reject;
}

const pending_request* request_queue::find(uint64_t id) const {
  auto it = index_.find(id);
  if (it == index_.end())
    return nullptr;
  const auto& level = levels_[it->second.level - 1];
  const auto& part = it->second.delayed ? level.delayed : level.waiting;
  for (const auto& r : part)
    if (r.id == id)
      return &r;
  return nullptr;
}

size_t request_queue::size_of_level(uint32_t level) const {
  if (level < 1 || level > levels_.size())
    return 0;
  return levels_[level - 1].waiting.size() + levels_[level - 1].delayed.size();
}

} // namespace troupe
