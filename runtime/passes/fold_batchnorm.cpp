// fold_batchnorm: Conv -> BatchNormalization becomes one Conv with rescaled weights.
#include <cmath>

#include "runtime/passes/graph_uses.hpp"
#include "runtime/passes/passes.hpp"

namespace troupe {
namespace {

const tensor* constant_f32(const graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end() || it->second.type() != dtype::f32)
    return nullptr;
  return &it->second;
}

} // namespace

size_t fold_batchnorm_into_conv(graph& g) {
  size_t folded = 0;
  graph_uses uses(g);
  std::vector<bool> drop(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const node& bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || bn.inputs.size() != 5 || bn.outputs.size() != 1 ||
        bn.attr_int("training_mode", 0) != 0)
      continue;
    auto pit = uses.producer.find(bn.inputs[0]);
    if (pit == uses.producer.end() || !uses.single_use(bn.inputs[0]))
      continue;
    node& conv = g.nodes[pit->second];
    if (conv.op_type != "Conv" || !conv.domain.empty())
      continue;
    const tensor* w = constant_f32(g, conv.input(1));
    const tensor* b = conv.input(2).empty() ? nullptr : constant_f32(g, conv.input(2));
    const tensor* scale = constant_f32(g, bn.inputs[1]);
    const tensor* shift = constant_f32(g, bn.inputs[2]);
    const tensor* mean = constant_f32(g, bn.inputs[3]);
    const tensor* var = constant_f32(g, bn.inputs[4]);
    if (!w || !scale || !shift || !mean || !var || w->rank() < 3 || (!conv.input(2).empty() && !b))
      continue;
    const int64_t channels = w->dim(0);
    if (scale->numel() != channels || shift->numel() != channels || mean->numel() != channels ||
        var->numel() != channels || (b && b->numel() != channels))
      continue;

    const float eps = bn.attr_float("epsilon", 1e-5f);
    const int64_t per_channel = w->numel() / channels;
    tensor new_w = w->clone();
    tensor new_b = tensor::empty(dtype::f32, {channels});
    for (int64_t c = 0; c < channels; ++c) {
      const float factor = scale->data<float>()[c] / std::sqrt(var->data<float>()[c] + eps);
      float* wc = new_w.data<float>() + c * per_channel;
      for (int64_t k = 0; k < per_channel; ++k)
        wc[k] *= factor;
      const float bias = b ? b->data<float>()[c] : 0.f;
      new_b.data<float>()[c] = (bias - mean->data<float>()[c]) * factor + shift->data<float>()[c];
    }
    // Fresh names: the original weights may be shared with another node.
    const std::string base = (conv.name.empty() ? conv.outputs[0] : conv.name) + "/bn_folded";
    g.initializers[base + "/W"] = std::move(new_w);
    g.initializers[base + "/B"] = std::move(new_b);
    conv.inputs.resize(3);
    conv.inputs[1] = base + "/W";
    conv.inputs[2] = base + "/B";
    conv.outputs[0] = bn.outputs[0];
    drop[i] = true;
    ++folded;
  }
  std::vector<node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!drop[i])
      kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  return folded;
}

} // namespace troupe
