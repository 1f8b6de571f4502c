// codec: KServe v2 request decoding with simdjson (DOM) and hand-rolled response encoding.
#include "runtime/kserve/codec.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <simdjson.h>

#include "runtime/kserve/float16.hpp"
#include "runtime/kserve/json_writer.hpp"

namespace troupe::kserve {

// Binary tensors are little-endian on the wire and copied as-is.
static_assert(std::endian::native == std::endian::little,
              "the binary codec assumes a little-endian host");

namespace dom = simdjson::dom;

namespace {

// ---------------------------------------------------------------------------------------------
// Non-finite literals. simdjson accepts only RFC 8259 JSON, which has no NaN or Infinity. Triton
// parses with rapidjson's kParseNanAndInfFlag and Python's json.dumps writes the bare tokens, so
// real clients send them. When the text mentions them at all, a string-aware pass quotes the
// bare tokens; the element decoder then reads the quoted words as IEEE values.

bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/// Length of a bare NaN/Inf/Infinity token (with optional '-') at `i`, or 0.
size_t nonfinite_token_at(std::string_view s, size_t i) {
  size_t j = i;
  if (j < s.size() && s[j] == '-')
    ++j;
  for (std::string_view word :
       {std::string_view{"Infinity"}, std::string_view{"Inf"}, std::string_view{"NaN"}}) {
    if (s.substr(j, word.size()) == word) {
      const size_t end = j + word.size();
      if (end < s.size() && is_ident_char(s[end]))
        return 0;
      return end - i;
    }
  }
  return 0;
}

/// The text with every bare non-finite token outside strings wrapped in quotes, or nullopt
/// when there is none (the common case pays two memchr-speed searches).
std::optional<std::string> quote_nonfinite_tokens(std::string_view s) {
  if (s.find("NaN") == std::string_view::npos && s.find("Inf") == std::string_view::npos)
    return std::nullopt;
  std::string out;
  bool changed = false;
  bool in_string = false;
  size_t copied = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i; // skip the escaped character, whatever it is
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != 'N' && c != 'I' && c != '-')
      continue;
    // A token must start a value: not glued to a preceding identifier or number.
    if (i > 0 && (is_ident_char(s[i - 1]) || s[i - 1] == '.'))
      continue;
    const size_t n = nonfinite_token_at(s, i);
    if (n == 0)
      continue;
    if (!changed)
      out.reserve(s.size() + 64);
    changed = true;
    out.append(s.substr(copied, i - copied));
    out.push_back('"');
    out.append(s.substr(i, n));
    out.push_back('"');
    copied = i + n;
    i += n - 1;
  }
  if (!changed)
    return std::nullopt;
  out.append(s.substr(copied));
  return out;
}

