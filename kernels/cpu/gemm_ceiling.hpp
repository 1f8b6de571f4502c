// gemm_ceiling: measures the practical fp32 GEMM rate of a CPU context (the roofline bench quotes).
#pragma once

#include "kernels/cpu/cpu_context.hpp"

namespace troupe::cpu {

/// GFLOP/s of oneDNN's fp32 matmul n x n x n on `ctx`'s threads, best of runs within
/// `seconds`. Call on the thread that entered the context.
double measure_sgemm_gflops(cpu_context& ctx, int64_t n = 2048, double seconds = 1.0);

} // namespace troupe::cpu
