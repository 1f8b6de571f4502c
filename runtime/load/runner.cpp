// runner: drives a scenario's phases through a transport on schedule and records outcomes.
#include "runtime/load/runner.hpp"

#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <queue>
#include <thread>

#include "runtime/load/arrival.hpp"

namespace troupe::load {

namespace {

class steady_clock_impl final : public load_clock {
public:
  double now() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void sleep_until(double t) override {
    const double d = t - now();
    if (d > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(d));
  }
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, double t,
                  const std::function<bool()>& ready) override {
    const double d = t - now();
    if (d <= 0)
      return;
    cv.wait_for(lock, std::chrono::duration<double>(d), ready);
  }
};

std::string describe(const arrival_spec& a) {
  switch (a.kind) {
    case arrival_kind::constant: return fmt::format("constant {:g}/s", a.rate);
    case arrival_kind::poisson: return fmt::format("poisson {:g}/s", a.rate);
    case arrival_kind::bursty:
      return fmt::format("bursty {:g}/s on {:g}s off {:g}s", a.rate, a.on_s, a.off_s);
    case arrival_kind::gamma: return fmt::format("gamma {:g}/s cv {:g}", a.rate, a.cv);
    case arrival_kind::ramp: return fmt::format("ramp {:g}->{:g}/s", a.rate, a.to_rate);
    case arrival_kind::closed:
      return a.think_ms > 0 ? fmt::format("closed x{} think {:g} ms", a.concurrency, a.think_ms)
                            : fmt::format("closed x{}", a.concurrency);
  }
  return "?";
}

// Distinct, reproducible streams per phase and purpose from the one scenario seed.
uint64_t mix_seed(uint64_t seed, size_t phase, uint64_t purpose) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (phase + 1) + 0xBF58476D1CE4E5B9ull * purpose;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

} // namespace

std::unique_ptr<load_clock> make_steady_clock() { return std::make_unique<steady_clock_impl>(); }

struct load_runner::shared_state {
  std::mutex mutex;
  std::condition_variable cv;
  recorder rec;
  load_clock* clock = nullptr;
  double epoch = 0;
  bool closed = false;           // the run returned: late callbacks are ignored
  uint64_t in_flight = 0;
  std::map<size_t, uint64_t> in_flight_by_phase;
  std::vector<double> closed_loop_done; // reply times (run-relative) for the closed phase
  size_t closed_phase = std::numeric_limits<size_t>::max();
};

load_runner::load_runner(const scenario& s, transport& t, load_clock& clock,
                         runner_options options)
    : scenario_(s), transport_(t), clock_(clock), options_(std::move(options)),
      state_(std::make_shared<shared_state>()) {
  state_->clock = &clock_;
}

load_runner::~load_runner() {
  std::lock_guard lock{state_->mutex};
  state_->closed = true;
}

void load_runner::set_payload(const std::string& model, model_info info, payload_source source) {
  models_.insert_or_assign(model, model_slot{std::move(info), std::move(source)});
}

status load_runner::prepare() {
  size_t k = 0;
  for (const auto& name : scenario_.all_models()) {
    ++k;
    if (models_.count(name))
      continue;
    auto info = transport_.describe(name);
    if (!info)
      return info.error();
    // The first payload given for the model wins: a model has one kind of input.
    payload_spec spec = scenario_.payload;
    bool found = false;
    auto look = [&](const std::vector<weighted_model>& mix) {
      for (const auto& m : mix)
        if (!found && m.name == name && m.payload) {
          spec = *m.payload;
          found = true;
        }
    };
    look(scenario_.models);
    for (const auto& p : scenario_.phases)
      look(p.models);
    auto source = payload_source::make(name, info->inputs, spec, mix_seed(scenario_.seed, k, 7));
    if (!source)
      return source.error();
    models_.insert_or_assign(name, model_slot{std::move(*info), std::move(*source)});
  }
  return status::ok();
}

void load_runner::tick_seconds() {
  auto rows = state_->rec.seal_until(clock_.now() - epoch_);
  if (!options_.on_second)
    return;
  run_result context;
  context.scenario = scenario_.name;
  for (const auto& p : scenario_.phases) {
    phase_result pr;
    pr.name = p.name;
    context.phases.push_back(pr);
  }
  for (const auto& row : rows)
    options_.on_second(row, context);
}