std::optional<double> nonfinite_word(std::string_view w) {
  if (w == "NaN" || w == "-NaN")
    return std::numeric_limits<double>::quiet_NaN();
  if (w == "Infinity" || w == "Inf")
    return std::numeric_limits<double>::infinity();
  if (w == "-Infinity" || w == "-Inf")
    return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Parser reuse: a dom::parser keeps its buffers between documents, so each thread keeps one.

struct cached_parser {
  dom::parser parser;
  size_t depth = 0; // max depth the parser was allocated for; 0: not allocated

  dom::parser& get(size_t max_depth, simdjson::error_code& error) {
    error = simdjson::SUCCESS;
    if (depth != max_depth) {
      error = parser.allocate(std::max<size_t>(parser.capacity(), 4096), max_depth);
      depth = error ? 0 : max_depth;
    }
    return parser;
  }

  /// One large request must not pin several times its size per I/O thread for good.
  void shrink() {
    if (parser.capacity() > (size_t{4} << 20)) {
      parser = dom::parser{};
      depth = 0;
    }
  }
};

thread_local cached_parser thread_parser;

/// Calls shrink when the decode is over, whichever way it returns.
struct shrink_on_exit {
  ~shrink_on_exit() { thread_parser.shrink(); }
};

// By value: value_unsafe() returns a reference into the temporary simdjson_result, which a
// range-for over it would outlive.
dom::array as_array(dom::element e) {
  dom::array a = e.get_array().value_unsafe();
  return a;
}
dom::object as_object(dom::element e) {
  dom::object o = e.get_object().value_unsafe();
  return o;
}

const char* type_name(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY:
      return "array";
    case dom::element_type::OBJECT:
      return "object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE:
      return "number";
    case dom::element_type::STRING:
      return "string";
    case dom::element_type::BOOL:
      return "boolean";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "value";
}

status wrong_type(std::string_view where, const char* expected, dom::element e) {
  return make_error(errc::invalid_argument, "{}: expected {}, got {}", where, expected,
                    type_name(e.type()));
}

/// Non-negative integer field (priority, timeout, binary_data_size).
expected<uint64_t> get_count(dom::element e, std::string_view where) {
  if (e.type() == dom::element_type::UINT64)
    return e.get_uint64().value_unsafe();
  if (e.type() == dom::element_type::INT64) {
    const int64_t v = e.get_int64().value_unsafe();
    if (v < 0)
      return make_error(errc::invalid_argument, "{}: must not be negative, got {}", where, v);
    return static_cast<uint64_t>(v);
  }
  return wrong_type(where, "a non-negative integer", e);
}

expected<bool> get_bool(dom::element e, std::string_view where) {
  if (e.type() != dom::element_type::BOOL)
    return wrong_type(where, "true or false", e);
  return e.get_bool().value_unsafe();
}

expected<std::string_view> get_string(dom::element e, std::string_view where) {
  if (e.type() != dom::element_type::STRING)
    return wrong_type(where, "a string", e);
  return e.get_string().value_unsafe();
}

/// Rejects a key seen twice in one object: simdjson's DOM keeps both, and "last one wins"
/// would let a second `inputs` silently replace the first. A set, not a list: an object of
/// many (ignored) keys must not cost quadratic time on the I/O thread.
status check_unique_key(std::unordered_set<std::string_view>& seen, std::string_view key,
                        std::string_view where) {
  if (!seen.insert(key).second)
    return make_error(errc::invalid_argument, "{}: duplicate key '{}'", where, key);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Element conversion from JSON values to tensor elements.

bool to_double(dom::element e, double& out) {
  switch (e.type()) {
    case dom::element_type::DOUBLE:
      out = e.get_double().value_unsafe();
      return true;
    case dom::element_type::INT64:
      out = static_cast<double>(e.get_int64().value_unsafe());
      return true;
    case dom::element_type::UINT64:
      out = static_cast<double>(e.get_uint64().value_unsafe());
      return true;
    case dom::element_type::STRING: {
      auto v = nonfinite_word(e.get_string().value_unsafe());
      if (!v)
        return false;
      out = *v;
      return true;
    }
    default:
      return false;
  }
}

template <class Int> bool to_integer(dom::element e, Int& out) {
  if (e.type() == dom::element_type::INT64) {
    const int64_t v = e.get_int64().value_unsafe();
    if constexpr (std::is_signed_v<Int>) {
      if (v < std::numeric_limits<Int>::min() || v > std::numeric_limits<Int>::max())
        return false;
    } else {
      if (v < 0 || static_cast<uint64_t>(v) > std::numeric_limits<Int>::max())
        return false;
    }
    out = static_cast<Int>(v);
    return true;
  }
  if (e.type() == dom::element_type::UINT64) {
    const uint64_t v = e.get_uint64().value_unsafe();
    if (v > static_cast<uint64_t>(std::numeric_limits<Int>::max()))
      return false;
    out = static_cast<Int>(v);
    return true;
  }
  return false;
}

/// Converts one JSON scalar into element type T (storage type for f16/bf16 is uint16_t).
template <class T> bool convert(dom::element e, dtype type, T& out) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    double d;
    if (!to_double(e, d))
      return false;
    out = static_cast<T>(d);
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (e.type() != dom::element_type::BOOL)
      return false;
    out = e.get_bool().value_unsafe();
    return true;
  } else if constexpr (std::is_same_v<T, uint16_t>) {
    if (type == dtype::f16 || type == dtype::bf16) {
      double d;
      if (!to_double(e, d))
        return false;
      out = type == dtype::f16 ? float_to_half(static_cast<float>(d))
                               : float_to_bf16(static_cast<float>(d));
      return true;
    }
    return to_integer(e, out);
  } else {
    return to_integer(e, out);
  }
}

