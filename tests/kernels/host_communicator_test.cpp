// host_communicator_test: collectives between threads give the reference values on every rank,
// and mismatched calls fail on every rank instead of hanging.
#include <doctest/doctest.h>

#include <functional>
#include <random>
#include <thread>

#include "kernels/cpu/cast.hpp"
#include "kernels/cpu/host_communicator.hpp"

using namespace troupe;

namespace {

/// Runs body(rank, comm) on one thread per rank and returns each rank's status.
std::vector<status> on_ranks(int ranks, const std::function<status(int, communicator&)>& body) {
  auto group = make_host_group(ranks);
  std::vector<status> result(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] { result[static_cast<size_t>(r)] = body(r, *group[static_cast<size_t>(r)]); });
  for (auto& t : threads)
    t.join();
  return result;
}

tensor random_f32(const shape& dims, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  tensor t = tensor::empty(dtype::f32, dims);
  for (auto& v : t.values<float>())
    v = dist(rng);
  return t;
}

} // namespace

TEST_CASE("host group: all_reduce_sum of fp32 equals the double sum on every rank, bit-identical") {
  std::mt19937 rng(std::random_device{}());
  for (int ranks : {1, 2, 3, 4}) {
    CAPTURE(ranks);
    std::vector<tensor> in, out;
    for (int r = 0; r < ranks; ++r)
      in.push_back(random_f32({5, 7}, rng)); // 35 elements: chunks of unequal size
    for (auto& t : in)
      out.push_back(t.clone());
    auto st = on_ranks(ranks, [&](int r, communicator& c) {
      CHECK(c.rank() == r);
      CHECK(c.size() == ranks);
      return c.all_reduce_sum(out[static_cast<size_t>(r)]);
    });
    for (int r = 0; r < ranks; ++r) {
      REQUIRE_MESSAGE(st[static_cast<size_t>(r)].is_ok(), st[static_cast<size_t>(r)].to_string());
      CHECK(bitwise_equal(out[static_cast<size_t>(r)], out[0]));
    }
    for (int64_t i = 0; i < 35; ++i) {
      double sum = 0;
      for (const auto& t : in)
        sum += t.data<float>()[i];
      CHECK(out[0].data<float>()[i] == doctest::Approx(sum).epsilon(1e-6));
    }
  }
}

TEST_CASE("host group: all_reduce_sum of fp16 and bf16 accumulates in fp32") {
  // base + 1 + 1 + 2 where base + 1 falls between two representable values (ties to even round
  // it back to base): summed in 16 bits that gives base + 2, in fp32 base + 4, which both
  // formats hold exactly (base 2048 for fp16, 256 for bf16's shorter mantissa).
  for (dtype t : {dtype::f16, dtype::bf16}) {
    CAPTURE(to_string(t));
    const auto enc = [&](float v) {
      return t == dtype::f16 ? cpu::float_to_half(v) : cpu::float_to_bfloat16(v);
    };
    const auto dec = [&](uint16_t v) {
      return t == dtype::f16 ? cpu::half_to_float(v) : cpu::bfloat16_to_float(v);
    };
    const float base = t == dtype::f16 ? 2048.f : 256.f;
    const std::vector<float> per_rank = {base, 1.f, 1.f, 2.f};
    std::vector<tensor> values;
    for (float v : per_rank) {
      tensor x = tensor::empty(t, {3});
      for (auto& e : std::span(static_cast<uint16_t*>(x.raw()), 3))
        e = enc(v);
      values.push_back(x);
    }
    auto st = on_ranks(4, [&](int r, communicator& c) { return c.all_reduce_sum(values[static_cast<size_t>(r)]); });
    for (size_t r = 0; r < 4; ++r) {
      REQUIRE(st[r].is_ok());
      for (int i = 0; i < 3; ++i)
        CHECK(dec(static_cast<uint16_t*>(values[r].raw())[i]) == base + 4.f);
    }
  }
}

TEST_CASE("host group: all_gather concatenates the parts in rank order along any axis") {
  for (int axis : {0, 1, 2, -1}) {
    CAPTURE(axis);
    const int ranks = 3;
    const shape part_dims{2, 3, 4};
    std::vector<tensor> parts, wholes;
    for (int r = 0; r < ranks; ++r) {
      tensor p = tensor::empty(dtype::i64, part_dims);
      auto v = p.values<int64_t>();
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = r * 1000 + static_cast<int64_t>(i);
      parts.push_back(p);
      shape wd = part_dims;
      wd[static_cast<size_t>(axis < 0 ? axis + 3 : axis)] *= ranks;
      wholes.push_back(tensor::zeros(dtype::i64, wd));
    }
    auto st = on_ranks(ranks, [&](int r, communicator& c) {
      return c.all_gather(parts[static_cast<size_t>(r)], wholes[static_cast<size_t>(r)], axis);
    });
    const int ax = axis < 0 ? axis + 3 : axis;
    for (int r = 0; r < ranks; ++r) {
      REQUIRE(st[static_cast<size_t>(r)].is_ok());
      const auto& w = wholes[static_cast<size_t>(r)];
      // Independent reference: element (i, j, k) of the whole comes from the part whose range
      // along `ax` holds it.
      for (int64_t i = 0; i < w.dim(0); ++i)
        for (int64_t j = 0; j < w.dim(1); ++j)
          for (int64_t k = 0; k < w.dim(2); ++k) {
            int64_t idx[3] = {i, j, k};
            const int64_t src = idx[ax] / part_dims[static_cast<size_t>(ax)];
            idx[ax] %= part_dims[static_cast<size_t>(ax)];
            const int64_t expect = src * 1000 + (idx[0] * 3 + idx[1]) * 4 + idx[2];
            CHECK(w.data<int64_t>()[(i * w.dim(1) + j) * w.dim(2) + k] == expect);
          }
    }
  }
}

