// onnx_import: ModelProto -> graph, TensorProto -> tensor.
#include "runtime/onnx_import.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>

#include <onnx/onnx_pb.h>

#include "runtime/stripped_weights.hpp"

namespace troupe {
namespace {

expected<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in)
    return make_error(errc::not_found, "{}: cannot open file", path);
  auto size = static_cast<std::streamoff>(in.tellg());
  if (size < 0)
    return make_error(errc::parse_error, "{}: cannot read file", path);
  if (static_cast<size_t>(size) > max_onnx_file_bytes)
    return make_error(errc::resource_exhausted, "{}: file of {} bytes exceeds the {} byte limit",
                      path, size, max_onnx_file_bytes);
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size))
    return make_error(errc::parse_error, "{}: short read", path);
  return bytes;
}

template <class T, class Field>
void copy_field(const Field& field, tensor& t) {
  T* out = t.data<T>();
  for (int i = 0; i < field.size(); ++i)
    out[i] = static_cast<T>(field.Get(i));
}

expected<attribute> convert_attribute(const onnx::AttributeProto& a) {
  using A = onnx::AttributeProto;
  switch (a.type()) {
    case A::INT: return attribute{static_cast<int64_t>(a.i())};
    case A::FLOAT: return attribute{a.f()};
    case A::STRING: return attribute{a.s()};
    case A::INTS: return attribute{std::vector<int64_t>(a.ints().begin(), a.ints().end())};
    case A::FLOATS: return attribute{std::vector<float>(a.floats().begin(), a.floats().end())};
    case A::STRINGS: return attribute{std::vector<std::string>(a.strings().begin(), a.strings().end())};
    case A::TENSOR: {
      auto t = tensor_from_onnx(a.t());
      if (!t)
        return t.error();
      return attribute{std::move(*t)};
    }
    default:
      return make_error(errc::unsupported, "attribute '{}' has an unsupported type ({})", a.name(),
                        static_cast<int>(a.type()));
  }
}

expected<value_info> convert_value_info(const onnx::ValueInfoProto& v) {
  value_info info;
  info.name = v.name();
  if (!v.type().has_tensor_type())
    return make_error(errc::unsupported, "value '{}' is not a tensor", v.name());
  const auto& tt = v.type().tensor_type();
  auto type = dtype_from_onnx(tt.elem_type());
  if (!type)
    return make_error(errc::unsupported, "value '{}' has unsupported element type {}", v.name(),
                      tt.elem_type());
  info.type = *type;
  if (tt.has_shape())
    for (const auto& d : tt.shape().dim())
      info.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
  return info;
}

/// External data: troupe loads only initializers that tools/strip_weights.py stripped.
expected<tensor> stripped_tensor(const onnx::TensorProto& proto, dtype type, const shape& dims,
                                 int64_t bytes, const std::string& label) {
  stripped_values what{proto.name(), type, dims, 0, 0};
  bool stripped = false, has_mean = false, has_std = false;
  for (const auto& entry : proto.external_data()) {
    const std::string& key = entry.key();
    const std::string& value = entry.value();
    if (key == "location") {
      stripped = value == stripped_weights_location;
    } else if (key == "mean" || key == "std") {
      double number = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
      if (ec != std::errc{} || end != value.data() + value.size())
        return make_error(errc::parse_error, "{}: external data entry '{}' is not a number: '{}'",
                          label, key, value);
      (key == "mean" ? what.mean : what.stddev) = number;
      (key == "mean" ? has_mean : has_std) = true;
    }
  }
  if (!stripped)
    return make_error(errc::unsupported, "{} uses external data, which troupe does not load",
                      label);
  if (!has_mean || !has_std)
    return make_error(errc::parse_error, "{} was stripped without its 'mean' and 'std'", label);
  // Nothing in the file backs these dims: a hostile one could promise terabytes.
  if (static_cast<size_t>(bytes) > max_onnx_file_bytes)
    return make_error(errc::resource_exhausted, "{}: stripped values of {} bytes exceed the {} "
                      "byte limit", label, bytes, max_onnx_file_bytes);
  auto values = fill_stripped(what);
  if (!values)
    return values.error().with_context(label);
  return values;
}

} // namespace

