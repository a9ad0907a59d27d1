"""The /diagnostics messages the nodes publish, and the key names they carry.

Each node owns a `DiagnosticsPublisher` that publishes one
diagnostic_msgs/DiagnosticStatus named after the node's fully qualified name
(e.g. "/extractor") on `/diagnostics` every `diagnostics_period` seconds; the
counters behind it are the core's `frame_statistics.FrameStatistics` (no ROS).

Key names are stable (tools and tests read them, see `status_values`):
    frames_received, frames_processed, frames_skipped, messages_lost, errors
                            totals since the node started
    input_rate_hz, processing_rate_hz
                            over the last `window_s` seconds
    latency_ms_p50, latency_ms_p99, latency_ms_max
                            header.stamp -> publish, over the last frames
    processing_ms_mean      time spent on one frame in the node
    last_error              text of the most recent error ("" if none)
plus node-specific keys (keypoints_per_frame, matches_per_frame, runtime, ...),
among them
    num_keypoints, num_matches, num_inliers, num_tracked, is_keyframe
                            the matcher's last frame (tracked = continuing a track)
    inliers_per_frame, tracked_per_frame, keyframes, resets, sequence_gaps,
    track_ids_issued, vins_features_published, vins_frames_without_calibration
                            the matcher's tracking
    calibration, camera_info_received, camera_info_invalid
                            CameraInfo state (ok | missing | uncalibrated | invalid | stale
                            | size, see calibration_state.py) of the extractor and the matcher; the
                            stereo node reports them per camera as <camera>_calibration...
    sets_synchronised, frames_without_partner, <camera>_no_partner,
    <camera>_queue_overflow, <camera>_late, <camera>_queued
                            the stereo node's synchronisation (stream_sync.py)
    <topic>_publishers, <topic>_subscribers
                            the DDS links of each input and output (node_base.py)

Level: WARN while frames were lost, rejected as bad, or QoS was incompatible
within the last period; OK otherwise (`FrameStatistics.snapshot`).
"""
from __future__ import annotations

from typing import Callable


class DiagnosticsPublisher:
    """Publishes a node's status on /diagnostics from a timer.

    `collect()` returns (level, message, values); `hardware_id` names what
    does the work (e.g. "onnxruntime/CPUExecutionProvider").
    """

    def __init__(self, node, period_s: float,
                 collect: Callable[[], tuple[int, str, dict[str, str]]],
                 hardware_id: Callable[[], str] = lambda: ""):
        from diagnostic_msgs.msg import DiagnosticArray

        self._node = node
        self._collect = collect
        self._hardware_id = hardware_id
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)

    def publish(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        level, message, values = self._collect()
        status = DiagnosticStatus(level=level, name=self._node.get_fully_qualified_name(),
                                  message=message, hardware_id=self._hardware_id())
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)


def status_values(status) -> dict[str, str]:
    """A DiagnosticStatus's key/values as a dict."""
    return {kv.key: kv.value for kv in status.values}
