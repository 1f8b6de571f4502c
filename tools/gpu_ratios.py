#!/usr/bin/env python3
"""gpu_ratios: troupe's GPU figures against PyTorch eager and served against raw, from the logs
of bench_gpu_models, tools/gpu_torch_models.py and bench_gpu_serving, as markdown with the
issue's targets marked (tools/gpu-check.sh appends it to its report).

Targets (H100/H200-class GPU): ResNet-50 fp16 at batch 256 >= 1.0x PyTorch eager; the
BERT-style encoder fp16 >= 1.0x PyTorch eager; served end to end >= 0.85x the raw backend.
"troupe/torch" compares like with like: on device (input already on the GPU, output left there;
what PyTorch eager benchmarks time) and host to host (fp32 input copied in, output copied out).
The encoder is compared with the faster of PyTorch's two versions of it (its plain layers as
exported, or nn.TransformerEncoder's fused fast path); a CNN case with troupe rows in both
layouts takes troupe's faster one on device (the name says "(NHWC)" when channels-last won).
"""
import argparse
import sys

EAGER_TARGET = 1.0
SERVED_TARGET = 0.85
NATIVE_BERT = "bert_encoder (nn.TransformerEncoder)"


def tables(text):
    """Every markdown table in `text` as (header cells, rows of cells)."""
    found, header, rows = [], None, []
    for line in text.splitlines() + [""]:
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line[1:-1].split("|")]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        if header is not None:
            found.append((header, rows))
        header, rows = None, []
    return found


def number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def rows_of(text, first_columns):
    """Rows of the tables whose header starts with `first_columns`, as dicts by header."""
    out = []
    for header, rows in tables(text):
        if header[:len(first_columns)] == first_columns:
            out += [dict(zip(header, r)) for r in rows if len(r) == len(header)]
    return out


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(x):
    return "-" if x is None else f"{x:.2f}x"


def verdict(value, target):
    if value is None:
        return f">= {target}x: not measured"
    return f">= {target}x: {'met' if value >= target else 'MISSED'}"


def eager_target(model, precision, batch):
    return (model == "resnet50" and precision == "fp16" and batch == 256) or \
        (model == "bert_encoder" and precision == "fp16")


NHWC = " (NHWC)"


def best_of_layouts(rows):
    """troupe's rows with each case's layouts (plain, "(NHWC)") reduced to the faster on device."""
    best, order = {}, []
    for r in rows:
        model = r["model"].removesuffix(NHWC)
        key = (model, r["precision"], r["batch"])
        dev = number(r["items/s on device"])
        if dev is None:
            continue
        if key not in best:
            order.append(key)
        if key not in best or dev > number(best[key]["items/s on device"]):
            best[key] = r
    return [best[k] for k in order]


def against_torch(troupe_log, torch_log):
    ours = best_of_layouts(rows_of(troupe_log, ["model", "precision", "batch", "items/s"]))
    theirs = {}
    for r in rows_of(torch_log, ["torch", "model", "precision", "batch"]):
        model = "bert_encoder" if r["model"] == NATIVE_BERT else r["model"]
        key = (model, r["precision"], r["batch"])
        dev, host = number(r["items/s on device"]), number(r["items/s"])
        best = theirs.get(key)
        if dev is not None and (best is None or dev > best[0]):
            theirs[key] = (dev, host, r["model"])
    lines = ["| model | precision | batch | troupe items/s on device | torch items/s on device | "
             "troupe/torch on device | troupe/torch host to host | target |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in ours:
        key = (r["model"].removesuffix(NHWC), r["precision"], r["batch"])
        dev, host = number(r["items/s on device"]), number(r["items/s"])
        if dev is None:
            continue
        torch_dev, torch_host, which = theirs.get(key, (None, None, None))
        on_device = ratio(dev, torch_dev)
        target = verdict(on_device, EAGER_TARGET) if eager_target(
            key[0], r["precision"], number(r["batch"])) else ""
        name = r["model"] + (" (vs nn.TransformerEncoder)" if which == NATIVE_BERT else "")
        lines.append(f"| {name} | {r['precision']} | {r['batch']} | {dev:.0f} | "
                     f"{'-' if torch_dev is None else f'{torch_dev:.0f}'} | {fmt(on_device)} | "
                     f"{fmt(ratio(host, torch_host))} | {target} |")
    return lines, bool(theirs)


def served(serving_log):
    lines = ["| model | precision | batch | served/raw (1-item requests) | "
             "served/raw (batch requests) | target |", "|---|---|---:|---:|---:|---|"]
    # A case measured twice (the GPU check's targets pass, then its full sweep) counts once:
    # its later complete row, each row's served and raw figures being from the same moment.
    cases = {}
    for r in rows_of(serving_log, ["model", "precision", "batch", "raw items/s"]):
        raw = number(r["raw items/s"])
        if raw is None or (number(r["served items/s (1-item requests)"]) is None and
                           number(r["served items/s (batch requests)"]) is None):
            continue
        key = (r["model"], r["precision"], r["batch"])
        cases.pop(key, None)
        cases[key] = r
    for (model, precision, batch), r in cases.items():
        raw = number(r["raw items/s"])
        one = ratio(number(r["served items/s (1-item requests)"]), raw)
        whole = ratio(number(r["served items/s (batch requests)"]), raw)
        best = max((x for x in (one, whole) if x is not None), default=None)
        lines.append(f"| {model} | {precision} | {batch} | {fmt(one)} | "
                     f"{fmt(whole)} | {verdict(best, SERVED_TARGET)} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--troupe", required=True, help="bench_gpu_models' output")
    parser.add_argument("--torch", help="gpu_torch_models.py's output (absent: no PyTorch)")
    parser.add_argument("--serving", help="bench_gpu_serving's output")
    args = parser.parse_args()
    read = lambda path: open(path, encoding="utf-8").read() if path else ""  # noqa: E731
    out = ["", "## Targets", ""]
    lines, compared = against_torch(read(args.troupe), read(args.torch))
    if compared:
        out += ["troupe against PyTorch eager on the same GPU (the target compares on device):",
                ""] + lines
    else:
        out.append("troupe against PyTorch eager: not measured (no PyTorch with CUDA here).")
    if args.serving:
        out += ["", "Served end to end against the raw backend (the better of the two request "
                "kinds):", ""] + served(read(args.serving))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
