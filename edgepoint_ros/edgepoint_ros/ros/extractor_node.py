"""Extractor node: camera images in, edgepoint_msgs/Keypoints out.

Topics
    in   image              sensor_msgs/Image (mono8, mono16, bgr8, rgb8, bgra8, rgba8,
                            16-bit colour, Bayer, YUV 4:2:2, 32FC1 in [0, 1]);
                            with image_transport: raw (default)
    in   image/compressed   sensor_msgs/CompressedImage (JPEG, PNG, ...);
                            with image_transport: compressed
    in   camera_info        sensor_msgs/CameraInfo (optional): when usable (calibration_state.py),
                            keypoints carry x_normalized/y_normalized
    out  keypoints          edgepoint_msgs/Keypoints (header copied from the image)
    out  keypoints/debug_image  sensor_msgs/Image, keypoints drawn; only while subscribed
    out  /diagnostics       diagnostic_msgs/DiagnosticArray (see diagnostics.py)

Parameters: one per ExtractorConfig field plus image_transport, qos,
publish_debug_image, warmup_runs, max_image_pixels, calibration_max_age,
diagnostics_period (all in parameters.py).

Newest-frame policy (newest_frame.py): the subscription callbacks only store
the newest message; a worker thread runs the model on it. A frame replaced
before the worker got to it is counted as skipped, so a slow model never
builds a queue. Messages DDS reports lost before they reached us are counted
too.

A bad message (unsupported encoding, short data, corrupt JPEG, NaN pixels,
an image larger than `max_image_pixels`, a stamp that is not a time...) is
counted as an error and logged (at most once per 5 s per kind of problem), and
the node serves the next frame. A frame with an unset stamp (0) or an empty
frame_id is processed (the Keypoints copy the header as it is), warned about
and counted as header_warnings: consumers get no capture time or camera frame.

Input and faults: the node logs each image publisher that connects or goes
away (DDS matching; a publisher that crashed is noticed when its DDS lease
expires) and reports `image_publishers` and `last_frame_age_s` in
/diagnostics, so an operator can tell "camera silent" from "node stuck".
Incompatible QoS on an input (e.g. a best-effort camera and `qos: reliable`)
or an output (a subscriber asking for transient-local keypoints) is warned
about and counted as incompatible_qos: no message flows on such a pair.

Parameters can change at run time (`ros2 param set`). Each change is validated
through ExtractorConfig (a bad value is rejected with the reason). The running
model is asked first (`FeatureModel.reconfigure`: it says whether it takes the
change live, e.g. EdgePoint's thresholds, resize and pyramid settings); any
other change (model, weights, runtime, device, precision...) builds a new
model in the parameter callback and runs it on a frame of the last input size
(at least once, whatever warmup_runs says), so a build or a first frame that
fails is rejected with its reason and the old model keeps running. The same
trial run at start-up makes a model that cannot process a frame stop the node
with its reason. QoS events, the parameter skeleton, the model build and
/diagnostics are node_base.py's.
"""
from __future__ import annotations

import secrets
import threading
import time

from ..config import ExtractorConfig
from ..conversions import (check_header, compressed_msg_to_array, features_to_keypoints_msg,
                           image_msg, image_msg_to_array, stamp_to_ns)
from ..drawing import draw_keypoints
from . import parameters
from .node_base import TRIAL_FRAME_SIZE, FrameNode
from .node_main import run
from .qos import describe, qos_profile
from .track_messages import set_normalized

FRAME_ID_SHOWN = 64  # characters of a frame_id quoted in a log line


