// Tests of the NCCL communicator: the unique id's bytes here, the collectives on every GPU
// present, and aborting a group (a join that waits for a missing rank, later collectives).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "kernels/cpu/cast.hpp"
#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "kernels/cuda/nccl_communicator.hpp"
#include "kernels/gpu_collectives.hpp"
#include "kernels/group_aborts.hpp"

using namespace troupe;

namespace {

std::mt19937 seeded() { return std::mt19937{std::random_device{}()}; }

// A device tensor holding `values` (copied synchronously).
tensor to_device(const std::vector<float>& values, shape dims, int index) {
  auto s = cuda::allocate_device(index, values.size() * sizeof(float), nullptr);
  REQUIRE(s);
  REQUIRE(cudaMemcpy((*s)->data(), values.data(), values.size() * sizeof(float),
                     cudaMemcpyHostToDevice) == cudaSuccess);
  return tensor::wrap(dtype::f32, std::move(dims), *s);
}

std::vector<float> to_host(const tensor& t) {
  std::vector<float> values(static_cast<size_t>(t.numel()));
  REQUIRE(cudaMemcpy(values.data(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost) == cudaSuccess);
  return values;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> value(-1000, 1000); // integers: sums are exact
  std::vector<float> v(n);
  for (auto& x : v)
    x = static_cast<float>(value(rng));
  return v;
}

// The parts concatenated along `axis` of dims `part` (the CPU reference for all_gather).
std::vector<float> concat(const std::vector<std::vector<float>>& parts, const shape& part,
                          size_t axis) {
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < part.size(); ++d)
    (d < axis ? outer : inner) *= part[d];
  std::vector<float> whole;
  for (int64_t o = 0; o < outer; ++o)
    for (const auto& p : parts)
      whole.insert(whole.end(), p.begin() + o * inner, p.begin() + (o + 1) * inner);
  return whole;
}

/// A unique id straight from NCCL, which makes one without a GPU; the public
/// make_nccl_unique_id goes through the plugin loader, which answers `unavailable` first on a
/// machine without an NVIDIA driver.
std::vector<std::byte> fresh_nccl_id() {
  ncclUniqueId id;
  REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
  return cuda::nccl_id_bytes(id);
}

/// Runs `body(rank, communicator)` on one thread per rank, rank r on GPU r, all in one fresh
/// NCCL group. Returns each rank's failure (empty when it succeeded): results are compared on
/// the main thread, doctest assertions are not thread-safe.
std::vector<std::string>
on_every_gpu(int n, const std::function<status(int, cuda::nccl_communicator&)>& body) {
  auto id = make_nccl_unique_id();
  REQUIRE(id);
  std::vector<std::string> failures(static_cast<size_t>(n));
  std::vector<std::thread> ranks;
  for (int r = 0; r < n; ++r)
    ranks.emplace_back([&, r] {
      status st = cuda::check(cudaSetDevice(r), "cudaSetDevice");
      if (st) {
        auto comm = cuda::nccl_communicator::create(*id, r, n, r);
        st = comm ? body(r, **comm) : status(comm.error());
      }
      if (!st)
        failures[static_cast<size_t>(r)] = st.to_string();
    });
  for (auto& t : ranks)
    t.join();
  return failures;
}

} // namespace

TEST_CASE("an NCCL unique id survives the round trip through bytes") {
  const auto id = fresh_nccl_id();
  CHECK(id.size() == NCCL_UNIQUE_ID_BYTES);
  auto back = cuda::nccl_id_from_bytes(id);
  REQUIRE(back);
  CHECK(cuda::nccl_id_bytes(*back) == id);
  auto rng = seeded();
  std::vector<std::byte> random(NCCL_UNIQUE_ID_BYTES);
  for (auto& b : random)
    b = static_cast<std::byte>(rng());
  CHECK(cuda::nccl_id_bytes(*cuda::nccl_id_from_bytes(random)) == random);
}

TEST_CASE("an NCCL id of the wrong length or a bad rank is refused before NCCL is called") {
  std::vector<std::byte> short_id(NCCL_UNIQUE_ID_BYTES - 1);
  CHECK(cuda::nccl_id_from_bytes(short_id).error().code() == errc::invalid_argument);
  const auto id = fresh_nccl_id();
  CHECK(cuda::nccl_communicator::create(id, 2, 2, 0).error().code() == errc::invalid_argument);
  CHECK(cuda::nccl_communicator::create(id, 0, 0, 0).error().code() == errc::invalid_argument);
  CHECK(cuda::nccl_communicator::create(short_id, 0, 1, 0).error().code() ==
        errc::invalid_argument);
}

