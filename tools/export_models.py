#!/usr/bin/python3
"""Builds troupe's reference models (fixed seed, random weights, eval mode) and exports ONNX.

Run with the Debian python that has torch (the pyenv `python3` on PATH has none):

    /usr/bin/python3 tools/export_models.py --out /tmp/models [--models a,b] [--batch 2]

For every model NAME it writes into --out:
  NAME.onnx         opset 13, dynamic batch dimension "batch" on input and output, constants folded
  NAME.input.npy    a random float32 input for --batch items
  NAME.output.npy   PyTorch's float32 output on that input
  NAME.json         {input_name, output_name, input_shape, flops_per_item, ...}; input_shape is
                    the shape of NAME.input.npy (batch first); item_shape drops the batch;
                    flops_per_item = 2 * multiply-adds of Conv/Gemm/MatMul (other ops not counted)

Models (all built under torch.manual_seed(0), so any script calling build_model() gets the same
weights):
  seed_cnn      LeNet-like MNIST CNN, 1x28x28 -> 10 logits (random weights here; may be trained later)
  resnet18      torchvision resnet18(weights=None), 3x224x224 -> 1000
  mobilenet_v2  torchvision mobilenet_v2(weights=None), 3x224x224 -> 1000
  resnet50      torchvision resnet50(weights=None), 3x224x224 -> 1000 (GPU benchmarks only;
                not in the default set)
                (both with BatchNorm statistics calibrated on one fixed random batch, see
                calibrate_batchnorm; export folds BatchNorm into the convolutions)
  bert_encoder  4 BERT-style encoder layers (d_model 256, 4 heads, FFN 1024, GELU, post-norm) on
                already-embedded input [N,128,256] -> [N,128,256]

torch 1.13 exports nn.TransformerEncoderLayer in eval mode as the fused
aten::_transformer_encoder_layer_fwd (no ONNX symbolic), so the encoder is written out by hand
(PlainEncoderLayer). Its weights are copied from an nn.TransformerEncoderLayer built with the same
seed and the export checks that both give the same output, so build_model("bert_encoder",
native=True) is the identical model on PyTorch's fused path.

Every exported graph is checked against ALLOWED_OPS (the ops troupe implements); the script exits
non-zero if a model needs anything else. If onnxruntime is importable (e.g. the .venv made by
tools/bench-venv.sh) the ONNX output is also checked against PyTorch's.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
from collections import Counter

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

SEED = 0
INPUT_SEED = 1
CALIBRATION_SEED = 2
OPSET = 13

ALLOWED_OPS = frozenset("""
Conv MaxPool AveragePool GlobalAveragePool BatchNormalization Relu LeakyRelu Sigmoid Tanh Clip
Add Sub Mul Div Pow Sqrt Erf Gemm MatMul Flatten Reshape Transpose Concat Split Slice Gather Shape
Unsqueeze Squeeze Expand Cast Where Equal ReduceMean Softmax LogSoftmax LayerNormalization
Identity Dropout Constant ConstantOfShape Pad
""".split())

ALL_MODELS = ("seed_cnn", "resnet18", "mobilenet_v2", "bert_encoder")
EXTRA_MODELS = ("resnet50",)  # exported only when asked for (tools/gpu-check.sh)

# --------------------------------------------------------------------------------------------
# Models


class SeedCNN(nn.Module):
    """The classic PyTorch MNIST example without dropout: 1x28x28 -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class MatMul(nn.Module):
    """torch.matmul as a module, so the MAC-counting hooks see the attention products."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    # Exact GELU, exported as Div/Erf/Add/Mul.
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


class PlainEncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer(batch_first=True, norm_first=False, activation="gelu",
    dropout=0) written with plain ops so the ONNX export has no fused/aten nodes.

    Sequence length and width are baked into the Reshape shapes (the batch stays dynamic via -1),
    so the Reshapes take constant shapes instead of Shape/Gather/Concat chains.
    """

    def __init__(self, d_model: int, nhead: int, dim_ff: int, seq_len: int, eps: float = 1e-5):
        super().__init__()
        assert d_model % nhead == 0
        self.d_model, self.nhead, self.head_dim, self.seq_len = d_model, nhead, d_model // nhead, seq_len
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.qk = MatMul()
        self.av = MatMul()

    @torch.no_grad()
    def load_from(self, ref: nn.TransformerEncoderLayer) -> "PlainEncoderLayer":
        d = self.d_model
        w, b = ref.self_attn.in_proj_weight, ref.self_attn.in_proj_bias
        for i, lin in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            lin.weight.copy_(w[i * d:(i + 1) * d])
            lin.bias.copy_(b[i * d:(i + 1) * d])
        for mine, theirs in ((self.out_proj, ref.self_attn.out_proj), (self.linear1, ref.linear1),
                             (self.linear2, ref.linear2), (self.norm1, ref.norm1),
                             (self.norm2, ref.norm2)):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        return self

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # [N,S,D] -> [N,H,S,hd]
        return t.reshape(-1, self.seq_len, self.nhead, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 / math.sqrt(self.head_dim)
        q = self._heads(self.q_proj(x) * scale)
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        attn = torch.softmax(self.qk(q, k.transpose(2, 3)), dim=-1)     # [N,H,S,S]
        ctx = self.av(attn, v).transpose(1, 2).reshape(-1, self.seq_len, self.d_model)
        x = self.norm1(x + self.out_proj(ctx))
        return self.norm2(x + self.linear2(gelu_erf(self.linear1(x))))


BERT_CFG = dict(layers=4, d_model=256, nhead=4, dim_ff=1024, seq_len=128)


def _native_bert() -> nn.Module:
    """nn.TransformerEncoder whose layers are independently initialised.

    nn.TransformerEncoder deep-copies one layer, so all layers would share the same values, and
    PyTorch initialises attention biases to 0 and LayerNorm to 1/0. Either would let a runtime
    bug (a reused weight, an ignored bias or LayerNorm gain) pass the reference-output check, so
    each layer is built separately and those tensors get small random values.
    """
    c = BERT_CFG

    def layer() -> nn.TransformerEncoderLayer:
        return nn.TransformerEncoderLayer(d_model=c["d_model"], nhead=c["nhead"],
                                          dim_feedforward=c["dim_ff"], dropout=0.0,
                                          activation="gelu", batch_first=True)

    enc = nn.TransformerEncoder(layer(), num_layers=1, enable_nested_tensor=False)
    enc.layers = nn.ModuleList([layer() for _ in range(c["layers"])])
    enc.num_layers = c["layers"]
    with torch.no_grad():
        for l in enc.layers:
            for t in (l.self_attn.in_proj_bias, l.self_attn.out_proj.bias, l.norm1.bias,
                      l.norm2.bias):
                t.copy_(0.02 * torch.randn_like(t))
            for t in (l.norm1.weight, l.norm2.weight):
                t.copy_(1.0 + 0.1 * torch.randn_like(t))
    return enc


def calibrate_batchnorm(model: nn.Module, shape: tuple[int, ...], items: int = 8) -> None:
    """Sets every BatchNorm's running statistics to the batch statistics of one fixed random
    batch (train-mode pass, cumulative average, no gradients), weights untouched.

    With torchvision's default init (running mean 0 / var 1) MobileNetV2's activations vanish:
    its logits are ~1e-9, which makes a reference output useless as a numerical check.
    Calibrated statistics keep activations near unit scale in every layer.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: one batch -> exactly its statistics
    g = torch.Generator().manual_seed(CALIBRATION_SEED)
    model.train()
    with torch.no_grad():
        model(torch.randn((items, *shape), generator=g))
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
    model.eval()


def build_model(name: str, native: bool = False) -> nn.Module:
    """Returns the reference model NAME in eval mode with the fixed-seed weights.

    native=True only matters for bert_encoder: PyTorch's own nn.TransformerEncoder (fused fast
    path in inference) with exactly the same weights as the exported plain version.
    """
    torch.manual_seed(SEED)
    if name == "seed_cnn":
        m = SeedCNN()
    elif name in ("resnet18", "resnet50", "mobilenet_v2"):
        import torchvision  # Debian python3-torchvision
        m = getattr(torchvision.models, name)(weights=None)
        calibrate_batchnorm(m, item_shape(name))
    elif name == "bert_encoder":
        ref = _native_bert()
        if native:
            m = ref
        else:
            c = BERT_CFG
            m = nn.Sequential(*[
                PlainEncoderLayer(c["d_model"], c["nhead"], c["dim_ff"], c["seq_len"]).load_from(l)
                for l in ref.layers])
    else:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(ALL_MODELS)}")
    return m.eval()


def item_shape(name: str) -> tuple[int, ...]:
    return {"seed_cnn": (1, 28, 28), "resnet18": (3, 224, 224), "resnet50": (3, 224, 224),
            "mobilenet_v2": (3, 224, 224),
            "bert_encoder": (BERT_CFG["seq_len"], BERT_CFG["d_model"])}[name]


def make_input(name: str, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn((batch, *item_shape(name)), generator=g, dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# FLOPs


def count_macs_per_item(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of Conv2d, Linear and MatMul modules for one item, via forward hooks."""
    batch = x.shape[0]
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    def matmul_hook(m: MatMul, inp, out):
        nonlocal total
        total += out.numel() * inp[0].shape[-1]

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, MatMul):
            handles.append(mod.register_forward_hook(matmul_hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    assert total % batch == 0
    return total // batch


# --------------------------------------------------------------------------------------------
# Export


def export_one(name: str, out_dir: str, batch: int) -> dict:
    import onnx

    model = build_model(name)
    x = make_input(name, batch)
    with torch.no_grad():
        y = model(x).float()
    macs = count_macs_per_item(model, x)

    notes = {}
    if name == "bert_encoder":
        with torch.inference_mode():
            y_native = build_model(name, native=True)(x)
        notes["max_abs_diff_vs_nn_TransformerEncoder"] = float((y - y_native).abs().max())

    input_name, output_name = "input", "output"
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (x,), buf, opset_version=OPSET, do_constant_folding=True,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    ops = Counter(n.op_type for n in proto.graph.node)
    domains = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    bad = sorted(set(ops) - ALLOWED_OPS) + [f"domain:{d}" for d in domains]

    base = os.path.join(out_dir, name)
    with open(base + ".onnx", "wb") as f:
        f.write(buf.getvalue())
    np.save(base + ".input.npy", x.numpy().astype(np.float32))
    np.save(base + ".output.npy", y.numpy().astype(np.float32))

    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        sess = ort.InferenceSession(base + ".onnx", so, providers=["CPUExecutionProvider"])
        y_ort = sess.run([output_name], {input_name: x.numpy()})[0]
        notes["max_abs_diff_onnxruntime_vs_torch"] = float(np.abs(y_ort - y.numpy()).max())

    meta = {
        "name": name,
        "input_name": input_name,
        "output_name": output_name,
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "item_shape": list(item_shape(name)),
        "batch": batch,
        "dtype": "float32",
        "opset": OPSET,
        "flops_per_item": 2 * macs,
        "macs_per_item": macs,
        "params": sum(p.numel() for p in model.parameters()),
        "op_types": dict(sorted(ops.items())),
        "seed": SEED,
        "input_seed": INPUT_SEED,
        "torch_version": torch.__version__,
        **notes,
    }
    with open(base + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    meta["_disallowed"] = bad
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--models", default=",".join(ALL_MODELS),
                    help=f"comma-separated subset of {','.join(ALL_MODELS)}")
    ap.add_argument("--batch", type=int, default=2, help="batch of the sample input/output (2)")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_MODELS + EXTRA_MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {', '.join(ALL_MODELS)}")
    if args.batch < 1:
        ap.error("--batch must be >= 1")
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    failed = False
    for name in names:
        m = export_one(name, args.out, args.batch)
        extra = {k: v for k, v in m.items() if k.startswith("max_abs_diff")}
        print(f"{name}: {m['flops_per_item'] / 1e9:.4g} GFLOP/item "
              f"({m['macs_per_item']:,} MACs), {m['params']:,} params, "
              f"input {m['input_shape']} -> output {m['output_shape']}"
              + "".join(f", {k}={v:.3g}" for k, v in extra.items()))
        print(f"  ops: {' '.join(f'{k}x{v}' for k, v in m['op_types'].items())}")
        if m["_disallowed"]:
            failed = True
            print(f"  ERROR: ops outside the troupe set: {m['_disallowed']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
