// channels_last: rewrites a lowered plan so its 4-D activations between convolutions live in
// NHWC memory, the layout whose tensor-core kernels cuDNN runs without transposing each
// convolution's input and output (what PyTorch calls channels-last). Host-only: every decision
// is testable without a device.
#pragma once

#include "runtime/cuda/gpu_lowering.hpp"

namespace troupe::gpu {

/// Rewrites `l` in place, step by step:
/// * a convolution runs in NHWC: its input (and residual) is brought to NHWC, its weights
///   are uploaded in KRSC order (gpu_value::upload_perm), its output is NHWC;
/// * pooling, unary operations and casts keep their input's layout; a binary operation runs
///   in NHWC when an input is NHWC and every operand is either the output's full shape or a
///   per-channel or scalar broadcast (seen with permuted dims over the same memory);
/// * every other step gets NCHW inputs, and graph outputs are NCHW.
/// A value in NHWC has its dims in memory order, [N, H, W, C]. Bringing a value to the other
/// layout inserts a transpose step, once per value, unless its memory reads the same either way
/// (C == 1, or H == W == 1: then a view with permuted dims). Views of an NHWC value that do not
/// read the same are redirected to an NCHW copy. Plans with a collective step are left alone.
/// Returns how many transposes were inserted.
int to_channels_last(lowered_graph& l);

} // namespace troupe::gpu
