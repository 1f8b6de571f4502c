// kserve_client: the client side of KServe v2 over HTTP for the load generator: request
// bodies (JSON and the binary tensor extension) and reply/metadata decoding.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/load/transport.hpp"

namespace troupe::load {

/// {"inputs":[{"name","shape","datatype","data":[...]}],"parameters":{"priority","timeout"}}.
expected<std::string> encode_json_request(const load_request& r);

/// The binary extension: a JSON header whose inputs carry binary_data_size, then the raw
/// tensor bytes in input order. Returns the body; `header_length` receives the JSON length
/// for the Inference-Header-Content-Length header. Outputs are asked for in binary too.
expected<std::string> encode_binary_request(const load_request& r, size_t& header_length);

/// The outputs of an infer reply; `header_length` is the Inference-Header-Content-Length of
/// a binary reply (nullopt for plain JSON). Data may be flat or nested.
expected<std::vector<tensor>> decode_infer_response(std::string_view body,
                                                    std::optional<size_t> header_length);

/// Model metadata: {"name","inputs":[{"name","datatype","shape"}],"outputs":[...]}.
expected<model_info> decode_model_metadata(std::string_view body);

/// The message of an error reply ({"error":"..."}), or the body itself when it is not that.
std::string error_message_of(std::string_view body);

} // namespace troupe::load
