// request_queue: per-priority-level queues of pending requests with Triton's queue policy.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/status.hpp"
#include "runtime/batching/queue_policy.hpp"

namespace troupe {

/// What the batcher keeps of a request while it waits; the tensors stay with the actor.
struct pending_request {
  uint64_t id = 0;
  uint32_t priority = 0; // 0 = the default level; 1 is the highest
  int64_t rows = 1;      // size of the batch dimension of the request's inputs
  /// Requests are batched only with requests whose item shape is equal (the rank and the
  /// non-batch dims of every input): empty for a model whose inputs fix those dims.
  std::vector<int64_t> item_shape;
  /// Timeout the client asked for; honoured only where the level allows an override, and
  /// only when it is shorter than the level's default.
  std::optional<microseconds> timeout;

  // Set by request_queue::admit.
  uint32_t level = 0; // resolved priority level, 1..levels
  steady_time enqueued{};
  std::optional<steady_time> deadline;
  uint64_t sequence = 0; // arrival order
};

struct request_queue_options {
  uint32_t priority_levels = 0;        // 0 = one level; request priorities are then ignored
  uint32_t default_priority_level = 0; // 0 = the lowest priority (priority_levels)
  queue_policy default_policy;
  std::map<uint32_t, queue_policy> level_policies; // overrides per level
  microseconds max_queue_delay{0}; // how long the oldest request may wait for a fuller batch
  int64_t max_rows = 0;            // larger requests are refused; 0 = no limit
};

/// The most priority levels a queue accepts (each level holds its own queues).
inline constexpr uint32_t max_priority_levels = 1000;

/// Serving order: levels 1..L strictly by priority, FIFO inside a level; requests whose
/// timeout passed under timeout_action DELAY come after every other request, again by level
/// and then arrival.
class request_queue {
public:
  /// An error when the options are inconsistent (a level out of range, negative limits).
  static expected<request_queue> create(request_queue_options options);

  /// Queues `request` at `now`: resolves its level and deadline. Errors: invalid_argument
  /// (rows < 1 or > max_rows, unknown priority, duplicate id), resource_exhausted (the
  /// level holds max_queue_size requests: "queue full").
  status admit(pending_request request, steady_time now);

  /// Removes every REJECT request whose deadline is <= now and returns their ids (by
  /// deadline); moves DELAY requests whose deadline passed behind the others.
  std::vector<uint64_t> expire(steady_time now);

  /// Only the DELAY part of expire(): reorders, answers nobody.
  void apply_delays(steady_time now);

  /// Removes a request (cancelled by its client, or taken into a batch).
  std::optional<pending_request> remove(uint64_t id);
  bool cancel(uint64_t id) { return remove(id).has_value(); }

  /// When the batcher must look again: the earliest deadline of a request that has not timed
  /// out, or the moment the oldest request has waited max_queue_delay (left out when
  /// `include_batch_delay` is false, e.g. while no credit is free and only a release can
  /// start a batch). The actor keeps exactly one timer, set to this.
  std::optional<steady_time> next_deadline(bool include_batch_delay = true) const;

  /// Enqueue time of the oldest request still queued.
  std::optional<steady_time> oldest_enqueued() const;

  /// True when `r` is a REJECT request whose deadline is <= now (expire() will answer it).
  bool timed_out(const pending_request& r, steady_time now) const;

  /// Calls f(const pending_request&) in serving order until it returns false.
  template <class F> void for_each_in_order(F&& f) const {
    for (auto part : {&level_queues::waiting, &level_queues::delayed})
      for (const auto& level : levels_)
        for (const auto& r : level.*part)
          if (!f(r))
            return;
  }

  const pending_request* find(uint64_t id) const;
  size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }
  /// Requests queued at `level` (1-based), delayed ones included.
  size_t size_of_level(uint32_t level) const;
  uint32_t levels() const { return static_cast<uint32_t>(levels_.size()); }
  const queue_policy& policy_of(uint32_t level) const { return levels_.at(level - 1).policy; }
  microseconds max_queue_delay() const { return options_.max_queue_delay; }

private:
  struct level_queues {
    queue_policy policy;
    std::deque<pending_request> waiting;
    std::deque<pending_request> delayed;
  };
  struct location {
    uint32_t level;
    bool delayed;
  };
  using deadline_set = std::set<std::pair<steady_time, uint64_t>>;

  explicit request_queue(request_queue_options options);
  std::deque<pending_request>& part_of(const location& loc);
  std::optional<pending_request> take(uint64_t id, const location& loc);
  void move_to_delayed(uint64_t id);

  request_queue_options options_;
  std::vector<level_queues> levels_;
  std::unordered_map<uint64_t, location> index_;
  deadline_set reject_deadlines_; // waiting requests with a deadline, REJECT levels
  deadline_set delay_deadlines_;  // waiting requests with a deadline, DELAY levels
  uint64_t next_sequence_ = 0;
};

} // namespace troupe
