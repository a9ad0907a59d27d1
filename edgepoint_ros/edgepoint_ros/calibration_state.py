"""The newest calibration of one camera, and whether it fits a frame (no ROS).

`CalibrationState` keeps the newest CameraInfo it is given (any object with
a CameraInfo's fields: width, height, distortion_model, d, k, r, p, header)
as a `camera_models.CameraModel`. For each frame a node asks
`camera_for(stamp_ns, width, height)`: the model when the calibration is
usable for that frame, else None, and the frame goes out without normalised
coordinates. Why not is one of these states (the `calibration` value in
/diagnostics):

* ``missing``: no CameraInfo received yet;
* ``uncalibrated``: the newest CameraInfo has an all-zero K, the ROS way of
  saying "this camera is not calibrated" (uncalibrated drivers, the player).
  Not an error: logged once at info level, not counted as invalid;
* ``invalid``: the newest CameraInfo cannot be used (an unknown distortion
  model, a D of the wrong length, NaNs, a non-positive focal length...). It is
  counted (`camera_info_invalid`), never raised: a broken calibration
  publisher must not stop the keypoints;
* ``stale``: the newest CameraInfo is older than the frame by more than
  `max_age_s` (drivers publish one with every image, so an old one means
  its publisher stopped);
* ``size``: the calibration is for another image size;
* ``ok``: usable.

Logging (to `logger`, anything with `info` and `warning`, e.g. a node's
logger): one warning when the state changes to a problem (its reason and
what happens; for ``invalid``, each new reason), one info line when it
becomes ``ok``; nothing per frame. "missing" is only warned about once no
CameraInfo has arrived within `MISSING_GRACE_S` of the first frame: a
driver's first CameraInfo may arrive just after its first image.

Thread safety: `update` (a subscription callback) and `camera_for` (a
node's worker thread) share the state under a lock.
"""
from __future__ import annotations

import threading
import time

from .camera_models import CameraModel, calibration_status

STATES = ("missing", "uncalibrated", "invalid", "stale", "size", "ok")
MISSING_GRACE_S = 1.0


class CalibrationState:
    """The newest calibration received for the camera on `topic` (its name in log lines)."""

    def __init__(self, topic: str, logger, max_age_s: float = 1.0):
        self.topic = topic
        self.max_age_s = float(max_age_s)  # may be changed at run time
        self._logger = logger
        self._lock = threading.Lock()
        self._camera: CameraModel | None = None
        self._invalid_reason = ""
        self._uncalibrated = False
        self._received = 0
        self._invalid = 0
        self._state = "missing"
        self._reported_state: str | None = None  # what the log last announced
        self._first_frame_time: float | None = None

    def update(self, msg) -> None:
        """A CameraInfo arrived."""
        uncalibrated = not any(msg.k)
        camera, problem = None, ""
        if not uncalibrated:
            try:
                camera = CameraModel.from_camera_info(msg)
            except (ValueError, TypeError) as error:
                problem = str(error)
        with self._lock:
            self._received += 1
            self._camera = camera
            self._invalid_reason = problem
            self._uncalibrated = uncalibrated
            if problem:
                self._invalid += 1

    def camera_for(self, stamp_ns: int, width: int, height: int) -> CameraModel | None:
        """The calibration to normalise a width x height frame stamped `stamp_ns`
        with, or None (the reason is in `state` and was logged once)."""
        now = time.monotonic()
        with self._lock:
            camera, invalid_reason = self._camera, self._invalid_reason
            uncalibrated = self._uncalibrated
            if self._first_frame_time is None:
                self._first_frame_time = now
            waited = now - self._first_frame_time
        if uncalibrated:
            state = "uncalibrated"
            message = (f"CameraInfo on {self.topic} has K = 0 (camera not "
                       "calibrated); publishing keypoints without normalised coordinates")
        elif invalid_reason:
            state = "invalid"
            message = (f"unusable CameraInfo on {self.topic}: {invalid_reason}; "
                       "publishing keypoints without normalised coordinates")
        else:
            status = calibration_status(camera, stamp_ns, width, height, self.max_age_s)
            state, message = status.reason, status.message
            if state == "missing":
                message = f"{message} (topic {self.topic})"
        self._set_state(state, message, report=state != "missing" or waited >= MISSING_GRACE_S,
                        key=f"invalid: {invalid_reason}" if invalid_reason else state)
        return camera if state == "ok" else None

    def _set_state(self, state: str, message: str, report: bool, key: str) -> None:
        with self._lock:
            self._state = state
            if not report or key == self._reported_state:
                return
            self._reported_state = key
        if state == "ok":
            self._logger.info(f"calibration from {self.topic} in use")
        elif state == "uncalibrated":
            self._logger.info(message)
        else:
            self._logger.warning(message)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def diagnostics(self, prefix: str = "") -> dict[str, str]:
        """calibration state and CameraInfo counters for /diagnostics."""
        with self._lock:
            return {f"{prefix}calibration": self._state,
                    f"{prefix}camera_info_received": str(self._received),
                    f"{prefix}camera_info_invalid": str(self._invalid)}
