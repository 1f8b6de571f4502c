// json_writer: escaping and shortest round-trip number formatting.
#include "runtime/kserve/json_writer.hpp"

#include <cstring>

#include <simdjson.h>

namespace troupe::kserve {
namespace {

template <class Float> char* write_float(char* first, Float v) {
  if (std::isnan(v)) {
    std::memcpy(first, "NaN", 3);
    return first + 3;
  }
  if (std::isinf(v)) {
    if (v < 0) {
      std::memcpy(first, "-Infinity", 9);
      return first + 9;
    }
    std::memcpy(first, "Infinity", 8);
    return first + 8;
  }
  // 32 bytes hold the longest shortest-form double ("-2.2250738585072014e-308" is 24).
  return std::to_chars(first, first + 32, v).ptr;
}

constexpr char hex_digits[] = "0123456789abcdef";

} // namespace

char* write_json_number(char* first, float v) { return write_float(first, v); }
char* write_json_number(char* first, double v) { return write_float(first, v); }

void json_writer::number(double v) {
  char buf[32];
  out_.append(buf, write_float(buf, v));
}

void json_writer::number(float v) {
  char buf[32];
  out_.append(buf, write_float(buf, v));
}

void json_writer::string(std::string_view s) {
  const bool utf8_ok = simdjson::validate_utf8(s.data(), s.size());
  out_.reserve(out_.size() + s.size() + 2);
  out_.push_back('"');
  size_t run = 0; // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool plain = c >= 0x20 && c != '"' && c != '\\' && (utf8_ok || c < 0x80);
    if (plain)
      continue;
    out_.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out_.append("\\\"");
        break;
      case '\\':
        out_.append("\\\\");
        break;
      case '\n':
        out_.append("\\n");
        break;
      case '\r':
        out_.append("\\r");
        break;
      case '\t':
        out_.append("\\t");
        break;
      default:
        if (c >= 0x80) {
          out_.push_back('?');
        } else {
          const char esc[6] = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 15]};
          out_.append(esc, 6);
        }
    }
  }
  out_.append(s.data() + run, s.size() - run);
  out_.push_back('"');
}

} // namespace troupe::kserve
