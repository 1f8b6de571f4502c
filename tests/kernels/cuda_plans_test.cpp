// Host-side logic of the CUDA backend, run for real without a GPU: index walks applied on the
// CPU against naive index arithmetic, ONNX slice semantics, conv/pool output dims, cache
// keys and argument errors that return before any device call.
#include <doctest/doctest.h>

#include <limits>

#include <numeric>

#include "kernels/cuda/cublas_gemm.hpp"
#include "kernels/cuda/cuda_plans.hpp"
#include "kernels/cuda/cudnn_conv.hpp"
#include "kernels/cuda/elementwise.hpp"
#include "kernels/cuda/normalization.hpp"
#include "kernels/cuda/reduce.hpp"
#include "kernels/cuda/shape_ops.hpp"
#include "tests/kernels/cuda_test_util.hpp"

using namespace troupe;
using namespace troupe::cuda;

namespace {

/// Row-major multi-index of flat i in dims.
std::vector<int64_t> unravel(int64_t i, const shape& dims) {
  std::vector<int64_t> idx(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    idx[d] = i % dims[d];
    i /= dims[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const shape& dims) {
  int64_t flat = 0;
  for (size_t d = 0; d < dims.size(); ++d)
    flat = flat * dims[d] + idx[d];
  return flat;
}

shape random_dims(size_t rank, int64_t max_dim) {
  std::uniform_int_distribution<int64_t> dist(1, max_dim);
  shape dims(rank);
  for (auto& d : dims)
    d = dist(test::rng());
  return dims;
}

} // namespace

TEST_CASE("binary plans walk numpy-broadcast operands like naive index arithmetic") {
  std::vector<std::pair<shape, shape>> cases = {
      {{2, 3, 4, 5}, {3, 1, 5}}, {{4, 1}, {1, 6}}, {{3, 4}, {3, 4}}, {{2, 3}, {}},
      {{1, 2, 1, 3, 1, 4, 2}, {2, 1, 3, 4, 1}}};
  const shape r = random_dims(4, 4);
  shape rb = r;
  rb[0] = rb[2] = 1;
  cases.emplace_back(r, rb);
  for (const auto& [a, b] : cases) {
    auto plan = plan_binary(a, b);
    REQUIRE(plan);
    CHECK(plan->walk.rank <= max_rank);
    CHECK(plan->walk.total == numel_of(plan->out_dims));
    const shape& out = plan->out_dims;
    for (int64_t i = 0; i < plan->walk.total; ++i) {
      int64_t oa = 0, ob = 0;
      plan->walk.offsets(i, oa, ob);
      const auto idx = unravel(i, out);
      auto operand_offset = [&](const shape& dims) {
        std::vector<int64_t> sub(dims.size());
        for (size_t d = 0; d < dims.size(); ++d)
          sub[d] = dims[d] == 1 ? 0 : idx[out.size() - dims.size() + d];
        return ravel(sub, dims);
      };
      REQUIRE(oa == operand_offset(a));
      REQUIRE(ob == operand_offset(b));
    }
  }
  auto same = plan_binary(shape{3, 4}, shape{3, 4});
  CHECK(same->same);
  CHECK(same->walk.rank == 1);
  auto bad = plan_binary(shape{4, 3}, shape{4, 2});
  REQUIRE(!bad);
  CHECK(bad.error().code() == errc::invalid_argument);
}

TEST_CASE("transpose plans match a naive transpose and detect the tiled last-two-axes swap") {
  const std::vector<std::pair<shape, std::vector<int64_t>>> cases = {
      {{5, 37, 65}, {0, 2, 1}}, {{37, 65}, {1, 0}},         {{3, 4, 5}, {2, 0, 1}},
      {{2, 3, 4, 5, 6, 7}, {5, 3, 1, 0, 2, 4}}, {{2, 3, 4}, {}}, {{2, 1, 3, 4}, {0, 1, 3, 2}}};
  for (const auto& [dims, perm_in] : cases) {
    auto plan = plan_transpose(dims, perm_in);
    REQUIRE(plan);
    std::vector<int64_t> perm = perm_in;
    if (perm.empty())
      for (size_t d = dims.size(); d-- > 0;)
        perm.push_back(static_cast<int64_t>(d));
    for (int64_t i = 0; i < plan->walk.total; ++i) {
      int64_t at = 0, unused = 0;
      plan->walk.offsets(i, at, unused);
      const auto out_idx = unravel(i, plan->out_dims);
      std::vector<int64_t> in_idx(dims.size());
      for (size_t d = 0; d < perm.size(); ++d)
        in_idx[static_cast<size_t>(perm[d])] = out_idx[d];
      REQUIRE(at == ravel(in_idx, dims));
    }
  }
  auto batched = plan_transpose(shape{5, 37, 65}, std::vector<int64_t>{0, 2, 1});
  CHECK(batched->tiled);
  CHECK(batched->batch == 5);
  CHECK(batched->rows == 37);
  CHECK(batched->cols == 65);
  // A size-1 axis and merged leading axes still reduce to the tiled case.
  auto merged = plan_transpose(shape{2, 1, 3, 4, 5}, std::vector<int64_t>{0, 1, 2, 4, 3});
  CHECK(merged->tiled);
  CHECK(merged->batch == 6);
  // Moving the last axis first is the transpose of [12, 5].
  auto rotated = plan_transpose(shape{3, 4, 5}, std::vector<int64_t>{2, 0, 1});
  CHECK((rotated->tiled && rotated->rows == 12 && rotated->cols == 5));
  CHECK(!plan_transpose(shape{3, 4, 5}, std::vector<int64_t>{1, 0, 2})->tiled);
  CHECK(plan_transpose(shape{3, 4}, std::vector<int64_t>{0, 0}).error().code() == errc::invalid_argument);
  CHECK(!plan_transpose(shape{3, 4}, std::vector<int64_t>{0, 1, 2}));
}

TEST_CASE("slice plans follow ONNX clamping, negative indices and negative steps") {
  const shape dims{10, 6};
  const int64_t starts[] = {-3, 100}, ends[] = {100, -100}, axes[] = {0, 1}, steps[] = {1, -2};
  auto plan = plan_slice(dims, starts, ends, axes, steps);
  REQUIRE(plan);
  CHECK(plan->out_dims == shape{3, 3});
  std::vector<int64_t> got;
  for (int64_t i = 0; i < plan->walk.total; ++i) {
    int64_t at = 0, unused = 0;
    plan->walk.offsets(i, at, unused);
    got.push_back(plan->in_offset + at);
  }
  // Rows 7..9, columns 5, 3, 1.
  CHECK(got == std::vector<int64_t>{47, 45, 43, 53, 51, 49, 59, 57, 55});

  const int64_t empty_start[] = {4}, empty_end[] = {2};
  CHECK(plan_slice(dims, empty_start, empty_end, {}, {})->out_dims == shape{0, 6});
  const int64_t zero_step[] = {0};
  CHECK(plan_slice(dims, empty_start, empty_end, {}, zero_step).error().code() == errc::invalid_argument);

  // The extreme values ONNX exporters write for "to the end", as steps too, and an empty axis
  // walked backwards: one element or none, no overflow.
  constexpr int64_t lowest = std::numeric_limits<int64_t>::min();
  constexpr int64_t highest = std::numeric_limits<int64_t>::max();
  const int64_t from_first[] = {0}, to_last[] = {highest}, huge_step[] = {highest};
  auto one_row = plan_slice(dims, from_first, to_last, {}, huge_step);
  REQUIRE(one_row);
  CHECK(one_row->out_dims == shape{1, 6});
  CHECK(one_row->in_offset == 0);
  const int64_t from_last[] = {-1}, to_before_first[] = {lowest}, back_step[] = {lowest};
  auto last_row = plan_slice(dims, from_last, to_before_first, {}, back_step);
  REQUIRE(last_row);
  CHECK(last_row->out_dims == shape{1, 6});
  CHECK(last_row->in_offset == 54);
  const int64_t minus_one[] = {-1};
  auto none = plan_slice(shape{0, 6}, from_last, to_before_first, {}, minus_one);
  REQUIRE(none);
  CHECK(none->out_dims == shape{0, 6});

  const int64_t sizes[] = {2, 0, 4};
  auto parts = plan_split(shape{3, 6}, -1, sizes);
  REQUIRE(parts);
  REQUIRE(parts->size() == 3);
  CHECK((*parts)[0].out_dims == shape{3, 2});
  CHECK((*parts)[1].walk.total == 0);
  CHECK((*parts)[2].in_offset == 2);
  const int64_t wrong[] = {2, 2};
  CHECK(!plan_split(shape{3, 6}, 1, wrong));
}

TEST_CASE("concat, gather and row plans compute the flattened geometry") {
  const std::vector<shape> ins = {{2, 3, 4}, {2, 5, 4}};
  auto c = plan_concat(ins, 1);
  REQUIRE(c);
  CHECK(c->out_dims == shape{2, 8, 4});
  CHECK(c->outer == 2);
  CHECK(c->out_columns == 32);
  CHECK(c->in_columns == std::vector<int64_t>{12, 20});
  CHECK(c->column_offset == std::vector<int64_t>{0, 12});
  const std::vector<shape> mismatched = {{2, 3}, {3, 3}};
  CHECK(plan_concat(mismatched, 1).error().code() == errc::invalid_argument);

  auto g = plan_gather(shape{4, 5, 6}, shape{2, 3}, -2);
  REQUIRE(g);
  CHECK(g->out_dims == shape{4, 2, 3, 6});
  CHECK((g->outer == 4 && g->axis_dim == 5 && g->inner == 6 && g->indices == 6));
  // Scalars have no axis to work along (normalize_axis alone would accept axis 0).
  CHECK(plan_gather(shape{}, shape{}, 0).error().code() == errc::invalid_argument);
  const std::vector<shape> scalars = {{}, {}};
  CHECK(!plan_concat(scalars, 0));
  const int64_t zero[] = {0}, one[] = {1};
  CHECK(!plan_split(shape{}, 0, one));
  CHECK(!plan_slice(shape{}, zero, one, {}, {}));
  CHECK(!plan_reduce(shape{}, zero, false));
  CHECK(plan_reduce(shape{}, {}, false)->kept.total == 1);

  auto rows = plan_rows(shape{3, 4, 10}, 1);
  CHECK((rows->rows == 3 && rows->cols == 40));
  CHECK(!plan_rows(shape{}, -1));
  CHECK(group_threads(5) == 32);
  CHECK(group_threads(768) == 256);
  CHECK(group_threads(100000) == 512);
  CHECK(row_blocks_for(768).rows_per_block == 1);
  CHECK(row_blocks_for(20).rows_per_block == 8);
}

TEST_CASE("reduce plans visit every input of every output exactly once") {
  const shape dims = random_dims(5, 4);
  std::vector<float> x(static_cast<size_t>(numel_of(dims)));
  std::iota(x.begin(), x.end(), 1.0f);
  const std::vector<std::vector<int64_t>> axis_sets = {{1}, {0, 2}, {}, {-1}, {1, 3, 4}};
  for (const auto& axes : axis_sets) {
    auto plan = plan_reduce(dims, axes, true);
    REQUIRE(plan);
    std::vector<bool> reduced(dims.size(), axes.empty());
    for (int64_t a : axes)
      reduced[static_cast<size_t>(a < 0 ? a + 5 : a)] = true;
    shape out_dims;
    for (size_t d = 0; d < dims.size(); ++d)
      out_dims.push_back(reduced[d] ? 1 : dims[d]);
    CHECK(plan->out_dims == out_dims);
    // Sum through the walks (as the kernel does) against a naive scatter-add.
    std::vector<double> walked(static_cast<size_t>(plan->kept.total), 0.0), naive(walked.size(), 0.0);
    for (int64_t o = 0; o < plan->kept.total; ++o) {
      int64_t base = 0, unused = 0;
      plan->kept.offsets(o, base, unused);
      for (int64_t j = 0; j < plan->reduced.total; ++j) {
        int64_t at = 0;
        plan->reduced.offsets(j, at, unused);
        walked[static_cast<size_t>(o)] += x[static_cast<size_t>(base + at)];
      }
    }
    for (int64_t i = 0; i < numel_of(dims); ++i) {
      auto idx = unravel(i, dims);
      for (size_t d = 0; d < dims.size(); ++d)
        if (reduced[d])
          idx[d] = 0;
      naive[static_cast<size_t>(ravel(idx, out_dims))] += x[static_cast<size_t>(i)];
    }
    CHECK(walked == naive);
  }
  CHECK(plan_reduce(shape{3, 4}, std::vector<int64_t>{1}, false)->out_dims == shape{3});
  CHECK(plan_reduce(shape{3, 4}, std::vector<int64_t>{1}, false)->inner_contiguous);
  CHECK(!plan_reduce(shape{3, 4}, std::vector<int64_t>{0}, false)->inner_contiguous);
  CHECK(plan_reduce(shape{3, 4}, std::vector<int64_t>{1, 1}, false).error().code() == errc::invalid_argument);
}

TEST_CASE("conv and pool output dims follow the ONNX formulas and reject bad geometry") {
  conv_params stem;
  stem.n = 8, stem.c = 3, stem.h = 224, stem.w = 224, stem.k = 64, stem.r = 7, stem.s = 7;
  stem.stride_h = stem.stride_w = 2;
  stem.pad_top = stem.pad_left = stem.pad_bottom = stem.pad_right = 3;
  auto out = conv_output(stem);
  REQUIRE(out);
  CHECK((out->n == 8 && out->k == 64 && out->p == 112 && out->q == 112));

  conv_params dilated = stem;
  dilated.stride_h = dilated.stride_w = 1;
  dilated.dilation_h = 2;
  dilated.pad_top = dilated.pad_bottom = 0;
  // (224 - (2 * 6 + 1)) / 1 + 1 = 212 rows; columns keep pad 3: 224.
  CHECK(conv_output(dilated)->p == 212);
  CHECK(conv_output(dilated)->q == 224);

  conv_params asymmetric = stem;
  asymmetric.pad_bottom = 2;
  CHECK(conv_output(asymmetric).error().code() == errc::unsupported);
  conv_params grouped = stem;
  grouped.groups = 2;
  CHECK(conv_output(grouped).error().code() == errc::invalid_argument);
  conv_params int8 = stem;
  int8.type = dtype::i8;
  CHECK(conv_output(int8).error().code() == errc::unsupported);
  conv_params tiny = stem;
  tiny.h = 2, tiny.pad_top = tiny.pad_bottom = 0;
  CHECK(conv_output(tiny).error().code() == errc::invalid_argument);

  pool_params pool;
  pool.n = 8, pool.c = 64, pool.h = pool.w = 112, pool.kernel_h = pool.kernel_w = 3;
  pool.stride_h = pool.stride_w = 2, pool.pad_top = pool.pad_left = pool.pad_bottom = pool.pad_right = 1;
  CHECK(pool_output(pool)->p == 56);
  pool.global = true;
  CHECK((pool_output(pool)->p == 1 && pool_output(pool)->q == 1 && pool_output(pool)->k == 64));
}

TEST_CASE("algorithm cache keys separate what changes the choice and nothing else") {
  conv_params a;
  a.n = 2, a.c = 16, a.h = a.w = 28, a.k = 32, a.r = a.s = 3;
  conv_params b = a;
  b.bias = true;
  b.activation = conv_activation::relu;
  CHECK(conv_key_of(a) == conv_key_of(b));
  CHECK(conv_key_hash{}(conv_key_of(a)) == conv_key_hash{}(conv_key_of(b)));
  conv_params c = a;
  c.stride_w = 2;
  CHECK(conv_key_of(a) != conv_key_of(c));
  conv_params d = a;
  d.layout = tensor_layout::nhwc;
  CHECK(conv_key_of(a) != conv_key_of(d));

  conv_algo_cache cache(1 << 20);
  conv_algo_cache::entry e{CUDNN_CONVOLUTION_FWD_ALGO_GEMM, 4096, CUDNN_FMA_MATH};
  cache.insert(conv_key_of(a), e);
  conv_algo_cache::entry found;
  REQUIRE(cache.find(conv_key_of(b), found));
  CHECK(found.workspace == 4096);
  CHECK(!cache.find(conv_key_of(c), found));
  CHECK(cache.size() == 1);

  gemm_params g;
  g.m = 64, g.n = 128, g.k = 256, g.batch = 3;
  auto strides = gemm_check(g);
  REQUIRE(strides);
  CHECK((strides->a == 64 * 256 && strides->b == 256 * 128 && strides->c == 64 * 128));
  g.stride_b = 0; // shared weights
  CHECK(gemm_check(g)->b == 0);
  const std::array<uint32_t, 3> aligned{256, 256, 256}, odd{256, 4, 256};
  CHECK(gemm_key_of(g, *gemm_check(g), 1 << 20, aligned) != gemm_key_of(g, *gemm_check(g), 1 << 20, odd));
  CHECK(gemm_key_of(g, *gemm_check(g), 1 << 20, aligned) != gemm_key_of(g, *gemm_check(g), 1 << 21, aligned));
  gemm_params overlapping = g;
  overlapping.stride_c = 0;
  CHECK(gemm_check(overlapping).error().code() == errc::invalid_argument);
  gemm_params half = g;
  half.type = dtype::f64;
  CHECK(gemm_check(half).error().code() == errc::unsupported);
  CHECK(alignment_of(reinterpret_cast<const void*>(uintptr_t{0x1000})) == 256);
  CHECK(alignment_of(reinterpret_cast<const void*>(uintptr_t{0x1006})) == 2);
}

TEST_CASE("CUDA kernel entry points reject bad arguments before touching the device") {
  float* fake = nullptr; // never dereferenced: every call fails validation first
  const int64_t a[] = {4, 3}, b[] = {4, 2};
  CHECK(binary(binary_op::add, dtype::f32, a, fake, b, fake, fake, nullptr).code() == errc::invalid_argument);
  CHECK(binary(binary_op::add, dtype::i32, a, fake, a, fake, fake, nullptr).code() == errc::unsupported);
  CHECK(unary(unary_op::relu, dtype::f16, fake, fake, -1, nullptr).code() == errc::invalid_argument);
  CHECK(cast(dtype::f32, fake, dtype::i8, fake, 4, nullptr).code() == errc::unsupported);
  CHECK(layer_norm(dtype::f32, a, 5, fake, fake, nullptr, fake, 1e-5f, nullptr).code() == errc::invalid_argument);
  CHECK(layer_norm(dtype::f32, a, -1, fake, nullptr, nullptr, fake, 1e-5f, nullptr).code() == errc::invalid_argument);
  CHECK(softmax(dtype::f32, shape{}, fake, fake, nullptr).code() == errc::invalid_argument);
  const int64_t axes[] = {2};
  CHECK(reduce(reduce_op::sum, dtype::f32, a, axes, fake, fake, nullptr).code() == errc::invalid_argument);
  const int64_t perm[] = {1, 1};
  CHECK(transpose(dtype::f32, a, perm, fake, fake, nullptr).code() == errc::invalid_argument);
  CHECK(transpose(dtype::string, a, {}, fake, fake, nullptr).code() == errc::unsupported);
  int flag_storage = 0;
  CHECK(gather(dtype::f32, a, fake, dtype::i16, a, fake, 0, fake, &flag_storage, nullptr).code() == errc::invalid_argument);
  CHECK(gather(dtype::f32, a, fake, dtype::i32, a, fake, 0, fake, nullptr, nullptr).code() == errc::invalid_argument);
  const std::vector<shape> dims = {{2, 3}};
  const void* one_input[] = {fake, fake};
  CHECK(concat(dtype::f32, dims, one_input, 0, fake, nullptr).code() == errc::invalid_argument);
  conv_algo_cache cache(0);
  conv_params bad;
  bad.groups = 0;
  CHECK(conv_workspace_size(nullptr, cache, bad).error().code() == errc::invalid_argument);
  gemm_algo_cache gemm_cache;
  gemm_params g;
  g.m = g.n = g.k = 4;
  g.epilogue = gemm_epilogue::bias;
  CHECK(gemm(nullptr, gemm_cache, g, fake, fake, nullptr, fake, fake, 0, nullptr).code() == errc::invalid_argument);
}
