#!/usr/bin/env python3
"""gpu_torch_models: PyTorch eager figures for the models and cases of bench_gpu_models, as
markdown rows for tools/gpu-check.sh (tools/gpu_ratios.py sets them next to troupe's).

The models are export_models.build_model's (the architectures troupe runs; weights do not
change the time). Eager mode as PyTorch users run inference: torch.inference_mode(), cuDNN
benchmark mode, channels-last CNNs, TF32 off at fp32 (troupe's fp32 is plain fp32). Each run
is synchronized, as each troupe run is. Two timings per row, like bench_gpu_models:
  host to host  fp32 input in pinned memory, copied in, cast, the model, cast back, copied out
  on device     input already on the GPU in the model's dtype, output left there
The BERT-style encoder runs twice: as exported (plain layers) and as PyTorch's own
nn.TransformerEncoder with the same weights (its fused inference fast path).

Rows: | torch <version> | model | precision | batch | items/s | ms/batch | items/s on device |
ms/batch on device |
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import build_model, make_input  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CNNS = {"seed_cnn", "resnet18", "resnet50", "mobilenet_v2"}
NATIVE_BERT = "bert_encoder (nn.TransformerEncoder)"


def measure(body, batch, seconds, sync):
    """items/s and ms per run of `body` (one batch), each run synchronized."""
    for _ in range(5):  # cuDNN benchmark mode picks its algorithms here
        body()
    sync()
    runs = 0
    t0 = time.perf_counter()
    while True:
        body()
        sync()
        runs += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and runs >= 3:
            return runs * batch / elapsed, 1e3 * elapsed / runs


def load(name):
    """The module for a row name, or the reason it cannot be built here."""
    try:
        if name == NATIVE_BERT:
            return build_model("bert_encoder", native=True), None
        return build_model(name), None
    except ImportError as e:  # torchvision for the ResNets
        return None, f"skipped: {e}"


def rows(names, precisions, batches, seconds, device):
    on_gpu = device == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for name in names:
        model, why = load(name)
        if model is None:
            yield (name, "-", "-", why, "", "", "")
            continue
        base = "bert_encoder" if name == NATIVE_BERT else name
        cnn = base in CNNS
        for precision in precisions:
            dtype = DTYPES[precision]
            m = model.to(device=device, dtype=dtype)
            if cnn:
                m = m.to(memory_format=torch.channels_last)
            fmt = torch.channels_last if cnn else torch.contiguous_format
            for batch in batches:
                x = make_input(base, batch)
                host = x.pin_memory() if on_gpu else x
                on_device = x.to(device=device, dtype=dtype).contiguous(memory_format=fmt)

                def host_to_host():
                    inp = host.to(device, non_blocking=True).to(dtype)
                    return m(inp.contiguous(memory_format=fmt)).float().cpu()

                def device_resident():
                    return m(on_device)

                with torch.inference_mode():
                    try:
                        r_host, ms_host = measure(host_to_host, batch, seconds, sync)
                        r_dev, ms_dev = measure(device_resident, batch, seconds, sync)
                    except RuntimeError as e:  # out of memory, a dtype the device lacks
                        yield (name, precision, batch, f"error: {str(e).splitlines()[0]}", "",
                               "", "")
                        continue
                yield (name, precision, batch, f"{r_host:.0f}", f"{ms_host:.3f}", f"{r_dev:.0f}",
                       f"{ms_dev:.3f}")
                del on_device, host
            if on_gpu:
                torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The cases the targets name come first: if the GPU check's time runs out, they are in.
    parser.add_argument("--models", nargs="+",
                        default=["resnet50", "bert_encoder", NATIVE_BERT, "seed_cnn", "resnet18"])
    parser.add_argument("--precision", nargs="+", default=["fp16", "bf16", "fp32"],
                        choices=sorted(DTYPES))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 32, 128, 256])
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu only to try the script where there is no GPU")
    args = parser.parse_args()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("gpu_torch_models: skipped, torch sees no GPU")
            return 77
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "the CPU"
    print(f"\nPyTorch {torch.__version__} eager on {gpu}\n")
    print("| torch | model | precision | batch | items/s | ms/batch | items/s on device | "
          "ms/batch on device |\n|---|---|---|---:|---:|---:|---:|---:|")
    for row in rows(args.models, args.precision, args.batch, args.seconds, args.device):
        print("| torch " + torch.__version__ + " | " + " | ".join(str(c) for c in row) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
