// dtype: sizes and names.
#include "kernels/dtype.hpp"

#include <array>

namespace troupe {
namespace {

struct dtype_row {
  dtype type;
  size_t size;
  std::string_view kserve;
  std::string_view name;
  int onnx; // TensorProto::DataType
};

constexpr std::array<dtype_row, 15> rows{{
  {dtype::undefined, 0, "", "undefined", 0},
  {dtype::f32, 4, "FP32", "float32", 1},
  {dtype::u8, 1, "UINT8", "uint8", 2},
  {dtype::i8, 1, "INT8", "int8", 3},
  {dtype::u16, 2, "UINT16", "uint16", 4},
  {dtype::i16, 2, "INT16", "int16", 5},
  {dtype::i32, 4, "INT32", "int32", 6},
  {dtype::i64, 8, "INT64", "int64", 7},
  {dtype::string, 0, "BYTES", "string", 8},
  {dtype::boolean, 1, "BOOL", "bool", 9},
  {dtype::f16, 2, "FP16", "float16", 10},
  {dtype::f64, 8, "FP64", "float64", 11},
  {dtype::u32, 4, "UINT32", "uint32", 12},
  {dtype::u64, 8, "UINT64", "uint64", 13},
  {dtype::bf16, 2, "BF16", "bfloat16", 16},
}};

const dtype_row& row_of(dtype t) {
  for (const auto& r : rows)
    if (r.type == t)
      return r;
  return rows[0];
}

} // namespace

size_t size_of(dtype t) { return row_of(t).size; }

bool is_floating(dtype t) {
  return t == dtype::f32 || t == dtype::f64 || t == dtype::f16 || t == dtype::bf16;
}

bool is_integral(dtype t) {
  switch (t) {
    case dtype::i8: case dtype::i16: case dtype::i32: case dtype::i64:
    case dtype::u8: case dtype::u16: case dtype::u32: case dtype::u64: return true;
    default: return false;
  }
}

std::string_view kserve_name(dtype t) { return row_of(t).kserve; }
std::string_view to_string(dtype t) { return row_of(t).name; }
int onnx_type_of(dtype t) { return row_of(t).onnx; }

std::optional<dtype> dtype_from_kserve(std::string_view name) {
  for (const auto& r : rows)
    if (!r.kserve.empty() && r.kserve == name)
      return r.type;
  return std::nullopt;
}

std::optional<dtype> dtype_from_onnx(int onnx_type) {
  for (const auto& r : rows)
    if (r.onnx == onnx_type && r.type != dtype::undefined)
      return r.type;
  return std::nullopt;
}

} // namespace troupe
