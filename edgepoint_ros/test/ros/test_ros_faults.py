"""Faults over real DDS: a camera that dies and comes back, an extractor that
restarts under a running matcher, a 1000 Hz burst, QoS mismatches.

Node processes for the whole module (started in parallel once):
    /faults_input    extractor (ORB: fast and deterministic), reliable input QoS,
                     fed by player processes and by this process
    /faults_restart  extractor + matcher; the test kills the extractor and starts
                     a new one while the matcher keeps running
Counters are compared as differences between two /diagnostics snapshots, so the
tests do not depend on each other's order.
"""
from __future__ import annotations

import itertools
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from edgepoint_msgs.msg import Keypoints, Matches
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

import ros_harness as harness
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile

FAST = {"diagnostics_period": 0.2}
ORB = {**FAST, "model": "orb", "max_keypoints": 300, "qos": "reliable"}
INPUT = "/faults_input"
RESTART = "/faults_restart"
COUNTERS = ("frames_received", "frames_processed", "frames_skipped", "errors", "messages_lost")
_seconds = itertools.count(5000)


@pytest.fixture(scope="module")
def processes():
    started = {
        "input": harness.start_node("extractor", INPUT, ORB),
        "restart_extractor": harness.start_node("extractor", RESTART, ORB),
        "restart_matcher": harness.start_node("matcher", RESTART, FAST),
    }
    with harness.stopped(*started.values()):
        for process in started.values():
            harness.wait_ready(process)
        yield started


@pytest.fixture(scope="module")
def probe():
    probe = harness.make_probe("test_ros_faults")
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def diagnostics(probe):
    return probe.record(DiagnosticArray, "/diagnostics", 100, keep=3000)


def counters(diagnostics, node: str) -> dict[str, int]:
    """Totals (and the extractor's next Keypoints sequence) of a /diagnostics
    status published after this call."""
    diagnostics.clear()
    values = harness.wait_for_diagnostics(diagnostics, node, lambda v: True, 10.0)
    assert values is not None, f"no /diagnostics from {node}"
    return {key: int(values.get(key, 0))
            for key in COUNTERS + ("incompatible_qos", "sequence")}


def record_keypoints(probe, namespace: str):
    """Keypoints of `namespace`, recorded from the moment this returns (the
    subscription has matched the extractor's publisher)."""
    recording = probe.record(Keypoints, f"{namespace}/keypoints", OUTPUT_QOS)
    assert probe.wait_for_recordings(recording)
    return recording


def difference(after: dict, before: dict) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def wait_quiet(recording, quiet_s: float = 1.0, limit_s: float = 15.0) -> None:
    """Until nothing arrived for `quiet_s` seconds."""
    recording.wait_for_quiet(quiet_s, limit_s)


def start_player(namespace: str, frame_id: str, **parameters):
    return harness.start_node("player", namespace, {
        **FAST, "rate_hz": 15.0, "qos": "reliable", "wait_for_subscribers": 1,
        "frame_id": frame_id, **parameters})


# ---- the camera dies and comes back ------------------------------------------------
def test_extractor_keeps_serving_when_the_camera_dies_and_comes_back(processes, probe,
                                                                     diagnostics):
    extractor = processes["input"]
    keypoints = record_keypoints(probe, INPUT)
    name = f"{INPUT}/extractor"

    first = start_player(INPUT, "camera_a")
    with harness.stopped(first):
        assert keypoints.wait_for(lambda m: m.header.frame_id == "camera_a", 30.0), \
            first.log_tail()
        assert probe.wait_until(
            lambda: sum(m.header.frame_id == "camera_a" for m in keypoints.snapshot()) >= 10,
            20.0)
        first.kill()  # the camera driver crashes: no clean DDS goodbye
    assert first.returncode == -9
    wait_quiet(keypoints)
    before = counters(diagnostics, name)
    silent = harness.wait_for_diagnostics(
        diagnostics, name, lambda v: float(v["last_frame_age_s"]) >= 1.0, 10.0)
    assert silent is not None, "last_frame_age_s does not grow while the camera is silent"
    assert extractor.alive(), extractor.log_tail()
    session = keypoints.snapshot()[-1].session_id
    last_sequence = keypoints.snapshot()[-1].sequence
    keypoints.clear()

    second = start_player(INPUT, "camera_b", max_frames=30, loop=False)
    with harness.stopped(second):
        assert second.wait(60.0) == 0, second.log_tail()
    assert "finished: published 30 frames" in second.log()
    wait_quiet(keypoints)
    change = difference(counters(diagnostics, name), before)

    received = keypoints.snapshot()
    assert {m.header.frame_id for m in received} == {"camera_b"}
    # The same extractor session kept serving: its sequence numbers carry on.
    assert {m.session_id for m in received} == {session}
    assert received[0].sequence == last_sequence + 1
    # Reliable QoS: every frame of the new camera arrived; each was processed or skipped.
    assert change["frames_received"] == 30, change
    assert change["errors"] == 0 and change["messages_lost"] == 0, change
    assert change["frames_processed"] + change["frames_skipped"] == 30, change
    assert received[-1].sequence == last_sequence + change["frames_processed"], change
    assert "publisher(s) on image connected" in extractor.log()


