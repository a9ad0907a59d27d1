"""The tracking front end and stereo pair matching (frontend.py), without ROS.

The module imports nothing of rclpy or the ROS message packages: the last
test runs every other test of this file again in a subprocess where those
cannot be imported.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.features import Features
from edgepoint_ros.frontend import (PAIR_SETTINGS, KeypointFrame, TrackingFrontEnd,
                                    camera_names, flow_points, match_pair,
                                    pair_matching_config)
from edgepoint_ros.geometry import verify_matches
from edgepoint_ros.matching import match_descriptors
from edgepoint_ros.tracking import TrackerConfig

K = np.array([[450.0, 0.0, 320.0], [0.0, 450.0, 240.0], [0.0, 0.0, 1.0]])
ROS_MODULES = ("rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs",
               "edgepoint_msgs", "diagnostic_msgs", "geometry_msgs")


def _header(sec: int, nanosec: int = 0):
    """What a std_msgs/Header offers the front end (it reads only the stamp)."""
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id="cam")


def _features(n=40, kind="float32", dim=64, seed=0):
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(0, [640, 480], (n, 2)).astype(np.float32)
    if kind == "binary":
        descriptors = rng.integers(0, 256, (n, dim // 8), dtype=np.uint8)
    else:
        descriptors = rng.normal(size=(n, dim)).astype(np.float32)
        descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return Features(keypoints, rng.uniform(0, 1, n).astype(np.float32), descriptors,
                    (640, 480), kind, dim)


def _frame(features, session=1, sequence=0, sec=0):
    return KeypointFrame(_header(sec), session, sequence, features)


def test_front_end_tracks_consecutive_frames_of_one_session_only():
    front_end = TrackingFrontEnd()
    a = _features(seed=1)
    result, reset = front_end.push(_frame(a, sequence=0, sec=1))
    assert reset == "first frame" and result.num_matches == 0
    permutation = np.random.default_rng(3).permutation(len(a))
    result, reset = front_end.push(_frame(a.subset(permutation), sequence=1, sec=2))
    assert reset is None
    np.testing.assert_array_equal(permutation[result.current_indices], result.reference_indices)
    assert result.num_matches == len(a) and np.allclose(result.distances, 0, atol=1e-3)

    result, reset = front_end.push(_frame(a, sequence=4, sec=3))
    assert reset is None and front_end.sequence_gaps == 2
    result, reset = front_end.push(_frame(a, session=2, sequence=0, sec=4))
    assert result.num_matches == 0 and "session changed from 1 to 2" in reset
    result, reset = front_end.push(_frame(_features(kind="binary", dim=256), session=2,
                                          sequence=1, sec=5))
    assert result.num_matches == 0 and "float32/64 to binary/256" in reset
    result, reset = front_end.push(_frame(_features(kind="binary", dim=256), session=2,
                                          sequence=2, sec=1))
    assert result.num_matches == 0 and "not after the previous frame" in reset
    assert front_end.resets == 3


def test_track_ids_keep_counting_across_a_restart():
    front_end = TrackingFrontEnd(TrackerConfig(verification="none"))
    a = _features(n=30, seed=2)
    first, _ = front_end.push(_frame(a, sequence=0, sec=1))
    again, reason = front_end.push(_frame(a, session=9, sequence=0, sec=2))
    assert reason is not None and again.num_matches == 0
    assert again.track_ids.min() > first.track_ids.max()  # an id is never reused


def test_configure_changes_settings_and_keeps_the_sequence():
    front_end = TrackingFrontEnd(TrackerConfig(verification="none"))
    a = _features(seed=4)
    front_end.push(_frame(a, sequence=0, sec=1))
    front_end.configure(TrackerConfig(verification="none", max_distance=1e-6))
    result, reason = front_end.push(_frame(a, sequence=1, sec=2))
    assert reason is None and front_end.resets == 0
    assert front_end.tracker.config.max_distance == 1e-6
    with pytest.raises(ValueError, match="ratio"):
        front_end.configure(TrackerConfig(ratio=2.0))


def test_matches_fields_name_the_reference_frame():
    front_end = TrackingFrontEnd(TrackerConfig(verification="none"))
    a = _features(seed=5)
    front_end.push(_frame(a, session=3, sequence=7, sec=1))
    frame = _frame(a.subset(np.arange(len(a))[::-1]), session=3, sequence=8, sec=2)
    result, _ = front_end.push(frame)
    fields = front_end.matches_fields(frame, result)
    assert fields["reference_stamp_ns"] == 1_000_000_000
    assert (fields["session_id"], fields["reference_sequence"], fields["current_sequence"]) == (
        3, 7, 8)
    assert fields["reference_num_keypoints"] == fields["current_num_keypoints"] == len(a)
    assert fields["reference_indices"].dtype == np.uint32
    np.testing.assert_array_equal(fields["reference_indices"],
                                  len(a) - 1 - fields["current_indices"].astype(np.int64))
    assert fields["verification"] == result.verification.code
    assert fields["inliers"].size == 0  # verification none: nothing verified


def test_flow_points_are_the_accepted_matches_and_the_other_keypoints():
    front_end = TrackingFrontEnd(TrackerConfig(verification="none", max_distance=0.5))
    a = _features(n=20, seed=6)
    front_end.push(_frame(a, sequence=0, sec=1))
    b = _features(n=25, seed=7)  # 20 moved keypoints of `a` and 5 new ones
    moved = Features(np.vstack([a.keypoints + 3.0, b.keypoints[20:]]),
                     np.ones(25, np.float32), np.vstack([a.descriptors, b.descriptors[20:]]),
                     (640, 480))
    frame = _frame(moved, sequence=1, sec=2)
    result, _ = front_end.push(frame)
    reference_xy, current_xy, others_xy = flow_points(frame, result)
    assert len(reference_xy) == len(current_xy) == 20 and len(others_xy) == 5
    np.testing.assert_allclose(current_xy - reference_xy, 3.0, atol=1e-4)
    np.testing.assert_array_equal(others_xy, b.keypoints[20:])


def test_camera_names_and_pair_settings_are_validated():
    assert camera_names(("left", "right/cam")) == ["left", "right/cam"]
    for bad, problem in ((["left"], "at least 2"), (["a", "a"], "twice"),
                         (["left", "/right"], "not a relative topic name")):
        with pytest.raises(ValueError, match=problem):
            camera_names(bad)
    values = {name: getattr(TrackerConfig(), name) for name in PAIR_SETTINGS}
    assert pair_matching_config(values) == TrackerConfig()
    with pytest.raises(ValueError, match="verification"):
        pair_matching_config({**values, "verification": "magic"})


def _stereo_pair(num_points=200, baseline=0.12, seed=0):
    """(left, right) Features of one rig viewing random 3D points; left keypoint
    i and right keypoint order[i] see the same point."""
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-3, 3, num_points), rng.uniform(-2, 2, num_points),
                              rng.uniform(4, 10, num_points)])
    descriptors = rng.normal(size=(num_points, 64)).astype(np.float32)

    def view(offset, order):
        uv = (points - [offset, 0.0, 0.0]) @ K.T
        pixels = (uv[:, :2] / uv[:, 2:3]).astype(np.float32)
        noisy = descriptors + rng.normal(0, 0.02, descriptors.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        return Features(pixels[order], np.ones(num_points, np.float32), noisy[order],
                        (640, 480))

    order = rng.permutation(num_points)
    return view(0.0, np.arange(num_points)), view(baseline, order), order


def _reference_match_pair(left, right, settings, left_camera=None, right_camera=None):
    """The stereo node's left-right matching before it moved into the core."""
    right_idx, left_idx, distances = match_descriptors(
        right.descriptors, left.descriptors, descriptor_type=right.descriptor_type,
        mutual=settings.mutual, ratio=settings.ratio,
        max_distance=settings.max_distance if settings.max_distance > 0 else None)
    left_points, right_points = left.keypoints[left_idx], right.keypoints[right_idx]
    if (left_camera is not None and right_camera is not None
            and settings.verification != "none" and len(left_idx)):
        left_points = left_camera.undistort_pixels(left_points)
        right_points = right_camera.undistort_pixels(right_points)
    verification = verify_matches(left_points, right_points, method=settings.verification,
                                  threshold_px=settings.ransac_threshold_px,
                                  confidence=settings.ransac_confidence,
                                  max_iters=settings.ransac_max_iters)
    return left_idx, right_idx, distances, verification


