"""Every ROS parameter of the edgepoint_ros nodes, declared in this one place.

* The extractor declares one parameter per `ExtractorConfig` field
  (`config.py`), the matcher one per `tracking.TrackerConfig` field, the
  stereo node both (its tracker ones: matching and verification): same name,
  same default, and the field's `setting()` metadata as the description,
  choices and bounds, so `ros2 param describe /extractor max_keypoints` says
  what the code says and a bad value is refused as `validate()` would.
* Node-specific parameters (QoS, debug images, player source...) are listed
  below with their default, description, allowed range or choices, and whether
  they can change while the node runs (`read_only` ones need a restart).
* `EXTRACTOR_ARGUMENTS`: the extractor parameters the launch files offer as
  launch arguments, with their choices.

`config/<node>.yaml` files carry exactly these names (a test checks it). The
nodes call `declare()` once and `check_changes()` in their on-set-parameters
callback, so a bad value is rejected with a reason naming the parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..config import ExtractorConfig, Setting, Settings
from ..tracking import TrackerConfig
from ..conversions import MAX_IMAGE_PIXELS
from .qos import PROFILE_NAMES


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter: its name, default (whose type the parameter takes),
    its `config.Setting` (meaning, choices and bounds, as for the settings
    dataclasses' fields) and whether it may change while the node runs."""

    name: str
    default: Any  # bool | int | float | str | list[str]
    setting: Setting
    read_only: bool = False

    @property
    def description(self) -> str:
        return self.setting.description

    @property
    def choices(self) -> tuple:
        return self.setting.choices

    @property
    def constraints(self) -> str:
        """The accepted values in words (ParameterDescriptor.additional_constraints)."""
        return self.setting.allowed()

    def check(self, value) -> str | None:
        """None when `value` is acceptable, else the reason it is not: the type
        a ROS parameter may hold, then the Setting's choices and bounds."""
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
        return self.setting.problem(f"parameter {self.name}", value)


def parameter(name: str, default, meaning: str, *, read_only: bool = False, choices=(),
              minimum=None, maximum=None, below=None, zero: str = "") -> ParameterSpec:
    """A node-specific parameter, declared as a settings field would be
    (`config.setting`: the same Setting, the same checks)."""
    return ParameterSpec(name, default, Setting(meaning, choices, minimum, maximum, below, zero),
                         read_only)


def _settings_specs(settings: type[Settings], names: Sequence[str] | None = None,
                    read_only: bool = False) -> tuple[ParameterSpec, ...]:
    """One parameter per field of a settings dataclass (or the fields named),
    in field order: its default and its setting() metadata."""
    defaults = settings()
    return tuple(
        ParameterSpec(name, getattr(defaults, name), info, read_only)
        for name, info in settings.settings().items() if names is None or name in names)


def _diagnostics_period() -> ParameterSpec:
    return parameter("diagnostics_period", 1.0,
                     "Seconds between two /diagnostics messages of this node.",
                     read_only=True, minimum=0.05, maximum=60.0)


IMAGE_TRANSPORTS = ("raw", "compressed")


def _image_transport() -> ParameterSpec:
    return parameter("image_transport", "raw",
                     "How images arrive: raw (sensor_msgs/Image on <image>) or compressed "
                     "(sensor_msgs/CompressedImage on <image>/compressed). One only, as "
                     "image_transport subscribers do: a camera driver publishes both, and "
                     "subscribing to both would process every frame twice and make the "
                     "driver JPEG-encode every frame.", read_only=True,
                     choices=IMAGE_TRANSPORTS)


def _blas_threads() -> ParameterSpec:
    return parameter("blas_threads", 1,
                     "Threads numpy's BLAS may use for float descriptor matching (its matrix "
                     "products). 1: matching 1024 x 1024 descriptors takes a few ms on one "
                     "core, while BLAS threads spin-waiting for cores the extractor is using "
                     "cost about 4x the CPU (measured 25 vs 6.8 ms per frame). 0 = the "
                     "library's default.", read_only=True, minimum=0, maximum=256)


