// fuzz_onnx_import: libFuzzer target for the ONNX importer, passes and plan compiler.
#include <cstddef>
#include <cstdint>

#include "runtime/onnx_import.hpp"
#include "runtime/session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = troupe::parse_onnx(data, size, "fuzz.onnx");
  if (!g)
    return 0;
  troupe::session_options options;
  options.limits.threads = 1;
  options.max_value_bytes = size_t{16} << 20; // keep hostile shapes from exhausting memory
  auto s = troupe::session::from_graph(std::move(*g), options);
  if (!s)
    return 0;
  std::vector<troupe::shape> dims;
  for (const auto& in : (*s)->inputs()) {
    troupe::shape d = in.dims;
    for (auto& x : d)
      if (x < 0)
        x = 1;
    dims.push_back(d);
  }
  (void)(*s)->plan_for(dims);
  return 0;
}
