"""Stereo / multi-camera extractor: synchronised camera images in, keypoints per camera and left-right matches out.

Topics (executable and node `stereo_extractor`; `cameras` = [left, right] by default)
    in   <name>/image          sensor_msgs/Image of each camera (encodings as the extractor),
                               or with image_transport: compressed
         <name>/image/compressed   sensor_msgs/CompressedImage (JPEG, PNG, ...)
    in   <name>/camera_info    sensor_msgs/CameraInfo (optional): normalised coordinates,
                               RANSAC on undistorted pixels
    out  <name>/keypoints      edgepoint_msgs/Keypoints per camera; the cameras of one
                               synchronised set share session_id and sequence
    out  stereo/matches        edgepoint_msgs/Matches between the first two cameras:
                               reference = cameras[0] (left), current = cameras[1]
                               (right; header = its Keypoints header), RANSAC inliers
    out  /diagnostics          per-camera frames received / without partner, sets,
                               matches and inliers per set, calibration per camera

Synchronisation: `stream_sync.ApproximateTimeSynchronizer` (message_filters'
policy is not installable here; ours is tested on its own), with the `slop`
and `queue_size` parameters. Every image is accounted for: it is part of a
set, still waiting for its partners, or dropped and counted per camera and
reason in /diagnostics (`<name>_no_partner`, `<name>_queue_overflow`,
`<name>_late`; `frames_without_partner` is their sum), with a warning (at
most one per 5 s per camera and reason); at shutdown the frames still waiting
are counted as `unmatched_at_end` and named in the closing line.

Processing follows the newest-frame policy (newest_frame.py) per set: the
subscription callbacks only feed the synchroniser, a worker thread extracts
the keypoints of all cameras of the newest complete set with one model, so a
slow model never blocks the executor or builds a queue (a set replaced before
the worker took it is counted as frames_skipped). All cameras of a set are
decoded and extracted before anything is published: a bad image drops its
whole set (counted as an error, logged with the camera), never half of it.

Left-right matching uses the matcher's settings (mutual, ratio, max_distance)
and geometric verification (verification, ransac_*): F-RANSAC fits any
calibrated or uncalibrated rig, rectified or not. When both cameras have
usable CameraInfo, RANSAC runs on undistorted pixel coordinates.

The model settings are fixed at start-up (read-only parameters); matching,
verification and calibration_max_age can change at run time.
"""
from __future__ import annotations

import re
import secrets
import time
import warnings

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node

from ..features import Features
from ..geometry import Verification, verify_matches
from ..matching import match_descriptors
from ..models import create_model
from ..runtimes.base import RuntimeFallbackWarning
from ..stream_sync import DROP_REASONS, ApproximateTimeSynchronizer
from ..tracking import TrackerConfig
from . import parameters
from .calibration import CameraInfoListener
from ..conversions import (MessageError, compressed_msg_to_array, features_to_keypoints_msg,
                          image_msg_to_array, stamp_to_ns)
from .diagnostics import DiagnosticsPublisher, FrameStatistics, ThrottledLog, summary_message
from .newest_frame import NewestFrameWorker
from .node_main import apply_blas_threads, run
from .qos import OUTPUT_QOS, describe, qos_profile
from .track_messages import matches_msg, set_normalized

# The parameters that configure left-right matching; validated as the
# TrackerConfig fields of the same names.
PAIR_SETTINGS = ("mutual", "ratio", "max_distance", "verification", "ransac_threshold_px",
                 "ransac_confidence", "ransac_max_iters")
_CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*")
_DROP_TEXT = {
    "no_partner": "no frame of every other camera within slop",
    "queue_overflow": "queue full (another camera sends nothing)",
    "late": "arrived after its partners were released",
    "unmatched_at_end": "still unmatched at shutdown",
}


