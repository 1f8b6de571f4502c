// infer_binding: request-to-model matching (names, dtypes, shapes, batch) and reply encoding.
#include "runtime/serve/infer_binding.hpp"

#include <algorithm>
#include <limits>

namespace troupe::serve {

expected<bound_request> bind_request(kserve::infer_request&& request, const model_signature& model) {
  bound_request out;
  const bool batched = model.max_batch_size > 0;
  out.inputs.resize(model.inputs.size());
  std::vector<bool> seen(model.inputs.size(), false);
  for (auto& in : request.inputs) {
    size_t index = model.inputs.size();
    for (size_t i = 0; i < model.inputs.size(); ++i)
      if (model.inputs[i].name == in.name)
        index = i;
    if (index == model.inputs.size())
      return make_error(errc::invalid_argument, "model '{}' has no input '{}'", model.name,
                        in.name);
    const auto& want = model.inputs[index];
    if (in.type != want.type)
      return make_error(errc::invalid_argument, "input '{}' must be {}, got {}", want.name,
                        kserve_name(want.type), kserve_name(in.type));
    // No dims: the model file gives no rank (any shape goes, as in the batcher and session).
    bool ok = want.dims.empty() || in.dims.size() == want.dims.size();
    for (size_t d = 0; ok && d < want.dims.size(); ++d)
      ok = (batched && d == 0) || want.dims[d] < 0 || want.dims[d] == in.dims[d];
    if (!ok)
      return make_error(errc::invalid_argument, "input '{}' has shape {}, model '{}' expects {}",
                        want.name, to_string(in.dims), model.name, to_string(want.dims));
    for (size_t d = 0; d < in.dims.size(); ++d)
      if (in.dims[d] < 1)
        return make_error(errc::invalid_argument,
                          "input '{}': dimension {} is {}, dimensions must be at least 1",
                          want.name, d, in.dims[d]);
    if (batched && in.dims.empty())
      return make_error(errc::invalid_argument,
                        "input '{}' has shape [], model '{}' is batched (max_batch_size {}): "
                        "its inputs need a batch dimension", want.name, model.name,
                        model.max_batch_size);
    if (batched) {
      const int64_t rows = in.dims[0];
      if (rows > model.max_batch_size)
        return make_error(errc::invalid_argument,
                          "input '{}': batch of {} rows is larger than max_batch_size {} of "
                          "model '{}'",
                          want.name, rows, model.max_batch_size, model.name);
      if (std::find(seen.begin(), seen.end(), true) != seen.end() && rows != out.rows)
        return make_error(errc::invalid_argument,
                          "input '{}' has {} rows, another input has {}", want.name, rows,
                          out.rows);
      out.rows = rows;
    }
    seen[index] = true;
    out.inputs[index] = std::move(in.data);
  }
  for (size_t i = 0; i < model.inputs.size(); ++i)
    if (!seen[i])
      return make_error(errc::invalid_argument, "model '{}' expects input '{}', the request has none",
                        model.name, model.inputs[i].name);

  const auto& params = request.parameters;
  if (params.priority) {
    if (*params.priority > std::numeric_limits<uint32_t>::max())
      return make_error(errc::invalid_argument, "parameters.priority {} is out of range",
                        *params.priority);
    out.priority = static_cast<uint32_t>(*params.priority);
  }
  if (params.timeout_us) {
    if (*params.timeout_us > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return make_error(errc::invalid_argument, "parameters.timeout {} is out of range",
                        *params.timeout_us);
    out.timeout_us = static_cast<int64_t>(*params.timeout_us);
  }

  auto& plan = out.reply;
  plan.model_name = model.name;
  plan.model_version = std::to_string(model.version);
  plan.id = std::move(request.id);
  if (request.outputs.empty()) {
    for (size_t i = 0; i < model.outputs.size(); ++i)
      plan.outputs.push_back({i, model.outputs[i].name, params.binary_data_output});
  } else {
    for (const auto& want : request.outputs) {
      size_t index = model.outputs.size();
      for (size_t i = 0; i < model.outputs.size(); ++i)
        if (model.outputs[i].name == want.name)
          index = i;
      if (index == model.outputs.size())
        return make_error(errc::invalid_argument, "model '{}' has no output '{}'", model.name,
                          want.name);
      plan.outputs.push_back({index, want.name, kserve::wants_binary(request, want.name)});
    }
  }
  return out;
}

expected<kserve::encoded_body> encode_reply(const reply_plan& plan,
                                            const std::vector<tensor>& outputs,
                                            const model_signature& model) {
  kserve::infer_response response;
  response.model_name = plan.model_name;
  response.model_version = plan.model_version;
  response.id = plan.id;
  response.outputs.reserve(plan.outputs.size());
  for (const auto& pick : plan.outputs) {
    if (pick.index >= outputs.size())
      return make_error(errc::internal, "model '{}' returned {} outputs, output '{}' is missing",
                        model.name, outputs.size(), pick.name);
    const tensor& t = outputs[pick.index];
    kserve::infer_output o;
    o.name = pick.name;
    o.type = t.type();
    o.dims = t.dims();
    o.data = t;
    o.binary = pick.binary;
    response.outputs.push_back(std::move(o));
  }
  return kserve::encode_infer_response(response);
}

http::response json_response(std::string body, unsigned status) {
  http::response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

namespace {

http::response with_status(kserve::http_status s, std::string_view message) {
  http::response r = json_response(kserve::encode_error(message), s.code);
  if (s.retry_after)
    r.headers.emplace_back("Retry-After", std::string(kserve::retry_after_seconds));
  return r;
}

} // namespace

http::response error_response(errc code, std::string_view message) {
  return with_status(kserve::http_status_of(code), message);
}

http::response error_response(kserve::frontend_condition condition, std::string_view message) {
  return with_status(kserve::http_status_of(condition), message);
}

} // namespace troupe::serve
