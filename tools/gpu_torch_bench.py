#!/usr/bin/env python3
"""gpu_torch_bench: PyTorch's figures for the cases of bench_gpu_copy (copy bandwidth, caching
allocator, serial copy-SGEMM-copy batches), as markdown rows for tools/gpu-check.sh."""
import argparse
import time

import torch


def best_seconds(reps, body):
    best = float("inf")
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        body()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def row(case, value, unit):
    print(f"| torch {torch.__version__} | {case} | {value:.3g} {unit} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # troupe's SGEMM is plain FP32

    nbytes = args.mib << 20
    pageable = torch.ones(nbytes, dtype=torch.uint8)
    pinned = pageable.pin_memory()
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    gb = nbytes / 1e9
    for case, dst, src in [("pageable host→device", dev, pageable),
                           ("pinned host→device", dev, pinned),
                           ("pinned device→host", pinned, dev)]:
        seconds = best_seconds(args.reps, lambda: dst.copy_(src))
        row(f"{case}, {args.mib} MiB", gb / seconds, "GB/s")

    count = 1000

    def allocate():
        for _ in range(count):
            torch.empty(1 << 20, dtype=torch.uint8, device="cuda")

    row("caching allocate + release, 1024 KiB", best_seconds(3, allocate) / count * 1e6, "µs")

    n = args.n
    inputs = [torch.full((n, n), 0.5).pin_memory() for _ in range(args.batches)]

    def serial():
        for x in inputs:
            y = x.to("cuda")
            (y @ y).cpu()

    row(f"serial copy, compute, copy: {args.batches} batches of {n}² fp32 SGEMM",
        best_seconds(args.reps, serial) * 1e3, "ms")


if __name__ == "__main__":
    main()