load_runner::pending load_runner::make_request(size_t phase_index, std::mt19937_64& rng) {
  const auto& phase = scenario_.phases[phase_index];
  const auto& mix = scenario_.models_of(phase);
  const auto& prios = scenario_.priorities_of(phase);
  size_t m = 0;
  if (mix.size() > 1) {
    std::vector<double> w;
    for (const auto& x : mix)
      w.push_back(x.weight);
    m = std::discrete_distribution<size_t>(w.begin(), w.end())(rng);
  }
  uint32_t priority = 0;
  if (prios.size() == 1) {
    priority = prios[0].level;
  } else if (prios.size() > 1) {
    std::vector<double> w;
    for (const auto& x : prios)
      w.push_back(x.weight);
    priority = prios[std::discrete_distribution<size_t>(w.begin(), w.end())(rng)].level;
  }
  auto& slot = models_.at(mix[m].name);
  payload p = slot.source.next();
  pending out;
  out.request.model = &slot.info;
  out.request.inputs = std::move(p.inputs);
  out.request.priority = priority;
  out.request.timeout_us =
      static_cast<int64_t>(std::llround(scenario_.timeout_ms_of(phase) * 1e3));
  out.request.id = next_id_++;
  out.label = p.label;
  transport_.prepare(out.request);
  return out;
}

void load_runner::submit_one(size_t phase_index, double scheduled, pending p) {
  const double sent = clock_.now() - epoch_;
  state_->rec.sent(phase_index, scheduled, sent);
  {
    std::lock_guard lock{state_->mutex};
    ++state_->in_flight;
    ++state_->in_flight_by_phase[phase_index];
  }
  transport_.submit(std::move(p.request), [st = state_, phase_index, scheduled, sent,
                                             label = p.label](load_reply reply) {
    std::lock_guard lock{st->mutex};
    if (st->closed)
      return;
    outcome o;
    o.phase = phase_index;
    o.scheduled_s = scheduled;
    o.sent_s = sent;
    o.done_s = st->clock->now() - st->epoch;
    o.status = reply.ok ? "ok" : (reply.error.empty() ? "error" : reply.error);
    if (reply.ok && label) {
      auto predicted = reply.outputs.empty() ? std::nullopt : predicted_class(reply.outputs[0]);
      o.correct = predicted && *predicted == *label;
    }
    st->rec.finished(o);
    --st->in_flight;
    --st->in_flight_by_phase[phase_index];
    if (phase_index == st->closed_phase)
      st->closed_loop_done.push_back(o.done_s);
    st->cv.notify_all();
  });
}

void load_runner::run_open_phase(size_t index, double start) {
  const auto& phase = scenario_.phases[index];
  arrival_schedule schedule(phase.arrival, phase.duration_s, phase.requests,
                            mix_seed(scenario_.seed, index, 1));
  std::mt19937_64 rng(mix_seed(scenario_.seed, index, 2));
  while (auto offset = schedule.next()) {
    const double target = start + *offset;
    pending next = make_request(index, rng);
    // Wake at least once per second for the live line, however sparse the schedule.
    for (double now = clock_.now(); now < target; now = clock_.now()) {
      tick_seconds();
      const double next_second = epoch_ + std::floor(now - epoch_ + 1e-9) + 1;
      clock_.sleep_until(std::min(target, next_second));
    }
    tick_seconds();
    submit_one(index, target - epoch_, std::move(next));
  }
}

