// session: input validation, plan cache, thread binding.
#include "runtime/session.hpp"

#include "runtime/onnx_import.hpp"
#include "runtime/passes/passes.hpp"

namespace troupe {

session::session(graph g, session_options options)
  : graph_(std::move(g)), options_(std::move(options)), cpu_(options_.limits) {}

expected<std::unique_ptr<session>> session::from_graph(graph g, session_options options) {
  if (options.optimize)
    TROUPE_TRY_STATUS(optimize_graph(g, options.max_value_bytes));
  return std::unique_ptr<session>(new session(std::move(g), std::move(options)));
}

expected<std::unique_ptr<session>> session::open(const std::string& onnx_path,
                                                 session_options options) {
  auto g = load_onnx(onnx_path);
  if (!g)
    return g.error();
  auto s = from_graph(std::move(*g), std::move(options));
  if (!s)
    return s.error();
  // Compile once with batch 1 where possible, so unsupported operators and shapes that
  // cannot be inferred are reported at load time, not at the first request.
  auto p = (*s)->plan_for(dims_with_dynamic_as((*s)->inputs(), 1));
  if (!p)
    return p.error();
  return s;
}

expected<std::vector<value_info>> session::infer_outputs() {
  std::vector<std::vector<value_info>> probes;
  for (int64_t size : {1, 2}) {
    auto p = plan_for(dims_with_dynamic_as(graph_.inputs, size));
    if (!p)
      return p.error();
    probes.push_back((*p)->outputs());
  }
  std::vector<value_info> out = probes[0];
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].dims.size() != probes[1][i].dims.size())
      return make_error(errc::unsupported, "{}: the rank of output '{}' depends on the input "
                        "dims", graph_.source, out[i].name);
    for (size_t d = 0; d < out[i].dims.size(); ++d)
      if (out[i].dims[d] != probes[1][i].dims[d])
        out[i].dims[d] = -1;
  }
  return out;
}

status session::validate(std::span<const tensor> inputs) const {
  if (inputs.size() != graph_.inputs.size())
    return make_error(errc::invalid_argument, "{}: expected {} inputs, got {}", graph_.source,
                      graph_.inputs.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& want = graph_.inputs[i];
    const auto& got = inputs[i];
    if (got.type() != want.type)
      return make_error(errc::invalid_argument, "{}: input '{}' must be {}, got {}", graph_.source,
                        want.name, to_string(want.type), to_string(got.type()));
    bool ok = want.dims.empty() || got.dims().size() == want.dims.size();
    for (size_t d = 0; ok && d < want.dims.size(); ++d)
      ok = want.dims[d] < 0 || want.dims[d] == got.dims()[d];
    if (!ok)
      return make_error(errc::invalid_argument, "{}: input '{}' has shape {}, model expects {}",
                        graph_.source, want.name, to_string(got.dims()), to_string(want.dims));
    auto bytes = checked_bytes(got.dims(), size_of(got.type()));
    if (!bytes)
      return bytes.error().with_context(graph_.source + ": input '" + want.name + "'");
  }
  return status::ok();
}

expected<plan*> session::plan_for(std::span<const shape> input_dims) {
  std::vector<shape> key(input_dims.begin(), input_dims.end());
  auto it = plans_.find(key);
  if (it != plans_.end())
    return it->second.get();
  if (plans_.size() >= options_.max_cached_plans)
    plans_.clear();
  auto p = plan::compile(graph_, input_dims, cpu_,
                         plan_options{options_.allow_blocked, options_.max_value_bytes, &packed_,
                                      options_.comm});
  if (!p)
    return p.error();
  plan* raw = p->get();
  plans_.emplace(std::move(key), std::move(*p));
  return raw;
}

expected<std::vector<tensor>> session::run(std::span<const tensor> inputs,
                                           std::vector<step_profile>* profile) {
  TROUPE_TRY_STATUS(validate(inputs));
  if (entered_ != std::this_thread::get_id()) {
    TROUPE_TRY_STATUS(cpu_.enter());
    entered_ = std::this_thread::get_id();
  }
  std::vector<shape> dims;
  for (const auto& t : inputs)
    dims.push_back(t.dims());
  auto p = plan_for(dims);
  if (!p)
    return p.error();
  return (*p)->run(inputs, profile);
}

} // namespace troupe
