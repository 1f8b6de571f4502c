// gpu_async_model: the async_model of a gpu_session (its runs complete on a CUDA callback
// thread).
#include "runtime/serve/async_model.hpp"

namespace troupe {

namespace {

class gpu_async_model final : public async_model {
public:
  explicit gpu_async_model(std::unique_ptr<gpu_session> s) : session_(std::move(s)) {}

  const std::vector<value_info>& inputs() const override { return session_->inputs(); }
  const std::vector<value_info>& outputs() const override { return session_->outputs(); }
  void run_async(std::vector<tensor> inputs, completion done) override {
    session_->run_async(std::move(inputs), std::move(done));
  }
  size_t max_in_flight() const override { return gpu_session::max_in_flight; }

private:
  std::unique_ptr<gpu_session> session_;
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
