"""Feature tracking: persistent track ids across frames, for VIO/SLAM back ends.

`Tracker.process(features, stamp_ns)` matches the keypoints of each new frame
to a reference frame, verifies the matches geometrically and gives every
keypoint a track id:

* a keypoint whose match to the reference frame is accepted inherits the
  reference keypoint's id; every other keypoint gets a new id. Ids come from
  one counter per `Tracker`, so an id is never reused while the tracker lives
  (`reset()` starts a new sequence but keeps the counter).
* accepted = verified by RANSAC (`geometry.verify_matches`) when verification
  is on; with `verification: none`, every descriptor match is accepted. When
  RANSAC cannot run (fewer than 8 matches for F) no match is verified, so
  every track ends there: unchecked matches never propagate ids.
* a reference keypoint matched by several current keypoints (only possible
  with `mutual: false`) passes its id to the closest one in descriptor
  distance; the others start new tracks, so ids are unique within a frame.

Track age (`edgepoint_msgs/Keypoints.track_ages`): frames elapsed since the
track's first observation; 0 for a new track. Against the previous frame this
is the number of consecutive frames it has been seen before this one. Against
a keyframe, a track seen in keyframe K (age a) and in frame t gets a + (t - K).

Reference frame (`reference`):

* ``previous``: every frame is matched to the frame before it (what VINS'
  KLT tracker does). Every frame is a keyframe in this mode.
* ``keyframe``: every frame is matched to the last keyframe, which limits
  drift of descriptor matching over slow motion. The first frame is a
  keyframe; frame t becomes the next keyframe when any of these holds
  (checked after tracking t against the current keyframe K):
  - fewer than ``keyframe_min_inliers`` accepted matches;
  - accepted matches / keypoints of K below ``keyframe_min_tracked_ratio``;
  - t - K >= ``keyframe_max_frames`` frames (0 = no limit).
  Keypoints of a non-keyframe that match nothing get ids too (every keypoint
  has one), but those ids live only in that frame: the next frame is matched
  to K, not to it.

Velocities: when a `CameraModel` is given, each keypoint gets undistorted
normalised coordinates and, like VINS' feature tracker, a velocity in
normalised units per second relative to the *previous* frame (whatever the
reference): (p_t - p_{t-1}) / dt for a track seen in the previous frame, 0
otherwise. With calibration, RANSAC runs on undistorted pixel coordinates
(same K), where epipolar geometry holds exactly.

If the descriptor layout changes between frames (another model), the tracker
restarts: the frame starts a new sequence with new ids and the result's
`restart_reason` says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import Settings, setting
from .conversions import matches_fields
from .features import Features
from .geometry import VERIFICATION_METHODS, Verification, verify_matches
from .matching import match_descriptors

REFERENCE_MODES = ("previous", "keyframe")


@dataclass
class TrackerConfig(Settings):
    """Settings of the tracker; the matcher node declares one ROS parameter per field
    (the stereo node the matching and verification ones). validate() is Settings'
    check of each field's choices and bounds."""

    SETTINGS_NAME = "tracker settings"

    # Matching (the matcher: frame to reference frame; the stereo node: left to right).
    mutual: bool = setting(
        True, "Keep a match only if it is the nearest neighbour in both directions (mutual "
        "nearest neighbours, a cross-check).")
    ratio: float = setting(
        0.0, "Lowe ratio test: keep a match when best / second-best distance < ratio (the "
        "seed report uses 0.7).", minimum=0.0, maximum=1.0, zero="off")
    max_distance: float = setting(
        0.0, "Reject matches whose descriptor distance is above this (L2 for float "
        "descriptors, bits for binary ones).", minimum=0.0, zero="no limit")
    # Geometric verification of the matches (geometry.verify_matches).
    verification: str = setting(
        "fundamental", "Geometric verification of the matches: fundamental (F by RANSAC, any "
        "static scene), homography (planar scenes, pure rotation) or none. Inlier flags go to "
        "Matches.inliers; only verified matches continue a track.",
        choices=VERIFICATION_METHODS)
    ransac_threshold_px: float = setting(
        1.0, "RANSAC inlier threshold in pixels: distance to the epipolar line (F) or "
        "reprojection error (H); the seed report's f_rej_th, VINS uses 1.",
        minimum=1e-3, maximum=100.0)
    ransac_confidence: float = setting(
        0.999, "RANSAC confidence (probability of drawing one all-inlier sample).",
        minimum=0.5, maximum=0.999999)
    ransac_max_iters: int = setting(2000, "RANSAC iterations at most.", minimum=1, maximum=100000)
    # Reference frame and keyframe policy.
    reference: str = setting(
        "previous", "Frame each new frame is matched to: previous (every frame; VINS-style) or "
        "keyframe (the last keyframe, less drift over slow motion).", choices=REFERENCE_MODES)
    keyframe_min_inliers: int = setting(
        50, "reference=keyframe: a frame with fewer verified matches to the keyframe becomes "
        "the next keyframe.", minimum=0)
    keyframe_min_tracked_ratio: float = setting(
        0.5, "reference=keyframe: a frame whose verified matches are fewer than this fraction "
        "of the keyframe's keypoints becomes the next keyframe.", minimum=0.0, maximum=1.0)
    keyframe_max_frames: int = setting(
        10, "reference=keyframe: a frame this many frames after the keyframe becomes the next "
        "keyframe.", minimum=0, zero="no limit")


