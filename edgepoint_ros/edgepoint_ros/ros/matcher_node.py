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

Tracking is `frontend.TrackingFrontEnd` (no ROS; `tracking.Tracker` for ids,
ages, keyframes and velocities) configured by one parameter per
`TrackerConfig` field (mutual, ratio, max_distance, verification, ransac_*,
reference, keyframe_*), all changeable at run time (a bad value is refused
with the reason). It never tracks across frames that should not be paired: a
new sequence starts (new ids, no Matches; counted as resets and warned about)
when the extractor's session_id changes, the descriptors change or the stamp
does not advance (see frontend.py). Track ids keep counting across resets, so
an id is never reused.

The matcher follows the newest-frame policy like the extractor (newest_frame.py):
when tracking is slower than the input, it tracks the newest frame and counts
the frames in between as frames_skipped. sequence_gaps counts every extractor
frame that was not tracked (skipped here, or lost on the way).

CameraInfo (calibration_state.py): used when it is valid, not older than
calibration_max_age and made for the keypoints' image size; otherwise the
frame is tracked without it (no normalised coordinates, no `feature` output,
counted as vins_frames_without_calibration) and the problem is warned about
once; with publish_vins_features one WARN says that `feature` is not
published until a usable CameraInfo arrives (an INFO line when it starts).
The player's CameraInfo has K = 0 (uncalibrated) and is reported as invalid.

Debug image, made for RViz's Image display: the current camera frame (the
`image` message with the same stamp, waited for up to
BACKGROUND_WAIT_S since a large camera frame can arrive after the small
Keypoints made from it; a dark canvas if it does not come or
debug_background is 'blank') with, for each accepted match (verified, or
every match with verification none), a green line from the keypoint's
position in the reference frame to its position now (the classic
visual-odometry "flow" view, `frontend.flow_points`) and grey circles on the
other keypoints.

QoS events, the parameter skeleton and /diagnostics are node_base.py's.
"""
from __future__ import annotations

import time

from ..calibration_state import MISSING_GRACE_S
from ..conversions import (MessageError, image_msg, image_msg_to_array,
                           keypoints_msg_to_features, stamp_to_ns)
from ..drawing import blank_canvas, draw_tracks
from ..frontend import KeypointFrame, TrackingFrontEnd, flow_points
from ..stream_sync import StampedBuffer
from ..tracking import TrackResult
from . import parameters
from .node_base import FrameNode
from .node_main import apply_blas_threads, run
from .qos import describe, qos_profile
from .track_messages import matches_msg, set_normalized, set_tracks
from .vins_output import CameraFeatures, vins_feature_cloud

IMAGE_BUFFER_FRAMES = 30  # camera frames kept to find the one a debug image is drawn on
BACKGROUND_WAIT_S = 0.1   # how long a debug image waits for its camera frame
VINS_CAMERA_ID = 0        # a monocular front end is camera 0 for VINS-Fusion


class MatcherNode(FrameNode):
    DEFAULT_NAME = "matcher"
    PARAMETERS = parameters.MATCHER_PARAMETERS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._blas_threads = apply_blas_threads(self, self._values["blas_threads"])
        self._front_end = TrackingFrontEnd(parameters.tracker_config(self._values))
        self._images = StampedBuffer(IMAGE_BUFFER_FRAMES)
        self._image_subscription = None
        self._last_frame: dict[str, str] = {}

        from edgepoint_msgs.msg import Keypoints, Matches
        from sensor_msgs.msg import Image, PointCloud

        self._matches_publisher = self._output(Matches, "matches")
        self._tracked_publisher = self._output(Keypoints, "keypoints/tracked")
        self._vins_publisher = None
        # None, "waiting" (warned: `feature` not published, no calibration) or "publishing"
        self._vins_state: str | None = None
        self._vins_since: float | None = None  # first frame tracked for VINS
        if self._values["publish_vins_features"]:
            self._vins_publisher = self._output(PointCloud, "feature")
        self._debug_publisher = self._output(Image, "matches/debug_image")
        input_qos = qos_profile(self._values["qos"])
        self.create_subscription(Keypoints, "keypoints", self._on_keypoints, input_qos,
                                 event_callbacks=self._subscription_events("keypoints"))
        self._calibration = self._camera_info("camera_info")
        self._diagnostics = self._start_diagnostics()
        # Subscribes to / unsubscribes from `image` as debug-image viewers come and go.
        self.create_timer(0.5, self._follow_images)
        self._start_worker("matcher-worker", self._process)
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

    def _describe_item(self, msg) -> str:
        return f"Keypoints (session {msg.session_id}, sequence {msg.sequence})"

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
            self._matches_publisher.publish(
                matches_msg(frame.header, self._front_end.matches_fields(frame, result)))
        if self._vins_publisher is not None:
            self._publish_vins_features(frame, result)
        self._publish_debug_image(frame, result)

        per_frame = {"tracked": result.num_tracked}
        if has_reference:
            per_frame.update(matches=result.num_matches, inliers=result.num_inliers)
        self._stats.processed(self._latency_ms(frame.stamp_ns),
                              (time.perf_counter() - started) * 1e3, **per_frame)
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

    # ---- output ------------------------------------------------------------
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
        canvas = self._background(frame.stamp_ns, *frame.features.image_size)
        drawing = draw_tracks(canvas, *flow_points(frame, result))
        self._debug_publisher.publish(image_msg(drawing, frame.header))
        self._stats.count("debug_images_published")

    def _follow_images(self) -> None:
        """Subscribe to `image` only while a debug image is drawn on it."""
        from sensor_msgs.msg import Image

        wanted = self._debug_image_wanted() and self._values["debug_background"] == "image"
        if wanted and self._image_subscription is None:
            self._image_subscription = self.create_subscription(
                Image, "image", lambda msg: self._images.add(stamp_to_ns(msg.header.stamp), msg),
                qos_profile("sensor_data"))
        elif not wanted and self._image_subscription is not None:
            self.destroy_subscription(self._image_subscription)
            self._image_subscription = None
            self._images.clear()

    def _background(self, stamp_ns: int, width: int, height: int):
        """The camera frame stamped `stamp_ns` (worker thread; the executor
        thread adds frames), or a blank canvas."""
        msg = self._images.find(stamp_ns, BACKGROUND_WAIT_S
                                if self._image_subscription is not None else 0.0)
        if msg is not None:
            try:
                return image_msg_to_array(msg)
            except MessageError:
                pass
        return blank_canvas(width, height)

    # ---- parameters, diagnostics -------------------------------------------
    def _apply_parameters(self, values: dict) -> None:
        self._front_end.configure(parameters.tracker_config(values))

    def _hardware_id(self) -> str:
        return "cpu/numpy+opencv"

    def _diagnostic_values(self, values: dict[str, str]) -> None:
        front_end = self._front_end
        config = front_end.tracker.config
        values.update({"resets": str(front_end.resets),
                       "sequence_gaps": str(front_end.sequence_gaps),
                       "keyframes": str(front_end.keyframes),
                       "track_ids_issued": str(front_end.tracker.ids_issued),
                       "reference": config.reference, "verification": config.verification})
        values.update(self._last_frame)
        values.update(self._calibration.diagnostics())


def main(args=None) -> int:
    return run(MatcherNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
