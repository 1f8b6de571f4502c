// shape_common: helpers shared by the shape operator files.
#include "runtime/ops/shape_common.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/cast.hpp"

namespace troupe::shape_ops {
namespace {

class closure_kernel final : public op_kernel {
public:
  explicit closure_kernel(kernel_fn fn) : fn_(std::move(fn)) {}
  status run(exec_context& ctx, std::span<const tensor> inputs,
             std::span<tensor> outputs) override {
    return fn_(ctx, inputs, outputs);
  }

private:
  kernel_fn fn_;
};

template <class T>
std::vector<std::byte> bytes_of(T value) {
  std::vector<std::byte> out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

// Out-of-range conversions from double to an integer are undefined; clamp them instead.
template <class T>
T saturate(double value) {
  if (std::isnan(value))
    return T{0};
  if (value <= static_cast<double>(std::numeric_limits<T>::lowest()))
    return std::numeric_limits<T>::lowest();
  if (value >= static_cast<double>(std::numeric_limits<T>::max()))
    return std::numeric_limits<T>::max();
  return static_cast<T>(value);
}

} // namespace

std::unique_ptr<op_kernel> make_kernel(kernel_fn fn) {
  return std::make_unique<closure_kernel>(std::move(fn));
}

status require_input(const node& n, std::span<const value_desc> in, size_t i) {
  if (i >= in.size() || !in[i].present())
    return invalid(n, "input {} is required", i);
  if (in[i].type == dtype::string)
    return unsupported(n, "input {} has dtype string", i);
  return status::ok();
}

expected<std::vector<int64_t>> constant_ints(const node& n, std::span<const value_desc> in,
                                             size_t i, std::string_view what) {
  if (i >= in.size() || !in[i].present())
    return invalid(n, "{} (input {}) is required", what, i);
  const value_desc& d = in[i];
  if (d.type != dtype::i64 && d.type != dtype::i32)
    return invalid(n, "{} must be int64 or int32, got {}", what, to_string(d.type));
  if (d.dims.size() > 1)
    return invalid(n, "{} must be a 1-D tensor, got shape {}", what, to_string(d.dims));
  if (!d.constant)
    return unsupported(n, "{} must be a constant (initializer or computable from shapes)", what);
  std::vector<int64_t> out(static_cast<size_t>(d.constant->numel()));
  if (d.type == dtype::i64)
    std::copy_n(d.constant->data<int64_t>(), out.size(), out.begin());
  else
    std::copy_n(d.constant->data<int32_t>(), out.size(), out.begin());
  return out;
}

expected<std::optional<std::vector<int64_t>>> ints_from_attr_or_input(
    const node& n, std::span<const value_desc> in, const std::string& attr, size_t i) {
  if (n.has_attr(attr))
    return std::optional{n.attr_ints(attr)};
  if (i < in.size() && in[i].present()) {
    auto values = constant_ints(n, in, i, attr);
    if (!values)
      return values.error();
    return std::optional{std::move(*values)};
  }
  return std::optional<std::vector<int64_t>>{};
}

value_desc plain_desc(dtype type, shape dims) {
  value_desc d;
  d.type = type;
  d.dims = std::move(dims);
  return d;
}

built_op view_of_input(dtype type, shape dims) {
  built_op op;
  op.outputs.push_back(plain_desc(type, std::move(dims)));
  op.alias_input = 0;
  return op;
}

status check_output_dims(const node& n, std::span<const int64_t> dims, dtype type) {
  auto bytes = checked_bytes(dims, size_of(type));
  if (!bytes)
    return make_error(bytes.error().code(), "{}: output: {}", n.label(), bytes.error().message());
  return status::ok();
}

std::vector<std::byte> scalar_bytes(dtype type, double value) {
  switch (type) {
  case dtype::f32: return bytes_of(static_cast<float>(value));
  case dtype::f64: return bytes_of(value);
  case dtype::f16: return bytes_of(cpu::float_to_half(static_cast<float>(value)));
  case dtype::bf16: return bytes_of(cpu::float_to_bfloat16(static_cast<float>(value)));
  case dtype::i8: return bytes_of(saturate<int8_t>(value));
  case dtype::i16: return bytes_of(saturate<int16_t>(value));
  case dtype::i32: return bytes_of(saturate<int32_t>(value));
  case dtype::i64: return bytes_of(saturate<int64_t>(value));
  case dtype::u8: return bytes_of(saturate<uint8_t>(value));
  case dtype::u16: return bytes_of(saturate<uint16_t>(value));
  case dtype::u32: return bytes_of(saturate<uint32_t>(value));
  case dtype::u64: return bytes_of(saturate<uint64_t>(value));
  case dtype::boolean: return bytes_of(static_cast<uint8_t>(value != 0));
  default: return std::vector<std::byte>(size_of(type));
  }
}

} // namespace troupe::shape_ops
