// completion_worker: the queue and the thread that drains it.
#include "runtime/parallel/completion_worker.hpp"

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>

namespace troupe {

struct completion_worker::shared {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<job> jobs;
  bool stopping = false;

  /// The next job; false once stopping with nothing left. `block`: waits for one (the
  /// thread's loop); else finds none and stops in one step, so no job posted in between is
  /// left behind (finish on the worker itself).
  bool take(job& out, bool block) {
    std::unique_lock lock(mutex);
    if (block)
      wake.wait(lock, [&] { return stopping || !jobs.empty(); });
    if (jobs.empty()) {
      stopping = true;
      return false;
    }
    out = std::move(jobs.front());
    jobs.pop_front();
    return true;
  }

  static void run(job& j) {
    try {
      j();
    } catch (...) { // a job reports its own errors; the worker keeps serving the others
    }
    j = nullptr; // what the job captured goes here, on this thread, before the next one
  }
};

completion_worker::completion_worker() : state_(std::make_shared<shared>()) {
  thread_ = std::thread([state = state_] {
    job j;
    while (state->take(j, true))
      shared::run(j);
  });
}

completion_worker::~completion_worker() { finish(); }

void completion_worker::post(job j) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping)
      return;
    state_->jobs.push_back(std::move(j));
  }
  state_->wake.notify_one();
}

void completion_worker::drain() {
  if (on_worker_thread() || !thread_.joinable())
    return;
  auto ran = std::make_shared<std::promise<void>>();
  auto done = ran->get_future();
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping)
      return;
    state_->jobs.push_back([ran] { ran->set_value(); });
  }
  state_->wake.notify_one();
  done.wait();
}

void completion_worker::finish() {
  if (!thread_.joinable())
    return;
  if (on_worker_thread()) {
    // Inside a job: the loop that called it is further up this very stack, so run the rest
    // here; the loop then finds nothing left and ends with the thread.
    job j;
    while (state_->take(j, false))
      shared::run(j);
    thread_.detach();
    return;
  }
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_one();
  thread_.join(); // after it ran every job posted before
}

} // namespace troupe
