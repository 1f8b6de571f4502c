// in_process_transport: the load generator's transport into an embedded_runtime (typed CAF
// requests to the batchers, no network), for measuring the serving core alone.
#include "actors/in_process_transport.hpp"

#include <limits>

namespace troupe {

in_process_transport::in_process_transport(caf::actor_system& sys, embedded_runtime& runtime,
                                           std::string target)
    : sys_(sys), runtime_(runtime), target_(std::move(target)) {}

expected<load::model_info> in_process_transport::describe(const std::string& model) {
  auto handle = runtime_.model(model);
  if (!handle)
    return make_error(errc::not_found, "{}: no model {} is loaded", target_, model);
  handles_.insert_or_assign(model, *handle);
  load::model_info info;
  info.name = model;
  info.inputs = handle->inputs;
  info.outputs = handle->outputs;
  return info;
}

void in_process_transport::submit(load::load_request request, load::reply_callback done) {
  auto it = request.model ? handles_.find(request.model->name) : handles_.end();
  if (it == handles_.end()) {
    load::load_reply r;
    r.error = "not_found";
    r.message = "model not described before the run";
    done(std::move(r));
    return;
  }
  infer_request req;
  req.inputs = std::move(request.inputs);
  req.priority = request.priority;
  req.timeout_us = request.timeout_us;
  req.correlation_id = request.id;
  // A second past the request's own timeout (no limit when that would overflow).
  constexpr int64_t grace_us = 1000000;
  const auto deadline =
      request.timeout_us > 0 && request.timeout_us < std::numeric_limits<int64_t>::max() / 1000 -
                                                         grace_us
          ? caf::duration{std::chrono::microseconds(request.timeout_us + grace_us)}
          : caf::duration{caf::infinite};
  sys_.spawn([batcher = it->second.batcher, req = std::move(req), done = std::move(done),
              deadline](caf::event_based_actor* self) mutable {
    self->request(batcher, deadline, atom::infer_v, std::move(req))
        .then(
            [done](infer_response& res) {
              load::load_reply r;
              r.ok = true;
              r.outputs = std::move(res.outputs);
              done(std::move(r));
            },
            [done, self](caf::error& err) {
              load::load_reply r;
              if (err == caf::sec::request_timeout) {
                r.error = "client_timeout";
              } else {
                auto code = errc_of(err);
                r.error = code ? to_string(*code) : "error";
              }
              r.message = self->system().render(err);
              done(std::move(r));
            });
  });
}

} // namespace troupe
