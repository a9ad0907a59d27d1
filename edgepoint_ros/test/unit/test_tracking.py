"""Tracker on synthetic sequences where the true 3D point behind every keypoint is known."""
import numpy as np
import pytest

from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.features import Features
from edgepoint_ros.tracking import Tracker, TrackerConfig, stereo_track_ids

K = np.array([[450.0, 0.0, 320.0], [0.0, 450.0, 240.0], [0.0, 0.0, 1.0]])
FRAME_NS = 50_000_000  # 20 Hz


class Scene:
    """Static 3D points seen by a camera translating along x; each point has a
    fixed descriptor. Every frame observes a random subset in random order."""

    def __init__(self, num_points=300, dim=64, seed=0):
        self.rng = np.random.default_rng(seed)
        self.points = np.column_stack([self.rng.uniform(-3, 3, num_points),
                                       self.rng.uniform(-2, 2, num_points),
                                       self.rng.uniform(5, 12, num_points)])
        desc = self.rng.normal(size=(num_points, dim)).astype(np.float32)
        self.descriptors = desc / np.linalg.norm(desc, axis=1, keepdims=True)

    def pixels(self, t):
        cam = self.points - np.array([0.04 * t, 0.01 * t, 0.0])
        uv = cam @ K.T
        return uv[:, :2] / uv[:, 2:3]

    def frame(self, t, visible=0.85, swaps=0, binary=False):
        """(Features, point index of each keypoint). `swaps` pairs of keypoints
        get each other's descriptors: wrong matches that only geometry can catch."""
        n = len(self.points)
        seen = self.rng.permutation(n)[: int(visible * n)]
        desc = self.descriptors[seen] + self.rng.normal(0, 0.02, (len(seen), self.descriptors.shape[1]))
        desc = (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32)
        for k in range(swaps):
            i, j = 2 * k, 2 * k + 1
            desc[[i, j]] = desc[[j, i]]
        keypoints = self.pixels(t)[seen]
        if binary:
            bits = (desc > 0).astype(np.uint8)
            feats = Features(keypoints, np.ones(len(seen)), np.packbits(bits, axis=1), (640, 480),
                             "binary", desc.shape[1])
        else:
            feats = Features(keypoints, np.ones(len(seen)), desc, (640, 480))
        return feats, seen


def _check_id_purity(id_to_point, result, seen):
    """An id always denotes the same 3D point."""
    for track_id, point in zip(result.track_ids.tolist(), seen.tolist()):
        assert id_to_point.setdefault(track_id, point) == point


def test_ids_persist_and_are_never_reused():
    scene, tracker = Scene(), Tracker(TrackerConfig(verification="fundamental"))
    id_to_point, all_ids = {}, []
    for t in range(6):
        feats, seen = scene.frame(t)
        result = tracker.process(feats, t * FRAME_NS)
        _check_id_purity(id_to_point, result, seen)
        assert len(np.unique(result.track_ids)) == len(feats)
        all_ids.append(result.track_ids)
        if t == 0:
            assert result.reference_frame_index is None and result.num_matches == 0
            assert (result.track_ages == 0).all() and list(result.track_ids) == list(range(len(feats)))
        else:
            assert result.reference_frame_index == t - 1
            # points seen in both frames keep their id (85% x 85% overlap expected)
            assert result.num_tracked > 0.65 * len(feats)
    # ids of new tracks always exceed every earlier id: never reused
    issued = np.concatenate(all_ids)
    assert tracker.ids_issued == len(np.unique(issued))


def test_track_age_counts_consecutive_frames():
    scene, tracker = Scene(seed=1), Tracker(TrackerConfig(verification="none"))
    ages = {}
    for t in range(5):
        feats, seen = scene.frame(t, visible=1.0)
        result = tracker.process(feats, t * FRAME_NS)
        for point, age in zip(seen.tolist(), result.track_ages.tolist()):
            ages[point] = age
    assert set(ages.values()) == {4}  # all points visible in all 5 frames
    # verification none: matches are all accepted and the message's inliers are empty
    assert result.inliers.all() and result.message_inliers().size == 0


