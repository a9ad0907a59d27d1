"""Matcher node: the tracking front end of one camera (track ids, verified matches, VINS output).

Topics
    in   keypoints            edgepoint_msgs/Keypoints (from the extractor)
    in   camera_info          sensor_msgs/CameraInfo (optional): normalised coordinates,
                              velocities, RANSAC on undistorted pixels
    in   image                sensor_msgs/Image, only while matches/debug_image has
                              subscribers and debug_background is 'image'
    out  keypoints/tracked    edgepoint_msgs/Keypoints: the input frame plus track_ids,
                              track_ages and (with calibration) x/y_normalized
    out  matches              edgepoint_msgs/Matches against the reference frame (none for
                              the first frame of a sequence), with RANSAC inlier flags
    out  feature              sensor_msgs/PointCloud in VINS-Fusion's feature-tracker layout
                              (publish_vins_features; see vins_output.py). VINS-Fusion
                              reads /feature_tracker/feature: remap
                              `-r feature:=/feature_tracker/feature`
    out  matches/debug_image  sensor_msgs/Image, only while subscribed
    out  /diagnostics         matches / inliers / tracked per frame, keyframes, resets,
                              calibration state, latency...

Tracking is `tracking.Tracker` (ids, ages, keyframes, velocities) configured by
one parameter per `TrackerConfig` field (mutual, ratio, max_distance,
verification, ransac_*, reference, keyframe_*), all changeable at run time
(a bad value is refused with the reason). `TrackingFrontEnd` holds the
stream logic and no ROS: it never tracks across frames that should not be
paired. A new sequence starts (the tracker resets: the frame gets new ids and
no Matches; the reset is counted and logged) when
  * the extractor's session_id changes (the extractor restarted: its sequence
    numbers and maybe its model are new),
  * the descriptor type or dimension changes (e.g. the model parameter changed),
  * the stamp does not advance (a bag or player looped, or a frame came twice).
Track ids keep counting across resets, so an id is never reused.

The matcher follows the newest-frame policy like the extractor (newest_frame.py):
when tracking is slower than the input, it tracks the newest frame and counts
the frames in between as frames_skipped. sequence_gaps counts every extractor
frame that was not tracked (skipped here, or lost on the way).

CameraInfo (calibration.py): used when it is valid, not older than
calibration_max_age and made for the keypoints' image size; otherwise the
frame is tracked without it (no normalised coordinates, no `feature` output,
counted as vins_frames_without_calibration) and the problem is warned about
once; with publish_vins_features one WARN says that `feature` is not
published until a usable CameraInfo arrives (an INFO line when it starts). The player's CameraInfo has K = 0 (uncalibrated) and is reported as
invalid.

Debug image, made for RViz's Image display: the current camera frame (the
`image` message with the same stamp, waited for up to
BACKGROUND_WAIT_S since a large camera frame can arrive after the small
Keypoints made from it; a dark canvas if it does not come or
debug_background is 'blank') with, for each accepted match (verified, or
every match with verification none), a green line from the keypoint's
position in the reference frame to its position now (the classic
visual-odometry "flow" view) and grey circles on the other keypoints.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node

from ..bags import matches_fields
from ..features import Features
from ..tracking import Tracker, TrackerConfig, TrackResult
from . import parameters
from .calibration import MISSING_GRACE_S, CameraInfoListener
from ..conversions import (MessageError, image_msg, image_msg_to_array,
                          keypoints_msg_to_features, stamp_to_ns)
from .diagnostics import DiagnosticsPublisher, FrameStatistics, ThrottledLog, summary_message
from .newest_frame import NewestFrameWorker
from .node_main import apply_blas_threads, run
from .qos import OUTPUT_QOS, describe, qos_profile
from .track_messages import matches_msg, set_normalized, set_tracks
from .visualization import blank_canvas, draw_tracks
from .vins_output import CameraFeatures, vins_feature_cloud

IMAGE_BUFFER_FRAMES = 30  # camera frames kept to find the one a debug image is drawn on
BACKGROUND_WAIT_S = 0.1   # how long a debug image waits for its camera frame
VINS_CAMERA_ID = 0        # a monocular front end is camera 0 for VINS-Fusion


@dataclass
class KeypointFrame:
    """One received Keypoints message, decoded."""
    header: object
    session_id: int
    sequence: int
    features: Features

    @property
    def stamp_ns(self) -> int:
        return stamp_to_ns(self.header.stamp)


class TrackingFrontEnd:
    """Tracks the frames of one keypoint stream; starts a new sequence when the
    stream cannot be continued (see the module docstring)."""

    def __init__(self, config: TrackerConfig | None = None):
        self.tracker = Tracker(config)
        self.previous: KeypointFrame | None = None
        self.resets = 0
        self.sequence_gaps = 0
        self.keyframes = 0

    def configure(self, config: TrackerConfig) -> None:
        """New settings; the current sequence and its ids carry on."""
        self.tracker.config = config.validate()

    def restart_reason(self, frame: KeypointFrame) -> str | None:
        """Why `frame` cannot continue the current sequence (None: it can)."""
        previous = self.previous
        if previous is None:
            return "first frame"
        if frame.session_id != previous.session_id:
            return (f"extractor session changed from {previous.session_id} to "
                    f"{frame.session_id} (extractor restarted)")
        a, b = previous.features, frame.features
        if (a.descriptor_type, a.descriptor_dim) != (b.descriptor_type, b.descriptor_dim):
            return (f"descriptors changed from {a.descriptor_type}/{a.descriptor_dim} to "
                    f"{b.descriptor_type}/{b.descriptor_dim}; frames of different "
                    f"descriptors are never compared")
        if frame.stamp_ns <= previous.stamp_ns:
            return (f"stamp {frame.stamp_ns * 1e-9:.9f} s is not after the previous frame's "
                    f"{previous.stamp_ns * 1e-9:.9f} s (source looped, restarted or repeated "
                    f"a frame)")
        return None

    def push(self, frame: KeypointFrame, camera=None) -> tuple[TrackResult, str | None]:
        """Track `frame` (camera: a CameraModel or None). Returns the result
        (its reference_tag is the reference KeypointFrame) and the reason a
        new sequence started with this frame, or None when it continued one."""
        reason = self.restart_reason(frame)
        if reason is not None:
            self.tracker.reset()
        result = self.tracker.process(frame.features, frame.stamp_ns, camera=camera, tag=frame)
        previous, self.previous = self.previous, frame
        if reason is not None and previous is not None:
            self.resets += 1
        if reason is None and frame.sequence > previous.sequence + 1:
            self.sequence_gaps += frame.sequence - previous.sequence - 1
        self.keyframes += result.is_keyframe
        return result, reason


class MatcherNode(Node):
    DEFAULT_NAME = "matcher"

    def __init__(self, **kwargs):
        super().__init__(self.DEFAULT_NAME, **kwargs)
        self._values = parameters.declare(self, parameters.MATCHER_PARAMETERS)
        self._blas_threads = apply_blas_threads(self, self._values["blas_threads"])
        self._front_end = TrackingFrontEnd(parameters.tracker_config(self._values))
        self._stats = FrameStatistics()
        self._log_error = ThrottledLog(self.get_logger(), "error")
        self._log_warning = ThrottledLog(self.get_logger(), "warning")
        self._images: deque = deque(maxlen=IMAGE_BUFFER_FRAMES)
        self._image_arrived = threading.Condition()
        self._image_subscription = None
        self._last_frame: dict[str, str] = {}

        from edgepoint_msgs.msg import Keypoints, Matches
        from sensor_msgs.msg import Image, PointCloud

        self._matches_publisher = self.create_publisher(
            Matches, "matches", OUTPUT_QOS,
            event_callbacks=PublisherEventCallbacks(
                incompatible_qos=self._incompatible_qos("matches")))
        self._tracked_publisher = self.create_publisher(Keypoints, "keypoints/tracked",
                                                        OUTPUT_QOS)
        self._vins_publisher = None
        # None, "waiting" (warned: `feature` not published, no calibration) or "publishing"
        self._vins_state: str | None = None
        self._vins_since: float | None = None  # first frame tracked for VINS
        if self._values["publish_vins_features"]:
            self._vins_publisher = self.create_publisher(PointCloud, "feature", OUTPUT_QOS)
        self._debug_publisher = self.create_publisher(Image, "matches/debug_image", OUTPUT_QOS)
        input_qos = qos_profile(self._values["qos"])
        self.create_subscription(
            Keypoints, "keypoints", self._on_keypoints, input_qos,
            event_callbacks=SubscriptionEventCallbacks(
                message_lost=self._on_lost, incompatible_qos=self._incompatible_qos("keypoints")))
        self._calibration = CameraInfoListener(self, "camera_info",
                                               self._values["calibration_max_age"])
        self._diagnostics = DiagnosticsPublisher(self, self._values["diagnostics_period"],
                                                 self._diagnostic_status,
                                                 lambda: "cpu/numpy+opencv")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Subscribes to / unsubscribes from `image` as debug-image viewers come and go.
        self.create_timer(0.5, self._follow_images)
        self._worker = NewestFrameWorker("matcher-worker", self._process,
                                         lambda: self._stats.count("frames_skipped"),
                                         self._on_error)
        config = self._front_end.tracker.config
        vins = (f", VINS features on {self.resolve_topic_name('feature')}"
                if self._vins_publisher else "")
        self.get_logger().info(
            f"ready: tracking {self.resolve_topic_name('keypoints')} (QoS "
            f"{describe(input_qos)}), reference {config.reference}, verification "
            f"{config.verification} ({config.ransac_threshold_px:g} px), mutual "
            f"{config.mutual}, ratio {config.ratio}, max_distance {config.max_distance}{vins}, "
            f"BLAS threads {self._blas_threads}")

    # ---- input -------------------------------------------------------------
    def _on_keypoints(self, msg) -> None:
        self._stats.received()
        self._worker.submit(msg)

    def _on_error(self, msg, exc: Exception) -> None:
        text = f"dropped Keypoints (session {msg.session_id}, sequence {msg.sequence}): {exc}"
        self._stats.error(text)
        self._log_error(text)

    def _process(self, msg) -> None:
        started = time.perf_counter()
        frame = KeypointFrame(msg.header, int(msg.session_id), int(msg.sequence),
                              keypoints_msg_to_features(msg))
        features = frame.features
        camera = self._calibration.camera_for(frame.stamp_ns, *features.image_size)
        gaps_before = self._front_end.sequence_gaps
        result, restart = self._front_end.push(frame, camera)
        self._log_restart(frame, restart, msg.model)
        if self._front_end.sequence_gaps > gaps_before:
            self._log_warning(f"{self._front_end.sequence_gaps - gaps_before} Keypoints "
                              f"frame(s) before sequence {frame.sequence} were not tracked "
                              f"(skipped here or never received)")

        # keypoints/tracked repeats the whole Keypoints message (descriptors
        # included): serialised only for a subscriber
        if self._tracked_publisher.get_subscription_count():
            set_tracks(msg, result.track_ids, result.track_ages)
            if result.normalized is not None:
                set_normalized(msg, result.normalized)
            self._tracked_publisher.publish(msg)
        has_reference = result.reference_tag is not None
        if has_reference:
            self._matches_publisher.publish(self._matches_msg(frame, result))
        if self._vins_publisher is not None:
            self._publish_vins_features(frame, result)
        self._publish_debug_image(frame, result)

        stamp_ns = frame.stamp_ns
        latency_ms = ((self.get_clock().now().nanoseconds - stamp_ns) / 1e6 if stamp_ns else None)
        per_frame = {"tracked": result.num_tracked}
        if has_reference:
            per_frame.update(matches=result.num_matches, inliers=result.num_inliers)
        self._stats.processed(latency_ms, (time.perf_counter() - started) * 1e3, **per_frame)
        self._last_frame = {
            "num_keypoints": str(len(features)), "num_matches": str(result.num_matches),
            "num_inliers": str(result.num_inliers), "num_tracked": str(result.num_tracked),
            "is_keyframe": str(result.is_keyframe).lower()}

    def _log_restart(self, frame: KeypointFrame, restart: str | None, model: str) -> None:
        if restart is None:
            return
        if restart == "first frame":
            self.get_logger().info(f"first Keypoints frame (session {frame.session_id}, "
                                   f"model {model}, {frame.features.descriptor_type} "
                                   f"descriptors of dimension {frame.features.descriptor_dim})")
        else:
            self._log_warning(f"tracking starts over: {restart}")

    def _on_lost(self, info) -> None:
        self._stats.count("messages_lost", info.total_count_change)
        self._log_warning(f"DDS lost {info.total_count_change} Keypoints message(s) "
                          f"({info.total_count} in total)")

    def _incompatible_qos(self, topic: str):
        def warn(info):
            self._stats.count("incompatible_qos", info.total_count_change)
            policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
            self.get_logger().warning(
                f"incompatible QoS on {topic}: a peer's {policy} policy cannot match this "
                f"node's; no messages flow between them (set the qos parameter)")
        return warn

    # ---- output ------------------------------------------------------------
    @staticmethod
    def _matches_msg(frame: KeypointFrame, result: TrackResult):
        reference: KeypointFrame = result.reference_tag
        fields = matches_fields(result, session_id=frame.session_id,
                                reference_sequence=reference.sequence,
                                current_sequence=frame.sequence,
                                current_num_keypoints=len(frame.features))
        return matches_msg(frame.header, fields)

    def _publish_vins_features(self, frame: KeypointFrame, result: TrackResult) -> None:
        feature_topic = self._vins_publisher.topic_name
        now = time.monotonic()
        if self._vins_since is None:
            self._vins_since = now
        if result.normalized is None:  # no usable calibration
            self._stats.count("vins_frames_without_calibration")
            state = self._calibration.state
            # A driver's first CameraInfo may come just after its first image.
            if state == "missing" and now - self._vins_since < MISSING_GRACE_S:
                return
            if self._vins_state != "waiting":
                self._vins_state = "waiting"
                self.get_logger().warning(
                    f"no usable CameraInfo on {self.resolve_topic_name('camera_info')} "
                    f"(calibration {state}): {feature_topic} (VINS "
                    f"features) is not published until a calibrated CameraInfo for "
                    f"{frame.features.image_size[0]}x{frame.features.image_size[1]} arrives")
            return
        if self._vins_state != "publishing":
            self._vins_state = "publishing"
            self.get_logger().info(f"publishing VINS features on {feature_topic}")
        cloud = vins_feature_cloud(frame.header, [CameraFeatures.from_track_result(
            VINS_CAMERA_ID, frame.features.keypoints, result)])
        self._vins_publisher.publish(cloud)
        self._stats.count("vins_features_published")

    def _debug_image_wanted(self) -> bool:
        return (self._values["publish_debug_image"]
                and self._debug_publisher.get_subscription_count() > 0)

    def _publish_debug_image(self, frame: KeypointFrame, result: TrackResult) -> None:
        if not self._debug_image_wanted():
            return
        current = frame.features
        canvas = self._background(frame.stamp_ns, *current.image_size)
        accepted = result.inliers
        reference_xy = np.zeros((0, 2), np.float32)
        if result.reference_tag is not None:
            reference_xy = result.reference_tag.features.keypoints[
                result.reference_indices[accepted]]
        others = np.ones(len(current), bool)
        others[result.current_indices[accepted]] = False
        drawing = draw_tracks(canvas, reference_xy,
                              current.keypoints[result.current_indices[accepted]],
                              current.keypoints[others])
        self._debug_publisher.publish(image_msg(drawing, frame.header))
        self._stats.count("debug_images_published")

    def _follow_images(self) -> None:
        """Subscribe to `image` only while a debug image is drawn on it."""
        from sensor_msgs.msg import Image

        wanted = self._debug_image_wanted() and self._values["debug_background"] == "image"
        if wanted and self._image_subscription is None:
            self._image_subscription = self.create_subscription(
                Image, "image", self._on_image, qos_profile("sensor_data"))
        elif not wanted and self._image_subscription is not None:
            self.destroy_subscription(self._image_subscription)
            self._image_subscription = None
            with self._image_arrived:
                self._images.clear()

    def _on_image(self, msg) -> None:
        with self._image_arrived:
            self._images.append(msg)
            self._image_arrived.notify_all()

    def _background(self, stamp_ns: int, width: int, height: int) -> np.ndarray:
        """The camera frame stamped `stamp_ns` (worker thread; the executor
        thread appends frames), or a blank canvas."""
        def frame():
            return next((msg for msg in reversed(self._images)
                         if stamp_to_ns(msg.header.stamp) == stamp_ns), None)

        with self._image_arrived:
            msg = frame()
            if msg is None and self._image_subscription is not None:
                self._image_arrived.wait_for(lambda: frame() is not None, BACKGROUND_WAIT_S)
                msg = frame()
        if msg is not None:
            try:
                return image_msg_to_array(msg)
            except MessageError:
                pass
        return blank_canvas(width, height)

    # ---- parameters, diagnostics -------------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        problem = parameters.check_changes(parameters.MATCHER_PARAMETERS, changes)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        values = dict(self._values)
        values.update({p.name: p.value for p in changes if p.name in values})
        try:
            config = parameters.tracker_config(values)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        self._front_end.configure(config)
        self._calibration.max_age_s = float(values["calibration_max_age"])
        return SetParametersResult(successful=True)

    def _diagnostic_status(self):
        level, values = self._stats.snapshot()
        front_end = self._front_end
        config = front_end.tracker.config
        values.update({"resets": str(front_end.resets),
                       "sequence_gaps": str(front_end.sequence_gaps),
                       "keyframes": str(front_end.keyframes),
                       "track_ids_issued": str(front_end.tracker.ids_issued),
                       "reference": config.reference, "verification": config.verification})
        values.update(self._last_frame)
        values.update(self._calibration.diagnostics())
        return level, summary_message(level, values), values

    def close(self) -> str:
        """Stop the worker (node_main.run, before the context shuts down); the
        closing line's summary."""
        return self._stats.closing_summary(self._worker.close().in_flight)


def main(args=None) -> int:
    return run(MatcherNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
