"""CameraInfo -> undistorted normalised coordinates, validated against OpenCV's forward models."""
import cv2
import numpy as np
import pytest

from edgepoint_ros.camera_models import (CameraModel, calibration_age_s, calibration_status,
                                         is_stale)

K = [460.0, 0.0, 320.5, 0.0, 458.0, 241.0, 0.0, 0.0, 1.0]
PLUMB_BOB = [-0.28, 0.07, 2e-4, 1.8e-5, 0.0]
RATIONAL = [0.3, -0.1, 1e-3, -5e-4, 0.01, 0.6, -0.05, 0.02]
EQUIDISTANT = [-0.013, 0.02, -0.012, 0.003]


def _normalized_grid():
    # reaches the image corners (about 22..619 x 9..473 px), where distortion is strongest
    x, y = np.meshgrid(np.linspace(-0.75, 0.75, 9), np.linspace(-0.55, 0.55, 7))
    return np.stack([x.ravel(), y.ravel()], axis=1)


def _distort(model, d, normalized):
    k = np.array(K).reshape(3, 3)
    if model == "equidistant":
        pixels = cv2.fisheye.distortPoints(normalized.reshape(-1, 1, 2), k, np.array(d))
    else:
        rays = np.hstack([normalized, np.ones((len(normalized), 1))])
        pixels, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), k, np.array(d))
    return pixels.reshape(-1, 2)


@pytest.mark.parametrize("model,d", [("plumb_bob", PLUMB_BOB),
                                     ("rational_polynomial", RATIONAL),
                                     ("equidistant", EQUIDISTANT)])
def test_normalize_inverts_the_distortion_model(model, d):
    camera = CameraModel.from_fields(640, 480, model, d, K)
    truth = _normalized_grid()
    pixels = _distort(model, d, truth)
    recovered = camera.normalize(pixels)
    assert recovered.dtype == np.float32 and recovered.shape == truth.shape
    np.testing.assert_allclose(recovered, truth, atol=1e-5)
    # the distortion is not negligible, so skipping it would be caught
    naive = (pixels - [K[2], K[5]]) / [K[0], K[4]]
    assert np.abs(naive - truth).max() > 0.01


def test_undistort_pixels_is_the_ideal_pinhole_projection():
    camera = CameraModel.from_fields(640, 480, "plumb_bob", PLUMB_BOB, K)
    truth = _normalized_grid()
    ideal = truth * [K[0], K[4]] + [K[2], K[5]]
    np.testing.assert_allclose(camera.undistort_pixels(_distort("plumb_bob", PLUMB_BOB, truth)),
                               ideal, atol=0.1)


def test_rectification_rotation_applies_only_when_asked():
    rotation, _ = cv2.Rodrigues(np.array([0.0, 0.05, 0.0]))
    camera = CameraModel.from_fields(640, 480, "plumb_bob", [0] * 5, K, rotation.ravel())
    pixels = np.array([[320.5, 241.0]])
    np.testing.assert_allclose(camera.normalize(pixels), [[0, 0]], atol=1e-6)
    assert abs(camera.normalize(pixels, rectified=True)[0, 0]) > 0.04


def test_from_a_real_camera_info_message():
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 500_000_000
    msg.width, msg.height = 640, 480
    msg.distortion_model = "equidistant"
    msg.d = EQUIDISTANT
    msg.k = K
    camera = CameraModel.from_camera_info(msg)  # r and p are all zero: identity / [K|0]
    assert camera.stamp_ns == 12_500_000_000
    np.testing.assert_allclose(camera.p[:, :3], np.array(K).reshape(3, 3))
    truth = _normalized_grid()
    np.testing.assert_allclose(camera.normalize(_distort("equidistant", EQUIDISTANT, truth)),
                               truth, atol=2e-4)


@pytest.mark.parametrize("kwargs,needle", [
    ({"distortion_model": "fov"}, "unsupported distortion model 'fov'"),
    ({"distortion_model": ""}, "unsupported distortion model ''"),
    ({"d": [0.1, 0.2, 0.0, 0.0]}, "'plumb_bob' needs 5 coefficients in D; got 4"),
    ({"distortion_model": "equidistant"}, "'equidistant' needs 4 coefficients in D; got 5"),
    ({"k": [0.0] * 9}, "K is all zeros: the camera is not calibrated"),
    ({"k": [0.0] * 6}, r"K must have 9 values \(3x3\); got 6"),
    ({"k": [-460.0, 0, 320, 0, 458, 241, 0, 0, 1]}, "non-positive focal lengths"),
    ({"width": 0}, "camera image size must be positive"),
    ({"d": [np.nan, 0, 0, 0, 0]}, "D contains NaN"),
    ({"r": [2.0, 0, 0, 0, 1, 0, 0, 0, 1]}, "R is not a rotation matrix"),
])
def test_malformed_calibration_is_named(kwargs, needle):
    fields = dict(width=640, height=480, distortion_model="plumb_bob", d=PLUMB_BOB, k=K)
    fields.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        CameraModel.from_fields(**fields)


def test_bad_points_are_named():
    camera = CameraModel.from_fields(640, 480, "plumb_bob", PLUMB_BOB, K)
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        camera.normalize(np.zeros((3, 3)))
    assert camera.normalize(np.zeros((0, 2))).shape == (0, 2)


def test_staleness_and_status():
    camera = CameraModel.from_fields(640, 480, "plumb_bob", PLUMB_BOB, K, stamp_ns=10_000_000_000)
    assert calibration_age_s(camera, 12_000_000_000) == pytest.approx(2.0)
    assert is_stale(camera, 12_000_000_000, max_age_s=1.0)
    assert not is_stale(camera, 10_500_000_000, max_age_s=1.0)
    assert not is_stale(camera, 9_000_000_000, max_age_s=1.0)  # newer than the image
    assert not is_stale(camera, 99_000_000_000, max_age_s=0.0)  # check disabled
    ok, reason, message = calibration_status(camera, 10_000_000_000, 640, 480)
    assert ok and reason == "ok"
    ok, reason, message = calibration_status(camera, 12_000_000_000, 640, 480, max_age_s=1.0)
    assert not ok and reason == "stale" and "2.00 s older than the image" in message
    ok, reason, message = calibration_status(camera, 10_000_000_000, 320, 240)
    assert not ok and reason == "size"
    assert "calibration is for 640x480 images, the image is 320x240" in message
    ok, reason, message = calibration_status(None, 0, 640, 480)
    assert not ok and reason == "missing" and "no CameraInfo received" in message
