"""The shutdown contract of the four nodes, as real processes over real DDS.

For each of extractor, matcher, stereo_extractor and player, and each way of
stopping it (`ros_harness.SHUTDOWN_CASES`: SIGINT once; SIGINT twice 0, 50
and 500 ms apart; SIGINT again once the node logged that it is shutting
down; SIGTERM): a fresh node of that kind is started in a running pipeline,
the signal is sent only after at least 30 Matches made with it arrived here,
and then the node must exit with status 0 within 5 s, with no traceback, no
"terminate called", no error line, and its closing line ("closed (SIGINT):
... N in flight at shutdown") present. SIGINT to the process group under the
real `ros2 launch` is tested in test_ros_launch.py; process_bag, demo and soak
in test_cli_shutdown.py.

Pipelines (ORB at 320x240, 20 Hz, to leave the CPU to the nodes under test):
    /shutdown         player -> extractor -> matcher; each test replaces one node
    /shutdown_stereo  two players (left, right) -> stereo_extractor
"""
from __future__ import annotations

import re

import pytest
from edgepoint_msgs.msg import Matches

import ros_harness as harness
from edgepoint_ros.ros.qos import OUTPUT_QOS

CASES = list(harness.SHUTDOWN_CASES)
PLAYER = {"width": 320, "height": 240, "rate_hz": 20.0, "diagnostics_period": 0.5}
ORB = {"model": "orb", "max_keypoints": 300, "warmup_runs": 0, "diagnostics_period": 0.5}
MATCHER = {"diagnostics_period": 0.5}
STEREO = {**ORB, "slop": 0.03}  # players' stamps are up to 25 ms apart at 20 Hz
FLOW_MATCHES = 30
FLOW_TIMEOUT_S = 60.0


class Pipeline:
    """Node processes by role; `fresh(role)` replaces one and waits for data
    to flow through the new one."""

    def __init__(self, probe, namespace: str, roles: dict, matches_topic: str):
        self.probe, self.namespace, self.roles = probe, namespace, roles
        self.processes: dict = {}
        self.matches = probe.record(Matches, f"{namespace}/{matches_topic}", OUTPUT_QOS,
                                    keep=200)

    def _start(self, role: str):
        executable, namespace, parameters, remappings = self.roles[role]
        config = "stereo.yaml" if executable == "stereo_extractor" else None
        return harness.start_node(executable, namespace, parameters, config=config,
                                  remappings=remappings)

    def fresh(self, role: str):
        """A new `role` node (the others started when not running), after at
        least FLOW_MATCHES Matches made with it arrived."""
        previous = self.processes.get(role)
        if previous is not None:
            previous.stop()
        started = {}
        for name in self.roles:
            if name == role or not self.processes.get(name) or not self.processes[name].alive():
                started[name] = self.processes[name] = self._start(name)
        for name, process in started.items():
            text = "first frame published" if self.roles[name][0] == "player" else "ready:"
            harness.wait_ready(process, text)
        process = self.processes[role]
        if self.roles[role][0] in ("extractor", "stereo_extractor"):
            session = int(re.search(r"session (\d+)", process.log()).group(1))
            made_by_it = lambda msg: msg.session_id == session  # noqa: E731
        else:  # the old one is gone: every Matches from now on passed through the new one
            self.matches.clear()
            made_by_it = lambda msg: True  # noqa: E731
        flowed = self.probe.wait_until(
            lambda: sum(map(made_by_it, self.matches.snapshot())) >= FLOW_MATCHES
            or not process.alive(), FLOW_TIMEOUT_S)
        assert flowed and process.alive(), (
            f"fewer than {FLOW_MATCHES} Matches through the new {role} in "
            f"{FLOW_TIMEOUT_S:g} s ({process.exit_description()}); logs: "
            + ", ".join(str(p.log_path) for p in self.processes.values()))
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@pytest.fixture(scope="module")
def probe():
    probe = harness.make_probe("test_ros_shutdown")
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def mono(probe):
    ns = "/shutdown"
    pipeline = Pipeline(probe, ns, {"player": ("player", ns, PLAYER, None),
                                    "extractor": ("extractor", ns, ORB, None),
                                    "matcher": ("matcher", ns, MATCHER, None)}, "matches")
    yield pipeline
    pipeline.stop()


@pytest.fixture(scope="module")
def stereo(probe):
    ns = "/shutdown_stereo"
    pipeline = Pipeline(probe, ns, {"left": ("player", f"{ns}/left", PLAYER, None),
                                    "right": ("player", f"{ns}/right", PLAYER, None),
                                    "stereo_extractor": ("stereo_extractor", ns, STEREO, None)},
                        "stereo/matches")
    yield pipeline
    pipeline.stop()


def stop_and_check(process, case: str) -> str:
    started = harness.send_shutdown(case, process.pid, process.log)
    return harness.assert_clean_shutdown(process, started, case)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("role", ["extractor", "matcher"])
def test_extractor_and_matcher_stop_cleanly(mono, role, case):
    closing = stop_and_check(mono.fresh(role), case)
    # frames in flight are counted in the closing line, not logged as errors
    assert re.search(r"\d+ frames received, \d+ processed, \d+ skipped, \d+ lost, 0 errors, "
                     r"\d+ in flight at shutdown", closing), closing


@pytest.mark.parametrize("case", CASES)
def test_player_stops_cleanly(mono, case):
    closing = stop_and_check(mono.fresh("player"), case)
    assert re.search(r"published \d+ frames", closing), closing


@pytest.mark.parametrize("case", CASES)
def test_stereo_extractor_stops_cleanly(stereo, case):
    closing = stop_and_check(stereo.fresh("stereo_extractor"), case)
    assert re.search(r"0 errors, \d+ in flight at shutdown, \d+ frames unmatched at end",
                     closing), closing
