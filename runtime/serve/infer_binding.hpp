// infer_binding: matches a decoded KServe request to a model's signature and encodes its reply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/status.hpp"
#include "runtime/graph.hpp"
#include "runtime/http/server.hpp"
#include "runtime/kserve/codec.hpp"
#include "runtime/kserve/status_map.hpp"

namespace troupe::serve {

/// What the frontend knows about one loaded model version.
struct model_signature {
  std::string name;
  int64_t version = 1;
  std::vector<value_info> inputs;  // in the order the batcher wants them
  std::vector<value_info> outputs; // in the order replies carry them; -1 for dynamic dims
  int64_t max_batch_size = 0;      // 0: no batch dimension
};

/// How to write the reply of one request: which outputs, in which order, binary or JSON.
struct reply_plan {
  std::string model_name;
  std::string model_version;
  std::string id;
  struct pick {
    size_t index = 0; // into the model's outputs
    std::string name;
    bool binary = false;
  };
  std::vector<pick> outputs;
};

struct bound_request {
  std::vector<tensor> inputs; // the model's input order
  int64_t rows = 1;           // the batch dimension (1 without one)
  uint32_t priority = 0;
  int64_t timeout_us = 0;
  reply_plan reply;
};

/// Checks names, datatypes, shapes and the batch size against the model and orders the inputs.
/// Every error is invalid_argument with a message that names the input or output.
expected<bound_request> bind_request(kserve::infer_request&& request, const model_signature& model);

/// Writes the reply body for the model's outputs (in model order) as `plan` says.
expected<kserve::encoded_body> encode_reply(const reply_plan& plan,
                                            const std::vector<tensor>& outputs,
                                            const model_signature& model);

/// An HTTP error reply `{"error": message}` with the status of `code`, and Retry-After on 503.
http::response error_response(errc code, std::string_view message);
http::response error_response(kserve::frontend_condition condition, std::string_view message);
/// A JSON 200 reply.
http::response json_response(std::string body, unsigned status = 200);

} // namespace troupe::serve
