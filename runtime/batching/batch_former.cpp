// batch_former: decides when a batch goes and which queued requests it holds.
#include "runtime/batching/batch_former.hpp"

#include <algorithm>

namespace troupe {

namespace {

status check_sizes(std::vector<int64_t>& sizes, int64_t max_batch_size, const char* what) {
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  for (int64_t s : sizes) {
    if (s < 1)
      return make_error(errc::invalid_argument, "{} holds {}, expected sizes >= 1", what, s);
    if (max_batch_size == 0)
      return make_error(errc::invalid_argument, "{} needs max_batch_size > 0", what);
    if (s > max_batch_size)
      return make_error(errc::invalid_argument, "{} holds {}, more than max_batch_size {}", what, s,
                        max_batch_size);
  }
  return {};
}

} // namespace

expected<batch_former> batch_former::create(batch_former_options options) {
  if (options.max_batch_size < 0)
    return make_error(errc::invalid_argument, "max_batch_size is {}, expected >= 0",
                      options.max_batch_size);
  TROUPE_TRY_STATUS(
      check_sizes(options.preferred_batch_sizes, options.max_batch_size, "preferred_batch_size"));
  TROUPE_TRY_STATUS(
      check_sizes(options.allowed_batch_sizes, options.max_batch_size, "allowed_batch_sizes"));
  if (!options.allowed_batch_sizes.empty() &&
      options.allowed_batch_sizes.back() != options.max_batch_size)
    return make_error(errc::invalid_argument,
                      "allowed_batch_sizes must end with max_batch_size {} so every batch can be "
                      "padded, got largest {}",
                      options.max_batch_size, options.allowed_batch_sizes.back());
  return batch_former{std::move(options)};
}

batch_former::batch_former(batch_former_options options)
    : options_(std::move(options)), cap_(options_.max_batch_size) {}

void batch_former::set_cap(int64_t cap) {
  cap_ = std::clamp<int64_t>(cap, std::min<int64_t>(1, options_.max_batch_size),
                             options_.max_batch_size);
}

bool batch_former::is_preferred(int64_t rows) const {
  return std::binary_search(options_.preferred_batch_sizes.begin(),
                            options_.preferred_batch_sizes.end(), rows);
}

int64_t batch_former::padded(int64_t rows) const {
  const auto& allowed = options_.allowed_batch_sizes;
  auto it = std::lower_bound(allowed.begin(), allowed.end(), rows);
  return it == allowed.end() ? rows : *it;
}

std::optional<batch_plan> batch_former::form(request_queue& queue, steady_time now,
                                             credit_pool& credits) {
  queue.apply_delays(now);
  if (queue.empty() || !credits.any_available())
    return std::nullopt;

  const bool unbatched = options_.max_batch_size == 0 || !options_.combine_requests;
  batch_plan plan;
  bool full = false;
  size_t preferred_count = 0;
  int64_t preferred_rows = 0;
  std::optional<steady_time> oldest;
  const std::vector<int64_t>* item_shape = nullptr; // the batch's, from its first request
  queue.for_each_in_order([&](const pending_request& r) {
    if (queue.timed_out(r, now))
      return true;
    // A request of another item shape cannot share the batch's tensors; it closes the batch
    // (taking it out of order would starve it behind a stream of the other shape).
    if (!plan.ids.empty() &&
        (unbatched || plan.rows + r.rows > cap_ || r.item_shape != *item_shape)) {
      full = true; // the batch cannot grow: waiting gains nothing
      return false;
    }
    if (plan.ids.empty())
      item_shape = &r.item_shape;
    plan.ids.push_back(r.id);
    plan.rows += r.rows;
    if (!oldest || r.enqueued < *oldest)
      oldest = r.enqueued;
    if (is_preferred(plan.rows)) {
      preferred_count = plan.ids.size();
      preferred_rows = plan.rows;
    }
    if (unbatched || plan.rows >= cap_) {
      full = true;
      return false;
    }
    return true;
  });
  if (plan.ids.empty())
    return std::nullopt; // only timed-out requests; expire() answers them

  if (full) {
    plan.trigger = batch_trigger::full;
  } else if (preferred_count > 0) {
    plan.trigger = batch_trigger::preferred;
    plan.ids.resize(preferred_count);
    plan.rows = preferred_rows;
  } else if (now >= *oldest + queue.max_queue_delay()) {
    plan.trigger = batch_trigger::delay;
  } else {
    return std::nullopt;
  }

  plan.replica = *credits.acquire();
  for (uint64_t id : plan.ids)
    queue.remove(id);
  plan.padded_rows = padded(plan.rows);
  return plan;
}

} // namespace troupe
