// plan: compile (fold, build kernels, plan memory) and run.
#include "runtime/plan.hpp"

#include <chrono>
#include <cstring>
#include <unordered_set>

#include "runtime/memory_planner.hpp"
#include "runtime/ops/reorder.hpp"
#include "runtime/passes/graph_uses.hpp"

namespace troupe {
namespace {

bool node_is_live(const node& n, const std::unordered_set<std::string>& live) {
  for (const auto& out : n.outputs)
    if (!out.empty() && live.count(out))
      return true;
  return false;
}

} // namespace

int plan::add_value(value_desc desc) {
  values_.push_back(value{std::move(desc), {}, -1, -1});
  return static_cast<int>(values_.size()) - 1;
}

int plan::add_reorder_to_plain(int id) {
  value_desc plain = values_[static_cast<size_t>(id)].desc;
  plain.layout = {};
  plain.constant = nullptr;
  const int out = add_value(plain);
  buffers_.push_back({buffer_kind::arena, plain.buffer_bytes(), 0, 0, out, -1});
  values_[static_cast<size_t>(out)].buffer = static_cast<int>(buffers_.size()) - 1;
  step s;
  s.kernel = make_to_plain_kernel(values_[static_cast<size_t>(id)].desc, cpu_);
  s.inputs = {id};
  s.outputs = {out};
  s.label = "reorder to plain";
  s.op_type = "Reorder";
  steps_.push_back(std::move(s));
  return out;
}

status plan::compile_node(const node& n, const op_def& def, const std::string& source) {
  const auto context = [&] { return source + ": " + n.label(); };
  std::vector<int> in_ids;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const auto& name = n.inputs[i];
    if (name.empty()) {
      in_ids.push_back(-1);
      continue;
    }
    auto it = names_.find(name);
    if (it == names_.end())
      return make_error(errc::invalid_argument, "{}: input '{}' is not defined", context(), name);
    int id = it->second;
    if (!values_[static_cast<size_t>(id)].desc.layout.is_plain() &&
        (i >= 32 || !(def.blocked_inputs & (1u << i))))
      id = add_reorder_to_plain(id);
    in_ids.push_back(id);
  }

  bool all_constant = true;
  for (int id : in_ids)
    if (id >= 0 && !values_[static_cast<size_t>(id)].desc.constant)
      all_constant = false;
  const bool fold = (def.deterministic && all_constant) || def.reads_only_shapes;

  std::vector<value_desc> descs;
  for (int id : in_ids)
    descs.push_back(id >= 0 ? values_[static_cast<size_t>(id)].desc : value_desc{});
  build_context bctx{cpu_, opset_, options_.allow_blocked && !fold, options_.packed_weights};
  auto built = def.build(n, descs, bctx);
  if (!built)
    return built.error().with_context(source);
  for (const auto& o : built->outputs) {
    auto bytes = checked_bytes(o.dims, size_of(o.type));
    if (!bytes)
      return bytes.error().with_context(context());
    if (static_cast<size_t>(*bytes) > options_.max_value_bytes)
      return make_error(errc::resource_exhausted, "{}: output of shape {} needs {} bytes, over the "
                        "{} byte limit", context(), to_string(o.dims), *bytes, options_.max_value_bytes);
  }
  size_t named_outputs = 0;
  for (size_t i = 0; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty())
      named_outputs = i + 1;
  if (built->outputs.size() < named_outputs)
    return make_error(errc::internal, "{}: builder produced {} outputs, node names {}", context(),
                      built->outputs.size(), named_outputs);

  if (fold) {
    ++folded_nodes_;
    std::vector<tensor> outs;
    if (built->alias_input >= 0) {
      const auto& src = values_[static_cast<size_t>(in_ids[static_cast<size_t>(built->alias_input)])];
      outs.push_back(src.data.reshaped(built->outputs[0].dims));
    } else {
      std::vector<tensor> ins;
      for (int id : in_ids)
        ins.push_back(id >= 0 ? values_[static_cast<size_t>(id)].data : tensor{});
      for (const auto& o : built->outputs) {
        if (!o.layout.is_plain())
          return make_error(errc::internal, "{}: folded output is not plain", context());
        outs.push_back(tensor::empty(o.type, o.dims));
      }
      exec_context ectx{cpu_};
      TROUPE_TRY_STATUS(built->kernel->run(ectx, ins, outs).with_context(context()));
    }
    for (size_t i = 0; i < n.outputs.size() && i < outs.size(); ++i) {
      if (n.outputs[i].empty())
        continue;
      value_desc d = built->outputs[i];
      const int id = add_value(d);
      auto& v = values_[static_cast<size_t>(id)];
      v.data = std::move(outs[i]);
      v.desc.constant = &v.data;
      names_[n.outputs[i]] = id;
    }
    return status::ok();
  }