def _calibration_max_age() -> ParameterSpec:
    return parameter("calibration_max_age", 1.0,
                     "Seconds a CameraInfo may be older than the image it is used for; older "
                     "means its publisher stopped, and keypoints go out without normalised "
                     "coordinates (with a warning). 0 = never stale.", minimum=0.0)


EXTRACTOR_PARAMETERS: tuple[ParameterSpec, ...] = _settings_specs(ExtractorConfig) + (
    _image_transport(),
    parameter("qos", "sensor_data",
              "QoS of the image subscriptions: sensor_data (best effort, depth 5) "
              "or reliable (depth 10).", read_only=True, choices=PROFILE_NAMES),
    parameter("publish_debug_image", True,
              "Publish keypoints/debug_image (keypoints drawn on the image) while "
              "someone subscribes to it."),
    parameter("warmup_runs", 2,
              "Dummy frames run through the model at start-up so that first-frame "
              "costs do not land on the first real image.", read_only=True,
              minimum=0, maximum=100),
    parameter("max_image_pixels", MAX_IMAGE_PIXELS,
              "Largest image (width * height) accepted; a larger one is refused from "
              "its declared size (Image header, JPEG/PNG header) before any pixel "
              "buffer is allocated or anything decoded.", minimum=1),
    _calibration_max_age(),
    _diagnostics_period(),
)


# The tracker's settings in their three groups (TrackerConfig's field order).
# Descriptor matching (matcher: frame to reference frame; stereo: left to right).
_MATCHING_PARAMETERS = _settings_specs(TrackerConfig, ("mutual", "ratio", "max_distance"))
# Geometric verification of the matches (geometry.verify_matches).
_VERIFICATION_PARAMETERS = _settings_specs(
    TrackerConfig, ("verification", "ransac_threshold_px", "ransac_confidence",
                    "ransac_max_iters"))
# Reference frame and keyframe policy (tracking.Tracker).
_KEYFRAME_PARAMETERS = _settings_specs(
    TrackerConfig, ("reference", "keyframe_min_inliers", "keyframe_min_tracked_ratio",
                    "keyframe_max_frames"))

MATCHER_PARAMETERS: tuple[ParameterSpec, ...] = (
    parameter("qos", "reliable",
              "QoS of the keypoints subscription: reliable (depth 10, no frame lost "
              "between extractor and matcher) or sensor_data (best effort).",
              read_only=True, choices=PROFILE_NAMES),
    *_MATCHING_PARAMETERS,
    *_VERIFICATION_PARAMETERS,
    *_KEYFRAME_PARAMETERS,
    _calibration_max_age(),
    parameter("publish_vins_features", False,
              "Publish `feature` (sensor_msgs/PointCloud in VINS-Fusion's feature-tracker "
              "layout: normalised points, channels id, camera, u, v, velocity x, y); needs "
              "CameraInfo. Remap it to /feature_tracker/feature for VINS-Fusion.",
              read_only=True),
    parameter("publish_debug_image", True,
              "Publish matches/debug_image (track lines from the reference to the "
              "current position) while someone subscribes to it."),
    parameter("debug_background", "image",
              "What matches/debug_image is drawn on: 'image' = the camera frame with "
              "the same stamp (the matcher subscribes to `image` only while the debug "
              "image has subscribers), 'blank' = a dark canvas of the image size.",
              choices=("image", "blank")),
    _blas_threads(),
    _diagnostics_period(),
)

