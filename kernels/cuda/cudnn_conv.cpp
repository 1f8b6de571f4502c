// cudnn_conv: convolution, pooling and activation through cuDNN's descriptor API.
#include "kernels/cuda/cudnn_conv.hpp"
#include "kernels/cuda/key_hash.hpp"

#include <climits>

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/cuda_plans.hpp"

// cuDNN 9 deprecates the descriptor ("legacy") convolution API in favour of the graph API;
// it is still shipped and supported, and covers everything troupe needs in a tenth of the
// code, so its deprecation warnings are silenced for this file only.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace troupe::cuda {

namespace {

/// A cuDNN descriptor destroyed with its owner.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class owned {
public:
  owned() = default;
  owned(const owned&) = delete;
  owned& operator=(const owned&) = delete;
  ~owned() {
    if (value_ != nullptr)
      (void)Destroy(value_);
  }
  status init() { return check(Create(&value_), "cudnn: create descriptor"); }
  T get() const { return value_; }

private:
  T value_ = nullptr;
};

using tensor_desc = owned<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                          cudnnDestroyTensorDescriptor>;
using filter_desc = owned<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                          cudnnDestroyFilterDescriptor>;
using conv_desc = owned<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                        cudnnDestroyConvolutionDescriptor>;
using activation_desc = owned<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor,
                              cudnnDestroyActivationDescriptor>;
using pooling_desc = owned<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor,
                           cudnnDestroyPoolingDescriptor>;

cudnnDataType_t cudnn_type(dtype t) {
  return t == dtype::f16    ? CUDNN_DATA_HALF
         : t == dtype::bf16 ? CUDNN_DATA_BFLOAT16
                            : CUDNN_DATA_FLOAT;
}

cudnnTensorFormat_t cudnn_format(tensor_layout layout) {
  return layout == tensor_layout::nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
}

int narrow(int64_t v) { return static_cast<int>(v); }

/// dims are given as n, c, h, w whatever the layout; the format says how memory is ordered.
status set_tensor(tensor_desc& d, tensor_layout layout, dtype t, int64_t n, int64_t c, int64_t h,
                  int64_t w) {
  TROUPE_TRY_STATUS(d.init());
  return check(cudnnSetTensor4dDescriptor(d.get(), cudnn_format(layout), cudnn_type(t), narrow(n),
                                          narrow(c), narrow(h), narrow(w)),
               "cudnnSetTensor4dDescriptor");
}

status check_int_range(const char* op, std::initializer_list<int64_t> counts) {
  for (int64_t count : counts)
    if (count > INT_MAX)
      return make_error(errc::unsupported, "{}: {} elements exceed cuDNN's int range", op, count);
  return status::ok();
}

status check_positive(const char* op, std::initializer_list<std::pair<const char*, int64_t>> fields,
                      int64_t minimum) {
  for (const auto& [name, value] : fields)
    if (value < minimum)
      return make_error(errc::invalid_argument, "{}: {} = {} (must be >= {})", op, name, value,
                        minimum);
  return status::ok();
}

