// Tests for .npy reading and writing.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "runtime/npy.hpp"

using namespace troupe;

TEST_CASE("save_npy then load_npy returns the same dtype, shape and bytes") {
  std::mt19937 rng(std::random_device{}());
  const auto dir = std::filesystem::temp_directory_path();
  for (dtype type : {dtype::f32, dtype::i64, dtype::u8, dtype::boolean}) {
    shape dims{static_cast<int64_t>(1 + rng() % 4), static_cast<int64_t>(1 + rng() % 5), 3};
    tensor t = tensor::empty(type, dims);
    for (size_t i = 0; i < t.nbytes(); ++i)
      static_cast<uint8_t*>(t.raw())[i] = type == dtype::boolean ? rng() % 2 : static_cast<uint8_t>(rng());
    const auto path = (dir / ("troupe_npy_test_" + std::string(to_string(type)) + ".npy")).string();
    REQUIRE(save_npy(path, t).is_ok());
    auto back = load_npy(path);
    REQUIRE(back);
    CHECK(bitwise_equal(*back, t));
    std::filesystem::remove(path);
  }
}

TEST_CASE("parse_npy rejects truncated data, bad magic and unknown dtypes") {
  tensor t = tensor::zeros(dtype::f32, {2, 2});
  const auto path = (std::filesystem::temp_directory_path() / "troupe_npy_trunc.npy").string();
  REQUIRE(save_npy(path, t).is_ok());
  std::string bytes;
  {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    char buf[4096];
    size_t n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    bytes.assign(buf, n);
  }
  std::filesystem::remove(path);
  CHECK(parse_npy(bytes, "ok.npy"));
  auto truncated = parse_npy(bytes.substr(0, bytes.size() - 1), "t.npy");
  REQUIRE(!truncated);
  CHECK(truncated.error().code() == errc::parse_error);
  CHECK(truncated.error().message().find("t.npy") != std::string::npos);
  CHECK(!parse_npy("not numpy at all", "x.npy"));
  std::string complex = bytes;
  complex.replace(complex.find("<f4"), 3, "<c8");
  CHECK(parse_npy(complex, "c.npy").error().code() == errc::unsupported);
}
