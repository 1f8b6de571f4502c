// channels_last: the layout of each value, decided step by step, and the transposes and views
// that bring values to the layout a step runs in.
#include "runtime/cuda/channels_last.hpp"

#include <algorithm>
#include <map>

namespace troupe::gpu {
namespace {

enum class layout : uint8_t { nchw, nhwc };

const std::vector<int64_t> to_nhwc_perm{0, 2, 3, 1};
const std::vector<int64_t> to_nchw_perm{0, 3, 1, 2};

shape permuted(const shape& d, const std::vector<int64_t>& perm) {
  shape out(d.size());
  for (size_t k = 0; k < perm.size(); ++k)
    out[k] = d[static_cast<size_t>(perm[k])];
  return out;
}

/// Whether 4-D dims [n, c, h, w] read the same in NCHW and NHWC memory.
bool same_memory(const shape& nchw) {
  return nchw.size() == 4 && (nchw[1] == 1 || nchw[2] * nchw[3] == 1);
}

class rewriter {
public:
  explicit rewriter(lowered_graph& l)
    : l_(l), layouts_(l.values.size(), layout::nchw) {}

  int run() {
    std::vector<gpu_step> old;
    old.swap(l_.steps);
    for (auto& s : old)
      rewrite(std::move(s));
    for (auto& out : l_.outputs)
      out = as_nchw(out);
    return transposes_;
  }

private:
  layout of(int id) const { return layouts_[static_cast<size_t>(root(id))]; }
  int root(int id) const { return root_of(l_, id); }
  const gpu_value& val(int id) const { return l_.values[static_cast<size_t>(id)]; }
  bool is_4d(int id) const { return val(id).dims.size() == 4; }

  int add(gpu_value v, layout lay) {
    l_.values.push_back(std::move(v));
    layouts_.push_back(lay);
    return static_cast<int>(l_.values.size()) - 1;
  }

  /// A view of `id` with `dims` (same memory).
  int view(int id, shape dims, layout lay, const char* suffix) {
    gpu_value v = val(id);
    v.name += suffix;
    v.dims = std::move(dims);
    v.alias_of = root(id);
    v.host = val(v.alias_of).kind == value_kind::constant ? nullptr : v.host;
    v.input_index = -1;
    if (v.kind == value_kind::input)
      v.kind = value_kind::intermediate; // a view of an input is read, never written
    return add(std::move(v), lay);
  }

  /// `id` (an NCHW 4-D value, or a view of one) in NHWC: a view when the memory reads the
  /// same, else a transpose step's output (a constant: uploaded permuted instead).
  int as_nhwc(int id) {
    if (!is_4d(id))
      return id;
    if (of(id) == layout::nhwc) {
      if (const int r = nhwc_root(id); r >= 0)
        return r;
      id = as_nchw(id); // a view of an NHWC value: its dims are not NHWC's memory order
    }
    if (auto it = nhwc_of_.find(id); it != nhwc_of_.end())
      return it->second;
    const shape dims = permuted(val(id).dims, to_nhwc_perm);
    int out;
    if (same_memory(val(id).dims)) {
      out = view(id, dims, layout::nhwc, "/nhwc");
    } else if (val(id).kind == value_kind::constant && val(id).alias_of < 0) {
      gpu_value v = val(id);
      v.name += "/nhwc";
      v.dims = dims;
      v.upload_perm = to_nhwc_perm;
      out = add(std::move(v), layout::nhwc);
    } else {
      out = transposed(id, dims, layout::nhwc, to_nhwc_perm, "/nhwc");
    }
    nhwc_of_[id] = out;
    return out;
  }

  /// The NHWC value `id` reads as is: itself, or the root of a view with the root's own
  /// logical dims (Identity, Dropout); -1 for other views and NCHW values.
  int nhwc_root(int id) const {
    const int r = root(id);
    if (layouts_[static_cast<size_t>(r)] != layout::nhwc)
      return -1;
    if (id == r || val(id).dims == permuted(val(r).dims, to_nchw_perm))
      return r;
    return -1;
  }

  /// `id` readable as NCHW: itself when its memory is NCHW; for an NHWC value (or a view of
  /// one) an NCHW copy, or a view when the memory reads the same, with id's own dims.
  int as_nchw(int id) {
    const int r = root(id);
    if (layouts_[static_cast<size_t>(r)] == layout::nchw)
      return id;
    if (auto it = nchw_of_.find(id); it != nchw_of_.end())
      return it->second;
    // One NCHW copy (or view) per NHWC value, whichever views of it ask.
    int base;
    if (auto it = nchw_of_.find(r); it != nchw_of_.end()) {
      base = it->second;
    } else {
      const shape logical = permuted(val(r).dims, to_nchw_perm);
      if (same_memory(logical)) {
        base = view(r, logical, layout::nchw, "/nchw");
      } else {
        base = transposed(r, logical, layout::nchw, to_nchw_perm, "/nchw");
      }
      nchw_of_[r] = base;
    }
    // A view of the NHWC value reads the NCHW copy with its own dims.
    const int out = id == r ? base : view(base, val(id).dims, layout::nchw, "/view");
    nchw_of_[id] = out;
    return out;
  }

