// cublas_gemm: row-major GEMM on column-major cuBLASLt by computing C^T = op(B)^T op(A)^T.
#include "kernels/cuda/cublas_gemm.hpp"
#include "kernels/cuda/key_hash.hpp"

#include <climits>

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/cuda_plans.hpp"

namespace troupe::cuda {

namespace {

template <class T, cublasStatus_t (*Destroy)(T)>
class owned {
public:
  owned() = default;
  owned(const owned&) = delete;
  owned& operator=(const owned&) = delete;
  ~owned() {
    if (value_ != nullptr)
      (void)Destroy(value_);
  }
  T* out() { return &value_; }
  T get() const { return value_; }

private:
  T value_ = nullptr;
};

using matmul_desc = owned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using layout_desc = owned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using preference_desc = owned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

cudaDataType_t cuda_type(dtype t) {
  return t == dtype::f16 ? CUDA_R_16F : t == dtype::bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

cublasLtEpilogue_t cublas_epilogue(gemm_epilogue e) {
  switch (e) {
  case gemm_epilogue::relu: return CUBLASLT_EPILOGUE_RELU;
  case gemm_epilogue::gelu: return CUBLASLT_EPILOGUE_GELU;
  case gemm_epilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
  case gemm_epilogue::bias_relu: return CUBLASLT_EPILOGUE_RELU_BIAS;
  case gemm_epilogue::bias_gelu: return CUBLASLT_EPILOGUE_GELU_BIAS;
  case gemm_epilogue::none: break;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool has_bias(gemm_epilogue e) {
  return e == gemm_epilogue::bias || e == gemm_epilogue::bias_relu || e == gemm_epilogue::bias_gelu;
}

template <class V>
status set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const V& value) {
  return check(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof value),
               "cublasLtMatmulDescSetAttribute");
}

/// A column-major rows x cols matrix with leading dimension ld, `batch` of them `stride` apart.
status make_layout(layout_desc& d, dtype t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                   int64_t stride) {
  TROUPE_CUDA_TRY(cublasLtMatrixLayoutCreate(d.out(), cuda_type(t), static_cast<uint64_t>(rows),
                                             static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const auto count = static_cast<int32_t>(batch);
    TROUPE_CUDA_TRY(cublasLtMatrixLayoutSetAttribute(d.get(), CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                     &count, sizeof count));
    TROUPE_CUDA_TRY(cublasLtMatrixLayoutSetAttribute(
        d.get(), CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
  return status::ok();
}

} // namespace

expected<gemm_strides> gemm_check(const gemm_params& p) {
  TROUPE_TRY_STATUS(require_gpu_float(p.type, "gemm"));
  if (p.m < 0 || p.n < 0 || p.k < 1 || p.batch < 1)
    return make_error(errc::invalid_argument, "gemm: m {} n {} k {} batch {} (k and batch must be >= 1)",
                      p.m, p.n, p.k, p.batch);
  if (p.batch > INT32_MAX)
    return make_error(errc::unsupported, "gemm: batch {} exceeds cuBLASLt's int32 count", p.batch);
  if (p.stride_a < -1 || p.stride_b < -1 || p.stride_c < -1)
    return make_error(errc::invalid_argument, "gemm: batch strides must be >= -1");
  auto mk = checked_numel(std::vector<int64_t>{p.m, p.k});
  auto kn = checked_numel(std::vector<int64_t>{p.k, p.n});
  auto mn = checked_numel(std::vector<int64_t>{p.m, p.n});
  auto total = checked_numel(std::vector<int64_t>{p.batch, p.m, p.n});
  if (!mk || !kn || !mn || !total)
    return make_error(errc::out_of_range, "gemm: matrix sizes overflow");
  gemm_strides s{p.stride_a == -1 ? *mk : p.stride_a, p.stride_b == -1 ? *kn : p.stride_b,
                 p.stride_c == -1 ? *mn : p.stride_c};
  if (p.batch > 1 && s.c < *mn)
    return make_error(errc::invalid_argument, "gemm: batch stride {} of C overlaps [{},{}] outputs",
                      s.c, p.m, p.n);
  return s;
}

gemm_key gemm_key_of(const gemm_params& p, const gemm_strides& s, size_t workspace_size,
                     const std::array<uint32_t, 3>& alignments) {
  return {static_cast<int64_t>(p.type), p.trans_a, p.trans_b, p.m, p.n, p.k, p.batch, s.a, s.b,
          s.c, static_cast<int64_t>(p.epilogue), p.allow_tf32,
          static_cast<int64_t>(workspace_size), alignments[0], alignments[1], alignments[2]};
}

uint32_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0)
    alignment /= 2;
  return alignment;
}

size_t gemm_key_hash::operator()(const gemm_key& key) const { return hash_fields(key); }

status gemm(cublasLtHandle_t handle, gemm_algo_cache& cache, const gemm_params& p, const void* a,
            const void* b, const void* bias, void* c, void* workspace, size_t workspace_size,
            cudaStream_t stream) {
  auto strides = gemm_check(p);
  if (!strides)
    return strides.error();
  if (has_bias(p.epilogue) && bias == nullptr)
    return make_error(errc::invalid_argument, "gemm: the bias epilogue needs a bias");
  if (p.m == 0 || p.n == 0)
    return status::ok();

  // Row-major C[m,n] is column-major C^T[n,m] = op(B)^T op(A)^T: B's memory is the first
  // cuBLASLt operand, A's the second, and no data moves.
  const cublasComputeType_t compute = p.type == dtype::f32 && p.allow_tf32
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  matmul_desc op;
  TROUPE_CUDA_TRY(cublasLtMatmulDescCreate(op.out(), compute, CUDA_R_32F));
  const cublasOperation_t first = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t second = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  TROUPE_TRY_STATUS(set_attr(op.get(), CUBLASLT_MATMUL_DESC_TRANSA, first));
  TROUPE_TRY_STATUS(set_attr(op.get(), CUBLASLT_MATMUL_DESC_TRANSB, second));
  TROUPE_TRY_STATUS(set_attr(op.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, cublas_epilogue(p.epilogue)));
  if (has_bias(p.epilogue))
    TROUPE_TRY_STATUS(set_attr(op.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias));

  layout_desc first_layout, second_layout, out_layout;
  // Stored B: [k, n] row-major = column-major n x k (ld n); transposed, [n, k] = k x n (ld k).
  TROUPE_TRY_STATUS(p.trans_b ? make_layout(first_layout, p.type, p.k, p.n, p.k, p.batch, strides->b)
                              : make_layout(first_layout, p.type, p.n, p.k, p.n, p.batch, strides->b));
  TROUPE_TRY_STATUS(p.trans_a ? make_layout(second_layout, p.type, p.m, p.k, p.m, p.batch, strides->a)
                              : make_layout(second_layout, p.type, p.k, p.m, p.k, p.batch, strides->a));
  TROUPE_TRY_STATUS(make_layout(out_layout, p.type, p.n, p.m, p.n, p.batch, strides->c));

  const std::array<uint32_t, 3> alignments{alignment_of(a), alignment_of(b), alignment_of(c)};
  const gemm_key key = gemm_key_of(p, *strides, workspace_size, alignments);
  cublasLtMatmulAlgo_t algo;
  if (!cache.find(key, algo)) {
    preference_desc pref;
    TROUPE_CUDA_TRY(cublasLtMatmulPreferenceCreate(pref.out()));
    const uint64_t limit = workspace_size;
    TROUPE_CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit, sizeof limit));
    // The first cuBLASLt operand is B, the second A.
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligned[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignments[1]},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignments[0]},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignments[2]},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignments[2]}};
    for (const auto& [attr, value] : aligned)
      TROUPE_CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(pref.get(), attr, &value, sizeof value));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    // cuBLASLt answers "not supported" (not success with no result) when nothing fits.
    const cublasStatus_t asked = cublasLtMatmulAlgoGetHeuristic(
        handle, op.get(), first_layout.get(), second_layout.get(), out_layout.get(),
        out_layout.get(), pref.get(), 1, &result, &returned);
    if (asked != CUBLAS_STATUS_SUCCESS && asked != CUBLAS_STATUS_NOT_SUPPORTED)
      return check(asked, "cublasLtMatmulAlgoGetHeuristic");
    if (asked == CUBLAS_STATUS_NOT_SUPPORTED || returned == 0 ||
        result.state != CUBLAS_STATUS_SUCCESS)
      return make_error(errc::unsupported,
                        "gemm: cuBLASLt has no algorithm for {} [{}x{}x{}] batch {} in {} workspace bytes",
                        to_string(p.type), p.m, p.n, p.k, p.batch, workspace_size);
    algo = result.algo;
    cache.insert(key, algo);
  }
  const float one = 1.0f, zero = 0.0f;
  return check(cublasLtMatmul(handle, op.get(), &one, b, first_layout.get(), a, second_layout.get(),
                              &zero, c, out_layout.get(), c, out_layout.get(), &algo, workspace,
                              workspace_size, stream),
               "cublasLtMatmul");
}

} // namespace troupe::cuda
