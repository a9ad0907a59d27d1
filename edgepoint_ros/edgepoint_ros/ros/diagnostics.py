"""Counters the nodes keep and the /diagnostics messages they publish.

Each node owns a `FrameStatistics` (thread-safe: the subscription callback and
the worker thread both update it) and a `DiagnosticsPublisher` that publishes
one diagnostic_msgs/DiagnosticStatus named after the node's fully qualified
name (e.g. "/extractor") on `/diagnostics` every `diagnostics_period` seconds.

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
                            CameraInfo state (ok | missing | invalid | stale | size,
                            see calibration.py) of the extractor and the matcher; the
                            stereo node reports them per camera as <camera>_calibration...
    sets_synchronised, frames_without_partner, <camera>_no_partner,
    <camera>_queue_overflow, <camera>_late, <camera>_queued
                            the stereo node's synchronisation (stream_sync.py)

`ThrottledLog` keeps a flood of identical problems (a broken camera sending
bad frames at 30 Hz) from flooding the log while every one is still counted.

Level: WARN while frames were lost, rejected as bad, or QoS was incompatible
within the last period; OK otherwise. (Skipping frames is the newest-frame
policy doing its job on a slow machine; it is reported, not warned about.)
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Callable

import numpy as np


class FrameStatistics:
    """Totals and sliding windows of one node's frame handling."""

    def __init__(self, window_s: float = 5.0, latency_samples: int = 300):
        self._lock = threading.Lock()
        self.window_s = window_s
        self.totals: dict[str, int] = {"frames_received": 0, "frames_processed": 0,
                                       "frames_skipped": 0, "messages_lost": 0, "errors": 0}
        self.last_error = ""
        self._received_times: deque = deque()
        self._processed_times: deque = deque()
        self._latencies_ms: deque = deque(maxlen=latency_samples)
        self._processing_ms: deque = deque(maxlen=latency_samples)
        self._per_frame: dict[str, deque] = {}
        self._problems_at_last_report = 0
        self._started = time.monotonic()

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.totals[name] = self.totals.get(name, 0) + int(amount)

    def received(self) -> None:
        now = time.monotonic()
        with self._lock:
            self.totals["frames_received"] += 1
            self._received_times.append(now)

    def processed(self, latency_ms: float | None, processing_ms: float,
                  **per_frame: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.totals["frames_processed"] += 1
            self._processed_times.append(now)
            if latency_ms is not None:
                self._latencies_ms.append(latency_ms)
            self._processing_ms.append(processing_ms)
            for name, value in per_frame.items():
                self._per_frame.setdefault(name, deque(maxlen=300)).append(float(value))

    def error(self, text: str) -> None:
        with self._lock:
            self.totals["errors"] += 1
            self.last_error = text

    def closing_summary(self, in_flight: int, **extra: int) -> str:
        """The node's closing line: its totals, and the frames still in flight
        at shutdown (received but never processed), which are not errors."""
        with self._lock:
            totals = dict(self.totals)
        parts = [f"{totals['frames_received']} frames received",
                 f"{totals['frames_processed']} processed",
                 f"{totals['frames_skipped']} skipped",
                 f"{totals['messages_lost']} lost",
                 f"{totals['errors']} errors",
                 f"{in_flight} in flight at shutdown"]
        parts += [f"{value} {name.replace('_', ' ')}" for name, value in extra.items()]
        return ", ".join(parts)

    def snapshot(self) -> tuple[int, dict[str, str]]:
        """(diagnostic level, values) for a DiagnosticStatus."""
        from diagnostic_msgs.msg import DiagnosticStatus

        now = time.monotonic()
        with self._lock:
            for times in (self._received_times, self._processed_times):
                while times and times[0] < now - self.window_s:
                    times.popleft()
            values = {name: str(value) for name, value in self.totals.items()}
            window = max(min(self.window_s, now - self._started), 1e-3)  # young node: its age
            values["input_rate_hz"] = f"{len(self._received_times) / window:.2f}"
            values["processing_rate_hz"] = f"{len(self._processed_times) / window:.2f}"
            latencies = np.asarray(self._latencies_ms, np.float64)
            if latencies.size:
                values["latency_ms_p50"] = f"{np.percentile(latencies, 50):.2f}"
                values["latency_ms_p99"] = f"{np.percentile(latencies, 99):.2f}"
                values["latency_ms_max"] = f"{latencies.max():.2f}"
            if self._processing_ms:
                values["processing_ms_mean"] = f"{np.mean(self._processing_ms):.2f}"
            for name, samples in self._per_frame.items():
                values[f"{name}_per_frame"] = f"{np.mean(samples):.1f}"
            values["last_error"] = self.last_error
            problems = (self.totals["errors"] + self.totals["messages_lost"]
                        + self.totals.get("incompatible_qos", 0))
            level = (DiagnosticStatus.WARN if problems > self._problems_at_last_report
                     else DiagnosticStatus.OK)
            self._problems_at_last_report = problems
        return level, values


class ThrottledLog:
    """Logs a message at most once per `period_s` per kind of problem (the text
    with its numbers blanked), saying how many similar ones were not logged.

    `severity` is "error" or "warning". (rclpy remembers the severity of each
    logging call site and refuses a different one there, hence one call per
    severity below.)

    It remembers at most `max_kinds` kinds: texts carry message fields (a
    frame_id, an encoding), so a sender of ever-different garbage must not
    grow this table without bound; kinds not logged within the period go first.
    """

    def __init__(self, logger, severity: str, period_s: float = 5.0, max_kinds: int = 256):
        if severity not in ("error", "warning"):
            raise ValueError(f"severity must be 'error' or 'warning'; got {severity!r}")
        self._logger = logger
        self._severity = severity
        self._period_s = period_s
        self._max_kinds = max_kinds
        self._lock = threading.Lock()  # called from the executor and worker threads
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, text: str, kind: str | None = None) -> None:
        """Log `text` unless its kind was logged within the period; `kind`
        defaults to the text (e.g. pass the problem without the frame details)."""
        kind = re.sub(r"\d+", "#", text if kind is None else kind)
        now = time.monotonic()
        with self._lock:
            last_time, suppressed = self._last.get(kind, (-float("inf"), 0))
            if now - last_time < self._period_s:
                self._last[kind] = (last_time, suppressed + 1)
                return
            if kind not in self._last and len(self._last) >= self._max_kinds:
                self._forget(now)
            self._last[kind] = (now, 0)
        note = f" ({suppressed} similar not logged)" if suppressed else ""
        if self._severity == "error":
            self._logger.error(text + note)
        else:
            self._logger.warning(text + note)

    def _forget(self, now: float) -> None:
        """Make room: drop kinds whose period is over, else the oldest one."""
        expired = [k for k, (t, _) in self._last.items() if now - t >= self._period_s]
        for k in expired:
            del self._last[k]
        if len(self._last) >= self._max_kinds:
            del self._last[next(iter(self._last))]

    def __len__(self) -> int:
        """Number of kinds remembered."""
        return len(self._last)


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


def summary_message(level: int, values: dict[str, str]) -> str:
    """One line for DiagnosticStatus.message."""
    parts = [f"{values.get('processing_rate_hz', '0')} Hz"]
    if "latency_ms_p50" in values:
        parts.append(f"latency p50 {values['latency_ms_p50']} ms")
    for key in ("frames_skipped", "messages_lost", "errors"):
        if values.get(key, "0") != "0":
            parts.append(f"{key.replace('_', ' ')} {values[key]}")
    if level and values.get("last_error"):
        parts.append(f"last error: {values['last_error']}")
    return ", ".join(parts)
