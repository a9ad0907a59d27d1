"""Settings of a feature extractor, shared by the nodes, the CLIs and the benchmarks.

The ROS parameter YAML files in `config/` carry exactly these fields (the
extractor node declares one ROS parameter per field), so one name means one
thing everywhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODELS = ("edgepoint", "xfeat", "orb", "sift")
RUNTIMES = ("auto", "onnxruntime", "openvino", "torch")
DEVICES = ("auto", "cpu", "cuda", "tensorrt", "gpu", "npu")
PRECISIONS = ("fp32", "fp16", "int8")
# EdgePoint sizes (models/edgepoint_net.py SIZES holds their architectures)
EDGEPOINT_SIZES = ("tiny", "small", "medium")
POSTPROCESS = ("numpy", "graph")
# Bounds beyond which a setting is a mistake, not a choice: an NMS window of
# (2 * 100 + 1)^2 pixels already costs more than the network; no network input
# is smaller than one 32-pixel cell or larger than a 16K frame.
MAX_NMS_RADIUS = 100
MIN_RESIZE, MAX_RESIZE = 32, 16384
MAX_PYRAMID_LEVELS = 8
PYRAMID_MODELS = ("edgepoint",)   # ORB and SIFT build their own scale pyramids


class Settings:
    """What every settings dataclass (ExtractorConfig, tracking.TrackerConfig)
    offers: its field names (one ROS parameter each), a plain dict, and
    construction from a mapping that refuses unknown names. A subclass names
    itself in SETTINGS_NAME and implements validate()."""

    SETTINGS_NAME = "settings"

    def validate(self):
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: dict):
        unknown = set(values) - set(cls.field_names())
        if unknown:
            raise ValueError(f"unknown {cls.SETTINGS_NAME}: {', '.join(sorted(unknown))}")
        return cls(**values).validate()


@dataclass
class ExtractorConfig(Settings):
    SETTINGS_NAME = "extractor settings"

    # Which network or baseline: edgepoint | xfeat | orb | sift.
    model: str = "edgepoint"
    # EdgePoint size: tiny | small | medium (the released architecture); picks
    # the shipped weights when `weights` is empty. Other models ignore it.
    model_size: str = "small"
    # Path to weights: an ONNX file, or a PyTorch checkpoint (.pt/.pth, e.g. the
    # authors' released EdgePoint.pt). Empty: the weights shipped with the package.
    weights: str = ""
    # Inference runtime: auto | onnxruntime | openvino | torch (torch: reference, needs PyTorch).
    runtime: str = "auto"
    # Device: auto | cpu | cuda | tensorrt (ONNX Runtime) | gpu | npu (OpenVINO).
    device: str = "auto"
    # When the requested runtime/device cannot run: True = fall back to CPU and
    # warn, False = fail with an error naming what is missing.
    fallback: bool = True
    # Numeric precision of the network: fp32 | fp16 | int8 (int8: calibrated
    # once on offline images and cached; `prepare_models` builds it ahead).
    precision: str = "int8"
    # Keep at most this many keypoints (highest scores first); 0 = no limit.
    max_keypoints: int = 1024
    # Keep keypoints whose score is at least this (model's score scale).
    score_threshold: float = 0.0
    # Non-maximum suppression radius in pixels of the network input.
    nms_radius: int = 2
    # Discard keypoints closer than this many pixels to the image border.
    border: int = 4
    # Sub-pixel refinement of keypoint positions.
    subpixel: bool = True
    # Resize the image to this size before the network (0 = keep native size);
    # keypoints are always reported in original-image pixels.
    resize_width: int = 0
    resize_height: int = 0
    # Image pyramid (edgepoint): detect on this many levels, each pyramid_scale
    # times the size of the previous one, and keep the max_keypoints best of
    # all levels. 1 = the image size only. More levels find the same points
    # across larger zoom changes, at about 1 + s^2 + s^4 ... times the cost.
    pyramid_levels: int = 1
    pyramid_scale: float = 0.7
    # Where detection runs (NMS, threshold, top-k, sub-pixel, descriptor
    # sampling; edgepoint): numpy (fastest on a CPU) | graph (ONNX operators on
    # the network's runtime and device, for GPUs; detection_graph.py).
    postprocess: str = "numpy"
    # Publish sign-binarised, bit-packed descriptors (Hamming matching).
    binary_descriptors: bool = False
    # CPU threads for the runtime (0 = runtime default).
    num_threads: int = 0

    def validate(self) -> "ExtractorConfig":
        def one_of(name, value, allowed):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        one_of("model", self.model, MODELS)
        one_of("model_size", self.model_size, EDGEPOINT_SIZES)
        one_of("runtime", self.runtime, RUNTIMES)
        one_of("device", self.device, DEVICES)
        one_of("precision", self.precision, PRECISIONS)
        one_of("postprocess", self.postprocess, POSTPROCESS)
        for name in ("max_keypoints", "nms_radius", "border", "resize_width", "resize_height",
                     "num_threads"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if (self.resize_width == 0) != (self.resize_height == 0):
            raise ValueError("resize_width and resize_height must be both 0 (native size) "
                             f"or both > 0; got {self.resize_width}x{self.resize_height}")
        if self.score_threshold != self.score_threshold:  # NaN
            raise ValueError("score_threshold must be a number, got NaN")
        if not 0.0 <= self.score_threshold < float("inf"):
            raise ValueError("score_threshold must be >= 0 and finite (scores are "
                             f"probabilities or detector responses); got {self.score_threshold}")
        if self.postprocess == "graph" and self.nms_radius < 1:
            raise ValueError("postprocess graph needs nms_radius >= 1 (its NMS is a max-pool); "
                             "use postprocess numpy for nms_radius 0")
        if self.nms_radius > MAX_NMS_RADIUS:
            raise ValueError(f"nms_radius must be <= {MAX_NMS_RADIUS} pixels; got "
                             f"{self.nms_radius}")
        if not 1 <= self.pyramid_levels <= MAX_PYRAMID_LEVELS:
            raise ValueError(f"pyramid_levels must be in [1, {MAX_PYRAMID_LEVELS}]; got "
                             f"{self.pyramid_levels}")
        if not 0.25 <= self.pyramid_scale < 1.0:
            raise ValueError("pyramid_scale (size of a level relative to the one above) must be "
                             f"in [0.25, 1); got {self.pyramid_scale}")
        if self.pyramid_levels > 1 and self.model not in PYRAMID_MODELS:
            raise ValueError(f"pyramid_levels > 1 is implemented for {', '.join(PYRAMID_MODELS)}"
                             f", not {self.model} (orb and sift have their own scale pyramids)")
        for name in ("resize_width", "resize_height"):
            value = getattr(self, name)
            if value and not MIN_RESIZE <= value <= MAX_RESIZE:
                raise ValueError(f"{name} must be 0 (native size) or in [{MIN_RESIZE}, "
                                 f"{MAX_RESIZE}] pixels; got {value}")
        return self