/// The convolution's descriptors, built once per call (host-only, microseconds).
struct conv_descriptors {
  tensor_desc x, y, bias;
  filter_desc w;
  conv_desc conv;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

cudnnMathType_t requested_math(const conv_params& p) {
  // DEFAULT_MATH lets cuDNN use TF32 for FP32 data on Ampere and newer; FMA_MATH forbids it.
  if (p.type == dtype::f32)
    return p.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  return CUDNN_TENSOR_OP_MATH;
}

status build(const conv_params& p, const conv_output_dims& out, conv_descriptors& d) {
  TROUPE_TRY_STATUS(set_tensor(d.x, p.layout, p.type, p.n, p.c, p.h, p.w));
  TROUPE_TRY_STATUS(set_tensor(d.y, p.layout, p.type, out.n, out.k, out.p, out.q));
  TROUPE_TRY_STATUS(set_tensor(d.bias, p.layout, p.type, 1, p.k, 1, 1));
  TROUPE_TRY_STATUS(d.w.init());
  TROUPE_CUDA_TRY(cudnnSetFilter4dDescriptor(d.w.get(), cudnn_type(p.type), cudnn_format(p.layout),
                                             narrow(p.k), narrow(p.c / p.groups), narrow(p.r),
                                             narrow(p.s)));
  TROUPE_TRY_STATUS(d.conv.init());
  TROUPE_CUDA_TRY(cudnnSetConvolution2dDescriptor(
      d.conv.get(), narrow(p.pad_top), narrow(p.pad_left), narrow(p.stride_h),
      narrow(p.stride_w), narrow(p.dilation_h), narrow(p.dilation_w), CUDNN_CROSS_CORRELATION,
      CUDNN_DATA_FLOAT));
  TROUPE_CUDA_TRY(cudnnSetConvolutionGroupCount(d.conv.get(), narrow(p.groups)));
  d.math = requested_math(p);
  TROUPE_CUDA_TRY(cudnnSetConvolutionMathType(d.conv.get(), d.math));
  return status::ok();
}

/// The candidates cuDNN reported as runnable, in its order of preference, that fit `limit` and
/// keep the requested precision: strict FP32 (FMA_MATH) never takes tensor-op math, so it never
/// silently becomes TF32, and FP32 data never takes ALLOW_CONVERSION (down-conversion to
/// FP16, which overflows past 65504). A candidate whose math mode is changed to the requested
/// one has its workspace measured again in that mode.
expected<std::vector<conv_algo_cache::entry>> usable(cudnnHandle_t handle,
                                                     const conv_descriptors& d, dtype type,
                                                     const cudnnConvolutionFwdAlgoPerf_t* perf,
                                                     int returned, size_t limit) {
  std::vector<conv_algo_cache::entry> out;
  for (int i = 0; i < returned; ++i) {
    const auto& candidate = perf[i];
    const bool tensor_ops = candidate.mathType == CUDNN_TENSOR_OP_MATH ||
                            candidate.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    if (candidate.status != CUDNN_STATUS_SUCCESS || (d.math == CUDNN_FMA_MATH && tensor_ops) ||
        (type == dtype::f32 && candidate.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    conv_algo_cache::entry e{candidate.algo, candidate.memory,
                             d.math == CUDNN_FMA_MATH ? d.math : candidate.mathType};
    if (e.math != candidate.mathType) {
      TROUPE_CUDA_TRY(cudnnSetConvolutionMathType(d.conv.get(), e.math));
      const cudnnStatus_t sized = cudnnGetConvolutionForwardWorkspaceSize(
          handle, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), e.algo, &e.workspace);
      TROUPE_CUDA_TRY(cudnnSetConvolutionMathType(d.conv.get(), d.math));
      if (sized != CUDNN_STATUS_SUCCESS)
        continue;
    }
    if (e.workspace <= limit)
      out.push_back(e);
  }
  if (out.empty())
    return make_error(errc::unsupported,
                      "cudnn: no convolution algorithm within a {}-byte workspace", limit);
  return out;
}

expected<std::vector<conv_algo_cache::entry>> heuristic_candidates(cudnnHandle_t handle,
                                                                   const conv_descriptors& d,
                                                                   dtype type, size_t limit) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  TROUPE_CUDA_TRY(cudnnGetConvolutionForwardAlgorithm_v7(handle, d.x.get(), d.w.get(),
                                                         d.conv.get(), d.y.get(),
                                                         CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                         &returned, perf));
  return usable(handle, d, type, perf, returned, limit);
}

/// The usable candidates cudnnFindConvolutionForwardAlgorithmEx times on real buffers (it
/// overwrites y), fastest first; an error when the search fails.
expected<std::vector<conv_algo_cache::entry>>
timed_candidates(cudnnHandle_t handle, const conv_descriptors& d, dtype type, const void* x,
                 const void* w, void* y, void* workspace, size_t limit) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  TROUPE_CUDA_TRY(cudnnFindConvolutionForwardAlgorithmEx(
      handle, d.x.get(), x, d.w.get(), w, d.conv.get(), d.y.get(), y,
      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, workspace, limit));
  return usable(handle, d, type, perf, returned, limit);
}

