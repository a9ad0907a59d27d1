"""The stereo extractor as a real process over real DDS: synchronisation, per-camera keypoints, left-right matches.

One node serves the module: /stereo (stereo_extractor, cameras [left, right],
model orb, slop 5 ms, reliable image QoS). The test publishes a real rectified
stereo pair (opencv-doc's Middlebury 'Aloe' aloeL/aloeR.jpg) on left/image and
right/image with hand-set stamps, so the pairing rules are exercised with real
messages: jitter within the slop pairs up, a frame without partner is
counted, never published.
"""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from edgepoint_msgs.msg import Keypoints, Matches
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

import ros_harness as harness
from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.geometry import verify_matches
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile

NAMESPACE = "/stereo"
NODE = f"{NAMESPACE}/stereo_extractor"
SLOP_S = 0.005
PARAMETERS = {"model": "orb", "max_keypoints": 500, "qos": "reliable", "slop": SLOP_S,
              "queue_size": 10, "warmup_runs": 0, "diagnostics_period": 0.2}
RELIABLE = qos_profile("reliable")
_seconds = itertools.count(2000)


def next_time_ns() -> int:
    """A fresh base stamp (whole seconds apart) for each set a test publishes."""
    return next(_seconds) * 1_000_000_000


def links(image_topic: str, camera_info: bool = False) -> dict[str, int]:
    """The stereo node's links to this probe, for `harness.wait_for_links`: each
    camera's image (and camera_info) publisher, each output's subscription."""
    wanted = {"stereo/matches_subscribers": 1}
    for name in ("left", "right"):
        wanted.update({f"{name}/{image_topic}_publishers": 1, f"{name}/keypoints_subscribers": 1})
        if camera_info:
            wanted[f"{name}/camera_info_publishers"] = 1
    return wanted


def stamp(ns: int):
    return harness.stamp_of(*divmod(ns, 1_000_000_000))


@pytest.fixture(scope="module")
def rig():
    process = harness.start_node("stereo_extractor", NAMESPACE, PARAMETERS, config="stereo.yaml")
    probe = harness.make_probe("test_ros_stereo")
    with harness.stopped(process):
        try:
            harness.wait_ready(process)
            yield Rig(probe, process)
        finally:
            probe.close()


class Rig:
    """Publishers and recordings around the stereo node."""

    def __init__(self, probe, process):
        self.probe, self.process = probe, process
        self.left_image, self.right_image = harness.stereo_pair()
        self.images = {name: probe.publisher(Image, f"{NAMESPACE}/{name}/image", RELIABLE)
                       for name in ("left", "right")}
        self.infos = {name: probe.publisher(CameraInfo, f"{NAMESPACE}/{name}/camera_info",
                                            RELIABLE) for name in ("left", "right")}
        self.keypoints = {name: probe.record(Keypoints, f"{NAMESPACE}/{name}/keypoints",
                                             OUTPUT_QOS) for name in ("left", "right")}
        self.matches = probe.record(Matches, f"{NAMESPACE}/stereo/matches", OUTPUT_QOS)
        self.diagnostics = probe.record(DiagnosticArray, "/diagnostics", 100, keep=500)
        for publisher in (*self.images.values(), *self.infos.values()):
            assert probe.wait_for_subscribers(publisher), "stereo node does not subscribe"
        assert probe.wait_for_recordings(*self.keypoints.values(), self.matches)
        # the node's ends of the same links
        assert harness.wait_for_links(self.diagnostics, {NODE: links("image", True)}), \
            process.log_tail()

    def publish(self, camera: str, time_ns: int) -> None:
        image = self.left_image if camera == "left" else self.right_image
        self.images[camera].publish(harness.image_to_msg(image, "bgr8", stamp(time_ns),
                                                         f"{camera}_optical"))

    def keypoints_at(self, camera: str, time_ns: int, timeout: float = 10.0):
        return self.keypoints[camera].wait_for(
            lambda m: harness.stamp_ns(m.header.stamp) == time_ns, timeout)

    def matches_at(self, right_time_ns: int, timeout: float = 10.0):
        return self.matches.wait_for(
            lambda m: harness.stamp_ns(m.header.stamp) == right_time_ns, timeout)

    def diagnostics_where(self, condition, timeout: float = 10.0) -> dict:
        values = harness.wait_for_diagnostics(self.diagnostics, NODE, condition, timeout)
        assert values is not None, f"no /diagnostics of {NODE} satisfying the condition"
        return values

    def fresh_diagnostics(self) -> dict:
        self.diagnostics.clear()
        return self.diagnostics_where(lambda values: True)


