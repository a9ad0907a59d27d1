"""CameraInfo handling of the extractor and the matcher, as real processes over real DDS.

One extractor (model orb) and one matcher (VINS output on) in /cam, with
calibration_max_age 0.5 s, serve the module. The tests publish CameraInfo
messages (good, stale, for another size, malformed) on /cam/camera_info and
images on /cam/image, and read keypoints, tracked keypoints, the VINS
`feature` cloud, the logs and /diagnostics.

The first test needs the nodes to have received no CameraInfo yet, so it
comes first in this file (pytest keeps file order).
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from edgepoint_msgs.msg import Keypoints
from sensor_msgs.msg import CameraInfo, Image, PointCloud

import ros_harness as harness
from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.calibration_state import MISSING_GRACE_S
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile

MAX_AGE_S = 0.5
PLUMB_BOB = harness.PLUMB_BOB_640
EQUIDISTANT = dict(PLUMB_BOB, distortion_model="equidistant", d=[0.05, -0.02, 0.004, -0.001])
RELIABLE = qos_profile("reliable")
_seconds = itertools.count(7000)


@pytest.fixture(scope="module")
def cam():
    common = {"diagnostics_period": 0.2, "calibration_max_age": MAX_AGE_S}
    extractor = harness.start_node("extractor", "/cam", {
        **common, "model": "orb", "qos": "reliable", "max_keypoints": 300, "warmup_runs": 0})
    matcher = harness.start_node("matcher", "/cam", {**common, "publish_vins_features": True})
    probe = harness.make_probe("test_ros_camera_info")
    with harness.stopped(extractor, matcher):
        try:
            harness.wait_ready(extractor)
            harness.wait_ready(matcher)
            yield Camera(probe, extractor, matcher)
        finally:
            probe.close()


class Camera:
    """A camera driver stand-in: publishes CameraInfo and images on /cam."""

    def __init__(self, probe, extractor, matcher):
        self.extractor, self.matcher = extractor, matcher
        self.image = probe.publisher(Image, "/cam/image", RELIABLE)
        self.info = probe.publisher(CameraInfo, "/cam/camera_info", RELIABLE)
        self.keypoints = probe.record(Keypoints, "/cam/keypoints", OUTPUT_QOS)
        self.tracked = probe.record(Keypoints, "/cam/keypoints/tracked", OUTPUT_QOS)
        self.features = probe.record(PointCloud, "/cam/feature", OUTPUT_QOS)
        self.diagnostics = probe.record(DiagnosticArray, "/diagnostics", 100, keep=500)
        self.frame = harness.natural_image()
        self.infos_sent = 0
        assert probe.wait_for_subscribers(self.image)
        assert probe.wait_for_subscribers(self.info, count=2)  # extractor and matcher
        # probe -> extractor and matcher, extractor -> matcher and probe, matcher
        # -> probe: all linked at both ends before the first image
        assert harness.wait_for_links(self.diagnostics, {
            "/cam/extractor": {"image_publishers": 1, "camera_info_publishers": 1,
                               "keypoints_subscribers": 2},
            "/cam/matcher": {"keypoints_publishers": 1, "camera_info_publishers": 1,
                             "keypoints/tracked_subscribers": 1, "feature_subscribers": 1}})
        assert probe.wait_for_recordings(self.keypoints, self.tracked, self.features)

    def send(self, info: dict | None = None, info_age_s: float = 0.0):
        """Publish CameraInfo (fields of `harness.camera_info_msg`, stamped
        `info_age_s` before the image) then an image; returns (keypoints,
        tracked keypoints) of the image."""
        stamp_ns = next(_seconds) * 1_000_000_000
        if info is not None:
            info_stamp = harness.stamp_of(*divmod(stamp_ns - int(info_age_s * 1e9),
                                                  1_000_000_000))
            self.info.publish(harness.camera_info_msg(info_stamp, **info))
            self.infos_sent += 1
            # the CameraInfo is in before the image, as from a driver
            for node in ("extractor", "matcher"):
                self.diagnostics_of(node, lambda v: int(v["camera_info_received"])
                                    >= self.infos_sent)
        stamp = harness.stamp_of(*divmod(stamp_ns, 1_000_000_000))
        self.image.publish(harness.image_to_msg(self.frame, "bgr8", stamp))
        found = []
        for recording in (self.keypoints, self.tracked):
            msg = recording.wait_for(lambda m: harness.same_stamp(m.header.stamp, stamp), 10.0)
            assert msg is not None, f"no output on {recording.topic}:\n" + \
                self.extractor.log_tail() + "\n" + self.matcher.log_tail()
            found.append(msg)
        return tuple(found)

    def diagnostics_of(self, node: str, condition) -> dict:
        values = harness.wait_for_diagnostics(self.diagnostics, f"/cam/{node}", condition)
        assert values is not None, f"no /diagnostics of /cam/{node} satisfying the condition"
        return values

    def states(self, state: str) -> None:
        """Both nodes report calibration `state` in a fresh /diagnostics message."""
        self.diagnostics.clear()
        for node in ("extractor", "matcher"):
            self.diagnostics_of(node, lambda values: values["calibration"] == state)

    def logged(self, text: str, timeout: float = 5.0) -> bool:
        return (self.extractor.wait_for_log(text, timeout)
                and self.matcher.wait_for_log(text, timeout))


def assert_not_normalised(*messages) -> None:
    for msg in messages:
        assert len(msg.x) > 100 and len(msg.x_normalized) == len(msg.y_normalized) == 0


def test_missing_camera_info_is_warned_once_and_keypoints_are_not_normalised(cam):
    first = cam.send()
    # The grace period is what is tested: a driver's first CameraInfo may come
    # just after its first image, so the warning waits MISSING_GRACE_S for it.
    time.sleep(MISSING_GRACE_S + 0.1)
    later = cam.send()
    assert_not_normalised(*first, *later)
    assert cam.logged("no CameraInfo received: publishing keypoints without normalised "
                      "coordinates (topic /cam/camera_info)")
    cam.send()
    for process in (cam.extractor, cam.matcher):
        assert process.log().count("no CameraInfo received") == 1
    cam.states("missing")
    values = cam.diagnostics_of("matcher", lambda v: True)
    assert int(values["vins_frames_without_calibration"]) >= 3
    assert len(cam.features) == 0  # no VINS output without calibration, and a WARN saying so
    assert cam.matcher.wait_for_log("no usable CameraInfo on /cam/camera_info (calibration "
                                    "missing): /cam/feature (VINS features) is not published "
                                    "until a calibrated CameraInfo for 640x480 arrives", 5.0)
    assert cam.matcher.log().count("(VINS features) is not published") == 1


@pytest.mark.parametrize("calibration", [PLUMB_BOB, EQUIDISTANT],
                         ids=["plumb_bob", "equidistant"])
def test_camera_info_gives_undistorted_normalised_coordinates(cam, calibration):
    camera = CameraModel.from_fields(**calibration)
    keypoints, tracked = cam.send(calibration)
    assert cam.matcher.wait_for_log("publishing VINS features on /cam/feature", 5.0)
    for msg in (keypoints, tracked):
        assert len(msg.x_normalized) == len(msg.x) > 100
        np.testing.assert_allclose(harness.normalized_xy(msg), camera.normalize(harness.xy(msg)),
                                   atol=1e-6)
    # Distortion is really removed: not the pinhole normalisation of the raw pixels.
    pinhole = (harness.xy(keypoints) - camera.k[:2, 2]) / [camera.fx, camera.fy]
    assert np.abs(harness.normalized_xy(keypoints) - pinhole).max() > 1e-2
    cloud = cam.features.wait_for(
        lambda m: harness.same_stamp(m.header.stamp, keypoints.header.stamp), 5.0)
    assert cloud is not None and len(cloud.points) == len(tracked.x)
    cam.states("ok")
    assert cam.logged("calibration from /cam/camera_info in use")


def test_stale_camera_info_is_warned_and_not_used(cam):
    keypoints, tracked = cam.send(PLUMB_BOB, info_age_s=2.0)
    assert_not_normalised(keypoints, tracked)
    assert cam.logged(f"CameraInfo is 2.00 s older than the image (limit {MAX_AGE_S:g} s): "
                      "not using stale calibration")
    cam.states("stale")


def test_camera_info_for_another_image_size_is_warned_and_not_used(cam):
    other_size = dict(PLUMB_BOB, width=1280, height=960)
    keypoints, tracked = cam.send(other_size)
    assert_not_normalised(keypoints, tracked)
    assert cam.logged("calibration is for 1280x960 images, the image is 640x480: not using "
                      "this calibration")
    cam.states("size")


MALFORMED = {
    "D of the wrong length": (dict(PLUMB_BOB, d=[0.1, 0.2, 0.0, 0.0]),
                              "distortion model 'plumb_bob' needs 5 coefficients in D; got 4"),
    "unknown distortion model": (dict(PLUMB_BOB, distortion_model="kannala"),
                                 "unsupported distortion model 'kannala'"),
    "NaN in K": (dict(PLUMB_BOB, k=[float("nan")] + PLUMB_BOB["k"][1:]),
                 "K contains NaN or infinite values"),
}


def test_uncalibrated_camera_info_is_no_error(cam):
    """K = 0 is how ROS drivers say "not calibrated": told once at info level,
    no normalised coordinates, not counted as invalid, calibration used again
    as soon as a real one arrives."""
    cam.diagnostics.clear()
    before = {node: int(cam.diagnostics_of(node, lambda v: True)["camera_info_invalid"])
              for node in ("extractor", "matcher")}
    for _ in range(3):
        keypoints, tracked = cam.send(dict(PLUMB_BOB, k=[0.0] * 9))
        assert_not_normalised(keypoints, tracked)
    assert cam.logged("has K = 0 (camera not calibrated); publishing keypoints without "
                      "normalised coordinates")
    for process in (cam.extractor, cam.matcher):
        lines = [line for line in process.log_tail(200).splitlines() if "K = 0" in line]
        assert len(lines) == 1 and lines[0].startswith("[INFO]"), lines
    cam.states("uncalibrated")
    for node in ("extractor", "matcher"):
        assert int(cam.diagnostics_of(node, lambda v: True)["camera_info_invalid"]) == before[node]
    keypoints, tracked = cam.send(PLUMB_BOB)
    assert len(keypoints.x_normalized) == len(keypoints.x)
    cam.states("ok")


def test_malformed_camera_info_is_counted_warned_and_never_stops_the_nodes(cam):
    cam.diagnostics.clear()
    before = {node: int(cam.diagnostics_of(node, lambda v: True)["camera_info_invalid"])
              for node in ("extractor", "matcher")}
    for case, (info, problem) in MALFORMED.items():
        keypoints, tracked = cam.send(info)
        assert_not_normalised(keypoints, tracked)
        assert cam.logged(f"unusable CameraInfo on /cam/camera_info: {problem}"), case
    cam.states("invalid")
    for node in ("extractor", "matcher"):
        values = cam.diagnostics_of(node, lambda v: True)
        assert int(values["camera_info_invalid"]) == before[node] + len(MALFORMED)
    assert cam.extractor.alive() and cam.matcher.alive()
    keypoints, tracked = cam.send(PLUMB_BOB)  # a good CameraInfo is used again at once
    assert len(keypoints.x_normalized) == len(keypoints.x)
    assert len(tracked.x_normalized) == len(tracked.x)
    cam.states("ok")