PLAYER_PARAMETERS: tuple[ParameterSpec, ...] = (
    parameter("source", "",
              "Video file or directory of images (sorted by name). Empty: the "
              "opencv-doc sample video vtest.avi (a real 768x576 street camera).",
              read_only=True),
    parameter("rate_hz", 30.0, "Frames published per second.", read_only=True,
              minimum=0.1, maximum=1000.0),
    parameter("width", 640, "Published width in pixels (0 = source width).",
              read_only=True, minimum=0, maximum=16384),
    parameter("height", 480, "Published height in pixels (0 = source height).",
              read_only=True, minimum=0, maximum=16384),
    parameter("encoding", "bgr8", "Encoding of the published sensor_msgs/Image.",
              read_only=True, choices=("bgr8", "rgb8", "mono8")),
    parameter("loop", True, "Start again at the first frame after the last one.",
              read_only=True),
    parameter("max_frames", 0,
              "Stop (and exit) after publishing this many frames; 0 = no limit.",
              read_only=True, minimum=0),
    parameter("qos", "sensor_data",
              "QoS of the image publishers: sensor_data (best effort, like most "
              "camera drivers) or reliable.", read_only=True, choices=PROFILE_NAMES),
    parameter("frame_id", "camera", "header.frame_id of the published frames.",
              read_only=True),
    parameter("publish_compressed", False,
              "Also publish image/compressed (JPEG).", read_only=True),
    parameter("jpeg_quality", 90, "JPEG quality of image/compressed.", read_only=True,
              minimum=1, maximum=100),
    parameter("wait_for_subscribers", 0,
              "Hold the first frame until this many subscriptions listen on `image` "
              "(then up to 1 s more until camera_info and image/compressed have as "
              "many; 0 = start at once, like a camera).", read_only=True, minimum=0),
    parameter("subscriber_settle_s", 0.6,
              "With wait_for_subscribers: hold the first frame this many seconds after "
              "the subscriptions matched, until their own ends of discovery are done "
              "(a best-effort frame sent earlier may be dropped or held back).",
              read_only=True, minimum=0.0, maximum=10.0),
    _diagnostics_period(),
)

# The stereo node's model settings are fixed at start-up (restart to change them).
STEREO_PARAMETERS: tuple[ParameterSpec, ...] = _settings_specs(ExtractorConfig, read_only=True) + (
    parameter("cameras", ["left", "right"],
              "Camera names, 2 or more: camera <name> is read from <name>/image and "
              "<name>/camera_info, its keypoints go to <name>/keypoints. The first two "
              "form the stereo pair whose matches go to stereo/matches.", read_only=True),
    parameter("slop", 0.005,
              "Largest stamp difference in seconds between the frames of one synchronised "
              "set; keep it below half the frame period.", read_only=True,
              minimum=0.0, maximum=10.0),
    parameter("queue_size", 10,
              "Frames per camera waiting for their partners; beyond it the oldest is "
              "dropped (counted as queue_overflow).", read_only=True,
              minimum=1, maximum=1000),
    _image_transport(),
    parameter("qos", "sensor_data",
              "QoS of the image subscriptions: sensor_data (best effort, depth 5) "
              "or reliable (depth 10).", read_only=True, choices=PROFILE_NAMES),
    *_MATCHING_PARAMETERS,
    *_VERIFICATION_PARAMETERS,
    _calibration_max_age(),
    parameter("warmup_runs", 2,
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


# The extractor parameters that edgepoint.launch.py offers as launch arguments
# (demo.launch.py all but image_transport, which its player fixes): name ->
# choices, taken from the parameters themselves. An empty argument keeps the
# parameter files' value.
EXTRACTOR_ARGUMENTS: dict[str, tuple] = {
    name: {spec.name: spec for spec in EXTRACTOR_PARAMETERS}[name].choices
    for name in ("model", "model_size", "precision", "device", "image_transport")}
_LAUNCH_NOTES = {"model_size": "EdgePoint's size",
                 "image_transport": "the image topic or <image>/compressed"}


def launch_argument_description(name: str) -> str:
    """The description of the launch argument for EXTRACTOR_ARGUMENTS[name]:
    its choices, what it is when the choices do not say, and its default."""
    note = f" ({_LAUNCH_NOTES[name]})" if name in _LAUNCH_NOTES else ""
    return " | ".join(EXTRACTOR_ARGUMENTS[name]) + note + " (default: extractor.yaml)"


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
        # additional_constraints only informs (`ros2 param describe` prints it):
        # rclpy's own range checks would word a refusal in its terms, as above.
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                         additional_constraints=spec.constraints,
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
