"""Extractor node: camera images in, edgepoint_msgs/Keypoints out.

Topics
    in   image              sensor_msgs/Image (mono8, mono16, bgr8, rgb8, bgra8, rgba8,
                            16-bit colour, Bayer, YUV 4:2:2, 32FC1 in [0, 1]);
                            with image_transport: raw (default)
    in   image/compressed   sensor_msgs/CompressedImage (JPEG, PNG, ...);
                            with image_transport: compressed
    in   camera_info        sensor_msgs/CameraInfo (optional): when usable (calibration.py),
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
through ExtractorConfig (a bad value is rejected with the reason). Threshold
changes go to the running model when it takes them live
(`FeatureModel.reconfigure`); any other change (model, weights, runtime,
device, precision...) builds a new model in the parameter callback and runs
it on a frame of the last input size (at least once, whatever warmup_runs
says), so a build or a first frame that fails is rejected with its reason
and the old model keeps running. The same trial run at start-up makes a model
that cannot process a frame stop the node with its reason.
"""
from __future__ import annotations

import secrets
import threading
import time
import warnings

from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node

from ..config import ExtractorConfig
from ..models import create_model
from ..runtimes.base import RuntimeFallbackWarning
from . import parameters
from .calibration import CameraInfoListener
from ..conversions import (check_header, compressed_msg_to_array, features_to_keypoints_msg,
                          image_msg, image_msg_to_array, stamp_to_ns)
from .diagnostics import DiagnosticsPublisher, FrameStatistics, ThrottledLog, summary_message
from .newest_frame import NewestFrameWorker
from .node_main import run
from .qos import OUTPUT_QOS, describe, qos_profile
from .track_messages import set_normalized
from .visualization import draw_keypoints

# Settings a built model may take without being rebuilt (FeatureModel.reconfigure
# says whether it did); any other change builds a new model.
LIVE_SETTINGS = frozenset({"max_keypoints", "score_threshold", "nms_radius", "border",
                           "subpixel", "binary_descriptors"})
TRIAL_FRAME_SIZE = (640, 480)  # the frame a new model is tried on before any image arrived
FRAME_ID_SHOWN = 64  # characters of a frame_id quoted in a log line


