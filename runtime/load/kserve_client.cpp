// kserve_client: the client side of KServe v2 over HTTP for the load generator: request
// bodies (JSON and the binary tensor extension) and reply/metadata decoding.
#include "runtime/load/kserve_client.hpp"

#include <cstring>

#include <fmt/format.h>
#include <simdjson.h>

namespace troupe::load {

namespace {

// The datatypes the load generator sends (troupe::kserve_name covers all; these are the
// ones append_data can write).
const char* wire_name(dtype t) {
  switch (t) {
    case dtype::f32: return "FP32";
    case dtype::f64: return "FP64";
    case dtype::i32: return "INT32";
    case dtype::i64: return "INT64";
    case dtype::u8: return "UINT8";
    case dtype::boolean: return "BOOL";
    default: return nullptr;
  }
}

void append_shape(std::string& o, const shape& dims) {
  o += "[";
  for (size_t i = 0; i < dims.size(); ++i)
    o += fmt::format("{}{}", i ? "," : "", dims[i]);
  o += "]";
}

void append_parameters(std::string& o, const load_request& r, bool binary_output) {
  std::vector<std::string> params;
  if (r.priority)
    params.push_back(fmt::format("\"priority\":{}", r.priority));
  if (r.timeout_us > 0)
    params.push_back(fmt::format("\"timeout\":{}", r.timeout_us));
  if (binary_output)
    params.push_back("\"binary_data_output\":true");
  if (params.empty())
    return;
  o += ",\"parameters\":{";
  for (size_t i = 0; i < params.size(); ++i)
    o += (i ? "," : "") + params[i];
  o += "}";
}

status check_inputs(const load_request& r) {
  if (!r.model || r.model->inputs.size() != r.inputs.size())
    return make_error(errc::invalid_argument, "request has {} inputs, the model {}",
                      r.inputs.size(), r.model ? r.model->inputs.size() : 0);
  for (const auto& t : r.inputs)
    if (!wire_name(t.type()))
      return make_error(errc::unsupported, "cannot send {} tensors", to_string(t.type()));
  return status::ok();
}

void append_data(std::string& o, const tensor& t) {
  const int64_t n = t.numel();
  o.reserve(o.size() + static_cast<size_t>(n) * 12);
  for (int64_t i = 0; i < n; ++i) {
    if (i)
      o += ',';
    switch (t.type()) {
      // Shortest round-trip form: the server reads back exactly the float we hold.
      case dtype::f32: fmt::format_to(std::back_inserter(o), "{}", t.data<float>()[i]); break;
      case dtype::f64: fmt::format_to(std::back_inserter(o), "{}", t.data<double>()[i]); break;
      case dtype::i32: fmt::format_to(std::back_inserter(o), "{}", t.data<int32_t>()[i]); break;
      case dtype::i64: fmt::format_to(std::back_inserter(o), "{}", t.data<int64_t>()[i]); break;
      case dtype::u8: fmt::format_to(std::back_inserter(o), "{}", t.data<uint8_t>()[i]); break;
      case dtype::boolean: o += t.data<uint8_t>()[i] ? "true" : "false"; break;
      default: break;
    }
  }
}

/// Appends every number of a flat or nested array, converted to T.
template <class T>
status flatten(simdjson::dom::element e, std::vector<T>& out) {
  if (e.is_array()) {
    for (auto child : e.get_array())
      TROUPE_TRY_STATUS(flatten(child, out));
    return status::ok();
  }
  double d = 0;
  if (e.is_bool())
    d = bool(e) ? 1 : 0;
  else if (e.is_int64())
    d = static_cast<double>(int64_t(e));
  else if (e.is_uint64())
    d = static_cast<double>(uint64_t(e));
  else if (e.get_double().get(d) != simdjson::SUCCESS)
    return make_error(errc::parse_error, "reply data holds a non-number");
  out.push_back(static_cast<T>(d));
  return status::ok();
}

expected<shape> shape_of(simdjson::dom::element e) {
  simdjson::dom::array a;
  if (e.get_array().get(a) != simdjson::SUCCESS)
    return make_error(errc::parse_error, "shape is not a list");
  shape dims;
  for (auto d : a) {
    int64_t v = 0;
    if (d.get_int64().get(v) != simdjson::SUCCESS)
      return make_error(errc::parse_error, "shape holds a non-integer");
    dims.push_back(v);
  }
  return dims;
}

} // namespace

expected<std::string> encode_json_request(const load_request& r) {
  TROUPE_TRY_STATUS(check_inputs(r));
  std::string o = "{\"inputs\":[";
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const auto& t = r.inputs[i];
    o += fmt::format("{}{{\"name\":\"{}\",\"shape\":", i ? "," : "", r.model->inputs[i].name);
    append_shape(o, t.dims());
    o += fmt::format(",\"datatype\":\"{}\",\"data\":[", wire_name(t.type()));
    append_data(o, t);
    o += "]}";
  }
  o += "]";
  append_parameters(o, r, false);
  return o + "}";
}

