"""Every ROS parameter of the edgepoint_ros nodes, declared in this one place.

* The extractor declares one parameter per `ExtractorConfig` field, same name,
  same default, and the field's comment in `config.py` as its description, so
  `ros2 param describe /extractor max_keypoints` says what the code says.
* Node-specific parameters (QoS, debug images, player source...) are listed
  below with their default, description, allowed range or choices, and whether
  they can change while the node runs (`read_only` ones need a restart).

`config/<node>.yaml` files carry exactly these names (a test checks it). The
nodes call `declare()` once and `check_changes()` in their on-set-parameters
callback, so a bad value is rejected with a reason naming the parameter.
"""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

from .. import config as config_module
from ..config import ExtractorConfig
from ..geometry import VERIFICATION_METHODS
from ..tracking import REFERENCE_MODES, TrackerConfig
from ..conversions import MAX_IMAGE_PIXELS
from .qos import PROFILE_NAMES


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any  # bool | int | float | str: the ROS parameter type follows it
    description: str
    read_only: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value) -> str | None:
        """None when `value` is acceptable, else the reason it is not."""
        if isinstance(self.default, list):  # string arrays (e.g. camera names)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                return f"parameter {self.name} must be a list of strings; got {value!r}"
            return None
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return (f"parameter {self.name} must be of type {expected.__name__}; "
                    f"got {value!r} ({type(value).__name__})")
        if isinstance(value, float) and not math.isfinite(value):
            return f"parameter {self.name} must be a finite number; got {value!r}"
        if self.choices and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            return f"parameter {self.name} must be one of {allowed}; got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"parameter {self.name} must be >= {self.minimum}; got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"parameter {self.name} must be <= {self.maximum}; got {value!r}"
        return None