class ExtractorNode(Node):
    DEFAULT_NAME = "extractor"

    def __init__(self, **kwargs):
        super().__init__(self.DEFAULT_NAME, **kwargs)
        self._values = parameters.declare(self, parameters.EXTRACTOR_PARAMETERS)
        self._config = parameters.extractor_config(self._values)
        self._model_lock = threading.Lock()
        self._last_frame_size = TRIAL_FRAME_SIZE
        self._last_frame_time: float | None = None
        self._transport = self._values["image_transport"]
        self._image_topic = "image" if self._transport == "raw" else "image/compressed"
        self._image_publishers = {self._image_topic: 0}
        self._model = self._build_model(self._config)
        self._runtime = self._model.runtime_info()

        self._session_id = secrets.randbits(32)
        self._sequence = 0
        self._stats = FrameStatistics()
        self._log_error = ThrottledLog(self.get_logger(), "error")
        self._log_warning = ThrottledLog(self.get_logger(), "warning")

        from edgepoint_msgs.msg import Keypoints
        from sensor_msgs.msg import CompressedImage, Image

        self._keypoints_publisher = self.create_publisher(
            Keypoints, "keypoints", OUTPUT_QOS, event_callbacks=self._publisher_events("keypoints"))
        self._debug_publisher = self.create_publisher(
            Image, "keypoints/debug_image", OUTPUT_QOS,
            event_callbacks=self._publisher_events("keypoints/debug_image"))
        input_qos = qos_profile(self._values["qos"])
        # One transport only (image_transport); `kind` is what _process decodes.
        image_type, kind = ((Image, "image") if self._transport == "raw"
                            else (CompressedImage, "compressed"))
        self.create_subscription(image_type, self._image_topic,
                                 lambda msg: self._on_message(msg, kind), input_qos,
                                 event_callbacks=self._subscription_events(self._image_topic))
        self._calibration = CameraInfoListener(self, "camera_info",
                                               self._values["calibration_max_age"])
        self._diagnostics = DiagnosticsPublisher(self, self._values["diagnostics_period"],
                                                 self._diagnostic_status, self._hardware_id)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker = NewestFrameWorker("extractor-worker", self._process,
                                         lambda: self._stats.count("frames_skipped"),
                                         self._on_error)
        self.get_logger().info(
            f"ready: model {self._config.model}, runtime {self._runtime}, input QoS "
            f"{describe(input_qos)}, session {self._session_id}; subscribed to "
            f"{self.resolve_topic_name(self._image_topic)} ({self._transport})")

    # ---- model -------------------------------------------------------------
    def _build_model(self, config: ExtractorConfig):
        """A new model, tried on frames of the last input size; ValueError (or
        the model's own error) naming the problem when it cannot serve."""
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeFallbackWarning)
            model = create_model(config)
        for warning in caught:  # the runtime could not run as asked: say so in the ROS log
            self.get_logger().warning(str(warning.message))
        width, height = self._last_frame_size
        try:
            model.warmup(width, height, runs=max(1, self._values["warmup_runs"]))
        except Exception as exc:
            raise ValueError(f"model {config.model} was built but cannot process a "
                             f"{width}x{height} frame: {exc}") from exc
        self.get_logger().info(
            f"model {config.model} built in {time.perf_counter() - started:.2f} s; "
            f"runs on {model.runtime_info()}")
        return model

    def _hardware_id(self) -> str:
        info = self._runtime
        return f"{info.get('runtime', '?')}/{info.get('device', '?')}"

    # ---- input -------------------------------------------------------------
    def _on_message(self, msg, kind: str) -> None:
        self._stats.received()
        self._last_frame_time = time.monotonic()
        self._worker.submit((msg, kind))

    def _subscription_events(self, topic: str) -> SubscriptionEventCallbacks:
        def lost(info):
            self._stats.count("messages_lost", info.total_count_change)
            self._log_warning(f"DDS lost {info.total_count_change} message(s) on "
                              f"{topic} before they reached this node "
                              f"({info.total_count} in total)")

        def matched(info):
            self._image_publishers[topic] = info.current_count
            change = info.current_count_change
            if change:
                what = "connected" if change > 0 else "went away"
                self.get_logger().info(f"{abs(change)} publisher(s) on {topic} {what}; "
                                       f"{info.current_count} now")

        def incompatible(info):
            self._warn_incompatible(
                info, topic, f"a publisher offers less than this subscription requests "
                f"(qos: {self._values['qos']}); e.g. a best-effort camera and "
                f"qos 'reliable': set qos to sensor_data")
        return SubscriptionEventCallbacks(message_lost=lost, matched=matched,
                                          incompatible_qos=incompatible)

    def _publisher_events(self, topic: str) -> PublisherEventCallbacks:
        def incompatible(info):
            self._warn_incompatible(
                info, topic, f"a subscription requests more than this node offers "
                f"({describe(OUTPUT_QOS)}, volatile); e.g. transient-local durability")
        return PublisherEventCallbacks(incompatible_qos=incompatible)

    def _warn_incompatible(self, info, topic: str, explanation: str) -> None:
        self._stats.count("incompatible_qos", info.total_count_change)
        policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
        self.get_logger().warning(f"incompatible QoS on {topic} ({policy} policy): "
                                  f"{explanation}; no messages flow between them")

    # ---- processing --------------------------------------------------------
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
        camera = self._calibration.camera_for(stamp_to_ns(msg.header.stamp),
                                              *features.image_size)
        if camera is not None:
            set_normalized(keypoints, camera.normalize(features.keypoints))
        self._keypoints_publisher.publish(keypoints)
        self._sequence += 1
        stamp_ns = stamp_to_ns(msg.header.stamp)
        latency_ms = ((self.get_clock().now().nanoseconds - stamp_ns) / 1e6
                      if stamp_ns else None)
        if self._values["publish_debug_image"] and self._debug_publisher.get_subscription_count():
            drawing = draw_keypoints(image, features.keypoints, features.scores)
            self._debug_publisher.publish(image_msg(drawing, msg.header))
            self._stats.count("debug_images_published")
        self._stats.processed(latency_ms, (time.perf_counter() - started) * 1e3,
                              keypoints=len(features))

    # ---- parameters --------------------------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        problem = parameters.check_changes(parameters.EXTRACTOR_PARAMETERS, changes)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        values = dict(self._values)
        values.update({p.name: p.value for p in changes if p.name in values})
        try:
            config = parameters.extractor_config(values)
            if config != self._config:
                self._apply_config(config)
        except Exception as exc:
            self.get_logger().error(f"parameter change rejected: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        self._calibration.max_age_s = float(values["calibration_max_age"])
        return SetParametersResult(successful=True)

    def _apply_config(self, config: ExtractorConfig) -> None:
        changed = {name for name in ExtractorConfig.field_names()
                   if getattr(config, name) != getattr(self._config, name)}
        if changed <= LIVE_SETTINGS:
            with self._model_lock:
                if self._model.reconfigure(config):
                    self._config = config
                    self.get_logger().info(f"updated {', '.join(sorted(changed))} live")
                    return
        model = self._build_model(config)  # outside the lock: frames keep flowing
        with self._model_lock:
            self._model, self._config = model, config
            self._runtime = model.runtime_info()
        self.get_logger().info(f"rebuilt the model for changed {', '.join(sorted(changed))}")

    # ---- diagnostics & shutdown ---------------------------------------------
    def _diagnostic_status(self):
        level, values = self._stats.snapshot()
        values.update({"model": self._config.model, "session_id": str(self._session_id),
                       "sequence": str(self._sequence),
                       "image_publishers": str(sum(self._image_publishers.values())),
                       "last_frame_age_s": ("never" if self._last_frame_time is None else
                                            f"{time.monotonic() - self._last_frame_time:.1f}")})
        values.update({f"runtime_{key}": str(value) for key, value in self._runtime.items()})
        values.update(self._calibration.diagnostics())
        return level, summary_message(level, values), values

    def close(self) -> str:
        """Stop the worker (node_main.run, before the context shuts down); the
        closing line's summary."""
        return self._stats.closing_summary(self._worker.close().in_flight)


def main(args=None) -> int:
    return run(ExtractorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
