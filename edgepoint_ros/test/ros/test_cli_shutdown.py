"""The shutdown contract of the commands that run for long: process_bag, demo, soak.

Each is started as a real process (its own process group), and stopped by
each case of `ros_harness.SHUTDOWN_CASES` (SIGINT once; twice 0, 50 and
500 ms apart; again in the close path; SIGTERM) plus SIGINT to its process
group, only after data flowed: process_bag has written frames (its progress
bar says so), the demo's and the soak's pipeline delivered at least 30
Matches to a probe in their DDS domain. Every time: exit status 0 within 5 s,
no traceback, the closing line. process_bag's output bag must then be
readable and hold exactly the frames its last line says were processed; the
demo's and soak's nodes must each have closed cleanly too.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time

import pytest
from edgepoint_msgs.msg import Matches

import ros_harness as harness
from edgepoint_ros.bags import read_feature_bag, write_image_bag
from edgepoint_ros.harness.probe import Probe
from edgepoint_ros.harness.processes import random_domain_id, ros_environment
from edgepoint_ros.ros.qos import OUTPUT_QOS

CASES = [*harness.SHUTDOWN_CASES, "sigint-to-group"]
BAG_FRAMES = 400
FLOW_MATCHES = 30


class Command:
    """A CLI in its own process group, stdout and stderr in one log file."""

    def __init__(self, log_path, module: str, *arguments: str, env=None):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *arguments], stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=harness.REPO_ROOT,
            env=env, start_new_session=True)
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition, timeout: float) -> bool:
        """Until `condition()` (on the log or the probe's recordings) holds, or
        the command exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if condition():
                return True
            with contextlib.suppress(subprocess.TimeoutExpired):
                # checked again every 50 ms; an exit ends the wait at once
                self.process.wait(0.05)
        return condition()

    def stop(self, case: str, closing_text: str) -> tuple[int | None, float]:
        """Send `case`; (exit status or None if still running after 5 s, seconds taken)."""
        if case == "sigint-to-group":
            started = harness.send_shutdown("sigint", self.pid, self.log, group=True)
        else:
            started = harness.send_shutdown(case, self.pid, self.log, closing_text)
        try:
            status = self.process.wait(max(0.0, started + harness.SHUTDOWN_LIMIT_S
                                           - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = None
        return status, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pid, 9)
            self.process.wait()
        self._log.close()


def signal_name(case: str) -> str:
    return "SIGTERM" if case == "sigterm" else "SIGINT"


# ---- process_bag -------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_bag(tmp_path_factory):
    """BAG_FRAMES real video frames (opencv-doc vtest.avi, 320x240, JPEG)."""
    frames = harness.video_frames(100, 320, 240)
    path = tmp_path_factory.mktemp("shutdown_bag") / "in"
    stamps = [1_700_000_000 * 10**9 + i * 50_000_000 for i in range(BAG_FRAMES)]
    write_image_bag(path, [frames[i % len(frames)] for i in range(BAG_FRAMES)], stamps,
                    compressed=True)
    return path


def frames_written(log: str) -> int:
    done = re.findall(rf"(\d+)/{BAG_FRAMES} \[", log)
    return int(done[-1]) if done else 0


@pytest.mark.parametrize("case", CASES)
def test_process_bag_stops_cleanly_and_leaves_a_readable_bag(image_bag, tmp_path, case):
    output = tmp_path / "out"
    command = Command(tmp_path / "process_bag.log", "edgepoint_ros.cli.process_bag",
                      str(image_bag), str(output), "--model", "orb", "--max-keypoints", "500")
    try:
        assert command.wait_for(lambda: frames_written(command.log()) >= 5, 60.0), command.log()
        status, seconds = command.stop(case, "stopping after the current frame")
    finally:
        command.kill()
    log = command.log()
    assert status == 0, f"process_bag ({case}): status {status} after {seconds:.1f} s:\n{log}"
    harness.assert_clean_output(log, f"process_bag ({case})")
    done = re.search(rf"interrupted \({signal_name(case)}\) after (\d+) of {BAG_FRAMES} frames; "
                     r"the output bag is complete and readable", log)
    assert done, log
    processed = int(done.group(1))
    assert 5 <= processed < BAG_FRAMES
    keypoints = read_feature_bag(output, "/keypoints")
    matches = read_feature_bag(output, "/matches")
    assert len(keypoints) == processed and len(matches) == processed - 1
    assert [m.sequence for _, m in keypoints] == list(range(processed))


# ---- demo and soak -----------------------------------------------------------------
PIPELINE = ["--model", "orb", "--width", "320", "--height", "240", "--rate", "20"]
COMMANDS = {
    "demo": ("edgepoint_ros.cli.demo", ["--duration", "300"]),
    "soak": ("edgepoint_ros.cli.soak", ["--minutes", "10"]),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_demo_and_soak_stop_cleanly(tmp_path, name, case):
    module, arguments = COMMANDS[name]
    domain = random_domain_id()
    while domain == harness.DOMAIN_ID:
        domain = random_domain_id()
    env = ros_environment(domain, tmp_path / "ros_log")
    probe = Probe(f"test_{name}_shutdown", domain)
    matches = probe.record(Matches, "/matches", OUTPUT_QOS, keep=100)
    command = Command(tmp_path / f"{name}.log", module, *arguments, *PIPELINE, "--domain-id",
                      str(domain), "--output", str(tmp_path / "out"), env=env)
    try:
        flowed = command.wait_for(lambda: len(matches) >= FLOW_MATCHES, 120.0)
        assert flowed, f"{name}: fewer than {FLOW_MATCHES} Matches:\n{command.log()}"
        status, seconds = command.stop(case, "stopping the nodes")
    finally:
        command.kill()
        probe.close()
    log = command.log()
    assert status == 0, f"{name} ({case}): status {status} after {seconds:.1f} s:\n{log}"
    harness.assert_clean_output(log, f"{name} ({case})")
    assert f"[{name}] interrupted ({signal_name(case)}); stopping the nodes" in log, log
    assert (f"[{name}] closed: nodes stopped (player exit 0, extractor exit 0, matcher exit 0)"
            in log), log
    for node in ("player", "extractor", "matcher"):
        node_log = (tmp_path / "out" / "logs" / f"{node}.log").read_text(errors="replace")
        harness.assert_clean_output(node_log, f"{name} ({case}): {node}")
        assert "closed (SIGINT)" in node_log, node_log
