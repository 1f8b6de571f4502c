// dnnl_layout: plain memory descs and the reorders that move data between oneDNN layouts.
#pragma once

#include <cstdint>
#include <span>

#include <oneapi/dnnl/dnnl.hpp>

namespace troupe::cpu {

/// Row-major (a, ab, abc, ...) f32 desc for 1..6 dims.
dnnl::memory::desc plain_md(std::span<const int64_t> dims);

/// True when `md` lays out its elements exactly as the row-major f32 tensor of its dims.
bool is_plain_md(const dnnl::memory::desc& md);

/// An input that arrives in one layout and is consumed in another. When the layouts
/// differ it owns a scratch buffer in the wanted layout and a reorder built once.
class input_adapter {
public:
  input_adapter() = default;
  input_adapter(const dnnl::memory::desc& arrives, const dnnl::memory::desc& wanted,
                const dnnl::engine& engine);

  /// The memory holding `data` in the wanted layout; enqueues the reorder when needed.
  const dnnl::memory& bring(void* data, dnnl::stream& stream);
  bool reorders() const { return static_cast<bool>(reorder_); }

private:
  dnnl::memory arrives_;
  dnnl::memory wanted_; // scratch when reordering, else a view on the caller's data
  dnnl::reorder reorder_;
};

/// An output a primitive produces in one layout that the caller wants in another. When
/// they differ the primitive writes into an owned scratch buffer that `finish` reorders.
class output_adapter {
public:
  output_adapter() = default;
  output_adapter(const dnnl::memory::desc& produced, const dnnl::memory::desc& wanted,
                 const dnnl::engine& engine);

  /// The memory the primitive writes; `data` is the caller's output buffer.
  const dnnl::memory& target(void* data);
  /// Enqueues the reorder into the caller's buffer when the layouts differ.
  void finish(dnnl::stream& stream);
  bool reorders() const { return static_cast<bool>(reorder_); }

private:
  dnnl::memory produced_; // scratch when reordering, else a view on the caller's data
  dnnl::memory wanted_;
  dnnl::reorder reorder_;
};

} // namespace troupe::cpu
