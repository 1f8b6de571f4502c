// dtype: element types of tensors, with sizes and the names ONNX and KServe use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace troupe {

enum class dtype : uint8_t {
  undefined,
  f32, f64, f16, bf16,
  i8, i16, i32, i64,
  u8, u16, u32, u64,
  boolean,
  string, // KServe BYTES; metadata only, never computed on
};

/// Bytes per element (0 for undefined and string).
size_t size_of(dtype t);
bool is_floating(dtype t);
bool is_integral(dtype t); // signed or unsigned integers, not bool

/// KServe v2 datatype name ("FP32", "INT64", "BOOL", "BYTES").
std::string_view kserve_name(dtype t);
std::optional<dtype> dtype_from_kserve(std::string_view name);

/// Short name used in messages and the CLI ("float32", "int64").
std::string_view to_string(dtype t);

/// ONNX TensorProto::DataType value <-> dtype (nullopt for types troupe does not know).
std::optional<dtype> dtype_from_onnx(int onnx_type);
int onnx_type_of(dtype t);

/// Maps a C++ element type to its dtype.
template <class T> constexpr dtype dtype_of();
template <> constexpr dtype dtype_of<float>() { return dtype::f32; }
template <> constexpr dtype dtype_of<double>() { return dtype::f64; }
template <> constexpr dtype dtype_of<int8_t>() { return dtype::i8; }
template <> constexpr dtype dtype_of<int16_t>() { return dtype::i16; }
template <> constexpr dtype dtype_of<int32_t>() { return dtype::i32; }
template <> constexpr dtype dtype_of<int64_t>() { return dtype::i64; }
template <> constexpr dtype dtype_of<uint8_t>() { return dtype::u8; }
template <> constexpr dtype dtype_of<uint16_t>() { return dtype::u16; }
template <> constexpr dtype dtype_of<uint32_t>() { return dtype::u32; }
template <> constexpr dtype dtype_of<uint64_t>() { return dtype::u64; }
template <> constexpr dtype dtype_of<bool>() { return dtype::boolean; }

} // namespace troupe
