// dnnl_layout: plain memory descs and layout-changing reorders.
#include "kernels/cpu/dnnl_layout.hpp"

#include <stdexcept>

namespace troupe::cpu {

using tag = dnnl::memory::format_tag;

dnnl::memory::desc plain_md(std::span<const int64_t> dims) {
  static constexpr tag tags[] = {tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde, tag::abcdef};
  if (dims.empty() || dims.size() > std::size(tags))
    throw std::invalid_argument("plain_md: rank must be 1..6");
  return {dnnl::memory::dims(dims.begin(), dims.end()), dnnl::memory::data_type::f32,
          tags[dims.size() - 1]};
}

bool is_plain_md(const dnnl::memory::desc& md) {
  return md.data_type() == dnnl::memory::data_type::f32 && md == plain_md(md.dims());
}

input_adapter::input_adapter(const dnnl::memory::desc& arrives, const dnnl::memory::desc& wanted,
                             const dnnl::engine& engine) {
  if (arrives == wanted) {
    wanted_ = dnnl::memory(wanted, engine, DNNL_MEMORY_NONE);
    return;
  }
  arrives_ = dnnl::memory(arrives, engine, DNNL_MEMORY_NONE);
  wanted_ = dnnl::memory(wanted, engine);
  reorder_ = dnnl::reorder(arrives_, wanted_);
}

const dnnl::memory& input_adapter::bring(void* data, dnnl::stream& stream) {
  if (!reorder_) {
    wanted_.set_data_handle(data);
    return wanted_;
  }
  arrives_.set_data_handle(data);
  reorder_.execute(stream, arrives_, wanted_);
  return wanted_;
}

output_adapter::output_adapter(const dnnl::memory::desc& produced, const dnnl::memory::desc& wanted,
                               const dnnl::engine& engine) {
  if (produced == wanted) {
    produced_ = dnnl::memory(produced, engine, DNNL_MEMORY_NONE);
    return;
  }
  produced_ = dnnl::memory(produced, engine);
  wanted_ = dnnl::memory(wanted, engine, DNNL_MEMORY_NONE);
  reorder_ = dnnl::reorder(produced_, wanted_);
}

const dnnl::memory& output_adapter::target(void* data) {
  if (reorder_)
    wanted_.set_data_handle(data);
  else
    produced_.set_data_handle(data);
  return produced_;
}

void output_adapter::finish(dnnl::stream& stream) {
  if (reorder_)
    reorder_.execute(stream, produced_, wanted_);
}

} // namespace troupe::cpu