/// Walks flat or nested `data` in row-major order, writing up to `capacity` elements; keeps
/// counting past it so the error can say how many there were. Recursion depth is bounded by
/// the parser's max depth.
template <class T> class data_filler {
public:
  data_filler(dtype type, T* out, int64_t capacity) : type_(type), out_(out), capacity_(capacity) {}

  bool walk(dom::element e) {
    if (e.type() == dom::element_type::ARRAY) {
      for (dom::element child : as_array(e))
        if (!walk(child))
          return false;
      return true;
    }
    if (count_ < capacity_ && !convert(e, type_, out_[count_])) {
      bad_type_ = e.type();
      return false;
    }
    ++count_;
    return true;
  }

  int64_t count() const { return count_; }
  dom::element_type bad_type() const { return bad_type_; }

private:
  dtype type_;
  T* out_;
  int64_t capacity_;
  int64_t count_ = 0;
  dom::element_type bad_type_ = dom::element_type::NULL_VALUE;
};

/// Counts the scalars of `data` without storing them (for error messages).
int64_t count_scalars(dom::element e) {
  if (e.type() != dom::element_type::ARRAY)
    return 1;
  int64_t n = 0;
  for (dom::element child : as_array(e))
    n += count_scalars(child);
  return n;
}

status count_mismatch(const infer_input& in, int64_t numel, int64_t got) {
  return make_error(errc::invalid_argument, "input '{}': shape {} needs {} elements, data has {}",
                    in.name, to_string(in.dims), numel, got);
}

template <class T> status fill_json(infer_input& in, dom::element data, int64_t numel) {
  data_filler<T> filler(in.type, in.data.data<T>(), numel);
  if (!filler.walk(data)) {
    return make_error(errc::invalid_argument, "input '{}': data element {} is a {}, not a {} value",
                      in.name, filler.count(), type_name(filler.bad_type()), kserve_name(in.type));
  }
  if (filler.count() != numel)
    return count_mismatch(in, numel, filler.count());
  return {};
}

status fill_json_bytes(infer_input& in, dom::element data, int64_t numel) {
  in.strings.reserve(static_cast<size_t>(numel));
  status st;
  auto walk = [&](auto&& self, dom::element e) -> bool {
    if (e.type() == dom::element_type::ARRAY) {
      for (dom::element child : as_array(e))
        if (!self(self, child))
          return false;
      return true;
    }
    if (e.type() != dom::element_type::STRING) {
      st = make_error(errc::invalid_argument,
                      "input '{}': data element {} is a {}, not a BYTES string", in.name,
                      in.strings.size(), type_name(e.type()));
      return false;
    }
    in.strings.emplace_back(e.get_string().value_unsafe());
    return true;
  };
  if (!walk(walk, data))
    return st;
  if (static_cast<int64_t>(in.strings.size()) != numel)
    return count_mismatch(in, numel, static_cast<int64_t>(in.strings.size()));
  return {};
}

status fill_from_json(infer_input& in, dom::element data, int64_t numel, size_t json_size) {
  // Every element takes at least one byte of JSON; a larger shape cannot match, and checking
  // first keeps a hostile shape from allocating gigabytes.
  if (static_cast<uint64_t>(numel) > json_size)
    return count_mismatch(in, numel, count_scalars(data));
  if (in.type == dtype::string)
    return fill_json_bytes(in, data, numel);
  in.data = tensor::empty(in.type, in.dims);
  switch (in.type) {
    case dtype::f32:
      return fill_json<float>(in, data, numel);
    case dtype::f64:
      return fill_json<double>(in, data, numel);
    case dtype::f16:
    case dtype::bf16:
    case dtype::u16:
      return fill_json<uint16_t>(in, data, numel);
    case dtype::i8:
      return fill_json<int8_t>(in, data, numel);
    case dtype::i16:
      return fill_json<int16_t>(in, data, numel);
    case dtype::i32:
      return fill_json<int32_t>(in, data, numel);
    case dtype::i64:
      return fill_json<int64_t>(in, data, numel);
    case dtype::u8:
      return fill_json<uint8_t>(in, data, numel);
    case dtype::u32:
      return fill_json<uint32_t>(in, data, numel);
    case dtype::u64:
      return fill_json<uint64_t>(in, data, numel);
    case dtype::boolean:
      return fill_json<bool>(in, data, numel);
    default:
      return make_error(errc::internal, "input '{}': no JSON reader for {}", in.name,
                        kserve_name(in.type));
  }
}