@pytest.mark.parametrize("calibrated", [False, True])
@pytest.mark.parametrize("settings", [TrackerConfig(), TrackerConfig(ratio=0.8, mutual=False),
                                      TrackerConfig(verification="none", max_distance=0.5)])
def test_match_pair_finds_the_rig_correspondences_as_before(settings, calibrated):
    left, right, order = _stereo_pair()
    cameras = ()
    if calibrated:
        cameras = (CameraModel.from_fields(640, 480, "plumb_bob", [0.01, -0.002, 0, 0, 0],
                                           K.ravel()),
                   CameraModel.from_fields(640, 480, "plumb_bob", [-0.01, 0.001, 0, 0, 0],
                                           K.ravel()))
    pair = match_pair(left, right, settings, *cameras)
    expected = _reference_match_pair(left, right, settings, *cameras)
    np.testing.assert_array_equal(pair.left_indices, expected[0])
    np.testing.assert_array_equal(pair.right_indices, expected[1])
    np.testing.assert_array_equal(pair.distances, expected[2])
    np.testing.assert_array_equal(pair.verification.inliers, expected[3].inliers)
    assert pair.verification.method == expected[3].method
    # right keypoint j sees the point of left keypoint order[j]
    assert pair.num_matches > 150
    correct = order[pair.right_indices] == pair.left_indices
    assert correct.mean() > 0.95
    if settings.verification != "none" and not calibrated:
        assert pair.num_inliers > 0.9 * pair.num_matches


def test_pair_matches_fields_and_mismatched_descriptors():
    left, right, _ = _stereo_pair(num_points=60, seed=1)
    pair = match_pair(left, right, TrackerConfig())
    fields = pair.matches_fields(left_stamp_ns=5_000_000_123, session_id=4, sequence=11,
                                 num_left=len(left), num_right=len(right))
    assert fields["reference_stamp_ns"] == 5_000_000_123
    assert fields["reference_sequence"] == fields["current_sequence"] == 11
    np.testing.assert_array_equal(fields["reference_indices"], pair.left_indices)
    np.testing.assert_array_equal(fields["inliers"], pair.verification.inliers)
    with pytest.raises(ValueError, match="left and right descriptors differ"):
        match_pair(left, _features(kind="binary", dim=256), TrackerConfig())


_BLOCK_ROS = f"""
import importlib.abc, sys
class BlockRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ROS_MODULES!r}:
            raise ImportError(f"{{name}} is blocked: this test runs without ROS")
sys.meta_path.insert(0, BlockRos())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_the_front_end_runs_where_ros_cannot_be_imported():
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _BLOCK_ROS, "-q", "-p", "no:cacheprovider", __file__,
         "-k", "not ros_cannot_be_imported"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", _BLOCK_ROS.replace("import pytest\nsys.exit(pytest.main(sys.argv[1:]))",
                                                  "import edgepoint_ros.frontend\n"
                                                  "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                                                  f"{ROS_MODULES!r}))")],
        capture_output=True, text=True, timeout=120, env=env)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr
