// shape_sources: operators that produce tensors from shapes or attributes (Shape, Size,
// Constant, ConstantOfShape, Range).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/copy_strided.hpp"
#include "runtime/ops/shape_common.hpp"

namespace troupe::shape_ops {
namespace {

// A kernel writing int64 values fixed at build time (the dims Shape and Size report).
std::unique_ptr<op_kernel> write_ints_kernel(std::vector<int64_t> values) {
  return make_kernel([values = std::move(values)](exec_context&, std::span<const tensor>,
                                                  std::span<tensor> outputs) {
    std::copy(values.begin(), values.end(), outputs[0].data<int64_t>());
    return status::ok();
  });
}

expected<built_op> build_shape(const node& n, std::span<const value_desc> in, build_context&) {
  if (in.empty() || !in[0].present())
    return invalid(n, "input 0 is required");
  const shape& dims = in[0].dims;
  const auto rank = static_cast<int64_t>(dims.size());
  // opset 15: start/end select a range of dims, clamped like Python slices.
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = clamp(n.attr_int("start", 0));
  const int64_t end = clamp(n.attr_int("end", rank));
  std::vector<int64_t> values;
  if (end > start)
    values.assign(dims.begin() + start, dims.begin() + end);
  built_op op;
  op.outputs.push_back(plain_desc(dtype::i64, {static_cast<int64_t>(values.size())}));
  op.kernel = write_ints_kernel(std::move(values));
  return op;
}

expected<built_op> build_size(const node& n, std::span<const value_desc> in, build_context&) {
  if (in.empty() || !in[0].present())
    return invalid(n, "input 0 is required");
  built_op op;
  op.outputs.push_back(plain_desc(dtype::i64, {}));
  op.kernel = write_ints_kernel({numel_of(in[0].dims)});
  return op;
}

// The value attribute of a Constant node, whichever of its forms is used.
expected<tensor> constant_value(const node& n) {
  if (n.has_attr("sparse_value"))
    return unsupported(n, "sparse constants are not supported");
  if (n.has_attr("value_string") || n.has_attr("value_strings"))
    return unsupported(n, "string constants are not supported");
  if (n.has_attr("value")) {
    const tensor* t = n.attr_tensor("value");
    if (!t)
      return invalid(n, "attribute 'value' must be a tensor");
    if (t->type() == dtype::string)
      return unsupported(n, "string constants are not supported");
    return *t;
  }
  if (n.has_attr("value_float"))
    return tensor::scalar(n.attr_float("value_float", 0.0f));
  if (n.has_attr("value_int"))
    return tensor::scalar(n.attr_int("value_int", 0));
  if (n.has_attr("value_floats")) {
    const std::vector<float> v = n.attr_floats("value_floats");
    return tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v);
  }
  if (n.has_attr("value_ints")) {
    const std::vector<int64_t> v = n.attr_ints("value_ints");
    return tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v);
  }
  return invalid(n, "no value attribute");
}

expected<built_op> build_constant(const node& n, std::span<const value_desc>, build_context&) {
  auto value = constant_value(n);
  if (!value)
    return value.error();
  built_op op;
  op.outputs.push_back(plain_desc(value->type(), value->dims()));
  op.kernel = make_kernel([value = std::move(*value)](exec_context&, std::span<const tensor>,
                                                      std::span<tensor> outputs) {
    if (value.nbytes() != 0)
      std::memcpy(outputs[0].raw(), value.raw(), value.nbytes());
    return status::ok();
  });
  return op;
}

expected<built_op> build_constant_of_shape(const node& n, std::span<const value_desc> in,
                                           build_context&) {
  auto dims = constant_ints(n, in, 0, "shape");
  if (!dims)
    return dims.error();
  tensor value = tensor::scalar(0.0f);
  if (n.has_attr("value")) {
    const tensor* t = n.attr_tensor("value");
    if (!t || t->numel() != 1 || t->type() == dtype::string)
      return invalid(n, "attribute 'value' must be a one-element numeric tensor");
    value = *t;
  }
  TROUPE_TRY_STATUS(check_output_dims(n, *dims, value.type()));
  built_op op;
  op.outputs.push_back(plain_desc(value.type(), *dims));
  std::vector<std::byte> bytes(value.nbytes());
  std::memcpy(bytes.data(), value.raw(), bytes.size());
  op.kernel = make_kernel([bytes = std::move(bytes)](exec_context&, std::span<const tensor>,
                                                     std::span<tensor> outputs) {
    cpu::fill_elements(outputs[0].raw(), outputs[0].numel(), bytes.data(), bytes.size());
    return status::ok();
  });
  return op;
}

