// in_process_transport: the load generator's transport into an embedded_runtime (typed CAF
// requests to the batchers, no network), for measuring the serving core alone.
#pragma once

#include <map>

#include "actors/embedded_runtime.hpp"
#include "runtime/load/transport.hpp"

namespace troupe {

class in_process_transport final : public load::transport {
public:
  /// `runtime` must have loaded the models the scenario names and must outlive this.
  in_process_transport(caf::actor_system& sys, embedded_runtime& runtime, std::string target);

  expected<load::model_info> describe(const std::string& model) override;
  /// Spawns a short-lived actor per request that asks the batcher and reports the reply;
  /// the batcher answers every accepted request exactly once, and the CAF request timeout
  /// (request timeout + 1 s) covers a batcher that is gone.
  void submit(load::load_request request, load::reply_callback done) override;
  std::string target() const override { return target_; }

private:
  caf::actor_system& sys_;
  embedded_runtime& runtime_;
  std::string target_;
  std::map<std::string, model_handle> handles_; // filled by describe (runner thread only)
};

} // namespace troupe