/// cuDNN 9 reports "not supported" as a family of codes (3000 and the 30xx details).
bool not_supported(cudnnStatus_t code) {
  return CUDNN_STATUS_CATEGORY(code) == CUDNN_STATUS_NOT_SUPPORTED;
}

/// Runs the convolution with one algorithm. With bias and ReLU it tries the fused call first
/// (when `algo.fused` still says it may exist) and clears `algo.fused` when cuDNN has no fused
/// kernel for this algorithm, dtype and layout; then three calls do the same work.
status run_with(cudnnHandle_t handle, const conv_params& p, const conv_output_dims& out,
                const conv_descriptors& d, conv_algo_cache::entry& algo, const void* x,
                const void* w, const void* bias, void* y, void* workspace, size_t workspace_size,
                cudaStream_t stream, const void* residual) {
  TROUPE_CUDA_TRY(cudnnSetConvolutionMathType(d.conv.get(), algo.math));
  const float one = 1.0f, zero = 0.0f;
  activation_desc relu;
  if (p.activation == conv_activation::relu) {
    TROUPE_TRY_STATUS(relu.init());
    TROUPE_CUDA_TRY(cudnnSetActivationDescriptor(relu.get(), CUDNN_ACTIVATION_RELU,
                                                 CUDNN_PROPAGATE_NAN, 0.0));
  }
  if (p.bias && p.activation == conv_activation::relu && algo.fused) {
    // The fused kernel computes act(conv + alpha2 * z + bias): z is the residual with
    // alpha2 = 1, or else y, zeroed first because alpha2 = 0 does not promise that z is not
    // read (0 * NaN is NaN).
    if (!residual)
      TROUPE_CUDA_TRY(cudaMemsetAsync(
          y, 0, static_cast<size_t>(out.n * out.k * out.p * out.q) * size_of(p.type), stream));
    const cudnnStatus_t fused = cudnnConvolutionBiasActivationForward(
        handle, &one, d.x.get(), x, d.w.get(), w, d.conv.get(), algo.algo, workspace,
        workspace_size, residual ? &one : &zero, d.y.get(), residual ? residual : y,
        d.bias.get(), bias, relu.get(), d.y.get(), y);
    if (!not_supported(fused))
      return check(fused, "cudnnConvolutionBiasActivationForward");
    algo.fused = false; // no fused kernel for this case: three calls, now and from now on
  }
  TROUPE_CUDA_TRY(cudnnConvolutionForward(handle, &one, d.x.get(), x, d.w.get(), w, d.conv.get(),
                                          algo.algo, workspace, workspace_size, &zero, d.y.get(),
                                          y));
  if (residual)
    TROUPE_CUDA_TRY(cudnnAddTensor(handle, &one, d.y.get(), residual, &one, d.y.get(), y));
  if (p.bias)
    TROUPE_CUDA_TRY(cudnnAddTensor(handle, &one, d.bias.get(), bias, &one, d.y.get(), y));
  if (p.activation == conv_activation::relu)
    TROUPE_CUDA_TRY(cudnnActivationForward(handle, relu.get(), &one, d.y.get(), y, &zero,
                                           d.y.get(), y));
  return status::ok();
}

} // namespace

