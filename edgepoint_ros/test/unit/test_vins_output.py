"""VINS-Fusion feature PointCloud built with the real rclpy message classes and read back."""
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud
from std_msgs.msg import Header

from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.features import Features
from edgepoint_ros.ros.vins_output import (FLOAT32_EXACT_IDS, CameraFeatures,
                                           read_vins_feature_cloud, vins_feature_cloud)
from edgepoint_ros.tracking import Tracker, stereo_track_ids

K = [400.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0]


def _header(sec=7, nanosec=250):
    header = Header()
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    header.frame_id = "cam0_optical"
    return header


def _roundtrip(msg):
    return deserialize_message(serialize_message(msg), PointCloud)


def test_channel_order_and_values_for_a_stereo_pair():
    rng = np.random.default_rng(0)
    camera = CameraModel.from_fields(640, 480, "plumb_bob", [-0.1, 0.01, 0, 0, 0], K)
    left_px = rng.uniform([10, 10], [630, 470], (40, 2)).astype(np.float32)
    desc = rng.normal(size=(40, 32)).astype(np.float32)
    tracker = Tracker()
    first = tracker.process(Features(left_px, np.ones(40), desc, (640, 480)), 0, camera=camera)
    moved = left_px + np.float32([4, -2])
    result = tracker.process(Features(moved, np.ones(40), desc, (640, 480)), 100_000_000,
                             camera=camera)
    assert (result.track_ids == first.track_ids).all()
    # right camera: 30 of the 40 points, matched to the left ones
    right_px = moved[:30] - np.float32([25, 0])
    right_ids = stereo_track_ids(result.track_ids, np.arange(30), np.arange(30), num_right=30)
    left = CameraFeatures.from_track_result(0, moved, result)
    right = CameraFeatures(1, right_ids, right_px, camera.normalize(right_px),
                           np.zeros((30, 2), np.float32))
    msg = _roundtrip(vins_feature_cloud(_header(), [left, right]))

    assert [c.name for c in msg.channels] == [
        "id_of_point", "id_of_camera", "u_of_point", "v_of_point", "velocity_x_of_point",
        "velocity_y_of_point", "gt_x_of_point", "gt_y_of_point", "gt_z_of_point"]
    assert msg.header.stamp.sec == 7 and msg.header.frame_id == "cam0_optical"
    assert len(msg.points) == 70 and all(p.z == 1.0 for p in msg.points)
    back = read_vins_feature_cloud(msg)
    assert back["camera_id"].tolist() == [0] * 40 + [1] * 30
    np.testing.assert_array_equal(back["feature_id"][:40], result.track_ids)
    np.testing.assert_array_equal(back["feature_id"][40:], result.track_ids[:30])
    np.testing.assert_allclose(back["pixels"][:40], moved, atol=1e-3)
    np.testing.assert_allclose(back["normalized"][:40], camera.normalize(moved), atol=1e-6)
    # 4 px right, 2 px up in 0.1 s at f=400: about (+0.1, -0.05) normalised units / s
    np.testing.assert_allclose(back["velocities"][:40], result.velocities, atol=1e-6)
    assert np.allclose(np.median(back["velocities"][:40], axis=0), [0.1, -0.05], atol=0.02)
    assert all(np.asarray(c.values).max() == 0 for c in msg.channels[6:])


def test_without_padding_exactly_six_channels():
    cam = CameraFeatures(0, np.array([3, 4]), np.zeros((2, 2)), np.zeros((2, 2)),
                         np.zeros((2, 2)))
    msg = _roundtrip(vins_feature_cloud(_header(), [cam], pad_ground_truth=False))
    assert len(msg.channels) == 6
    assert read_vins_feature_cloud(msg)["feature_id"].tolist() == [3, 4]


def test_ids_wrap_to_stay_exact_in_float32():
    big = np.array([FLOAT32_EXACT_IDS + 5, 2 * FLOAT32_EXACT_IDS + 6, 123])
    cam = CameraFeatures(0, big, np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)))
    back = read_vins_feature_cloud(_roundtrip(vins_feature_cloud(_header(), [cam])))
    assert back["feature_id"].tolist() == [5, 6, 123]


def test_empty_frame():
    msg = _roundtrip(vins_feature_cloud(_header(), []))
    assert len(msg.points) == 0 and len(msg.channels) == 9
    assert read_vins_feature_cloud(msg)["feature_id"].size == 0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="track ids must be >= 0"):
        vins_feature_cloud(_header(), [CameraFeatures(1, np.array([-1, 2]), np.zeros((2, 2)),
                                                      np.zeros((2, 2)), np.zeros((2, 2)))])
    with pytest.raises(ValueError, match=r"normalized must be \(2, 2\)"):
        vins_feature_cloud(_header(), [CameraFeatures(0, np.array([1, 2]), np.zeros((2, 2)),
                                                      np.zeros((3, 2)), np.zeros((2, 2)))])
    with pytest.raises(ValueError, match="velocities contains NaN"):
        vins_feature_cloud(_header(), [CameraFeatures(0, np.array([1]), np.zeros((1, 2)),
                                                      np.zeros((1, 2)), np.full((1, 2), np.nan))])

    class NoCalibration:
        normalized = velocities = None
    with pytest.raises(ValueError, match="track with a camera model"):
        CameraFeatures.from_track_result(0, np.zeros((0, 2)), NoCalibration())
    broken = PointCloud()
    with pytest.raises(ValueError, match="at least 6 channels"):
        read_vins_feature_cloud(broken)