def test_frames_with_jitter_within_slop_pair_up_with_verified_left_right_matches(rig):
    for jitter_ms in (0.0, 2.0, -4.0):
        left_ns = next_time_ns()
        right_ns = left_ns + int(jitter_ms * 1e6)
        rig.publish("left", left_ns)
        rig.publish("right", right_ns)
        left = rig.keypoints_at("left", left_ns)
        right = rig.keypoints_at("right", right_ns)
        matches = rig.matches_at(right_ns)
        assert left is not None and right is not None and matches is not None, \
            f"jitter {jitter_ms} ms: no output; log:\n{rig.process.log_tail()}"

        # One set: both cameras share session and sequence; headers are the images'.
        assert (left.session_id, left.sequence) == (right.session_id, right.sequence)
        assert (left.header.frame_id, right.header.frame_id) == ("left_optical",
                                                                 "right_optical")
        assert len(left.x) > 200 and len(right.x) > 200
        assert harness.stamp_ns(matches.reference_stamp) == left_ns
        assert (matches.session_id, matches.reference_sequence, matches.current_sequence) == (
            left.session_id, left.sequence, right.sequence)
        assert (matches.reference_num_keypoints, matches.current_num_keypoints) == (
            len(left.x), len(right.x))

        # F-RANSAC flags: consistent with OpenCV's on the same points, and with a
        # rectified rig (inliers on the same row, positive disparity).
        assert matches.verification == Matches.VERIFICATION_FUNDAMENTAL
        left_idx = np.asarray(matches.reference_indices)
        right_idx = np.asarray(matches.current_indices)
        inliers = np.asarray(matches.inliers, bool)
        assert len(inliers) == len(left_idx) == len(right_idx) == len(matches.distances)
        assert inliers.sum() >= 50
        left_xy, right_xy = harness.xy(left)[left_idx], harness.xy(right)[right_idx]
        expected = verify_matches(left_xy, right_xy, method="fundamental", threshold_px=1.0)
        np.testing.assert_array_equal(inliers, expected.inliers)
        assert np.abs(left_xy[inliers, 1] - right_xy[inliers, 1]).max() <= 2.0
        assert (left_xy[inliers, 0] - right_xy[inliers, 0]).min() > 0
        assert np.median(np.abs(left_xy[~inliers, 1] - right_xy[~inliers, 1])) > 5.0

    values = rig.diagnostics_where(lambda v: int(v["sets_synchronised"]) >= 3)
    assert int(values["num_matches"]) > 0 and int(values["num_inliers"]) >= 50
    assert values["left_calibration"] == "missing"


def test_a_frame_without_partner_is_counted_and_never_published(rig):
    before = rig.fresh_diagnostics()
    lonely_ns = next_time_ns()
    rig.publish("left", lonely_ns)               # its right frame never comes
    paired_ns = next_time_ns()
    rig.publish("left", paired_ns)
    rig.publish("right", paired_ns + 1_000_000)
    assert rig.keypoints_at("right", paired_ns + 1_000_000) is not None
    assert rig.keypoints_at("left", paired_ns) is not None

    # Jitter beyond the slop: neither frame has a partner.
    far_ns = next_time_ns()
    rig.publish("left", far_ns)
    rig.publish("right", far_ns + 20_000_000)
    next_ns = next_time_ns()
    rig.publish("left", next_ns)
    rig.publish("right", next_ns)
    assert rig.matches_at(next_ns) is not None, rig.process.log_tail()

    values = rig.diagnostics_where(
        lambda v: int(v["frames_without_partner"]) >= int(before["frames_without_partner"]) + 3)
    assert int(values["left_no_partner"]) == int(before["left_no_partner"]) + 2
    assert int(values["right_no_partner"]) == int(before["right_no_partner"]) + 1
    assert int(values["frames_without_partner"]) == int(before["frames_without_partner"]) + 3
    for camera, time_ns in (("left", lonely_ns), ("left", far_ns), ("right", far_ns + 20_000_000)):
        assert rig.keypoints_at(camera, time_ns, timeout=0.2) is None
    assert rig.process.wait_for_log("dropped: no frame of every other camera within slop", 5.0)


