// Tests of the CUDA backend plugin's loading: the plugin built beside libtroupe_kernels.so
// loads and hands out this build's tables; a missing plugin or symbol is a clear error.
#include <doctest/doctest.h>

#include <filesystem>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda_loader/gpu_plugin.hpp"
#include "kernels/cuda_loader/kernels_api.hpp"

using namespace troupe;

TEST_CASE("the plugin beside libtroupe_kernels.so loads and its table is this build's") {
  const auto path = default_gpu_plugin_path();
  CHECK(std::filesystem::path(path).filename() == "libtroupe_cuda.so");
  auto symbol = gpu_plugin_symbol_at(path, gpu_kernels_api_symbol);
  REQUIRE_MESSAGE(symbol.has_value(), symbol.error().message());
  using getter = const gpu_kernels_api* (*)();
  const gpu_kernels_api* api = reinterpret_cast<getter>(*symbol)();
  REQUIRE(api != nullptr);
  CHECK(api->version == gpu_kernels_api_version);
  // The table's device list is the backend's own: the same answer as asking CUDA directly.
  auto through_table = api->list_gpus(false);
  auto direct = cuda::list_devices(false);
  REQUIRE(through_table.has_value() == direct.has_value());
  if (direct)
    CHECK(through_table->size() == direct->size());
  else
    CHECK(through_table.error().message() == direct.error().message());
  CHECK(api->memory_use(7).in_use == 0); // an untouched device
}

TEST_CASE("a missing plugin file is an unavailable error naming its path") {
  const std::string path = "/nonexistent-troupe-dir/libtroupe_cuda.so";
  auto symbol = gpu_plugin_symbol_at(path, gpu_kernels_api_symbol);
  REQUIRE_FALSE(symbol.has_value());
  CHECK(symbol.error().code() == errc::unavailable);
  CHECK(symbol.error().message().starts_with("no usable CUDA device: "));
  CHECK(symbol.error().message().find(path) != std::string::npos);
}

TEST_CASE("a library without the plugin's table is an unavailable error naming the symbol") {
  // libtroupe_kernels.so is a loadable library that is not the plugin.
  const auto kernels =
      (std::filesystem::path(default_gpu_plugin_path()).parent_path() / "libtroupe_kernels.so")
          .string();
  auto symbol = gpu_plugin_symbol_at(kernels, gpu_kernels_api_symbol);
  REQUIRE_FALSE(symbol.has_value());
  CHECK(symbol.error().code() == errc::unavailable);
  CHECK(symbol.error().message().find(gpu_kernels_api_symbol) != std::string::npos);
}

TEST_CASE("a stale plugin's table version is an unavailable error with both versions") {
  const auto why = stale_gpu_plugin("troupe_cuda_kernels_api", 7, 1);
  CHECK(why.code() == errc::unavailable);
  CHECK(why.message().find("version 7") != std::string::npos);
  CHECK(why.message().find("wants 1") != std::string::npos);
}