  step s;
  s.inputs = in_ids;
  s.label = n.label();
  s.op_type = n.op_type;
  const int step_index = static_cast<int>(steps_.size());
  for (size_t i = 0; i < built->outputs.size(); ++i) {
    value_desc d = built->outputs[i];
    d.constant = nullptr;
    const int id = add_value(d);
    auto& v = values_[static_cast<size_t>(id)];
    if (built->alias_input >= 0 && i == 0) {
      const int src = in_ids[static_cast<size_t>(built->alias_input)];
      v.alias_of = src;
      v.buffer = values_[static_cast<size_t>(src)].buffer;
      if (v.buffer < 0) // a view of a constant is itself constant
        v.data = values_[static_cast<size_t>(src)].data.reshaped(d.dims);
    } else {
      buffers_.push_back({buffer_kind::arena, d.buffer_bytes(), step_index, step_index, id, -1});
      v.buffer = static_cast<int>(buffers_.size()) - 1;
    }
    s.outputs.push_back(id);
    if (i < n.outputs.size() && !n.outputs[i].empty())
      names_[n.outputs[i]] = id;
  }
  if (built->alias_input >= 0) {
    const auto& v = values_[static_cast<size_t>(s.outputs[0])];
    if (v.buffer < 0) { // the view aliases a constant: it is a constant too
      values_[static_cast<size_t>(s.outputs[0])].desc.constant = &values_[static_cast<size_t>(s.outputs[0])].data;
      ++folded_nodes_;
      return status::ok();
    }
    // Extend the shared buffer's lifetime when the view is used; no step runs.
    return status::ok();
  }
  s.kernel = std::move(built->kernel);
  steps_.push_back(std::move(s));
  return status::ok();
}

expected<std::unique_ptr<plan>> plan::compile(const graph& g, std::span<const shape> input_dims,
                                              cpu::cpu_context& cpu, plan_options options,
                                              const op_registry& ops) {
  std::unique_ptr<plan> p(new plan(cpu));
  p->options_ = options;
  p->opset_ = g.opset;
  if (input_dims.size() != g.inputs.size())
    return make_error(errc::invalid_argument, "{}: model has {} inputs, {} shapes given", g.source,
                      g.inputs.size(), input_dims.size());

  for (const auto& [name, t] : g.initializers) {
    value_desc d{t.type(), t.dims(), {}, nullptr};
    const int id = p->add_value(d);
    auto& v = p->values_[static_cast<size_t>(id)];
    v.data = t;
    v.desc.constant = &v.data;
    p->names_[name] = id;
  }
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    auto bytes = checked_bytes(input_dims[i], size_of(g.inputs[i].type));
    if (!bytes)
      return bytes.error().with_context(g.source + ": input '" + g.inputs[i].name + "'");
    if (static_cast<size_t>(*bytes) > options.max_value_bytes)
      return make_error(errc::resource_exhausted, "{}: input '{}' of shape {} is over the {} byte "
                        "limit", g.source, g.inputs[i].name, to_string(input_dims[i]),
                        options.max_value_bytes);
    const int id = p->add_value({g.inputs[i].type, input_dims[i], {}, nullptr});
    p->buffers_.push_back({buffer_kind::graph_input, static_cast<size_t>(*bytes), 0, 0, id,
                           static_cast<int>(i)});
    p->values_[static_cast<size_t>(id)].buffer = static_cast<int>(p->buffers_.size()) - 1;
    p->names_[g.inputs[i].name] = id;
    p->input_values_.push_back(id);
  }

  const auto live = live_values(g);
  for (const auto& n : g.nodes) {
    if (!node_is_live(n, live))
      continue;
    if (!n.domain.empty() && n.domain != "troupe")
      return make_error(errc::unsupported, "{}: {}: operator domain '{}' is not supported",
                        g.source, n.label(), n.domain);
    const op_def* def = ops.find(n.op_type);
    if (!def)
      return make_error(errc::unsupported,
                        "{}: {}: operator '{}' is not supported (`troupe ops` lists those that are)",
                        g.source, n.label(), n.op_type);
    TROUPE_TRY_STATUS(p->compile_node(n, *def, g.source));
  }

  for (const auto& out : g.outputs) {
    auto it = p->names_.find(out.name);
    if (it == p->names_.end())
      return make_error(errc::invalid_argument, "{}: output '{}' is produced by no node", g.source,
                        out.name);
    int id = it->second;
    if (!p->values_[static_cast<size_t>(id)].desc.layout.is_plain())
      id = p->add_reorder_to_plain(id);
    const auto& v = p->values_[static_cast<size_t>(id)];
    const bool copy = v.buffer < 0 || p->buffers_[static_cast<size_t>(v.buffer)].kind ==
                                          buffer_kind::graph_input;
    if (!copy)
      p->buffers_[static_cast<size_t>(v.buffer)].kind = buffer_kind::graph_output;
    p->outputs_.push_back({id, copy});
    p->output_infos_.push_back({out.name, v.desc.type, v.desc.dims});
  }

  // Liveness: a buffer lives from its defining step to the last step reading any view of it.
  for (size_t s = 0; s < p->steps_.size(); ++s)
    for (int id : p->steps_[s].inputs)
      if (id >= 0 && p->values_[static_cast<size_t>(id)].buffer >= 0) {
        auto& b = p->buffers_[static_cast<size_t>(p->values_[static_cast<size_t>(id)].buffer)];
        b.last = std::max(b.last, static_cast<int>(s));
      }
  std::vector<buffer_lifetime> lifetimes;
  std::vector<size_t> arena_buffers;
  for (size_t b = 0; b < p->buffers_.size(); ++b)
    if (p->buffers_[b].kind == buffer_kind::arena) {
      lifetimes.push_back({p->buffers_[b].bytes, p->buffers_[b].first, p->buffers_[b].last});
      arena_buffers.push_back(b);
    }
  const auto layout = plan_memory(lifetimes);
  p->arena_ = storage::allocate_host(layout.arena_bytes);

  for (size_t id = 0; id < p->values_.size(); ++id) {
    auto& v = p->values_[id];
    if (v.buffer < 0)
      continue;
    const auto& b = p->buffers_[static_cast<size_t>(v.buffer)];
    if (b.kind != buffer_kind::arena) {
      p->per_run_values_.push_back(static_cast<int>(id));
      continue;
    }
    size_t slot = 0;
    while (arena_buffers[slot] != static_cast<size_t>(v.buffer))
      ++slot;
    v.data = tensor::wrap(v.desc.type, v.desc.dims, p->arena_, layout.offsets[slot]);
  }
  return p;
}