status fill_from_binary(infer_input& in, std::string_view bytes, int64_t numel) {
  if (in.type == dtype::string) {
    // Each element: a 4-byte little-endian length, then that many bytes.
    in.strings.reserve(
        static_cast<size_t>(std::min<int64_t>(numel, static_cast<int64_t>(bytes.size() / 4))));
    size_t pos = 0;
    while (pos < bytes.size()) {
      if (bytes.size() - pos < 4)
        return make_error(errc::invalid_argument,
                          "input '{}': BYTES element {} has a truncated 4-byte length", in.name,
                          in.strings.size());
      uint32_t len;
      std::memcpy(&len, bytes.data() + pos, 4);
      pos += 4;
      if (len > bytes.size() - pos)
        return make_error(errc::invalid_argument,
                          "input '{}': BYTES element {} claims {} bytes, {} are left", in.name,
                          in.strings.size(), len, bytes.size() - pos);
      if (static_cast<int64_t>(in.strings.size()) == numel) // stop before building the rest
        return make_error(errc::invalid_argument,
                          "input '{}': shape {} needs {} elements, data has more", in.name,
                          to_string(in.dims), numel);
      in.strings.emplace_back(bytes.substr(pos, len));
      pos += len;
    }
    if (static_cast<int64_t>(in.strings.size()) != numel)
      return count_mismatch(in, numel, static_cast<int64_t>(in.strings.size()));
    return {};
  }
  auto expected_bytes = checked_bytes(in.dims, size_of(in.type));
  if (!expected_bytes)
    return expected_bytes.error().with_context(fmt::format("input '{}'", in.name));
  if (static_cast<uint64_t>(*expected_bytes) != bytes.size())
    return make_error(errc::invalid_argument,
                      "input '{}': binary_data_size is {} but shape {} of {} needs {} bytes",
                      in.name, bytes.size(), to_string(in.dims), kserve_name(in.type),
                      *expected_bytes);
  // Copied into aligned host memory: executors want 64-byte alignment, the body has none.
  in.data = tensor::empty(in.type, in.dims);
  if (!bytes.empty())
    std::memcpy(in.data.raw(), bytes.data(), bytes.size());
  return {};
}

struct pending_input {
  infer_input input;
  std::optional<dom::element> data;
  std::optional<uint64_t> binary_size;
};

expected<pending_input> decode_input(dom::element e, size_t index, const decode_options& options) {
  const std::string where = fmt::format("inputs[{}]", index);
  if (e.type() != dom::element_type::OBJECT)
    return wrong_type(where, "an object", e);
  pending_input p;
  std::unordered_set<std::string_view> seen;
  bool have_name = false, have_type = false, have_shape = false;
  for (auto field : as_object(e)) {
    TROUPE_TRY_STATUS(check_unique_key(seen, field.key, where));
    if (field.key == "name") {
      auto s = get_string(field.value, where + ".name");
      if (!s)
        return s.error();
      p.input.name = std::string(*s);
      have_name = true;
    } else if (field.key == "datatype") {
      auto s = get_string(field.value, where + ".datatype");
      if (!s)
        return s.error();
      auto t = dtype_from_kserve(*s);
      if (!t)
        return make_error(errc::invalid_argument, "{}.datatype: unknown datatype '{}'", where, *s);
      p.input.type = *t;
      have_type = true;
    } else if (field.key == "shape") {
      if (field.value.type() != dom::element_type::ARRAY)
        return wrong_type(where + ".shape", "an array of integers", field.value);
      for (dom::element d : as_array(field.value)) {
        if (p.input.dims.size() == options.max_rank)
          return make_error(errc::invalid_argument, "{}.shape: more than {} dimensions", where,
                            options.max_rank);
        if (d.type() == dom::element_type::INT64)
          p.input.dims.push_back(d.get_int64().value_unsafe());
        else if (d.type() == dom::element_type::UINT64)
          return make_error(errc::out_of_range, "{}.shape: dimension {} does not fit in 64 bits",
                            where, d.get_uint64().value_unsafe());
        else
          return wrong_type(where + ".shape", "integer dimensions", d);
      }
      have_shape = true;
    } else if (field.key == "parameters") {
      if (field.value.type() != dom::element_type::OBJECT)
        return wrong_type(where + ".parameters", "an object", field.value);
      for (auto param : as_object(field.value)) {
        if (param.key == "binary_data_size") {
          auto n = get_count(param.value, where + ".parameters.binary_data_size");
          if (!n)
            return n.error();
          p.binary_size = *n;
        }
      }
    } else if (field.key == "data") {
      p.data = field.value;
    }
  }
  if (!have_name)
    return make_error(errc::invalid_argument, "{}: missing 'name'", where);
  if (p.input.name.empty())
    return make_error(errc::invalid_argument, "{}: empty input name", where);
  const std::string named = fmt::format("input '{}'", p.input.name);
  if (!have_type)
    return make_error(errc::invalid_argument, "{}: missing 'datatype'", named);
  if (!have_shape)
    return make_error(errc::invalid_argument, "{}: missing 'shape'", named);
  if (p.data && p.binary_size)
    return make_error(errc::invalid_argument, "{}: has both 'data' and binary_data_size", named);
  if (!p.data && !p.binary_size)
    return make_error(errc::invalid_argument, "{}: has neither 'data' nor binary_data_size", named);
  return p;
}

