// matmul: oneDNN matmul primitives with batch-dim folding and prepacked constant weights.
#include "kernels/cpu/matmul.hpp"

#include <algorithm>
#include <unordered_map>
#include <utility>

namespace troupe::cpu {
namespace {

using dnnl::memory;

struct operand_dims {
  shape a, b, dst; // logical dims as oneDNN sees them, equal rank
};

shape batch_of(const shape& dims) { return {dims.begin(), dims.end() - 2}; }

/// Rewrites the batch dims so oneDNN sees as few as possible: dims of size 1 in the output
/// vanish, neighbours broadcast the same way merge, and when B has no batch at all the
/// batch of a non-transposed A becomes extra rows of one 2-D product.
operand_dims fold_batch(const matmul_spec& spec, const shape& out_batch, int64_t m, int64_t k,
                        int64_t n) {
  const shape a_batch = batch_of(spec.a_dims), b_batch = batch_of(spec.b_dims);
  if (numel_of(b_batch) == 1 && !spec.trans_a) {
    const int64_t rows = numel_of(a_batch) * m;
    return {{rows, k}, {k, n}, {rows, n}};
  }
  const size_t rank = out_batch.size();
  auto padded = [rank](const shape& b) {
    shape p(rank - b.size(), 1);
    p.insert(p.end(), b.begin(), b.end());
    return p;
  };
  const shape pa = padded(a_batch), pb = padded(b_batch);
  operand_dims out;
  int last_pattern = -1;
  for (size_t i = 0; i < rank; ++i) {
    if (out_batch[i] == 1)
      continue;
    const int pattern = (pa[i] != 1 ? 1 : 0) | (pb[i] != 1 ? 2 : 0);
    if (pattern == last_pattern) {
      out.a.back() *= pa[i];
      out.b.back() *= pb[i];
      out.dst.back() *= out_batch[i];
    } else {
      out.a.push_back(pa[i]);
      out.b.push_back(pb[i]);
      out.dst.push_back(out_batch[i]);
      last_pattern = pattern;
    }
  }
  out.a.insert(out.a.end(), {m, k});
  out.b.insert(out.b.end(), {k, n});
  out.dst.insert(out.dst.end(), {m, n});
  return out;
}

/// A plain f32 desc for logical `dims` whose buffer stores the last two dims swapped when
/// `transposed` (a transpose expressed with strides, no copy).
memory::desc strided_desc(const shape& dims, bool transposed) {
  shape stored = dims;
  const size_t r = dims.size();
  if (transposed)
    std::swap(stored[r - 1], stored[r - 2]);
  std::vector<int64_t> strides = strides_of(stored);
  if (transposed)
    std::swap(strides[r - 1], strides[r - 2]);
  return memory::desc(memory::dims(dims.begin(), dims.end()), memory::data_type::f32,
                      memory::dims(strides.begin(), strides.end()));
}

memory::desc plain_desc(const shape& dims) { return strided_desc(dims, false); }

} // namespace

expected<shape> matmul_output_dims(const matmul_spec& spec) {
  if (spec.a_dims.size() < 2 || spec.b_dims.size() < 2)
    return make_error(errc::invalid_argument, "matmul operands need rank >= 2, got {} and {}",
                      to_string(spec.a_dims), to_string(spec.b_dims));
  const int64_t ka = spec.a_dims.back(), kb = spec.b_dims[spec.b_dims.size() - 2];
  if (ka != kb)
    return make_error(errc::invalid_argument,
                      "matmul inner dimensions differ: A {} has K={}, B {} has K={}",
                      to_string(spec.a_dims), ka, to_string(spec.b_dims), kb);
  auto batch = broadcast_shapes(batch_of(spec.a_dims), batch_of(spec.b_dims));
  if (!batch)
    return batch.error();
  shape out = std::move(*batch);
  out.push_back(spec.a_dims[spec.a_dims.size() - 2]);
  out.push_back(spec.b_dims.back());
  return out;
}

expected<std::unique_ptr<matmul_op>> matmul_op::create(cpu_context& cpu, const matmul_spec& spec,
                                                       const tensor* constant_b,
                                                       packed_weights* packed) {
  auto out_dims = matmul_output_dims(spec);
  if (!out_dims)
    return out_dims.error();
  auto numel = checked_numel(*out_dims);
  if (!numel)
    return numel.error();
  std::unique_ptr<matmul_op> op{new matmul_op()};
  const int64_t m = (*out_dims)[out_dims->size() - 2], n = out_dims->back();
  const int64_t k = spec.a_dims.back();
  op->dst_numel_ = *numel;
  op->n_ = n;
  op->scale_ = spec.scale;
  if (*numel == 0)
    return op;
  if (k == 0) {
    op->mode_ = mode::zero_fill;
    return op;
  }
  const operand_dims d = fold_batch(spec, batch_of(*out_dims), m, k, n);
  if (d.dst.size() > DNNL_MAX_NDIMS)
    return make_error(errc::unsupported, "matmul {} x {} has too many distinct batch dims",
                      to_string(spec.a_dims), to_string(spec.b_dims));
  try {
    auto& eng = cpu.engine();
    const memory::desc a_md = strided_desc(d.a, spec.trans_a);
    const memory::desc b_user_md = strided_desc(d.b, spec.trans_b);
    const memory::desc b_md =
        constant_b ? memory::desc(memory::dims(d.b.begin(), d.b.end()), memory::data_type::f32,
                                  memory::format_tag::any)
                   : b_user_md;
    const memory::desc dst_md = plain_desc(d.dst);
    dnnl::primitive_attr attr;
    if (spec.scale != 1.f)
      attr.set_output_scales(0, {spec.scale});
    if (spec.with_bias) {
      shape bias_dims(d.dst.size(), 1);
      bias_dims.back() = n;
      const memory::desc bias_md = plain_desc(bias_dims);
      op->pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, bias_md, dst_md),
                                             attr, eng);
      op->bias_mem_ = memory(bias_md, eng, DNNL_MEMORY_NONE);
    } else {
      op->pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, dst_md), attr, eng);
    }
    op->primitive_ = dnnl::matmul(op->pd_);
    op->a_mem_ = memory(a_md, eng, DNNL_MEMORY_NONE);
    op->dst_mem_ = memory(dst_md, eng, DNNL_MEMORY_NONE);
    if (constant_b) {
      // Packing once here is what makes repeated FC layers fast: run() never reorders.
      op->b_mem_ = pack_weights(packed, *constant_b, b_user_md, op->pd_.weights_desc(), cpu);
      op->packed_b_ = true;
    } else {
      op->b_mem_ = memory(b_user_md, eng, DNNL_MEMORY_NONE);
    }
  } catch (const dnnl::error& e) {
    return make_error(errc::unsupported, "oneDNN matmul {} x {}: {}", to_string(spec.a_dims),
                      to_string(spec.b_dims), e.what());
  }
  op->mode_ = mode::gemm;
  return op;
}