std::unordered_map<std::string, shape> plan::value_shapes() const {
  std::unordered_map<std::string, shape> out;
  for (const auto& [name, id] : names_)
    out[name] = values_[static_cast<size_t>(id)].desc.dims;
  return out;
}

std::unordered_map<std::string, value_desc> plan::value_descs() const {
  std::unordered_map<std::string, value_desc> out;
  for (const auto& [name, id] : names_)
    out[name] = values_[static_cast<size_t>(id)].desc;
  return out;
}

void plan::bind_value(int id) {
  auto& v = values_[static_cast<size_t>(id)];
  if (v.alias_of >= 0) {
    v.data = values_[static_cast<size_t>(v.alias_of)].data.reshaped(v.desc.dims);
    return;
  }
  const auto& b = buffers_[static_cast<size_t>(v.buffer)];
  if (b.kind == buffer_kind::graph_output)
    v.data = tensor::wrap(v.desc.type, v.desc.dims, storage::allocate_host(b.bytes));
}

expected<std::vector<tensor>> plan::run(std::span<const tensor> inputs,
                                        std::vector<step_profile>* profile) {
  if (inputs.size() != input_values_.size())
    return make_error(errc::invalid_argument, "plan expects {} inputs, got {}",
                      input_values_.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto& v = values_[static_cast<size_t>(input_values_[i])];
    if (inputs[i].type() != v.desc.type || inputs[i].dims() != v.desc.dims)
      return make_error(errc::invalid_argument, "input {} is {}{}, plan compiled for {}{}", i,
                        to_string(inputs[i].type()), to_string(inputs[i].dims()),
                        to_string(v.desc.type), to_string(v.desc.dims));
    v.data = inputs[i];
  }
  for (int id : per_run_values_)
    bind_value(id);

  exec_context ectx{cpu_, options_.comm};
  std::vector<tensor> ins, outs;
  for (auto& s : steps_) {
    ins.clear();
    outs.clear();
    for (int id : s.inputs)
      ins.push_back(id >= 0 ? values_[static_cast<size_t>(id)].data : tensor{});
    for (int id : s.outputs)
      outs.push_back(values_[static_cast<size_t>(id)].data);
    const auto start = std::chrono::steady_clock::now();
    auto st = s.kernel->run(ectx, ins, outs);
    if (!st.is_ok())
      return st.with_context(s.label);
    if (profile)
      profile->push_back({s.label, s.op_type,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  }

  std::vector<tensor> result;
  for (const auto& o : outputs_) {
    const auto& v = values_[static_cast<size_t>(o.value)];
    result.push_back(o.copy ? v.data.clone() : v.data);
  }
  // Drop references to caller and output buffers so they are freed when the caller is done.
  for (int id : input_values_)
    values_[static_cast<size_t>(id)].data = {};
  for (int id : per_run_values_)
    values_[static_cast<size_t>(id)].data = {};
  return result;
}

} // namespace troupe
