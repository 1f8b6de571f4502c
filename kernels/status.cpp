// status: names for error codes and message formatting.
#include "kernels/status.hpp"

namespace troupe {

const char* to_string(errc code) {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::unsupported: return "unsupported";
    case errc::parse_error: return "parse_error";
    case errc::out_of_range: return "out_of_range";
    case errc::resource_exhausted: return "resource_exhausted";
    case errc::unavailable: return "unavailable";
    case errc::timeout: return "timeout";
    case errc::internal: return "internal";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (is_ok())
    return "ok";
  return fmt::format("{}: {}", troupe::to_string(code_), message_);
}

status status::with_context(const std::string& context) const {
  if (is_ok())
    return *this;
  return status{code_, context + ": " + message_};
}

} // namespace troupe