def camera_names(names) -> list[str]:
    """Validated `cameras` parameter: 2 or more distinct relative topic names."""
    names = list(names)
    if len(names) < 2:
        raise ValueError(f"parameter cameras must name at least 2 cameras; got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"parameter cameras names a camera twice: {names}")
    for name in names:
        if not _CAMERA_NAME.fullmatch(name):
            raise ValueError(f"parameter cameras: {name!r} is not a relative topic name "
                             "(letters, digits, _ and /, starting with a letter)")
    return names


def pair_matching_config(values: dict) -> TrackerConfig:
    """The left-right matching settings of a dict of parameter values (validated)."""
    return TrackerConfig.from_mapping({name: values[name] for name in PAIR_SETTINGS})


def match_pair(left: Features, right: Features, settings: TrackerConfig,
               left_camera=None, right_camera=None):
    """Left-right matches: (left indices, right indices, distances, Verification).

    Each right keypoint looks for its nearest neighbour among the left ones
    (ratio test, distance limit and mutual check as in `settings`); RANSAC
    then flags the matches that agree with one epipolar geometry (undistorted
    pixels when both calibrations are given)."""
    if (left.descriptor_type, left.descriptor_dim) != (right.descriptor_type,
                                                       right.descriptor_dim):
        raise ValueError(f"left and right descriptors differ: {left.descriptor_type}/"
                         f"{left.descriptor_dim} vs {right.descriptor_type}/"
                         f"{right.descriptor_dim}")
    right_idx, left_idx, distances = match_descriptors(
        right.descriptors, left.descriptors, descriptor_type=right.descriptor_type,
        mutual=settings.mutual, ratio=settings.ratio,
        max_distance=settings.max_distance if settings.max_distance > 0 else None)
    left_points = left.keypoints[left_idx]
    right_points = right.keypoints[right_idx]
    if (left_camera is not None and right_camera is not None
            and settings.verification != "none" and len(left_idx)):
        left_points = left_camera.undistort_pixels(left_points)
        right_points = right_camera.undistort_pixels(right_points)
    verification = verify_matches(left_points, right_points, method=settings.verification,
                                  threshold_px=settings.ransac_threshold_px,
                                  confidence=settings.ransac_confidence,
                                  max_iters=settings.ransac_max_iters)
    return left_idx, right_idx, distances, verification


class StereoNode(Node):
    DEFAULT_NAME = "stereo_extractor"

    def __init__(self, **kwargs):
        super().__init__(self.DEFAULT_NAME, **kwargs)
        self._values = parameters.declare(self, parameters.STEREO_PARAMETERS)
        self._blas_threads = apply_blas_threads(self, self._values["blas_threads"])
        self._cameras = camera_names(self._values["cameras"])
        self._pair_settings = pair_matching_config(self._values)
        self._config = parameters.extractor_config(self._values)
        self._model = self._build_model()
        self._runtime = self._model.runtime_info()
        self._session_id = secrets.randbits(32)
        self._sequence = 0
        self._stats = FrameStatistics()
        self._log_error = ThrottledLog(self.get_logger(), "error")
        self._log_warning = ThrottledLog(self.get_logger(), "warning")
        self._last_set: dict[str, str] = {}
        self._closing = False

        from edgepoint_msgs.msg import Keypoints, Matches
        from sensor_msgs.msg import CompressedImage, Image

        self._sync = ApproximateTimeSynchronizer(
            len(self._cameras), queue_size=self._values["queue_size"],
            slop_s=self._values["slop"], callback=self._on_set, on_drop=self._on_drop)
        input_qos = qos_profile(self._values["qos"])
        compressed = self._values["image_transport"] == "compressed"
        image_type, image_topic = ((CompressedImage, "image/compressed") if compressed
                                   else (Image, "image"))
        self._decode = compressed_msg_to_array if compressed else image_msg_to_array
        self._keypoints_publishers = []
        self._calibrations = []
        for index, name in enumerate(self._cameras):
            self.create_subscription(
                image_type, f"{name}/{image_topic}", lambda msg, i=index: self._on_image(i, msg),
                input_qos, event_callbacks=self._subscription_events(f"{name}/{image_topic}"))
            self._keypoints_publishers.append(
                self.create_publisher(Keypoints, f"{name}/keypoints", OUTPUT_QOS))
            self._calibrations.append(CameraInfoListener(
                self, f"{name}/camera_info", self._values["calibration_max_age"]))
        self._matches_publisher = self.create_publisher(Matches, "stereo/matches", OUTPUT_QOS)
        self._diagnostics = DiagnosticsPublisher(self, self._values["diagnostics_period"],
                                                 self._diagnostic_status, self._hardware_id)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = NewestFrameWorker("stereo-worker", self._process,
                                         lambda: self._stats.count("frames_skipped"),
                                         self._on_error)
        topics = ", ".join(self.resolve_topic_name(f"{name}/{image_topic}")
                           for name in self._cameras)
        self.get_logger().info(
            f"ready: model {self._config.model}, runtime {self._runtime}, cameras {topics} "
            f"(QoS {describe(input_qos)}), slop {self._values['slop']:g} s, queue "
            f"{self._values['queue_size']}, stereo pair {self._cameras[0]}-{self._cameras[1]} "
            f"verified by {self._pair_settings.verification}, session {self._session_id}, "
            f"BLAS threads {self._blas_threads}")

    def _build_model(self):
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeFallbackWarning)
            model = create_model(self._config)
        for warning in caught:  # the runtime could not run as asked: say so in the ROS log
            self.get_logger().warning(str(warning.message))
        if self._values["warmup_runs"]:
            model.warmup(runs=self._values["warmup_runs"])
        self.get_logger().info(f"model {self._config.model} built in "
                               f"{time.perf_counter() - started:.2f} s; runs on "
                               f"{model.runtime_info()}")
        return model

    def _hardware_id(self) -> str:
        return f"{self._runtime.get('runtime', '?')}/{self._runtime.get('device', '?')}"

    # ---- input: images -> synchroniser -> worker -----------------------------
    def _on_image(self, camera: int, msg) -> None:
        self._stats.received()
        self._stats.count(f"{self._cameras[camera]}_frames_received")
        self._sync.add(camera, stamp_to_ns(msg.header.stamp), msg)

    def _on_set(self, *messages) -> None:
        self._worker.submit(messages)

    def _on_drop(self, camera: int, stamp_ns: int, reason: str) -> None:
        if self._closing:  # counted in the closing line
            return
        name = self._cameras[camera]
        self._log_warning(f"{name} frame stamped {stamp_ns * 1e-9:.6f} s dropped: "
                          f"{_DROP_TEXT.get(reason, reason)} ({reason}; slop "
                          f"{self._values['slop']:g} s)")

    def _subscription_events(self, topic: str) -> SubscriptionEventCallbacks:
        def lost(info):
            self._stats.count("messages_lost", info.total_count_change)
            self._log_warning(f"DDS lost {info.total_count_change} message(s) on {topic} "
                              f"({info.total_count} in total)")

        def incompatible(info):
            self._stats.count("incompatible_qos", info.total_count_change)
            policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
            self.get_logger().warning(
                f"incompatible QoS on {topic}: a peer's {policy} policy cannot match this "
                f"node's; no messages flow between them (set the qos parameter)")
        return SubscriptionEventCallbacks(message_lost=lost, incompatible_qos=incompatible)

    # ---- processing ----------------------------------------------------------
    def _on_error(self, messages, exc: Exception) -> None:
        stamps = ", ".join(f"{stamp_to_ns(m.header.stamp) * 1e-9:.6f}" for m in messages)
        text = f"dropped synchronised set (stamps {stamps} s): {exc}"
        self._stats.error(text)
        self._log_error(text)

    def _process(self, messages) -> None:
        started = time.perf_counter()
        sequence = self._sequence
        outputs = []  # (keypoints message, features, camera model or None) per camera
        for name, msg, calibration in zip(self._cameras, messages, self._calibrations):
            try:
                image = self._decode(msg)
            except MessageError as exc:
                raise MessageError(f"camera {name}: {exc}") from exc
            features = self._model.extract(image)
            camera = calibration.camera_for(stamp_to_ns(msg.header.stamp),
                                            *features.image_size)
            keypoints = features_to_keypoints_msg(features, msg.header, self._config.model,
                                                  self._session_id, sequence)
            if camera is not None:
                set_normalized(keypoints, camera.normalize(features.keypoints))
            outputs.append((keypoints, features, camera))
        settings = self._pair_settings
        (left_msg, left, left_camera), (right_msg, right, right_camera) = outputs[:2]
        left_idx, right_idx, distances, verification = match_pair(
            left, right, settings, left_camera, right_camera)

        for publisher, (keypoints, _, _) in zip(self._keypoints_publishers, outputs):
            publisher.publish(keypoints)
        self._matches_publisher.publish(self._matches_msg(
            left_msg, right_msg, len(left), len(right), sequence, left_idx, right_idx,
            distances, verification))
        self._sequence += 1

        stamp_ns = stamp_to_ns(left_msg.header.stamp)
        latency_ms = ((self.get_clock().now().nanoseconds - stamp_ns) / 1e6
                      if stamp_ns else None)
        self._stats.processed(latency_ms, (time.perf_counter() - started) * 1e3,
                              keypoints=np.mean([len(f) for _, f, _ in outputs]),
                              matches=len(left_idx), inliers=verification.num_inliers)
        self._last_set = {"num_matches": str(len(left_idx)),
                          "num_inliers": str(verification.num_inliers)}
        self._last_set.update({f"{name}_num_keypoints": str(len(features))
                               for name, (_, features, _) in zip(self._cameras, outputs)})

    def _matches_msg(self, left_msg, right_msg, left_count, right_count, sequence,
                     left_idx, right_idx, distances, verification: Verification):
        inliers = verification.inliers if verification.method != "none" else np.zeros(0, bool)
        return matches_msg(right_msg.header, {
            "reference_stamp_ns": stamp_to_ns(left_msg.header.stamp),
            "session_id": self._session_id, "reference_sequence": sequence,
            "current_sequence": sequence, "reference_num_keypoints": left_count,
            "current_num_keypoints": right_count, "reference_indices": left_idx,
            "current_indices": right_idx, "distances": distances,
            "verification": verification.code, "inliers": inliers})

    # ---- parameters, diagnostics, shutdown -------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        problem = parameters.check_changes(parameters.STEREO_PARAMETERS, changes)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        values = dict(self._values)
        values.update({p.name: p.value for p in changes if p.name in values})
        try:
            settings = pair_matching_config(values)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values, self._pair_settings = values, settings
        for calibration in self._calibrations:
            calibration.max_age_s = float(values["calibration_max_age"])
        return SetParametersResult(successful=True)

    def _diagnostic_status(self):
        level, values = self._stats.snapshot()
        sync = self._sync.stats()
        values["sets_synchronised"] = str(sync.sets_emitted)
        values["frames_without_partner"] = str(sum(
            sync.dropped_total(i) for i in range(len(self._cameras))))
        for index, name in enumerate(self._cameras):
            values[f"{name}_queued"] = str(sync.queued[index])
            for reason in DROP_REASONS:
                values[f"{name}_{reason}"] = str(sync.dropped[reason][index])
            values.update(self._calibrations[index].diagnostics(prefix=f"{name}_"))
        values.update(self._last_set)
        values.update({"model": self._config.model, "session_id": str(self._session_id),
                       "sequence": str(self._sequence)})
        values.update({f"runtime_{key}": str(value) for key, value in self._runtime.items()})
        return level, summary_message(level, values), values

    def close(self) -> str:
        """Stop the worker (node_main.run, before the context shuts down);
        frames still waiting for partners are counted (unmatched_at_end in
        /diagnostics) and, like a set still in flight, named in the closing
        line's summary rather than warned about one by one."""
        self._closing = True
        unmatched = self._sync.flush()
        in_flight = self._worker.close().in_flight
        return self._stats.closing_summary(in_flight, frames_unmatched_at_end=unmatched)


def main(args=None) -> int:
    return run(StereoNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
