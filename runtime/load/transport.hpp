// transport: the one interface a load run sends requests through (HTTP JSON, HTTP binary,
// in-process), asynchronous with exactly one callback per request.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/tensor.hpp"
#include "runtime/graph.hpp"

namespace troupe::load {

/// What the runner needs to know about a model to build its requests.
struct model_info {
  std::string name;
  std::vector<value_info> inputs; // dims as declared; -1 = dynamic
  std::vector<value_info> outputs;
};

struct load_request {
  const model_info* model = nullptr; // outlives the request (owned by the runner)
  std::vector<tensor> inputs;        // in model->inputs order
  uint32_t priority = 0;             // 0 = the model's default
  int64_t timeout_us = 0;            // 0 = none; also the transport's own give-up deadline
  uint64_t id = 0;
  /// The request in the transport's wire form (the HTTP body), made by transport::prepare
  /// ahead of the send time; empty until then.
  std::string wire;
  size_t wire_header_length = 0; // binary HTTP: the JSON header's length within `wire`
};

struct load_reply {
  bool ok = false;
  /// Short, stable label counted in the reports: "http_503", "timeout", "connect", ...
  std::string error;
  std::string message;
  std::vector<tensor> outputs; // when ok; may be empty when the transport does not decode them
};

using reply_callback = std::function<void(load_reply)>;

class transport {
public:
  virtual ~transport() = default;
  /// The model's metadata (blocking; called before the run starts).
  virtual expected<model_info> describe(const std::string& model) = 0;
  /// Does the work of a send that needs no server (encoding) ahead of time, so that submit
  /// only sends: the runner prepares the next requests while it waits for their send time.
  /// Best effort: submit reports any error, and prepares what was not prepared.
  virtual void prepare(load_request& /*request*/) {}
  /// Sends one request; `done` is called exactly once, on any thread, possibly before
  /// submit returns. Must not block on the server.
  virtual void submit(load_request request, reply_callback done) = 0;
  /// Text for reports ("http://127.0.0.1:8000", "in-process REPO").
  virtual std::string target() const = 0;
};

} // namespace troupe::load