void load_runner::run_closed_phase(size_t index, double start) {
  const auto& phase = scenario_.phases[index];
  const double end = phase.duration_s ? start + *phase.duration_s
                                      : std::numeric_limits<double>::infinity();
  const int64_t limit = phase.requests.value_or(std::numeric_limits<int64_t>::max());
  const double think = phase.arrival.think_ms / 1e3;
  std::mt19937_64 rng(mix_seed(scenario_.seed, index, 2));
  // Times (absolute) when a client is ready to send again.
  std::priority_queue<double, std::vector<double>, std::greater<>> ready;
  for (int64_t i = 0; i < phase.arrival.concurrency; ++i)
    ready.push(start);
  {
    std::lock_guard lock{state_->mutex};
    state_->closed_phase = index;
    state_->closed_loop_done.clear();
  }
  // Requests built while the clients wait, so a reply is followed by a quick send.
  std::deque<pending> spare;
  auto reply_waiting = [this] {
    std::lock_guard lock{state_->mutex};
    return !state_->closed_loop_done.empty();
  };
  int64_t sent = 0;
  for (;;) {
    double now = clock_.now();
    tick_seconds();
    // The phase is [start, end); a client ready a rounding error before `end` is ready at it.
    if (now >= end - 1e-9 || sent >= limit)
      break;
    while (!ready.empty() && ready.top() <= now && ready.top() < end - 1e-9 && sent < limit) {
      const double at = std::max(ready.top(), start);
      ready.pop();
      pending p;
      if (spare.empty()) {
        p = make_request(index, rng);
      } else {
        p = std::move(spare.front());
        spare.pop_front();
      }
      submit_one(index, at - epoch_, std::move(p));
      ++sent;
    }
    const auto wanted = static_cast<size_t>(std::min(phase.arrival.concurrency, limit - sent));
    while (spare.size() < wanted && !reply_waiting())
      spare.push_back(make_request(index, rng));
    std::unique_lock lock{state_->mutex};
    for (double done : state_->closed_loop_done)
      ready.push(done + epoch_ + think);
    state_->closed_loop_done.clear();
    if (!ready.empty() && ready.top() <= clock_.now())
      continue;
    now = clock_.now();
    double wake = std::min(end, epoch_ + std::floor(now - epoch_ + 1e-9) + 1);
    if (!ready.empty())
      wake = std::min(wake, ready.top());
    auto st = state_;
    clock_.wait_until(lock, st->cv, wake, [st] { return !st->closed_loop_done.empty(); });
    for (double done : state_->closed_loop_done)
      ready.push(done + epoch_ + think);
    state_->closed_loop_done.clear();
  }
  std::lock_guard lock{state_->mutex};
  state_->closed_phase = std::numeric_limits<size_t>::max();
}

run_result load_runner::run() {
  epoch_ = clock_.now();
  {
    std::lock_guard lock{state_->mutex};
    state_->epoch = epoch_;
  }
  double max_timeout_s = 0;
  double start = epoch_;
  for (size_t i = 0; i < scenario_.phases.size(); ++i) {
    const auto& phase = scenario_.phases[i];
    max_timeout_s = std::max(max_timeout_s, scenario_.timeout_ms_of(phase) / 1e3);
    // A phase starts on schedule, or late when the previous one overran (count-limited).
    start = std::max(start, clock_.now());
    state_->rec.begin_phase(phase.name, describe(phase.arrival), start - epoch_,
                            scenario_.slo_ms_of(phase));
    if (phase.arrival.kind == arrival_kind::closed)
      run_closed_phase(i, start);
    else
      run_open_phase(i, start);
    double end;
    if (phase.duration_s) {
      end = start + *phase.duration_s;
      // Keep the schedule: idle until the phase's end even when its last send came early.
      for (double now = clock_.now(); now < end; now = clock_.now()) {
        tick_seconds();
        clock_.sleep_until(std::min(end, epoch_ + std::floor(now - epoch_ + 1e-9) + 1));
      }
    } else {
      // A count-limited phase ends when its last reply is in, so its throughput is honest.
      const double deadline = clock_.now() + scenario_.timeout_ms_of(phase) / 1e3 +
                              options_.drain_grace_s;
      std::unique_lock lock{state_->mutex};
      auto st = state_;
      while (st->in_flight_by_phase[i] > 0 && clock_.now() < deadline) {
        lock.unlock();
        tick_seconds();
        lock.lock();
        const double now = clock_.now();
        clock_.wait_until(lock, st->cv,
                          std::min(deadline, epoch_ + std::floor(now - epoch_ + 1e-9) + 1),
                          [st, i] { return st->in_flight_by_phase[i] == 0; });
      }
      end = clock_.now();
    }
    state_->rec.end_phase(i, end - epoch_);
    start = end;
  }
  // Drain: every request gets its reply or its timeout (transports enforce their own).
  const double deadline = clock_.now() + max_timeout_s + options_.drain_grace_s;
  uint64_t unanswered = 0;
  {
    std::unique_lock lock{state_->mutex};
    auto st = state_;
    while (st->in_flight > 0 && clock_.now() < deadline) {
      lock.unlock();
      tick_seconds();
      lock.lock();
      const double now = clock_.now();
      clock_.wait_until(lock, st->cv,
                        std::min(deadline, epoch_ + std::floor(now - epoch_ + 1e-9) + 1),
                        [st] { return st->in_flight == 0; });
    }
    unanswered = st->in_flight;
  }
  const double finished = clock_.now() - epoch_;
  tick_seconds();
  run_result r = state_->rec.finish(std::max(finished, start - epoch_), unanswered);
  {
    std::lock_guard lock{state_->mutex};
    state_->closed = true;
  }
  r.scenario = scenario_.name;
  r.transport = to_string(scenario_.transport);
  r.target = transport_.target();
  return r;
}

} // namespace troupe::load
