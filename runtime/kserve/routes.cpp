// routes: a hand-written matcher for the handful of KServe paths (no regex on the hot path).
#include "runtime/kserve/routes.hpp"

#include <charconv>

#include "runtime/config/model_config.hpp"

namespace troupe::kserve {
namespace {

/// Splits off the next '/'-separated segment of `rest`.
std::string_view next_segment(std::string_view& rest) {
  const auto slash = rest.find('/');
  const std::string_view seg = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  return seg;
}

status bad_model_name(std::string_view name) {
  return make_error(errc::invalid_argument,
                    "invalid model name '{}': expected [A-Za-z0-9_.-]+, not '.' or '..'",
                    name.substr(0, 128));
}

expected<int64_t> parse_version(std::string_view text) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v <= 0)
    return make_error(errc::invalid_argument,
                      "invalid model version '{}': expected a positive integer",
                      text.substr(0, 32));
  return v;
}

status no_endpoint(std::string_view path) {
  return make_error(errc::not_found, "no endpoint {}", path.substr(0, 256));
}

} // namespace

expected<route> match_route(std::string_view path) {
  route r;
  if (path == "/v2" || path == "/v2/") {
    r.endpoint = endpoint::server_metadata;
    return r;
  }
  if (path == "/metrics") {
    r.endpoint = endpoint::metrics;
    return r;
  }
  if (path == "/v2/health/live") {
    r.endpoint = endpoint::health_live;
    return r;
  }
  if (path == "/v2/health/ready") {
    r.endpoint = endpoint::health_ready;
    return r;
  }
  if (path == "/v2/repository/index") {
    r.endpoint = endpoint::repository_index;
    r.method = http::method::post;
    r.management = true;
    return r;
  }
  std::string_view rest = path;
  if (rest.starts_with("/v2/repository/models/")) {
    rest.remove_prefix(22);
    const std::string_view name = next_segment(rest);
    if (rest != "load" && rest != "unload")
      return no_endpoint(path);
    if (!is_valid_model_name(name))
      return bad_model_name(name);
    r.endpoint = rest == "load" ? endpoint::repository_load : endpoint::repository_unload;
    r.model = std::string(name);
    r.method = http::method::post;
    r.management = true;
    return r;
  }
  if (!rest.starts_with("/v2/models/"))
    return no_endpoint(path);
  rest.remove_prefix(11);
  const std::string_view name = next_segment(rest);
  if (name.empty())
    return no_endpoint(path);
  if (rest.starts_with("versions/")) {
    rest.remove_prefix(9);
    auto v = parse_version(next_segment(rest));
    if (!v)
      return v.error();
    r.version = *v;
  }
  if (rest.empty()) {
    r.endpoint = endpoint::model_metadata;
  } else if (rest == "ready") {
    r.endpoint = endpoint::model_ready;
  } else if (rest == "infer") {
    r.endpoint = endpoint::model_infer;
    r.method = http::method::post;
  } else {
    return no_endpoint(path);
  }
  if (!is_valid_model_name(name))
    return bad_model_name(name);
  r.model = std::string(name);
  return r;
}

bool method_allowed(const route& r, http::method m) {
  return m == r.method || (m == http::method::head && r.method == http::method::get);
}

std::string_view allowed_methods(const route& r) {
  return r.method == http::method::post ? "POST" : "GET, HEAD";
}

} // namespace troupe::kserve
