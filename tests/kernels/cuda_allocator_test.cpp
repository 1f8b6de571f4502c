// Tests of the device caching allocator, pinned staging buffers and the overlapped copier on a GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <cublas_v2.h>

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "kernels/cuda/overlapped_copier.hpp"
#include "kernels/gpu_devices.hpp"

using namespace troupe;

namespace {

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> value(-10.0f, 10.0f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = value(rng);
  return v;
}

struct stream_pair {
  cudaStream_t a = nullptr, b = nullptr;
  stream_pair() {
    REQUIRE(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking) == cudaSuccess);
  }
  ~stream_pair() {
    (void)cudaStreamDestroy(a);
    (void)cudaStreamDestroy(b);
  }
};

} // namespace

TEST_SUITE("gpu") {

  TEST_CASE("device storage holds what is copied in and goes back to the cache on release") {
    std::mt19937 rng{std::random_device{}()};
    stream_pair streams;
    auto cache = cuda::device_cache(0);
    REQUIRE(cache);
    (*cache)->empty_cache();
    const auto before = (*cache)->stats();
    const size_t n = std::uniform_int_distribution<size_t>(1000, 300000)(rng);
    const auto host = random_floats(n, rng);
    void* block = nullptr;
    {
      auto s = cuda::allocate_device(0, n * sizeof(float), streams.a);
      REQUIRE(s);
      CHECK((*s)->where() == device{device::kind::cuda, 0});
      block = (*s)->data();
      cudaPointerAttributes attributes{};
      REQUIRE(cudaPointerGetAttributes(&attributes, block) == cudaSuccess);
      CHECK(attributes.type == cudaMemoryTypeDevice);
      CHECK(attributes.device == 0);
      std::vector<float> back(n, 0.0f);
      REQUIRE(cudaMemcpyAsync(block, host.data(), n * sizeof(float), cudaMemcpyHostToDevice,
                              streams.a) == cudaSuccess);
      REQUIRE(cudaMemcpyAsync(back.data(), block, n * sizeof(float), cudaMemcpyDeviceToHost,
                              streams.a) == cudaSuccess);
      REQUIRE(cudaStreamSynchronize(streams.a) == cudaSuccess);
      CHECK(std::memcmp(back.data(), host.data(), n * sizeof(float)) == 0);
      CHECK(gpu_memory_use(0).in_use == before.in_use + cuda::size_class(n * sizeof(float)));
    }
    const auto after = (*cache)->stats();
    CHECK(after.in_use == before.in_use);
    CHECK(after.cached == cuda::size_class(n * sizeof(float)));
    CHECK(gpu_memory_use(0).cached == after.cached);
    // Same stream: at once. Other stream: once the free event has completed.
    auto same = cuda::allocate_device(0, n * sizeof(float), streams.a);
    REQUIRE(same);
    CHECK((*same)->data() == block);
    same->reset();
    REQUIRE(cudaStreamSynchronize(streams.a) == cudaSuccess);
    auto other = cuda::allocate_device(0, n * sizeof(float), streams.b);
    REQUIRE(other);
    CHECK((*other)->data() == block);
    other->reset();
    (*cache)->empty_cache();
    CHECK((*cache)->stats().cached == 0);
  }

  TEST_CASE("an impossible device allocation is resource_exhausted, not a crash") {
    auto devices = list_gpus();
    REQUIRE(devices);
    auto s = cuda::allocate_device(0, (*devices)[0].total_bytes * 2, nullptr);
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == errc::resource_exhausted);
    CHECK(cuda::allocate_device(99, 16, nullptr).error().code() == errc::invalid_argument);
  }

  TEST_CASE("pinned staging buffers are page-locked host memory and are pooled") {
    stream_pair streams;
    void* first = nullptr;
    {
      auto s = cuda::allocate_pinned(1 << 20, streams.a);
      REQUIRE(s);
      CHECK((*s)->where() == device{});
      first = (*s)->data();
      cudaPointerAttributes attributes{};
      REQUIRE(cudaPointerGetAttributes(&attributes, first) == cudaSuccess);
      CHECK(attributes.type == cudaMemoryTypeHost);
    }
    auto again = cuda::allocate_pinned(1 << 20, streams.a);
    REQUIRE(again);
    CHECK((*again)->data() == first);
  }

  TEST_CASE("the overlapped copier returns every batch's result in order") {
    std::mt19937 rng{std::random_device{}()};
    constexpr size_t max_floats = 1 << 18;
    auto copier =
        cuda::overlapped_copier::create(0, max_floats * sizeof(float), max_floats * sizeof(float));
    REQUIRE(copier);
    cublasHandle_t blas = nullptr;
    REQUIRE(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
    std::uniform_int_distribution<size_t> count(1, max_floats);
    const size_t batches = 9;
    std::vector<std::vector<float>> in, out;
    for (size_t i = 0; i < batches; ++i) {
      in.push_back(random_floats(count(rng), rng));
      out.emplace_back(in.back().size(), std::nanf(""));
    }
    std::vector<std::span<const std::byte>> inputs;
    std::vector<std::span<std::byte>> outputs;
    for (size_t i = 0; i < batches; ++i) {
      inputs.push_back(std::as_bytes(std::span{in[i]}));
      outputs.push_back(std::as_writable_bytes(std::span{out[i]}));
    }
    // y = 2·x (exact in float); every batch has its own random values and size, so a result
    // handed back for the wrong batch shows.
    auto compute = [&](size_t batch, const void* x, void* y, cudaStream_t stream) -> status {
      const int n = static_cast<int>(in[batch].size());
      TROUPE_CUDA_TRY(cublasSetStream(blas, stream));
      TROUPE_CUDA_TRY(cudaMemcpyAsync(y, x, static_cast<size_t>(n) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, stream));
      const float two = 2.0f;
      TROUPE_CUDA_TRY(cublasSscal(blas, n, &two, static_cast<float*>(y), 1));
      return status::ok();
    };
    REQUIRE((*copier)->run(inputs, outputs, compute));
    for (size_t b = 0; b < batches; ++b)
      for (size_t i = 0; i < in[b].size(); ++i)
        REQUIRE(out[b][i] == 2.0f * in[b][i]);
    (void)cublasDestroy(blas);
  }

  TEST_CASE("the overlapped copier rejects a batch larger than its buffers") {
    auto copier = cuda::overlapped_copier::create(0, 64, 64);
    REQUIRE(copier);
    std::vector<std::byte> big(65), small(64);
    std::vector<std::span<const std::byte>> inputs{big};
    std::vector<std::span<std::byte>> outputs{small};
    auto st = (*copier)->run(inputs, outputs,
                             [](size_t, const void*, void*, cudaStream_t) { return status::ok(); });
    CHECK(st.code() == errc::invalid_argument);
  }

} // TEST_SUITE