def test_geometric_verification_stops_wrong_matches_from_propagating_ids():
    scene = Scene(seed=2)
    verified, unverified = Tracker(TrackerConfig()), Tracker(TrackerConfig(verification="none"))
    feats0, seen0 = scene.frame(0, visible=1.0)
    feats1, seen1 = scene.frame(1, visible=1.0, swaps=20)
    for tracker in (verified, unverified):
        tracker.process(feats0, 0)
    good, bad = verified.process(feats1, FRAME_NS), unverified.process(feats1, FRAME_NS)
    swapped = np.zeros(len(seen1), bool)
    swapped[:40] = True
    # the 40 swapped keypoints matched (descriptors agree) but geometry rejects them
    rejected_cur = good.current_indices[~good.inliers]
    assert set(np.flatnonzero(swapped)) <= set(rejected_cur.tolist())
    assert good.inliers.sum() >= len(seen1) - 40 - 3
    assert (good.track_ages[swapped] == 0).all()       # they start new tracks
    id_of_point0 = dict(zip(seen0.tolist(), range(len(seen0))))
    assert all(good.track_ids[i] == id_of_point0[p] for i, p in enumerate(seen1) if not swapped[i])
    # without verification they inherit the wrong ids
    assert all(bad.track_ids[i] != id_of_point0[seen1[i]] for i in np.flatnonzero(swapped))


def test_too_few_matches_end_every_track():
    scene, tracker = Scene(num_points=6, seed=3), Tracker(TrackerConfig())
    tracker.process(scene.frame(0, visible=1.0)[0], 0)
    result = tracker.process(scene.frame(1, visible=1.0)[0], FRAME_NS)
    assert result.num_matches == 6 and not result.inliers.any()
    assert result.verification.model is None
    assert (result.track_ages == 0).all() and result.track_ids.min() >= 6


def test_keyframe_policy():
    scene = Scene(seed=4)
    config = TrackerConfig(reference="keyframe", keyframe_max_frames=3,
                           keyframe_min_inliers=10, keyframe_min_tracked_ratio=0.3)
    tracker = Tracker(config)
    results = [tracker.process(scene.frame(t)[0], t * FRAME_NS) for t in range(7)]
    # 0 is a keyframe; 1 and 2 match it; 3 is three frames after it -> new keyframe; ...
    assert [r.is_keyframe for r in results] == [True, False, False, True, False, False, True]
    assert [r.reference_frame_index for r in results] == [None, 0, 0, 0, 3, 3, 3]
    # a track seen in keyframe 0 and in frame 2 is two frames old
    assert results[2].track_ages.max() == 2
    assert results[4].track_ages.max() == 4

    # tracking collapse (a different scene) triggers a keyframe immediately
    tracker = Tracker(TrackerConfig(reference="keyframe", keyframe_max_frames=0))
    tracker.process(scene.frame(0)[0], 0)
    assert not tracker.process(scene.frame(1)[0], FRAME_NS).is_keyframe
    other = Scene(seed=99).frame(0)[0]
    collapsed = tracker.process(other, 2 * FRAME_NS)
    assert collapsed.is_keyframe and collapsed.num_inliers < 50
    assert tracker.process(scene.frame(2)[0], 3 * FRAME_NS).reference_frame_index == 2


def test_velocities_in_normalized_coordinates():
    scene, tracker = Scene(seed=5), Tracker(TrackerConfig())
    camera = CameraModel.from_fields(640, 480, "plumb_bob", [0] * 5, K.ravel())
    feats0, _ = scene.frame(0, visible=1.0)
    first = tracker.process(feats0, 0, camera=camera)
    assert (first.velocities == 0).all()
    np.testing.assert_allclose(first.normalized, (feats0.keypoints - [320, 240]) / 450, atol=1e-6)
    feats1, seen1 = scene.frame(1, visible=1.0)
    result = tracker.process(feats1, FRAME_NS, camera=camera)
    # camera moves +0.04 m in x, +0.01 in y per frame: x_n = (X - 0.04 t) / Z
    dt = FRAME_NS * 1e-9
    expected = -np.column_stack([0.04 / scene.points[seen1, 2], 0.01 / scene.points[seen1, 2]]) / dt
    tracked = result.track_ages > 0
    assert tracked.sum() > 0.9 * len(seen1)
    np.testing.assert_allclose(result.velocities[tracked], expected[tracked], rtol=1e-3, atol=1e-3)
    assert (result.velocities[~tracked] == 0).all()


