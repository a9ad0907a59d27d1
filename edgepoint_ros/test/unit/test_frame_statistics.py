"""A node's counters and log throttling without ROS (what reaches /diagnostics
over DDS: test_ros_pipeline.py, test_ros_faults.py)."""
from __future__ import annotations

import pytest

from edgepoint_ros import frame_statistics
from edgepoint_ros.frame_statistics import (OK, WARN, FrameStatistics, RecentRate,
                                            ThrottledLog, summary_message)


class Lines(list):
    def error(self, text):
        self.append(("error", text))

    def warning(self, text):
        self.append(("warning", text))


def test_levels_are_diagnostic_msgs_levels():
    diagnostic_msgs = pytest.importorskip("diagnostic_msgs.msg")
    status = diagnostic_msgs.DiagnosticStatus
    assert (OK, WARN) == (status.OK, status.WARN)


def test_totals_windows_and_per_frame_means():
    stats = FrameStatistics()
    for latency in (10.0, 20.0, 30.0):
        stats.received()
        stats.processed(latency, 4.0, keypoints=100 * latency)
    stats.received()
    stats.count("frames_skipped")
    stats.count("header_warnings", 2)
    level, values = stats.snapshot()
    assert level == OK
    assert {key: values[key] for key in ("frames_received", "frames_processed",
                                         "frames_skipped", "header_warnings", "errors")} == {
        "frames_received": "4", "frames_processed": "3", "frames_skipped": "1",
        "header_warnings": "2", "errors": "0"}
    assert values["latency_ms_p50"] == "20.00" and values["latency_ms_max"] == "30.00"
    assert values["processing_ms_mean"] == "4.00"
    assert values["keypoints_per_frame"] == "2000.0"
    assert float(values["input_rate_hz"]) > 0 and values["last_error"] == ""


def test_a_problem_warns_in_the_next_snapshot_only():
    stats = FrameStatistics()
    stats.error("dropped frame: bad encoding")
    level, values = stats.snapshot()
    assert level == WARN and values["last_error"] == "dropped frame: bad encoding"
    assert stats.snapshot()[0] == OK  # nothing new since
    stats.count("messages_lost", 3)
    assert stats.snapshot()[0] == WARN
    stats.count("incompatible_qos")
    assert stats.snapshot()[0] == WARN
    stats.count("frames_skipped", 50)  # the newest-frame policy at work: no warning
    assert stats.snapshot()[0] == OK


def test_rates_of_a_young_node_are_over_its_age(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(frame_statistics.time, "monotonic", lambda: now[0])
    stats = FrameStatistics(window_s=5.0)
    for _ in range(10):
        stats.received()
    now[0] += 1.0
    assert stats.snapshot()[1]["input_rate_hz"] == "10.00"
    now[0] += 10.0  # all outside the window
    assert stats.snapshot()[1]["input_rate_hz"] == "0.00"


def test_recent_rate_divides_by_the_whole_window(monkeypatch):
    now = [10.0]
    monkeypatch.setattr(frame_statistics.time, "monotonic", lambda: now[0])
    rate = RecentRate(window_s=5.0)
    for _ in range(10):
        rate.add()
        now[0] += 0.1
    assert rate.hz() == pytest.approx(2.0)  # 10 events in a window of 5 s
    now[0] += 5.0
    assert rate.hz() == 0.0


def test_a_total_is_read_by_name():
    stats = FrameStatistics()
    stats.count("incompatible_qos", 2)
    assert stats.total("incompatible_qos") == 2 and stats.total("never_counted") == 0


def test_closing_summary_names_what_was_in_flight():
    stats = FrameStatistics()
    stats.received()
    stats.received()
    stats.processed(None, 1.0)
    assert stats.closing_summary(1, frames_unmatched_at_end=2) == (
        "2 frames received, 1 processed, 0 skipped, 0 lost, 0 errors, "
        "1 in flight at shutdown, 2 frames unmatched at end")


def test_summary_message():
    values = {"processing_rate_hz": "29.80", "latency_ms_p50": "12.50", "frames_skipped": "0",
              "errors": "2", "last_error": "dropped image: short data"}
    assert summary_message(values) == ("29.80 Hz, latency p50 12.50 ms, errors 2, "
                                       "last error: dropped image: short data")
    assert summary_message({"processing_rate_hz": "0.00", "last_error": ""}) == "0.00 Hz"


def test_throttled_log_logs_a_kind_once_per_period_and_counts_the_rest(monkeypatch):
    now = [50.0]
    monkeypatch.setattr(frame_statistics.time, "monotonic", lambda: now[0])
    lines = Lines()
    log = ThrottledLog(lines, "warning", period_s=5.0)
    log("frame 1: stamp is 0")
    log("frame 2: stamp is 0")  # same kind: numbers are blanked
    log("frame 3: frame_id is empty")
    now[0] += 5.0
    log("frame 4: stamp is 0")
    assert lines == [("warning", "frame 1: stamp is 0"),
                     ("warning", "frame 3: frame_id is empty"),
                     ("warning", "frame 4: stamp is 0 (1 similar not logged)")]
    with pytest.raises(ValueError, match="severity must be 'error' or 'warning'"):
        ThrottledLog(lines, "info")


def test_throttled_log_remembers_a_bounded_number_of_kinds():
    lines = Lines()
    log = ThrottledLog(lines, "error", period_s=60.0, max_kinds=16)
    for i in range(500):  # garbage frame_ids: every text is a new kind
        log(f"dropped image (frame_id {'x' * i!r}): bad encoding")
    assert len(log) <= 16
    log("unsupported encoding 'abc' (frame 1)", kind="unsupported encoding")
    log("unsupported encoding 'abc' (frame 2)", kind="unsupported encoding")
    assert lines[-1] == ("error", "unsupported encoding 'abc' (frame 1)")  # the second: throttled