  /// A new intermediate value `dims` in layout `lay`, written by a transpose step of `from`.
  int transposed(int from, shape dims, layout lay, const std::vector<int64_t>& perm,
                 const char* suffix) {
    gpu_value v = val(from);
    v.name += suffix;
    v.dims = std::move(dims);
    v.kind = value_kind::intermediate;
    v.alias_of = -1;
    v.host = nullptr;
    v.input_index = -1;
    v.upload_perm.clear();
    const int to = add(std::move(v), lay);
    gpu_step t;
    t.kind = step_kind::transpose;
    t.label = val(from).name + " to " + (lay == layout::nhwc ? "NHWC" : "NCHW");
    t.inputs = {from};
    t.outputs = {to};
    t.perm = perm;
    l_.steps.push_back(std::move(t));
    ++transposes_;
    return to;
  }

  /// The step's 4-D outputs take layout `lay` (dims in memory order).
  void set_outputs(const gpu_step& s, layout lay) {
    for (int id : s.outputs) {
      if (lay == layout::nhwc && is_4d(id)) {
        auto& v = l_.values[static_cast<size_t>(id)];
        v.dims = permuted(v.dims, to_nhwc_perm);
        layouts_[static_cast<size_t>(id)] = layout::nhwc;
      }
    }
  }

  /// Whether operand `id` of a binary step with NCHW output dims `out` can take part in NHWC:
  /// the full shape (brought to NHWC), an NHWC value that broadcasts to it (a squeeze-excitation
  /// scale [N, C, 1, 1] held as [N, 1, 1, C]), or a broadcast whose memory reads the same.
  bool binary_operand_fits(int id, const shape& out) const {
    const auto& d = val(id).dims;
    if (numel_of(d) == 1)
      return true;
    if (of(id) == layout::nhwc) {
      const int r = nhwc_root(id);
      if (r < 0)
        return false;
      const shape logical = permuted(val(r).dims, to_nchw_perm);
      for (size_t k = 0; k < 4; ++k)
        if (logical[k] != out[k] && logical[k] != 1)
          return false;
      return true;
    }
    if (d == out)
      return true;
    if (d.size() > 4)
      return false;
    shape padded(4 - d.size(), 1);
    padded.insert(padded.end(), d.begin(), d.end());
    return same_memory(padded);
  }

  /// A binary operand in NHWC: full-shape values transposed, broadcasts as permuted views.
  int binary_operand(int id, const shape& out) {
    const auto& d = val(id).dims;
    if (of(id) == layout::nhwc || d == out)
      return as_nhwc(id);
    if (d.size() == 4 && numel_of(d) == 1)
      return id;
    shape padded(4 - std::min<size_t>(d.size(), 4), 1);
    padded.insert(padded.end(), d.begin(), d.end());
    if (permuted(padded, to_nhwc_perm) == padded && d.size() == 4)
      return id;
    return view(id, permuted(padded, to_nhwc_perm), layout::nhwc, "/nhwc");
  }

  void rewrite(gpu_step s) {
    switch (s.kind) {
    case step_kind::conv: {
      s.inputs[0] = as_nhwc(s.inputs[0]);
      s.inputs[1] = as_nhwc(s.inputs[1]); // KCRS weights uploaded as KRSC
      if (s.inputs.size() > 3 && s.inputs[3] >= 0)
        s.inputs[3] = as_nhwc(s.inputs[3]); // the residual
      s.conv.layout = cuda::tensor_layout::nhwc;
      set_outputs(s, layout::nhwc);
      break;
    }
    case step_kind::pool:
    case step_kind::unary:
    case step_kind::cast: {
      const int nhwc_input = nhwc_root(s.inputs[0]);
      const layout lay = nhwc_input >= 0 ? layout::nhwc : layout::nchw;
      s.inputs[0] = lay == layout::nhwc ? nhwc_input : as_nchw(s.inputs[0]);
      if (s.kind == step_kind::pool)
        s.pool.layout = lay == layout::nhwc ? cuda::tensor_layout::nhwc : cuda::tensor_layout::nchw;
      set_outputs(s, lay);
      break;
    }
    case step_kind::binary: {
      const shape out = val(s.outputs[0]).dims;
      bool nhwc = out.size() == 4;
      bool any = false;
      for (int id : s.inputs) {
        nhwc = nhwc && binary_operand_fits(id, out);
        any = any || of(id) == layout::nhwc;
      }
      if (nhwc && any) {
        for (auto& id : s.inputs)
          id = binary_operand(id, out);
        set_outputs(s, layout::nhwc);
      } else {
        for (auto& id : s.inputs)
          id = as_nchw(id);
      }
      break;
    }
    default:
      for (auto& id : s.inputs)
        if (id >= 0)
          id = as_nchw(id);
      break;
    }
    l_.steps.push_back(std::move(s));
  }

  lowered_graph& l_;
  std::vector<layout> layouts_; // per value: the memory order of values that own memory
  std::map<int, int> nhwc_of_, nchw_of_;
  int transposes_ = 0;
};

} // namespace

int to_channels_last(lowered_graph& l) {
  for (const auto& s : l.steps)
    if (is_collective(s))
      return 0;
  return rewriter(l).run();
}

} // namespace troupe::gpu