def test_binary_descriptors_track_too():
    # 256 bits: with 64 sign bits a few distinct points collide in Hamming distance
    scene, tracker = Scene(dim=256, seed=6), Tracker(TrackerConfig())
    id_to_point = {}
    for t in range(3):
        feats, seen = scene.frame(t, binary=True)
        result = tracker.process(feats, t * FRAME_NS)
        _check_id_purity(id_to_point, result, seen)
    assert result.num_tracked > 0.6 * len(seen)


def test_non_mutual_matching_keeps_ids_unique():
    scene = Scene(seed=7)
    tracker = Tracker(TrackerConfig(mutual=False, verification="none"))
    feats0, _ = scene.frame(0, visible=1.0)
    tracker.process(feats0, 0)
    feats1, _ = scene.frame(1, visible=1.0)
    doubled = Features(np.vstack([feats1.keypoints, feats1.keypoints[:5] + 1]),
                       np.ones(len(feats1) + 5),
                       np.vstack([feats1.descriptors, feats1.descriptors[:5] * 0.9]), (640, 480))
    result = tracker.process(doubled, FRAME_NS)
    assert len(np.unique(result.track_ids)) == len(doubled)
    assert result.num_matches == len(doubled)


def test_restart_on_descriptor_change_and_stamp_order():
    scene, tracker = Scene(seed=8), Tracker()
    tracker.process(scene.frame(0)[0], 0)
    with pytest.raises(ValueError, match="is not after the previous frame"):
        tracker.process(scene.frame(1)[0], 0)
    restarted = tracker.process(scene.frame(1, binary=True)[0], FRAME_NS)
    assert "descriptor layout changed" in restarted.restart_reason
    assert restarted.reference_frame_index is None and (restarted.track_ages == 0).all()
    tracker.reset()
    assert tracker.process(scene.frame(2)[0], 0).reference_frame_index is None


def test_stereo_track_ids():
    right = stereo_track_ids([10, 11, 12], [0, 2], [3, 1], num_right=4)
    assert right.tolist() == [-1, 12, -1, 10]
    with pytest.raises(ValueError, match="a right keypoint is matched twice"):
        stereo_track_ids([10, 11], [0, 1], [2, 2], num_right=3)
    with pytest.raises(ValueError, match="right indices out of range"):
        stereo_track_ids([10, 11], [0, 1], [0, 5], num_right=3)


@pytest.mark.parametrize("field,value,needle", [
    ("verification", "essential", "verification must be one of"),
    ("reference", "first", "reference must be one of"),
    ("ratio", 1.5, "ratio must be in"),
    ("keyframe_max_frames", -1, "keyframe_max_frames must be >= 0"),
    ("ransac_threshold_px", 0, r"ransac_threshold_px must be in \[0.001, 100\]"),
])
def test_bad_settings_are_named(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        TrackerConfig(**{field: value}).validate()
    with pytest.raises(ValueError, match="unknown tracker settings: window"):
        TrackerConfig.from_mapping({"window": 3})


def test_velocities_by_id_for_a_right_camera_with_untracked_points():
    from edgepoint_ros.tracking import velocities_by_id
    v = velocities_by_id([-1, 7, -1, 3], [[0, 0], [0.2, 0.1], [5, 5], [0.0, 0.0]], 2_000_000_000,
                         [3, -1, 7, -1], [[0.1, 0.0], [9, 9], [0.1, 0.1], [8, 8]], 1_500_000_000)
    np.testing.assert_allclose(v, [[0, 0], [0.2, 0.0], [0, 0], [-0.2, 0.0]], atol=1e-6)
    with pytest.raises(ValueError, match="is not after the previous one"):
        velocities_by_id([1], [[0, 0]], 5, [1], [[0, 0]], 5)
