// gpu_precision: parsing and the storage type and tolerance of each precision.
#include "runtime/gpu_precision.hpp"

namespace troupe {

expected<gpu_precision> parse_precision(std::string_view text) {
  if (text == "fp32")
    return gpu_precision::fp32;
  if (text == "tf32")
    return gpu_precision::tf32;
  if (text == "fp16")
    return gpu_precision::fp16;
  if (text == "bf16")
    return gpu_precision::bf16;
  return make_error(errc::invalid_argument, "expected fp32, tf32, fp16 or bf16, got '{}'", text);
}

const char* to_string(gpu_precision p) {
  switch (p) {
  case gpu_precision::fp32: return "fp32";
  case gpu_precision::tf32: return "tf32";
  case gpu_precision::fp16: return "fp16";
  case gpu_precision::bf16: return "bf16";
  }
  return "?";
}

dtype storage_type(gpu_precision p) {
  switch (p) {
  case gpu_precision::fp16: return dtype::f16;
  case gpu_precision::bf16: return dtype::bf16;
  default: return dtype::f32;
  }
}

double precision_tolerance(gpu_precision p) {
  switch (p) {
  case gpu_precision::fp32: return 1e-5;
  case gpu_precision::tf32: return 1e-3;
  default: return 1e-2;
  }
}

} // namespace troupe