status decode_outputs(dom::element e, infer_request& request) {
  if (e.type() != dom::element_type::ARRAY)
    return wrong_type("outputs", "an array", e);
  std::unordered_set<std::string_view> names;
  size_t index = 0;
  for (dom::element o : as_array(e)) {
    const std::string where = fmt::format("outputs[{}]", index++);
    if (o.type() != dom::element_type::OBJECT)
      return wrong_type(where, "an object", o);
    requested_output out;
    bool have_name = false;
    std::unordered_set<std::string_view> seen;
    for (auto field : as_object(o)) {
      TROUPE_TRY_STATUS(check_unique_key(seen, field.key, where));
      if (field.key == "name") {
        auto s = get_string(field.value, where + ".name");
        if (!s)
          return s.error();
        if (!names.insert(*s).second)
          return make_error(errc::invalid_argument, "duplicate output name '{}'", *s);
        out.name = std::string(*s);
        have_name = true;
      } else if (field.key == "parameters") {
        if (field.value.type() != dom::element_type::OBJECT)
          return wrong_type(where + ".parameters", "an object", field.value);
        for (auto param : as_object(field.value)) {
          if (param.key == "binary_data") {
            auto b = get_bool(param.value, where + ".parameters.binary_data");
            if (!b)
              return b.error();
            out.binary_data = *b;
          } else if (param.key == "classification") {
            return make_error(errc::unsupported,
                              "{}: the classification extension is not supported", where);
          }
        }
      }
    }
    if (!have_name)
      return make_error(errc::invalid_argument, "{}: missing 'name'", where);
    request.outputs.push_back(std::move(out));
  }
  return {};
}

status decode_parameters(dom::element e, request_parameters& params) {
  if (e.type() != dom::element_type::OBJECT)
    return wrong_type("parameters", "an object", e);
  for (auto field : as_object(e)) {
    if (field.key == "priority") {
      auto n = get_count(field.value, "parameters.priority");
      if (!n)
        return n.error();
      params.priority = *n;
    } else if (field.key == "timeout") {
      auto n = get_count(field.value, "parameters.timeout");
      if (!n)
        return n.error();
      params.timeout_us = *n;
    } else if (field.key == "binary_data_output") {
      auto b = get_bool(field.value, "parameters.binary_data_output");
      if (!b)
        return b.error();
      params.binary_data_output = *b;
    }
  }
  return {};
}

status json_error(simdjson::error_code code, size_t max_depth) {
  if (code == simdjson::DEPTH_ERROR)
    return make_error(errc::invalid_argument, "JSON is nested deeper than the limit of {} levels",
                      max_depth);
  if (code == simdjson::MEMALLOC || code == simdjson::CAPACITY)
    return make_error(errc::resource_exhausted, "JSON parser: {}", simdjson::error_message(code));
  return make_error(errc::parse_error, "malformed JSON: {}", simdjson::error_message(code));
}

} // namespace

expected<size_t> parse_header_length(std::string_view text, size_t body_size) {
  const std::string_view field = header_length_field;
  if (text.empty())
    return make_error(errc::invalid_argument, "{} is empty", field);
  if (text.front() == '-')
    return make_error(errc::invalid_argument, "{} must not be negative, got '{}'", field,
                      text.substr(0, 32));
  // from_chars takes no sign, spaces or base prefix; requiring it to consume everything turns
  // "12abc", "1 2" and "0x10" into errors instead of 12, 1 and 0.
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    return make_error(errc::invalid_argument, "{} '{}' is too large", field, text.substr(0, 32));
  if (ec != std::errc{} || end != text.data() + text.size())
    return make_error(errc::invalid_argument, "{} is not a decimal number: '{}'", field,
                      text.substr(0, 32));
  if (value > body_size)
    return make_error(errc::invalid_argument, "{} {} is larger than the body ({} bytes)", field,
                      value, body_size);
  return static_cast<size_t>(value);
}

