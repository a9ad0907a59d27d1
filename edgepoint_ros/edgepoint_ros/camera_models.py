"""Camera calibration from `sensor_msgs/CameraInfo`: undistorted, normalised keypoints.

A `CameraModel` is built from the CameraInfo fields as plain values (width,
height, distortion_model, d, k, r, p), so it works without ROS; the ROS nodes
and the bag tools call `CameraModel.from_camera_info(msg)`, which reads those
fields from an rclpy or a rosbags message alike.

Normalised coordinates are what visual-inertial estimators consume (VINS,
OpenVINS): the keypoint's ray direction (x, y, 1) in the camera frame, with the
lens distortion removed, i.e. ``((u - cx) / fx, (v - cy) / fy)`` for an ideal
pinhole. `edgepoint_msgs/Keypoints.x_normalized/y_normalized` carry them.

Supported distortion models (REP 104 / `sensor_msgs/distortion_models.h`):

* ``plumb_bob``: 5 coefficients (k1, k2, t1, t2, k3), ``cv2.undistortPoints``.
* ``rational_polynomial``: 8 coefficients (k1, k2, t1, t2, k3, k4, k5, k6),
  ``cv2.undistortPoints``.
* ``equidistant``: 4 coefficients (k1, k2, k3, k4), the Kannala-Brandt fisheye
  model, ``cv2.fisheye.undistortPoints``.

Anything else (unknown model name, a D of the wrong length, an all-zero K as
published by uncalibrated drivers, a non-positive focal length) raises
ValueError naming the problem: silently treating such a camera as a pinhole
would hand the estimator wrong rays.

By default the rectification rotation R is not applied: the coordinates are in
the camera's own optical frame (what a monocular VIO wants). ``rectified=True``
applies R, giving coordinates in the rectified frame of a stereo pair.
CameraInfo's binning and ROI are not handled; the keypoints must refer to the
full-resolution image described by width x height (`check_image_size`).

`calibration_status` says whether calibration is usable for an image: missing,
stale (CameraInfo stamp older than the image by more than a limit: drivers
publish CameraInfo with every image, so an old one means its publisher
stopped), or made for another image size. The nodes log its message as a
warning and publish keypoints without normalised coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

DISTORTION_COEFFICIENTS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
DISTORTION_MODELS = tuple(DISTORTION_COEFFICIENTS)
# Undistortion is a fixed-point iteration. OpenCV's default for the pinhole
# models (5 iterations) leaves errors of ~3e-4 in normalised units (0.3 px at
# f = 460) in the corners of a typical wide lens; iterating to convergence
# costs microseconds per thousand points.
_UNDISTORT_ITERATIONS = 40
_UNDISTORT_EPS = 1e-10


@dataclass(frozen=True)
class CameraModel:
    """Intrinsic calibration of one camera (the fields of sensor_msgs/CameraInfo).

    k: 3x3 intrinsic matrix; d: distortion coefficients; r: 3x3 rectification
    rotation; p: 3x4 projection matrix; stamp_ns: header stamp of the CameraInfo
    in nanoseconds (None when unknown).
    """

    width: int
    height: int
    distortion_model: str
    d: np.ndarray
    k: np.ndarray
    r: np.ndarray
    p: np.ndarray
    stamp_ns: int | None = None

    @classmethod
    def from_fields(cls, width, height, distortion_model, d, k, r=None, p=None,
                    stamp_ns: int | None = None) -> "CameraModel":
        """Validate CameraInfo fields (sequences as in the message: k 9 values
        row-major, r 9, p 12; r/p empty or all zero mean identity / [K | 0])."""
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"camera image size must be positive; got {width}x{height}")
        distortion_model = str(distortion_model)
        if distortion_model not in DISTORTION_COEFFICIENTS:
            raise ValueError(f"unsupported distortion model {distortion_model!r}; supported: "
                             f"{', '.join(DISTORTION_MODELS)}")
        d = np.asarray(d, dtype=np.float64).reshape(-1)
        expected = DISTORTION_COEFFICIENTS[distortion_model]
        if len(d) != expected:
            raise ValueError(f"distortion model {distortion_model!r} needs {expected} "
                             f"coefficients in D; got {len(d)}")
        if not np.isfinite(d).all():
            raise ValueError("D contains NaN or infinite values")
        k = _matrix("K", k, (3, 3))
        if not k.any():
            raise ValueError("K is all zeros: the camera is not calibrated")
        fx, fy = k[0, 0], k[1, 1]
        if not (fx > 0 and fy > 0):
            raise ValueError(f"K has non-positive focal lengths fx={fx}, fy={fy}")
        if k[2, 2] != 1.0 or k[1, 0] != 0.0 or k[2, 0] != 0.0 or k[2, 1] != 0.0:
            raise ValueError(f"K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]]; got {k.tolist()}")
        r = np.eye(3) if r is None or not np.asarray(r).any() else _matrix("R", r, (3, 3))
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-4):
            raise ValueError("R is not a rotation matrix")
        if p is None or not np.asarray(p).any():
            p = np.hstack([k, np.zeros((3, 1))])
        p = _matrix("P", p, (3, 4))
        return cls(width, height, distortion_model, d, k, r, p,
                   None if stamp_ns is None else int(stamp_ns))

    @classmethod
    def from_camera_info(cls, msg) -> "CameraModel":
        """From a sensor_msgs/CameraInfo (rclpy or rosbags message)."""
        from .conversions import stamp_to_ns
        return cls.from_fields(msg.width, msg.height, msg.distortion_model, msg.d, msg.k,
                               msg.r, msg.p, stamp_ns=stamp_to_ns(msg.header.stamp))

    @property
    def fx(self) -> float:
        return float(self.k[0, 0])

    @property
    def fy(self) -> float:
        return float(self.k[1, 1])

    def normalize(self, points_px: np.ndarray, *, rectified: bool = False) -> np.ndarray:
        """(N, 2) pixel keypoints -> (N, 2) float32 undistorted normalised coordinates."""
        points = _points(points_px)
        if len(points) == 0:
            return np.zeros((0, 2), np.float32)
        import cv2
        R = self.r if rectified else None
        src = points.reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, _UNDISTORT_ITERATIONS,
                    _UNDISTORT_EPS)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(src, self.k, self.d, R=R, criteria=criteria)
        else:
            out = cv2.undistortPoints(src, self.k, self.d, R=R, criteria=criteria)
        return out.reshape(-1, 2).astype(np.float32)

    def undistort_pixels(self, points_px: np.ndarray) -> np.ndarray:
        """(N, 2) pixel keypoints -> their positions in the ideal pinhole image with
        the same K (distortion removed). Epipolar geometry holds exactly there, so
        RANSAC on F uses these when calibration is known."""
        normalized = self.normalize(points_px).astype(np.float64)
        k = self.k
        u = k[0, 0] * normalized[:, 0] + k[0, 1] * normalized[:, 1] + k[0, 2]
        v = k[1, 1] * normalized[:, 1] + k[1, 2]
        return np.stack([u, v], axis=1).astype(np.float32)

    def check_image_size(self, width: int, height: int) -> None:
        """Raise ValueError when the calibration was made for another image size."""
        if (int(width), int(height)) != (self.width, self.height):
            raise ValueError(f"calibration is for {self.width}x{self.height} images, "
                             f"the image is {int(width)}x{int(height)}")


def calibration_age_s(camera: CameraModel, image_stamp_ns: int) -> float | None:
    """Seconds by which the CameraInfo predates the image (negative: newer than
    the image); None when the CameraInfo stamp is unknown."""
    if camera.stamp_ns is None:
        return None
    return (int(image_stamp_ns) - camera.stamp_ns) * 1e-9


def is_stale(camera: CameraModel, image_stamp_ns: int, max_age_s: float) -> bool:
    """True when the CameraInfo is older than the image by more than max_age_s
    (max_age_s <= 0 disables the check; an unknown stamp is never stale)."""
    age = calibration_age_s(camera, image_stamp_ns)
    return max_age_s > 0 and age is not None and age > max_age_s


class CalibrationStatus(NamedTuple):
    """usable: whether to normalise with this calibration; reason: "ok" |
    "missing" | "stale" | "size" (a stable key, e.g. to warn once per reason);
    message: what to log."""

    usable: bool
    reason: str
    message: str


def calibration_status(camera: CameraModel | None, image_stamp_ns: int, width: int,
                       height: int, max_age_s: float = 1.0) -> CalibrationStatus:
    """Whether calibration is usable for normalising the keypoints of one image:
    not when none is known, when it is stale, or when it is for another image size."""
    if camera is None:
        return CalibrationStatus(False, "missing", "no CameraInfo received: publishing "
                                 "keypoints without normalised coordinates")
    if is_stale(camera, image_stamp_ns, max_age_s):
        return CalibrationStatus(False, "stale", (
            f"CameraInfo is {calibration_age_s(camera, image_stamp_ns):.2f} s older than the "
            f"image (limit {max_age_s:g} s): not using stale calibration"))
    try:
        camera.check_image_size(width, height)
    except ValueError as error:
        return CalibrationStatus(False, "size", f"{error}: not using this calibration")
    return CalibrationStatus(True, "ok", "calibration ok")


def _matrix(name: str, values, shape) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != shape[0] * shape[1]:
        raise ValueError(f"{name} must have {shape[0] * shape[1]} values "
                         f"({shape[0]}x{shape[1]}); got {array.size}")
    array = array.reshape(shape)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _points(points_px) -> np.ndarray:
    points = np.asarray(points_px, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) (pixel x, y); got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite coordinates")
    return points
