// results: what a load run measured (per phase and per second) and the recorder that
// collects it from reply callbacks on any thread.
#include "runtime/load/results.hpp"

#include <algorithm>
#include <cmath>

namespace troupe::load {

uint64_t phase_result::error_count() const {
  uint64_t n = 0;
  for (const auto& [label, count] : errors)
    n += count;
  return n;
}

void recorder::begin_phase(std::string name, std::string arrival, double start_s, double slo_ms) {
  std::lock_guard lock{mutex_};
  phase_result p;
  p.name = std::move(name);
  p.arrival = std::move(arrival);
  p.start_s = start_s;
  p.end_s = start_s;
  p.slo_ms = slo_ms;
  phases_.push_back(std::move(p));
}

void recorder::end_phase(size_t phase, double end_s) {
  std::lock_guard lock{mutex_};
  phases_.at(phase).end_s = std::max(phases_.at(phase).start_s, end_s);
}

recorder::open_second& recorder::second_at(double t_s) {
  // A reply for an already sealed second is counted in the first open one.
  const auto s = std::max(sealed_until_, static_cast<int64_t>(std::floor(std::max(t_s, 0.0))));
  return open_[s];
}

size_t recorder::phase_at(double t_s) const {
  size_t i = 0;
  for (size_t k = 0; k < phases_.size(); ++k)
    if (phases_[k].start_s <= t_s + 1e-9)
      i = k;
  return i;
}

void recorder::sent(size_t phase, double scheduled_s, double sent_s) {
  std::lock_guard lock{mutex_};
  const double lag_ms = std::max(0.0, (sent_s - scheduled_s) * 1e3);
  auto& p = phases_.at(phase);
  ++p.sent;
  p.lag_max_ms = std::max(p.lag_max_ms, lag_ms);
  if (lag_ms > phase_result::late_threshold_ms)
    ++p.late_sends;
  auto& sec = second_at(sent_s);
  ++sec.sent;
  sec.lag_max_ms = std::max(sec.lag_max_ms, lag_ms);
}

void recorder::finished(const outcome& o) {
  std::lock_guard lock{mutex_};
  auto& p = phases_.at(o.phase);
  auto& sec = second_at(o.done_s);
  p.last_reply_s = std::max(p.last_reply_s, o.done_s);
  if (o.status == "ok") {
    const auto us = static_cast<int64_t>(std::llround((o.done_s - o.scheduled_s) * 1e6));
    ++p.ok;
    p.latency.record(us);
    if (us <= static_cast<int64_t>(std::llround(p.slo_ms * 1e3)))
      ++p.within_slo;
    if (o.correct) {
      ++p.labelled;
      p.correct += *o.correct ? 1 : 0;
    }
    ++sec.ok;
    sec.latency.record(us);
  } else {
    ++p.errors[o.status];
    ++sec.errors;
  }
}

std::vector<second_row> recorder::seal_until(double now_s) {
  std::lock_guard lock{mutex_};
  const auto limit = static_cast<int64_t>(std::floor(now_s + 1e-9));
  std::vector<second_row> out;
  for (int64_t s = sealed_until_; s < limit; ++s) {
    second_row row;
    row.second = s;
    // The phase running in the middle of the second: a phase that starts a few µs after the
    // boundary (it waited for its predecessor) still owns the second.
    row.phase = phase_at(static_cast<double>(s) + 0.5);
    if (auto it = open_.find(s); it != open_.end()) {
      const auto& o = it->second;
      row.sent = o.sent;
      row.ok = o.ok;
      row.errors = o.errors;
      row.lag_max_ms = o.lag_max_ms;
      row.p50_ms = o.latency.percentile(0.5) / 1000.0;
      row.p99_ms = o.latency.percentile(0.99) / 1000.0;
      open_.erase(it); // per-second histograms are dropped once summarized: soaks stay small
    }
    out.push_back(row);
    sealed_.push_back(row);
  }
  sealed_until_ = std::max(sealed_until_, limit);
  return out;
}

run_result recorder::finish(double end_s, uint64_t unanswered) {
  seal_until(std::ceil(end_s - 1e-9));
  std::lock_guard lock{mutex_};
  run_result r;
  r.duration_s = end_s;
  r.phases = phases_;
  r.series = sealed_;
  r.unanswered = unanswered;
  return r;
}

} // namespace troupe::load
