// status and expected<T>: the error type of the kernels and runtime layers.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace troupe {

/// Error codes shared by every layer; the actors layer registers them with CAF and the
/// frontends map them to HTTP statuses.
enum class errc : int {
  ok = 0,
  invalid_argument,   // a caller's mistake: bad shape, dtype, value
  not_found,          // unknown model, file, input name
  unsupported,        // a valid request troupe cannot serve (operator, dtype)
  parse_error,        // a file or message that does not decode
  out_of_range,       // arithmetic overflow, index out of bounds
  resource_exhausted, // memory, queue full
  unavailable,        // stopping, not ready
  timeout,            // a deadline passed
  internal,           // a bug in troupe
};

const char* to_string(errc code);

/// An error code with a message that names what went wrong and where.
class status {
public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok() { return {}; }

  bool is_ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return is_ok(); }
  errc code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

  /// The same error with `context` prefixed to the message ("file.onnx: node conv1: ...").
  status with_context(const std::string& context) const;

private:
  errc code_ = errc::ok;
  std::string message_;
};

template <class... Args>
status make_error(errc code, fmt::format_string<Args...> format, Args&&... args) {
  return status{code, fmt::format(format, std::forward<Args>(args)...)};
}

/// A value or a status (C++23's std::expected, reduced to what troupe needs).
template <class T>
class expected {
public:
  expected(T value) : state_(std::move(value)) {}
  expected(status error) : state_(std::move(error)) { assert(!std::get<status>(state_).is_ok()); }

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const status& error() const { return std::get<1>(state_); }

private:
  std::variant<T, status> state_;
};

} // namespace troupe

/// Returns the status of `expr` from the enclosing function when it is an error.
#define TROUPE_TRY_STATUS(expr)                                                               \
  do {                                                                                        \
    if (auto troupe_st_ = (expr); !troupe_st_.is_ok())                                        \
      return troupe_st_;                                                                      \
  } while (false)
