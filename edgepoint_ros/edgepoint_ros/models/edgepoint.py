"""EdgePoint as a FeatureModel: ONNX graph through a runtime + numpy post-processing.

Run time needs no PyTorch: the network runs as ONNX on the runtime/device the
config names (`edgepoint_ros.runtimes`), detection and descriptor sampling are
`edgepoint_ros.detection`.

Weights (`config.weights`):
* empty      -> the weights shipped in the package for `config.model_size`
                (`weights/edgepoint.onnx` for the medium, `edgepoint-small.onnx`,
                `edgepoint-tiny.onnx`, each exported from the `.pt` beside it,
                trained by this project);
* *.onnx     -> used as is (must have EdgePoint's inputs/outputs);
* *.pt/.pth  -> a PyTorch checkpoint (ours, or the authors' released
                `EdgePoint.pt`), exported once to ONNX in the cache directory
                (needs PyTorch on that machine).

Image pyramid (`pyramid_levels` > 1): the network also runs on the image
shrunk by `pyramid_scale`, `pyramid_scale`^2, ...; each level's keypoints are
detected at that level, their descriptors sampled from that level's map, and
their positions mapped to original pixels (pixel centres). The max_keypoints
best scores of all levels are kept. A scene zoomed out by 0.5 in one image
is then also seen at about the scale the other image shows it, which is what
wide zoom changes (the Oxford boat sequence) need; on the held-out
validation set's zoom sequences (scale to 0.36, rotation to 90 degrees) the
edgepoint-v5 weights register 33 % of the pairs on one level and 45 % on three.
As in SIFT's scale space, a corner found on several levels is kept once per
level (no suppression across levels): each copy carries the descriptor of
its scale, which is what lets a zoomed view match; with a small
max_keypoints these copies share the budget. (Measured: 61-82 % of the
keypoints of an Oxford image have a copy within 3 px; dropping each peak that
has a stronger one of another level within 2, 3 or 4 px cut Oxford MMA@3 of
edgepoint-v21 from 45.4 to 39.0, 37.9 and 36.7, and MHA@3 over 10 RANSAC
orders from 62.5 to 60.0, 57.5 and 59.0: the copies match each other.)
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..config import ExtractorConfig
from ..descriptors import apply_descriptor_setting
from ..detection import find_peaks, refine_peaks, sample_descriptors
from ..features import Features
from ..paths import cache_dir, shipped_weights, written_atomically
from .base import FeatureModel, as_bgr8

DESCRIPTOR_STRIDE = 8
INPUT_MULTIPLE = 32
MIN_LEVEL_SIDE = 64      # pyramid levels smaller than this (either side) are skipped


def shipped_stem(size: str = "medium") -> str:
    """File name stem of a size's shipped weights (the medium keeps the first name)."""
    return "edgepoint" if size == "medium" else f"edgepoint-{size}"


SHIPPED_CHECKPOINT = shipped_stem() + ".pt"
SHIPPED_ONNX = shipped_stem() + ".onnx"


class _Level(NamedTuple):
    """One pyramid level's network outputs and its peaks (find_peaks)."""
    score_map: np.ndarray         # (h, w) at the level's size
    descriptor_map: np.ndarray    # (C, h/8, w/8), or (h/8, w/8, C) when channels_last
    channels_last: bool
    size: tuple[int, int]         # (width, height) of the level
    xs: np.ndarray
    ys: np.ndarray
    scores: np.ndarray            # sorted, highest first


def default_checkpoint(size: str = "medium") -> Path:
    path = shipped_weights(shipped_stem(size) + ".pt")
    if not path.is_file():
        raise FileNotFoundError(f"no EdgePoint {size} weights shipped at {path}; train them "
                                "(python -m edgepoint_ros.cli.train) or pass weights:=PATH")
    return path


