"""What the nodes share, written once: `NodeBase` for every node, `FrameNode` for those that process frames.

`NodeBase` (the player's base too) is an rclpy Node that
  * declares its parameters (`PARAMETERS`, from parameters.py) and takes
    run-time changes through one skeleton (`_on_set_parameters`): every value
    checked against its spec, then the node's `_apply_parameters` builds what
    the new values need and raises to reject them (the reason goes back to the
    caller and into one WARN line; nothing changes), then the values are
    updated;
  * counts (`FrameStatistics`, frame_statistics.py) and logs repeated
    warnings and errors at most once per 5 s per kind (`ThrottledLog`);
  * gives each subscription and publisher the same QoS event callbacks: DDS
    message loss (counted as messages_lost, warned), publishers coming and
    going (logged, counted per topic), incompatible QoS (counted as
    incompatible_qos, warned with what to change);
  * publishes /diagnostics (`_start_diagnostics`): what the node's `_status`
    says (level, one-line message, values), then the DDS links of each input
    and output (`<topic>_publishers`: publishers matched by the node's
    subscription, `<topic>_subscribers`: subscriptions its publisher serves;
    so a test or an operator can tell that a link is up at both ends).

`FrameNode` adds what the extractor, matcher and stereo nodes need:
  * CameraInfo listeners (`_camera_info`) whose calibration_max_age follows
    the parameter;
  * builds a model the one way (`_build_model`): a runtime fallback is a ROS
    WARN line, and the model is tried on frames of the given size (at least
    once, whatever warmup_runs says) so a model that cannot process a frame
    is refused with its reason;
  * a status made of the statistics, what `_diagnostic_values` adds and a
    one-line summary;
  * runs the newest-frame worker (`_start_worker`) and stops it in `close()`,
    whose summary node_main logs as the closing line.

A node file then reads as wiring: parameters, publishers, subscriptions, the
per-frame processing and its own diagnostics.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, Sequence

from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node

from ..config import ExtractorConfig
from ..frame_statistics import FrameStatistics, ThrottledLog, summary_message
from ..models import create_model
from ..newest_frame import NewestFrameWorker
from ..runtimes.base import RuntimeFallbackWarning
from . import parameters
from .camera_info import CameraInfoListener
from .diagnostics import DiagnosticsPublisher
from .qos import OUTPUT_QOS, describe

TRIAL_FRAME_SIZE = (640, 480)  # the frame a new model is tried on before any image arrived


class NodeBase(Node):
    """Base of every node of the package (see the module docstring)."""

    DEFAULT_NAME = ""
    PARAMETERS: Sequence[parameters.ParameterSpec] = ()

    def __init__(self, **kwargs):
        super().__init__(self.DEFAULT_NAME, **kwargs)
        self._values = parameters.declare(self, self.PARAMETERS)
        self._stats = FrameStatistics()
        self._log_error = ThrottledLog(self.get_logger(), "error")
        self._log_warning = ThrottledLog(self.get_logger(), "warning")
        self._publishers_matched: dict[str, int] = {}  # input topic -> publishers matched
        self._outputs: dict[str, object] = {}          # output topic -> publisher
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---- wiring ----------------------------------------------------------------
    def _subscription_events(self, topic: str) -> SubscriptionEventCallbacks:
        self._publishers_matched[topic] = 0

        def lost(info):
            self._stats.count("messages_lost", info.total_count_change)
            self._log_warning(f"DDS lost {info.total_count_change} message(s) on "
                              f"{topic} before they reached this node "
                              f"({info.total_count} in total)")

        def matched(info):
            self._publishers_matched[topic] = info.current_count
            change = info.current_count_change
            if change:
                what = "connected" if change > 0 else "went away"
                self.get_logger().info(f"{abs(change)} publisher(s) on {topic} {what}; "
                                       f"{info.current_count} now")

        def incompatible(info):
            self._warn_incompatible(
                info, topic, f"a publisher offers less than this subscription requests "
                f"(qos: {self._values['qos']}); e.g. a best-effort publisher and "
                f"qos 'reliable': set qos to sensor_data; no messages flow between them")
        return SubscriptionEventCallbacks(message_lost=lost, matched=matched,
                                          incompatible_qos=incompatible)

    def _publisher_events(self, topic: str, explanation: str) -> PublisherEventCallbacks:
        def incompatible(info):
            self._warn_incompatible(info, topic, explanation)
        return PublisherEventCallbacks(incompatible_qos=incompatible)

    def _output(self, msg_type, topic: str, qos=OUTPUT_QOS, explanation: str | None = None):
        """A publisher (the output QoS unless told) with the QoS event
        callbacks; `explanation`: what an incompatible subscription is told."""
        if explanation is None:
            explanation = (f"a subscription requests more than this node offers "
                           f"({describe(qos)}, volatile); e.g. transient-local durability; "
                           f"no messages flow between them")
        publisher = self.create_publisher(msg_type, topic, qos,
                                          event_callbacks=self._publisher_events(topic,
                                                                                 explanation))
        self._outputs[topic] = publisher
        return publisher

    def _warn_incompatible(self, info, topic: str, explanation: str) -> None:
        self._stats.count("incompatible_qos", info.total_count_change)
        policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
        self.get_logger().warning(f"incompatible QoS on {topic} ({policy} policy): "
                                  f"{explanation}")

    def _start_diagnostics(self) -> DiagnosticsPublisher:
        return DiagnosticsPublisher(self, self._values["diagnostics_period"],
                                    self._diagnostic_status, self._hardware_id)

    def _hardware_id(self) -> str:
        """What does the work, for /diagnostics."""
        return ""

    # ---- parameters -------------------------------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        problem = parameters.check_changes(self.PARAMETERS, changes)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        values = dict(self._values)
        values.update({p.name: p.value for p in changes if p.name in values})
        try:
            self._apply_parameters(values)
        except Exception as exc:
            self.get_logger().warning(f"parameter change rejected: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        return SetParametersResult(successful=True)

    def _apply_parameters(self, values: dict) -> None:
        """Take new parameter values (all checked against their specs); raise
        to reject them, leaving the node as it was."""

    # ---- diagnostics ------------------------------------------------------------
    def _diagnostic_status(self):
        level, message, values = self._status()
        values.update({f"{topic}_publishers": str(count)
                       for topic, count in self._publishers_matched.items()})
        values.update({f"{topic}_subscribers": str(publisher.get_subscription_count())
                       for topic, publisher in self._outputs.items()})
        return level, message, values

    def _status(self) -> tuple:
        """(level, one-line message, values) of the node's /diagnostics status."""
        raise NotImplementedError


