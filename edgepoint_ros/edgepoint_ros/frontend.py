"""The tracking front end of a keypoint stream, and stereo pair matching: the
logic of the matcher and stereo nodes, without ROS.

`TrackingFrontEnd` tracks the frames of one keypoint stream (a camera's
Keypoints messages, decoded into `KeypointFrame`s) with `tracking.Tracker`
and never tracks across frames that should not be paired. A new sequence
starts (the tracker resets: the frame gets new ids and no matches; the reset
is counted) when
  * the extractor's session_id changes (the extractor restarted: its sequence
    numbers and maybe its model are new),
  * the descriptor type or dimension changes (e.g. the model parameter changed),
  * the stamp does not advance (a bag or player looped, or a frame came twice).
Track ids keep counting across resets, so an id is never reused. Frames whose
sequence numbers were skipped (dropped on the way or by the newest-frame
policy) are counted as `sequence_gaps`.

Stereo: `match_pair` matches the two images of a synchronised set the way the
tracker matches a frame to its reference (`tracking.match_frames`): the left
image is the reference, the right one the current frame, with the settings
named in PAIR_SETTINGS and each camera's own calibration for RANSAC on
undistorted pixels.

Imports nothing from rclpy: the nodes wire this to topics, and the unit tests
run it where ROS is not installed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .conversions import matches_fields, stamp_to_ns
from .features import Features
from .geometry import Verification
from .tracking import Tracker, TrackerConfig, TrackResult, match_frames

# The settings of left-right matching: the TrackerConfig fields of the same names.
PAIR_SETTINGS = ("mutual", "ratio", "max_distance", "verification", "ransac_threshold_px",
                 "ransac_confidence", "ransac_max_iters")
_CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*")


# ---- one camera: tracking a keypoint stream ------------------------------------

@dataclass
class KeypointFrame:
    """One received Keypoints message, decoded (header: its std_msgs/Header)."""
    header: object
    session_id: int
    sequence: int
    features: Features

    @property
    def stamp_ns(self) -> int:
        return stamp_to_ns(self.header.stamp)


class TrackingFrontEnd:
    """Tracks the frames of one keypoint stream; starts a new sequence when the
    stream cannot be continued (see the module docstring)."""

    def __init__(self, config: TrackerConfig | None = None):
        self.tracker = Tracker(config)
        self.previous: KeypointFrame | None = None
        self.resets = 0
        self.sequence_gaps = 0
        self.keyframes = 0

    def configure(self, config: TrackerConfig) -> None:
        """New settings; the current sequence and its ids carry on."""
        self.tracker.config = config.validate()

    def restart_reason(self, frame: KeypointFrame) -> str | None:
        """Why `frame` cannot continue the current sequence (None: it can)."""
        previous = self.previous
        if previous is None:
            return "first frame"
        if frame.session_id != previous.session_id:
            return (f"extractor session changed from {previous.session_id} to "
                    f"{frame.session_id} (extractor restarted)")
        a, b = previous.features, frame.features
        if (a.descriptor_type, a.descriptor_dim) != (b.descriptor_type, b.descriptor_dim):
            return (f"descriptors changed from {a.descriptor_type}/{a.descriptor_dim} to "
                    f"{b.descriptor_type}/{b.descriptor_dim}; frames of different "
                    f"descriptors are never compared")
        if frame.stamp_ns <= previous.stamp_ns:
            return (f"stamp {frame.stamp_ns * 1e-9:.9f} s is not after the previous frame's "
                    f"{previous.stamp_ns * 1e-9:.9f} s (source looped, restarted or repeated "
                    f"a frame)")
        return None

    def push(self, frame: KeypointFrame, camera=None) -> tuple[TrackResult, str | None]:
        """Track `frame` (camera: a CameraModel or None). Returns the result
        (its reference_tag is the reference KeypointFrame) and the reason a
        new sequence started with this frame, or None when it continued one."""
        reason = self.restart_reason(frame)
        if reason is not None:
            self.tracker.reset()
        result = self.tracker.process(frame.features, frame.stamp_ns, camera=camera, tag=frame)
        previous, self.previous = self.previous, frame
        if reason is not None and previous is not None:
            self.resets += 1
        if reason is None and frame.sequence > previous.sequence + 1:
            self.sequence_gaps += frame.sequence - previous.sequence - 1
        self.keyframes += result.is_keyframe
        return result, reason

    @staticmethod
    def matches_fields(frame: KeypointFrame, result: TrackResult) -> dict:
        """The edgepoint_msgs/Matches fields of a tracked frame against its
        reference (`result.reference_tag`, a KeypointFrame; not None)."""
        reference: KeypointFrame = result.reference_tag
        return result.matches_fields(session_id=frame.session_id,
                                     reference_sequence=reference.sequence,
                                     current_sequence=frame.sequence,
                                     current_num_keypoints=len(frame.features))


def flow_points(frame: KeypointFrame, result: TrackResult):
    """What a visual-odometry "flow" view draws of a tracked frame: for each
    accepted match (verified, or every match with verification none) the
    keypoint's position in the reference frame and now, and the current
    keypoints without an accepted match: (reference_xy, current_xy, others_xy)."""
    current = frame.features
    accepted = result.inliers
    reference_xy = np.zeros((0, 2), np.float32)
    if result.reference_tag is not None:
        reference_xy = result.reference_tag.features.keypoints[
            result.reference_indices[accepted]]
    others = np.ones(len(current), bool)
    others[result.current_indices[accepted]] = False
    return (reference_xy, current.keypoints[result.current_indices[accepted]],
            current.keypoints[others])


# ---- a camera rig: stereo pair matching ---------------------------------------

def camera_names(names) -> list[str]:
    """Validated camera names of a rig (the stereo node's `cameras`): 2 or
    more distinct relative topic names."""
    names = list(names)
    if len(names) < 2:
        raise ValueError(f"parameter cameras must name at least 2 cameras; got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"parameter cameras names a camera twice: {names}")
    for name in names:
        if not _CAMERA_NAME.fullmatch(name):
            raise ValueError(f"parameter cameras: {name!r} is not a relative topic name "
                             "(letters, digits, _ and /, starting with a letter)")
    return names


def pair_matching_config(values: dict) -> TrackerConfig:
    """The left-right matching settings (PAIR_SETTINGS) of a dict of setting
    values, validated as TrackerConfig fields."""
    return TrackerConfig.from_mapping({name: values[name] for name in PAIR_SETTINGS})


@dataclass
class PairMatches:
    """Left-right matches of a stereo pair (left = reference, right = current)."""
    left_indices: np.ndarray
    right_indices: np.ndarray
    distances: np.ndarray
    verification: Verification

    @property
    def num_matches(self) -> int:
        return len(self.left_indices)

    @property
    def num_inliers(self) -> int:
        return self.verification.num_inliers

    def matches_fields(self, *, left_stamp_ns: int, session_id: int, sequence: int,
                       num_left: int, num_right: int) -> dict:
        """The edgepoint_msgs/Matches fields: reference = left, current = right,
        both of set `sequence`."""
        return matches_fields(
            reference_stamp_ns=left_stamp_ns, session_id=session_id,
            reference_sequence=sequence, current_sequence=sequence,
            reference_num_keypoints=num_left, current_num_keypoints=num_right,
            reference_indices=self.left_indices, current_indices=self.right_indices,
            distances=self.distances, verification=self.verification)


def match_pair(left: Features, right: Features, settings: TrackerConfig,
               left_camera=None, right_camera=None) -> PairMatches:
    """Left-right matches of one synchronised pair.

    Each right keypoint looks for its nearest neighbour among the left ones
    (ratio test, distance limit and mutual check as in `settings`); RANSAC
    then flags the matches that agree with one epipolar geometry (undistorted
    pixels when both calibrations are given): `tracking.match_frames`, as for
    a frame and its reference. Descriptors of different layouts are an error."""
    if (left.descriptor_type, left.descriptor_dim) != (right.descriptor_type,
                                                       right.descriptor_dim):
        raise ValueError(f"left and right descriptors differ: {left.descriptor_type}/"
                         f"{left.descriptor_dim} vs {right.descriptor_type}/"
                         f"{right.descriptor_dim}")
    left_idx, right_idx, distances, verification = match_frames(
        left, right, settings, left_camera, right_camera)
    return PairMatches(left_idx, right_idx, distances, verification)
