"""CameraInfo for the nodes: one sensor_msgs/CameraInfo subscription feeding the core's calibration state.

`CameraInfoListener` is a `calibration_state.CalibrationState` (which
calibration a frame gets, and the states, counters and log lines of
/diagnostics `calibration`) that subscribes to one CameraInfo topic,
relative to the node's namespace, and is named by the resolved topic in its
log lines. Its subscription is best effort, which matches reliable and
best-effort CameraInfo publishers alike.
"""
from __future__ import annotations

from ..calibration_state import CalibrationState
from .qos import qos_profile


class CameraInfoListener(CalibrationState):
    """The newest calibration published on `topic` (relative to `node`'s namespace)."""

    def __init__(self, node, topic: str = "camera_info", max_age_s: float = 1.0,
                 event_callbacks=None):
        from sensor_msgs.msg import CameraInfo

        super().__init__(node.resolve_topic_name(topic), node.get_logger(), max_age_s)
        node.create_subscription(CameraInfo, topic, self.update, qos_profile("sensor_data"),
                                 event_callbacks=event_callbacks)
