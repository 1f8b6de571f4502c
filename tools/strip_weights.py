#!/usr/bin/env python3
"""strip_weights: copies an ONNX model with its large float initializers replaced by the mean
and standard deviation of their values, so the GPU bundle can carry models over its size limit.

troupe fills a stripped initializer with uniform random values of those statistics, the same
ones on every load, and only when TROUPE_RANDOM_WEIGHTS=1: answers are meaningless, timings and
backend-against-backend comparisons are not.

  tools/strip_weights.py IN.onnx OUT.onnx [--min-bytes N]
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import numpy_helper

LOCATION = "troupe:random"  # runtime/stripped_weights.hpp: stripped_weights_location
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


def strip(model: onnx.ModelProto, min_bytes: int) -> tuple[int, int]:
    """Strips the float initializers of at least min_bytes; returns (count, bytes removed)."""
    count = removed = 0
    for init in model.graph.initializer:
        if init.data_type not in FLOAT_TYPES or init.data_location == onnx.TensorProto.EXTERNAL:
            continue
        values = numpy_helper.to_array(init)
        if values.nbytes < min_bytes:
            continue  # biases and BatchNorm statistics keep their values
        wide = values.astype(np.float64)
        mean, std = float(wide.mean()), float(wide.std())
        name, data_type, dims = init.name, init.data_type, list(init.dims)
        init.Clear()
        init.name, init.data_type = name, data_type
        init.dims.extend(dims)
        init.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", LOCATION), ("mean", repr(mean)), ("std", repr(std))):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
        count += 1
        removed += values.nbytes
    return count, removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source")
    ap.add_argument("target")
    ap.add_argument("--min-bytes", type=int, default=64 * 1024,
                    help="strip float initializers of at least this many bytes (65536)")
    args = ap.parse_args(argv)
    model = onnx.load(args.source, load_external_data=False)
    count, removed = strip(model, args.min_bytes)
    # The bytes as they are: onnx.save would try to resolve the external data entries.
    with open(args.target, "wb") as f:
        f.write(model.SerializeToString())
    print(f"strip_weights: {args.target}: {count} initializers, {removed / 2**20:.1f} MiB stripped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