expected<tensor> tensor_from_onnx(const onnx::TensorProto& proto) {
  const std::string label = proto.name().empty() ? std::string{"tensor"} : "tensor '" + proto.name() + "'";
  auto type = dtype_from_onnx(proto.data_type());
  if (!type || *type == dtype::string)
    return make_error(errc::unsupported, "{} has unsupported element type {}", label,
                      proto.data_type());
  shape dims(proto.dims().begin(), proto.dims().end());
  auto bytes = checked_bytes(dims, size_of(*type));
  if (!bytes)
    return bytes.error().with_context(label);
  if (proto.data_location() == onnx::TensorProto::EXTERNAL)
    return stripped_tensor(proto, *type, dims, *bytes, label);
  const int64_t n = numel_of(dims);
  // Sizes are checked against the data present before allocating: the dims of a corrupt or
  // hostile file may promise terabytes.
  if (proto.has_raw_data()) {
    if (static_cast<int64_t>(proto.raw_data().size()) != *bytes)
      return make_error(errc::parse_error, "{}: raw_data has {} bytes, shape {} needs {}", label,
                        proto.raw_data().size(), to_string(dims), *bytes);
    tensor t = tensor::empty(*type, dims);
    if (*bytes)
      std::memcpy(t.raw(), proto.raw_data().data(), static_cast<size_t>(*bytes));
    return t;
  }
  const int typed_count = std::max({proto.float_data_size(), proto.double_data_size(),
                                    proto.int64_data_size(), proto.uint64_data_size(),
                                    proto.int32_data_size()});
  if (typed_count != n)
    return make_error(errc::parse_error, "{}: has {} values, shape {} needs {}", label,
                      typed_count, to_string(dims), n);
  auto expect_count = [&](int count) -> status {
    if (count != n)
      return make_error(errc::parse_error, "{}: has {} values, shape {} needs {}", label, count,
                        to_string(dims), n);
    return status::ok();
  };
  tensor t = tensor::empty(*type, dims);
  switch (*type) {
    case dtype::f32: TROUPE_TRY_STATUS(expect_count(proto.float_data_size())); copy_field<float>(proto.float_data(), t); break;
    case dtype::f64: TROUPE_TRY_STATUS(expect_count(proto.double_data_size())); copy_field<double>(proto.double_data(), t); break;
    case dtype::i64: TROUPE_TRY_STATUS(expect_count(proto.int64_data_size())); copy_field<int64_t>(proto.int64_data(), t); break;
    case dtype::u32: TROUPE_TRY_STATUS(expect_count(proto.uint64_data_size())); copy_field<uint32_t>(proto.uint64_data(), t); break;
    case dtype::u64: TROUPE_TRY_STATUS(expect_count(proto.uint64_data_size())); copy_field<uint64_t>(proto.uint64_data(), t); break;
    case dtype::i32: TROUPE_TRY_STATUS(expect_count(proto.int32_data_size())); copy_field<int32_t>(proto.int32_data(), t); break;
    case dtype::i16: TROUPE_TRY_STATUS(expect_count(proto.int32_data_size())); copy_field<int16_t>(proto.int32_data(), t); break;
    case dtype::i8: TROUPE_TRY_STATUS(expect_count(proto.int32_data_size())); copy_field<int8_t>(proto.int32_data(), t); break;
    case dtype::u16: TROUPE_TRY_STATUS(expect_count(proto.int32_data_size())); copy_field<uint16_t>(proto.int32_data(), t); break;
    case dtype::u8: TROUPE_TRY_STATUS(expect_count(proto.int32_data_size())); copy_field<uint8_t>(proto.int32_data(), t); break;
    case dtype::boolean: TROUPE_TRY_STATUS(expect_count(proto.int32_data_size())); copy_field<bool>(proto.int32_data(), t); break;
    case dtype::f16:
    case dtype::bf16:
      // Stored as the raw 16-bit patterns in int32_data.
      TROUPE_TRY_STATUS(expect_count(proto.int32_data_size()));
      copy_field<uint16_t>(proto.int32_data(), t);
      break;
    default: return make_error(errc::unsupported, "{}: unsupported element type", label);
  }
  return t;
}

expected<tensor> load_tensor_pb(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes)
    return bytes.error();
  onnx::TensorProto proto;
  if (!proto.ParseFromArray(bytes->data(), static_cast<int>(bytes->size())))
    return make_error(errc::parse_error, "{}: not a serialized TensorProto", path);
  auto t = tensor_from_onnx(proto);
  if (!t)
    return t.error().with_context(path);
  return t;
}

expected<graph> parse_onnx(const void* data, size_t size, const std::string& source) {
  if (size > max_onnx_file_bytes)
    return make_error(errc::resource_exhausted, "{}: model exceeds the size limit", source);
  onnx::ModelProto model;
  if (!model.ParseFromArray(data, static_cast<int>(size)))
    return make_error(errc::parse_error, "{}: not a valid ONNX model (protobuf parse failed; "
                      "truncated or corrupt file?)", source);
  if (!model.has_graph())
    return make_error(errc::parse_error, "{}: model has no graph", source);

  graph g;
  g.source = source;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx")
      g.opset = op.version();
  // A model importing only other domains (training, ML) keeps opset 0; its nodes are then
  // reported as unsupported by domain.

  const auto& gp = model.graph();
  for (const auto& init : gp.initializer()) {
    auto t = tensor_from_onnx(init);
    if (!t)
      return t.error().with_context(source + ": initializer '" + init.name() + "'");
    g.initializers[init.name()] = std::move(*t);
  }
  for (const auto& in : gp.input()) {
    if (g.initializers.count(in.name()))
      continue;
    auto info = convert_value_info(in);
    if (!info)
      return info.error().with_context(source + ": graph input");
    g.inputs.push_back(std::move(*info));
  }
  for (const auto& out : gp.output()) {
    auto info = convert_value_info(out);
    if (!info)
      return info.error().with_context(source + ": graph output");
    g.outputs.push_back(std::move(*info));
  }
  g.nodes.reserve(static_cast<size_t>(gp.node_size()));
  for (const auto& np : gp.node()) {
    node n;
    n.name = np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? std::string{} : np.domain();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) {
      auto value = convert_attribute(a);
      if (!value)
        return value.error().with_context(source + ": " + n.label());
      n.attrs.emplace(a.name(), std::move(*value));
    }
    g.nodes.push_back(std::move(n));
  }
  TROUPE_TRY_STATUS(g.sort_topologically());
  return g;
}

expected<graph> load_onnx(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes)
    return bytes.error();
  return parse_onnx(bytes->data(), bytes->size(), path);
}

} // namespace troupe
