"""Keypoint detection as an ONNX graph: `detection.py`'s steps 1-5, run by the runtime.

The numpy post-processing of a VGA score map (two 5x5 morphology passes,
masks, a partition over the candidates, the windows of the sub-pixel step,
the descriptor gather) costs several milliseconds on a 2-core CPU, as much as
a small network. The same steps are ONNX operators (MaxPool, Where, TopK,
Gather, GridSample, ReduceL2) that ONNX Runtime and OpenVINO run in their
own thread pools, so the models run them as a second session on the runtime
and device of the network (`models/edgepoint.py`).

Graph inputs:
  scores       (1, 1, Hp, Wp) float32  score probabilities (network output,
                                       possibly padded below/right)
  descriptors  (1, C, Hd, Wd) float32  unit descriptor map of stride `stride`
  size         (2,) int64              height, width of the valid region of scores
  k            (1,) int64              keypoints to keep (>= 1)
  threshold    (1,) float32            score threshold
  border       (1,) int64              border in pixels (clamped to half the size)
  subpixel     (1,) float32            1: soft-argmax refinement, 0: integer peaks
Graph outputs (K = min(k, h*w) rows, best first; rows whose score is -1 are
not keypoints and are dropped by the caller):
  keypoints    (K, 2) float32 x, y;  peak_scores (K,);  keypoint_descriptors (K, C)

The NMS radius is an attribute of MaxPool and the sub-pixel window, so there
is one graph per radius (`detection_graph_path`). Equivalence with the numpy
path: the same candidates, the same window, the same descriptor mapping
(GridSample, align_corners=0, border padding = numpy's clamp to the map);
only the order of equal scores and float rounding can differ
(test_detection.py compares both).
"""
from __future__ import annotations

from pathlib import Path

from .detection import SUBPIXEL_TEMPERATURE
from .paths import cache_dir, shipped_weights, written_atomically

GRAPH_VERSION = 1
OPSET = 17
SHIPPED_RADII = (2,)
INPUTS = ("scores", "descriptors", "size", "k", "threshold", "border", "subpixel")
OUTPUTS = ("keypoints", "peak_scores", "keypoint_descriptors")


def graph_name(nms_radius: int, stride: int) -> str:
    return f"detect-r{nms_radius}-s{stride}-v{GRAPH_VERSION}.onnx"


def detection_graph_path(nms_radius: int, stride: int = 8) -> Path:
    """The graph file for this radius: shipped for the default radius, else
    built once into the cache (needs the `onnx` package)."""
    name = graph_name(nms_radius, stride)
    shipped = shipped_weights(name)
    if shipped.is_file():
        return shipped
    target = cache_dir() / "models" / name
    if not target.is_file():
        model = build_detection_graph(nms_radius, stride)
        import onnx
        with written_atomically(target) as tmp:
            onnx.save(model, str(tmp))
    return target


