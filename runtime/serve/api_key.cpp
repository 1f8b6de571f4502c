// api_key: constant-time API key comparison and header extraction.
#include "runtime/serve/api_key.hpp"

#include <algorithm>
#include <cctype>

namespace troupe::serve {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walk the longer length always; a length mismatch is folded into the result, not a return.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  // volatile keeps the compiler from turning the loop back into an early-exit compare.
  volatile unsigned char result = diff;
  return result == 0;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

} // namespace

std::optional<std::string_view> presented_key(std::optional<std::string_view> authorization,
                                              std::optional<std::string_view> x_api_key) {
  if (x_api_key)
    return trim(*x_api_key);
  if (authorization) {
    auto value = trim(*authorization);
    constexpr std::string_view scheme = "Bearer ";
    if (value.size() >= scheme.size() && iequals(value.substr(0, scheme.size()), scheme))
      return trim(value.substr(scheme.size()));
    return value; // an unknown scheme still presents something: a wrong key, not a missing one
  }
  return std::nullopt;
}

auth_result check_api_key(std::string_view configured, std::optional<std::string_view> presented) {
  if (configured.empty())
    return auth_result::ok;
  if (!presented || presented->empty())
    return auth_result::missing;
  return constant_time_equal(configured, *presented) ? auth_result::ok : auth_result::wrong;
}

} // namespace troupe::serve