status matmul_op::run(cpu_context& cpu, const float* a, const float* b, const float* bias,
                      float* dst) {
  switch (mode_) {
  case mode::empty:
    return status::ok();
  case mode::zero_fill:
    // K == 0: the product is all zeros, so only the (scaled) bias remains.
    for (int64_t i = 0; i < dst_numel_; ++i)
      dst[i] = bias ? scale_ * bias[i % n_] : 0.f;
    return status::ok();
  case mode::gemm:
    break;
  }
  try {
    a_mem_.set_data_handle(const_cast<float*>(a));
    if (!packed_b_)
      b_mem_.set_data_handle(const_cast<float*>(b));
    dst_mem_.set_data_handle(dst);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, a_mem_}, {DNNL_ARG_WEIGHTS, b_mem_}, {DNNL_ARG_DST, dst_mem_}};
    if (bias_mem_) {
      bias_mem_.set_data_handle(const_cast<float*>(bias));
      args.emplace(DNNL_ARG_BIAS, bias_mem_);
    }
    primitive_.execute(cpu.stream(), args);
    cpu.stream().wait();
  } catch (const dnnl::error& e) {
    return make_error(errc::internal, "oneDNN matmul failed: {}", e.what());
  }
  return status::ok();
}

std::string matmul_op::implementation() const {
  return mode_ == mode::gemm ? std::string{pd_.impl_info_str()} : std::string{"none"};
}

} // namespace troupe::cpu
