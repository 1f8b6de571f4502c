// aimd_batch_cap: Clipper's adaptive batch-size cap (additive increase, multiplicative decrease).
#include "runtime/batching/aimd_batch_cap.hpp"

#include <algorithm>
#include <cmath>

namespace troupe {

expected<aimd_batch_cap> aimd_batch_cap::create(aimd_options o) {
  if (o.slo.count() <= 0)
    return make_error(errc::invalid_argument, "adaptive batching needs an SLO > 0 us");
  if (o.min_cap < 1 || o.max_cap < o.min_cap)
    return make_error(errc::invalid_argument, "cap bounds {}..{} are not 1 <= min <= max",
                      o.min_cap, o.max_cap);
  if (o.initial_cap != 0 && (o.initial_cap < o.min_cap || o.initial_cap > o.max_cap))
    return make_error(errc::invalid_argument, "initial cap {} is outside {}..{}", o.initial_cap,
                      o.min_cap, o.max_cap);
  if (o.additive_step < 1)
    return make_error(errc::invalid_argument, "additive step {} is not >= 1", o.additive_step);
  if (!(o.decrease_factor > 0.0 && o.decrease_factor < 1.0))
    return make_error(errc::invalid_argument, "decrease factor {} is not in (0, 1)",
                      o.decrease_factor);
  return aimd_batch_cap{o};
}

aimd_batch_cap::aimd_batch_cap(aimd_options options)
    : options_(options), cap_(options.initial_cap != 0 ? options.initial_cap : options.min_cap) {}

void aimd_batch_cap::observe(int64_t rows, microseconds latency) {
  if (latency > options_.slo) {
    const auto shrunk =
        static_cast<int64_t>(std::floor(static_cast<double>(cap_) * options_.decrease_factor));
    cap_ = std::max(options_.min_cap, std::min(shrunk, cap_ - 1));
  } else if (rows >= cap_) {
    cap_ = std::min(options_.max_cap, cap_ + options_.additive_step);
  }
}

} // namespace troupe
