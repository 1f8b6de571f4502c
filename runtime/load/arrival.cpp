// arrival: the scheduled send times of an open-loop phase, seeded and deterministic.
#include "runtime/load/arrival.hpp"

#include <cmath>

namespace troupe::load {

arrival_schedule::arrival_schedule(const arrival_spec& spec, std::optional<double> duration_s,
                                   std::optional<int64_t> requests, uint64_t seed)
    : spec_(spec), duration_(duration_s), requests_(requests), rng_(seed) {
  done_ = spec.kind == arrival_kind::closed;
}

double arrival_schedule::expected_count() const {
  if (spec_.kind == arrival_kind::closed)
    return 0;
  if (!duration_)
    return static_cast<double>(requests_.value_or(0));
  const double d = *duration_;
  double n = 0;
  switch (spec_.kind) {
    case arrival_kind::ramp: n = (spec_.rate + spec_.to_rate) / 2 * d; break;
    case arrival_kind::bursty: {
      const double period = spec_.on_s + spec_.off_s;
      const double active = std::floor(d / period) * spec_.on_s + std::min(std::fmod(d, period), spec_.on_s);
      n = spec_.rate * active;
      break;
    }
    default: n = spec_.rate * d; break;
  }
  return requests_ ? std::min(n, static_cast<double>(*requests_)) : n;
}

double arrival_schedule::next_unbounded() {
  const double rate = spec_.rate;
  switch (spec_.kind) {
    case arrival_kind::constant: {
      // Computed from the index, not accumulated, so long phases do not drift.
      return static_cast<double>(emitted_) / rate;
    }
    case arrival_kind::poisson: {
      clock_ += std::exponential_distribution<double>(rate)(rng_);
      return clock_;
    }
    case arrival_kind::gamma: {
      // Gamma gaps with mean 1/rate and CV c: shape 1/c², scale 1/(rate·shape).
      const double shape = 1.0 / (spec_.cv * spec_.cv);
      clock_ += std::gamma_distribution<double>(shape, 1.0 / (rate * shape))(rng_);
      return clock_;
    }
    case arrival_kind::bursty: {
      // Poisson in "active time", mapped onto on-windows separated by off-windows.
      clock_ += std::exponential_distribution<double>(rate)(rng_);
      const double period = spec_.on_s + spec_.off_s;
      const double windows = std::floor(clock_ / spec_.on_s);
      return windows * period + (clock_ - windows * spec_.on_s);
    }
    case arrival_kind::ramp: {
      // Inhomogeneous Poisson by time change: unit-rate arrivals s in Λ(t) = a·t + k·t²,
      // k = (b − a) / 2D, inverted in the cancellation-free form t = 2s / (a + √(a² + 4ks)).
      clock_ += std::exponential_distribution<double>(1.0)(rng_);
      const double a = spec_.rate;
      const double k = (spec_.to_rate - a) / (2 * *duration_);
      const double disc = a * a + 4 * k * clock_;
      if (disc < 0)
        return std::numeric_limits<double>::infinity(); // beyond the end of a falling ramp
      const double denom = a + std::sqrt(disc);
      return denom > 0 ? 2 * clock_ / denom : std::numeric_limits<double>::infinity();
    }
    case arrival_kind::closed: break;
  }
  return std::numeric_limits<double>::infinity();
}

std::optional<double> arrival_schedule::next() {
  if (done_ || (requests_ && emitted_ >= *requests_)) {
    done_ = true;
    return std::nullopt;
  }
  const double t = next_unbounded();
  if (!std::isfinite(t) || (duration_ && t >= *duration_)) {
    done_ = true;
    return std::nullopt;
  }
  ++emitted_;
  return t;
}

std::vector<double> arrival_schedule::all() {
  std::vector<double> out;
  while (auto t = next())
    out.push_back(*t);
  return out;
}

} // namespace troupe::load