# ---- the extractor restarts under a running matcher ---------------------------------
def test_matcher_never_pairs_frames_of_two_extractor_sessions(processes, probe, diagnostics):
    keypoints = record_keypoints(probe, RESTART)
    matches = probe.record(Matches, f"{RESTART}/matches", OUTPUT_QOS)
    matcher = processes["restart_matcher"]
    resets_before = int(harness.wait_for_diagnostics(
        diagnostics, f"{RESTART}/matcher", lambda v: True, 10.0)["resets"])

    player = start_player(RESTART, "camera", rate_hz=10.0)
    with harness.stopped(player):
        assert probe.wait_until(lambda: len(matches) >= 5, 30.0), matcher.log_tail()
        old_session = keypoints.snapshot()[0].session_id
        processes["restart_extractor"].kill()
        replacement = harness.start_node("extractor", RESTART, ORB)
        with harness.stopped(replacement):
            harness.wait_ready(replacement)
            assert probe.wait_until(
                lambda: sum(m.session_id != old_session for m in matches.snapshot()) >= 5, 30.0
            ), f"no Matches from the new session:\n{matcher.log_tail()}"
            # This process discovers the new extractor on its own, maybe later than the
            # matcher did on a busy machine (missed discovery announcements are repeated).
            assert probe.wait_until(
                lambda: sum(m.session_id != old_session for m in keypoints.snapshot()) >= 3,
                30.0), "this process never received the new extractor's Keypoints"
            player.stop()
            wait_quiet(matches)
            values = harness.wait_for_diagnostics(
                diagnostics, f"{RESTART}/matcher",
                lambda v: int(v["resets"]) >= resets_before + 1, 10.0)
    assert matcher.alive(), matcher.log_tail()

    sessions = {m.session_id for m in keypoints.snapshot()}
    assert len(sessions) == 2 and old_session in sessions, sessions
    new_session = (sessions - {old_session}).pop()
    frames = {(m.session_id, m.sequence): m for m in keypoints.snapshot()}
    session_of_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m.session_id
                        for m in keypoints.snapshot()}
    # This process may miss a session's first Keypoints (its subscription matches a
    # new publisher a moment after the matcher does); every later frame it holds.
    first_recorded = {session: min(seq for s, seq in frames if s == session)
                      for session in sessions}
    for match in matches.snapshot():
        stamp = (match.reference_stamp.sec, match.reference_stamp.nanosec)
        # Both frames of every pair come from the session the Matches names.
        assert session_of_stamp.get(stamp, match.session_id) == match.session_id
        assert match.reference_sequence < match.current_sequence
        reference = frames.get((match.session_id, match.reference_sequence))
        current = frames.get((match.session_id, match.current_sequence))
        if reference is None or current is None:
            assert match.reference_sequence < first_recorded[match.session_id]
            continue
        assert harness.same_stamp(reference.header.stamp, match.reference_stamp)
        assert harness.same_stamp(current.header.stamp, match.header.stamp)
    assert {m.session_id for m in matches.snapshot()} == {old_session, new_session}
    # The first frame of the new session started matching over: exactly one reset.
    assert int(values["resets"]) == resets_before + 1
    assert matcher.wait_for_log(
        f"extractor session changed from {old_session} to {new_session}", 5.0)