expected<infer_request> decode_infer_request(std::string_view body,
                                             std::optional<std::string_view> header_length,
                                             const decode_options& options) {
  std::string_view json = body;
  std::string_view binary;
  if (header_length) {
    auto n = parse_header_length(*header_length, body.size());
    if (!n)
      return n.error();
    json = body.substr(0, *n);
    binary = body.substr(*n);
  }

  const std::optional<std::string> quoted = quote_nonfinite_tokens(json);
  const std::string_view text = quoted ? std::string_view{*quoted} : json;
  simdjson::error_code error;
  const shrink_on_exit shrink;
  dom::parser& parser = thread_parser.get(options.max_json_depth, error);
  if (error)
    return json_error(error, options.max_json_depth);
  dom::element root;
  if (auto err = parser.parse(text.data(), text.size(), true).get(root))
    return json_error(err, options.max_json_depth);
  if (root.type() != dom::element_type::OBJECT)
    return wrong_type("request", "a JSON object", root);

  infer_request request;
  std::optional<dom::element> inputs;
  std::unordered_set<std::string_view> seen;
  for (auto field : as_object(root)) {
    TROUPE_TRY_STATUS(check_unique_key(seen, field.key, "request"));
    if (field.key == "id") {
      auto s = get_string(field.value, "id");
      if (!s)
        return s.error();
      request.id = std::string(*s);
    } else if (field.key == "parameters") {
      TROUPE_TRY_STATUS(decode_parameters(field.value, request.parameters));
    } else if (field.key == "inputs") {
      inputs = field.value;
    } else if (field.key == "outputs") {
      TROUPE_TRY_STATUS(decode_outputs(field.value, request));
    }
  }
  if (!inputs)
    return make_error(errc::invalid_argument, "request has no 'inputs'");
  if (inputs->type() != dom::element_type::ARRAY)
    return wrong_type("inputs", "an array", *inputs);

  std::unordered_set<std::string> names;
  size_t binary_pos = 0;
  size_t index = 0;
  for (dom::element e : as_array(*inputs)) {
    auto p = decode_input(e, index++, options);
    if (!p)
      return p.error();
    infer_input& in = p->input;
    if (!names.insert(in.name).second)
      return make_error(errc::invalid_argument, "duplicate input name '{}'", in.name);
    auto numel = checked_numel(in.dims);
    if (!numel)
      return numel.error().with_context(fmt::format("input '{}'", in.name));
    if (p->data) {
      TROUPE_TRY_STATUS(fill_from_json(in, *p->data, *numel, text.size()));
    } else {
      if (!header_length)
        return make_error(errc::invalid_argument,
                          "input '{}': binary_data_size without an {} header", in.name,
                          header_length_field);
      const uint64_t size = *p->binary_size;
      if (size > binary.size() - binary_pos)
        return make_error(errc::invalid_argument,
                          "input '{}': binary_data_size {} runs past the body ({} bytes left)",
                          in.name, size, binary.size() - binary_pos);
      TROUPE_TRY_STATUS(fill_from_binary(in, binary.substr(binary_pos, size), *numel));
      binary_pos += size;
    }
    request.inputs.push_back(std::move(in));
  }
  if (request.inputs.empty())
    return make_error(errc::invalid_argument, "request has no inputs");
  if (binary_pos != binary.size())
    return make_error(errc::invalid_argument,
                      "{} bytes after the JSON header are not claimed by any binary_data_size",
                      binary.size() - binary_pos);
  return request;
}

bool wants_binary(const infer_request& request, std::string_view name) {
  for (const auto& o : request.outputs)
    if (o.name == name && o.binary_data)
      return *o.binary_data;
  return request.parameters.binary_data_output;
}

// ---------------------------------------------------------------------------------------------
// Encoding.

