"""What a node that processes a stream of frames counts, and how it logs repeated problems (no ROS).

`FrameStatistics` (thread-safe: a subscription callback and a worker thread
both update it) keeps the totals and sliding windows that a node publishes
in /diagnostics (ros/diagnostics.py lists the key names):
    frames_received, frames_processed, frames_skipped, messages_lost, errors
                            totals since the node started (`count` adds others)
    input_rate_hz, processing_rate_hz
                            over the last `window_s` seconds
    latency_ms_p50, latency_ms_p99, latency_ms_max
                            header.stamp -> publish, over the last frames
    processing_ms_mean      time spent on one frame in the node
    <name>_per_frame        means of what `processed` was given per frame
    last_error              text of the most recent error ("" if none)

Level (`snapshot`): WARN while frames were lost, rejected as bad, or QoS was
incompatible since the last snapshot; OK otherwise. (Skipping frames is the
newest-frame policy doing its job on a slow machine; it is reported, not
warned about.) OK and WARN are diagnostic_msgs/DiagnosticStatus's values
(a `byte` field: rclpy gives them as 1-byte bytes).

`RecentRate` is a rate over a sliding window (the player's publish_rate_hz).
`ThrottledLog` keeps a flood of identical problems (a broken camera sending
bad frames at 30 Hz) from flooding the log while every one is still counted.
`summary_message` is the one-line DiagnosticStatus.message.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque

import numpy as np

OK, WARN = b"\x00", b"\x01"  # diagnostic_msgs/DiagnosticStatus.OK and .WARN


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

    def total(self, name: str) -> int:
        with self._lock:
            return self.totals.get(name, 0)

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
        """(diagnostic level, OK or WARN; values) for a DiagnosticStatus."""
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
            level = WARN if problems > self._problems_at_last_report else OK
            self._problems_at_last_report = problems
        return level, values


class RecentRate:
    """Events per second over the last `window_s` seconds (always divided by
    the whole window, also while the count is younger than it)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._lock = threading.Lock()
        self._times: deque = deque()

    def add(self) -> None:
        with self._lock:
            self._times.append(time.monotonic())

    def hz(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] < now - self.window_s:
                self._times.popleft()
            return len(self._times) / self.window_s


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


def summary_message(values: dict[str, str]) -> str:
    """One line for DiagnosticStatus.message (with the last error, if any)."""
    parts = [f"{values.get('processing_rate_hz', '0')} Hz"]
    if "latency_ms_p50" in values:
        parts.append(f"latency p50 {values['latency_ms_p50']} ms")
    for key in ("frames_skipped", "messages_lost", "errors"):
        if values.get(key, "0") != "0":
            parts.append(f"{key.replace('_', ' ')} {values[key]}")
    if values.get("last_error"):
        parts.append(f"last error: {values['last_error']}")
    return ", ".join(parts)