TEST_CASE("host group: broadcast copies the root's values and send/recv pass a ring") {
  const int ranks = 4;
  std::vector<tensor> values;
  for (int r = 0; r < ranks; ++r)
    values.push_back(tensor::from_vector<int32_t>({2}, std::vector<int32_t>{r, -r}));
  auto st = on_ranks(ranks, [&](int r, communicator& c) {
    TROUPE_TRY_STATUS(c.broadcast(values[static_cast<size_t>(r)], 2));
    tensor mine = tensor::from_vector<int32_t>({1}, std::vector<int32_t>{10 * r});
    TROUPE_TRY_STATUS(c.send(mine, (r + 1) % ranks));
    *mine.data<int32_t>() = -1; // reusing the buffer must not change what was sent
    tensor got = tensor::zeros(dtype::i32, {1});
    TROUPE_TRY_STATUS(c.recv(got, (r + ranks - 1) % ranks));
    CHECK(*got.data<int32_t>() == 10 * ((r + ranks - 1) % ranks));
    return status::ok();
  });
  for (int r = 0; r < ranks; ++r) {
    REQUIRE_MESSAGE(st[static_cast<size_t>(r)].is_ok(), st[static_cast<size_t>(r)].to_string());
    CHECK(values[static_cast<size_t>(r)].data<int32_t>()[0] == 2);
    CHECK(values[static_cast<size_t>(r)].data<int32_t>()[1] == -2);
  }
}

TEST_CASE("host group: mismatched collectives fail on every rank and the group stays usable") {
  SUBCASE("different dims") {
    auto st = on_ranks(3, [&](int r, communicator& c) {
      tensor t = tensor::zeros(dtype::f32, {r == 1 ? 5 : 4});
      return c.all_reduce_sum(t);
    });
    for (const auto& s : st)
      CHECK(s.code() == errc::invalid_argument);
  }
  SUBCASE("different collectives, then a good round") {
    auto st = on_ranks(2, [&](int r, communicator& c) {
      tensor t = tensor::from_vector<float>({3}, std::vector<float>{1.f, 2.f, 3.f});
      auto first = r == 0 ? c.all_reduce_sum(t) : c.broadcast(t, 0);
      CHECK(first.code() == errc::invalid_argument);
      TROUPE_TRY_STATUS(c.all_reduce_sum(t));
      CHECK(t.data<float>()[2] == 6.f);
      return status::ok();
    });
    for (const auto& s : st)
      CHECK(s.is_ok());
  }
  SUBCASE("unsupported dtype on one rank fails all ranks") {
    auto st = on_ranks(2, [&](int r, communicator& c) {
      tensor t = tensor::zeros(r == 0 ? dtype::i32 : dtype::f32, {2});
      return c.all_reduce_sum(t);
    });
    CHECK(st[0].code() == errc::unsupported);
    CHECK(st[1].code() == errc::invalid_argument);
  }
  SUBCASE("bad peers, roots and recv dims") {
    auto st = on_ranks(2, [&](int r, communicator& c) {
      tensor t = tensor::zeros(dtype::f32, {2});
      CHECK(c.send(t, 2).code() == errc::invalid_argument);
      CHECK(c.recv(t, -1).code() == errc::invalid_argument);
      CHECK(c.broadcast(t, 5).code() == errc::invalid_argument);
      tensor wrong = tensor::zeros(dtype::f32, {3});
      TROUPE_TRY_STATUS(c.send(t, 1 - r));
      CHECK(c.recv(wrong, 1 - r).code() == errc::invalid_argument);
      tensor whole = tensor::zeros(dtype::f32, {3}); // should be {4}
      CHECK(c.all_gather(t, whole, 0).code() == errc::invalid_argument);
      return status::ok();
    });
    for (const auto& s : st)
      CHECK(s.is_ok());
  }
}

TEST_CASE("make_host_group with fewer than one rank is empty") {
  CHECK(make_host_group(0).empty());
  CHECK(make_host_group(-3).empty());
}