def test_camera_info_per_camera_gives_normalised_coordinates(rig):
    height, width = rig.left_image.shape[:2]
    k = [350.0, 0.0, (width - 1) / 2, 0.0, 350.0, (height - 1) / 2, 0.0, 0.0, 1.0]
    camera_model = CameraModel.from_fields(width, height, "plumb_bob", [0.0] * 5, k)
    received = rig.fresh_diagnostics()
    time_ns = next_time_ns()
    for camera in ("left", "right"):
        rig.infos[camera].publish(harness.camera_info_msg(
            stamp(time_ns), width, height, "plumb_bob", [0.0] * 5, k))
    # each CameraInfo is in before the images, as from a driver
    rig.diagnostics_where(lambda values: all(
        int(values[f"{camera}_camera_info_received"])
        > int(received[f"{camera}_camera_info_received"]) for camera in ("left", "right")))
    rig.publish("left", time_ns)
    rig.publish("right", time_ns)
    left, right = rig.keypoints_at("left", time_ns), rig.keypoints_at("right", time_ns)
    assert left is not None and right is not None
    for keypoints in (left, right):
        np.testing.assert_allclose(harness.normalized_xy(keypoints),
                                   camera_model.normalize(harness.xy(keypoints)), atol=1e-6)
    values = rig.fresh_diagnostics()
    assert (values["left_calibration"], values["right_calibration"]) == ("ok", "ok")


def test_fewer_than_two_cameras_is_refused_at_start_up():
    process = harness.start_node("stereo_extractor", "/stereo_broken",
                                 {"model": "orb", "cameras": ["left"]}, config="stereo.yaml")
    with harness.stopped(process):
        assert process.wait(30.0) == 1, process.log_tail()
    assert "parameter cameras must name at least 2 cameras" in process.log()


def test_compressed_transport_pairs_jpeg_frames():
    """image_transport: compressed: the node reads <camera>/image/compressed only
    and pairs JPEG frames like raw ones."""
    process = harness.start_node("stereo_extractor", "/stereojpeg",
                                 {**PARAMETERS, "image_transport": "compressed"},
                                 config="stereo.yaml")
    probe = harness.make_probe("test_ros_stereo_jpeg")
    with harness.stopped(process):
        try:
            harness.wait_ready(process)
            left_image, right_image = harness.stereo_pair()
            publishers = {name: probe.publisher(CompressedImage,
                                                f"/stereojpeg/{name}/image/compressed", RELIABLE)
                          for name in ("left", "right")}
            keypoints = {name: probe.record(Keypoints, f"/stereojpeg/{name}/keypoints",
                                            OUTPUT_QOS) for name in ("left", "right")}
            matches = probe.record(Matches, "/stereojpeg/stereo/matches", OUTPUT_QOS)
            diagnostics = probe.record(DiagnosticArray, "/diagnostics", 100, keep=500)
            for publisher in publishers.values():
                assert probe.wait_for_subscribers(publisher)
            assert probe.wait_for_recordings(*keypoints.values(), matches)
            assert harness.wait_for_links(diagnostics, {
                "/stereojpeg/stereo_extractor": links("image/compressed")}), process.log_tail()
            raw_subscribers = [info for name in ("left", "right")
                               for info in probe.node.get_subscriptions_info_by_topic(
                                   f"/stereojpeg/{name}/image")]
            assert raw_subscribers == []

            time_ns = next_time_ns()
            for name, image in (("left", left_image), ("right", right_image)):
                jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
                publishers[name].publish(harness.compressed_msg(
                    jpeg.tobytes(), stamp(time_ns), frame_id=f"{name}_optical"))
            found = matches.wait_for(lambda m: harness.stamp_ns(m.header.stamp) == time_ns, 10.0)
            assert found is not None, process.log_tail()
            for name in ("left", "right"):
                msg = keypoints[name].wait_for(
                    lambda m: harness.stamp_ns(m.header.stamp) == time_ns, 5.0)
                assert msg is not None and len(msg.x) > 200
                assert msg.header.frame_id == f"{name}_optical"
            assert np.asarray(found.inliers, bool).sum() >= 50
        finally:
            probe.close()
