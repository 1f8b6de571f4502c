// onnx_import: reads ONNX model and tensor files into troupe's graph IR.
#pragma once

#include <string>

#include "runtime/graph.hpp"

namespace onnx {
class TensorProto;
}

namespace troupe {

/// Files larger than this are refused before parsing (protobuf's own limit is 2 GiB).
inline constexpr size_t max_onnx_file_bytes = size_t{2} << 30;

/// Parses an ONNX model file. Errors name the file and, where one is at fault, the node.
expected<graph> load_onnx(const std::string& path);
/// Parses an ONNX model held in memory; `source` names it in messages.
expected<graph> parse_onnx(const void* data, size_t size, const std::string& source);

/// Converts a TensorProto (raw_data or typed fields) to a host tensor.
expected<tensor> tensor_from_onnx(const onnx::TensorProto& proto);
/// Reads a serialized TensorProto file (ONNX test data's input_0.pb).
expected<tensor> load_tensor_pb(const std::string& path);

} // namespace troupe
