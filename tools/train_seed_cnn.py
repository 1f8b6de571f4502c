#!/usr/bin/env python3
"""Trains the seed CNN on Fashion-MNIST and writes the bundled model repository entry.

    /usr/bin/python3 tools/train_seed_cnn.py [--out models/seed_cnn/1/model.onnx] [--epochs 8]

Reproduces models/seed_cnn/1/model.onnx: fixed seeds, Debian's dataset-fashion-mnist files,
inputs normalized as (x / 255 - 0.2860) / 0.3530 (the training set's mean and std, which the
load scenarios use too). Prints the test accuracy on the 10,000 test images.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import SeedCNN  # noqa: E402  (the same architecture the tests export)

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str):
    images = read_idx(f"{DATA}/{split}-images-idx3-ubyte.gz").astype(np.float32)
    labels = read_idx(f"{DATA}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    x = torch.from_numpy((images / 255.0 - MEAN) / STD).unsqueeze(1)
    return x, torch.from_numpy(labels)


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).float().mean())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/seed_cnn/1/model.onnx")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(2)
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    model = SeedCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
        sched.step()
        print(f"epoch {epoch + 1}: test accuracy {accuracy(model, x_test, y_test):.4f}", flush=True)

    acc = accuracy(model, x_test, y_test)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    model.eval()
    torch.onnx.export(model, (x_test[:1],), args.out, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes); test accuracy {acc:.4f}")
    return 0 if acc >= 0.89 else 1


if __name__ == "__main__":
    sys.exit(main())