TEST_SUITE("gpu") {

  TEST_CASE("a one-rank NCCL group sums, gathers on any axis and broadcasts its own values") {
    auto rng = seeded();
    auto id = make_nccl_unique_id();
    REQUIRE(id);
    auto comm = cuda::nccl_communicator::create(*id, 0, 1, 0);
    REQUIRE(comm);
    auto& c = **comm;
    const auto values = random_floats(3 * 4 * 5, rng);
    tensor t = to_device(values, {3, 4, 5}, 0);
    REQUIRE(c.all_reduce_sum(t));
    for (int axis : {0, 1, 2, -1}) {
      tensor whole = to_device(std::vector<float>(values.size(), -1.0f), {3, 4, 5}, 0);
      REQUIRE(c.all_gather(t, whole, axis));
      REQUIRE(c.synchronize());
      CHECK(to_host(whole) == values);
    }
    REQUIRE(c.broadcast(t, 0));
    REQUIRE(c.synchronize());
    CHECK(to_host(t) == values);
  }

  TEST_CASE("a rank joining a group whose other rank never comes is released by the group's "
            "abort, and an aborted one-rank group refuses its collectives") {
    auto id = make_nccl_unique_id();
    REQUIRE(id);
    auto& board = group_aborts::global();
    const size_t members_before = board.members();
    expected<std::unique_ptr<cuda::nccl_communicator>> joined =
        make_error(errc::internal, "not run");
    std::thread rank0([&] { joined = cuda::nccl_communicator::create(*id, 0, 2, 0); });
    // Rank 0 enlists before it joins; rank 1 never comes.
    while (board.members() == members_before)
      std::this_thread::yield();
    board.abort(*id, status{errc::unavailable, "rank 1 could not load"});
    rank0.join();
    REQUIRE_FALSE(joined.has_value());
    CHECK(joined.error().code() == errc::unavailable);
    CHECK(joined.error().message().find("rank 1 could not load") != std::string::npos);
    CHECK(board.members() == members_before);
    // Joining the aborted group later fails at once.
    CHECK(cuda::nccl_communicator::create(*id, 1, 2, 0).error().code() == errc::unavailable);

    auto solo_id = make_nccl_unique_id();
    REQUIRE(solo_id);
    auto solo = cuda::nccl_communicator::create(*solo_id, 0, 1, 0);
    REQUIRE(solo);
    tensor t = to_device(std::vector<float>(8, 1.0f), {8}, 0);
    REQUIRE((*solo)->all_reduce_sum(t));
    CHECK((*solo)->aborted().is_ok());
    board.abort(*solo_id, status{errc::unavailable, "the replica was stopped"});
    CHECK((*solo)->aborted().message() == "the replica was stopped");
    CHECK((*solo)->all_reduce_sum(t).message() == "the replica was stopped");
    CHECK((*solo)->synchronize());
  }

  TEST_CASE("the NCCL communicator refuses host tensors, bad shapes, dtypes and peers") {
    auto id = make_nccl_unique_id();
    REQUIRE(id);
    auto comm = cuda::nccl_communicator::create(*id, 0, 1, 0);
    REQUIRE(comm);
    auto& c = **comm;
    tensor host = tensor::zeros(dtype::f32, {4});
    CHECK(c.all_reduce_sum(host).code() == errc::invalid_argument);
    tensor dev = to_device(std::vector<float>(4, 1.0f), {4}, 0);
    tensor wrong = to_device(std::vector<float>(6, 1.0f), {6}, 0);
    CHECK(c.all_gather(dev, wrong, 0).code() == errc::invalid_argument);
    CHECK(c.all_gather(dev, dev, 1).code() == errc::invalid_argument);
    tensor ints = tensor::wrap(dtype::i32, {4}, dev.buffer());
    CHECK(c.all_reduce_sum(ints).code() == errc::unsupported);
    CHECK(c.broadcast(dev, 1).code() == errc::invalid_argument);
    CHECK(c.send(dev, 0).code() == errc::invalid_argument); // itself
    CHECK(c.recv(dev, 3).code() == errc::invalid_argument);
  }

  TEST_CASE("NCCL groups over every GPU sum, gather, broadcast and pass tensors along") {
    auto count = cuda::device_count();
    REQUIRE(count);
    const int n = *count;
    if (n < 2) {
      MESSAGE("one GPU: the multi-rank collectives need two or more (covered by one-rank case)");
      return;
    }
    auto rng = seeded();
    const shape part{2, 3, 4};
    std::vector<std::vector<float>> inputs;
    for (int r = 0; r < n; ++r)
      inputs.push_back(random_floats(24, rng));
    std::vector<float> sum(24, 0.0f);
    for (const auto& in : inputs)
      for (size_t i = 0; i < sum.size(); ++i)
        sum[i] += in[i];
    std::vector<std::vector<float>> reduced(n), gathered0(n), gathered2(n), broadcasted(n),
        received(n);
    auto failures = on_every_gpu(n, [&](int r, cuda::nccl_communicator& c) {
      status made;
      auto make = [&](const std::vector<float>& v, shape dims) {
        auto s = cuda::allocate_device(r, v.size() * sizeof(float), nullptr);
        if (!s) { // the collectives then refuse the undefined tensor
          made = s.error();
          return tensor{};
        }
        (void)cudaMemcpy((*s)->data(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice);
        return tensor::wrap(dtype::f32, std::move(dims), *s);
      };
      auto read = [&](const tensor& t) {
        std::vector<float> v(static_cast<size_t>(t.numel()));
        (void)cudaMemcpy(v.data(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost);
        return v;
      };
      tensor t = make(inputs[r], part);
      tensor whole0 = make(std::vector<float>(24 * n), {2 * n, 3, 4});
      tensor whole2 = make(std::vector<float>(24 * n), {2, 3, 4 * n});
      tensor b = make(inputs[r], part);
      tensor ring = make(std::vector<float>(24), part);
      status st = c.all_gather(t, whole0, 0);
      if (st)
        st = c.all_gather(t, whole2, 2);
      if (st)
        st = c.all_reduce_sum(t);
      if (st)
        st = c.broadcast(b, n - 1);
      // A ring: even ranks send first, odd ranks receive first, so no pair waits on itself.
      const int next = (r + 1) % n, prev = (r + n - 1) % n;
      tensor mine = make(inputs[r], part);
      if (st && r % 2 == 0)
        st = c.send(mine, next);
      if (st)
        st = c.recv(ring, prev);
      if (st && r % 2 == 1)
        st = c.send(mine, next);
      if (st)
        st = c.synchronize();
      if (!made)
        return made;
      if (!st)
        return st;
      reduced[r] = read(t);
      gathered0[r] = read(whole0);
      gathered2[r] = read(whole2);
      broadcasted[r] = read(b);
      received[r] = read(ring);
      return status::ok();
    });
    for (int r = 0; r < n; ++r) {
      INFO("rank ", r);
      REQUIRE(failures[r].empty());
      CHECK(reduced[r] == sum);
      CHECK(gathered0[r] == concat(inputs, part, 0));
      CHECK(gathered2[r] == concat(inputs, part, 2));
      CHECK(broadcasted[r] == inputs[n - 1]);
      CHECK(received[r] == inputs[(r + n - 1) % n]);
    }
  }

  TEST_CASE("NCCL all_reduce_sum of fp16 and bf16 over every GPU equals the fp32 sum rounded "
            "once") {
    // Integers each format holds exactly, whose sums mostly do not: summed in 16 bits at every
    // step they would be rounded once per rank (from three ranks on, visibly); accumulated in
    // fp32 they are exact until the one final rounding. 1003 elements: not a multiple of any
    // small rank count, so the padded path runs too.
    auto count = cuda::device_count();
    REQUIRE(count);
    const int n = *count;
    if (n < 3)
      MESSAGE(n, " GPU(s): the path runs, but only three or more ranks tell fp32 "
                 "accumulation from 16-bit");
    auto rng = seeded();
    const size_t elements = 1003;
    for (dtype t : {dtype::f16, dtype::bf16}) {
      CAPTURE(to_string(t));
      const bool half = t == dtype::f16;
      auto enc = [&](float v) { return half ? cpu::float_to_half(v) : cpu::float_to_bfloat16(v); };
      auto dec = [&](uint16_t v) {
        return half ? cpu::half_to_float(v) : cpu::bfloat16_to_float(v);
      };
      const int limit = half ? 2048 : 256; // integers up to here are exact in the format
      std::uniform_int_distribution<int> value(-limit, limit);
      std::vector<std::vector<uint16_t>> inputs(n, std::vector<uint16_t>(elements));
      std::vector<float> exact(elements, 0.0f); // integers far below 2^24: fp32 is exact
      for (int r = 0; r < n; ++r)
        for (size_t i = 0; i < elements; ++i) {
          const auto v = static_cast<float>(value(rng));
          inputs[r][i] = enc(v);
          exact[i] += v;
        }
      std::vector<std::vector<uint16_t>> reduced(n);
      auto failures = on_every_gpu(n, [&](int r, cuda::nccl_communicator& c) {
        auto s = cuda::allocate_device(r, elements * sizeof(uint16_t), nullptr);
        if (!s)
          return status(s.error());
        TROUPE_CUDA_TRY(cudaMemcpy((*s)->data(), inputs[r].data(), elements * sizeof(uint16_t),
                                   cudaMemcpyHostToDevice));
        tensor x = tensor::wrap(t, {static_cast<int64_t>(elements)}, *s);
        TROUPE_TRY_STATUS(c.all_reduce_sum(x));
        TROUPE_TRY_STATUS(c.synchronize());
        reduced[r].resize(elements);
        TROUPE_CUDA_TRY(cudaMemcpy(reduced[r].data(), x.raw(), x.nbytes(), cudaMemcpyDeviceToHost));
        return status::ok();
      });
      for (int r = 0; r < n; ++r) {
        INFO("rank ", r);
        REQUIRE(failures[r].empty());
        // Within the format's own rounding of the fp32 reference (2^-11 and 2^-8 relative),
        // and bit for bit that reference rounded once.
        const double tolerance = half ? 1e-3 : 4e-3;
        size_t far = 0, wrong = 0;
        for (size_t i = 0; i < elements; ++i) {
          const float got = dec(reduced[r][i]);
          far += std::abs(got - exact[i]) > tolerance * std::abs(exact[i]) ? 1 : 0;
          wrong += got != dec(enc(exact[i])) ? 1 : 0;
        }
        CHECK(far == 0);
        CHECK(wrong == 0);
      }
    }
  }

} // TEST_SUITE
