// cuda_test_util: device buffers, dtype-rounded random data, CPU-side conversions and error
// norms for the CUDA kernel tests, plus the per-process GPU environment (stream, handles).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "kernels/cpu/cast.hpp"
#include "kernels/dtype.hpp"

namespace troupe::test {

/// Why the GPU cases cannot run here (no driver, stub library, no device), or nullopt.
inline std::optional<std::string> gpu_unavailable_reason() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  }
  if (count == 0)
    return std::string("cudaGetDeviceCount found no device");
  return std::nullopt;
}

/// x rounded to what dtype t can hold (the values the GPU actually sees).
inline float round_to(dtype t, float x) {
  if (t == dtype::f16)
    return cpu::half_to_float(cpu::float_to_half(x));
  if (t == dtype::bf16)
    return cpu::bfloat16_to_float(cpu::float_to_bfloat16(x));
  return x;
}

/// Relative tolerance of ||out - ref|| / ||ref|| by storage type.
inline double tolerance(dtype t, bool tf32 = false) {
  if (t == dtype::f32)
    return tf32 ? 1e-3 : 1e-5;
  return 1e-2;
}

inline std::mt19937& rng() {
  static std::mt19937 gen{std::random_device{}()};
  return gen;
}

/// n values uniform in [lo, hi), already rounded to t.
inline std::vector<float> random_values(dtype t, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v)
    x = round_to(t, dist(rng()));
  return v;
}

inline double relative_error(const std::vector<float>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!std::isfinite(num))
    return INFINITY;
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

/// Device memory owned by the test (tests may cudaMalloc; kernels never do).
class device_buffer {
public:
  explicit device_buffer(size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&data_, bytes == 0 ? 1 : bytes) != cudaSuccess)
      data_ = nullptr;
  }
  device_buffer(device_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(other.bytes_) {}
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() {
    if (data_ != nullptr)
      (void)cudaFree(data_);
  }
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <class T> T* as() const { return static_cast<T*>(data_); }

  /// Fills with 0xFF bytes: NaN in f32, f16 and bf16, so unwritten outputs fail the checks.
  void poison() const { (void)cudaMemset(data_, 0xFF, bytes_); }

private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

/// Uploads float values stored as dtype t.
inline device_buffer upload(dtype t, const std::vector<float>& values) {
  device_buffer buf(values.size() * size_of(t));
  std::vector<uint8_t> bytes(buf.bytes());
  for (size_t i = 0; i < values.size(); ++i) {
    if (t == dtype::f32) {
      std::memcpy(bytes.data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t h = t == dtype::f16 ? cpu::float_to_half(values[i])
                                         : cpu::float_to_bfloat16(values[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  (void)cudaMemcpy(buf.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice);
  return buf;
}

template <class T>
device_buffer upload_raw(const std::vector<T>& values) {
  device_buffer buf(values.size() * sizeof(T));
  (void)cudaMemcpy(buf.get(), values.data(), buf.bytes(), cudaMemcpyHostToDevice);
  return buf;
}

/// Waits for the device and reads n elements of dtype t back as floats.
inline std::vector<float> download(dtype t, const device_buffer& buf, size_t n) {
  (void)cudaDeviceSynchronize();
  std::vector<uint8_t> bytes(n * size_of(t));
  (void)cudaMemcpy(bytes.data(), buf.get(), bytes.size(), cudaMemcpyDeviceToHost);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == dtype::f32) {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    } else {
      uint16_t h = 0;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = t == dtype::f16 ? cpu::half_to_float(h) : cpu::bfloat16_to_float(h);
    }
  }
  return out;
}

template <class T>
std::vector<T> download_raw(const device_buffer& buf, size_t n) {
  (void)cudaDeviceSynchronize();
  std::vector<T> out(n);
  (void)cudaMemcpy(out.data(), buf.get(), n * sizeof(T), cudaMemcpyDeviceToHost);
  return out;
}

/// One stream, cuDNN and cuBLASLt handle and a 32 MiB workspace for the whole run.
struct gpu_env {
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasLtHandle_t cublas = nullptr;
  device_buffer workspace{size_t{32} << 20};

  gpu_env() {
    (void)cudaStreamCreate(&stream);
    (void)cudnnCreate(&cudnn);
    (void)cublasLtCreate(&cublas);
  }
  ~gpu_env() {
    (void)cublasLtDestroy(cublas);
    (void)cudnnDestroy(cudnn);
    (void)cudaStreamDestroy(stream);
  }
  static gpu_env& get() {
    static gpu_env env;
    return env;
  }
};

inline constexpr dtype gpu_floats[] = {dtype::f32, dtype::f16, dtype::bf16};

} // namespace troupe::test
