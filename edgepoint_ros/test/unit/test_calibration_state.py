"""CameraInfo state without ROS: which calibration a frame gets, and what is
logged once (the nodes over DDS: test_ros_camera_info.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgepoint_ros import calibration_state
from edgepoint_ros.calibration_state import CalibrationState

K = [458.0, 0.0, 319.5, 0.0, 457.0, 239.5, 0.0, 0.0, 1.0]
TOPIC = "/cam/camera_info"
IMAGE_NS = 50 * 1_000_000_000


class Lines:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def info(self, text):
        self.lines.append(("info", text))

    def warning(self, text):
        self.lines.append(("warning", text))


def camera_info(k=K, d=(-0.28, 0.07, 0.0002, -0.0001, 0.0), width=640, height=480,
                model="plumb_bob", stamp_ns=IMAGE_NS):
    """An object with a sensor_msgs/CameraInfo's fields."""
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec),
                               frame_id="camera"),
        width=width, height=height, distortion_model=model, d=list(d), k=list(k),
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0],
        binning_x=0, binning_y=0,
        roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False))


@pytest.fixture
def state():
    log = Lines()
    return CalibrationState(TOPIC, log, max_age_s=1.0), log


def test_a_usable_calibration_is_given_to_frames_of_its_size(state):
    calibration, log = state
    calibration.update(camera_info())
    camera = calibration.camera_for(IMAGE_NS, 640, 480)
    assert camera is not None and calibration.state == "ok"
    np.testing.assert_allclose(camera.normalize(np.array([[319.5, 239.5]])), [[0.0, 0.0]],
                               atol=1e-9)
    assert log.lines == [("info", f"calibration from {TOPIC} in use")]
    calibration.camera_for(IMAGE_NS, 640, 480)
    assert len(log.lines) == 1  # nothing per frame
    assert calibration.diagnostics("left_") == {"left_calibration": "ok",
                                                "left_camera_info_received": "1",
                                                "left_camera_info_invalid": "0"}


@pytest.mark.parametrize("info, image, state_name, text", [
    (camera_info(k=[0.0] * 9), (640, 480), "uncalibrated", "has K = 0 (camera not calibrated)"),
    (camera_info(d=(0.1, 0.2)), (640, 480), "invalid", f"unusable CameraInfo on {TOPIC}"),
    (camera_info(stamp_ns=IMAGE_NS - 3 * 1_000_000_000), (640, 480), "stale",
     "s older than the image (limit 1 s)"),
    (camera_info(), (320, 240), "size", "not using this calibration"),
])
def test_an_unusable_calibration_gives_no_camera_and_is_logged_once(state, info, image,
                                                                   state_name, text):
    calibration, log = state
    calibration.update(info)
    for _ in range(3):
        assert calibration.camera_for(IMAGE_NS, *image) is None
    assert calibration.state == state_name
    assert len(log.lines) == 1 and text in log.lines[0][1]
    assert log.lines[0][0] == ("info" if state_name == "uncalibrated" else "warning")
    invalid = calibration.diagnostics()["camera_info_invalid"]
    assert invalid == ("1" if state_name == "invalid" else "0")


def test_each_new_invalid_reason_is_logged_and_a_good_one_recovers(state):
    calibration, log = state
    for info in (camera_info(d=(0.1, 0.2)), camera_info(model="fisheye_of_mine"),
                 camera_info(model="fisheye_of_mine"), camera_info()):
        calibration.update(info)
        calibration.camera_for(IMAGE_NS, 640, 480)
    assert [level for level, _ in log.lines] == ["warning", "warning", "info"]
    assert calibration.state == "ok"
    assert calibration.diagnostics()["camera_info_invalid"] == "3"


def test_missing_is_warned_only_after_the_grace_period(state, monkeypatch):
    calibration, log = state
    now = [100.0]
    monkeypatch.setattr(calibration_state.time, "monotonic", lambda: now[0])
    assert calibration.camera_for(IMAGE_NS, 640, 480) is None
    now[0] += calibration_state.MISSING_GRACE_S / 2
    calibration.camera_for(IMAGE_NS, 640, 480)
    assert calibration.state == "missing" and log.lines == []
    now[0] += calibration_state.MISSING_GRACE_S
    calibration.camera_for(IMAGE_NS, 640, 480)
    assert log.lines == [("warning", "no CameraInfo received: publishing keypoints without "
                                     f"normalised coordinates (topic {TOPIC})")]


def test_max_age_can_change_at_run_time(state):
    calibration, _ = state
    calibration.update(camera_info(stamp_ns=IMAGE_NS - 3 * 1_000_000_000))
    assert calibration.camera_for(IMAGE_NS, 640, 480) is None
    calibration.max_age_s = 0.0  # never stale
    assert calibration.camera_for(IMAGE_NS, 640, 480) is not None
