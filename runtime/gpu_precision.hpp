// gpu_precision: the numeric precision a model runs in on the GPU backend (config key
// `precision`), and what it implies for storage types and accuracy.
#pragma once

#include <cstdint>
#include <string_view>

#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe {

/// fp32: exact FP32; tf32: FP32 storage with TF32 tensor-core convolutions and GEMMs; fp16 and
/// bf16: weights and activations stored in 16 bits with FP32 accumulation. Model inputs and
/// outputs stay in their declared types whatever the precision.
enum class gpu_precision : uint8_t { fp32, tf32, fp16, bf16 };

/// "fp32", "tf32", "fp16" or "bf16"; `invalid_argument` naming the accepted values otherwise.
expected<gpu_precision> parse_precision(std::string_view text);
const char* to_string(gpu_precision p);

/// The dtype floating-point values are stored in on the device.
dtype storage_type(gpu_precision p);

/// The relative error (||gpu - cpu|| / ||cpu||) expected against the FP32 CPU backend.
double precision_tolerance(gpu_precision p);

} // namespace troupe
