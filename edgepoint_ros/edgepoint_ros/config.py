"""Settings of a feature extractor, shared by the nodes, the CLIs and the benchmarks.

Each setting is declared once, as a dataclass field made by `setting()`: its
default, its meaning, and the values it takes (choices, bounds). `validate()`
checks those generically, `ros/parameters.py` turns the same metadata into the
ROS parameters (description, choices, bounds), and the ROS parameter YAML files
in `config/` carry exactly these fields, so one name means one thing
everywhere. Cross-field rules stay explicit in each class's `validate()`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields

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

SETTING = "setting"  # the dataclass field metadata key that holds a Setting


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed_values(choices=(), minimum=None, maximum=None, below=None, zero: str = "") -> str:
    """The accepted values in words ('' when anything of the type goes):
    'one of a, b', 'in [1, 8]', 'in [0.25, 1)', '>= 0 (0 = no limit)',
    '0 (native size) or in [32, 16384]'."""
    if choices:
        return "one of " + ", ".join(map(str, choices))
    upper = (f"{_number(maximum)}]" if maximum is not None
             else f"{_number(below)})" if below is not None else None)
    if minimum is not None and upper is not None:
        text = f"in [{_number(minimum)}, {upper}"
    elif minimum is not None:
        text = f">= {_number(minimum)}"
    elif maximum is not None:
        text = f"<= {_number(maximum)}"
    elif below is not None:
        text = f"< {_number(below)}"
    else:
        text = ""
    if zero and text:
        outside = minimum is not None and minimum > 0
        text = f"0 ({zero}) or {text}" if outside else f"{text} (0 = {zero})"
    return text


@dataclass(frozen=True)
class Setting:
    """What one settings field means and which values it takes (the metadata
    `setting()` puts on the field).

    minimum and maximum are inclusive, below is an exclusive upper bound;
    zero says what 0 means, and 0 is accepted even when minimum is above it.
    """

    meaning: str
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    zero: str = ""

    def __post_init__(self):
        if self.maximum is not None and self.below is not None:
            raise ValueError("setting: give maximum or below, not both")
        object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def description(self) -> str:
        """The meaning, with what 0 means (the ROS parameter's description)."""
        return f"{self.meaning} 0 = {self.zero}." if self.zero else self.meaning

    @property
    def bounded(self) -> bool:
        return any(b is not None for b in (self.minimum, self.maximum, self.below))

    def allowed(self) -> str:
        return allowed_values(self.choices, self.minimum, self.maximum, self.below, self.zero)

    def problem(self, name: str, value) -> str | None:
        """None when `value` is acceptable, else the reason it is not."""
        if self.choices:
            if value not in self.choices:
                return f"{name} must be {self.allowed()}; got {value!r}"
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be a finite number; got {value!r}"
        if not self.bounded:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"{name} must be a number; got {value!r}"
        if self.zero and value == 0:
            return None
        if ((self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)
                or (self.below is not None and value >= self.below)):
            return f"{name} must be {self.allowed()}; got {value!r}"
        return None


def setting(default, meaning: str, *, choices: tuple = (), minimum=None, maximum=None,
            below=None, zero: str = ""):
    """A settings dataclass field: its default, what it means (one or more
    sentences; `zero` adds what 0 means) and the values it takes."""
    return field(default=default, metadata={SETTING: Setting(
        meaning, choices, minimum, maximum, below, zero)})


class Settings:
    """What every settings dataclass (ExtractorConfig, tracking.TrackerConfig)
    offers: its field names (one ROS parameter each), each field's Setting, a
    plain dict, construction from a mapping that refuses unknown names, and a
    validate() that checks every field against its Setting. A subclass names
    itself in SETTINGS_NAME, declares its fields with setting() and extends
    validate() with its cross-field rules."""

    SETTINGS_NAME = "settings"

    def validate(self):
        for name, info in self.settings().items():
            problem = info.problem(name, getattr(self, name))
            if problem:
                raise ValueError(problem)
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        """{field name: its Setting}, in field order."""
        found = {}
        for f in fields(cls):
            if SETTING not in f.metadata:
                raise TypeError(f"{cls.__name__}.{f.name} is declared without setting()")
            found[f.name] = f.metadata[SETTING]
        return found

    @classmethod
    def from_mapping(cls, values: dict):
        unknown = set(values) - set(cls.field_names())
        if unknown:
            raise ValueError(f"unknown {cls.SETTINGS_NAME}: {', '.join(sorted(unknown))}")
        return cls(**values).validate()


@dataclass
class ExtractorConfig(Settings):
    SETTINGS_NAME = "extractor settings"

    model: str = setting(
        "edgepoint", "Which network or baseline extracts the features: edgepoint or xfeat "
        "(learned), orb or sift (OpenCV).", choices=MODELS)
    model_size: str = setting(
        "small", "EdgePoint size: tiny, small or medium (the released architecture); picks "
        "the shipped weights when `weights` is empty. Other models ignore it.",
        choices=EDGEPOINT_SIZES)
    weights: str = setting(
        "", "Path to weights: an ONNX file, or a PyTorch checkpoint (.pt/.pth, e.g. the "
        "authors' released EdgePoint.pt). Empty: the weights shipped with the package.")
    runtime: str = setting(
        "auto", "Inference runtime: auto, onnxruntime, openvino or torch (torch: the "
        "reference, needs PyTorch).", choices=RUNTIMES)
    device: str = setting(
        "auto", "Device: auto, cpu, cuda or tensorrt (ONNX Runtime), gpu or npu (OpenVINO).",
        choices=DEVICES)
    fallback: bool = setting(
        True, "When the requested runtime/device cannot run: true = fall back to the CPU and "
        "warn, false = fail with an error naming what is missing.")
    precision: str = setting(
        "int8", "Numeric precision of the network: fp32, fp16 or int8 (int8: calibrated once "
        "on offline images and cached; `prepare_models` builds it ahead).", choices=PRECISIONS)
    max_keypoints: int = setting(
        1024, "Keep at most this many keypoints (highest scores first).",
        minimum=0, zero="no limit")
    score_threshold: float = setting(
        0.0, "Keep keypoints whose score is at least this (the model's score scale: "
        "probabilities or detector responses).", minimum=0.0)
    nms_radius: int = setting(
        2, "Non-maximum suppression radius in pixels of the network input.",
        minimum=0, maximum=MAX_NMS_RADIUS)
    border: int = setting(
        4, "Discard keypoints closer than this many pixels to the image border.", minimum=0)
    subpixel: bool = setting(True, "Sub-pixel refinement of keypoint positions.")
    resize_width: int = setting(
        0, "Width the image is resized to before the network, with resize_height (both 0 or "
        "both set); keypoints are always reported in original-image pixels.",
        minimum=MIN_RESIZE, maximum=MAX_RESIZE, zero="native size")
    resize_height: int = setting(
        0, "Height the image is resized to before the network, with resize_width (both 0 "
        "or both set); keypoints are always reported in original-image pixels.",
        minimum=MIN_RESIZE, maximum=MAX_RESIZE, zero="native size")
    pyramid_levels: int = setting(
        1, "Image pyramid (edgepoint): detect on this many levels, each pyramid_scale times "
        "the size of the previous one, and keep the max_keypoints best of all levels. 1 = "
        "the image size only. More levels find the same points across larger zoom changes, "
        "at about 1 + s^2 + s^4 ... times the cost.", minimum=1, maximum=MAX_PYRAMID_LEVELS)
    pyramid_scale: float = setting(
        0.7, "Image pyramid (pyramid_levels > 1): the size s of each level relative to the "
        "one above it; the pyramid costs about 1 + s^2 + s^4 ... times the image alone.",
        minimum=0.25, below=1.0)
    postprocess: str = setting(
        "numpy", "Where detection runs (NMS, threshold, top-k, sub-pixel, descriptor "
        "sampling; edgepoint): numpy (fastest on a CPU) or graph (ONNX operators on the "
        "network's runtime and device, for GPUs; detection_graph.py).", choices=POSTPROCESS)
    binary_descriptors: bool = setting(
        False, "Publish sign-binarised, bit-packed descriptors (Hamming matching).")
    num_threads: int = setting(
        0, "CPU threads for the runtime.", minimum=0, zero="the runtime's default")

    def validate(self) -> "ExtractorConfig":
        super().validate()  # each field's choices and bounds; the rules across fields below
        if (self.resize_width == 0) != (self.resize_height == 0):
            raise ValueError("resize_width and resize_height must be both 0 (native size) "
                             f"or both > 0; got {self.resize_width}x{self.resize_height}")
        if self.postprocess == "graph" and self.nms_radius < 1:
            raise ValueError("postprocess graph needs nms_radius >= 1 (its NMS is a max-pool); "
                             "use postprocess numpy for nms_radius 0")
        if self.pyramid_levels > 1 and self.model not in PYRAMID_MODELS:
            raise ValueError(f"pyramid_levels > 1 is implemented for {', '.join(PYRAMID_MODELS)}"
                             f", not {self.model} (orb and sift have their own scale pyramids)")
        return self