class FrameNode(NodeBase):
    """Base of the nodes that process a stream of frames (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._calibrations: list[CameraInfoListener] = []
        self._runtime: dict = {}                       # what the node's model runs on
        self._worker: NewestFrameWorker | None = None

    # ---- wiring ----------------------------------------------------------------
    def _camera_info(self, topic: str = "camera_info") -> CameraInfoListener:
        """A CameraInfo listener whose max age follows calibration_max_age (its
        publishers are counted as `<topic>_publishers`, without a log line)."""
        self._publishers_matched[topic] = 0

        def matched(info):
            self._publishers_matched[topic] = info.current_count
        listener = CameraInfoListener(self, topic, self._values["calibration_max_age"],
                                      SubscriptionEventCallbacks(matched=matched))
        self._calibrations.append(listener)
        return listener

    def _start_worker(self, name: str, process: Callable) -> NewestFrameWorker:
        """The newest-frame worker running `process(item)`; a replaced item is
        counted as frames_skipped, an exception goes to `_on_error`."""
        self._worker = NewestFrameWorker(name, process,
                                         lambda: self._stats.count("frames_skipped"),
                                         self._on_error)
        return self._worker

    # ---- model -------------------------------------------------------------------
    def _build_model(self, config: ExtractorConfig, frame_size=TRIAL_FRAME_SIZE):
        """A new model, tried on frames of `frame_size` (width, height); ValueError
        (or the model's own error) naming the problem when it cannot serve."""
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeFallbackWarning)
            model = create_model(config)
        for warning in caught:  # the runtime could not run as asked: say so in the ROS log
            self.get_logger().warning(str(warning.message))
        width, height = frame_size
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
        """What does the work, for /diagnostics (runtime/device of the model)."""
        return f"{self._runtime.get('runtime', '?')}/{self._runtime.get('device', '?')}"

    # ---- per frame ---------------------------------------------------------------
    def _latency_ms(self, stamp_ns: int) -> float | None:
        """Age of a stamp on this node's clock (None for an unset stamp)."""
        return (self.get_clock().now().nanoseconds - stamp_ns) / 1e6 if stamp_ns else None

    def _on_error(self, item, exc: Exception) -> None:
        """A frame the worker could not process: counted and logged (throttled)."""
        text = f"dropped {self._describe_item(item)}: {exc}"
        self._stats.error(text)
        self._log_error(text)

    def _describe_item(self, item) -> str:
        return "frame"

    # ---- parameters -------------------------------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        result = super()._on_set_parameters(changes)
        if result.successful:
            for calibration in self._calibrations:
                calibration.max_age_s = float(self._values["calibration_max_age"])
        return result

    # ---- diagnostics, shutdown --------------------------------------------------
    def _status(self):
        level, values = self._stats.snapshot()
        self._diagnostic_values(values)
        return level, summary_message(values), values

    def _diagnostic_values(self, values: dict[str, str]) -> None:
        """Add the node's own key/values to its /diagnostics status."""

    def close(self) -> str:
        """Stop the worker (node_main.run, before the context shuts down); the
        closing line's summary."""
        in_flight = self._worker.close().in_flight if self._worker is not None else 0
        return self._stats.closing_summary(in_flight)
