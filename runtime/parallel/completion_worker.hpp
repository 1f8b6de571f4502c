// completion_worker: a thread of its own that runs completion jobs in the order they were
// posted, so a CUDA host function (which must not call CUDA, and holds up every later host
// function of the process while it runs) only hands a finished run over to it.
#pragma once

#include <functional>
#include <memory>
#include <thread>

namespace troupe {

class completion_worker {
public:
  using job = std::function<void()>;

  completion_worker();
  /// finish(), if not called yet.
  ~completion_worker();
  completion_worker(const completion_worker&) = delete;
  completion_worker& operator=(const completion_worker&) = delete;

  /// Queues `j` to run on the worker thread after every job posted before it. Thread-safe;
  /// allocates, calls nothing else. A job that throws is caught (and its exception dropped):
  /// jobs report their own errors.
  void post(job j);

  /// Returns once every job posted before this call has run: the caller may then drop what
  /// they read. On the worker thread itself (a job) and after finish(), it returns at once.
  void drain();

  /// Runs every job posted so far, then stops the thread. From another thread it waits for
  /// the worker to run them; from a job on the worker itself (the job's owner being
  /// destroyed by that job) it runs the queued ones right here, then leaves the thread to end
  /// on its own. Jobs posted after finish() are dropped.
  void finish();

  bool on_worker_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

private:
  struct shared;
  std::shared_ptr<shared> state_; // the thread's too: it may outlive this object (see finish)
  std::thread thread_;
};

} // namespace troupe
