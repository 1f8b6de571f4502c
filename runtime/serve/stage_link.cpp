// stage_link: describing, checking, sending and receiving a stage's values over its link.
#include "runtime/serve/stage_link.hpp"

#include "kernels/shape.hpp"

namespace troupe::serve {

std::vector<link_ends> replica_links(size_t stages, size_t ranks) {
  std::vector<link_ends> out;
  for (size_t s = 0; s + 1 < stages; ++s) {
    link_ends link{s * ranks, {}};
    for (size_t q = 0; q < ranks; ++q)
      link.receivers.push_back((s + 1) * ranks + q);
    out.push_back(std::move(link));
  }
  return out;
}

linked_values describe(const std::vector<tensor>& values) {
  linked_values out;
  for (const auto& v : values) {
    out.types.push_back(static_cast<uint8_t>(v.type()));
    out.dims.emplace_back(v.dims().begin(), v.dims().end());
  }
  return out;
}

status check_linked(const linked_values& what, int64_t max_bytes) {
  if (what.types.size() != what.dims.size())
    return make_error(errc::invalid_argument, "linked values: {} dtypes for {} dims lists",
                      what.types.size(), what.dims.size());
  for (size_t i = 0; i < what.types.size(); ++i) {
    const auto type = static_cast<dtype>(what.types[i]);
    if (what.types[i] > static_cast<uint8_t>(dtype::boolean) || size_of(type) == 0)
      return make_error(errc::invalid_argument, "linked value {}: dtype code {} is not a numeric "
                        "dtype", i, what.types[i]);
    auto bytes = checked_bytes(what.dims[i], size_of(type));
    if (!bytes)
      return bytes.error().with_context(fmt::format("linked value {}", i));
    if (*bytes > max_bytes)
      return make_error(errc::invalid_argument, "linked value {}: {} bytes, more than {}", i,
                        *bytes, max_bytes);
  }
  return status::ok();
}

status check_linked_inputs(const linked_values& what, const std::vector<value_info>& inputs) {
  TROUPE_TRY_STATUS(check_linked(what));
  if (what.types.size() != inputs.size())
    return make_error(errc::invalid_argument, "{} linked values for a stage of {} inputs",
                      what.types.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& want = inputs[i];
    const auto type = static_cast<dtype>(what.types[i]);
    const auto& dims = what.dims[i];
    bool fits = type == want.type && dims.size() == want.dims.size();
    for (size_t d = 0; fits && d < dims.size(); ++d)
      fits = want.dims[d] < 0 || want.dims[d] == dims[d];
    if (!fits)
      return make_error(errc::invalid_argument, "linked value {} is {}{}, input '{}' is {}{}", i,
                        to_string(type), to_string(dims), want.name, to_string(want.type),
                        to_string(want.dims));
  }
  return status::ok();
}

link_failure on_link_failure(const status& links_aborted, bool in_step) {
  return !links_aborted.is_ok() || in_step ? link_failure::fail_job
                                           : link_failure::restart_replica;
}

status send_values(communicator& link, const std::vector<tensor>& values) {
  for (int peer = 1; peer < link.size(); ++peer)
    for (size_t i = 0; i < values.size(); ++i)
      TROUPE_TRY_STATUS(link.send(values[i], peer).with_context(
          fmt::format("sending value {} to link rank {}", i, peer)));
  return status::ok();
}

expected<std::vector<tensor>> receive_values(communicator& link, const linked_values& what) {
  TROUPE_TRY_STATUS(check_linked(what));
  std::vector<tensor> out;
  for (size_t i = 0; i < what.types.size(); ++i) {
    tensor t = tensor::empty(static_cast<dtype>(what.types[i]), shape(what.dims[i]));
    TROUPE_TRY_STATUS(link.recv(t, 0).with_context(fmt::format("receiving value {}", i)));
    out.push_back(std::move(t));
  }
  return out;
}

} // namespace troupe::serve
