#!/usr/bin/env python3
"""Writes the seed corpus of the ONNX importer fuzz target: small valid models troupe can run.

Usage: /usr/bin/python3 tools/make_fuzz_corpus.py tests/fuzz/corpus/onnx_import
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = {
        "conv_relu": model(
            [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])],
            [f32("x", ["N", 2, 5, 5])], [f32("y", ["N", 3, 5, 5])],
            [const("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32)),
             const("b", np.zeros(3, np.float32))]),
        "gemm_softmax": model(
            [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"], axis=-1)],
            [f32("x", ["N", 4])], [f32("y", ["N", 3])],
            [const("w", rng.standard_normal((3, 4)).astype(np.float32))]),
        "reshape_transpose": model(
            [helper.make_node("Reshape", ["x", "s"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1])],
            [f32("x", [2, 6])], [f32("y", [2, 3, 2])],
            [const("s", np.array([2, 2, 3], np.int64))]),
        "shape_gather_concat": model(
            [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i"], ["d"], axis=0),
             helper.make_node("Concat", ["d", "m"], ["t"], axis=0),
             helper.make_node("Reshape", ["x", "t"], ["y"])],
            [f32("x", ["N", 2, 3])], [f32("y", ["N", 6])],
            [const("i", np.array([0], np.int64)), const("m", np.array([-1], np.int64))]),
        "add_mul_broadcast": model(
            [helper.make_node("Add", ["x", "a"], ["s"]),
             helper.make_node("Mul", ["s", "x"], ["y"])],
            [f32("x", [2, 3])], [f32("y", [2, 3])],
            [const("a", np.array([1, 2, 3], np.float32))]),
        "pool_bn": model(
            [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["p", "sc", "bi", "mu", "va"], ["y"])],
            [f32("x", [1, 2, 4, 4])], [f32("y", [1, 2, 2, 2])],
            [const("sc", np.ones(2, np.float32)), const("bi", np.zeros(2, np.float32)),
             const("mu", np.zeros(2, np.float32)), const("va", np.ones(2, np.float32))]),
    }
    for name, m in cases.items():
        onnx.checker.check_model(m)
        with open(os.path.join(out_dir, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
    print(f"wrote {len(cases)} models to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/onnx_import")
