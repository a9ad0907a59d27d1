"""Matcher node: each Keypoints frame matched against the previous one.

Topics
    in   keypoints            edgepoint_msgs/Keypoints
    in   image                sensor_msgs/Image, only while matches/debug_image has
                              subscribers and debug_background is 'image'
    out  matches              edgepoint_msgs/Matches (one per frame that has a reference)
    out  matches/debug_image  sensor_msgs/Image, only while subscribed
    out  /diagnostics         matches_per_frame, resets, sequence_gaps, latency...

Matching is `edgepoint_ros.matching.match_descriptors` (mutual nearest
neighbour, optional ratio test and distance limit: parameters mutual, ratio,
max_distance, changeable at run time). `FrameMatcher` holds the stream logic
and no ROS: it never pairs frames that should not be paired. It starts over
(the frame becomes the new reference, nothing is published for it, the reset
is counted and logged) when
  * the extractor's session_id changes (the extractor restarted: its sequence
    numbers and maybe its model are new),
  * the descriptor type or dimension changes (e.g. the model parameter changed),
  * the stamp goes backwards (a bag or player looped).
The matcher follows the newest-frame policy like the extractor (newest_frame.py):
when matching is slower than the input, it matches the newest frame against
the last one it matched and counts the frames in between as frames_skipped.
sequence_gaps counts every extractor frame that was not matched (skipped here,
or lost on the way: sequence_gaps - frames_skipped).

Debug image, made for RViz's Image display: the current camera frame (the
`image` message with the same stamp; a dark canvas if it is not at hand or
debug_background is 'blank') with, for each match, a green line from the
keypoint's position in the reference frame to its position now (the classic
visual-odometry "flow" view) and grey circles on unmatched keypoints.

The geometric verification, tracking and VINS output that come later plug in
after `FrameMatcher.push` (they get both frames and the index pairs).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node

from ..features import Features
from ..matching import match_descriptors
from . import parameters
from .conversions import (MessageError, image_msg, image_msg_to_array,
                          keypoints_msg_to_features, stamp_to_ns)
from .diagnostics import DiagnosticsPublisher, FrameStatistics, ThrottledLog, summary_message
from .newest_frame import NewestFrameWorker
from .node_main import run
from .qos import OUTPUT_QOS, describe, qos_profile
from .visualization import blank_canvas, draw_tracks

IMAGE_BUFFER_FRAMES = 30  # camera frames kept to find the one a debug image is drawn on


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


@dataclass
class FrameMatch:
    reference: KeypointFrame
    current: KeypointFrame
    reference_indices: np.ndarray
    current_indices: np.ndarray
    distances: np.ndarray


class FrameMatcher:
    """Matches each frame of one keypoint stream against the previous frame."""

    def __init__(self, mutual: bool = True, ratio: float = 0.0,
                 max_distance: float | None = None):
        self.mutual, self.ratio, self.max_distance = mutual, ratio, max_distance
        self.previous: KeypointFrame | None = None
        self.resets = 0
        self.sequence_gaps = 0

    def reset_reason(self, frame: KeypointFrame) -> str | None:
        """Why `frame` cannot be matched against the previous one (None: it can)."""
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
        if frame.stamp_ns < previous.stamp_ns:
            return "stamp went backwards (source looped or restarted)"
        return None

    def push(self, frame: KeypointFrame) -> tuple[FrameMatch | None, str | None]:
        """Match `frame` against the previous frame, then make it the previous one.

        Returns (match or None, reset reason or None)."""
        reason = self.reset_reason(frame)
        previous, self.previous = self.previous, frame
        if reason is not None:
            if previous is not None:
                self.resets += 1
            return None, reason
        if frame.sequence > previous.sequence + 1:
            self.sequence_gaps += frame.sequence - previous.sequence - 1
        idx_ref, idx_cur, distances = match_descriptors(
            previous.features.descriptors, frame.features.descriptors,
            descriptor_type=frame.features.descriptor_type, mutual=self.mutual,
            ratio=self.ratio, max_distance=self.max_distance)
        return FrameMatch(previous, frame, idx_ref, idx_cur, distances), None


class MatcherNode(Node):
    DEFAULT_NAME = "matcher"

    def __init__(self, **kwargs):
        super().__init__(self.DEFAULT_NAME, **kwargs)
        self._values = parameters.declare(self, parameters.MATCHER_PARAMETERS)
        self._matcher = FrameMatcher()
        self._configure_matcher(self._values)
        self._stats = FrameStatistics()
        self._log_error = ThrottledLog(self.get_logger(), "error")
        self._log_warning = ThrottledLog(self.get_logger(), "warning")
        self._images: deque = deque(maxlen=IMAGE_BUFFER_FRAMES)
        self._image_subscription = None

        from edgepoint_msgs.msg import Keypoints, Matches
        from sensor_msgs.msg import Image

        self._matches_publisher = self.create_publisher(
            Matches, "matches", OUTPUT_QOS,
            event_callbacks=PublisherEventCallbacks(
                incompatible_qos=self._incompatible_qos("matches")))
        self._debug_publisher = self.create_publisher(Image, "matches/debug_image", OUTPUT_QOS)
        input_qos = qos_profile(self._values["qos"])
        self.create_subscription(
            Keypoints, "keypoints", self._on_keypoints, input_qos,
            event_callbacks=SubscriptionEventCallbacks(
                message_lost=self._on_lost, incompatible_qos=self._incompatible_qos("keypoints")))
        self._diagnostics = DiagnosticsPublisher(self, self._values["diagnostics_period"],
                                                 self._diagnostic_status, lambda: "cpu/numpy")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Subscribes to / unsubscribes from `image` as debug-image viewers come and go.
        self.create_timer(0.5, self._follow_images)
        self._worker = NewestFrameWorker("matcher-worker", self._process,
                                         lambda: self._stats.count("frames_skipped"),
                                         self._on_error)
        self.get_logger().info(
            f"ready: matching {self.resolve_topic_name('keypoints')} (QoS "
            f"{describe(input_qos)}), mutual {self._matcher.mutual}, ratio "
            f"{self._matcher.ratio}, max_distance {self._matcher.max_distance}")

    def _configure_matcher(self, values: dict) -> None:
        self._matcher.mutual = bool(values["mutual"])
        self._matcher.ratio = float(values["ratio"])
        self._matcher.max_distance = float(values["max_distance"]) or None

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
        gaps_before = self._matcher.sequence_gaps
        result, reset = self._matcher.push(frame)
        if reset is not None:
            if reset != "first frame":
                self._log_warning(f"matching starts over: {reset}")
            else:
                self.get_logger().info(f"first Keypoints frame (session {frame.session_id}, "
                                       f"model {msg.model}, {frame.features.descriptor_type} "
                                       f"descriptors of dimension "
                                       f"{frame.features.descriptor_dim})")
            return
        if self._matcher.sequence_gaps > gaps_before:
            self._log_warning(f"{self._matcher.sequence_gaps - gaps_before} Keypoints frame(s) "
                              f"before sequence {frame.sequence} were not matched (skipped "
                              f"here or never received)")
        self._matches_publisher.publish(self._matches_msg(result))
        stamp_ns = frame.stamp_ns
        latency_ms = ((self.get_clock().now().nanoseconds - stamp_ns) / 1e6 if stamp_ns else None)
        self._publish_debug_image(result)
        self._stats.processed(latency_ms, (time.perf_counter() - started) * 1e3,
                              matches=len(result.distances))

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
    def _matches_msg(result: FrameMatch):
        import array

        from edgepoint_msgs.msg import Matches

        msg = Matches()
        msg.header = result.current.header
        msg.reference_stamp = result.reference.header.stamp
        msg.session_id = result.current.session_id
        msg.reference_sequence = result.reference.sequence
        msg.current_sequence = result.current.sequence
        msg.reference_num_keypoints = len(result.reference.features)
        msg.current_num_keypoints = len(result.current.features)
        msg.reference_indices = array.array(
            "I", result.reference_indices.astype(np.uint32).tobytes())
        msg.current_indices = array.array("I", result.current_indices.astype(np.uint32).tobytes())
        msg.distances = array.array("f", result.distances.astype(np.float32).tobytes())
        msg.verification = Matches.VERIFICATION_NONE
        return msg

    def _debug_image_wanted(self) -> bool:
        return (self._values["publish_debug_image"]
                and self._debug_publisher.get_subscription_count() > 0)

    def _publish_debug_image(self, result: FrameMatch) -> None:
        if not self._debug_image_wanted():
            return
        current = result.current.features
        canvas = self._background(result.current.stamp_ns, *current.image_size)
        unmatched = np.ones(len(current), bool)
        unmatched[result.current_indices] = False
        drawing = draw_tracks(canvas,
                              result.reference.features.keypoints[result.reference_indices],
                              current.keypoints[result.current_indices],
                              current.keypoints[unmatched])
        self._debug_publisher.publish(image_msg(drawing, result.current.header))
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
            self._images.clear()

    def _on_image(self, msg) -> None:
        self._images.append(msg)

    def _background(self, stamp_ns: int, width: int, height: int) -> np.ndarray:
        for msg in reversed(list(self._images)):  # a copy: the executor thread appends
            if stamp_to_ns(msg.header.stamp) == stamp_ns:
                try:
                    return image_msg_to_array(msg)
                except MessageError:
                    break
        return blank_canvas(width, height)

    # ---- parameters, diagnostics -------------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        problem = parameters.check_changes(parameters.MATCHER_PARAMETERS, changes)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        self._values.update({p.name: p.value for p in changes if p.name in self._values})
        self._configure_matcher(self._values)
        return SetParametersResult(successful=True)

    def _diagnostic_status(self):
        level, values = self._stats.snapshot()
        values.update({"resets": str(self._matcher.resets),
                       "sequence_gaps": str(self._matcher.sequence_gaps)})
        return level, summary_message(level, values), values

    def close(self) -> None:
        self._worker.close()


def main(args=None) -> int:
    return run(MatcherNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
