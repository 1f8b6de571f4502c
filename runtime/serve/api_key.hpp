// api_key: the management endpoints' API key check (constant-time compare, 401 vs 403).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace troupe::serve {

enum class auth_result : unsigned char { ok, missing, wrong };

/// Compares without an early exit on the first differing byte, so the time taken says
/// nothing about how much of a guess was right (the length may leak; keys are random).
bool constant_time_equal(std::string_view a, std::string_view b);

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
std::optional<std::string_view> presented_key(std::optional<std::string_view> authorization,
                                              std::optional<std::string_view> x_api_key);

/// ok when no key is configured or the presented one matches; missing (401) when none was
/// presented; wrong (403) otherwise.
auth_result check_api_key(std::string_view configured, std::optional<std::string_view> presented);

} // namespace troupe::serve
