// json_writer: appends compact JSON to a string; numbers via std::to_chars, strings escaped.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::kserve {

/// A minimal append-only JSON writer. The caller writes structure (`'{'`, `','`) itself; the
/// writer does what is easy to get wrong: escaping and number formatting. Non-finite floats
/// are written as the bare tokens NaN, Infinity and -Infinity, as Triton (rapidjson with
/// kWriteNanAndInfFlag) and Python's json module do, so clients round-trip them.
class json_writer {
public:
  explicit json_writer(std::string& out) : out_(out) {}

  void raw(std::string_view s) { out_.append(s); }
  void raw(char c) { out_.push_back(c); }

  /// A quoted, escaped string. Control characters become \u00XX; text that is not valid UTF-8
  /// (header values, file names) has its non-ASCII bytes replaced by '?' so the document
  /// stays valid JSON.
  void string(std::string_view s);
  /// `"key":`
  void key(std::string_view k) {
    string(k);
    out_.push_back(':');
  }

  template <class Int> void integer(Int v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  void boolean(bool v) { out_.append(v ? "true" : "false"); }
  void number(double v);
  void number(float v);

  std::string& buffer() { return out_; }

private:
  std::string& out_;
};

/// Writes a float or double into [first, first + 32): the shortest text that reads back to the
/// same value, or NaN/Infinity/-Infinity. Returns the end.
char* write_json_number(char* first, float v);
char* write_json_number(char* first, double v);

} // namespace troupe::kserve