template <class T>
T scalar_value(const tensor& t) {
  return *t.data<T>();
}

// Number of Range elements: max(ceil((limit - start) / delta), 0).
template <class T>
expected<int64_t> range_count(const node& n, const tensor& start, const tensor& limit,
                              const tensor& delta) {
  const T s = scalar_value<T>(start), l = scalar_value<T>(limit), d = scalar_value<T>(delta);
  if (d == T{0})
    return invalid(n, "delta must not be zero");
  if constexpr (std::is_integral_v<T>) {
    // 128-bit arithmetic: limit - start may not fit the element type.
    const __int128 diff = static_cast<__int128>(l) - s;
    __int128 count = diff / d;
    if (diff % d != 0 && (diff > 0) == (d > 0))
      ++count;
    if (count > std::numeric_limits<int64_t>::max())
      return invalid(n, "range has too many elements");
    return static_cast<int64_t>(std::max<__int128>(count, 0));
  } else {
    const double count =
        std::ceil((static_cast<double>(l) - static_cast<double>(s)) / static_cast<double>(d));
    if (!(count < 9.0e18))
      return invalid(n, "range has too many elements");
    return count > 0 ? static_cast<int64_t>(count) : int64_t{0};
  }
}

template <class T>
status fill_range(std::span<const tensor> inputs, std::span<tensor> outputs) {
  const T start = scalar_value<T>(inputs[0]), delta = scalar_value<T>(inputs[2]);
  T* out = outputs[0].data<T>();
  const int64_t count = outputs[0].numel();
  for (int64_t i = 0; i < count; ++i)
    out[i] = static_cast<T>(start + static_cast<T>(i) * delta);
  return status::ok();
}

template <class T>
expected<built_op> build_range_of(const node& n, std::span<const value_desc> in) {
  auto count = range_count<T>(n, *in[0].constant, *in[1].constant, *in[2].constant);
  if (!count)
    return count.error();
  TROUPE_TRY_STATUS(check_output_dims(n, std::vector<int64_t>{*count}, in[0].type));
  built_op op;
  op.outputs.push_back(plain_desc(in[0].type, {*count}));
  op.kernel = make_kernel([](exec_context&, std::span<const tensor> inputs,
                             std::span<tensor> outputs) { return fill_range<T>(inputs, outputs); });
  return op;
}

expected<built_op> build_range(const node& n, std::span<const value_desc> in, build_context&) {
  for (size_t i = 0; i < 3; ++i) {
    TROUPE_TRY_STATUS(require_input(n, in, i));
    if (in[i].type != in[0].type)
      return invalid(n, "start, limit and delta must have the same dtype");
    if (numel_of(in[i].dims) != 1)
      return invalid(n, "input {} must be a scalar, got shape {}", i, to_string(in[i].dims));
    if (!in[i].constant)
      return unsupported(n, "the output shape is unknown: start, limit and delta must be constants");
  }
  switch (in[0].type) {
  case dtype::f32: return build_range_of<float>(n, in);
  case dtype::f64: return build_range_of<double>(n, in);
  case dtype::i16: return build_range_of<int16_t>(n, in);
  case dtype::i32: return build_range_of<int32_t>(n, in);
  case dtype::i64: return build_range_of<int64_t>(n, in);
  default: return unsupported(n, "dtype {} is not supported", to_string(in[0].type));
  }
}

} // namespace

void register_sources(op_registry& r) {
  // Only dims are read, so any layout will do and no reorder is needed before them.
  r.add({.type = "Shape", .build = build_shape, .blocked_inputs = 1, .reads_only_shapes = true});
  r.add({.type = "Size", .build = build_size, .blocked_inputs = 1, .reads_only_shapes = true});
  r.add({.type = "Constant", .build = build_constant});
  r.add({.type = "ConstantOfShape", .build = build_constant_of_shape});
  r.add({.type = "Range", .build = build_range});
}

} // namespace troupe::shape_ops
