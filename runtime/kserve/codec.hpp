// codec: KServe v2 infer request decoding and response/metadata encoding (JSON + binary tensors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/status.hpp"
#include "kernels/tensor.hpp"

namespace troupe::kserve {

/// Name of the binary tensor extension's header (REFERENCE.md §1).
inline constexpr std::string_view header_length_field = "Inference-Header-Content-Length";

struct decode_options {
  /// Deepest JSON nesting accepted. A rank-r tensor with nested `data` needs r + 3 levels.
  size_t max_json_depth = 64;
  /// Highest tensor rank accepted in `shape`.
  size_t max_rank = 16;
};

/// Request-level `parameters` troupe acts on; other parameters are accepted and ignored.
struct request_parameters {
  std::optional<uint64_t> priority;   // 1 is highest; 0 or absent: the model's default
  std::optional<uint64_t> timeout_us; // absent: the queue policy's default
  bool binary_data_output = false;    // every output binary unless the output says otherwise
  friend bool operator==(const request_parameters&, const request_parameters&) = default;
};

/// One input. Numeric, BOOL, FP16 and BF16 data live in `data` (host, row-major); BYTES
/// elements live in `strings` (a tensor has no variable-length element type).
struct infer_input {
  std::string name;
  dtype type = dtype::undefined;
  shape dims;
  tensor data;
  std::vector<std::string> strings;
};

struct requested_output {
  std::string name;
  std::optional<bool> binary_data; // absent: follow request_parameters::binary_data_output
};

struct infer_request {
  std::string id;
  request_parameters parameters;
  std::vector<infer_input> inputs;
  std::vector<requested_output> outputs; // empty: every output of the model
};

/// Reads an `Inference-Header-Content-Length` value: a decimal count of JSON bytes that must
/// not exceed `body_size`. Rejects signs, spaces, hex, overflow and trailing text.
expected<size_t> parse_header_length(std::string_view text, size_t body_size);

/// Decodes an infer request body. `header_length` is the raw `Inference-Header-Content-Length`
/// value when the client sent one (binary tensor extension): the first N bytes are JSON, the
/// rest raw tensors in input order. Non-finite floats may be written as the bare tokens NaN,
/// Infinity, -Infinity (what Triton accepts via rapidjson's kParseNanAndInfFlag and what
/// Python's json module writes) or as the same words in strings; both mean the IEEE values.
/// Errors: parse_error for malformed JSON, invalid_argument for a well-formed request that is
/// wrong (depth, names, shapes, counts, sizes), out_of_range for shapes overflowing 64 bits,
/// unsupported for extensions troupe does not implement.
expected<infer_request> decode_infer_request(std::string_view body,
                                             std::optional<std::string_view> header_length,
                                             const decode_options& options = {});

/// Whether output `name` goes back in binary form for this request.
bool wants_binary(const infer_request& request, std::string_view name);

struct infer_output {
  std::string name;
  dtype type = dtype::undefined;
  shape dims;
  tensor data;                      // host tensor of `dims` (not for BYTES)
  std::vector<std::string> strings; // BYTES elements
  bool binary = false;              // write raw bytes after the JSON header
};

struct infer_response {
  std::string model_name;
  std::string model_version; // empty: omitted
  std::string id;            // empty: omitted
  std::vector<infer_output> outputs;
};

struct encoded_body {
  std::string body;
  /// Set when some output is binary: the value of `Inference-Header-Content-Length`.
  std::optional<size_t> json_length;
};

/// Encodes a response; fails (invalid_argument) only when an output's data does not match
/// its dtype and shape, which is a caller bug worth a 500 rather than a corrupt body.
expected<encoded_body> encode_infer_response(const infer_response& response);

struct tensor_metadata {
  std::string name;
  dtype type = dtype::undefined;
  shape dims; // -1 for a dimension of any size
};

struct model_metadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform; // "onnxruntime_onnx" for clients that switch on it
  std::vector<tensor_metadata> inputs;
  std::vector<tensor_metadata> outputs;
};

struct server_metadata {
  std::string name = "troupe";
  std::string version;
  std::vector<std::string> extensions;
};

std::string encode_model_metadata(const model_metadata& metadata);
std::string encode_server_metadata(const server_metadata& metadata);
/// `{"name":..,"version"?:..,"ready":bool}` (KServe's model ready body; Triton sends none).
std::string encode_model_ready(std::string_view name, std::string_view version, bool ready);
/// `{"error":"<message>"}`, escaped.
std::string encode_error(std::string_view message);

} // namespace troupe::kserve