def build_detection_graph(nms_radius: int, stride: int = 8):
    """The ONNX ModelProto of the detection graph (see module docstring)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if nms_radius < 1:
        raise ValueError(f"the detection graph needs nms_radius >= 1, got {nms_radius}")
    r = int(nms_radius)
    nodes, inits = [], []

    def const(name, value, dtype=None):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, list(inputs), [output], **attrs))
        return output

    i64, f32 = np.int64, np.float32
    c0, c1 = const("c0", [0], i64), const("c1", [1], i64)
    const("axes23", [2, 3], i64)
    const("zeros2", [0, 0], i64)
    # 1. crop to the valid region; local max / local min of the window
    s = node("Slice", ["scores", "zeros2", "size", "axes23"], "s")
    window = dict(kernel_shape=[2 * r + 1] * 2, strides=[1, 1], pads=[r] * 4)
    local_max = node("MaxPool", [s], "local_max", **window)
    neg = node("Neg", [s], "neg")
    neg_min = node("MaxPool", [neg], "neg_min", **window)
    local_min = node("Neg", [neg_min], "local_min")
    is_max = node("Equal", [s, local_max], "is_max")
    not_flat = node("Less", [local_min, s], "not_flat")
    above = node("GreaterOrEqual", [s, "threshold"], "above")
    cand = node("And", [is_max, not_flat], "cand0")
    cand = node("And", [cand, above], "cand1")
    # 2. border: b = min(border, h // 2, w // 2); keep b <= y < h - b, same for x
    h = node("Slice", ["size", c0, c1], "h")
    w = node("Slice", ["size", c1, const("c2", [2], i64)], "w")
    two = const("two", [2], i64)
    b = node("Min", ["border", node("Div", [h, two], "h2"), node("Div", [w, two], "w2")], "b")
    hs, ws = node("Squeeze", [h], "hs"), node("Squeeze", [w], "ws")
    zero_s, one_s = const("zero_s", 0, i64), const("one_s", 1, i64)
    ys = node("Range", [zero_s, hs, one_s], "ys")
    xs = node("Range", [zero_s, ws, one_s], "xs")

    def inside(coords, limit, tag):
        lo = node("GreaterOrEqual", [coords, b], f"{tag}_lo")
        hi = node("Less", [coords, node("Sub", [limit, b], f"{tag}_lim")], f"{tag}_hi")
        return node("And", [lo, hi], f"{tag}_in")

    y_in = node("Unsqueeze", [inside(ys, h, "y"), c1], "y_in2")      # (h, 1)
    x_in = node("Unsqueeze", [inside(xs, w, "x"), c0], "x_in2")      # (1, w)
    cand = node("And", [cand, node("And", [y_in, x_in], "in_border")], "cand")
    # 3. top-k of the candidates (non-candidates score -1)
    masked = node("Where", [cand, s, const("minus1", [-1.0], f32)], "masked")
    flat = node("Reshape", [masked, const("flat_shape", [-1], i64)], "flat")
    hw = node("Mul", [h, w], "hw")
    k = node("Min", ["k", hw], "k_eff")
    nodes.append(helper.make_node("TopK", [flat, k], ["peak_scores", "top_index"],
                                  axis=0, largest=1, sorted=1))
    py = node("Div", ["top_index", w], "py")
    px = node("Mod", ["top_index", w], "px")
    # 4. sub-pixel: softmax-weighted mean offset in the (2r+1)^2 window of the
    #    zero-padded map
    d = np.arange(-r, r + 1)
    dy, dx = (v.ravel() for v in np.meshgrid(d, d, indexing="ij"))
    padded = node("Pad", [s, const("pads", [0, 0, r, r, 0, 0, r, r], i64),
                          const("pad_value", 0.0, f32)], "padded")
    padded_flat = node("Reshape", [padded, const("flat_shape2", [-1], i64)], "padded_flat")
    pw = node("Add", [w, const("two_r", [2 * r], i64)], "pw")
    rows = node("Add", [node("Unsqueeze", [py, c1], "py2"), const("dy", (dy + r)[None], i64)],
                "rows")
    cols = node("Add", [node("Unsqueeze", [px, c1], "px2"), const("dx", (dx + r)[None], i64)],
                "cols")
    index = node("Add", [node("Mul", [rows, pw], "row_start"), cols], "window_index")
    patches = node("Gather", [padded_flat, index], "patches", axis=0)          # (K, 25)
    top = node("ReduceMax", [patches], "patch_max", axes=[1], keepdims=1)
    logits = node("Div", [node("Sub", [patches, top], "centred"),
                          const("temperature", SUBPIXEL_TEMPERATURE, f32)], "logits")
    weights = node("Softmax", [logits], "weights", axis=1)
    offsets = node("MatMul", [weights, const("dxdy", np.stack([dx, dy], 1), f32)], "offsets")
    offsets = node("Mul", [offsets, "subpixel"], "offsets_on")
    peaks = node("Concat", [node("Cast", ["px2"], "px2f", to=TensorProto.FLOAT),
                            node("Cast", ["py2"], "py2f", to=TensorProto.FLOAT)], "peaks", axis=1)
    node("Add", [peaks, offsets], "keypoints")
    # 5. descriptors: bilinear at (x + 0.5) / stride - 0.5 of the map, clamped
    #    to its edge (= GridSample, align_corners=0, border), L2-normalised
    map_size = node("Shape", ["descriptors"], "map_shape", start=2)             # (Hd, Wd)
    map_wh = node("Cast", [node("Concat", [node("Slice", [map_size, c1, const("c2b", [2], i64)],
                                                "wd"),
                                           node("Slice", [map_size, c0, c1], "hd")],
                                "map_wh", axis=0)], "map_whf", to=TensorProto.FLOAT)
    scale = node("Div", [const("two_f", [2.0], f32),
                         node("Mul", [map_wh, const("stride", [float(stride)], f32)], "extent")],
                 "grid_scale")
    grid = node("Sub", [node("Mul", [node("Add", ["keypoints", const("half", [0.5], f32)], "kp_c"),
                                     scale], "grid0"), const("one_f", [1.0], f32)], "grid1")
    grid = node("Unsqueeze", [grid, const("c01", [0, 1], i64)], "grid")         # (1, 1, K, 2)
    sampled = node("GridSample", ["descriptors", grid], "sampled", align_corners=0,
                   mode="bilinear", padding_mode="border")                       # (1, C, 1, K)
    desc = node("Transpose", [node("Squeeze", [sampled, const("c02", [0, 2], i64)], "desc_ck")],
                "desc_kc", perm=[1, 0])
    norm = node("ReduceL2", [desc], "desc_norm", axes=[1], keepdims=1)
    norm = node("Max", [norm, const("eps", [1e-12], f32)], "desc_norm_eps")
    node("Div", [desc, norm], "keypoint_descriptors")

    def tensor(name, dtype, shape):
        return helper.make_tensor_value_info(name, dtype, shape)

    graph = helper.make_graph(
        nodes, f"edgepoint_detection_r{r}",
        [tensor("scores", TensorProto.FLOAT, [1, 1, "Hp", "Wp"]),
         tensor("descriptors", TensorProto.FLOAT, [1, "C", "Hd", "Wd"]),
         tensor("size", TensorProto.INT64, [2]), tensor("k", TensorProto.INT64, [1]),
         tensor("threshold", TensorProto.FLOAT, [1]), tensor("border", TensorProto.INT64, [1]),
         tensor("subpixel", TensorProto.FLOAT, [1])],
        [tensor("keypoints", TensorProto.FLOAT, ["K", 2]),
         tensor("peak_scores", TensorProto.FLOAT, ["K"]),
         tensor("keypoint_descriptors", TensorProto.FLOAT, ["K", "C"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgepoint_ros")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_shipped_graphs() -> list[Path]:
    """(Re)write the graphs shipped in the package (`SHIPPED_RADII`)."""
    import onnx
    written = []
    for radius in SHIPPED_RADII:
        path = shipped_weights(graph_name(radius, 8))
        with written_atomically(path) as tmp:
            onnx.save(build_detection_graph(radius, 8), str(tmp))
        written.append(path)
    return written