expected<std::string> encode_binary_request(const load_request& r, size_t& header_length) {
  TROUPE_TRY_STATUS(check_inputs(r));
  std::string o = "{\"inputs\":[";
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const auto& t = r.inputs[i];
    o += fmt::format("{}{{\"name\":\"{}\",\"shape\":", i ? "," : "", r.model->inputs[i].name);
    append_shape(o, t.dims());
    o += fmt::format(",\"datatype\":\"{}\",\"parameters\":{{\"binary_data_size\":{}}}}}",
                     wire_name(t.type()), t.nbytes());
  }
  o += "]";
  append_parameters(o, r, true);
  o += "}";
  header_length = o.size();
  for (const auto& t : r.inputs)
    o.append(static_cast<const char*>(t.raw()), t.nbytes());
  return o;
}

expected<std::vector<tensor>> decode_infer_response(std::string_view body,
                                                    std::optional<size_t> header_length) {
  const size_t json_len = header_length.value_or(body.size());
  if (json_len > body.size())
    return make_error(errc::parse_error, "Inference-Header-Content-Length {} exceeds the body ({})",
                      json_len, body.size());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), json_len).get(doc); err)
    return make_error(errc::parse_error, "reply is not JSON: {}", simdjson::error_message(err));
  simdjson::dom::array outputs;
  if (doc["outputs"].get_array().get(outputs) != simdjson::SUCCESS)
    return make_error(errc::parse_error, "reply has no outputs list");
  std::vector<tensor> out;
  size_t binary_at = json_len;
  for (auto o : outputs) {
    auto dims = shape_of(o["shape"]);
    if (!dims)
      return dims.error();
    auto n = checked_numel(*dims);
    if (!n)
      return n.error();
    std::string_view type;
    if (o["datatype"].get_string().get(type) != simdjson::SUCCESS)
      return make_error(errc::parse_error, "reply output has no datatype");
    uint64_t binary_size = 0;
    const bool binary =
        o["parameters"]["binary_data_size"].get_uint64().get(binary_size) == simdjson::SUCCESS;
    if (binary) {
      auto t = dtype_from_kserve(type);
      if (!t || *t == dtype::string)
        return make_error(errc::unsupported, "reply output datatype {}", type);
      tensor v = tensor::empty(*t, *dims);
      if (binary_size != v.nbytes() || binary_at + binary_size > body.size())
        return make_error(errc::parse_error, "binary output of {} bytes does not fit", binary_size);
      std::memcpy(v.raw(), body.data() + binary_at, binary_size);
      binary_at += binary_size;
      out.push_back(std::move(v));
      continue;
    }
    // JSON data: only what accuracy needs (float logits) is decoded exactly; other types are
    // converted to float32 too, the runner only reads the argmax.
    std::vector<float> values;
    simdjson::dom::element data;
    if (o["data"].get(data) != simdjson::SUCCESS)
      return make_error(errc::parse_error, "reply output has neither data nor binary_data_size");
    TROUPE_TRY_STATUS(flatten(data, values));
    if (static_cast<int64_t>(values.size()) != *n)
      return make_error(errc::parse_error, "reply output shape {} holds {} values, data has {}",
                        troupe::to_string(std::span<const int64_t>(*dims)), *n, values.size());
    out.push_back(tensor::from_vector<float>(*dims, values));
  }
  return out;
}

expected<model_info> decode_model_metadata(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc); err)
    return make_error(errc::parse_error, "metadata is not JSON: {}", simdjson::error_message(err));
  model_info m;
  std::string_view name;
  if (doc["name"].get_string().get(name) == simdjson::SUCCESS)
    m.name = std::string(name);
  for (const char* key : {"inputs", "outputs"}) {
    simdjson::dom::array list;
    if (doc[key].get_array().get(list) != simdjson::SUCCESS)
      return make_error(errc::parse_error, "metadata has no {} list", key);
    for (auto t : list) {
      value_info v;
      std::string_view tname, type;
      if (t["name"].get_string().get(tname) != simdjson::SUCCESS ||
          t["datatype"].get_string().get(type) != simdjson::SUCCESS)
        return make_error(errc::parse_error, "metadata {} entry lacks name or datatype", key);
      auto dt = dtype_from_kserve(type);
      if (!dt)
        return make_error(errc::unsupported, "metadata datatype {}", type);
      auto dims = shape_of(t["shape"]);
      if (!dims)
        return dims.error();
      v.name = std::string(tname);
      v.type = *dt;
      v.dims = std::move(*dims);
      (std::string_view(key) == "inputs" ? m.inputs : m.outputs).push_back(std::move(v));
    }
  }
  return m;
}

std::string error_message_of(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view message;
  if (parser.parse(body.data(), body.size()).get(doc) == simdjson::SUCCESS &&
      doc["error"].get_string().get(message) == simdjson::SUCCESS)
    return std::string(message);
  return std::string(body.substr(0, 200));
}

} // namespace troupe::load
