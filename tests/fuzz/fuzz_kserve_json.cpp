// fuzz_kserve_json: libFuzzer target for the KServe v2 request decoder and response encoder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/kserve/codec.hpp"

// Input layout: an optional first line "#<Inference-Header-Content-Length value>\n", then the
// body. The header line lets the fuzzer reach the binary tensor path and the length parser.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<std::string_view> header;
  if (!input.empty() && input.front() == '#') {
    const auto eol = input.find('\n');
    if (eol == std::string_view::npos)
      return 0;
    header = input.substr(1, eol - 1);
    input.remove_prefix(eol + 1);
  }
  troupe::kserve::decode_options options;
  options.max_json_depth = 32;
  auto request = troupe::kserve::decode_infer_request(input, header, options);
  if (!request)
    return 0;

  // Whatever decodes must encode back: echo the inputs as outputs, alternating JSON and binary.
  troupe::kserve::infer_response response;
  response.model_name = "fuzz";
  response.id = request->id;
  bool binary = false;
  for (auto& in : request->inputs) {
    troupe::kserve::infer_output out;
    out.name = in.name;
    out.type = in.type;
    out.dims = in.dims;
    out.data = in.data;
    out.strings = in.strings;
    out.binary = binary = !binary;
    response.outputs.push_back(std::move(out));
  }
  auto encoded = troupe::kserve::encode_infer_response(response);
  if (!encoded)
    std::abort(); // a decoded request always makes a consistent response
  return 0;
}
