// gpu_async_model: the async_model of a gpu_session: runs are submitted from a thread of its
// own and complete on the session's completion thread.
#include <atomic>
#include <utility>

#include "runtime/parallel/completion_worker.hpp"
#include "runtime/serve/async_model.hpp"

namespace troupe {

namespace {

class gpu_async_model final : public async_model {
public:
  explicit gpu_async_model(std::unique_ptr<gpu_session> s) : session_(std::move(s)) {}

  const std::vector<value_info>& inputs() const override { return session_->inputs(); }
  const std::vector<value_info>& outputs() const override { return session_->outputs(); }
  // Submitting a run copies its inputs into pinned staging (a ResNet-50 batch of 256 is
  // 154 MB of fp32) and, for input dims seen for the first time, compiles their plan and times
  // cuDNN's algorithms on its first run (seconds): on the submit thread, in the order of the
  // calls, never on the caller's (an actor's scheduler thread).
  void run_async(std::vector<tensor> inputs, completion done) override {
    submitter_.post([s = session_.get(), inputs = std::move(inputs),
                     done = answer_once(std::move(done))]() mutable {
      try {
        s->run_async(std::move(inputs), done);
      } catch (const std::exception& e) { // e.g. no memory for a new plan: the run still ends
        done(make_error(errc::resource_exhausted, "submitting a run: {}", e.what()));
      }
    });
  }
  void run_async_received(serve::linked_values what, completion done) override {
    submitter_.post([s = session_.get(), what = std::move(what),
                     done = answer_once(std::move(done))]() mutable {
      try {
        s->run_async_received(std::move(what), done);
      } catch (const std::exception& e) {
        done(make_error(errc::resource_exhausted, "submitting a run: {}", e.what()));
      }
    });
  }
  size_t max_in_flight() const override { return gpu_session::max_in_flight; }
  status link_status() const override { return session_->link_status(); }
  bool links_in_step() const override { return session_->links_in_step(); }

private:
  /// `done` as a completion that calls it only the first time: a run that throws while being
  /// submitted is answered with the error, whether or not the session took it (the worker
  /// would otherwise drop the exception, and the run would never end).
  static completion answer_once(completion done) {
    auto once = std::make_shared<std::pair<std::atomic<bool>, completion>>(false, std::move(done));
    return [once](expected<std::vector<tensor>> result) {
      if (!once->first.exchange(true))
        once->second(std::move(result));
    };
  }

  std::unique_ptr<gpu_session> session_;
  completion_worker submitter_; // destroyed first: submits what was posted, then the session
};

} // namespace

expected<std::unique_ptr<async_model>> open_gpu_model(graph g, gpu_session_options options) {
  auto s = gpu_session::from_graph(std::move(g), options);
  if (!s)
    return s.error();
  TROUPE_TRY_STATUS((*s)->prepare(dims_with_dynamic_as((*s)->inputs(), 1)));
  return std::unique_ptr<async_model>(new gpu_async_model(std::move(*s)));
}

} // namespace troupe
