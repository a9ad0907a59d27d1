"""Quality-of-service profiles of the edgepoint_ros nodes, chosen by name.

A node's `qos` parameter names the profile of its *input* subscription:

* ``sensor_data`` (the default for images): best effort, keep the last 5,
  volatile. A late frame is worth nothing to a tracker, so the middleware may
  drop frames instead of retransmitting them; the nodes count what DDS reports
  lost. A best-effort subscription matches both reliable and best-effort
  publishers.
* ``reliable``: reliable, keep the last 10, volatile. Matches only reliable
  publishers (a best-effort publisher is reported as incompatible QoS).

Outputs (keypoints, matches, debug images) are always published with
`OUTPUT_QOS` (reliable, keep last 10): a reliable writer serves reliable and
best-effort readers alike, so RViz (reliable by default) and sensor-data
subscribers can both listen.
"""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

PROFILE_NAMES = ("sensor_data", "reliable")

OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)


def qos_profile(name: str) -> QoSProfile:
    """The profile a `qos` parameter names; ValueError for an unknown name."""
    if name == "sensor_data":
        return qos_profile_sensor_data
    if name == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    raise ValueError(f"qos must be one of {', '.join(PROFILE_NAMES)}; got {name!r}")


def describe(profile: QoSProfile) -> str:
    """Short human-readable form for logs, e.g. 'best_effort depth 5'."""
    reliability = "reliable" if profile.reliability == ReliabilityPolicy.RELIABLE else "best_effort"
    return f"{reliability} depth {profile.depth}"