namespace {

/// Most characters one element of `t` takes in JSON, comma included.
size_t max_chars(dtype t) {
  switch (t) {
    case dtype::f64:
      return 26;
    case dtype::i64:
    case dtype::u64:
      return 21;
    default:
      return 17; // float shortest form ("-1.1754944e-38"), int32, "false"
  }
}

template <class T, class Write>
void write_elements(std::string& out, const tensor& t, Write write) {
  const size_t n = static_cast<size_t>(t.numel());
  const size_t start = out.size();
  out.resize(start + n * max_chars(t.type()));
  char* p = out.data() + start;
  const T* v = t.data<T>();
  for (size_t i = 0; i < n; ++i) {
    if (i)
      *p++ = ',';
    p = write(p, v[i]);
  }
  out.resize(static_cast<size_t>(p - out.data()));
}

char* write_int(char* p, auto v) { return std::to_chars(p, p + 24, v).ptr; }

void write_data(std::string& out, const tensor& t) {
  switch (t.type()) {
    case dtype::f32:
      return write_elements<float>(out, t,
                                   [](char* p, float v) { return write_json_number(p, v); });
    case dtype::f64:
      return write_elements<double>(out, t,
                                    [](char* p, double v) { return write_json_number(p, v); });
    case dtype::f16:
      return write_elements<uint16_t>(
          out, t, [](char* p, uint16_t v) { return write_json_number(p, half_to_float(v)); });
    case dtype::bf16:
      return write_elements<uint16_t>(
          out, t, [](char* p, uint16_t v) { return write_json_number(p, bf16_to_float(v)); });
    case dtype::i8:
      return write_elements<int8_t>(out, t, [](char* p, int8_t v) { return write_int(p, int{v}); });
    case dtype::i16:
      return write_elements<int16_t>(out, t, [](char* p, int16_t v) { return write_int(p, v); });
    case dtype::i32:
      return write_elements<int32_t>(out, t, [](char* p, int32_t v) { return write_int(p, v); });
    case dtype::i64:
      return write_elements<int64_t>(out, t, [](char* p, int64_t v) { return write_int(p, v); });
    case dtype::u8:
      return write_elements<uint8_t>(out, t,
                                     [](char* p, uint8_t v) { return write_int(p, unsigned{v}); });
    case dtype::u16:
      return write_elements<uint16_t>(out, t, [](char* p, uint16_t v) { return write_int(p, v); });
    case dtype::u32:
      return write_elements<uint32_t>(out, t, [](char* p, uint32_t v) { return write_int(p, v); });
    case dtype::u64:
      return write_elements<uint64_t>(out, t, [](char* p, uint64_t v) { return write_int(p, v); });
    case dtype::boolean:
      return write_elements<bool>(out, t, [](char* p, bool v) {
        const std::string_view s = v ? "true" : "false";
        std::memcpy(p, s.data(), s.size());
        return p + s.size();
      });
    default:
      return;
  }
}

void write_dims(json_writer& w, const shape& dims) {
  w.raw('[');
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i)
      w.raw(',');
    w.integer(dims[i]);
  }
  w.raw(']');
}

/// Bytes of the binary form of a BYTES tensor.
size_t bytes_binary_size(const std::vector<std::string>& strings) {
  size_t n = 0;
  for (const auto& s : strings)
    n += 4 + s.size();
  return n;
}

status check_output(const infer_output& o) {
  auto numel = checked_numel(o.dims);
  if (!numel)
    return numel.error().with_context(fmt::format("output '{}'", o.name));
  if (o.type == dtype::string) {
    if (static_cast<int64_t>(o.strings.size()) != *numel)
      return make_error(errc::invalid_argument, "output '{}': shape {} but {} BYTES elements",
                        o.name, to_string(o.dims), o.strings.size());
    for (const auto& s : o.strings)
      if (s.size() > std::numeric_limits<uint32_t>::max())
        return make_error(errc::invalid_argument, "output '{}': a BYTES element over 4 GiB",
                          o.name);
    return {};
  }
  if (!o.data.defined() || o.data.type() != o.type || o.data.dims() != o.dims ||
      o.data.where().type != device::kind::cpu)
    return make_error(errc::invalid_argument,
                      "output '{}': tensor does not match {} {} on the host", o.name,
                      kserve_name(o.type), to_string(o.dims));
  return {};
}

void write_tensor_header(json_writer& w, std::string_view name, dtype type, const shape& dims) {
  w.raw('{');
  w.key("name");
  w.string(name);
  w.raw(',');
  w.key("datatype");
  w.string(kserve_name(type));
  w.raw(',');
  w.key("shape");
  write_dims(w, dims);
}

} // namespace

