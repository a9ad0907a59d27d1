"""Test harness for real nodes over real DDS: processes, a probe node, test images.

* Every test session uses one ROS_DOMAIN_ID: the one scripts/test.sh drew,
  else a random one, so parallel runs on one machine do not hear each other.
  Traffic stays on loopback (scripts/env.sh's Fast DDS profile and
  ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; set here too when missing).
* Node processes are the installed executables with the installed
  `config/*.yaml` (what `ros2 launch` would start), in their own namespace per
  fixture so that several can run at once; their logs go to
  `$ROS_LOG_DIR/nodes/` (log/test-ros/nodes/ under scripts/test.sh), and
  `stopped()` always ends them.
* Nothing of rclpy is mocked: the test talks to the nodes through `Probe`, a
  real node in the test process.
* The real `ros2 launch` (`ros2_launch_environment`, `LaunchProcess`): installed
  from ../shared/tools/ros2-launch into .ros2-launch/ (scripts/setup.sh does it;
  done here when missing). Without ../shared the tests that need it skip;
  under CI=true that is a failure.
* The shutdown contract (`SHUTDOWN_CASES`, `send_shutdown`,
  `assert_clean_shutdown`): how a node or command is stopped, and what a
  clean stop looks like in its output.
"""
from __future__ import annotations

import array
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import locations
from edgepoint_ros.harness.probe import Probe
from edgepoint_ros.harness.processes import (NodeProcess, config_path, random_domain_id,
                                             ros_environment)
from edgepoint_ros.paths import opencv_sample_data_dir
from edgepoint_ros.ros.diagnostics import status_values

REPO_ROOT = locations.REPO_ROOT
DOMAIN_ID = int(os.environ.get("ROS_DOMAIN_ID") or random_domain_id())
LOG_DIR = Path(os.environ.get("ROS_LOG_DIR") or REPO_ROOT / "log" / "test-ros") / "nodes"

# The probe in this process must see the same middleware settings as the nodes.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE",
                      str(REPO_ROOT / "edgepoint_ros" / "config" / "fastdds_loopback.xml"))

START_TIMEOUT_S = 60.0  # a learned model's first build can export ONNX on a busy machine


def start_node(executable: str, namespace: str, parameters: dict | None = None,
               config: str | None = None, remappings: dict | None = None) -> NodeProcess:
    """Start `executable` with config/<executable>.yaml (or `config`) plus
    `parameters`, in `namespace` (returns at once; see `wait_ready`)."""
    return NodeProcess(executable, namespace=namespace,
                          params_files=[config_path(config or f"{executable}.yaml")],
                          parameters=parameters, remappings=remappings,
                          env=ros_environment(DOMAIN_ID, LOG_DIR.parent), log_dir=LOG_DIR)


def wait_ready(process: NodeProcess, text: str = "ready:", timeout: float = START_TIMEOUT_S):
    if not process.wait_for_log(text, timeout):
        state = process.exit_description()
        process.stop()
        raise AssertionError(f"{process.name} did not become ready within {timeout} s "
                             f"({state}); log {process.log_path}:\n"
                             f"{process.log_tail(30)}")
    return process


@contextlib.contextmanager
def stopped(*processes: NodeProcess):
    """Always end the processes, whatever the test did."""
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


def yaml_parameters(node: str) -> dict:
    """The ros__parameters of the installed config/<node>.yaml."""
    import yaml
    return yaml.safe_load(config_path(f"{node}.yaml").read_text())["/**"]["ros__parameters"]


def make_probe(name: str) -> Probe:
    return Probe(name, DOMAIN_ID)