expected<conv_output_dims> conv_output(const conv_params& p) {
  TROUPE_TRY_STATUS(require_gpu_float(p.type, "conv"));
  TROUPE_TRY_STATUS(check_positive("conv",
                                   {{"n", p.n}, {"c", p.c}, {"h", p.h}, {"w", p.w}, {"k", p.k},
                                    {"r", p.r}, {"s", p.s}, {"groups", p.groups},
                                    {"stride_h", p.stride_h}, {"stride_w", p.stride_w},
                                    {"dilation_h", p.dilation_h}, {"dilation_w", p.dilation_w}},
                                   1));
  TROUPE_TRY_STATUS(check_positive("conv",
                                   {{"pad_top", p.pad_top}, {"pad_left", p.pad_left},
                                    {"pad_bottom", p.pad_bottom}, {"pad_right", p.pad_right}},
                                   0));
  if (p.c % p.groups != 0 || p.k % p.groups != 0)
    return make_error(errc::invalid_argument, "conv: channels {} -> {} not divisible by {} groups",
                      p.c, p.k, p.groups);
  if (p.pad_top != p.pad_bottom || p.pad_left != p.pad_right)
    return make_error(errc::unsupported,
                      "conv: cuDNN takes symmetric pads only (top {} bottom {}, left {} right {})",
                      p.pad_top, p.pad_bottom, p.pad_left, p.pad_right);
  const int64_t span_h = p.dilation_h * (p.r - 1) + 1, span_w = p.dilation_w * (p.s - 1) + 1;
  const int64_t in_h = p.h + p.pad_top + p.pad_bottom, in_w = p.w + p.pad_left + p.pad_right;
  if (span_h > in_h || span_w > in_w)
    return make_error(errc::invalid_argument,
                      "conv: the {}x{} dilated window is larger than the padded {}x{} input",
                      span_h, span_w, in_h, in_w);
  conv_output_dims out{p.n, p.k, (in_h - span_h) / p.stride_h + 1, (in_w - span_w) / p.stride_w + 1};
  auto in_count = checked_numel(std::vector<int64_t>{p.n, p.c, p.h, p.w});
  auto out_count = checked_numel(std::vector<int64_t>{out.n, out.k, out.p, out.q});
  if (!in_count || !out_count)
    return make_error(errc::out_of_range, "conv: tensor sizes overflow");
  TROUPE_TRY_STATUS(check_int_range("conv", {*in_count, *out_count, p.k * p.r * p.s * (p.c / p.groups)}));
  return out;
}

conv_key conv_key_of(const conv_params& p) {
  return {static_cast<int64_t>(p.type), static_cast<int64_t>(p.layout), p.n, p.c, p.h, p.w,
          p.k, p.r, p.s, p.groups, p.stride_h, p.stride_w, p.pad_top, p.pad_left,
          p.pad_bottom, p.pad_right, p.dilation_h, p.dilation_w, p.allow_tf32 ? 1 : 0};
}

size_t conv_key_hash::operator()(const conv_key& key) const { return hash_fields(key); }

expected<size_t> conv_workspace_size(cudnnHandle_t handle, conv_algo_cache& cache,
                                     const conv_params& p) {
  auto out = conv_output(p);
  if (!out)
    return out.error();
  const conv_key key = conv_key_of(p);
  conv_algo_cache::entry e;
  if (cache.find(key, e))
    return e.workspace;
  if (cache.search() == conv_search::exhaustive)
    return cache.workspace_limit();
  conv_descriptors d;
  TROUPE_TRY_STATUS(build(p, *out, d));
  auto candidates = heuristic_candidates(handle, d, p.type, cache.workspace_limit());
  if (!candidates)
    return candidates.error();
  // Chosen, not yet seen to run: conv_forward may still move on to a later candidate that fits
  // this workspace.
  cache.insert(key, candidates->front());
  return candidates->front().workspace;
}