def _config_field_comments() -> dict[str, str]:
    """The comment lines above each ExtractorConfig field in config.py (a field
    right below another without its own comment shares that one's)."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    previous = ""
    try:
        source = inspect.getsource(config_module.ExtractorConfig)
    except (OSError, TypeError):  # no source shipped: descriptions stay short
        return comments
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"(\w+)\s*:\s*[\w\[\], ]+=", stripped)
        if match:
            previous = " ".join(pending) or previous
            comments[match.group(1)] = previous
        else:
            previous = ""
        pending = []
    return comments


def _extractor_config_specs() -> tuple[ParameterSpec, ...]:
    comments = _config_field_comments()
    defaults = ExtractorConfig()
    return tuple(
        ParameterSpec(f.name, getattr(defaults, f.name),
                      comments.get(f.name) or f"ExtractorConfig.{f.name} (see config.py)")
        for f in fields(ExtractorConfig))


def _diagnostics_period() -> ParameterSpec:
    return ParameterSpec("diagnostics_period", 1.0,
                         "Seconds between two /diagnostics messages of this node.",
                         read_only=True, minimum=0.05, maximum=60.0)


IMAGE_TRANSPORTS = ("raw", "compressed")


def _image_transport() -> ParameterSpec:
    return ParameterSpec("image_transport", "raw",
                         "How images arrive: raw (sensor_msgs/Image on <image>) or compressed "
                         "(sensor_msgs/CompressedImage on <image>/compressed). One only, as "
                         "image_transport subscribers do: a camera driver publishes both, and "
                         "subscribing to both would process every frame twice and make the "
                         "driver JPEG-encode every frame.", read_only=True,
                         choices=IMAGE_TRANSPORTS)


def _blas_threads() -> ParameterSpec:
    return ParameterSpec("blas_threads", 1,
                         "Threads numpy's BLAS may use for float descriptor matching (its matrix "
                         "products). 1: matching 1024 x 1024 descriptors takes a few ms on one "
                         "core, while BLAS threads spin-waiting for cores the extractor is using "
                         "cost about 4x the CPU (measured 25 vs 6.8 ms per frame). 0 = the "
                         "library's default.", read_only=True, minimum=0, maximum=256)


def _calibration_max_age() -> ParameterSpec:
    return ParameterSpec("calibration_max_age", 1.0,
                         "Seconds a CameraInfo may be older than the image it is used for; older "
                         "means its publisher stopped, and keypoints go out without normalised "
                         "coordinates (with a warning). 0 = never stale.", minimum=0.0)


EXTRACTOR_PARAMETERS: tuple[ParameterSpec, ...] = _extractor_config_specs() + (
    _image_transport(),
    ParameterSpec("qos", "sensor_data",
                  "QoS of the image subscriptions: sensor_data (best effort, depth 5) "
                  "or reliable (depth 10).", read_only=True, choices=PROFILE_NAMES),
    ParameterSpec("publish_debug_image", True,
                  "Publish keypoints/debug_image (keypoints drawn on the image) while "
                  "someone subscribes to it."),
    ParameterSpec("warmup_runs", 2,
                  "Dummy frames run through the model at start-up so that first-frame "
                  "costs do not land on the first real image.", read_only=True,
                  minimum=0, maximum=100),
    ParameterSpec("max_image_pixels", MAX_IMAGE_PIXELS,
                  "Largest image (width * height) accepted; a larger one is refused from "
                  "its declared size (Image header, JPEG/PNG header) before any pixel "
                  "buffer is allocated or anything decoded.", minimum=1),
    _calibration_max_age(),
    _diagnostics_period(),
)


_TRACKER_DEFAULTS = TrackerConfig()

# Descriptor matching (matcher: frame to reference frame; stereo: left to right).
_MATCHING_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("mutual", _TRACKER_DEFAULTS.mutual,
                  "Keep only mutual nearest neighbours (cross-check)."),
    ParameterSpec("ratio", _TRACKER_DEFAULTS.ratio,
                  "Lowe ratio test: keep a match when best / second-best distance < ratio; "
                  "0 disables the test (the seed report uses 0.7).", minimum=0.0, maximum=1.0),
    ParameterSpec("max_distance", _TRACKER_DEFAULTS.max_distance,
                  "Reject matches whose descriptor distance is above this (L2 for float "
                  "descriptors, bits for binary ones); 0 = no limit.", minimum=0.0),
)

# Geometric verification of the matches (geometry.verify_matches).
_VERIFICATION_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("verification", _TRACKER_DEFAULTS.verification,
                  "Geometric verification of the matches: fundamental (F by RANSAC, any static "
                  "scene), homography (planar scenes, pure rotation) or none. Inlier flags go "
                  "to Matches.inliers; only verified matches continue a track.",
                  choices=VERIFICATION_METHODS),
    ParameterSpec("ransac_threshold_px", _TRACKER_DEFAULTS.ransac_threshold_px,
                  "RANSAC inlier threshold in pixels: distance to the epipolar line (F) or "
                  "reprojection error (H); the seed report's f_rej_th, VINS uses 1.",
                  minimum=1e-3, maximum=100.0),
    ParameterSpec("ransac_confidence", _TRACKER_DEFAULTS.ransac_confidence,
                  "RANSAC confidence (probability of drawing one all-inlier sample).",
                  minimum=0.5, maximum=0.999999),
    ParameterSpec("ransac_max_iters", _TRACKER_DEFAULTS.ransac_max_iters,
                  "RANSAC iterations at most.", minimum=1, maximum=100000),
)

# Reference frame and keyframe policy (tracking.Tracker).
_KEYFRAME_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("reference", _TRACKER_DEFAULTS.reference,
                  "Frame each new frame is matched to: previous (every frame; VINS-style) or "
                  "keyframe (the last keyframe, less drift over slow motion).",
                  choices=REFERENCE_MODES),
    ParameterSpec("keyframe_min_inliers", _TRACKER_DEFAULTS.keyframe_min_inliers,
                  "reference=keyframe: a frame with fewer verified matches to the keyframe "
                  "becomes the next keyframe.", minimum=0),
    ParameterSpec("keyframe_min_tracked_ratio", _TRACKER_DEFAULTS.keyframe_min_tracked_ratio,
                  "reference=keyframe: a frame whose verified matches are fewer than this "
                  "fraction of the keyframe's keypoints becomes the next keyframe.",
                  minimum=0.0, maximum=1.0),
    ParameterSpec("keyframe_max_frames", _TRACKER_DEFAULTS.keyframe_max_frames,
                  "reference=keyframe: a frame this many frames after the keyframe becomes "
                  "the next keyframe (0 = no limit).", minimum=0),
)

MATCHER_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("qos", "reliable",
                  "QoS of the keypoints subscription: reliable (depth 10, no frame lost "
                  "between extractor and matcher) or sensor_data (best effort).",
                  read_only=True, choices=PROFILE_NAMES),
    *_MATCHING_PARAMETERS,
    *_VERIFICATION_PARAMETERS,
    *_KEYFRAME_PARAMETERS,
    _calibration_max_age(),
    ParameterSpec("publish_vins_features", False,
                  "Publish `feature` (sensor_msgs/PointCloud in VINS-Fusion's feature-tracker "
                  "layout: normalised points, channels id, camera, u, v, velocity x, y); needs "
                  "CameraInfo. Remap it to /feature_tracker/feature for VINS-Fusion.",
                  read_only=True),
    ParameterSpec("publish_debug_image", True,
                  "Publish matches/debug_image (track lines from the reference to the "
                  "current position) while someone subscribes to it."),
    ParameterSpec("debug_background", "image",
                  "What matches/debug_image is drawn on: 'image' = the camera frame with "
                  "the same stamp (the matcher subscribes to `image` only while the debug "
                  "image has subscribers), 'blank' = a dark canvas of the image size.",
                  choices=("image", "blank")),
    _blas_threads(),
    _diagnostics_period(),
)

PLAYER_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("source", "",
                  "Video file or directory of images (sorted by name). Empty: the "
                  "opencv-doc sample video vtest.avi (a real 768x576 street camera).",
                  read_only=True),
    ParameterSpec("rate_hz", 30.0, "Frames published per second.", read_only=True,
                  minimum=0.1, maximum=1000.0),
    ParameterSpec("width", 640, "Published width in pixels (0 = source width).",
                  read_only=True, minimum=0, maximum=16384),
    ParameterSpec("height", 480, "Published height in pixels (0 = source height).",
                  read_only=True, minimum=0, maximum=16384),
    ParameterSpec("encoding", "bgr8", "Encoding of the published sensor_msgs/Image.",
                  read_only=True, choices=("bgr8", "rgb8", "mono8")),
    ParameterSpec("loop", True, "Start again at the first frame after the last one.",
                  read_only=True),
    ParameterSpec("max_frames", 0,
                  "Stop (and exit) after publishing this many frames; 0 = no limit.",
                  read_only=True, minimum=0),
    ParameterSpec("qos", "sensor_data",
                  "QoS of the image publishers: sensor_data (best effort, like most "
                  "camera drivers) or reliable.", read_only=True, choices=PROFILE_NAMES),
    ParameterSpec("frame_id", "camera", "header.frame_id of the published frames.",
                  read_only=True),
    ParameterSpec("publish_compressed", False,
                  "Also publish image/compressed (JPEG).", read_only=True),
    ParameterSpec("jpeg_quality", 90, "JPEG quality of image/compressed.", read_only=True,
                  minimum=1, maximum=100),
    ParameterSpec("wait_for_subscribers", 0,
                  "Hold the first frame until this many subscriptions listen on `image` "
                  "(then up to 1 s more until camera_info and image/compressed have as "
                  "many; 0 = start at once, like a camera).", read_only=True, minimum=0),
    _diagnostics_period(),
)

# The stereo node's model settings are fixed at start-up (restart to change them).
STEREO_PARAMETERS: tuple[ParameterSpec, ...] = tuple(
    replace(spec, read_only=True) for spec in _extractor_config_specs()) + (
    ParameterSpec("cameras", ["left", "right"],
                  "Camera names, 2 or more: camera <name> is read from <name>/image and "
                  "<name>/camera_info, its keypoints go to <name>/keypoints. The first two "
                  "form the stereo pair whose matches go to stereo/matches.", read_only=True),
    ParameterSpec("slop", 0.005,
                  "Largest stamp difference in seconds between the frames of one synchronised "
                  "set; keep it below half the frame period.", read_only=True,
                  minimum=0.0, maximum=10.0),
    ParameterSpec("queue_size", 10,
                  "Frames per camera waiting for their partners; beyond it the oldest is "
                  "dropped (counted as queue_overflow).", read_only=True,
                  minimum=1, maximum=1000),
    _image_transport(),
    ParameterSpec("qos", "sensor_data",
                  "QoS of the image subscriptions: sensor_data (best effort, depth 5) "
                  "or reliable (depth 10).", read_only=True, choices=PROFILE_NAMES),
    *_MATCHING_PARAMETERS,
    *_VERIFICATION_PARAMETERS,
    _calibration_max_age(),
    ParameterSpec("warmup_runs", 2,
                  "Dummy frames run through the model at start-up so that first-frame "
                  "costs do not land on the first real image.", read_only=True,
                  minimum=0, maximum=100),
    _blas_threads(),
    _diagnostics_period(),
)

NODE_PARAMETERS: dict[str, tuple[ParameterSpec, ...]] = {
    "extractor": EXTRACTOR_PARAMETERS,
    "matcher": MATCHER_PARAMETERS,
    "player": PLAYER_PARAMETERS,
    "stereo": STEREO_PARAMETERS,
}


def declare(node, specs: Sequence[ParameterSpec]) -> dict[str, Any]:
    """Declare every parameter on `node`; returns {name: value}.

    Raises ValueError naming the parameter when a value (from a YAML file or
    the command line) is out of range or of the wrong type.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for spec in specs:
        # dynamic_typing: rclpy's own type check would answer a wrong type with
        # "Wrong parameter type, expected '3' got '4'" before the node sees it;
        # ParameterSpec.check (here and in check_changes) names the parameter,
        # the expected type and the value instead.
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                         dynamic_typing=True)
        try:
            parameter = node.declare_parameter(spec.name, spec.default, descriptor)
        except Exception as exc:  # rclpy's InvalidParameterTypeException & co.
            raise ValueError(f"parameter {spec.name}: {exc}") from exc
        value = parameter.value
        problem = spec.check(value)
        if problem:
            raise ValueError(problem)
        values[spec.name] = float(value) if isinstance(spec.default, float) else value
    return values


def check_changes(specs: Sequence[ParameterSpec], parameters) -> str | None:
    """Reason to reject a set of rclpy Parameters, or None when all are valid."""
    by_name = {spec.name: spec for spec in specs}
    for parameter in parameters:
        spec = by_name.get(parameter.name)
        if spec is None:
            continue  # use_sim_time and other parameters rclpy owns
        problem = spec.check(parameter.value)
        if problem:
            return problem
    return None


def extractor_config(values: dict[str, Any]) -> ExtractorConfig:
    """The ExtractorConfig held by a dict of extractor parameter values (validated)."""
    return ExtractorConfig.from_mapping({name: values[name]
                                         for name in ExtractorConfig.field_names()})


def tracker_config(values: dict[str, Any]) -> TrackerConfig:
    """The TrackerConfig held by a dict of matcher parameter values (validated)."""
    return TrackerConfig.from_mapping({name: values[name]
                                       for name in TrackerConfig.field_names()})