def resolve_onnx(weights: str, size: str = "medium") -> Path:
    """The ONNX file to run for a `weights` setting (see module docstring)."""
    if not weights:
        path = shipped_weights(shipped_stem(size) + ".onnx")
        if not path.is_file():
            raise FileNotFoundError(
                f"shipped EdgePoint {size} ONNX model missing: {path}; run "
                f"python -m edgepoint_ros.cli.export_onnx --model edgepoint --size {size}")
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"EdgePoint weights not found: {path}")
    if path.suffix == ".onnx":
        return path
    if path.suffix not in (".pt", ".pth"):
        raise ValueError(f"EdgePoint weights must be .onnx, .pt or .pth; got {path.name}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    onnx_path = cache_dir() / f"edgepoint-{path.stem}-{digest}.onnx"
    if not onnx_path.is_file():
        try:
            from .edgepoint_net import export_onnx
        except ImportError as exc:
            raise RuntimeError(f"{path} is a PyTorch checkpoint and PyTorch is not installed "
                               "here; export it to ONNX on a machine with PyTorch "
                               "(python -m edgepoint_ros.cli.export_onnx --model edgepoint "
                               f"--weights {path}) and pass the .onnx file") from exc
        with written_atomically(onnx_path) as tmp:
            export_onnx(path, tmp)
    return onnx_path


def torch_network(config: ExtractorConfig):
    """The network as a PyTorch module computing what the ONNX graph computes
    (for the torch reference runtime): (module, input names, output names)."""
    from .edgepoint_net import ExportWrapper, load_weights
    weights = config.weights
    if weights and Path(weights).suffix == ".onnx":
        raise ValueError("runtime 'torch' needs PyTorch weights (.pt/.pth); "
                         f"{Path(weights).name} is an ONNX file")
    net = load_weights(weights or default_checkpoint(config.model_size))
    return ExportWrapper(net).eval(), ["image"], ["scores", "descriptors"]


class EdgePointModel(FeatureModel):
    name = "edgepoint"
    descriptor_dim = 64
    descriptor_type = "float32"

    def __init__(self, config: ExtractorConfig):
        from ..runtimes import create_session
        self.config = config
        self.detector = None
        self.descriptor_type = "binary" if config.binary_descriptors else "float32"
        self.onnx_path = resolve_onnx(config.weights, config.model_size)
        self.session = create_session(str(self.onnx_path), config,
                                      torch_network=lambda: torch_network(config),
                                      layout=self._layout(config))
        missing = {"image"} - set(self.session.input_names)
        if missing or not {"scores", "descriptors"} <= set(self.session.output_names):
            raise ValueError(f"{self.onnx_path} is not an EdgePoint model: inputs "
                             f"{self.session.input_names}, outputs {self.session.output_names}"
                             " (expected image -> scores, descriptors)")
        if config.postprocess == "graph":
            self.detector = self._open_detector(config)

    def _open_detector(self, config: ExtractorConfig):
        """The detection graph's session, on the runtime and device the network
        really runs on, in fp32 (its outputs are positions and unit vectors)."""
        from dataclasses import replace

        from ..detection_graph import detection_graph_path
        from ..runtimes import create_session
        info = self.session.info()
        runtime, device = info.get("runtime", "onnxruntime"), info.get("device", "cpu")
        if runtime == "torch":       # the reference runtime runs no ONNX graph
            runtime, device = "onnxruntime", "cuda" if device == "cuda" else "cpu"
        return create_session(str(detection_graph_path(config.nms_radius, DESCRIPTOR_STRIDE)),
                              replace(config, runtime=runtime, device=device, precision="fp32"))
    def runtime_info(self) -> dict:
        return self.session.info()

    # Settings read at extract time; changing only these needs no new session.
    LIVE_SETTINGS = ("max_keypoints", "score_threshold", "nms_radius", "border", "subpixel",
                     "resize_width", "resize_height", "binary_descriptors",
                     "pyramid_levels", "pyramid_scale")

    def reconfigure(self, config: ExtractorConfig) -> bool:
        changed = {name for name, value in config.as_dict().items()
                   if getattr(self.config, name) != value}
        if not changed <= set(self.LIVE_SETTINGS):
            return False
        if config.postprocess == "graph" and "nms_radius" in changed:
            return False    # one detection graph per radius
        self.config = config.validate()
        self.descriptor_type = "binary" if config.binary_descriptors else "float32"
        return True

    @staticmethod
    def _layout(config: ExtractorConfig):
        """The frame goes in as uint8 BGR where the runtime converts it; with
        numpy post-processing the descriptor map may come channels-last (what
        sampling gathers rows from); the detection graph reads it NCHW."""
        from ..runtimes import SessionLayout
        return SessionLayout(bgr8_image=True, channels_last=(
            ("descriptors",) if config.postprocess == "numpy" else ()))

    def _check_channels(self, outputs) -> None:
        last = "descriptors" in self.session.channels_last_outputs
        channels = outputs["descriptors"].shape[3 if last else 1]
        if channels != self.descriptor_dim:  # right names, wrong network
            raise ValueError(f"{self.onnx_path} is not an EdgePoint model: its descriptors "
                             f"have {channels} channels, EdgePoint's have {self.descriptor_dim}")

    def _extract_with_graph(self, bgr: np.ndarray, timings: dict) -> Features:
        """extract() with detection in the detection graph: each level gives its
        best max_keypoints, refined and described; the merge keeps the best of all."""
        c = self.config
        height, width = bgr.shape[:2]
        parts = []
        for lw, lh in self.level_sizes(width, height):
            t0 = time.perf_counter()
            level = bgr if (lw, lh) == (width, height) else cv2.resize(
                bgr, (lw, lh), interpolation=cv2.INTER_AREA)
            tensor = self.network_input(level)
            t1 = time.perf_counter()
            outputs = self.session.run({"image": tensor})
            t2 = time.perf_counter()
            self._check_channels(outputs)
            found = self.detector.run({
                "scores": outputs["scores"], "descriptors": outputs["descriptors"],
                "size": np.array([lh, lw], np.int64),
                "k": np.array([c.max_keypoints or lw * lh], np.int64),
                "threshold": np.array([c.score_threshold], np.float32),
                "border": np.array([c.border], np.int64),
                "subpixel": np.array([1.0 if c.subpixel else 0.0], np.float32)})
            keep = found["peak_scores"] >= 0          # -1: fewer candidates than k
            points = found["keypoints"][keep]
            if (lw, lh) != (width, height):   # level pixels -> original pixels (centres)
                points = (points + 0.5) * np.array([width / lw, height / lh], np.float32) - 0.5
            parts.append((points, found["peak_scores"][keep],
                          found["keypoint_descriptors"][keep]))
            timings["preprocess"] += (t1 - t0) * 1e3
            timings["inference"] += (t2 - t1) * 1e3
            timings["postprocess"] += (time.perf_counter() - t2) * 1e3
        t0 = time.perf_counter()
        keypoints, scores, descriptors = (np.concatenate(arrays) for arrays in zip(*parts))
        order = np.argsort(-scores, kind="stable")
        if c.max_keypoints:
            order = order[:c.max_keypoints]
        features = Features(keypoints[order], scores[order], descriptors[order],
                            (width, height), "float32", self.descriptor_dim, timings)
        timings["postprocess"] += (time.perf_counter() - t0) * 1e3
        return apply_descriptor_setting(features, c.binary_descriptors)

    def level_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """Network input sizes (width, height) of the pyramid levels for an
        image of width x height: the resize size (or native size) first, then
        each level `pyramid_scale` times the previous one; levels smaller than
        MIN_LEVEL_SIDE are skipped."""
        c = self.config
        w, h = (c.resize_width, c.resize_height) if c.resize_width else (width, height)
        sizes = [(w, h)]
        for level in range(1, c.pyramid_levels):
            factor = c.pyramid_scale ** level
            lw, lh = int(round(w * factor)), int(round(h * factor))
            if min(lw, lh) < MIN_LEVEL_SIDE:
                break
            sizes.append((lw, lh))
        return sizes

    @staticmethod
    def to_tensor(bgr: np.ndarray) -> np.ndarray:
        """BGR image -> (1,3,H32,W32) RGB float32 [0,1], zero-padded to multiples of 32.

        One pass: the channel-reversed planes are scaled straight into the
        network's buffer (the same float32 products as converting, then
        scaling; no intermediate RGB or float copies of the frame)."""
        h, w = bgr.shape[:2]
        ph, pw = -h % INPUT_MULTIPLE, -w % INPUT_MULTIPLE
        tensor = (np.zeros if ph or pw else np.empty)((1, 3, h + ph, w + pw), np.float32)
        np.multiply(bgr.transpose(2, 0, 1)[::-1], np.float32(1.0 / 255.0),
                    out=tensor[0, :, :h, :w])
        return tensor

    def network_input(self, bgr: np.ndarray) -> np.ndarray:
        """What the session's `image` takes: the frame itself when the runtime
        converts it (uint8 BGR (1, H32, W32, 3), `session.takes_bgr8`), else
        `to_tensor`'s float RGB."""
        if not self.session.takes_bgr8:
            return self.to_tensor(bgr)
        h, w = bgr.shape[:2]
        ph, pw = -h % INPUT_MULTIPLE, -w % INPUT_MULTIPLE
        if ph or pw:
            bgr = cv2.copyMakeBorder(bgr, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        return np.ascontiguousarray(bgr)[None]

    def extract(self, image: np.ndarray) -> Features:
        """Keypoints of every pyramid level (one level unless pyramid_levels > 1),
        mapped to original-image pixels, merged and cut to the max_keypoints
        highest scores. The peaks of all levels are ranked first; only the
        ones kept are refined and described."""
        c = self.config
        timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        bgr = as_bgr8(image)
        height, width = bgr.shape[:2]
        if self.detector is not None:
            return self._extract_with_graph(bgr, timings)
        levels: list[_Level] = []
        sizes = self.level_sizes(width, height)
        # One level's outputs are used before the next run; levels of one
        # padded shape would share the runtime's output buffers, so a pyramid
        # takes copies.
        copy = len(sizes) > 1
        channels_last = "descriptors" in self.session.channels_last_outputs
        for lw, lh in sizes:
            t0 = time.perf_counter()
            level = bgr if (lw, lh) == (width, height) else cv2.resize(
                bgr, (lw, lh), interpolation=cv2.INTER_AREA)
            tensor = self.network_input(level)
            t1 = time.perf_counter()
            outputs = self.session.run({"image": tensor}, copy=copy)
            t2 = time.perf_counter()
            self._check_channels(outputs)
            score_map = outputs["scores"][0, 0, :lh, :lw]
            peaks = find_peaks(score_map, nms_radius=c.nms_radius,
                               score_threshold=c.score_threshold,
                               max_keypoints=c.max_keypoints, border=c.border)
            levels.append(_Level(score_map, outputs["descriptors"][0], channels_last, (lw, lh),
                                 *peaks))
            timings["preprocess"] += (t1 - t0) * 1e3
            timings["inference"] += (t2 - t1) * 1e3
            timings["postprocess"] += (time.perf_counter() - t2) * 1e3
        t0 = time.perf_counter()
        keypoints, scores, descriptors = self._keep_best(levels, width, height)
        timings["postprocess"] += (time.perf_counter() - t0) * 1e3
        features = Features(keypoints, scores, descriptors, (width, height), "float32",
                            self.descriptor_dim, timings)
        return apply_descriptor_setting(features, c.binary_descriptors)

    def _keep_best(self, levels: list[_Level], width: int, height: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The max_keypoints best peaks of all levels, ranked together, then
        refined, described and mapped to original-image pixels: (keypoints,
        scores, descriptors)."""
        c = self.config
        radius = c.nms_radius if c.subpixel else 0
        if len(levels) == 1 and levels[0].size == (width, height):
            # one full-size level: its peaks are already ranked and cut
            lv = levels[0]
            keypoints = refine_peaks(lv.score_map, lv.xs, lv.ys, radius)
            return keypoints, lv.scores, sample_descriptors(
                lv.descriptor_map, keypoints, DESCRIPTOR_STRIDE, channels_last=lv.channels_last)
        # rank all levels' peaks (levels in order, each sorted: ties keep that order)
        level_of = np.concatenate([np.full(len(lv.scores), i) for i, lv in enumerate(levels)])
        index_in_level = np.concatenate([np.arange(len(lv.scores)) for lv in levels])
        order = np.argsort(-np.concatenate([lv.scores for lv in levels]), kind="stable")
        if c.max_keypoints:
            order = order[:c.max_keypoints]
        order_level, order_index = level_of[order], index_in_level[order]
        keypoints = np.zeros((len(order), 2), np.float32)
        scores = np.zeros(len(order), np.float32)
        descriptors = np.zeros((len(order), self.descriptor_dim), np.float32)
        for i, lv in enumerate(levels):
            rows = np.flatnonzero(order_level == i)      # output rows from this level
            kept = order_index[rows]
            points = refine_peaks(lv.score_map, lv.xs[kept], lv.ys[kept], radius)
            descriptors[rows] = sample_descriptors(lv.descriptor_map, points, DESCRIPTOR_STRIDE,
                                                   channels_last=lv.channels_last)
            lw, lh = lv.size
            if (lw, lh) != (width, height):   # level pixels -> original pixels (centres)
                points = ((points + 0.5) * np.array([width / lw, height / lh], np.float32)
                          - 0.5)
            keypoints[rows] = points
            scores[rows] = lv.scores[kept]
        return keypoints, scores, descriptors
