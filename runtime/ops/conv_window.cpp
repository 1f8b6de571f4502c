// conv_window: resolves kernel/stride/dilation/pad attributes and auto_pad for windowed ops.
#include "runtime/ops/conv_window.hpp"

#include <cstring>

#include "kernels/cpu/dnnl_layout.hpp"

namespace troupe {

dnnl::memory::dims conv_window::dnnl_dilations() const {
  dnnl::memory::dims d;
  for (int64_t v : dilations)
    d.push_back(v - 1);
  return d;
}

namespace {

expected<std::vector<int64_t>> spatial_attr(const node& n, const char* key, size_t count,
                                            int64_t fallback, int64_t minimum) {
  auto v = n.attr_ints(key, std::vector<int64_t>(count, fallback));
  if (v.size() != count)
    return bad_input(n,
                     fmt::format("attribute {} has {} values, expected {}", key, v.size(), count));
  for (int64_t x : v)
    if (x < minimum)
      return bad_input(n, fmt::format("attribute {} has value {}, below {}", key, x, minimum));
  return v;
}

} // namespace

expected<conv_window> resolve_window(const node& n, std::span<const int64_t> in,
                                     std::vector<int64_t> kernel, bool ceil_mode) {
  const size_t rank = in.size();
  conv_window w;
  w.kernel = std::move(kernel);
  auto strides = spatial_attr(n, "strides", rank, 1, 1);
  if (!strides)
    return strides.error();
  auto dilations = spatial_attr(n, "dilations", rank, 1, 1);
  if (!dilations)
    return dilations.error();
  auto pads = spatial_attr(n, "pads", 2 * rank, 0, 0);
  if (!pads)
    return pads.error();
  w.strides = std::move(*strides);
  w.dilations = std::move(*dilations);
  const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" &&
      auto_pad != "SAME_LOWER")
    return bad_input(n, fmt::format("unknown auto_pad '{}'", auto_pad));

  for (size_t i = 0; i < rank; ++i) {
    const int64_t extent = (w.kernel[i] - 1) * w.dilations[i] + 1;
    const int64_t stride = w.strides[i];
    int64_t begin = 0, end = 0, out = 0;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out = (in[i] + stride - 1) / stride;
      const int64_t total = std::max<int64_t>(0, (out - 1) * stride + extent - in[i]);
      begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      end = total - begin;
    } else {
      if (auto_pad == "NOTSET") {
        begin = (*pads)[i];
        end = (*pads)[i + rank];
      }
      const int64_t span = in[i] + begin + end - extent;
      if (span < 0)
        return bad_input(n, fmt::format("kernel extent {} exceeds padded input {} on axis {}",
                                        extent, in[i] + begin + end, i + 2));
      out = span / stride + 1;
      if (ceil_mode) {
        int64_t ceil_out = (span + stride - 1) / stride + 1;
        // A last window that would start inside the right padding is dropped (ONNX, PyTorch).
        if ((ceil_out - 1) * stride >= in[i] + begin)
          --ceil_out;
        if (ceil_out > out) {
          out = ceil_out;
          end = (out - 1) * stride + extent - in[i] - begin;
          w.ceil_grew_pads = true;
        }
      }
    }
    w.pad_begin.push_back(begin);
    w.pad_end.push_back(end);
    w.out.push_back(out);
  }
  return w;
}

status check_float_inputs(const node& n, std::span<const value_desc> inputs, size_t required) {
  if (inputs.size() < required)
    return bad_input(n, fmt::format("needs {} inputs, got {}", required, inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i < required && !inputs[i].present())
      return bad_input(n, fmt::format("input {} is required", i));
    if (inputs[i].present() && inputs[i].type != dtype::f32)
      return make_error(errc::unsupported, "{}: input {} has dtype {}, only float32 is supported",
                        n.label(), i, to_string(inputs[i].type));
  }
  return status::ok();
}

dnnl::memory::desc arriving_md(const value_desc& v) {
  return v.layout.is_plain() ? cpu::plain_md(v.dims) : *v.layout.blocked;
}

param_memory::param_memory(const value_desc& v, const dnnl::memory::desc& md,
                           const dnnl::engine& engine)
    : owned_(v.constant != nullptr) {
  if (owned_) {
    memory_ = dnnl::memory(md, engine);
    std::memcpy(memory_.get_data_handle(), v.constant->raw(), md.get_size());
  } else {
    memory_ = dnnl::memory(md, engine, DNNL_MEMORY_NONE);
  }
}

const dnnl::memory& param_memory::bind(const tensor& t) {
  if (!owned_)
    memory_.set_data_handle(t.raw());
  return memory_;
}

value_desc output_desc(const dnnl::memory::desc& md, const shape& dims) {
  value_desc d;
  d.type = dtype::f32;
  d.dims = dims;
  if (!cpu::is_plain_md(md))
    d.layout = value_layout::of(md);
  return d;
}

} // namespace troupe
