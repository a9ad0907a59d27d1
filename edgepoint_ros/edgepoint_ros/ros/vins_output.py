"""Tracked features as the `sensor_msgs/PointCloud` that VINS-Fusion's estimator reads.

What VINS-Fusion expects (checked in HKUST-Aerial-Robotics/VINS-Fusion,
`vins_estimator/src/rosNodeTest.cpp`, `feature_callback`, subscribed to
`/feature_tracker/feature`): one point per observation of a feature by a
camera, `points[i] = (x, y, z)` with z == 1 (it asserts so), x, y the
undistorted normalised coordinates; channels read **by index**, names unused:

    channels[0] feature id     channels[3] v (pixel row)
    channels[1] camera id      channels[4] velocity x (normalised units / s)
    channels[2] u (pixel col)  channels[5] velocity y

A feature seen by both cameras of a stereo pair appears twice, with the same
feature id and camera ids 0 and 1. (VINS-Mono's `feature_tracker_node.cpp`
publishes the older 5-channel layout `id_of_point` (= id * NUM_OF_CAM +
camera), `u_of_point`, `v_of_point`, `velocity_x_of_point`,
`velocity_y_of_point`; VINS-Fusion split the camera into its own channel.)

Ground-truth padding: the same callback reads `channels[6..8]` (ground-truth
3D point, debugging only) whenever `channels.size() > 5`, i.e. for any
message with the six channels above; with exactly six that indexes past the
end of the vector. So by default three zero channels follow
(`pad_ground_truth=True`), which the stock estimator then stores as unused
debug data; pass False for consumers that want exactly six.

Channel names here follow VINS-Mono's (`id_of_point`, `u_of_point`, ...),
plus `id_of_camera` and `gt_{x,y,z}_of_point`.

Channel values are float32, which holds integers exactly only up to 2^24, so
feature ids are published modulo 2^24 (`FLOAT32_EXACT_IDS`): an id repeats
after 16.7 million new tracks, far longer than any track survives in VINS'
sliding window, instead of silently merging neighbouring ids once the
counter passes 2^24.

The header is the image's (stamp = capture time, frame_id = camera frame);
VINS-Mono overwrote frame_id with "world", which the estimator ignores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VINS_CHANNELS = ("id_of_point", "id_of_camera", "u_of_point", "v_of_point",
                 "velocity_x_of_point", "velocity_y_of_point")
GROUND_TRUTH_CHANNELS = ("gt_x_of_point", "gt_y_of_point", "gt_z_of_point")
FLOAT32_EXACT_IDS = 1 << 24


@dataclass
class CameraFeatures:
    """The tracked keypoints of one camera for one VINS message.

    track_ids (N,) >= 0; pixels, normalized, velocities (N, 2) (pixel u, v;
    undistorted normalised x, y; normalised units per second).
    """

    camera_id: int
    track_ids: np.ndarray
    pixels: np.ndarray
    normalized: np.ndarray
    velocities: np.ndarray

    @classmethod
    def from_track_result(cls, camera_id: int, keypoints: np.ndarray, result,
                          keep: np.ndarray | None = None) -> "CameraFeatures":
        """From a `tracking.TrackResult` and the frame's (N, 2) pixel keypoints;
        `keep` (bool/index) selects which keypoints to publish (default: all)."""
        if result.normalized is None or result.velocities is None:
            raise ValueError("the track result has no normalised coordinates: "
                             "track with a camera model (CameraInfo) to publish for VINS")
        select = slice(None) if keep is None else keep
        return cls(camera_id, result.track_ids[select], np.asarray(keypoints)[select],
                   result.normalized[select], result.velocities[select])


def vins_feature_cloud(header, cameras, *, pad_ground_truth: bool = True):
    """A sensor_msgs/PointCloud in VINS-Fusion's feature layout from a list of
    `CameraFeatures` (one per camera; camera 0 first by convention)."""
    from geometry_msgs.msg import Point32
    from sensor_msgs.msg import ChannelFloat32, PointCloud

    ids, camera_ids, pixels, normalized, velocities = [], [], [], [], []
    for cam in cameras:
        n = _check_camera(cam)
        ids.append(np.asarray(cam.track_ids, np.int64) % FLOAT32_EXACT_IDS)
        camera_ids.append(np.full(n, int(cam.camera_id), np.int64))
        pixels.append(np.asarray(cam.pixels, np.float64).reshape(n, 2))
        normalized.append(np.asarray(cam.normalized, np.float64).reshape(n, 2))
        velocities.append(np.asarray(cam.velocities, np.float64).reshape(n, 2))
    if ids:
        ids, camera_ids = np.concatenate(ids), np.concatenate(camera_ids)
        pixels, normalized = np.concatenate(pixels), np.concatenate(normalized)
        velocities = np.concatenate(velocities)
    else:
        ids = camera_ids = np.zeros(0, np.int64)
        pixels = normalized = velocities = np.zeros((0, 2))

    msg = PointCloud()
    msg.header = header
    msg.points = [Point32(x=float(x), y=float(y), z=1.0) for x, y in normalized]
    columns = [ids, camera_ids, pixels[:, 0], pixels[:, 1], velocities[:, 0], velocities[:, 1]]
    names = list(VINS_CHANNELS)
    if pad_ground_truth:
        columns += [np.zeros(len(ids))] * len(GROUND_TRUTH_CHANNELS)
        names += GROUND_TRUTH_CHANNELS
    channels = []
    for name, values in zip(names, columns):
        channel = ChannelFloat32()
        channel.name = name
        # rclpy stores float32[] as array.array('f'); this fills it in one copy
        channel.values.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
        channels.append(channel)
    msg.channels = channels
    return msg


def read_vins_feature_cloud(msg) -> dict[str, np.ndarray]:
    """Arrays back from a VINS feature PointCloud (reads by channel index, as
    VINS-Fusion does): feature_id, camera_id (int64), pixels, normalized,
    velocities ((N, 2) float64)."""
    n = len(msg.points)
    if len(msg.channels) < len(VINS_CHANNELS):
        raise ValueError(f"a VINS feature cloud has at least {len(VINS_CHANNELS)} channels; "
                         f"this one has {len(msg.channels)}")
    columns = []
    for index, channel in enumerate(msg.channels):
        values = np.asarray(channel.values, np.float64)
        if len(values) != n:
            raise ValueError(f"channel {index} ({channel.name!r}) has {len(values)} values "
                             f"for {n} points")
        columns.append(values)
    points = np.array([[p.x, p.y, p.z] for p in msg.points], np.float64).reshape(n, 3)
    if n and not np.all(points[:, 2] == 1.0):
        raise ValueError("VINS feature points must have z == 1")
    return {"feature_id": columns[0].astype(np.int64), "camera_id": columns[1].astype(np.int64),
            "pixels": np.stack([columns[2], columns[3]], axis=1),
            "normalized": points[:, :2],
            "velocities": np.stack([columns[4], columns[5]], axis=1)}


def _check_camera(cam: CameraFeatures) -> int:
    n = len(np.asarray(cam.track_ids).reshape(-1))
    for name in ("pixels", "normalized", "velocities"):
        array = np.asarray(getattr(cam, name))
        if array.size != 2 * n:
            raise ValueError(f"camera {cam.camera_id}: {name} must be ({n}, 2) for {n} track "
                             f"ids; got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"camera {cam.camera_id}: {name} contains NaN or infinite values")
    if n and np.asarray(cam.track_ids).min() < 0:
        raise ValueError(f"camera {cam.camera_id}: track ids must be >= 0 (drop untracked "
                         "keypoints, e.g. unmatched right-camera points, before publishing)")
    if int(cam.camera_id) < 0:
        raise ValueError(f"camera id must be >= 0; got {cam.camera_id}")
    return n