status conv_forward(cudnnHandle_t handle, conv_algo_cache& cache, const conv_params& p,
                    const void* x, const void* w, const void* bias, void* y, void* workspace,
                    size_t workspace_size, cudaStream_t stream, const void* residual) {
  auto out = conv_output(p);
  if (!out)
    return out.error();
  if (p.bias && bias == nullptr)
    return make_error(errc::invalid_argument, "conv: bias requested but null");
  TROUPE_CUDA_TRY(cudnnSetStream(handle, stream));
  conv_descriptors d;
  TROUPE_TRY_STATUS(build(p, *out, d));

  const conv_key key = conv_key_of(p);
  conv_algo_cache::entry algo;
  const bool cached = cache.find(key, algo);
  if (cached && algo.verified) {
    if (algo.workspace > workspace_size)
      return make_error(errc::invalid_argument,
                        "conv: the cached algorithm needs {} workspace bytes, {} given",
                        algo.workspace, workspace_size);
    return run_with(handle, p, *out, d, algo, x, w, bias, y, workspace, workspace_size, stream,
                    residual);
  }
  // The first run of this shape (never inside a CUDA graph capture: plans are captured after
  // eager runs): the algorithm chosen, then cuDNN's other candidates that fit the workspace,
  // until one runs. cuDNN's list can name algorithms that then refuse the case.
  const size_t limit = std::min(cache.workspace_limit(), workspace_size);
  std::vector<conv_algo_cache::entry> candidates;
  if (cached && algo.workspace <= workspace_size)
    candidates.push_back(algo);
  // A search that fails (or finds nothing usable) leaves the choice to the heuristics: a
  // slower algorithm beats a failed run.
  auto found = !cached && cache.search() == conv_search::exhaustive
                   ? timed_candidates(handle, d, p.type, x, w, y, workspace, limit)
                   : make_error(errc::unsupported, "not searched");
  if (!found)
    found = heuristic_candidates(handle, d, p.type, limit);
  if (found)
    for (const auto& e : *found)
      if (candidates.empty() || e.algo != candidates.front().algo || e.math != candidates.front().math)
        candidates.push_back(e);
  if (candidates.empty())
    return found ? make_error(errc::unsupported,
                              "cudnn: no convolution algorithm within a {}-byte workspace", limit)
                 : found.error();
  status last = status::ok();
  for (auto& candidate : candidates) {
    last = run_with(handle, p, *out, d, candidate, x, w, bias, y, workspace, workspace_size,
                    stream, residual);
    if (last.is_ok()) {
      candidate.verified = true;
      cache.insert(key, candidate);
      return last;
    }
    if (last.code() != errc::unsupported)
      return last;
  }
  return last;
}

expected<conv_output_dims> pool_output(const pool_params& p) {
  TROUPE_TRY_STATUS(require_gpu_float(p.type, "pool"));
  TROUPE_TRY_STATUS(check_positive("pool", {{"n", p.n}, {"c", p.c}, {"h", p.h}, {"w", p.w}}, 1));
  if (p.global)
    return conv_output_dims{p.n, p.c, 1, 1};
  TROUPE_TRY_STATUS(check_positive("pool",
                                   {{"kernel_h", p.kernel_h}, {"kernel_w", p.kernel_w},
                                    {"stride_h", p.stride_h}, {"stride_w", p.stride_w}},
                                   1));
  TROUPE_TRY_STATUS(check_positive("pool",
                                   {{"pad_top", p.pad_top}, {"pad_left", p.pad_left},
                                    {"pad_bottom", p.pad_bottom}, {"pad_right", p.pad_right}},
                                   0));
  if (p.pad_top != p.pad_bottom || p.pad_left != p.pad_right)
    return make_error(errc::unsupported, "pool: cuDNN takes symmetric pads only");
  const int64_t in_h = p.h + 2 * p.pad_top, in_w = p.w + 2 * p.pad_left;
  if (p.kernel_h > in_h || p.kernel_w > in_w)
    return make_error(errc::invalid_argument, "pool: the {}x{} window is larger than the padded {}x{} input",
                      p.kernel_h, p.kernel_w, in_h, in_w);
  conv_output_dims out{p.n, p.c, (in_h - p.kernel_h) / p.stride_h + 1,
                       (in_w - p.kernel_w) / p.stride_w + 1};
  auto count = checked_numel(std::vector<int64_t>{p.n, p.c, p.h, p.w});
  if (!count)
    return count.error();
  TROUPE_TRY_STATUS(check_int_range("pool", {*count}));
  return out;
}