@dataclass
class TrackResult:
    """Tracking outcome of one frame.

    Per keypoint (N = keypoints of the frame): track_ids int64, track_ages
    uint32, normalized / velocities (N, 2) float32 or None without calibration.
    Per match (M): reference_indices, current_indices (int64 indices into the
    reference / current keypoints), distances float32, and
    verification.inliers (bool; all True when verification is "none").
    reference_* are None for the first frame of a sequence (no matches).
    """

    frame_index: int
    stamp_ns: int
    track_ids: np.ndarray
    track_ages: np.ndarray
    is_keyframe: bool
    reference_frame_index: int | None
    reference_stamp_ns: int | None
    reference_tag: Any
    reference_num_keypoints: int
    reference_indices: np.ndarray
    current_indices: np.ndarray
    distances: np.ndarray
    verification: Verification
    normalized: np.ndarray | None = None
    velocities: np.ndarray | None = None
    restart_reason: str = ""

    @property
    def num_matches(self) -> int:
        return len(self.current_indices)

    @property
    def inliers(self) -> np.ndarray:
        return self.verification.inliers

    @property
    def num_inliers(self) -> int:
        return self.verification.num_inliers

    @property
    def num_tracked(self) -> int:
        """Keypoints continuing a track (age > 0)."""
        return int(np.count_nonzero(self.track_ages))

    def message_inliers(self) -> np.ndarray:
        """`edgepoint_msgs/Matches.inliers`: empty when verification is none."""
        if self.verification.method == "none":
            return np.zeros(0, bool)
        return self.verification.inliers

    def matches_fields(self, *, session_id: int, reference_sequence: int,
                       current_sequence: int, current_num_keypoints: int) -> dict:
        """The edgepoint_msgs/Matches fields of this frame against its reference
        (`conversions.matches_fields`); only for a frame that has a reference."""
        return matches_fields(
            reference_stamp_ns=self.reference_stamp_ns, session_id=session_id,
            reference_sequence=reference_sequence, current_sequence=current_sequence,
            reference_num_keypoints=self.reference_num_keypoints,
            current_num_keypoints=current_num_keypoints,
            reference_indices=self.reference_indices, current_indices=self.current_indices,
            distances=self.distances, verification=self.verification)


@dataclass
class _Frame:
    index: int
    stamp_ns: int
    features: Features
    track_ids: np.ndarray
    track_ages: np.ndarray
    tag: Any


