// reorder: converts a value from a oneDNN blocked layout to plain row-major.
#pragma once

#include <memory>

#include "runtime/ops/op_registry.hpp"

namespace troupe {

/// Plain row-major memory descriptor for `type` and `dims` (rank 0..6).
dnnl::memory::desc plain_md(dtype type, const shape& dims);
/// oneDNN data type for a troupe dtype (undef when oneDNN has none).
dnnl::memory::data_type dnnl_type_of(dtype type);

/// A kernel copying its single input, laid out as `from`, into a plain output.
std::unique_ptr<op_kernel> make_to_plain_kernel(const value_desc& from, cpu::cpu_context& cpu);

} // namespace troupe