status pool_forward(cudnnHandle_t handle, const pool_params& p, const void* x, void* y,
                    cudaStream_t stream) {
  auto out = pool_output(p);
  if (!out)
    return out.error();
  TROUPE_CUDA_TRY(cudnnSetStream(handle, stream));
  tensor_desc xd, yd;
  TROUPE_TRY_STATUS(set_tensor(xd, p.layout, p.type, p.n, p.c, p.h, p.w));
  TROUPE_TRY_STATUS(set_tensor(yd, p.layout, p.type, out->n, out->k, out->p, out->q));
  pooling_desc pd;
  TROUPE_TRY_STATUS(pd.init());
  const cudnnPoolingMode_t mode = p.mode == pool_mode::max ? CUDNN_POOLING_MAX
                                  : p.mode == pool_mode::average_include_pad
                                      ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                      : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  const int64_t kh = p.global ? p.h : p.kernel_h, kw = p.global ? p.w : p.kernel_w;
  const int64_t ph = p.global ? 0 : p.pad_top, pw = p.global ? 0 : p.pad_left;
  const int64_t sh = p.global ? 1 : p.stride_h, sw = p.global ? 1 : p.stride_w;
  TROUPE_CUDA_TRY(cudnnSetPooling2dDescriptor(pd.get(), mode, CUDNN_PROPAGATE_NAN, narrow(kh),
                                              narrow(kw), narrow(ph), narrow(pw), narrow(sh),
                                              narrow(sw)));
  const float one = 1.0f, zero = 0.0f;
  return check(cudnnPoolingForward(handle, pd.get(), &one, xd.get(), x, &zero, yd.get(), y),
               "cudnnPoolingForward");
}

status activation_forward(cudnnHandle_t handle, cudnn_activation_kind kind, dtype t, int64_t n,
                          const void* x, void* y, cudaStream_t stream, double coef) {
  TROUPE_TRY_STATUS(require_gpu_float(t, "activation"));
  if (n < 0)
    return make_error(errc::invalid_argument, "activation: negative element count {}", n);
  if (n == 0)
    return status::ok();
  TROUPE_TRY_STATUS(check_int_range("activation", {n}));
  TROUPE_CUDA_TRY(cudnnSetStream(handle, stream));
  tensor_desc d;
  TROUPE_TRY_STATUS(set_tensor(d, tensor_layout::nchw, t, 1, 1, 1, n));
  activation_desc ad;
  TROUPE_TRY_STATUS(ad.init());
  const cudnnActivationMode_t mode = kind == cudnn_activation_kind::relu      ? CUDNN_ACTIVATION_RELU
                                     : kind == cudnn_activation_kind::sigmoid ? CUDNN_ACTIVATION_SIGMOID
                                     : kind == cudnn_activation_kind::tanh    ? CUDNN_ACTIVATION_TANH
                                     : kind == cudnn_activation_kind::clipped_relu
                                         ? CUDNN_ACTIVATION_CLIPPED_RELU
                                         : CUDNN_ACTIVATION_ELU;
  TROUPE_CUDA_TRY(cudnnSetActivationDescriptor(ad.get(), mode, CUDNN_PROPAGATE_NAN, coef));
  const float one = 1.0f, zero = 0.0f;
  return check(cudnnActivationForward(handle, ad.get(), &one, d.get(), x, &zero, d.get(), y),
               "cudnnActivationForward");
}

} // namespace troupe::cuda
