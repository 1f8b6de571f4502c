// cudnn_conv: 2-D convolution forward (groups, strides, pads, dilations, fused bias + ReLU),
// pooling and activations through cuDNN, with the convolution algorithm cached per shape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "kernels/cuda/algo_cache.hpp"
#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

enum class tensor_layout : uint8_t { nchw, nhwc };
enum class conv_activation : uint8_t { none, relu };

/// One convolution: input [n, c, h, w] (or NHWC), weights [k, c/groups, r, s] for NCHW and
/// [k, r, s, c/groups] for NHWC, optional bias [k], output [n, k, p, q] in the input's layout.
/// cuDNN takes symmetric pads only, so pad_top == pad_bottom and pad_left == pad_right.
struct conv_params {
  dtype type = dtype::f32;
  tensor_layout layout = tensor_layout::nchw;
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t k = 1, r = 1, s = 1;
  int64_t groups = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool bias = false;
  conv_activation activation = conv_activation::none;
  bool allow_tf32 = false; // FP32 only: TF32 tensor cores (about 1e-3 relative error)
};

struct conv_output_dims {
  int64_t n = 0, k = 0, p = 0, q = 0;
};

/// Output dims, p = (h + pads - dilation_h (r - 1) - 1) / stride_h + 1; an error naming the
/// field for non-positive sizes, channels not divisible by groups, asymmetric pads, an
/// unsupported dtype or a dim past cuDNN's int range.
expected<conv_output_dims> conv_output(const conv_params& p);

/// The algorithm-cache key: everything that decides cuDNN's choice (dtype, layout, geometry,
/// math mode); bias and activation do not.
using conv_key = std::array<int64_t, 19>;
conv_key conv_key_of(const conv_params& p);

struct conv_key_hash {
  size_t operator()(const conv_key& key) const;
};

enum class conv_search : uint8_t {
  heuristic,  // cuDNN's heuristics, no trial runs
  exhaustive, // cudnnFind...Ex times the candidates on the first call with real buffers
};

/// The algorithm chosen per conv_key, with the workspace it needs (never above the limit).
/// Thread-safe; one per device (algorithms are device-specific).
struct conv_algo_choice {
  cudnnConvolutionFwdAlgo_t algo{};
  size_t workspace = 0;
  cudnnMathType_t math{}; // the math mode the algorithm was chosen with
  bool verified = false;  // it ran once: later runs (CUDA graph captures too) try nothing else
  bool fused = true;      // cuDNN may have a fused bias + ReLU kernel for it (false once refused)
};

class conv_algo_cache : public algo_cache<conv_key, conv_algo_choice, conv_key_hash> {
public:
  using entry = conv_algo_choice;

  explicit conv_algo_cache(size_t workspace_limit, conv_search search = conv_search::heuristic)
      : workspace_limit_(workspace_limit), search_(search) {}

  size_t workspace_limit() const { return workspace_limit_; }
  conv_search search() const { return search_; }

private:
  size_t workspace_limit_;
  conv_search search_;
};

/// Workspace bytes conv_forward will need for p (choosing and caching the algorithm with the
/// heuristic search; the cache's limit with the exhaustive one, which chooses on first run).
expected<size_t> conv_workspace_size(cudnnHandle_t handle, conv_algo_cache& cache,
                                     const conv_params& p);

/// y = act(conv(x, w) + residual + bias) on `stream`. bias is [k] of p.type when p.bias;
/// `residual`, when given, has y's shape and layout (a ResNet block's shortcut), and may not be
/// y itself. With bias and ReLU it all runs as one cuDNN call (the summand as its z operand),
/// else as convolution, additions and activation. The workspace (device memory) must hold
/// conv_workspace_size bytes.
status conv_forward(cudnnHandle_t handle, conv_algo_cache& cache, const conv_params& p,
                    const void* x, const void* w, const void* bias, void* y, void* workspace,
                    size_t workspace_size, cudaStream_t stream, const void* residual = nullptr);

enum class pool_mode : uint8_t { max, average_include_pad, average_exclude_pad };

/// Pooling over [n, c, h, w] (or NHWC); `global` pools the whole h x w plane (kernel, stride
/// and pads are then ignored). Symmetric pads only.
struct pool_params {
  dtype type = dtype::f32;
  tensor_layout layout = tensor_layout::nchw;
  pool_mode mode = pool_mode::max;
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool global = false;
};

/// Output dims [n, c, p, q] (k holds c), floor mode; an error as for conv_output.
expected<conv_output_dims> pool_output(const pool_params& p);

status pool_forward(cudnnHandle_t handle, const pool_params& p, const void* x, void* y,
                    cudaStream_t stream);

enum class cudnn_activation_kind : uint8_t { relu, sigmoid, tanh, clipped_relu, elu };

/// y = act(x) over n elements of dtype t (x == y allowed); `coef` is clipped_relu's ceiling
/// or elu's alpha.
status activation_forward(cudnnHandle_t handle, cudnn_activation_kind kind, dtype t, int64_t n,
                          const void* x, void* y, cudaStream_t stream, double coef = 0.0);

} // namespace troupe::cuda
