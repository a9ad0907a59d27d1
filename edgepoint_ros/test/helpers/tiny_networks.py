"""A tiny image network as an ONNX file, for the runtime and quantization tests.

Same interface as EdgePoint's graph, at a fraction of the cost: input `image`
(N, 3, H, W) float32 with dynamic N/H/W; outputs `scores` (N, 1, H, W), a
sigmoid map, and `descriptors` (N, 8, H/8, W/8). Weights are fixed random
numbers (seeded), so every runtime must produce the same outputs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_network(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)

    def weight(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)

    initializers = [weight("w1", (4, 3, 3, 3)), weight("b1", (4,)),
                    weight("w_score", (1, 4, 1, 1)), weight("b_score", (1,)),
                    weight("w_desc", (8, 4, 1, 1))]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="stem_relu"),
        helper.make_node("Conv", ["r1", "w_score", "b_score"], ["logits"], name="score_head"),
        helper.make_node("Sigmoid", ["logits"], ["scores"], name="score_sigmoid"),
        helper.make_node("MaxPool", ["r1"], ["pooled"], name="pool", kernel_shape=[8, 8],
                         strides=[8, 8]),
        helper.make_node("Conv", ["pooled", "w_desc"], ["descriptors"], name="descriptor_head"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 1, "height", "width"]),
         helper.make_tensor_value_info("descriptors", TensorProto.FLOAT,
                                       ["batch", 8, "height8", "width8"])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_input(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, height, width), dtype=np.float32)
