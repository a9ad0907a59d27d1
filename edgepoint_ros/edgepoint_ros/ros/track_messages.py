"""Tracking fields of edgepoint_msgs/Keypoints and Matches for rclpy messages.

The field values come from the core (`conversions.matches_fields`, through
`TrackResult.matches_fields` for a tracked frame and
`frontend.PairMatches.matches_fields` for a stereo pair); this module only
puts numpy arrays into rclpy's `array.array` fields, one copy each (see
conversions.py).
"""
from __future__ import annotations

import array

import numpy as np

from ..conversions import ns_to_stamp


def set_normalized(msg, normalized: np.ndarray | None) -> None:
    """Keypoints.x_normalized / y_normalized from (N, 2) coordinates (None: empty)."""
    if normalized is None:
        msg.x_normalized = array.array("f")
        msg.y_normalized = array.array("f")
        return
    normalized = np.asarray(normalized, np.float32).reshape(-1, 2)
    msg.x_normalized = array.array("f", np.ascontiguousarray(normalized[:, 0]).tobytes())
    msg.y_normalized = array.array("f", np.ascontiguousarray(normalized[:, 1]).tobytes())


def set_tracks(msg, track_ids: np.ndarray, track_ages: np.ndarray) -> None:
    """Keypoints.track_ids (int64) and track_ages (uint32)."""
    msg.track_ids = array.array("q", np.asarray(track_ids, np.int64).tobytes())
    msg.track_ages = array.array("I", np.asarray(track_ages, np.uint32).tobytes())


def matches_msg(header, fields: dict):
    """edgepoint_msgs/Matches from a header and the field values of
    `conversions.matches_fields` (reference_stamp given as reference_stamp_ns)."""
    from edgepoint_msgs.msg import Matches

    msg = Matches()
    msg.header = header
    msg.reference_stamp = ns_to_stamp(fields["reference_stamp_ns"])
    for name in ("session_id", "reference_sequence", "current_sequence",
                 "reference_num_keypoints", "current_num_keypoints", "verification"):
        setattr(msg, name, int(fields[name]))
    msg.reference_indices = array.array(
        "I", np.asarray(fields["reference_indices"], np.uint32).tobytes())
    msg.current_indices = array.array(
        "I", np.asarray(fields["current_indices"], np.uint32).tobytes())
    msg.distances = array.array("f", np.asarray(fields["distances"], np.float32).tobytes())
    msg.inliers = [bool(v) for v in np.asarray(fields["inliers"], bool)]
    return msg