# ---- test images -------------------------------------------------------------
def natural_image(width: int = 640, height: int = 480) -> np.ndarray:
    """A real photograph (opencv-doc's graf1.png), resized, BGR uint8."""
    image = cv2.imread(str(opencv_sample_data_dir() / "graf1.png"), cv2.IMREAD_COLOR)
    assert image is not None, f"opencv-doc sample image missing in {opencv_sample_data_dir()}"
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def video_frames(count: int, width: int = 640, height: int = 480,
                 name: str = "vtest.avi") -> list[np.ndarray]:
    """The first `count` frames of an opencv-doc sample video, resized, BGR uint8."""
    capture = cv2.VideoCapture(str(opencv_sample_data_dir() / name))
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok, f"cannot read {count} frames from {name}"
        frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def stereo_pair(scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A real rectified stereo pair (Middlebury 'Aloe', opencv-doc aloeL/aloeR.jpg), scaled."""
    images = []
    for name in ("aloeL.jpg", "aloeR.jpg"):
        image = cv2.imread(str(opencv_sample_data_dir() / name), cv2.IMREAD_COLOR)
        assert image is not None, f"opencv-doc sample image {name} missing"
        images.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return images[0], images[1]


# A plausible calibration for 640x480 (plumb_bob, barrel distortion).
PLUMB_BOB_640 = dict(width=640, height=480, distortion_model="plumb_bob",
                     d=[-0.28, 0.07, 0.0002, -0.0001, 0.0],
                     k=[458.0, 0.0, 319.5, 0.0, 457.0, 239.5, 0.0, 0.0, 1.0])


def camera_info_msg(stamp, width: int, height: int, distortion_model: str, d, k,
                    frame_id: str = "camera"):
    """A sensor_msgs/CameraInfo with exactly these fields (also broken ones);
    R = identity, P = [K | 0]."""
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo(width=width, height=height, distortion_model=distortion_model)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.d = [float(v) for v in d]
    msg.k = [float(v) for v in k]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(k[0]), float(k[1]), float(k[2]), 0.0, float(k[3]), float(k[4]), float(k[5]),
             0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def xy(msg) -> np.ndarray:
    """(N, 2) keypoint pixels of a Keypoints message."""
    return np.stack([np.asarray(msg.x, np.float32), np.asarray(msg.y, np.float32)], axis=1)


def normalized_xy(msg) -> np.ndarray:
    """(N, 2) x_normalized / y_normalized of a Keypoints message (N = 0 when empty)."""
    return np.stack([np.asarray(msg.x_normalized, np.float32),
                     np.asarray(msg.y_normalized, np.float32)], axis=1)


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def raw_image_msg(data: bytes, width: int, height: int, encoding: str, step: int,
                  stamp, frame_id: str = "camera"):
    """A sensor_msgs/Image with exactly these fields (also inconsistent ones)."""
    from sensor_msgs.msg import Image
    msg = Image(width=width, height=height, encoding=encoding, step=step, is_bigendian=0)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = array.array("B", data)
    return msg


def image_to_msg(image: np.ndarray, encoding: str, stamp, frame_id: str = "camera"):
    """numpy (already in `encoding`'s channel order and dtype) -> sensor_msgs/Image."""
    image = np.ascontiguousarray(image)
    return raw_image_msg(image.tobytes(), image.shape[1], image.shape[0], encoding,
                         image.strides[0], stamp, frame_id)


def compressed_msg(data: bytes, stamp, fmt: str = "jpeg", frame_id: str = "camera"):
    from sensor_msgs.msg import CompressedImage
    msg = CompressedImage(format=fmt)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = array.array("B", data)
    return msg


def stamp_of(sec: int, nanosec: int = 0):
    from builtin_interfaces.msg import Time
    return Time(sec=sec, nanosec=nanosec)


def same_stamp(a, b) -> bool:
    return a.sec == b.sec and a.nanosec == b.nanosec


# ---- diagnostics ---------------------------------------------------------------
def latest_diagnostics(recording, node_name: str) -> dict[str, str] | None:
    """Values of the newest DiagnosticStatus named `node_name` (e.g. '/ns/extractor')."""
    for array_msg in reversed(recording.snapshot()):
        for status in array_msg.status:
            if status.name == node_name:
                return status_values(status)
    return None


def wait_for_diagnostics(recording, node_name: str, condition, timeout: float = 10.0):
    """The first diagnostics values of `node_name` (arriving from now on or
    already recorded) for which `condition(values)` holds; None on timeout."""
    def matches(array_msg):
        return any(status.name == node_name and condition(status_values(status))
                   for status in array_msg.status)
    found = recording.wait_for(matches, timeout)
    if found is None:
        return None
    return next(status_values(s) for s in found.status if s.name == node_name)


def wait_for_links(recording, links: dict[str, dict[str, int]], timeout: float = 15.0) -> bool:
    """Until each node's /diagnostics reports at least the given DDS links
    (node_base: `<topic>_publishers` matched by its subscription,
    `<topic>_subscribers` served by its publisher), e.g. {"/ns/extractor":
    {"image_publishers": 1, "keypoints_subscribers": 2}}: both ends of a
    node-to-node link are then up, so a volatile writer sends its next
    message to every reader."""
    deadline = time.monotonic() + timeout
    for node, wanted in links.items():
        values = wait_for_diagnostics(
            recording, node, lambda v: all(int(v.get(key, 0)) >= count
                                           for key, count in wanted.items()),
            max(0.0, deadline - time.monotonic()))
        if values is None:
            return False
    return True


# ---- the real `ros2 launch` ------------------------------------------------------
ROS2_LAUNCH_SOURCE = Path(os.environ.get("EDGEPOINT_ROS2_LAUNCH_SOURCE")
                          or REPO_ROOT.parent / "shared" / "tools" / "ros2-launch")
ROS2_LAUNCH_PREFIX = Path(os.environ.get("EDGEPOINT_ROS2_LAUNCH_PREFIX")
                          or REPO_ROOT / ".ros2-launch")
_launch_environment: dict[str, str] | None = None


def ros2_launch_environment() -> dict[str, str]:
    """The environment in which `ros2 launch` runs (this process's plus
    .ros2-launch/env.sh), installing it from ../shared/tools/ros2-launch when
    needed. Skips the test when ../shared has no ros2-launch; under CI=true
    that fails it instead."""
    import pytest

    global _launch_environment
    if _launch_environment is not None:
        return dict(_launch_environment)
    installer = ROS2_LAUNCH_SOURCE / "install.sh"
    if not installer.is_file():
        message = (f"the real `ros2 launch` is not available: {ROS2_LAUNCH_SOURCE} is missing "
                   "(it comes with ../shared beside the repository)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    env = dict(os.environ)
    env.setdefault("VIRTUAL_ENV", sys.prefix)
    installed = subprocess.run(["bash", str(installer), str(ROS2_LAUNCH_PREFIX)], env=env,
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, (f"installing ros2 launch into {ROS2_LAUNCH_PREFIX} "
                                       f"failed:\n{installed.stdout}{installed.stderr}")
    dump = subprocess.run(["bash", "-c", f"set +u; source '{ROS2_LAUNCH_PREFIX}/env.sh' "
                           ">/dev/null && env -0"], env=env, capture_output=True, timeout=60)
    assert dump.returncode == 0, dump.stderr.decode(errors="replace")
    _launch_environment = dict(item.split("=", 1) for item in
                               dump.stdout.decode().split("\0") if "=" in item)
    return dict(_launch_environment)


class LaunchProcess:
    """`ros2 launch PACKAGE FILE ARGS...` in its own process group (a terminal's
    foreground job: `interrupt_group` is its Ctrl-C), output in a log file."""

    def __init__(self, launch_file: str, *arguments: str, name: str | None = None,
                 package: str = "edgepoint_ros"):
        env = ros_environment(DOMAIN_ID, LOG_DIR.parent, ros2_launch_environment())
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name or launch_file.split(".")[0]
        self.log_path = LOG_DIR / f"launch_{self.name}.log"
        self.command = ["ros2", "launch", package, launch_file, *arguments]
        self._log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(self.command, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                return text in self.log()
            self.wait(0.05)  # the log is re-read every 50 ms; an exit ends the wait at once
        return False

    def node_pids(self) -> dict[str, int]:
        """{'extractor-1': pid, ...} from launch's "process started" lines."""
        import re
        return {name: int(pid) for name, pid in
                re.findall(r"\[INFO\] \[([\w.-]+)\]: process started with pid \[(\d+)\]",
                           self.log())}

    def interrupt_group(self) -> None:
        """SIGINT to launch and every node it started, as a terminal's Ctrl-C."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """Always end it (and what it started): Ctrl-C, then SIGKILL to the group."""
        if self.process.poll() is None:
            self.interrupt_group()
            if self.wait(15.0) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()
        return self.process.returncode


# ---- the shutdown contract --------------------------------------------------------
# How a process is asked to stop: (seconds to wait, signal) steps, or "close path"
# (SIGINT, then SIGINT again once the process logged that it is shutting down).
SHUTDOWN_CASES = {
    "sigint": [(0.0, signal.SIGINT)],
    "sigint-twice-0ms": [(0.0, signal.SIGINT), (0.0, signal.SIGINT)],
    "sigint-twice-50ms": [(0.0, signal.SIGINT), (0.05, signal.SIGINT)],
    "sigint-twice-500ms": [(0.0, signal.SIGINT), (0.5, signal.SIGINT)],
    "sigint-in-close-path": "close path",
    "sigterm": [(0.0, signal.SIGTERM)],
}
SHUTDOWN_LIMIT_S = 5.0  # the contract: exit status 0 within 5 s of the first signal


def send_shutdown(case: str, pid: int, log, closing_text: str = "shutting down",
                  group: bool = False) -> float:
    """Stop process `pid` the way `case` says; returns the monotonic time of
    the first signal. `log()` returns the process's output so far (for the
    close-path case, which waits for `closing_text` before the second SIGINT)."""
    def send(number):
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(pid, number)

    steps = SHUTDOWN_CASES[case]
    started = time.monotonic()
    if steps == "close path":
        send(signal.SIGINT)
        deadline = started + SHUTDOWN_LIMIT_S
        while closing_text not in log() and time.monotonic() < deadline:
            time.sleep(0.005)  # polling the log for the closing text
        send(signal.SIGINT)
        return started
    for delay, number in steps:
        if delay:
            time.sleep(delay)  # the interval between two signals is part of the case
        send(number)
    return started


def case_signal(case: str) -> str:
    return "SIGTERM" if case == "sigterm" else "SIGINT"


def assert_clean_output(output: str, where: str) -> None:
    """No traceback, no C++ abort, no error line in a process's output."""
    for bad in ("Traceback", "terminate called", "[ERROR]", "[FATAL]", "KeyboardInterrupt",
                "process has died"):
        assert bad not in output, f"{where}: {bad!r} in the output:\n{output[-4000:]}"


def assert_clean_shutdown(process: NodeProcess, started: float, case: str) -> str:
    """The contract for one node: exit status 0 within 5 s of the first signal,
    the closing line naming the signal, nothing bad in the log. Returns the
    closing line."""
    status = process.wait(max(0.0, started + SHUTDOWN_LIMIT_S - time.monotonic()))
    elapsed = time.monotonic() - started
    log = process.log()
    assert status == 0, (f"{process.name} ({case}) {process.exit_description()} "
                         f"{elapsed:.1f} s after the first signal (contract: status 0 within "
                         f"{SHUTDOWN_LIMIT_S:g} s); log {process.log_path}:\n{log[-4000:]}")
    assert_clean_output(log, f"{process.name} ({case})")
    closing = [line for line in log.splitlines() if f"closed ({case_signal(case)})" in line]
    assert len(closing) == 1, f"{process.name} ({case}): no single closing line:\n{log[-3000:]}"
    return closing[0]
