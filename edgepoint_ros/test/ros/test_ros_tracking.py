"""The tracking front end as real processes over real DDS, on a real video.

Node processes shared by the module (started once):
    /trk  extractor (model orb, reliable image QoS) + matcher with the matcher
          settings of config/vins_frontend.yaml (frame-to-frame tracking,
          F-RANSAC at 1 px, VINS `feature` PointCloud)
    /kf   matcher tracking the same keypoints (/trk/keypoints) against keyframes
          (a keyframe every 3 frames, no other trigger)
The test publishes CameraInfo (plumb_bob) and the first frames of opencv-doc's
vtest.avi (a static street camera) on /trk, one frame at a time, and records
every output. The checks re-derive what the nodes published from the
published keypoints themselves (ids, ages, RANSAC flags, normalised
coordinates, velocities).
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from edgepoint_msgs.msg import Keypoints, Matches
from sensor_msgs.msg import CameraInfo, Image, PointCloud

import ros_harness as harness
from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.geometry import verify_matches
from edgepoint_ros.ros import parameters
from edgepoint_ros.harness.processes import config_path
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile
from edgepoint_ros.ros.vins_output import (FLOAT32_EXACT_IDS, GROUND_TRUTH_CHANNELS,
                                           VINS_CHANNELS, read_vins_feature_cloud)

FRAMES = 6
KEYFRAME_EVERY = 3
FRAME_PERIOD_NS = 100_000_000  # 10 Hz
RELIABLE = qos_profile("reliable")
CAMERA = CameraModel.from_fields(**harness.PLUMB_BOB_640)


def vins_section(node: str) -> dict:
    """The ros__parameters config/vins_frontend.yaml gives `node`."""
    document = yaml.safe_load(config_path("vins_frontend.yaml").read_text())
    return document[f"/**/{node}"]["ros__parameters"]


@pytest.fixture(scope="module")
def run():
    """Start the nodes, publish the frames, and return everything they published."""
    fast = {"diagnostics_period": 0.2, "warmup_runs": 0}
    processes = [
        harness.start_node("extractor", "/trk", {**fast, "model": "orb", "qos": "reliable",
                                                 "max_keypoints": 500}),
        harness.start_node("matcher", "/trk", {**vins_section("matcher"),
                                               "diagnostics_period": 0.2}),
        harness.start_node("matcher", "/kf", {
            "diagnostics_period": 0.2, "reference": "keyframe", "keyframe_min_inliers": 0,
            "keyframe_min_tracked_ratio": 0.0, "keyframe_max_frames": KEYFRAME_EVERY},
            remappings={"keypoints": "/trk/keypoints"}),
    ]
    probe = harness.make_probe("test_ros_tracking")
    with harness.stopped(*processes):
        try:
            for process in processes:
                harness.wait_ready(process)
            yield publish_video(probe, processes)
        finally:
            probe.close()


class Outputs:
    """Per frame k: the messages the nodes published for it."""

    def __init__(self, probe, processes):
        self.processes = processes
        self.diagnostics = probe.record(DiagnosticArray, "/diagnostics", 100, keep=500)
        self.keypoints = probe.record(Keypoints, "/trk/keypoints", OUTPUT_QOS)
        self.tracked = probe.record(Keypoints, "/trk/keypoints/tracked", OUTPUT_QOS)
        self.matches = probe.record(Matches, "/trk/matches", OUTPUT_QOS)
        self.features = probe.record(PointCloud, "/trk/feature", OUTPUT_QOS)
        self.kf_tracked = probe.record(Keypoints, "/kf/keypoints/tracked", OUTPUT_QOS)
        self.kf_matches = probe.record(Matches, "/kf/matches", OUTPUT_QOS)
        self.stamps_ns: list[int] = []

    def at(self, recording, k: int, timeout: float = 10.0):
        found = recording.wait_for(
            lambda m: harness.stamp_ns(m.header.stamp) == self.stamps_ns[k], timeout)
        assert found is not None, (f"nothing on {recording.topic} for frame {k}; logs:\n"
                                   + "\n".join(p.log_tail(10) for p in self.processes))
        return found


def publish_video(probe, processes) -> Outputs:
    outputs = Outputs(probe, processes)
    image_publisher = probe.publisher(Image, "/trk/image", RELIABLE)
    info_publisher = probe.publisher(CameraInfo, "/trk/camera_info", RELIABLE)
    assert probe.wait_for_subscribers(image_publisher)
    # The extractor and the /trk matcher listen to CameraInfo.
    assert probe.wait_for_subscribers(info_publisher, count=2)
    # Every link of the chain is up at both ends before frame 0 (a volatile
    # writer does not resend to a reader it matches late): probe -> extractor
    # and /trk matcher, extractor -> both matchers and the probe, each output
    # -> the probe.
    assert harness.wait_for_links(outputs.diagnostics, {
        "/trk/extractor": {"image_publishers": 1, "camera_info_publishers": 1,
                           "keypoints_subscribers": 3},
        "/trk/matcher": {"keypoints_publishers": 1, "camera_info_publishers": 1,
                         "keypoints/tracked_subscribers": 1,
                         "matches_subscribers": 1, "feature_subscribers": 1},
        "/kf/matcher": {"keypoints_publishers": 1, "keypoints/tracked_subscribers": 1,
                        "matches_subscribers": 1}}), "\n".join(p.log_tail(10) for p in processes)
    # ... and the probe's ends of the links to its recordings
    assert probe.wait_for_recordings(outputs.keypoints, outputs.tracked, outputs.matches,
                                     outputs.features, outputs.kf_tracked, outputs.kf_matches)
    base_ns = 5_000 * 1_000_000_000
    for k, frame in enumerate(harness.video_frames(FRAMES)):
        stamp_ns = base_ns + k * FRAME_PERIOD_NS
        outputs.stamps_ns.append(stamp_ns)
        stamp = harness.stamp_of(*divmod(stamp_ns, 1_000_000_000))
        info_publisher.publish(harness.camera_info_msg(stamp, **harness.PLUMB_BOB_640))
        image_publisher.publish(harness.image_to_msg(frame, "bgr8", stamp, "camera"))
        # One frame at a time: both matchers track every frame (no newest-frame skips).
        outputs.at(outputs.tracked, k)
        outputs.at(outputs.kf_tracked, k)
    return outputs


def test_track_ids_persist_across_frames_of_a_real_video(run):
    tracked = [run.at(run.tracked, k) for k in range(FRAMES)]
    ids = [np.asarray(msg.track_ids, np.int64) for msg in tracked]
    ages = [np.asarray(msg.track_ages, np.int64) for msg in tracked]
    for msg, frame_ids in zip(tracked, ids):
        assert len(frame_ids) == len(msg.x) == len(msg.track_ages) > 200
        assert len(np.unique(frame_ids)) == len(frame_ids), "ids repeat within a frame"
    assert (ages[0] == 0).all()

    for k in range(1, FRAMES):
        matches = run.at(run.matches, k)
        assert harness.stamp_ns(matches.reference_stamp) == run.stamps_ns[k - 1]
        assert (matches.reference_sequence, matches.current_sequence) == (
            tracked[k - 1].sequence, tracked[k].sequence)
        reference_idx = np.asarray(matches.reference_indices)
        current_idx = np.asarray(matches.current_indices)
        inliers = np.asarray(matches.inliers, bool)
        assert inliers.sum() > 100  # a static camera: the background keeps matching
        # A keypoint matched (and verified) to the previous frame keeps its id...
        np.testing.assert_array_equal(ids[k][current_idx[inliers]],
                                      ids[k - 1][reference_idx[inliers]])
        np.testing.assert_array_equal(ages[k][current_idx[inliers]],
                                      ages[k - 1][reference_idx[inliers]] + 1)
        # ... every other keypoint starts a new track with a new id.
        continuing = np.zeros(len(ids[k]), bool)
        continuing[current_idx[inliers]] = True
        assert (ages[k][~continuing] == 0).all()
        assert (~continuing).any()
        assert ids[k][~continuing].min() > max(frame_ids.max() for frame_ids in ids[:k])
    survivors = np.intersect1d(ids[0], ids[-1])
    assert len(survivors) > 50
    assert (ages[-1][np.isin(ids[-1], survivors)] == FRAMES - 1).all()


def test_inlier_flags_are_opencv_f_ransac_on_the_undistorted_matches(run):
    threshold = vins_section("matcher")["ransac_threshold_px"]
    for k in range(1, FRAMES):
        matches = run.at(run.matches, k)
        assert matches.verification == Matches.VERIFICATION_FUNDAMENTAL
        inliers = np.asarray(matches.inliers, bool)
        assert len(inliers) == len(matches.reference_indices) == len(matches.distances)
        previous = harness.xy(run.at(run.tracked, k - 1))
        current = harness.xy(run.at(run.tracked, k))
        # With CameraInfo the matcher runs RANSAC on undistorted pixels.
        reference_xy = CAMERA.undistort_pixels(previous[np.asarray(matches.reference_indices)])
        current_xy = CAMERA.undistort_pixels(current[np.asarray(matches.current_indices)])
        expected = verify_matches(reference_xy, current_xy, method="fundamental",
                                  threshold_px=threshold)
        np.testing.assert_array_equal(inliers, expected.inliers)
        assert 0 < (~inliers).sum() < inliers.sum()  # RANSAC rejected some, kept most


def test_keyframe_mode_matches_against_the_keyframe(run):
    tracked = [run.at(run.kf_tracked, k) for k in range(FRAMES)]
    keyframe = 0
    for k in range(1, FRAMES):
        matches = run.at(run.kf_matches, k)
        assert harness.stamp_ns(matches.reference_stamp) == run.stamps_ns[keyframe], k
        assert matches.reference_sequence == tracked[keyframe].sequence
        inliers = np.asarray(matches.inliers, bool)
        current_idx = np.asarray(matches.current_indices)[inliers]
        reference_idx = np.asarray(matches.reference_indices)[inliers]
        np.testing.assert_array_equal(
            np.asarray(tracked[k].track_ids)[current_idx],
            np.asarray(tracked[keyframe].track_ids)[reference_idx])
        # Age = the keyframe observation's age + the frames since the keyframe.
        np.testing.assert_array_equal(
            np.asarray(tracked[k].track_ages, np.int64)[current_idx],
            np.asarray(tracked[keyframe].track_ages, np.int64)[reference_idx] + k - keyframe)
        if k - keyframe >= KEYFRAME_EVERY:
            keyframe = k
    assert keyframe == KEYFRAME_EVERY  # frames 1-3 matched frame 0, frames 4-5 frame 3


def test_keypoints_carry_normalised_coordinates_from_camera_info(run):
    for k in range(FRAMES):
        for recording in (run.keypoints, run.tracked):  # extractor and matcher
            msg = run.at(recording, k)
            np.testing.assert_allclose(harness.normalized_xy(msg),
                                       CAMERA.normalize(harness.xy(msg)), atol=1e-6)


def test_vins_feature_cloud_layout_read_back(run):
    previous = None
    for k in range(FRAMES):
        cloud = run.at(run.features, k)
        tracked = run.at(run.tracked, k)
        assert [c.name for c in cloud.channels] == list(VINS_CHANNELS + GROUND_TRUTH_CHANNELS)
        assert cloud.header.frame_id == "camera"
        features = read_vins_feature_cloud(cloud)
        ids = np.asarray(tracked.track_ids, np.int64)
        np.testing.assert_array_equal(features["feature_id"], ids % FLOAT32_EXACT_IDS)
        assert (features["camera_id"] == 0).all()
        np.testing.assert_allclose(features["pixels"], harness.xy(tracked), atol=1e-3)
        np.testing.assert_allclose(features["normalized"],
                                   CAMERA.normalize(harness.xy(tracked)), atol=1e-6)
        velocities = features["velocities"]
        if previous is None:
            assert not velocities.any()
        else:
            common, now, before = np.intersect1d(ids, previous["ids"], return_indices=True)
            assert len(common) > 100
            expected = (features["normalized"][now] - previous["normalized"][before]) / (
                FRAME_PERIOD_NS * 1e-9)
            np.testing.assert_allclose(velocities[now], expected, atol=1e-4)
            fresh = np.setdiff1d(np.arange(len(ids)), now)
            assert not velocities[fresh].any()
        previous = {"ids": ids, "normalized": features["normalized"]}


def test_diagnostics_report_tracking_and_calibration(run):
    def settled(values):
        return int(values.get("frames_processed", 0)) == FRAMES

    values = harness.wait_for_diagnostics(run.diagnostics, "/trk/matcher", settled)
    assert values is not None
    last = run.at(run.matches, FRAMES - 1)
    assert values["num_matches"] == str(len(last.distances))
    assert values["num_inliers"] == str(int(np.sum(last.inliers)))
    assert int(values["num_tracked"]) == int(np.sum(last.inliers))
    assert (values["is_keyframe"], values["keyframes"]) == ("true", str(FRAMES))
    assert values["calibration"] == "ok" and values["vins_features_published"] == str(FRAMES)
    assert (values["reference"], values["verification"]) == ("previous", "fundamental")

    values = harness.wait_for_diagnostics(run.diagnostics, "/kf/matcher", settled)
    assert values["keyframes"] == "2" and values["reference"] == "keyframe"
    assert values["calibration"] == "missing"  # nobody publishes /kf/camera_info

    values = harness.wait_for_diagnostics(run.diagnostics, "/trk/extractor", settled)
    assert values["calibration"] == "ok"


def test_vins_frontend_yaml_names_only_declared_parameters_with_valid_values():
    document = yaml.safe_load(config_path("vins_frontend.yaml").read_text())
    assert set(document) == {"/**/extractor", "/**/matcher"}
    for node in ("extractor", "matcher"):
        declared = {spec.name: spec for spec in parameters.NODE_PARAMETERS[node]}
        for name, value in vins_section(node).items():
            assert name in declared, f"{node} has no parameter {name}"
            assert type(value) is type(declared[name].default), (node, name)
            assert declared[name].check(value) is None