class Tracker:
    """Assigns persistent track ids to the keypoints of a stream of frames."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = (config or TrackerConfig()).validate()
        self._next_id = 0
        self._frame_count = 0
        self._reference: _Frame | None = None
        self._previous: _Frame | None = None

    def reset(self) -> None:
        """Start a new sequence: the next frame matches nothing. Ids keep counting."""
        self._reference = None
        self._previous = None

    @property
    def ids_issued(self) -> int:
        return self._next_id

    def process(self, features: Features, stamp_ns: int, *, camera=None,
                tag: Any = None) -> TrackResult:
        """Track one frame.

        features: keypoints + descriptors of the frame. stamp_ns: its capture
        time in nanoseconds, strictly after the previous frame's. camera: a
        `camera_models.CameraModel` for normalised coordinates and velocities
        (None: without). tag: anything (e.g. the Keypoints message's sequence
        and stamp) handed back as `reference_tag` when this frame is a
        reference.
        """
        if not isinstance(features, Features):
            raise ValueError(f"features must be a Features object, got {type(features).__name__}")
        stamp_ns = int(stamp_ns)
        if self._previous is not None and stamp_ns <= self._previous.stamp_ns:
            raise ValueError(f"frame stamp {stamp_ns} ns is not after the previous frame's "
                             f"{self._previous.stamp_ns} ns; frames must arrive in time order "
                             "(call reset() to start a new sequence)")
        if camera is not None:
            camera.check_image_size(*features.image_size)

        restart_reason = ""
        reference = self._reference
        if reference is not None and (
                reference.features.descriptor_type != features.descriptor_type
                or reference.features.descriptor_dim != features.descriptor_dim):
            restart_reason = (
                f"descriptor layout changed from {reference.features.descriptor_type} "
                f"x{reference.features.descriptor_dim} to {features.descriptor_type} "
                f"x{features.descriptor_dim}: tracks restart")
            self.reset()
            reference = None

        index = self._frame_count
        self._frame_count += 1
        count = len(features)
        track_ids = np.full(count, -1, np.int64)
        track_ages = np.zeros(count, np.uint32)
        ref_idx = cur_idx = np.zeros(0, np.int64)
        distances = np.zeros(0, np.float32)
        verification = Verification(self.config.verification, np.zeros(0, bool), None)

        if reference is not None:
            ref_idx, cur_idx, distances, verification = match_frames(
                reference.features, features, self.config, camera, camera)
            accepted = verification.inliers
            inherit_ref, inherit_cur = _unique_by_reference(
                ref_idx[accepted], cur_idx[accepted], distances[accepted])
            track_ids[inherit_cur] = reference.track_ids[inherit_ref]
            elapsed = index - reference.index
            track_ages[inherit_cur] = reference.track_ages[inherit_ref] + np.uint32(elapsed)

        new = track_ids < 0
        track_ids[new] = np.arange(self._next_id, self._next_id + int(new.sum()), dtype=np.int64)
        self._next_id += int(new.sum())

        normalized = velocities = None
        if camera is not None:
            normalized = camera.normalize(features.keypoints)
            velocities = self._velocities(track_ids, normalized, stamp_ns, camera)

        frame = _Frame(index, stamp_ns, features, track_ids, track_ages, tag)
        is_keyframe = self._becomes_keyframe(frame, reference, verification)
        result = TrackResult(
            frame_index=index, stamp_ns=stamp_ns, track_ids=track_ids, track_ages=track_ages,
            is_keyframe=is_keyframe,
            reference_frame_index=None if reference is None else reference.index,
            reference_stamp_ns=None if reference is None else reference.stamp_ns,
            reference_tag=None if reference is None else reference.tag,
            reference_num_keypoints=0 if reference is None else len(reference.features),
            reference_indices=ref_idx, current_indices=cur_idx, distances=distances,
            verification=verification, normalized=normalized, velocities=velocities,
            restart_reason=restart_reason)
        if is_keyframe:
            self._reference = frame
        self._previous = frame
        return result

    # -- steps ---------------------------------------------------------------

    def _velocities(self, track_ids: np.ndarray, normalized: np.ndarray, stamp_ns: int,
                    camera) -> np.ndarray:
        previous = self._previous
        if previous is None:
            return np.zeros_like(normalized)
        return velocities_by_id(track_ids, normalized, stamp_ns, previous.track_ids,
                                camera.normalize(previous.features.keypoints), previous.stamp_ns)

    def _becomes_keyframe(self, frame: _Frame, reference: _Frame | None,
                          verification: Verification) -> bool:
        cfg = self.config
        if cfg.reference == "previous" or reference is None:
            return True
        accepted = verification.num_inliers
        reference_count = len(reference.features)
        tracked_ratio = accepted / reference_count if reference_count else 0.0
        too_old = cfg.keyframe_max_frames > 0 and \
            frame.index - reference.index >= cfg.keyframe_max_frames
        return (accepted < cfg.keyframe_min_inliers
                or tracked_ratio < cfg.keyframe_min_tracked_ratio
                or too_old)


def match_frames(reference: Features, current: Features, config: TrackerConfig,
                 reference_camera=None, current_camera=None):
    """Matches of `current` against `reference` with the matching and
    verification settings of `config`: (reference indices, current indices,
    distances, Verification), sorted by current index.

    Each current keypoint looks for its nearest neighbour in the reference
    frame (ratio test, distance limit and mutual check as in `config`); RANSAC
    then flags the matches that agree with one geometry, on undistorted pixels
    when both cameras (`CameraModel`s; the same one for a mono stream) are
    given. The tracker and stereo pair matching both match this way."""
    cur_idx, ref_idx, distances = match_descriptors(
        current.descriptors, reference.descriptors,
        descriptor_type=current.descriptor_type, mutual=config.mutual, ratio=config.ratio,
        max_distance=config.max_distance if config.max_distance > 0 else None)
    ref_points = reference.keypoints[ref_idx]
    cur_points = current.keypoints[cur_idx]
    if (reference_camera is not None and current_camera is not None
            and config.verification != "none" and len(ref_points)):
        ref_points = reference_camera.undistort_pixels(ref_points)
        cur_points = current_camera.undistort_pixels(cur_points)
    verification = verify_matches(ref_points, cur_points, method=config.verification,
                                  threshold_px=config.ransac_threshold_px,
                                  confidence=config.ransac_confidence,
                                  max_iters=config.ransac_max_iters)
    return ref_idx, cur_idx, distances, verification


def velocities_by_id(track_ids: np.ndarray, normalized: np.ndarray, stamp_ns: int,
                     previous_ids: np.ndarray, previous_normalized: np.ndarray,
                     previous_stamp_ns: int) -> np.ndarray:
    """Per-keypoint velocity (normalised units per second) of the tracks also
    present in the previous observation, 0 for the others (VINS' convention).
    Ids must be unique within each frame; negative ids (untracked) get 0."""
    normalized = np.asarray(normalized, np.float32)
    velocities = np.zeros_like(normalized)
    dt = (int(stamp_ns) - int(previous_stamp_ns)) * 1e-9
    if dt <= 0:
        raise ValueError(f"stamp {stamp_ns} ns is not after the previous one "
                         f"({previous_stamp_ns} ns)")
    track_ids = np.asarray(track_ids, np.int64)
    previous_ids = np.asarray(previous_ids, np.int64)
    cur_tracked = np.flatnonzero(track_ids >= 0)
    prev_tracked = np.flatnonzero(previous_ids >= 0)
    _, cur_pos, prev_pos = np.intersect1d(track_ids[cur_tracked], previous_ids[prev_tracked],
                                          assume_unique=True, return_indices=True)
    cur_pos, prev_pos = cur_tracked[cur_pos], prev_tracked[prev_pos]
    velocities[cur_pos] = (normalized[cur_pos] - np.asarray(previous_normalized)[prev_pos]) / dt
    return velocities


def stereo_track_ids(left_track_ids: np.ndarray, left_indices: np.ndarray,
                     right_indices: np.ndarray, num_right: int) -> np.ndarray:
    """Track ids for the right image of a stereo pair from left-right matches.

    A right keypoint matched to left keypoint i gets left_track_ids[i] (so the
    back end sees one feature observed by two cameras, as VINS-Fusion expects);
    unmatched right keypoints get -1. Pass only verified left-right matches.
    """
    left_track_ids = np.asarray(left_track_ids, np.int64).reshape(-1)
    left_indices = np.asarray(left_indices, np.int64).reshape(-1)
    right_indices = np.asarray(right_indices, np.int64).reshape(-1)
    if len(left_indices) != len(right_indices):
        raise ValueError(f"{len(left_indices)} left indices but {len(right_indices)} right "
                         "indices; they must be matched pairs")
    if len(left_indices) and (left_indices.min() < 0 or left_indices.max() >= len(left_track_ids)):
        raise ValueError(f"left indices out of range for {len(left_track_ids)} left keypoints")
    if len(right_indices) and (right_indices.min() < 0 or right_indices.max() >= num_right):
        raise ValueError(f"right indices out of range for {num_right} right keypoints")
    if len(np.unique(right_indices)) != len(right_indices):
        raise ValueError("a right keypoint is matched twice; use mutual matching for stereo")
    right_ids = np.full(int(num_right), -1, np.int64)
    right_ids[right_indices] = left_track_ids[left_indices]
    return right_ids


def _unique_by_reference(ref_idx: np.ndarray, cur_idx: np.ndarray, distances: np.ndarray):
    """Keep, for each reference keypoint, only its closest current match."""
    if len(ref_idx) == len(np.unique(ref_idx)):
        return ref_idx, cur_idx
    order = np.lexsort((distances, ref_idx))   # by reference index, then distance
    ref_sorted = ref_idx[order]
    first = np.ones(len(order), bool)
    first[1:] = ref_sorted[1:] != ref_sorted[:-1]
    keep = order[first]
    return ref_idx[keep], cur_idx[keep]