# ---- a 1000 Hz burst ----------------------------------------------------------------
def test_a_1000_hz_burst_is_served_newest_first_without_a_queue(processes, probe, diagnostics):
    extractor = processes["input"]
    name = f"{INPUT}/extractor"
    publisher = probe.publisher(Image, f"{INPUT}/image", qos_profile("reliable"))
    keypoints = record_keypoints(probe, INPUT)
    assert probe.wait_for_subscribers(publisher)
    msg = harness.image_to_msg(harness.natural_image(), "bgr8", None, "burst_camera")
    before = counters(diagnostics, name)
    memory_before = extractor.resident_memory_bytes()

    # 1000 Hz: ORB at 300 keypoints extracts a 640x480 frame in about 4.6 ms here
    # (median of 50), so a 200 Hz burst (5 ms) did not always outrun it
    frames, period = 300, 1.0 / 1000.0
    stamps = []
    started = time.perf_counter()
    for i in range(frames):
        msg.header.stamp = harness.stamp_of(next(_seconds), 0)
        stamps.append(msg.header.stamp)
        publisher.publish(msg)
        delay = started + (i + 1) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # the burst's pacing (1000 Hz) is what is tested
    rate = frames / (time.perf_counter() - started)

    newest = keypoints.wait_for(lambda m: harness.same_stamp(m.header.stamp, stamps[-1]), 10.0)
    assert newest is not None, "the newest frame of the burst was never processed"
    memory_after = extractor.resident_memory_bytes()
    wait_quiet(keypoints, quiet_s=1.0)
    change = difference(counters(diagnostics, name), before)
    served = [m for m in keypoints.snapshot() if m.header.frame_id == "burst_camera"]

    # Nothing was queued behind the newest frame: it is the last Keypoints published
    # (sequence numbers count what the extractor published; this process, busy
    # publishing the burst, may itself have missed some of them).
    assert newest.sequence == before["sequence"] + change["frames_processed"] - 1, change
    assert served[-1] is newest or served[-1].sequence == newest.sequence
    order = [stamps.index(m.header.stamp) for m in served]
    assert order == sorted(order) and len(set(order)) == len(order)  # never an older frame
    assert [m.sequence for m in served] == sorted({m.sequence for m in served})
    assert change["frames_skipped"] > 0, f"burst at {rate:.0f} Hz never outran the extractor"
    assert change["frames_processed"] < frames
    assert change["frames_received"] == (change["frames_processed"] + change["frames_skipped"]
                                         + change["errors"])
    assert change["frames_received"] + change["messages_lost"] <= frames
    # Frames held anywhere in the node would cost 0.9 MB each.
    growth_mb = (memory_after - memory_before) / 1e6
    assert growth_mb < 50, f"the extractor grew by {growth_mb:.0f} MB during the burst"
    assert extractor.alive()


# ---- QoS mismatches ------------------------------------------------------------------
def test_a_best_effort_camera_and_a_reliable_extractor_both_warn_and_count(
        processes, probe, diagnostics):
    extractor = processes["input"]
    name = f"{INPUT}/extractor"
    keypoints = record_keypoints(probe, INPUT)
    before = counters(diagnostics, name)
    player = start_player(INPUT, "best_effort_camera", qos="sensor_data",
                          wait_for_subscribers=0, rate_hz=10.0)
    with harness.stopped(player):
        values = harness.wait_for_diagnostics(
            diagnostics, name, lambda v: int(v.get("incompatible_qos", 0)) > before[
                "incompatible_qos"], 15.0)
        assert values is not None, extractor.log_tail()
        assert player.wait_for_log("incompatible QoS on image", 10.0), player.log_tail()
        player_values = harness.wait_for_diagnostics(
            diagnostics, f"{INPUT}/player", lambda v: int(v["incompatible_qos"]) >= 1, 10.0)
        assert player_values is not None, player.log_tail()
        # frames keep being published, and none may reach the extractor
        published = int(player_values["frames_published"])
        assert harness.wait_for_diagnostics(
            diagnostics, f"{INPUT}/player",
            lambda v: int(v["frames_published"]) >= published + 10, 10.0) is not None
    assert extractor.wait_for_log("incompatible QoS on image (RMW_QOS_POLICY_RELIABILITY", 5.0)
    assert not [m for m in keypoints.snapshot() if m.header.frame_id == "best_effort_camera"]
    assert any(status.name == name and status.level == DiagnosticStatus.WARN
               for array in diagnostics.snapshot() for status in array.status)


def test_a_subscriber_asking_more_than_the_keypoints_offer_is_warned_about(
        processes, probe, diagnostics):
    extractor = processes["input"]
    name = f"{INPUT}/extractor"
    before = counters(diagnostics, name)
    # A late joiner asking for the last Keypoints kept (transient local): the
    # extractor's outputs are volatile, so DDS never matches the two.
    wants_history = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
    recording = probe.record(Keypoints, f"{INPUT}/keypoints", wants_history)
    try:
        values = harness.wait_for_diagnostics(
            diagnostics, name, lambda v: int(v.get("incompatible_qos", 0)) > before[
                "incompatible_qos"], 15.0)
        assert values is not None, extractor.log_tail()
        assert extractor.wait_for_log(
            "incompatible QoS on keypoints (RMW_QOS_POLICY_DURABILITY policy): a subscription "
            "requests more than this node offers", 5.0), extractor.log_tail()
    finally:
        recording.stop()
    assert not recording.snapshot()
