// bench_gpu_copy: host↔device copy bandwidth, allocator cost and the overlapped copier against a
// serial loop, printed as markdown table rows for tools/gpu-check.sh.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include <CLI/CLI.hpp>
#include <cublas_v2.h>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "kernels/cuda/overlapped_copier.hpp"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

void row(const char* what, const std::string& detail, double value, const char* unit) {
  std::printf("| %s | %s | %.3g %s |\n", what, detail.c_str(), value, unit);
}

/// Best of `reps` timings of `body` in seconds (the device idle before and after each).
double best_seconds(int reps, const std::function<status()>& body) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    (void)cudaDeviceSynchronize();
    const auto t0 = clock_type::now();
    if (auto st = body(); !st) {
      std::fprintf(stderr, "bench_gpu_copy: %s\n", st.to_string().c_str());
      std::exit(1);
    }
    (void)cudaDeviceSynchronize();
    best = std::min(best, std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  return best;
}

status bench_bandwidth(size_t bytes, int reps) {
  std::vector<std::byte> pageable(bytes, std::byte{1});
  auto pinned = cuda::allocate_pinned(bytes, nullptr);
  auto dev = cuda::allocate_device(0, bytes, nullptr);
  if (!pinned || !dev)
    return !pinned ? pinned.error() : dev.error();
  void* d = (*dev)->data();
  void* h = (*pinned)->data();
  const double gb = static_cast<double>(bytes) / 1e9;
  const auto mib = std::to_string(bytes >> 20) + " MiB";
  row("copy", "pageable host→device, " + mib,
      gb / best_seconds(reps,
                        [&] {
                          return cuda::check(
                              cudaMemcpy(d, pageable.data(), bytes, cudaMemcpyHostToDevice),
                              "copy");
                        }),
      "GB/s");
  row("copy", "pinned host→device, " + mib,
      gb / best_seconds(reps,
                        [&] {
                          return cuda::check(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice),
                                             "copy");
                        }),
      "GB/s");
  row("copy", "pinned device→host, " + mib,
      gb / best_seconds(reps,
                        [&] {
                          return cuda::check(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost),
                                             "copy");
                        }),
      "GB/s");
  return status::ok();
}

status bench_allocator(size_t bytes, int count) {
  const auto size = std::to_string(bytes >> 10) + " KiB";
  const double raw = best_seconds(3, [&]() -> status {
    for (int i = 0; i < count; ++i) {
      void* p = nullptr;
      TROUPE_CUDA_TRY(cudaMalloc(&p, bytes));
      TROUPE_CUDA_TRY(cudaFree(p));
    }
    return status::ok();
  });
  row("allocator", "cudaMalloc + cudaFree, " + size, raw / count * 1e6, "µs");
  const double cached = best_seconds(3, [&]() -> status {
    for (int i = 0; i < count; ++i) {
      auto s = cuda::allocate_device(0, bytes, nullptr);
      if (!s)
        return s.error();
    }
    return status::ok();
  });
  row("allocator", "caching allocate + release (same stream), " + size, cached / count * 1e6, "µs");
  return status::ok();
}

// Each batch: an n×n float matrix in, its square out (cuBLAS SGEMM), so compute and copies
// take comparable time on a PCIe GPU.
status bench_copier(int n, int batches, int reps) {
  const size_t bytes = static_cast<size_t>(n) * static_cast<size_t>(n) * sizeof(float);
  std::vector<std::vector<float>> in(static_cast<size_t>(batches),
                                     std::vector<float>(bytes / sizeof(float), 0.5f));
  std::vector<std::vector<float>> out(in.size(), std::vector<float>(in[0].size()));
  std::vector<std::span<const std::byte>> inputs;
  std::vector<std::span<std::byte>> outputs;
  for (size_t b = 0; b < in.size(); ++b) {
    inputs.push_back(std::as_bytes(std::span{in[b]}));
    outputs.push_back(std::as_writable_bytes(std::span{out[b]}));
  }
  cublasHandle_t blas = nullptr;
  TROUPE_CUDA_TRY(cublasCreate(&blas));
  auto square = [&](const void* x, void* y, cudaStream_t stream) -> status {
    TROUPE_CUDA_TRY(cublasSetStream(blas, stream));
    const float one = 1.0f, zero = 0.0f;
    const auto* a = static_cast<const float*>(x);
    TROUPE_CUDA_TRY(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, a, n, &zero,
                                static_cast<float*>(y), n));
    return status::ok();
  };
  auto copier = cuda::overlapped_copier::create(0, bytes, bytes);
  if (!copier)
    return copier.error();
  // Serial: the same pinned staging and device buffers, one stream, one batch at a time.
  auto h = cuda::allocate_pinned(bytes, (*copier)->compute_stream());
  auto x = cuda::allocate_device(0, bytes, (*copier)->compute_stream());
  auto y = cuda::allocate_device(0, bytes, (*copier)->compute_stream());
  if (!h || !x || !y)
    return make_error(errc::resource_exhausted, "bench buffers");
  cudaStream_t s = (*copier)->compute_stream();
  const double serial = best_seconds(reps, [&]() -> status {
    for (size_t b = 0; b < in.size(); ++b) {
      std::memcpy((*h)->data(), in[b].data(), bytes);
      TROUPE_CUDA_TRY(
          cudaMemcpyAsync((*x)->data(), (*h)->data(), bytes, cudaMemcpyHostToDevice, s));
      TROUPE_TRY_STATUS(square((*x)->data(), (*y)->data(), s));
      TROUPE_CUDA_TRY(
          cudaMemcpyAsync((*h)->data(), (*y)->data(), bytes, cudaMemcpyDeviceToHost, s));
      TROUPE_CUDA_TRY(cudaStreamSynchronize(s));
      std::memcpy(out[b].data(), (*h)->data(), bytes);
    }
    return status::ok();
  });
  const double overlapped = best_seconds(reps, [&] {
    return (*copier)->run(inputs, outputs,
                          [&](size_t, const void* xin, void* yout, cudaStream_t st) {
                            return square(xin, yout, st);
                          });
  });
  const auto detail = std::to_string(batches) + " batches of " + std::to_string(n) + "² fp32 SGEMM";
  row("copier", "serial copy, compute, copy: " + detail, serial * 1e3, "ms");
  row("copier", "overlapped (two streams): " + detail, overlapped * 1e3, "ms");
  row("copier", "overlap speed-up", serial / overlapped, "×");
  (void)cublasDestroy(blas);
  return status::ok();
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_gpu_copy: copy bandwidth, allocator cost, overlapped copier"};
  int mib = 256, n = 2048, batches = 16, reps = 5;
  app.add_option("--mib", mib, "bytes per bandwidth copy, MiB")->check(CLI::Range(1, 4096));
  app.add_option("--n", n, "matrix side of the copier's batches")->check(CLI::Range(16, 16384));
  app.add_option("--batches", batches, "batches per copier run")->check(CLI::Range(1, 1000));
  app.add_option("--reps", reps, "repetitions (best is reported)")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  auto devices = cuda::list_devices(false);
  if (!devices) {
    std::printf("bench_gpu_copy: skipped: %s\n", devices.error().message().c_str());
    return 77;
  }
  for (auto st : {bench_bandwidth(static_cast<size_t>(mib) << 20, reps),
                  bench_allocator(size_t{1} << 20, 1000), bench_copier(n, batches, reps)})
    if (!st) {
      std::fprintf(stderr, "bench_gpu_copy: %s\n", st.to_string().c_str());
      return 1;
    }
  return 0;
}