class ExtractorNode(FrameNode):
    DEFAULT_NAME = "extractor"
    PARAMETERS = parameters.EXTRACTOR_PARAMETERS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._config = parameters.extractor_config(self._values)
        self._model_lock = threading.Lock()
        self._last_frame_size = TRIAL_FRAME_SIZE
        self._last_frame_time: float | None = None
        self._transport = self._values["image_transport"]
        self._image_topic = "image" if self._transport == "raw" else "image/compressed"
        self._model = self._build_model(self._config, self._last_frame_size)
        self._runtime = self._model.runtime_info()
        self._session_id = secrets.randbits(32)
        self._sequence = 0

        from edgepoint_msgs.msg import Keypoints
        from sensor_msgs.msg import CompressedImage, Image

        self._keypoints_publisher = self._output(Keypoints, "keypoints")
        self._debug_publisher = self._output(Image, "keypoints/debug_image")
        input_qos = qos_profile(self._values["qos"])
        # One transport only (image_transport); `kind` is what _process decodes.
        image_type, kind = ((Image, "image") if self._transport == "raw"
                            else (CompressedImage, "compressed"))
        self.create_subscription(image_type, self._image_topic,
                                 lambda msg: self._on_message(msg, kind), input_qos,
                                 event_callbacks=self._subscription_events(self._image_topic))
        self._calibration = self._camera_info("camera_info")
        self._diagnostics = self._start_diagnostics()
        self._start_worker("extractor-worker", self._process)
        self.get_logger().info(
            f"ready: model {self._config.model}, runtime {self._runtime}, input QoS "
            f"{describe(input_qos)}, session {self._session_id}; subscribed to "
            f"{self.resolve_topic_name(self._image_topic)} ({self._transport})")

    # ---- input -------------------------------------------------------------
    def _on_message(self, msg, kind: str) -> None:
        self._stats.received()
        self._last_frame_time = time.monotonic()
        self._worker.submit((msg, kind))

    def _on_error(self, item, exc: Exception) -> None:
        msg, kind = item
        stamp = msg.header.stamp
        frame_id = msg.header.frame_id
        if len(frame_id) > FRAME_ID_SHOWN:
            frame_id = frame_id[:FRAME_ID_SHOWN] + "..."
        text = (f"dropped {'compressed ' if kind == 'compressed' else ''}image (stamp "
                f"{stamp.sec}.{stamp.nanosec:09d}, frame_id {frame_id!r}): {exc}")
        self._stats.error(text)
        self._log_error(text, kind=f"{kind}: {exc}")

    # ---- processing --------------------------------------------------------
    def _process(self, item) -> None:
        msg, kind = item
        started = time.perf_counter()
        for warning in check_header(msg.header):
            self._stats.count("header_warnings")
            self._log_warning(f"image on {'image/compressed' if kind == 'compressed' else kind}"
                              f": {warning}; processed anyway")
        max_pixels = self._values["max_image_pixels"]
        image = (image_msg_to_array(msg, max_pixels) if kind == "image"
                 else compressed_msg_to_array(msg, max_pixels))
        self._last_frame_size = (image.shape[1], image.shape[0])
        with self._model_lock:
            features = self._model.extract(image)
            model_name = self._config.model
        keypoints = features_to_keypoints_msg(features, msg.header, model_name,
                                              self._session_id, self._sequence)
        stamp_ns = stamp_to_ns(msg.header.stamp)
        camera = self._calibration.camera_for(stamp_ns, *features.image_size)
        if camera is not None:
            set_normalized(keypoints, camera.normalize(features.keypoints))
        self._keypoints_publisher.publish(keypoints)
        self._sequence += 1
        latency_ms = self._latency_ms(stamp_ns)
        if self._values["publish_debug_image"] and self._debug_publisher.get_subscription_count():
            drawing = draw_keypoints(image, features.keypoints, features.scores)
            self._debug_publisher.publish(image_msg(drawing, msg.header))
            self._stats.count("debug_images_published")
        self._stats.processed(latency_ms, (time.perf_counter() - started) * 1e3,
                              keypoints=len(features))

    # ---- parameters --------------------------------------------------------
    def _apply_parameters(self, values: dict) -> None:
        config = parameters.extractor_config(values)
        if config == self._config:
            return
        changed = ", ".join(sorted(name for name in ExtractorConfig.field_names()
                                   if getattr(config, name) != getattr(self._config, name)))
        with self._model_lock:
            if self._model.reconfigure(config):  # the model knows what it takes live
                self._config = config
                self.get_logger().info(f"updated {changed} live")
                return
        # outside the lock: frames keep flowing while the new model is built
        model = self._build_model(config, self._last_frame_size)
        with self._model_lock:
            self._model, self._config = model, config
            self._runtime = model.runtime_info()
        self.get_logger().info(f"rebuilt the model for changed {changed}")

    # ---- diagnostics ---------------------------------------------------------
    def _diagnostic_values(self, values: dict[str, str]) -> None:
        values.update({"model": self._config.model, "session_id": str(self._session_id),
                       "sequence": str(self._sequence),
                       "image_publishers": str(self._publishers_matched[self._image_topic]),
                       "last_frame_age_s": ("never" if self._last_frame_time is None else
                                            f"{time.monotonic() - self._last_frame_time:.1f}")})
        values.update({f"runtime_{key}": str(value) for key, value in self._runtime.items()})
        values.update(self._calibration.diagnostics())


def main(args=None) -> int:
    return run(ExtractorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