expected<encoded_body> encode_infer_response(const infer_response& response) {
  size_t estimate = 128 + response.model_name.size() + response.id.size();
  bool any_binary = false;
  for (const auto& o : response.outputs) {
    TROUPE_TRY_STATUS(check_output(o));
    any_binary |= o.binary;
    if (!o.binary)
      estimate += o.type == dtype::string ? bytes_binary_size(o.strings) * 2
                                          : static_cast<size_t>(o.data.numel()) * max_chars(o.type);
    estimate += 96 + o.name.size();
  }
  encoded_body result;
  std::string& out = result.body;
  out.reserve(estimate);
  json_writer w(out);
  w.raw('{');
  w.key("model_name");
  w.string(response.model_name);
  if (!response.model_version.empty()) {
    w.raw(',');
    w.key("model_version");
    w.string(response.model_version);
  }
  if (!response.id.empty()) {
    w.raw(',');
    w.key("id");
    w.string(response.id);
  }
  w.raw(',');
  w.key("outputs");
  w.raw('[');
  size_t binary_total = 0;
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const infer_output& o = response.outputs[i];
    if (i)
      w.raw(',');
    write_tensor_header(w, o.name, o.type, o.dims);
    w.raw(',');
    if (o.binary) {
      const size_t size = o.type == dtype::string ? bytes_binary_size(o.strings) : o.data.nbytes();
      binary_total += size;
      w.key("parameters");
      w.raw('{');
      w.key("binary_data_size");
      w.integer(size);
      w.raw('}');
    } else {
      w.key("data");
      w.raw('[');
      if (o.type == dtype::string) {
        for (size_t k = 0; k < o.strings.size(); ++k) {
          if (k)
            w.raw(',');
          w.string(o.strings[k]);
        }
      } else {
        write_data(out, o.data);
      }
      w.raw(']');
    }
    w.raw('}');
  }
  w.raw("]}");
  if (!any_binary)
    return result;

  result.json_length = out.size();
  out.reserve(out.size() + binary_total);
  for (const auto& o : response.outputs) {
    if (!o.binary)
      continue;
    if (o.type == dtype::string) {
      for (const auto& s : o.strings) {
        const auto len = static_cast<uint32_t>(s.size());
        char prefix[4];
        std::memcpy(prefix, &len, 4);
        out.append(prefix, 4);
        out.append(s);
      }
    } else {
      out.append(static_cast<const char*>(o.data.raw()), o.data.nbytes());
    }
  }
  return result;
}

std::string encode_model_metadata(const model_metadata& m) {
  std::string out;
  json_writer w(out);
  w.raw('{');
  w.key("name");
  w.string(m.name);
  w.raw(',');
  w.key("versions");
  w.raw('[');
  for (size_t i = 0; i < m.versions.size(); ++i) {
    if (i)
      w.raw(',');
    w.string(m.versions[i]);
  }
  w.raw("],");
  w.key("platform");
  w.string(m.platform);
  for (auto [key, list] : {std::pair{"inputs", &m.inputs}, std::pair{"outputs", &m.outputs}}) {
    w.raw(',');
    w.key(key);
    w.raw('[');
    for (size_t i = 0; i < list->size(); ++i) {
      if (i)
        w.raw(',');
      write_tensor_header(w, (*list)[i].name, (*list)[i].type, (*list)[i].dims);
      w.raw('}');
    }
    w.raw(']');
  }
  w.raw('}');
  return out;
}

std::string encode_server_metadata(const server_metadata& m) {
  std::string out;
  json_writer w(out);
  w.raw('{');
  w.key("name");
  w.string(m.name);
  w.raw(',');
  w.key("version");
  w.string(m.version);
  w.raw(',');
  w.key("extensions");
  w.raw('[');
  for (size_t i = 0; i < m.extensions.size(); ++i) {
    if (i)
      w.raw(',');
    w.string(m.extensions[i]);
  }
  w.raw("]}");
  return out;
}

std::string encode_model_ready(std::string_view name, std::string_view version, bool ready) {
  std::string out;
  json_writer w(out);
  w.raw('{');
  w.key("name");
  w.string(name);
  if (!version.empty()) {
    w.raw(',');
    w.key("version");
    w.string(version);
  }
  w.raw(',');
  w.key("ready");
  w.boolean(ready);
  w.raw('}');
  return out;
}

std::string encode_error(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 16);
  json_writer w(out);
  w.raw('{');
  w.key("error");
  w.string(message);
  w.raw('}');
  return out;
}

} // namespace troupe::kserve
